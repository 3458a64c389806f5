"""identity: security compliance (password history, who set the password, last
activity) and application credential access rules

Revision ID: 0015_pw_history
Revises: 0010

"""
import sqlalchemy as sa
from alembic import op

revision = '0015_pw_history'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_history', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('password_self_service', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('last_active_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('application_credentials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_rules', sa.JSON(), nullable=False,
                                      server_default='[]'))
    op.create_table('access_rules',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('service', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'service', 'method', 'path')
    )
    op.create_index('ix_access_rules_user_id', 'access_rules', ['user_id'])


def downgrade() -> None:
    op.drop_table('access_rules')
    with op.batch_alter_table('application_credentials', schema=None) as batch_op:
        batch_op.drop_column('access_rules')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_active_at')
        batch_op.drop_column('password_self_service')
        batch_op.drop_column('password_history')
