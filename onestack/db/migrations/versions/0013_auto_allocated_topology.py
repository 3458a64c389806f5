"""network: the default external network (is_default) and auto-allocated topologies

Revision ID: 0013_auto_allocate
Revises: 0007

"""
import sqlalchemy as sa
from alembic import op

revision = '0013_auto_allocate'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: networks is referenced with ON DELETE CASCADE, so no rebuild.
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_default', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table('auto_allocated_topologies',
                    sa.Column('project_id', sa.String(length=64), nullable=False),
                    sa.Column('network_id', sa.String(length=36), nullable=False),
                    sa.Column('router_id', sa.String(length=36), nullable=True),
                    sa.Column('created_at', sa.DateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['network_id'], ['networks.id'],
                                            ondelete='CASCADE'),
                    sa.ForeignKeyConstraint(['router_id'], ['routers.id'],
                                            ondelete='SET NULL'),
                    sa.PrimaryKeyConstraint('project_id'),
                    sa.UniqueConstraint('network_id'))


def downgrade() -> None:
    op.drop_table('auto_allocated_topologies')
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.drop_column('is_default')
