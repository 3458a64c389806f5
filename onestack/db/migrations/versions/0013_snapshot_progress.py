"""volume: a snapshot's reported progress (os-update_snapshot_status)

Revision ID: 0013_snapshot_progress
Revises: 0013_volume_encryption
"""
import sqlalchemy as sa
from alembic import op

revision = '0013_snapshot_progress'
down_revision = '0013_volume_encryption'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('volume_snapshots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('volume_snapshots', schema=None) as batch_op:
        batch_op.drop_column('progress')
