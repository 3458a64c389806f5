"""SQLAlchemy models, one module per service. Every table arrives through an Alembic
migration in ``onestack/db/migrations/versions``; change both together."""

from onestack.db.models.base import Base, utcnow
from onestack.db.models.compute import (
    ComputeNode,
    ComputeQuota,
    ComputeService,
    ComputeUserQuota,
    Flavor,
    FlavorExtraSpec,
    FlavorProject,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    InstanceFault,
    InstanceMetadata,
    InstanceTag,
    KeyPair,
    ServerGroup,
    ServerGroupMember,
)
from onestack.db.models.compute_migrations import Migration  # noqa: F401
from onestack.db.models.identity import (
    ApplicationCredential,
    Assignment,
    Domain,
    Endpoint,
    Group,
    GroupMembership,
    ImpliedRole,
    Meta,
    Project,
    ProjectTag,
    Region,
    RevocationEvent,
    Role,
    Service,
    User,
)
from onestack.db.models.image import Image, ImageMember, ImageProperty, ImageQuota, ImageTag
from onestack.db.models.metadefs import MetadefNamespace  # noqa: F401
from onestack.db.models.network import (
    AllocationPool,
    AllowedAddressPair,
    DnsNameserver,
    ExtraDhcpOpt,
    HostRoute,
    IPAllocation,
    Network,
    NetworkTag,
    Port,
    StandardAttributes,
    Subnet,
)
from onestack.db.models.network_auto_allocate import AutoAllocatedTopology
from onestack.db.models.network_l3 import (
    DefaultSecurityGroup,
    FloatingIP,
    NetworkQuota,
    Router,
    RouterPort,
    RouterRoute,
    SecurityGroup,
    SecurityGroupPortBinding,
    SecurityGroupRule,
)
from onestack.db.models.network_pools import SubnetPool
from onestack.db.models.volume import (
    QosSpecs,
    Snapshot,
    Volume,
    VolumeAttachment,
    VolumeMessage,
    VolumeQuota,
    VolumeTransfer,
    VolumeType,
    VolumeTypeProject,
)
from onestack.db.models.volume_backups import VolumeBackup  # noqa: F401

__all__ = [
    "ApplicationCredential", "Assignment", "Base", "Domain", "Endpoint", "Group",
    "GroupMembership", "ImpliedRole", "Meta", "Project", "ProjectTag", "Region",
    "RevocationEvent", "Role", "Service", "User", "utcnow",
    # image
    "Image", "ImageMember", "ImageProperty", "ImageQuota", "ImageTag",
    # networking
    "AllocationPool", "AllowedAddressPair", "DnsNameserver", "ExtraDhcpOpt", "HostRoute",
    "IPAllocation", "Network", "NetworkTag", "Port", "StandardAttributes", "Subnet",
    "DefaultSecurityGroup", "FloatingIP", "NetworkQuota", "Router", "RouterPort", "RouterRoute",
    "SecurityGroup", "SecurityGroupPortBinding", "SecurityGroupRule", "SubnetPool",
    "AutoAllocatedTopology",
    # compute
    "ComputeNode", "ComputeQuota", "ComputeService", "ComputeUserQuota", "Flavor",
    "FlavorExtraSpec",
    "FlavorProject", "Instance", "InstanceAction", "InstanceActionEvent", "InstanceFault",
    "InstanceMetadata", "InstanceTag", "KeyPair", "ServerGroup", "ServerGroupMember",
    # volume
    "QosSpecs", "Snapshot", "Volume", "VolumeAttachment", "VolumeMessage", "VolumeQuota",
    "VolumeTransfer", "VolumeType", "VolumeTypeProject",
]
