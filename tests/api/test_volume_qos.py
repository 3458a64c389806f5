"""Block Storage QoS specs made real: a ``front-end`` (or ``both``) spec on a volume's
type reaches the host in the attachment's connection info and the (fake) hypervisor
throttles the disk to it, on hot-plug and when the guest starts with the volume;
``back-end`` specs do not reach the host; values a host could not apply are a 400."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.compute_helpers import BootEnv, action, boot_env, nova, ok, wait_for
from tests.api.test_compute_volume_attachments import active_server, attach, until
from tests.api.volume_helpers import VolumeClient, fault


@pytest.fixture
def env(cloud) -> BootEnv:
    return boot_env(cloud)


@pytest.fixture
def volumes(cloud) -> VolumeClient:
    return VolumeClient(cloud)


def qos_type(volumes: VolumeClient, name: str, consumer: str, **specs: str
             ) -> dict[str, Any]:
    """A volume type associated with a new QoS spec; (type, qos)."""
    vt = volumes.ok("POST", "/types", json={"volume_type": {"name": name}})["volume_type"]
    qos = volumes.ok("POST", "/qos-specs", json={"qos_specs": {
        "name": f"{name}-qos", "consumer": consumer, **specs}})["qos_specs"]
    volumes.ok("GET", f"/qos-specs/{qos['id']}/associate?vol_type_id={vt['id']}",
               status=202)
    return {"type": vt, "qos": qos}


def limits(cloud, server_id: str) -> dict[str, dict[str, int]]:
    return cloud.services.agent.hypervisor.volume_io_limits(server_id)


def test_values_a_host_cannot_apply_are_400(volumes: VolumeClient) -> None:
    for specs, words in [
        ({"write_bytes_sec": "-524288"}, ("write_bytes_sec must be an integer",)),
        ({"total_iops_sec": "1.5"}, ("total_iops_sec must be an integer",)),
        ({"read_bytes_sec": "fast"}, ("read_bytes_sec",)),
        ({"total_bytes_sec": "100", "write_bytes_sec": "50"},
         ("total_bytes_sec cannot be used with write_bytes_sec",)),
        ({"write_iops_sec_max": "10"}, ("write_iops_sec_max needs write_iops_sec",)),
    ]:
        r = volumes.request("POST", "/qos-specs", json={"qos_specs": {
            "name": "bad", "consumer": "front-end", **specs}})
        fault(r, 400, "badRequest", "Invalid QoS specification detected", *words)
    # an integer that is not a string is the usual schema 400
    fault(volumes.request("POST", "/qos-specs", json={"qos_specs": {
        "name": "bad", "write_bytes_sec": 5}}), 400, "badRequest", "'string'")
    assert volumes.ok("GET", "/qos-specs")["qos_specs"] == []

    qos = volumes.ok("POST", "/qos-specs", json={"qos_specs": {
        "name": "good", "consumer": "back-end", "write_bytes_sec": "1000",
        "vendor:tier": "gold"}})["qos_specs"]
    assert qos["specs"] == {"write_bytes_sec": "1000", "vendor:tier": "gold"}
    path = f"/qos-specs/{qos['id']}"
    fault(volumes.request("PUT", path, json={"qos_specs": {"write_bytes_sec": "-1"}}),
          400, "badRequest", "write_bytes_sec must be an integer")
    # the whole spec must stay valid: a total beside the stored write limit
    fault(volumes.request("PUT", path, json={"qos_specs": {"total_bytes_sec": "9"}}),
          400, "badRequest", "total_bytes_sec cannot be used with write_bytes_sec")
    fault(volumes.request("PUT", path, json={"qos_specs": {"consumer": "nobody"}}),
          400, "badRequest", "consumer")
    # an update may change the consumer (Cinder's), and it is not a spec key
    assert volumes.ok("PUT", path, json={"qos_specs": {
        "consumer": "front-end", "write_bytes_sec_max": "2000"}}) == {"qos_specs": {
            "consumer": "front-end", "write_bytes_sec_max": "2000"}}
    shown = volumes.ok("GET", path)["qos_specs"]
    assert shown["consumer"] == "front-end"
    assert shown["specs"] == {"write_bytes_sec": "1000", "write_bytes_sec_max": "2000",
                              "vendor:tier": "gold"}


def test_front_end_limits_throttle_the_guest_disk(cloud, env: BootEnv,
                                                  volumes: VolumeClient) -> None:
    slow = qos_type(volumes, "slow", "front-end", write_bytes_sec="524288",
                    total_iops_sec="200", total_iops_sec_max="400",
                    **{"vendor:ignored": "x"})
    both = qos_type(volumes, "both", "both", read_bytes_sec="1048576")
    backend = qos_type(volumes, "backend", "back-end", total_bytes_sec="1000")
    vols = {name: volumes.create(volume_type=name)["id"]
            for name in ("slow", "both", "backend")}
    sid = active_server(cloud, env)
    for volume_id in vols.values():
        ok(attach(cloud, sid, volume_id))
    for volume_id in vols.values():
        volumes.wait(volume_id, "in-use")
    until(lambda: set(vols.values()) <= set(limits(cloud, sid)),
          "the guest to have the volumes")
    expected = {vols["slow"]: {"write_bytes_sec": 524288, "total_iops_sec": 200,
                               "total_iops_sec_max": 400},
                vols["both"]: {"read_bytes_sec": 1048576},
                vols["backend"]: {}}
    assert limits(cloud, sid) == expected
    # the attachment's connection info carries them (Cinder's shape), a back-end
    # spec's not at all
    atts = {v: volumes.show(v)["attachments"][0]["attachment_id"] for v in vols.values()}
    info = volumes.ok("GET", f"/attachments/{atts[vols['slow']]}", version="3.27")[
        "attachment"]["connection_info"]
    assert info["data"]["qos_specs"] == {"write_bytes_sec": "524288",
                                         "total_iops_sec": "200",
                                         "total_iops_sec_max": "400",
                                         "vendor:ignored": "x"}
    info = volumes.ok("GET", f"/attachments/{atts[vols['backend']]}", version="3.27")[
        "attachment"]["connection_info"]
    assert info["data"]["qos_specs"] is None
    console = cloud.services.agent.hypervisor.console_log(sid)
    assert (f"virtio-blk {vols['slow'][:20]} attached throttled total_iops_sec=200,"
            "total_iops_sec_max=400,write_bytes_sec=524288") in console

    # a restart: the guest starts with the volumes on its command line, still limited
    ok(action(cloud, sid, {"os-stop": None}), 202)
    wait_for(cloud, sid, "SHUTOFF")
    ok(action(cloud, sid, {"os-start": None}), 202)
    wait_for(cloud, sid, "ACTIVE")
    until(lambda: set(vols.values()) <= set(limits(cloud, sid)), "the started guest")
    assert limits(cloud, sid) == expected

    # detach: the throttled disk goes
    r = nova(cloud, "DELETE", f"/servers/{sid}/os-volume_attachments/{vols['slow']}")
    assert r.status_code == 202, r.text
    volumes.wait(vols["slow"], "available")
    assert limits(cloud, sid) == {v: lim for v, lim in expected.items()
                                  if v != vols["slow"]}
    assert slow["qos"]["consumer"] == "front-end" and both["qos"]["consumer"] == "both"
    assert backend["qos"]["specs"] == {"total_bytes_sec": "1000"}


def test_capacity_based_keys_become_rates(volumes: VolumeClient) -> None:
    """Cinder's ``*_per_gb`` keys: times the volume's size, at least ``*_per_gb_min``,
    in the connection info the host gets."""
    qos_type(volumes, "per-gb", "front-end", total_iops_sec_per_gb="30",
             write_bytes_sec_per_gb="1000", write_bytes_sec_per_gb_min="5000")
    vol = volumes.create(size=3, volume_type="per-gb")
    att = volumes.ok("POST", "/attachments", version="3.54", json={"attachment": {
        "volume_uuid": vol["id"], "connector": {"host": "h1", "mode": "rw"}}})[
        "attachment"]
    assert att["connection_info"]["data"]["qos_specs"] == {
        "total_iops_sec": "90", "write_bytes_sec": "5000"}
