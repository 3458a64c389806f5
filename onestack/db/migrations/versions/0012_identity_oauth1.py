"""identity: OAuth 1.0a delegation (OS-OAUTH1 consumers, request and access tokens)

Revision ID: 0012_oauth1
Revises: 0010

"""
from alembic import op
import sqlalchemy as sa


revision = '0012_oauth1'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oauth_consumers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('oauth_request_tokens',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('consumer_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('authorizing_user_id', sa.String(length=64), nullable=True),
    sa.Column('verifier', sa.String(length=64), nullable=True),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['consumer_id'], ['oauth_consumers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_oauth_request_tokens_consumer_id', 'oauth_request_tokens',
                    ['consumer_id'])
    op.create_table('oauth_access_tokens',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('consumer_id', sa.String(length=64), nullable=False),
    sa.Column('authorizing_user_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['consumer_id'], ['oauth_consumers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['authorizing_user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_oauth_access_tokens_consumer_id', 'oauth_access_tokens',
                    ['consumer_id'])
    op.create_index('ix_oauth_access_tokens_authorizing_user_id', 'oauth_access_tokens',
                    ['authorizing_user_id'])


def downgrade() -> None:
    op.drop_table('oauth_access_tokens')
    op.drop_table('oauth_request_tokens')
    op.drop_table('oauth_consumers')
