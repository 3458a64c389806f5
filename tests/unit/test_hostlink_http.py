"""The HTTP transport's pieces without a network: every call's arguments and answer
through JSON and back, and the host credential store."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from onestack.hostlink.credentials import (
    CredentialError,
    CredentialStore,
    digest,
    host_authorization,
    parse_host_authorization,
    read_secret,
    server_key,
)
from onestack.hostlink.http import (
    call_path,
    decode_args,
    decode_result,
    encode_args,
    encode_result,
    json_calls,
)
from onestack.hostlink.interfaces import HostToServer
from onestack.hostlink.types import (
    DesiredInstance,
    DhcpHost,
    HostReport,
    HostState,
    ImageDisk,
    ImageRef,
    NetworkSpec,
    PortInfo,
    RbdDisk,
    SubnetSpec,
)


def through_json(value: object) -> object:
    return json.loads(json.dumps(value))


def state() -> HostState:
    image = ImageRef(id="i1", disk_format="qcow2", size=10, hash_algo="sha512",
                     hash_value="ab")
    instance = DesiredInstance(
        uuid="u1", name="vm", hostname="vm", vm_state="building", task_state="spawning",
        task_args={"reboot_type": "HARD"}, power_state=0, vcpus=1, memory_mb=64,
        root_gb=1, disks=[ImageDisk(image=image, size_gb=1),
                          RbdDisk(pool="vms", name="u1_disk", size_gb=1)],
        ports=[PortInfo(id="p1", network_id="n1", mac="fa:16:3e:00:00:01", mtu=1450,
                        ips=["10.0.0.5"])],
        new_flavor={"vcpus": 2, "ram": 128})
    network = NetworkSpec(id="n1", mtu=1450, subnets=[SubnetSpec(
        id="s1", cidr="10.0.0.0/24", ip_version=4, gateway_ip=None, enable_dhcp=True)],
        hosts=[DhcpHost(port_id="p1", mac="fa:16:3e:00:00:01", ips=["10.0.0.5"])])
    return HostState(host="h1", instances=[instance], networks=[network])


def test_every_json_call_has_a_route_name() -> None:
    calls = json_calls(HostToServer)
    assert "desired_state" in calls and "open_image" not in calls
    assert call_path("desired_state") == "/desired-state"


def test_answers_keep_their_types() -> None:
    original = state()
    body = through_json(encode_result(HostToServer, "desired_state", original))
    assert decode_result(HostToServer, "desired_state", body) == original
    files = {"openstack/latest/meta_data.json": b"\x00\xff{}"}
    body = through_json(encode_result(HostToServer, "config_drive_files", files))
    assert decode_result(HostToServer, "config_drive_files", body) == files
    body = through_json(encode_result(HostToServer, "instance_for_address", ("u1", "p")))
    assert decode_result(HostToServer, "instance_for_address", body) == ("u1", "p")
    body = through_json(encode_result(HostToServer, "instance_for_address", None))
    assert decode_result(HostToServer, "instance_for_address", body) is None
    assert decode_result(HostToServer, "start_event", {"result": None}) is None


def test_arguments_keep_their_types() -> None:
    report = HostReport(host="h1", hypervisor_hostname="h1", hypervisor_type="QEMU",
                        hypervisor_version=7002000, accel="tcg", vcpus=4, memory_mb=1024,
                        local_gb=10, local_gb_used=1, capabilities={"pause": True})
    body = through_json(encode_args(HostToServer, "register", (report,), {}))
    assert decode_args(HostToServer, "register", body) == {"report": report}
    # **changes of finish_task travel as plain JSON values
    body = through_json(encode_args(HostToServer, "finish_task", ("u1", "spawning"), {
        "event": "", "vm_state": "active", "flavor": {"vcpus": 1}}))
    assert decode_args(HostToServer, "finish_task", body) == {
        "uuid": "u1", "expected_task_state": "spawning", "event": "",
        "vm_state": "active", "flavor": {"vcpus": 1}}


def test_arguments_a_call_does_not_take_are_refused() -> None:
    with pytest.raises(ValueError):
        decode_args(HostToServer, "instance_deleted", {"uuid": "u1", "host": "h2"})
    with pytest.raises(ValueError):
        decode_args(HostToServer, "instance_deleted", ["u1"])


def test_credentials_keep_only_a_digest(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    secret = store.create("compute-2")
    path = tmp_path / "host-credentials" / "compute-2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret not in path.read_text() and path.read_text().strip() == digest(secret)
    assert store.verify("compute-2", secret)
    assert not store.verify("compute-2", secret + "x")
    assert not store.verify("compute-3", secret)
    assert store.hosts() == ["compute-2"]
    newer = store.create("compute-2")   # rotation: the old one stops working
    assert store.verify("compute-2", newer) and not store.verify("compute-2", secret)
    assert store.delete("compute-2") and not store.verify("compute-2", newer)
    for bad in ("../etc", ".hidden", "a/b", ""):
        with pytest.raises(CredentialError):
            store.create(bad)


def test_authorization_headers(tmp_path: Path) -> None:
    assert parse_host_authorization(host_authorization("h1", "s:e")) == ("h1", "s:e")
    assert parse_host_authorization(host_authorization("h1", "sec")) == ("h1", "sec")
    for value in (None, "", "Bearer x", "OneStack-Host h1", "OneStack-Host :x",
                  "OneStack-Host ../x:y"):
        assert parse_host_authorization(value) is None
    # both sides derive the server's key: the agent from its secret, the server from the
    # digest it keeps
    assert server_key(digest("sec")) != digest("sec")
    cred = tmp_path / "cred"
    cred.write_text("sec\n")
    assert read_secret(cred) == "sec"
    cred.write_text("two words\n")
    with pytest.raises(CredentialError):
        read_secret(cred)
