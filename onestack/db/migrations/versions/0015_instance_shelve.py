"""compute: an instance's system metadata (what shelving keeps: the shelve snapshot's
image id, when and where it was shelved)

Revision ID: 0015_shelve
Revises: 0007

"""
import sqlalchemy as sa
from alembic import op

revision = '0015_shelve'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('system_metadata', sa.JSON(), nullable=False,
                                      server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('system_metadata')
