"""volume backups

Revision ID: 0014_volume_backups
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = '0014_volume_backups'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'volume_backups',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=True),
        sa.Column('volume_id', sa.String(length=36), nullable=False),
        sa.Column('snapshot_id', sa.String(length=36), nullable=True),
        sa.Column('name', sa.String(length=255), nullable=True),
        sa.Column('description', sa.String(length=255), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('fail_reason', sa.Text(), nullable=True),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('availability_zone', sa.String(length=255), nullable=True),
        sa.Column('container', sa.String(length=255), nullable=True),
        sa.Column('service', sa.String(length=255), nullable=False),
        sa.Column('service_metadata', sa.String(length=255), nullable=True),
        sa.Column('object_count', sa.Integer(), nullable=False),
        sa.Column('parent_id', sa.String(length=36), nullable=True),
        sa.Column('volume_previous_status', sa.String(length=32), nullable=True),
        sa.Column('restore_volume_id', sa.String(length=36), nullable=True),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('volume_info', sa.JSON(), nullable=False),
        sa.Column('data_timestamp', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('is_incremental', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_volume_backups_project_id', 'volume_backups', ['project_id'])
    op.create_index('ix_volume_backups_volume_id', 'volume_backups', ['volume_id'])
    op.create_index('ix_volume_backups_status', 'volume_backups', ['status'])
    op.create_index('ix_volume_backups_parent_id', 'volume_backups', ['parent_id'])


def downgrade() -> None:
    op.drop_table('volume_backups')
