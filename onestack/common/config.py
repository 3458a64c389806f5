"""Configuration: one TOML file plus environment variables.

Precedence, lowest first: built-in defaults, ``<state_dir>/onestack.toml``, environment
variables named ``ONESTACK_<SECTION>_<KEY>`` (e.g. ``ONESTACK_IDENTITY_TOKEN_EXPIRATION``),
then command-line flags.

The state directory holds every piece of state: the database, the token keys, the logs
and (later) disks. Its default is ``$ONESTACK_STATE_DIR`` if set, else
``/var/lib/onestack`` when running as root, else ``$XDG_DATA_HOME/onestack``
(``~/.local/share/onestack``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def default_state_dir() -> Path:
    env = os.environ.get("ONESTACK_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/onestack")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "onestack"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 5000
    #: URL clients use to reach the API; derived from host and port when empty.
    public_url: str = ""
    log_level: str = "info"


@dataclass
class DatabaseConfig:
    #: SQLAlchemy URL; empty means SQLite at ``<state_dir>/onestack.db``.
    url: str = ""


@dataclass
class IdentityConfig:
    #: Lifetime of a new token, in seconds.
    token_expiration: int = 3600
    #: Fernet keys kept in the key repository (staged + primary + older secondaries).
    max_active_keys: int = 3
    #: argon2id cost: time cost (passes), memory in KiB, lanes.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    #: argon2 computations run at once (each holds argon2_memory_kib); the rest queue.
    #: 0: one per core.
    password_hash_workers: int = 0
    #: Failed password logins before a user is locked out; 0 disables lockout.
    lockout_failure_attempts: int = 10
    #: Seconds a locked-out user stays locked.
    lockout_duration: int = 300
    #: Failed password and application-credential logins one client address may make
    #: in ``failed_logins_window`` seconds before its logins are refused (429) until the
    #: oldest failure leaves the window; 0 disables the limit.
    failed_logins_per_source: int = 30
    failed_logins_window: int = 60
    #: Minimum password length for new passwords set through the API.
    minimum_password_length: int = 1
    #: Security compliance (Keystone's ``[security_compliance]``; all off by default).
    #: Days a password stays good once set (0: forever); user option
    #: ``ignore_password_expiry`` exempts a user.
    password_expires_days: int = 0
    #: A self-service password change may not reuse any of the last N passwords
    #: (the current one included); 0 (or 1 for the current one only) keeps no history.
    unique_last_password_count: int = 0
    #: Days a user must keep a password they set before changing it again themself.
    minimum_password_age: int = 0
    #: A regular expression every new password must match, and what it asks for in
    #: words (said in the 400 when a password does not match).
    password_regex: str = ""
    password_regex_description: str = ""
    #: A password set by an administrator (user create or update) must be changed by
    #: the user before it can be used to log in; user option
    #: ``ignore_change_password_upon_first_use`` exempts a user.
    change_password_upon_first_use: bool = False
    #: Users who have not logged in for this many days are treated as disabled (0:
    #: never); user option ``ignore_user_inactivity`` exempts a user.
    disable_user_account_days_inactive: int = 0
    region: str = "RegionOne"


@dataclass
class NetworkConfig:
    """Networking (Neutron) defaults; ``onestack up`` bootstraps the external network."""

    #: The admin external network ``onestack up`` creates for floating IPs and gateways.
    public_network_name: str = "public"
    #: Its IPv4 subnet (a documentation range by default) ...
    public_cidr: str = "203.0.113.0/24"
    #: ... its gateway (empty: the first address) and pool (empty: the rest of the range).
    public_gateway: str = ""
    public_pool_start: str = ""
    public_pool_end: str = ""
    #: The external network's IPv6 subnet (documentation prefix by default; empty: none)
    #: and its gateway (empty: the first address, 2001:db8::1). Routers' gateway ports
    #: get an address on it and tenant IPv6 prefixes are routed to them, never NATed.
    public_ipv6_cidr: str = "2001:db8::/64"
    public_ipv6_gateway: str = ""
    #: The default IPv6 subnet pool ``onestack up`` makes (shared, ``is_default``):
    #: tenant subnets made with ``--use-default-subnet-pool`` get the next free /64 of
    #: it. A documentation range that does not meet ``public_ipv6_cidr``; empty: no pool.
    default_ipv6_subnetpool_prefix: str = "2001:db8:8000::/33"
    default_ipv6_subnetpool_name: str = "shared-default-subnetpool-v6"
    default_ipv6_subnetpool_prefixlen: int = 64
    #: The default IPv4 subnet pool ``onestack up`` makes (shared, ``is_default``):
    #: auto-allocated networks and ``--use-default-subnet-pool`` subnets get the next
    #: free /24 of it (a private range no test or example picks by hand); empty: none.
    default_ipv4_subnetpool_prefix: str = "172.30.0.0/16"
    default_ipv4_subnetpool_name: str = "shared-default-subnetpool-v4"
    default_ipv4_subnetpool_prefixlen: int = 24
    #: The physical network the external network is a flat network on.
    public_physical_network: str = "public"
    #: Physical networks admins may name in provider attributes (comma-separated).
    physical_networks: str = "public"
    #: MTU of the physical networks, and of tenant (VXLAN) networks (50 bytes less).
    physical_mtu: int = 1500
    tenant_mtu: int = 1450
    #: The type of networks projects create, and the VXLAN VNIs they get.
    tenant_network_type: str = "vxlan"
    vni_min: int = 1
    vni_max: int = 16777215
    #: The first three bytes of generated MAC addresses (Neutron's default prefix).
    base_mac: str = "fa:16:3e"
    max_dns_nameservers: int = 5
    max_subnet_host_routes: int = 20
    max_allowed_address_pairs: int = 10
    #: Default per-project quotas (Neutron's defaults); -1 is unlimited.
    quota_network: int = 100
    quota_subnet: int = 100
    quota_port: int = 500
    quota_router: int = 10
    quota_floatingip: int = 50
    quota_security_group: int = 10
    quota_security_group_rule: int = 100


@dataclass
class ImageConfig:
    """The Image service (Glance): limits on uploads and per-project quotas."""

    #: Largest image file accepted, in bytes (Glance's ``image_size_cap``: 1 TiB).
    max_image_size: int = 1 << 40
    #: Largest virtual disk size an uploaded image may declare, in bytes.
    max_virtual_size: int = 1 << 40
    #: Default per-project quotas (Glance's unified-limit names); -1 is unlimited.
    #: ``image_count_total``: images a project may own.
    image_count_total: int = 100
    #: ``image_size_total``: MiB of image data (stored and staged) a project may hold.
    image_size_total: int = 1 << 20
    #: Members, tags and free-form properties one image may have (Glance's defaults).
    image_member_quota: int = 128
    image_tag_quota: int = 128
    image_property_quota: int = 128
    #: Default and largest page size of image lists.
    limit_param_default: int = 25
    api_limit_max: int = 1000
    #: fsync image data before an upload is reported done (durable across a crash).
    fsync: bool = True
    #: Where image data lives: ``file`` (``<state_dir>/images``) or ``rbd`` (RBD images
    #: with a protected snapshot in ``[ceph] images_pool``; ``onestack up --storage rbd``).
    store: str = "file"


@dataclass
class HostConfig:
    """This host's agent: which drivers it runs and how it names what it creates."""

    #: Run this host's agent inside the server process (the all-in-one mode).
    agent: bool = True
    #: Name of this host in os-hypervisors and os-services (empty: the machine's hostname).
    name: str = ""
    #: Prefix of every namespace, bridge, tap and veth this host creates (before Neutron's
    #: names: ``osbrq<net>``, ``ostap<port>``, ``osqdhcp-<net>``), so OneStack's objects
    #: are told apart from the machine's own, several hosts (or test runs) share one
    #: machine, and cleanup finds exactly its own objects. At most 6 characters.
    name_prefix: str = "os"
    #: Drivers: hypervisor ``qemu`` | ``fake``; storage ``local`` | ``rbd`` | ``fake``; network
    #: ``linux`` | ``fake``, which picks the four network drivers below at once.
    hypervisor_driver: str = "qemu"
    storage_driver: str = "local"
    network_driver: str = "linux"
    #: One network driver kind each, overriding what ``network_driver`` picks (empty:
    #: its pick). L2 (bridges, taps) ``linux`` | ``fake``; DHCP (dnsmasq, RA, metadata)
    #: ``linux`` | ``fake``; L3 (routers, NAT) ``linux`` | ``noop`` | ``fake``; firewall
    #: (security groups) ``linux`` | ``noop`` | ``fake`` (``network_driver = linux``
    #: picks ``linux``: br_netfilter and iptables, docs/design/host-network.md).
    l2_driver: str = ""
    dhcp_driver: str = ""
    l3_driver: str = ""
    firewall_driver: str = ""
    #: QEMU accelerator: ``kvm``, ``tcg`` or ``auto`` (KVM if a probe boot works there).
    accel: str = "auto"
    #: Seconds between two full reconciliations when nothing notifies the agent.
    poll_interval: float = 5.0
    #: Seconds a network stays set up on a host after its last instance there is gone.
    network_idle_seconds: float = 60.0
    #: The all-in-one (DevStack-style) external network: the host holds each external
    #: subnet's gateway address (``[network] public_gateway``, 203.0.113.1 by default)
    #: on the external network's bridge, so the host's shell reaches floating IPs and
    #: routers' gateway addresses. Off for a host whose external network is a real one.
    external_gateway_on_host: bool = True
    #: Masquerade what leaves the external subnets through the host's other interfaces
    #: (its default route), so guests reach beyond the host. Off by default: turning it
    #: on NATs cloud traffic onto the machine's own network (docs/network.md).
    external_masquerade: bool = False
    #: The flat provider mapping of the external network: an existing interface of this
    #: host (``eth1``, say) that the agent joins to the external network's bridge, so
    #: routers' gateways and floating IPs are on the real network behind it. Set, it
    #: replaces the all-in-one mode (no gateway address on the host, no masquerade);
    #: empty (the default), no interface of the host is ever touched.
    external_interface: str = ""
    #: This host's VXLAN tunnel address (``ONESTACK_HOST_TUNNEL_IP``): the source of its
    #: VXLAN traffic, reported as os-hypervisors ``host_ip`` so the other hosts send to
    #: it. Empty: the address this host reaches the server from (the all-in-one host:
    #: 127.0.0.1, which makes no tunnels). Set it on hosts with several interfaces.
    tunnel_ip: str = ""
    #: Resources reported to the scheduler; 0 means measure the machine.
    vcpus: int = 0
    memory_mib: int = 0
    disk_gb: int = 0
    #: Overcommit ratios the scheduler applies (Nova's defaults).
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0


@dataclass
class CephConfig:
    """The Ceph cluster of the ``rbd`` backends (``onestack up --storage rbd``): a local
    one from ``onestack ceph up`` or a production one, the same code path."""

    #: ``ceph.conf`` of the cluster (monitors' addresses) and the client's keyring.
    conf: str = ""
    keyring: str = ""
    #: The cephx client (``client.<user>``) OneStack and QEMU connect as.
    user: str = "onestack"
    #: Pools: images (with a protected snapshot each), boot disks, volumes.
    images_pool: str = "images"
    vms_pool: str = "vms"
    volumes_pool: str = "volumes"


@dataclass
class ComputeConfig:
    """The Compute service (Nova): quotas and API defaults."""

    #: Default per-project quotas (Nova's defaults); -1 is unlimited.
    quota_instances: int = 10
    quota_cores: int = 20
    quota_ram: int = 51200
    quota_key_pairs: int = 100
    quota_metadata_items: int = 128
    quota_server_groups: int = 10
    quota_server_group_members: int = 10
    quota_injected_files: int = 5
    quota_injected_file_content_bytes: int = 10240
    quota_injected_file_path_bytes: int = 255
    #: Default and largest page size of server lists.
    max_limit: int = 1000
    default_availability_zone: str = "nova"
    #: Seconds a stop or soft reboot waits for the guest before forcing it off.
    shutdown_timeout: int = 60
    #: Seconds a shelved server keeps its host before it is offloaded (Nova's
    #: ``shelved_offload_time``): 0 at once, -1 never (``shelveOffload`` only).
    shelved_offload_time: int = 0


@dataclass
class VolumeConfig:
    """The Block Storage service (Cinder): its backend, quotas and API defaults."""

    #: Where volumes live: ``local`` (qcow2 files under ``<state_dir>/volumes``),
    #: ``rbd`` (a Ceph pool) or ``fake`` (memory only, for tests).
    backend: str = "local"
    #: Default per-project quotas (Cinder's defaults); -1 is unlimited.
    quota_volumes: int = 10
    quota_snapshots: int = 10
    quota_gigabytes: int = 1000
    quota_backups: int = 10
    quota_backup_gigabytes: int = 1000
    quota_groups: int = 10
    #: Largest single volume, GiB (Cinder's ``per_volume_size_limit``; -1: none).
    per_volume_size_limit: int = -1
    #: The volume type volumes get when none is asked for (made at first start).
    default_volume_type: str = "__DEFAULT__"
    default_availability_zone: str = "nova"
    #: Default and largest page size of lists (Cinder's ``osapi_max_limit``).
    max_limit: int = 1000
    #: Worker threads running backend operations (copies, clones, uploads).
    workers: int = 4
    #: Where the posix backup driver keeps backups (empty: ``<state_dir>/backups``).
    backup_path: str = ""
    #: Size of a backup chunk (bytes; each is compressed and checksummed on its own).
    backup_chunk_size: int = 4 << 20


@dataclass
class Config:
    state_dir: Path = field(default_factory=default_state_dir)
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    host: HostConfig = field(default_factory=HostConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    ceph: CephConfig = field(default_factory=CephConfig)
    volume: VolumeConfig = field(default_factory=VolumeConfig)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_dir / 'onestack.db'}"

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"

    @property
    def key_repository(self) -> Path:
        return self.state_dir / "fernet-keys"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


_SECTIONS = ("server", "database", "identity", "network", "image", "host", "compute",
             "volume", "ceph")


def _coerce(value: str, current: Any) -> Any:
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        return float(value)
    return value


def _apply(section_obj: Any, values: dict[str, Any], where: str) -> None:
    names = {f.name for f in dataclasses.fields(section_obj)}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"{where}: unknown option {key!r}")
        current = getattr(section_obj, key)
        if isinstance(value, str) and not isinstance(current, str):
            value = _coerce(value, current)
        setattr(section_obj, key, value)


def load_config(state_dir: Path | None = None, environ: dict[str, str] | None = None,
                **overrides: Any) -> Config:
    """Build the configuration for one process.

    ``overrides`` are ``section_key=value`` pairs from the command line (e.g.
    ``server_port=5001``); ``None`` values are ignored.
    """
    environ = dict(os.environ if environ is None else environ)
    config = Config()
    if state_dir is not None:
        config.state_dir = Path(state_dir)
    config.state_dir = config.state_dir.expanduser().absolute()
    toml_path = config.state_dir / "onestack.toml"
    if toml_path.exists():
        data = tomllib.loads(toml_path.read_text())
        for section, values in data.items():
            if section not in _SECTIONS or not isinstance(values, dict):
                raise ValueError(f"{toml_path}: unknown section [{section}]")
            _apply(getattr(config, section), values, str(toml_path))
    for section in _SECTIONS:
        prefix = f"ONESTACK_{section.upper()}_"
        values = {k[len(prefix):].lower(): v for k, v in environ.items() if k.startswith(prefix)}
        if values:
            _apply(getattr(config, section), values, "environment")
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.partition("_")
        _apply(getattr(config, section), {name: value}, "command line")
    return config
