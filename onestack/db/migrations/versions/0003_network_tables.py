"""network tables: networks, subnets (pools, DNS servers, host routes), ports (fixed
IPs, allowed address pairs, extra DHCP options) and the generic tag table

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('network_tags',
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_id', sa.String(length=36), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'resource_id', 'tag')
    )
    op.create_table('networks',
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('shared', sa.Boolean(), nullable=False),
    sa.Column('external', sa.Boolean(), nullable=False),
    sa.Column('mtu', sa.Integer(), nullable=False),
    sa.Column('port_security_enabled', sa.Boolean(), nullable=False),
    sa.Column('network_type', sa.String(length=16), nullable=False),
    sa.Column('physical_network', sa.String(length=64), nullable=True),
    sa.Column('segmentation_id', sa.Integer(), nullable=True),
    sa.Column('segment_key', sa.String(length=96), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('segment_key')
    )
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_networks_project_id'), ['project_id'], unique=False)

    op.create_table('ports',
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.Column('mac_address', sa.String(length=32), nullable=False),
    sa.Column('admin_state_up', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('device_id', sa.String(length=255), nullable=False),
    sa.Column('device_owner', sa.String(length=255), nullable=False),
    sa.Column('port_security_enabled', sa.Boolean(), nullable=False),
    sa.Column('binding_host_id', sa.String(length=255), nullable=False),
    sa.Column('binding_vnic_type', sa.String(length=64), nullable=False),
    sa.Column('binding_vif_type', sa.String(length=64), nullable=False),
    sa.Column('binding_profile', sa.JSON(), nullable=False),
    sa.Column('binding_vif_details', sa.JSON(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('network_id', 'mac_address')
    )
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ports_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ports_network_id'), ['network_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ports_project_id'), ['project_id'], unique=False)

    op.create_table('subnets',
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.Column('ip_version', sa.Integer(), nullable=False),
    sa.Column('cidr', sa.String(length=64), nullable=False),
    sa.Column('gateway_ip', sa.String(length=64), nullable=True),
    sa.Column('enable_dhcp', sa.Boolean(), nullable=False),
    sa.Column('ipv6_ra_mode', sa.String(length=16), nullable=True),
    sa.Column('ipv6_address_mode', sa.String(length=16), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('revision_number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subnets_network_id'), ['network_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subnets_project_id'), ['project_id'], unique=False)

    op.create_table('ip_allocations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('port_id', sa.String(length=36), nullable=False),
    sa.Column('subnet_id', sa.String(length=36), nullable=False),
    sa.Column('network_id', sa.String(length=36), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['port_id'], ['ports.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subnet_id'], ['subnets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subnet_id', 'ip_address')
    )
    with op.batch_alter_table('ip_allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ip_allocations_ip_address'), ['ip_address'], unique=False)
        batch_op.create_index(batch_op.f('ix_ip_allocations_network_id'), ['network_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ip_allocations_port_id'), ['port_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ip_allocations_subnet_id'), ['subnet_id'], unique=False)

    op.create_table('port_allowed_address_pairs',
    sa.Column('port_id', sa.String(length=36), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=False),
    sa.Column('mac_address', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['port_id'], ['ports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('port_id', 'ip_address', 'mac_address')
    )
    op.create_table('port_extra_dhcp_opts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('port_id', sa.String(length=36), nullable=False),
    sa.Column('opt_name', sa.String(length=64), nullable=False),
    sa.Column('opt_value', sa.Text(), nullable=False),
    sa.Column('ip_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['port_id'], ['ports.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('port_id', 'opt_name', 'ip_version')
    )
    with op.batch_alter_table('port_extra_dhcp_opts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_port_extra_dhcp_opts_port_id'), ['port_id'], unique=False)

    op.create_table('subnet_allocation_pools',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subnet_id', sa.String(length=36), nullable=False),
    sa.Column('first_ip', sa.String(length=64), nullable=False),
    sa.Column('last_ip', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['subnet_id'], ['subnets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('subnet_allocation_pools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subnet_allocation_pools_subnet_id'), ['subnet_id'], unique=False)

    op.create_table('subnet_dns_nameservers',
    sa.Column('subnet_id', sa.String(length=36), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['subnet_id'], ['subnets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subnet_id', 'address')
    )
    op.create_table('subnet_host_routes',
    sa.Column('subnet_id', sa.String(length=36), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('nexthop', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['subnet_id'], ['subnets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subnet_id', 'destination', 'nexthop')
    )


def downgrade() -> None:
    op.drop_table('subnet_host_routes')
    op.drop_table('subnet_dns_nameservers')
    with op.batch_alter_table('subnet_allocation_pools', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subnet_allocation_pools_subnet_id'))

    op.drop_table('subnet_allocation_pools')
    with op.batch_alter_table('port_extra_dhcp_opts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_port_extra_dhcp_opts_port_id'))

    op.drop_table('port_extra_dhcp_opts')
    op.drop_table('port_allowed_address_pairs')
    with op.batch_alter_table('ip_allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ip_allocations_subnet_id'))
        batch_op.drop_index(batch_op.f('ix_ip_allocations_port_id'))
        batch_op.drop_index(batch_op.f('ix_ip_allocations_network_id'))
        batch_op.drop_index(batch_op.f('ix_ip_allocations_ip_address'))

    op.drop_table('ip_allocations')
    with op.batch_alter_table('subnets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subnets_project_id'))
        batch_op.drop_index(batch_op.f('ix_subnets_network_id'))

    op.drop_table('subnets')
    with op.batch_alter_table('ports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ports_project_id'))
        batch_op.drop_index(batch_op.f('ix_ports_network_id'))
        batch_op.drop_index(batch_op.f('ix_ports_device_id'))

    op.drop_table('ports')
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_networks_project_id'))

    op.drop_table('networks')
    op.drop_table('network_tags')
