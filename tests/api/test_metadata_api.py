"""The metadata API (/metadata): the signature, and every document's shape (Nova's)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import stat
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from onestack.agent.metadata_proxy import MetadataProxy
from onestack.db.models.compute import Instance, InstanceMetadata, KeyPair
from onestack.services.compute.metadata import MetadataService
from tests.api.network_helpers import network, port, subnet

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxYkGqYbFQDpyuoWdc9Xyrd4GRXKDVjF5Rc6yW5b2ck t@x"
USER_DATA = b"#cloud-config\nruncmd:\n - [touch, /tmp/ok]\n\x00\xff binary tail"


@dataclass
class Guest:
    uuid: str
    project_id: str
    port: dict[str, Any]
    net: dict[str, Any]
    v4: dict[str, Any]
    v6: dict[str, Any]


def sign(cloud, instance_id: str) -> str:
    secret = cloud.services.compute.metadata.secret()
    return hmac.new(secret, instance_id.encode(), hashlib.sha256).hexdigest()


def md(cloud, path: str, instance_id: str | None, signature: str | None = "auto",
       method: str = "GET", **headers: str):
    h = dict(headers)
    if instance_id is not None:
        h["X-Instance-ID"] = instance_id
        if signature == "auto":
            signature = sign(cloud, instance_id)
    if signature is not None and signature != "auto":
        h["X-Instance-ID-Signature"] = signature
    return cloud.client.request(method, f"/metadata{path}", headers=h)


def ok(r, content_type: str = "text/plain"):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"].startswith(content_type), r.headers["content-type"]
    return r


def add_instance(cloud, *, name: str = "vm-one", hostname: str = "vm-one",
                 key: bool = True, user_data: bytes | None = USER_DATA,
                 meta: dict[str, str] | None = None, ports: list[str] | None = None,
                 project_id: str | None = None, deleted: bool = False,
                 uuid_: str | None = None) -> str:
    uuid_ = uuid_ or str(uuid.uuid4())
    project_id = project_id or cloud.admin_project_id
    with cloud.services.db.session() as session:
        if key and session.get(KeyPair, (cloud.admin_user_id, "mykey")) is None:
            session.add(KeyPair(user_id=cloud.admin_user_id, name="mykey", type="ssh",
                                public_key=SSH_KEY, fingerprint="aa:bb"))
        inst = Instance(
            uuid=uuid_, project_id=project_id, user_id=cloud.admin_user_id,
            display_name=name, hostname=hostname,
            image_ref="1d2e3f40-aaaa-bbbb-cccc-000000000001",
            flavor={"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1,
                    "ephemeral": 0, "swap": 0},
            vcpus=1, memory_mb=512, root_gb=1,
            key_name="mykey" if key else None, key_data=SSH_KEY if key else None,
            user_data=base64.b64encode(user_data).decode() if user_data is not None else None,
            availability_zone="nova", host="host-1", vm_state="active", launch_index=0,
            reservation_id="r-abcdef12",
            ports=[{"port_id": p, "preserve_on_delete": False} for p in ports or []],
            security_groups=["default"], deleted=deleted)
        session.add(inst)
        for k, v in (meta or {}).items():
            session.add(InstanceMetadata(instance_uuid=uuid_, key=k, value=v))
    return uuid_


@pytest.fixture
def guest(cloud) -> Guest:
    net = network(cloud, name="private")
    v4 = subnet(cloud, net["id"], "10.20.0.0/24", dns_nameservers=["10.20.0.53"],
                host_routes=[{"destination": "192.168.50.0/24", "nexthop": "10.20.0.254"}])
    v6 = subnet(cloud, net["id"], "fd00:20::/64", ipv6_ra_mode="slaac",
                ipv6_address_mode="slaac")
    instance_id = str(uuid.uuid4())
    p = port(cloud, net["id"], device_id=instance_id, device_owner="compute:nova",
             fixed_ips=[{"subnet_id": v4["id"], "ip_address": "10.20.0.10"},
                        {"subnet_id": v6["id"]}])
    add_instance(cloud, uuid_=instance_id, ports=[p["id"]],
                 meta={"role": "web", "tier": "1"})
    return Guest(instance_id, cloud.admin_project_id, p, net, v4, v6)


# -- the signature ---------------------------------------------------------------------


def test_signature_required(cloud, guest):
    path = "/openstack/latest/meta_data.json"
    r = md(cloud, path, None, None)
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/plain")
    assert md(cloud, path, guest.uuid, None).status_code == 403
    assert md(cloud, path, guest.uuid, "0" * 64).status_code == 403
    assert md(cloud, path, guest.uuid, b"nothex\xe9").status_code == 403  # type: ignore[arg-type]
    assert md(cloud, path, guest.uuid, sign(cloud, guest.uuid).upper()).status_code == 403
    # a signature made with another secret
    other = hmac.new(b"x" * 32, guest.uuid.encode(), hashlib.sha256).hexdigest()
    assert md(cloud, path, guest.uuid, other).status_code == 403
    # no auth token is needed (nor looked at): the signature is the credential
    ok(md(cloud, path, guest.uuid), "application/json")
    r = cloud.client.get(f"/metadata{path}", headers=[
        ("X-Instance-ID", guest.uuid), ("X-Instance-ID", guest.uuid),
        ("X-Instance-ID-Signature", sign(cloud, guest.uuid))])
    assert r.status_code == 400


def test_answers_only_for_the_signed_instance(cloud, guest):
    other = add_instance(cloud, name="vm-two", hostname="vm-two", key=False, user_data=None)
    doc = ok(md(cloud, "/openstack/latest/meta_data.json", other), "application/json").json()
    assert doc["uuid"] == other and doc["name"] == "vm-two"
    assert "public_keys" not in doc and "meta" not in doc
    # the signature of one instance does not open another
    r = md(cloud, "/openstack/latest/meta_data.json", guest.uuid, sign(cloud, other))
    assert r.status_code == 403
    # unknown and deleted instances: 404
    unknown = str(uuid.uuid4())
    assert md(cloud, "/openstack/latest/meta_data.json", unknown).status_code == 404
    gone = add_instance(cloud, deleted=True)
    assert md(cloud, "/latest/meta-data/", gone).status_code == 404
    assert md(cloud, "/", "x" * 300).status_code == 404
    # X-Tenant-ID must be the instance's project when sent
    assert md(cloud, "/", guest.uuid, **{"X-Tenant-ID": "someone-else"}).status_code == 404
    ok(md(cloud, "/", guest.uuid, **{"X-Tenant-ID": guest.project_id}))


def test_methods_and_bad_paths(cloud, guest):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = md(cloud, "/openstack/latest/password", guest.uuid, method=method)
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
        assert r.headers["content-type"].startswith("text/plain")
    for path in ("/openstack/1999-01-01/meta_data.json", "/openstack/latest/nope",
                 "/openstack/content/0000", "/2001-01-01/meta-data/", "/latest/nope",
                 "/latest/meta-data/hostname/deeper", "/latest/meta-data/public-keys/0/_name",
                 "/openstack/2012-08-10/password", "/openstack/2013-04-04/vendor_data.json",
                 "/openstack/2013-10-17/network_data.json",
                 "/openstack/2016-06-30/vendor_data2.json", "/%00", "/latest/meta-data/%ff"):
        r = md(cloud, path, guest.uuid)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert r.headers["content-type"].startswith("text/plain")
    # dot segments stay inside the instance's tree
    assert ok(md(cloud, "/openstack/../latest/meta-data/hostname", guest.uuid)).text == "vm-one"


# -- the OpenStack tree ----------------------------------------------------------------


def test_openstack_listings(cloud, guest):
    versions = ok(md(cloud, "/openstack", guest.uuid)).text.split("\n")
    assert versions == ["2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
                        "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14", "latest"]
    assert ok(md(cloud, "/openstack/", guest.uuid)).text.split("\n") == versions
    latest = ok(md(cloud, "/openstack/latest/", guest.uuid)).text.split("\n")
    assert latest == ["meta_data.json", "user_data", "password", "vendor_data.json",
                      "network_data.json", "vendor_data2.json"]
    assert ok(md(cloud, "/openstack/latest", guest.uuid)).text.split("\n") == latest
    assert ok(md(cloud, "/openstack/2012-08-10", guest.uuid)).text.split("\n") == [
        "meta_data.json", "user_data"]
    assert ok(md(cloud, "/openstack/2015-10-15", guest.uuid)).text.split("\n") == [
        "meta_data.json", "user_data", "password", "vendor_data.json", "network_data.json"]
    other = add_instance(cloud, key=False, user_data=None)
    assert "user_data" not in ok(md(cloud, "/openstack/latest", other)).text.split("\n")


def test_meta_data_json(cloud, guest):
    doc = ok(md(cloud, "/openstack/latest/meta_data.json", guest.uuid), "application/json").json()
    assert set(doc) == {"uuid", "meta", "public_keys", "keys", "hostname", "name",
                        "launch_index", "availability_zone", "random_seed", "project_id",
                        "devices", "dedicated_cpus"}
    assert doc["uuid"] == guest.uuid
    assert doc["name"] == "vm-one" and doc["hostname"] == "vm-one"
    assert doc["meta"] == {"role": "web", "tier": "1"}
    assert doc["public_keys"] == {"mykey": SSH_KEY}
    assert doc["keys"] == [{"name": "mykey", "type": "ssh", "data": SSH_KEY}]
    assert doc["launch_index"] == 0 and doc["availability_zone"] == "nova"
    assert doc["project_id"] == guest.project_id
    assert doc["devices"] == [] and doc["dedicated_cpus"] == []
    assert len(base64.b64decode(doc["random_seed"])) == 512
    again = md(cloud, "/openstack/2020-10-14/meta_data.json", guest.uuid).json()
    assert again["random_seed"] != doc["random_seed"]
    # which keys exist depends on the version, as in Nova
    old = md(cloud, "/openstack/2012-08-10/meta_data.json", guest.uuid).json()
    assert not {"random_seed", "project_id", "devices", "dedicated_cpus"} & set(old)
    grizzly = md(cloud, "/openstack/2013-04-04/meta_data.json", guest.uuid).json()
    assert "random_seed" in grizzly and "project_id" not in grizzly
    liberty = md(cloud, "/openstack/2015-10-15/meta_data.json", guest.uuid).json()
    assert "project_id" in liberty and "devices" not in liberty
    rocky = md(cloud, "/openstack/2018-08-27/meta_data.json", guest.uuid).json()
    assert rocky["devices"] == [] and "dedicated_cpus" not in rocky


def test_user_data_and_vendor_data(cloud, guest):
    r = ok(md(cloud, "/openstack/latest/user_data", guest.uuid))
    assert r.content == USER_DATA
    assert ok(md(cloud, "/openstack/2012-08-10/user_data", guest.uuid)).content == USER_DATA
    assert ok(md(cloud, "/openstack/latest/vendor_data.json", guest.uuid),
              "application/json").json() == {}
    assert ok(md(cloud, "/openstack/latest/vendor_data2.json", guest.uuid),
              "application/json").json() == {"static": {}}
    assert ok(md(cloud, "/openstack/latest/password", guest.uuid)).content == b""
    bare = add_instance(cloud, key=False, user_data=None)
    assert md(cloud, "/openstack/latest/user_data", bare).status_code == 404
    assert md(cloud, "/latest/user-data", bare).status_code == 404


def test_network_data_json(cloud, guest):
    doc = ok(md(cloud, "/openstack/latest/network_data.json", guest.uuid),
             "application/json").json()
    p = guest.port
    v6_ip = next(a["ip_address"] for a in p["fixed_ips"] if a["subnet_id"] == guest.v6["id"])
    assert doc["links"] == [{
        "id": f"tap{p['id'][:11]}", "vif_id": p["id"], "type": "phy",
        "mtu": guest.net["mtu"], "ethernet_mac_address": p["mac_address"]}]
    v4, v6 = doc["networks"]
    # a DHCP subnet: Nova's short form
    assert v4 == {"id": "network0", "type": "ipv4_dhcp", "link": f"tap{p['id'][:11]}",
                  "network_id": guest.net["id"]}
    assert v6 == {
        "id": "network1", "type": "ipv6_slaac", "link": f"tap{p['id'][:11]}",
        "ip_address": v6_ip, "netmask": "ffff:ffff:ffff:ffff::",
        "routes": [{"network": "::", "netmask": "::", "gateway": guest.v6["gateway_ip"]}],
        "network_id": guest.net["id"], "services": []}
    assert doc["services"] == [{"type": "dns", "address": "10.20.0.53"}]


def test_network_data_static_ipv4_and_dhcp_server(cloud):
    net = network(cloud, name="static")
    sub = subnet(cloud, net["id"], "10.30.0.0/24", enable_dhcp=False,
                 dns_nameservers=["9.9.9.9"],
                 host_routes=[{"destination": "172.16.0.0/12", "nexthop": "10.30.0.2"}])
    instance_id = str(uuid.uuid4())
    p = port(cloud, net["id"], device_id=instance_id, device_owner="compute:nova",
             fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.30.0.7"}])
    add_instance(cloud, uuid_=instance_id, ports=[p["id"]])
    doc = md(cloud, "/openstack/latest/network_data.json", instance_id).json()
    assert doc["networks"] == [{
        "id": "network0", "type": "ipv4", "link": f"tap{p['id'][:11]}",
        "ip_address": "10.30.0.7", "netmask": "255.255.255.0",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.30.0.1"},
                   {"network": "172.16.0.0", "netmask": "255.240.0.0",
                    "gateway": "10.30.0.2"}],
        "network_id": net["id"], "services": [{"type": "dns", "address": "9.9.9.9"}]}]
    assert doc["links"][0]["mtu"] == net["mtu"]

    # with a DHCP port on the subnet the MTU is left to DHCP (Nova's rule); a bound port's
    # VIF type shows as such
    net2 = network(cloud, name="dhcp")
    sub2 = subnet(cloud, net2["id"], "10.40.0.0/24")
    port(cloud, net2["id"], device_id="dhcp-x", device_owner="network:dhcp",
         fixed_ips=[{"subnet_id": sub2["id"], "ip_address": "10.40.0.2"}])
    second = str(uuid.uuid4())
    p2 = port(cloud, net2["id"], device_id=second, device_owner="compute:nova",
              **{"binding:host_id": "host-1"})
    add_instance(cloud, uuid_=second, ports=[p2["id"]])
    link = md(cloud, "/openstack/latest/network_data.json", second).json()["links"][0]
    assert link["mtu"] is None and link["type"] == "bridge"


def test_network_data_without_ports(cloud):
    bare = add_instance(cloud)
    assert md(cloud, "/openstack/latest/network_data.json", bare).json() == {}


# -- the EC2 tree ----------------------------------------------------------------------


def test_ec2_tree(cloud, guest):
    root = ok(md(cloud, "/", guest.uuid)).text.split("\n")
    assert root[0] == "1.0" and root[-2:] == ["2009-04-04", "latest"]
    assert ok(md(cloud, "", guest.uuid)).text.split("\n") == root
    assert ok(md(cloud, "/latest", guest.uuid)).text.split("\n") == ["meta-data/", "user-data"]
    names = ok(md(cloud, "/latest/meta-data/", guest.uuid)).text.split("\n")
    assert names == sorted(names)
    for name in ("ami-id", "ami-launch-index", "hostname", "instance-id", "instance-type",
                 "local-hostname", "local-ipv4", "public-ipv4", "placement/",
                 "public-keys/", "reservation-id", "security-groups",
                 "block-device-mapping/", "instance-action"):
        assert name in names, name

    def get(path: str) -> str:
        return ok(md(cloud, f"/latest/meta-data/{path}", guest.uuid)).text

    assert get("hostname") == get("local-hostname") == "vm-one"
    assert get("instance-id") == f"i-{guest.uuid[:8]}"
    assert get("ami-id") == "ami-1d2e3f40"
    assert get("ami-launch-index") == "0"
    assert get("instance-type") == "m1.tiny"
    assert get("local-ipv4") == "10.20.0.10"
    assert get("public-ipv4") == ""
    assert get("placement/") == "availability-zone"
    assert get("placement/availability-zone") == "nova"
    assert get("public-keys/") == "0=mykey"
    assert get("public-keys/0/") == "openssh-key"
    assert get("public-keys/0/openssh-key") == SSH_KEY
    assert get("reservation-id") == "r-abcdef12"
    assert get("security-groups") == "default"
    assert get("block-device-mapping/") == "ami\nroot"
    assert get("block-device-mapping/ami") == "vda"
    assert ok(md(cloud, "/latest/user-data", guest.uuid)).content == USER_DATA
    # dated versions, and the /ec2 prefix Nova also accepts
    assert ok(md(cloud, "/2009-04-04/meta-data/hostname", guest.uuid)).text == "vm-one"
    assert ok(md(cloud, "/ec2/latest/meta-data/hostname", guest.uuid)).text == "vm-one"
    old = ok(md(cloud, "/1.0/meta-data/", guest.uuid)).text.split("\n")
    assert "local-hostname" not in old and "placement/" not in old and "hostname" in old
    # without a key pair there is no public-keys
    bare = add_instance(cloud, key=False)
    assert "public-keys/" not in md(cloud, "/latest/meta-data/", bare).text.split("\n")
    assert md(cloud, "/latest/meta-data/public-keys/", bare).status_code == 404


def test_ec2_public_ipv4_from_floating_ip(cloud):
    ext = network(cloud, name="ext", **{"router:external": True})
    subnet(cloud, ext["id"], "198.51.100.0/24")
    net = network(cloud, name="inner")
    sub = subnet(cloud, net["id"], "10.50.0.0/24")
    router = cloud.request("POST", "/network/v2.0/routers", json={"router": {
        "name": "r", "external_gateway_info": {"network_id": ext["id"]}}})
    assert router.status_code == 201, router.text
    r = cloud.request("PUT", f"/network/v2.0/routers/{router.json()['router']['id']}"
                      "/add_router_interface", json={"subnet_id": sub["id"]})
    assert r.status_code == 200, r.text
    instance_id = str(uuid.uuid4())
    p = port(cloud, net["id"], device_id=instance_id, device_owner="compute:nova")
    add_instance(cloud, uuid_=instance_id, ports=[p["id"]])
    fip = cloud.request("POST", "/network/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"], "port_id": p["id"]}})
    assert fip.status_code == 201, fip.text
    address = fip.json()["floatingip"]["floating_ip_address"]
    assert md(cloud, "/latest/meta-data/public-ipv4", instance_id).text == address


# -- the service -----------------------------------------------------------------------


def test_instance_for_address(cloud, guest):
    meta = cloud.services.compute.metadata
    v6_ip = next(a["ip_address"] for a in guest.port["fixed_ips"]
                 if a["subnet_id"] == guest.v6["id"])
    assert meta.instance_for_address(guest.net["id"], "10.20.0.10") == (
        guest.uuid, guest.project_id)
    assert meta.instance_for_address(guest.net["id"], "::ffff:10.20.0.10") == (
        guest.uuid, guest.project_id)
    assert meta.instance_for_address(guest.net["id"], v6_ip.upper()) == (
        guest.uuid, guest.project_id)
    assert meta.instance_for_address(guest.net["id"], "10.20.0.11") is None
    assert meta.instance_for_address("other-net", "10.20.0.10") is None
    assert meta.instance_for_address(guest.net["id"], "garbage") is None
    assert meta.instance_for_address("", "") is None
    # a port that is not a compute port does not count
    port(cloud, guest.net["id"], device_id=guest.uuid, device_owner="network:dhcp",
         fixed_ips=[{"subnet_id": guest.v4["id"], "ip_address": "10.20.0.20"}])
    assert meta.instance_for_address(guest.net["id"], "10.20.0.20") is None
    # a deleted instance is not found
    with cloud.services.db.session() as session:
        session.get(Instance, guest.uuid).deleted = True
    assert meta.instance_for_address(guest.net["id"], "10.20.0.10") is None


def test_secret_is_kept(cloud):
    meta = cloud.services.compute.metadata
    secret = meta.secret()
    assert isinstance(secret, bytes) and len(secret) == 32
    path = cloud.config.state_dir / "metadata-secret"
    assert path.read_bytes() == secret
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # a new service object (a restart) reads the same secret
    assert MetadataService(cloud.services.compute).secret() == secret
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".metadata-secret-")]


def test_documents_object(cloud, guest):
    docs = cloud.services.compute.metadata.documents(guest.uuid, "10.20.0.10")
    assert docs is not None and docs.uuid == guest.uuid
    assert docs.lookup("/openstack/latest/meta_data.json").content_type == "application/json"
    assert json.loads(docs.lookup("openstack/latest/network_data.json").body)["links"]
    assert docs.lookup("/nope") is None
    assert cloud.services.compute.metadata.documents(str(uuid.uuid4())) is None


def test_through_the_proxy(cloud, guest):
    """The real app on a real port behind the proxy: the proxy's signature is accepted,
    and the guest (127.0.0.1 here) gets its own documents."""
    app_sock = socket.socket()
    app_sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(cloud.client.app, lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [app_sock]}, daemon=True)
    thread.start()
    meta = cloud.services.compute.metadata
    lookups = []

    def lookup(network_id: str, ip: str):
        lookups.append((network_id, ip))
        return (guest.uuid, guest.project_id) if ip == "127.0.0.1" else None

    proxy = MetadataProxy(f"http://127.0.0.1:{app_sock.getsockname()[1]}", meta.secret(),
                          lookup)
    guest_sock = socket.socket()
    guest_sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{guest_sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        proxy.serve(guest.net["id"], guest_sock)
        with urllib.request.urlopen(f"{base}/openstack/latest/meta_data.json") as r:
            assert r.headers["Content-Type"] == "application/json"
            doc = json.loads(r.read())
        assert doc["uuid"] == guest.uuid and doc["public_keys"] == {"mykey": SSH_KEY}
        with urllib.request.urlopen(f"{base}/latest/meta-data/local-ipv4") as r:
            assert r.read() == b"10.20.0.10"
        with urllib.request.urlopen(f"{base}/openstack/latest/user_data") as r:
            assert r.read() == USER_DATA
        assert lookups[0] == (guest.net["id"], "127.0.0.1")
    finally:
        proxy.close()
        server.should_exit = True
        thread.join(10)
