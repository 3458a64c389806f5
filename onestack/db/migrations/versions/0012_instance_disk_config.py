"""compute: a server's disk config (OS-DCF:diskConfig) and per-user quotas

Revision ID: 0012_disk_config
Revises: 0007

"""
import sqlalchemy as sa
from alembic import op

revision = '0012_disk_config'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_disk_config', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table('compute_user_quotas',
                    sa.Column('project_id', sa.String(length=64), nullable=False),
                    sa.Column('user_id', sa.String(length=64), nullable=False),
                    sa.Column('resource', sa.String(length=64), nullable=False),
                    sa.Column('hard_limit', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('project_id', 'user_id', 'resource'))


def downgrade() -> None:
    op.drop_table('compute_user_quotas')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('auto_disk_config')
