"""network: security groups, routers, floating IPs, quotas

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('network_quotas',
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('project_id', 'resource')
    )
    op.create_table('securitygroups',
    sa.Column('stateful', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('securitygroups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_securitygroups_project_id'), ['project_id'], unique=False)

    op.create_table('default_securitygroups',
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('security_group_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['security_group_id'], ['securitygroups.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id'),
    sa.UniqueConstraint('security_group_id')
    )
    op.create_table('securitygrouprules',
    sa.Column('security_group_id', sa.String(length=36), nullable=False),
    sa.Column('remote_group_id', sa.String(length=36), nullable=True),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('ethertype', sa.String(length=8), nullable=False),
    sa.Column('protocol', sa.String(length=40), nullable=True),
    sa.Column('port_range_min', sa.Integer(), nullable=True),
    sa.Column('port_range_max', sa.Integer(), nullable=True),
    sa.Column('remote_ip_prefix', sa.String(length=64), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['remote_group_id'], ['securitygroups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['security_group_id'], ['securitygroups.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('securitygrouprules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_securitygrouprules_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_securitygrouprules_remote_group_id'), ['remote_group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_securitygrouprules_security_group_id'), ['security_group_id'], unique=False)

    op.create_table('routers',
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('gw_port_id', sa.String(length=36), nullable=True),
    sa.Column('enable_snat', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['gw_port_id'], ['ports.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routers_gw_port_id'), ['gw_port_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_routers_project_id'), ['project_id'], unique=False)

    op.create_table('securitygroupportbindings',
    sa.Column('port_id', sa.String(length=36), nullable=False),
    sa.Column('security_group_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['port_id'], ['ports.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['security_group_id'], ['securitygroups.id'], ),
    sa.PrimaryKeyConstraint('port_id', 'security_group_id')
    )
    with op.batch_alter_table('securitygroupportbindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_securitygroupportbindings_security_group_id'), ['security_group_id'], unique=False)

    op.create_table('floatingips',
    sa.Column('floating_ip_address', sa.String(length=64), nullable=False),
    sa.Column('floating_network_id', sa.String(length=36), nullable=False),
    sa.Column('floating_port_id', sa.String(length=36), nullable=False),
    sa.Column('fixed_port_id', sa.String(length=36), nullable=True),
    sa.Column('fixed_ip_address', sa.String(length=64), nullable=True),
    sa.Column('router_id', sa.String(length=36), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['fixed_port_id'], ['ports.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['floating_network_id'], ['networks.id'], ),
    sa.ForeignKeyConstraint(['floating_port_id'], ['ports.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['router_id'], ['routers.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('floating_network_id', 'fixed_port_id', 'fixed_ip_address'),
    sa.UniqueConstraint('floating_port_id')
    )
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floatingips_fixed_port_id'), ['fixed_port_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_floatingips_floating_network_id'), ['floating_network_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_floatingips_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_floatingips_router_id'), ['router_id'], unique=False)

    op.create_table('routerports',
    sa.Column('port_id', sa.String(length=36), nullable=False),
    sa.Column('router_id', sa.String(length=36), nullable=False),
    sa.Column('port_type', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['port_id'], ['ports.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['router_id'], ['routers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('port_id')
    )
    with op.batch_alter_table('routerports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routerports_router_id'), ['router_id'], unique=False)

    op.create_table('routerroutes',
    sa.Column('router_id', sa.String(length=36), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('nexthop', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['router_id'], ['routers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('router_id', 'destination', 'nexthop')
    )


def downgrade() -> None:
    op.drop_table('routerroutes')
    with op.batch_alter_table('routerports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routerports_router_id'))

    op.drop_table('routerports')
    with op.batch_alter_table('floatingips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_floatingips_router_id'))
        batch_op.drop_index(batch_op.f('ix_floatingips_project_id'))
        batch_op.drop_index(batch_op.f('ix_floatingips_floating_network_id'))
        batch_op.drop_index(batch_op.f('ix_floatingips_fixed_port_id'))

    op.drop_table('floatingips')
    with op.batch_alter_table('securitygroupportbindings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_securitygroupportbindings_security_group_id'))

    op.drop_table('securitygroupportbindings')
    with op.batch_alter_table('routers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routers_project_id'))
        batch_op.drop_index(batch_op.f('ix_routers_gw_port_id'))

    op.drop_table('routers')
    with op.batch_alter_table('securitygrouprules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_securitygrouprules_security_group_id'))
        batch_op.drop_index(batch_op.f('ix_securitygrouprules_remote_group_id'))
        batch_op.drop_index(batch_op.f('ix_securitygrouprules_project_id'))

    op.drop_table('securitygrouprules')
    op.drop_table('default_securitygroups')
    with op.batch_alter_table('securitygroups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_securitygroups_project_id'))

    op.drop_table('securitygroups')
    op.drop_table('network_quotas')
