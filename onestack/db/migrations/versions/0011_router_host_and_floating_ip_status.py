"""network: the host each router runs on, and what hosts report back (router status
ERROR when its host could not set it up; floating IP status ACTIVE once applied)

Revision ID: 0011
Revises: 0007

"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_routers_host', ['host'], unique=False)
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False,
                                      server_default='DOWN'))


def downgrade() -> None:
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        batch_op.drop_column('status')
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.drop_index('ix_routers_host')
        batch_op.drop_column('host')
