"""identity: trusts (OS-TRUST delegation)

Revision ID: 0015_trusts
Revises: 0010

"""
from alembic import op
import sqlalchemy as sa


revision = '0015_trusts'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trusts',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('trustor_user_id', sa.String(length=64), nullable=False),
    sa.Column('trustee_user_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('impersonation', sa.Boolean(), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('remaining_uses', sa.Integer(), nullable=True),
    sa.Column('allow_redelegation', sa.Boolean(), nullable=False),
    sa.Column('redelegation_count', sa.Integer(), nullable=False),
    sa.Column('redelegated_trust_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['trustor_user_id'], ['users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trustee_user_id'], ['users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['redelegated_trust_id'], ['trusts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_trusts_trustor_user_id', 'trusts', ['trustor_user_id'])
    op.create_index('ix_trusts_trustee_user_id', 'trusts', ['trustee_user_id'])
    op.create_index('ix_trusts_redelegated_trust_id', 'trusts', ['redelegated_trust_id'])


def downgrade() -> None:
    op.drop_table('trusts')
