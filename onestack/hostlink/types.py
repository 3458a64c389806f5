"""The wire types: everything that crosses between the server and a host.

Plain dataclasses of JSON-friendly values (str, int, float, bool, None, lists, dicts
and other wire types), so the in-process transport passes them as they are and the
HTTP transport carries them with ``onestack.hostlink.codec``. No ORM rows, no driver
types: the server's services build them from their tables, and the host's agent and
drivers translate them into their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# -- instances --------------------------------------------------------------------------


@dataclass
class ImageRef:
    """An image a host fetches (once) through ``HostToServer.open_image``; the hash is
    checked after the download."""

    id: str
    disk_format: str
    size: int
    hash_algo: str
    hash_value: str


@dataclass
class ImageDisk:
    """A local disk made from an image (a qcow2 overlay on a cached base)."""

    image: ImageRef
    size_gb: int
    boot_index: int | None = 0
    kind: Literal["image"] = "image"


@dataclass
class RbdDisk:
    """A Ceph RBD image QEMU opens directly (``rbd:<pool>/<name>``); cloned from
    ``image`` (an RBD snapshot of the image) when it does not exist yet."""

    pool: str
    name: str
    size_gb: int
    image: ImageRef | None = None
    user: str = ""
    boot_index: int | None = 0
    kind: Literal["rbd"] = "rbd"


#: Cinder's front-end QoS keys (a spec whose ``consumer`` is ``front-end`` or ``both``):
#: what the host applies as I/O limits on a volume's disk (per second; ``*_max``: the
#: burst; ``size_iops_sec``: the size one I/O counts as). 0 is no limit.
FRONT_END_QOS_KEYS: tuple[str, ...] = (
    "total_bytes_sec", "read_bytes_sec", "write_bytes_sec",
    "total_iops_sec", "read_iops_sec", "write_iops_sec",
    "total_bytes_sec_max", "read_bytes_sec_max", "write_bytes_sec_max",
    "total_iops_sec_max", "read_iops_sec_max", "write_iops_sec_max",
    "size_iops_sec")
#: The largest limit a host accepts (QEMU's throttle maximum, 1e15).
QOS_VALUE_MAX = 10 ** 15


def front_end_limits(connection: dict[str, Any]) -> dict[str, int]:
    """The I/O limits in a volume's connection info (``data.qos_specs``, which the
    volume service fills from the volume type's front-end QoS specs): the known keys
    with a positive integer value (the API refuses other values; what an older record
    holds that is not one is left out), others (back-end keys) ignored."""
    specs = (connection.get("data") or {}).get("qos_specs") or {}
    limits: dict[str, int] = {}
    for key in FRONT_END_QOS_KEYS:
        value = specs.get(key) if isinstance(specs, dict) else None
        text = str(value).strip() if isinstance(value, (str, int)) \
            and not isinstance(value, bool) else ""
        if text.isdigit() and 0 < int(text) <= QOS_VALUE_MAX:
            limits[key] = int(text)
    return limits


@dataclass
class VolumeDisk:
    """A block-storage volume attached to the instance; ``connection`` is the volume
    service's connection info (``driver_volume_type`` and its ``data``, whose
    ``qos_specs`` carry the front-end I/O limits, ``front_end_limits``)."""

    volume_id: str
    attachment_id: str
    connection: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    boot_index: int | None = None
    kind: Literal["volume"] = "volume"


Disk = ImageDisk | RbdDisk | VolumeDisk

#: The ``kind`` of each disk type (the codec's discriminator).
DISK_KINDS: dict[str, type] = {"image": ImageDisk, "rbd": RbdDisk, "volume": VolumeDisk}


@dataclass
class AllowedAddressPair:
    """A port's allowed address pair: it may also send from ``ip_address`` (an address
    or a prefix) with ``mac_address`` (None: the port's own MAC)."""

    ip_address: str
    mac_address: str | None = None


@dataclass
class PortInfo:
    """One NIC of an instance: its port and the network it is on."""

    id: str
    network_id: str
    mac: str
    mtu: int
    ips: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    port_security_enabled: bool = True
    allowed_address_pairs: list[AllowedAddressPair] = field(default_factory=list)


@dataclass
class DesiredInstance:
    """One instance as its host should have it (docs/design/compute-states.md)."""

    uuid: str
    name: str
    hostname: str
    vm_state: str
    task_state: str | None
    task_args: dict[str, Any]
    #: The last power state the host reported (a PowerState number).
    power_state: int
    vcpus: int
    memory_mb: int
    root_gb: int
    #: Boot disk first (``boot_index`` 0), then attached volumes.
    disks: list[ImageDisk | RbdDisk | VolumeDisk]
    ports: list[PortInfo]
    config_drive: bool = False
    #: During a resize: the flavor it goes to, and the one a revert goes back to
    #: (Instance.flavor dicts: vcpus, ram, disk...).
    new_flavor: dict[str, Any] | None = None
    old_flavor: dict[str, Any] | None = None

    @property
    def root_disk(self) -> ImageDisk | RbdDisk | VolumeDisk | None:
        """The disk the guest boots from (None: nothing to boot)."""
        booting = [d for d in self.disks if d.boot_index is not None]
        return min(booting, key=lambda d: d.boot_index or 0) if booting else None

    @property
    def image(self) -> ImageRef | None:
        """The image the boot disk is made from, if it is made from one."""
        root = self.root_disk
        return getattr(root, "image", None)


# -- networks ----------------------------------------------------------------------------


@dataclass
class SubnetSpec:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    enable_dhcp: bool
    #: IPv6 only: Neutron's modes ("slaac", "dhcpv6-stateless", "dhcpv6-stateful" or None).
    ipv6_ra_mode: str | None = None
    ipv6_address_mode: str | None = None
    dns_nameservers: list[str] = field(default_factory=list)
    #: [{"destination": cidr, "nexthop": ip}]
    host_routes: list[dict[str, str]] = field(default_factory=list)


@dataclass
class DhcpHost:
    """A static DHCP entry: one port's MAC and its fixed addresses."""

    port_id: str
    mac: str
    ips: list[str]
    hostname: str = ""


@dataclass
class NetworkSpec:
    """A network a host needs (an instance there has a port on it)."""

    id: str
    mtu: int
    subnets: list[SubnetSpec]
    #: The network's DHCP port on this host (device_owner "network:dhcp"); None: no DHCP.
    dhcp_mac: str | None = None
    dhcp_ips: list[str] = field(default_factory=list)
    #: Every compute port on the network that should get a lease.
    hosts: list[DhcpHost] = field(default_factory=list)
    #: "flat", "vxlan", ... and the segment (VNI) where it has one.
    network_type: str = "flat"
    segmentation_id: int | None = None
    #: ``router:external``: routers' gateways and floating IPs live on it.
    external: bool = False
    #: Tunnel addresses (``HostReport.host_ip``) of the other hosts with a port on the
    #: network (an instance's, a DHCP port, a router's leg): where a ``vxlan`` network's
    #: VXLAN device floods to.
    peers: list[str] = field(default_factory=list)
    #: MAC -> tunnel address of the network's ports on those other hosts.
    remote_macs: dict[str, str] = field(default_factory=dict)


@dataclass
class RouterPort:
    """A router's leg on a network: ``qr-`` (internal) or ``qg-`` (gateway)."""

    port_id: str
    network_id: str
    mac: str
    ips: list[str]
    subnet_ids: list[str] = field(default_factory=list)


@dataclass
class FloatingIPSpec:
    floating_ip: str
    fixed_ip: str
    port_id: str


@dataclass
class RouterSpec:
    """A router a host runs (``qrouter-<id>``): its legs, routes, SNAT and floating IPs."""

    id: str
    interfaces: list[RouterPort] = field(default_factory=list)
    gateway: RouterPort | None = None
    enable_snat: bool = True
    #: [{"destination": cidr, "nexthop": ip}]
    routes: list[dict[str, str]] = field(default_factory=list)
    floating_ips: list[FloatingIPSpec] = field(default_factory=list)


@dataclass
class SecurityGroupRule:
    direction: str  # "ingress" | "egress"
    ethertype: str  # "IPv4" | "IPv6"
    protocol: str | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


@dataclass
class SecurityGroupRuleSet:
    """One security group as a host's firewall needs it: its rules and the addresses of
    its members (what ``remote_group_id`` rules match)."""

    id: str
    rules: list[SecurityGroupRule] = field(default_factory=list)
    member_ips: list[str] = field(default_factory=list)


# -- block storage -------------------------------------------------------------------------


@dataclass
class VolumeAttachment:
    """A volume that should be attached to an instance on this host."""

    attachment_id: str
    volume_id: str
    instance_uuid: str
    device: str = ""
    connection: dict[str, Any] = field(default_factory=dict)
    #: The volume's size: an attached volume extended to more is grown in the guest.
    size_gb: int = 0


# -- one host's desired state -----------------------------------------------------------


@dataclass
class HostState:
    """Everything that should be on one host, each slice from the service that owns it:
    compute (instances), network (networks, routers, security groups), block storage
    (volume attachments)."""

    host: str
    instances: list[DesiredInstance] = field(default_factory=list)
    networks: list[NetworkSpec] = field(default_factory=list)
    routers: list[RouterSpec] = field(default_factory=list)
    security_groups: list[SecurityGroupRuleSet] = field(default_factory=list)
    attachments: list[VolumeAttachment] = field(default_factory=list)


# -- what a host reports --------------------------------------------------------------------


@dataclass
class HostReport:
    host: str
    hypervisor_hostname: str
    hypervisor_type: str
    hypervisor_version: int
    accel: str
    vcpus: int
    memory_mb: int
    local_gb: int
    local_gb_used: int
    #: The host's address (os-hypervisors ``host_ip``), also its VXLAN tunnel address
    #: (``[host] tunnel_ip``); a loopback address is never anyone's peer.
    host_ip: str = "127.0.0.1"
    cpu_info: dict[str, Any] = field(default_factory=dict)
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    #: What this host's drivers can do (``onestack.hostlink.capabilities``).
    capabilities: dict[str, bool] = field(default_factory=dict)


@dataclass
class SerialEndpoint:
    """Where a guest's serial console is spoken: ``unix`` (a socket path on the server's
    own machine: the in-process host) or ``websocket`` (a URL a remote host serves;
    ``token`` authenticates the relay)."""

    kind: Literal["unix", "websocket"]
    address: str
    token: str = ""
