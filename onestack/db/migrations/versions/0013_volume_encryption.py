"""volume admin: volume type encryption specs

Revision ID: 0013_volume_encryption
Revises: 0012_volume_admin
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_volume_encryption'
down_revision = '0012_volume_admin'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'volume_type_encryption',
        sa.Column('volume_type_id', sa.String(length=36), nullable=False),
        sa.Column('encryption_id', sa.String(length=36), nullable=False),
        sa.Column('provider', sa.String(length=255), nullable=False),
        sa.Column('cipher', sa.String(length=255), nullable=True),
        sa.Column('key_size', sa.Integer(), nullable=True),
        sa.Column('control_location', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['volume_type_id'], ['volume_types.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('volume_type_id'),
        sa.UniqueConstraint('encryption_id'))


def downgrade() -> None:
    op.drop_table('volume_type_encryption')
