"""Front-end QoS specs: from a volume's connection info to the agent's ``GuestDisk`` to
QEMU's throttle group and throttle node (docs/volume.md, "QoS")."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from onestack.agent.volumes import guest_disk
from onestack.common.errors import BadRequest
from onestack.drivers.hypervisor.base import GuestDisk, GuestSpec
from onestack.drivers.hypervisor.qemu import (
    QemuDriver,
    _throttle_group,
    _volume_blockdev,
    spec_from_json,
    spec_to_json,
)
from onestack.hostlink.types import front_end_limits
from onestack.services.volume.types import check_qos_values

VOLUME = "0b6c1b2e-7d51-4f4e-9a57-3c2f1d9e8a10"


def connection(qos: dict | None, path: str = "/v/volume.raw") -> dict:
    return {"driver_volume_type": "local",
            "data": {"path": path, "format": "raw", "access_mode": "rw", "qos_specs": qos}}


def test_front_end_limits_keep_the_known_positive_integers() -> None:
    assert front_end_limits(connection(None)) == {}
    assert front_end_limits({}) == {}
    qos = {"write_bytes_sec": "524288", "total_iops_sec": 200, "read_iops_sec_max": "0",
           "size_iops_sec": " 4096 ", "vendor:thing": "7", "read_bytes_sec": "-1",
           "write_iops_sec": "1.5", "read_iops_sec": True}
    assert front_end_limits(connection(qos)) == {
        "write_bytes_sec": 524288, "total_iops_sec": 200, "size_iops_sec": 4096}


def test_the_agent_gives_the_disk_its_limits() -> None:
    disk = guest_disk(VOLUME, connection({"write_bytes_sec": "524288"}))
    assert disk.io_limits == {"write_bytes_sec": 524288}
    assert disk.kind == "file" and disk.volume_id == VOLUME
    rbd = guest_disk(VOLUME, {"driver_volume_type": "rbd", "data": {
        "name": "volumes/volume-x", "qos_specs": {"total_iops_sec": "100"}}})
    assert rbd.io_limits == {"total_iops_sec": 100}
    assert guest_disk(VOLUME, connection(None)).io_limits == {}


@pytest.mark.parametrize(("specs", "fragment"), [
    ({"write_bytes_sec": "-1"}, "write_bytes_sec must be an integer"),
    ({"total_iops_sec": "1.5"}, "total_iops_sec must be an integer"),
    ({"read_iops_sec": "many"}, "read_iops_sec must be an integer"),
    ({"size_iops_sec": ""}, "size_iops_sec must be an integer"),
    ({"total_bytes_sec": str(10 ** 15 + 1)}, "total_bytes_sec must be an integer"),
    ({"total_bytes_sec": "1", "read_bytes_sec": "1"},
     "total_bytes_sec cannot be used with read_bytes_sec"),
    ({"total_iops_sec_max": "9", "write_iops_sec_max": "9", "total_iops_sec": "1",
      "write_iops_sec": "0"}, "total_iops_sec_max cannot be used with write_iops_sec_max"),
    ({"write_bytes_sec_max": "100"}, "write_bytes_sec_max needs write_bytes_sec"),
    ({"read_iops_sec": "100", "read_iops_sec_max": "50"},
     r"read_iops_sec_max \(50\) cannot be lower than read_iops_sec \(100\)"),
    ({"total_iops_sec_per_gb": "x"}, "total_iops_sec_per_gb must be an integer"),
    ({"write_bytes_sec_per_gb_min": "-3"}, "write_bytes_sec_per_gb_min must be an integer"),
    ({"total_iops_sec_per_gb": "10", "read_iops_sec": "5"},
     "total_iops_sec cannot be used with read_iops_sec"),
])
def test_values_a_host_cannot_apply_are_refused(specs: dict, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        check_qos_values(specs)


def test_valid_values_pass() -> None:
    check_qos_values({"total_bytes_sec": "0", "read_bytes_sec": "1000",
                      "write_bytes_sec": "2000", "write_bytes_sec_max": "4000",
                      "total_iops_sec": "100", "total_iops_sec_max": "100",
                      "size_iops_sec": "4096", "vendor:anything": "fast"})
    check_qos_values({"total_iops_sec_per_gb": "30", "total_iops_sec_per_gb_min": "100",
                      "total_iops_sec_max": "500"})


def test_a_throttled_volume_sits_under_a_throttle_node() -> None:
    plain = GuestDisk(kind="file", source="/v/a.raw", format="raw", boot_index=None,
                      volume_id=VOLUME)
    assert _throttle_group(plain) is None
    top, blockdev = _volume_blockdev(plain)
    assert top == "vol0b6c1b2e7d514f4e9a573c2f1d9e" and blockdev["driver"] == "raw"

    limited = GuestDisk(kind="file", source="/v/a.raw", format="raw", boot_index=None,
                        volume_id=VOLUME, read_only=True,
                        io_limits={"write_bytes_sec": 524288, "total_iops_sec": 100,
                                   "total_iops_sec_max": 200, "size_iops_sec": 4096})
    group = _throttle_group(limited)
    assert group == {"qom-type": "throttle-group",
                     "id": "qos0b6c1b2e7d514f4e9a573c2f1d9e8a10",
                     "limits": {"bps-write": 524288, "iops-total": 100,
                                "iops-total-max": 200, "iops-size": 4096}}
    top, blockdev = _volume_blockdev(limited)
    assert top == "thr0b6c1b2e7d514f4e9a573c2f1d9e" and len(top) <= 31
    assert blockdev["driver"] == "throttle" and blockdev["read-only"] is True
    assert blockdev["throttle-group"] == group["id"]
    assert blockdev["file"]["node-name"] == "vol0b6c1b2e7d514f4e9a573c2f1d9e"
    assert blockdev["file"]["file"] == {"driver": "file", "filename": "/v/a.raw"}


def spec_with(tmp_path: Path, limits: dict[str, int]) -> tuple[GuestSpec, Path]:
    boot = tmp_path / "boot.qcow2"
    boot.write_bytes(b"")
    vol = tmp_path / "vol.raw"
    vol.write_bytes(b"\0" * (1 << 20))
    return GuestSpec(uuid="u1", name="vm", vcpus=1, memory_mib=128, disks=[
        GuestDisk.file(boot),
        GuestDisk(kind="file", source=str(vol), format="raw", boot_index=None,
                  volume_id=VOLUME, io_limits=limits)]), vol


def test_start_arguments_carry_the_group_and_the_throttle_node(tmp_path: Path) -> None:
    driver = QemuDriver(instances_dir=tmp_path / "instances", qemu_binary="/bin/true")
    spec, _ = spec_with(tmp_path, {"write_bytes_sec": 524288})
    args = driver._volume_args(spec)
    objects = [json.loads(args[i + 1]) for i, a in enumerate(args) if a == "-object"]
    assert objects == [{"qom-type": "throttle-group",
                        "id": "qos0b6c1b2e7d514f4e9a573c2f1d9e8a10",
                        "limits": {"bps-write": 524288}}]
    blockdevs = [json.loads(args[i + 1]) for i, a in enumerate(args) if a == "-blockdev"]
    assert [b["driver"] for b in blockdevs] == ["throttle"]
    device = next(args[i + 1] for i, a in enumerate(args)
                  if a == "-device" and args[i + 1].startswith("virtio-blk"))
    assert f"drive={blockdevs[0]['node-name']}," in device
    # the limits survive the spec file (what a restart and a reboot use)
    assert spec_from_json(json.loads(json.dumps(spec_to_json(spec)))) == spec
    unlimited, _ = spec_with(tmp_path, {})
    args = driver._volume_args(unlimited)
    assert "-object" not in args
    assert "drive=vol0b6c1b2e7d514f4e9a573c2f1d9e," in " ".join(args)


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs QEMU")
def test_qemu_accepts_the_start_arguments(tmp_path: Path) -> None:
    """QEMU itself (no guest: ``-machine none``) opens the throttle group and node the
    arguments describe, and reports the limits."""
    driver = QemuDriver(instances_dir=tmp_path / "instances", qemu_binary="/bin/true")
    spec, _ = spec_with(tmp_path, {"write_bytes_sec": 524288, "read_iops_sec": 50})
    args = [a for a in driver._volume_args(spec)]
    # only the block layer: no devices without a machine
    keep: list[str] = []
    for i, a in enumerate(args):
        if a in ("-object", "-blockdev"):
            keep += [a, args[i + 1]]
    commands = "\n".join(json.dumps(c) for c in (
        {"execute": "qmp_capabilities"},
        {"execute": "qom-get", "arguments": {
            "path": "/objects/qos0b6c1b2e7d514f4e9a573c2f1d9e8a10", "property": "limits"}},
        {"execute": "query-named-block-nodes", "arguments": {"flat": True}},
        {"execute": "quit"})) + "\n"
    out = subprocess.run(["qemu-system-x86_64", "-machine", "none", "-nodefaults",
                          "-display", "none", *keep, "-qmp", "stdio"], input=commands,
                         capture_output=True, text=True, timeout=30)
    replies = [json.loads(line) for line in out.stdout.splitlines() if '"return"' in line]
    assert len(replies) == 4, out.stdout + out.stderr
    limits = replies[1]["return"]
    assert limits["bps-write"] == 524288 and limits["iops-read"] == 50
    assert limits["bps-total"] == 0
    nodes = {n["node-name"]: n["drv"] for n in replies[2]["return"]}
    assert nodes["thr0b6c1b2e7d514f4e9a573c2f1d9e"] == "throttle"
    assert nodes["vol0b6c1b2e7d514f4e9a573c2f1d9e"] == "raw"
