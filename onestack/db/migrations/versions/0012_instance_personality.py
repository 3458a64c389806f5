"""compute: an instance's personality files (injected_files)

Revision ID: 0012_personality
Revises: 0007

"""
from alembic import op
import sqlalchemy as sa


revision = '0012_personality'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('injected_files', sa.JSON(), nullable=False,
                                      server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('injected_files')
