"""The metadata service: what a guest reads at http://169.254.169.254 (Nova's shapes).

A proxy on each host (``onestack.agent.metadata_proxy``) listens on the metadata address
inside a network's DHCP namespace, finds the instance from the network and the guest's
source address (``instance_for_address``), and forwards the request to the server's
``/metadata`` API signed with the shared secret (``secret``): ``X-Instance-ID`` plus
``X-Instance-ID-Signature`` = hex HMAC-SHA256(secret, instance id), as Nova's
``metadata_proxy_shared_secret`` scheme. ``documents`` reads the instance once and
answers any path of the OpenStack tree (``/openstack/<version>/meta_data.json``, ...)
and of the EC2 tree (``/latest/meta-data/...``), as ``nova.api.metadata.base`` does.

Not served: the instance password (``password`` reads empty; setting it needs a POST),
injected files (``/openstack/content``) and tagged-device metadata (``devices`` is
empty): OneStack does not store them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.db.models.compute import Instance, KeyPair
from onestack.db.models.network import IPAllocation, Network, Port, Subnet
from onestack.db.models.network_l3 import FloatingIP, SecurityGroup, SecurityGroupPortBinding

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: EC2 versions (Nova's ``VERSIONS``); ``latest`` is the last one.
EC2_VERSIONS = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04"]

FOLSOM = "2012-08-10"
GRIZZLY = "2013-04-04"
HAVANA = "2013-10-17"
LIBERTY = "2015-10-15"
NEWTON_ONE = "2016-06-30"
NEWTON_TWO = "2016-10-06"
OCATA = "2017-02-22"
ROCKY = "2018-08-27"
VICTORIA = "2020-10-14"
#: OpenStack versions (Nova's ``OPENSTACK_VERSIONS``); ``latest`` is the last one.
OPENSTACK_VERSIONS = [FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY,
                      VICTORIA]
#: Where personality files are served: ``/openstack/content/0000``, ...
CONTENT_DIR = "content"

TEXT = "text/plain"
JSON = "application/json"

#: Appended to the hostname as Nova's ``[api] dhcp_domain`` (empty: the bare hostname).
DHCP_DOMAIN = ""
#: VIF types Nova shows as such in network_data.json links (others are "phy").
_EXPOSED_VIF_TYPES = ("bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif")
SECRET_FILE = "metadata-secret"
_SECRET_BYTES = 32


@dataclass(frozen=True)
class Document:
    """One answer of the metadata API: the body and its content type."""

    body: bytes
    content_type: str = TEXT


@dataclass
class _Subnet:
    id: str
    ip_version: int
    cidr: str
    gateway_ip: str | None
    enable_dhcp: bool
    ipv6_address_mode: str | None
    dns: list[str]
    routes: list[tuple[str, str]]
    has_dhcp_server: bool
    ips: list[str] = field(default_factory=list)


@dataclass
class _Vif:
    port_id: str
    mac: str
    vif_type: str
    network_id: str
    mtu: int | None
    subnets: list[_Subnet]


@dataclass
class _Facts:
    """Everything the documents need, read in one transaction."""

    uuid: str
    project_id: str
    name: str
    hostname: str
    launch_index: int
    availability_zone: str
    reservation_id: str
    image_ref: str
    flavor_name: str
    ephemeral_gb: int
    swap_mb: int
    key_name: str | None
    key_data: str | None
    key_type: str
    user_data: bytes | None
    meta: dict[str, str]
    #: Personality files: (path, contents), served as ``openstack/content/NNNN``.
    files: list[tuple[str, bytes]]
    security_groups: list[str]
    vifs: list[_Vif]
    floating_ips: list[str]
    address: str | None


def _listing(data: Any) -> bytes:
    """Nova's ``ec2_md_print``: a dict is its sorted keys (subdirectories with ``/`` or
    their ``_name``), a list its items, one a line."""
    if isinstance(data, dict):
        lines = []
        for key in sorted(data):
            if key == "_name":
                continue
            value = data[key]
            if isinstance(value, dict):
                lines.append(str(value["_name"]) if "_name" in value else f"{key}/")
            else:
                lines.append(key)
        return "\n".join(lines).encode()
    if isinstance(data, list):
        return "\n".join(str(item) for item in data).encode()
    if isinstance(data, bytes):
        return data
    if data is None:
        return b""
    return str(data).encode()


def _json(data: Any) -> Document:
    return Document(json.dumps(data).encode(), JSON)


def _at_least(required: str, version: str, versions: list[str]) -> bool:
    return versions.index(version) >= versions.index(required)


class InstanceDocuments:
    """The metadata of one instance, as its guest sees it. ``lookup(path)`` answers a path
    relative to the metadata root (``/openstack/latest/meta_data.json``,
    ``/latest/meta-data/hostname``, ``/``), or None where Nova answers 404."""

    def __init__(self, facts: _Facts) -> None:
        self.facts = facts

    @property
    def uuid(self) -> str:
        return self.facts.uuid

    @property
    def project_id(self) -> str:
        return self.facts.project_id

    # -- paths ----------------------------------------------------------------------------

    def lookup(self, path: str) -> Document | None:
        path = posixpath.normpath("/" + path.lstrip("/"))
        tokens = [t for t in path.split("/") if t]
        if not tokens:
            return Document(_listing([*EC2_VERSIONS, "latest"]))
        if tokens[0] == "openstack":
            return self._openstack(tokens[1:])
        if tokens[0] == "ec2":
            tokens = tokens[1:]
            if not tokens:
                return Document(_listing([*EC2_VERSIONS, "latest"]))
        return self._ec2(tokens)

    def _openstack(self, tokens: list[str]) -> Document | None:
        if not tokens:
            return Document(_listing([*OPENSTACK_VERSIONS, "latest"]))
        if tokens[0] == CONTENT_DIR:   # personality files, named in meta_data.json
            return self.content(tokens[1:])
        version = OPENSTACK_VERSIONS[-1] if tokens[0] == "latest" else tokens[0]
        if version not in OPENSTACK_VERSIONS:
            return None
        if len(tokens) == 1:
            return Document(_listing(self.openstack_listing(version)))
        name = "/".join(tokens[1:])
        if name == "meta_data.json":
            return _json(self.meta_data(version))
        if name == "user_data":
            if self.facts.user_data is None:
                return None
            return Document(self.facts.user_data)
        if name == "password" and _at_least(GRIZZLY, version, OPENSTACK_VERSIONS):
            return Document(b"")
        if name == "vendor_data.json" and _at_least(HAVANA, version, OPENSTACK_VERSIONS):
            return _json({})
        if name == "network_data.json" and _at_least(LIBERTY, version, OPENSTACK_VERSIONS):
            return _json(self.network_data())
        if name == "vendor_data2.json" and _at_least(NEWTON_TWO, version, OPENSTACK_VERSIONS):
            # Nova's default providers (StaticJSON, no file): {"static": {}}.
            return _json({"static": {}})
        return None

    def _ec2(self, tokens: list[str]) -> Document | None:
        version = EC2_VERSIONS[-1] if tokens[0] == "latest" else tokens[0]
        if version not in EC2_VERSIONS:
            return None
        data: Any = self.ec2_tree(version)
        for token in tokens[1:]:
            if not isinstance(data, dict) or token not in data or token == "_name":
                return None
            data = data[token]
        return Document(_listing(data))

    # -- OpenStack documents --------------------------------------------------------------

    def openstack_listing(self, version: str) -> list[str]:
        names = ["meta_data.json"]
        if self.facts.user_data is not None:
            names.append("user_data")
        if _at_least(GRIZZLY, version, OPENSTACK_VERSIONS):
            names.append("password")
        if _at_least(HAVANA, version, OPENSTACK_VERSIONS):
            names.append("vendor_data.json")
        if _at_least(LIBERTY, version, OPENSTACK_VERSIONS):
            names.append("network_data.json")
        if _at_least(NEWTON_TWO, version, OPENSTACK_VERSIONS):
            names.append("vendor_data2.json")
        return names

    def meta_data(self, version: str = "latest") -> dict[str, Any]:
        if version == "latest":
            version = OPENSTACK_VERSIONS[-1]
        f = self.facts
        md: dict[str, Any] = {"uuid": f.uuid}
        if f.meta:
            md["meta"] = dict(f.meta)
        if f.files:
            md["files"] = [{"path": path, "content_path": f"/{CONTENT_DIR}/{i:04d}"}
                           for i, (path, _) in enumerate(f.files)]
        if f.key_name and f.key_data:
            md["public_keys"] = {f.key_name: f.key_data}
            md["keys"] = [{"name": f.key_name, "type": f.key_type, "data": f.key_data}]
        md["hostname"] = self.hostname
        md["name"] = f.name
        md["launch_index"] = f.launch_index
        md["availability_zone"] = f.availability_zone
        if _at_least(GRIZZLY, version, OPENSTACK_VERSIONS):
            md["random_seed"] = base64.b64encode(os.urandom(512)).decode()
        if _at_least(LIBERTY, version, OPENSTACK_VERSIONS):
            md["project_id"] = f.project_id
        if _at_least(NEWTON_ONE, version, OPENSTACK_VERSIONS):
            md["devices"] = []
        if _at_least(VICTORIA, version, OPENSTACK_VERSIONS):
            md["dedicated_cpus"] = []
        return md

    def content(self, tokens: list[str]) -> Document | None:
        """``openstack/content/NNNN``: a personality file's bytes."""
        if len(tokens) != 1 or not tokens[0].isdigit():
            return None
        index = int(tokens[0])
        if index >= len(self.facts.files):
            return None
        return Document(self.facts.files[index][1])

    def network_data(self) -> dict[str, Any]:
        """Nova's ``netutils.get_network_metadata``: one link per port, the first IPv4
        and the first IPv6 subnet of each port as networks, DNS servers as services."""
        if not self.facts.vifs:
            return {}
        links: list[dict[str, Any]] = []
        networks: list[dict[str, Any]] = []
        services: list[dict[str, str]] = []
        for vif in self.facts.vifs:
            if not vif.subnets:
                continue
            v4 = next((s for s in vif.subnets if s.ip_version == 4), None)
            v6 = next((s for s in vif.subnets if s.ip_version == 6), None)
            link_id = f"tap{vif.port_id}"[:14]
            links.append({
                "id": link_id,
                "vif_id": vif.port_id,
                "type": vif.vif_type if vif.vif_type in _EXPOSED_VIF_TYPES else "phy",
                # Nova leaves the MTU to DHCP when the subnet has a DHCP server.
                "mtu": None if any(s.has_dhcp_server for s in vif.subnets) else vif.mtu,
                "ethernet_mac_address": vif.mac,
            })
            for subnet in (v4, v6):
                if subnet is None or not subnet.ips:
                    continue
                networks.append(_network_entry(vif, subnet, f"network{len(networks)}",
                                               link_id))
                services += [s for s in _dns_services(subnet) if s not in services]
        return {"links": links, "networks": networks, "services": services}

    @property
    def hostname(self) -> str:
        if DHCP_DOMAIN:
            return f"{self.facts.hostname}.{DHCP_DOMAIN}"
        return self.facts.hostname

    # -- EC2 ------------------------------------------------------------------------------

    def ec2_tree(self, version: str = "latest") -> dict[str, Any]:
        """Nova's ``get_ec2_metadata``: {"meta-data": {...}, "user-data": bytes}."""
        if version == "latest":
            version = EC2_VERSIONS[-1]
        f = self.facts
        fixed_v4 = [ip for vif in f.vifs for s in vif.subnets if s.ip_version == 4
                    for ip in s.ips]
        md: dict[str, Any] = {
            "ami-id": self.ami_id,
            "ami-launch-index": f.launch_index,
            "ami-manifest-path": "FIXME",
            "instance-id": self.ec2_instance_id,
            "hostname": self.hostname,
            "local-ipv4": fixed_v4[0] if fixed_v4 else (f.address or ""),
            "reservation-id": f.reservation_id,
            "security-groups": list(f.security_groups),
        }
        if f.key_name and f.key_data:
            md["public-keys"] = {"0": {"_name": f"0={f.key_name}", "openssh-key": f.key_data}}
        if _at_least("2007-01-19", version, EC2_VERSIONS):
            md["local-hostname"] = self.hostname
            md["public-hostname"] = self.hostname
            md["public-ipv4"] = f.floating_ips[0] if f.floating_ips else ""
        if _at_least("2007-08-29", version, EC2_VERSIONS):
            md["instance-type"] = f.flavor_name
        if _at_least("2007-12-15", version, EC2_VERSIONS):
            md["block-device-mapping"] = self.block_device_mapping
        if _at_least("2008-02-01", version, EC2_VERSIONS):
            md["placement"] = {"availability-zone": f.availability_zone}
        if _at_least("2008-09-01", version, EC2_VERSIONS):
            md["instance-action"] = "none"
        tree: dict[str, Any] = {"meta-data": md}
        if f.user_data is not None:
            tree["user-data"] = f.user_data
        return tree

    @property
    def ec2_instance_id(self) -> str:
        """Nova's ``i-%08x`` shape; ours is the uuid's first 32 bits (stable)."""
        return f"i-{self.facts.uuid.replace('-', '')[:8]}"

    @property
    def ami_id(self) -> str:
        ref = self.facts.image_ref.replace("-", "")
        return f"ami-{ref[:8]}" if ref else "ami-00000000"

    @property
    def block_device_mapping(self) -> dict[str, str]:
        """Nova's ``instance_block_mapping`` for a virtio guest: the root disk, then the
        flavor's ephemeral disk and swap as the next devices."""
        mapping = {"ami": "vda", "root": "/dev/vda"}
        letters = iter("bcdefgh")
        if self.facts.ephemeral_gb:
            mapping["ephemeral0"] = f"/dev/vd{next(letters)}"
        if self.facts.swap_mb:
            mapping["swap"] = f"/dev/vd{next(letters)}"
        return mapping


def _network_entry(vif: _Vif, subnet: _Subnet, net_id: str, link_id: str) -> dict[str, Any]:
    """Nova's ``netutils._get_nets``."""
    version = subnet.ip_version
    net_type = ""
    if subnet.ipv6_address_mode is not None:
        net_type = f"_{subnet.ipv6_address_mode}"
    elif subnet.has_dhcp_server or subnet.enable_dhcp:
        return {"id": net_id, "type": f"ipv{version}_dhcp", "link": link_id,
                "network_id": vif.network_id}
    cidr = ipaddress.ip_network(subnet.cidr, strict=False)
    routes: list[dict[str, str]] = []
    if subnet.gateway_ip:
        any_ = "0.0.0.0" if version == 4 else "::"
        routes.append({"network": any_, "netmask": any_, "gateway": subnet.gateway_ip})
    for destination, nexthop in subnet.routes:
        try:
            dest = ipaddress.ip_network(destination, strict=False)
        except ValueError:
            continue
        routes.append({"network": str(dest.network_address), "netmask": str(dest.netmask),
                       "gateway": nexthop})
    return {
        "id": net_id,
        "type": f"ipv{version}{net_type}",
        "link": link_id,
        "ip_address": subnet.ips[0],
        "netmask": str(cidr.netmask),
        "routes": routes,
        "network_id": vif.network_id,
        "services": _dns_services(subnet),
    }


def _dns_services(subnet: _Subnet) -> list[dict[str, str]]:
    return [{"type": "dns", "address": address} for address in subnet.dns]


def _decode_user_data(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return value.encode()


def _normalize_ip(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class MetadataService:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self._secret: bytes | None = None

    @property
    def db(self) -> Any:
        return self.compute.db

    # -- the shared secret ----------------------------------------------------------------

    def secret(self) -> bytes:
        """The secret the proxies sign instance ids with: 32 random bytes kept in
        ``<state_dir>/metadata-secret`` (mode 0600), made on first use."""
        if self._secret is None:
            self._secret = _load_or_create_secret(
                Path(self.compute.config.state_dir) / SECRET_FILE)
        return self._secret

    # -- which instance is asking ---------------------------------------------------------

    def instance_for_address(self, network_id: str, ip: str) -> tuple[str, str] | None:
        """(instance uuid, project id) of the live instance whose port on ``network_id``
        has the fixed IP ``ip``; None if there is none."""
        address = _normalize_ip(ip)
        if address is None or not network_id:
            return None
        with self.db.session() as session:
            row = session.execute(
                select(Instance.uuid, Instance.project_id)
                .join(Port, Port.device_id == Instance.uuid)
                .join(IPAllocation, IPAllocation.port_id == Port.id)
                .where(IPAllocation.network_id == network_id,
                       IPAllocation.ip_address == address,
                       Port.network_id == network_id,
                       Port.device_owner.startswith("compute:"),
                       Instance.deleted.is_(False))
                .limit(1)).first()
        return (row[0], row[1]) if row is not None else None

    # -- the documents --------------------------------------------------------------------

    def documents(self, instance_uuid: str,
                  address: str | None = None) -> InstanceDocuments | None:
        """The metadata of a live instance (None if it does not exist or is deleted).
        ``address`` is the guest's source address (``local-ipv4`` when it has no fixed
        IPv4)."""
        with self.db.session() as session:
            inst = session.get(Instance, instance_uuid)
            if inst is None or inst.deleted:
                return None
            facts = self._facts(session, inst, address)
        return InstanceDocuments(facts)

    def _facts(self, session: Any, inst: Instance, address: str | None) -> _Facts:
        key_data, key_type = inst.key_data, "ssh"
        if inst.key_name:
            keypair = session.get(KeyPair, (inst.user_id, inst.key_name))
            if keypair is not None:
                key_data = key_data or keypair.public_key
                key_type = keypair.type or "ssh"
        ports = self._ports(session, inst)
        vifs = self._vifs(session, ports)
        port_ids = [p.id for p in ports]
        floating: list[str] = []
        if port_ids:
            rows = session.execute(
                select(FloatingIP.fixed_port_id, FloatingIP.floating_ip_address)
                .where(FloatingIP.fixed_port_id.in_(port_ids))).all()
            order = {pid: i for i, pid in enumerate(port_ids)}
            floating = [ip for _, ip in sorted(rows, key=lambda r: (order[r[0]], r[1]))]
        flavor = inst.flavor or {}
        return _Facts(
            uuid=inst.uuid,
            project_id=inst.project_id,
            name=inst.display_name or "",
            hostname=inst.hostname or "",
            launch_index=inst.launch_index or 0,
            availability_zone=(inst.availability_zone
                               or self.compute.config.compute.default_availability_zone),
            reservation_id=inst.reservation_id or "",
            image_ref=inst.image_ref or "",
            flavor_name=str(flavor.get("name", "")),
            ephemeral_gb=int(flavor.get("ephemeral", inst.ephemeral_gb) or 0),
            swap_mb=int(flavor.get("swap", 0) or 0),
            key_name=inst.key_name,
            key_data=key_data,
            key_type=key_type,
            user_data=_decode_user_data(inst.user_data),
            meta={m.key: m.value for m in inst.metadata_items},
            files=[(f["path"], base64.b64decode(f["contents"]))
                   for f in inst.injected_files or []],
            security_groups=self._security_groups(session, inst, port_ids),
            vifs=vifs,
            floating_ips=floating,
            address=_normalize_ip(address) if address else None,
        )

    @staticmethod
    def _ports(session: Any, inst: Instance) -> list[Port]:
        """The instance's ports in NIC order (``instance.ports``), then any other port
        bound to it by ``device_id`` (attached later), oldest first."""
        owned = session.scalars(select(Port).where(
            Port.device_id == inst.uuid, Port.device_owner.startswith("compute:"))
            .order_by(Port.created_at, Port.id)).all()
        by_id = {p.id: p for p in owned}
        ordered: list[Port] = []
        for item in inst.ports or []:
            port_id = item.get("port_id") if isinstance(item, dict) else item
            port = by_id.pop(port_id, None) if isinstance(port_id, str) else None
            if port is not None:
                ordered.append(port)
        ordered += [p for p in owned if p.id in by_id]
        return ordered

    @staticmethod
    def _vifs(session: Any, ports: list[Port]) -> list[_Vif]:
        subnet_ids = {a.subnet_id for p in ports for a in p.fixed_ips}
        network_ids = {p.network_id for p in ports}
        subnets = {s.id: s for s in session.scalars(
            select(Subnet).where(Subnet.id.in_(subnet_ids)))} if subnet_ids else {}
        networks = {n.id: n for n in session.scalars(
            select(Network).where(Network.id.in_(network_ids)))} if network_ids else {}
        dhcp_subnets = set(session.scalars(
            select(IPAllocation.subnet_id).join(Port, Port.id == IPAllocation.port_id)
            .where(IPAllocation.subnet_id.in_(subnet_ids),
                   Port.device_owner == "network:dhcp"))) if subnet_ids else set()
        vifs = []
        for port in ports:
            network = networks.get(port.network_id)
            by_subnet: dict[str, _Subnet] = {}
            for alloc in port.fixed_ips:
                subnet = subnets.get(alloc.subnet_id)
                if subnet is None:
                    continue
                entry = by_subnet.get(subnet.id)
                if entry is None:
                    entry = by_subnet[subnet.id] = _Subnet(
                        id=subnet.id, ip_version=subnet.ip_version, cidr=subnet.cidr,
                        gateway_ip=subnet.gateway_ip, enable_dhcp=subnet.enable_dhcp,
                        ipv6_address_mode=subnet.ipv6_address_mode,
                        dns=[d.address for d in subnet.dns_nameservers],
                        routes=[(r.destination, r.nexthop) for r in subnet.host_routes],
                        has_dhcp_server=subnet.id in dhcp_subnets)
                entry.ips.append(alloc.ip_address)
            vifs.append(_Vif(port_id=port.id, mac=port.mac_address,
                             vif_type=port.binding_vif_type or "",
                             network_id=port.network_id,
                             mtu=network.mtu if network is not None else None,
                             subnets=list(by_subnet.values())))
        return vifs

    @staticmethod
    def _security_groups(session: Any, inst: Instance, port_ids: list[str]) -> list[str]:
        """Names of the groups of the instance's ports (as Nova asks Neutron); without
        any, the names asked for at create."""
        names: list[str] = []
        if port_ids:
            rows = session.execute(
                select(SecurityGroup.name)
                .join(SecurityGroupPortBinding,
                      SecurityGroupPortBinding.security_group_id == SecurityGroup.id)
                .where(SecurityGroupPortBinding.port_id.in_(port_ids))
                .order_by(SecurityGroup.name)).all()
            for (name,) in rows:
                if name not in names:
                    names.append(name)
        if not names:
            for item in inst.security_groups or []:
                name = item.get("name") if isinstance(item, dict) else item
                if isinstance(name, str) and name not in names:
                    names.append(name)
        return names


def _load_or_create_secret(path: Path) -> bytes:
    """Read the secret, or make it atomically: written to a private temporary file and
    hard-linked into place, so two processes starting at once agree on one secret."""
    with contextlib.suppress(FileNotFoundError):
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".metadata-secret-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(_SECRET_BYTES))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            os.link(tmp, path)
        except FileExistsError:
            data = path.read_bytes()
            if len(data) >= 16:
                return data
            os.replace(tmp, path)  # a truncated leftover: replace it
            tmp = ""
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return path.read_bytes()
