"""The agent's rescue tasks with the fake drivers: the rescue disk is made and removed,
a failed rescue leaves the guest as it was, a restarted host boots a rescued guest from
its rescue disk again."""

from __future__ import annotations

import hashlib
from pathlib import Path

from onestack.agent.reconciler import Agent, rescue_disk_name
from onestack.drivers.hypervisor.base import PowerState
from onestack.drivers.hypervisor.fake import FakeDriver
from onestack.drivers.storage.fake import write_empty_qcow2
from onestack.hostlink.types import DesiredInstance
from tests.unit.test_agent import Control, instance, make_agent

UUID = "cccccccc-0000-0000-0000-000000000000"


def rescue_args(data: bytes, image_id: str = "rescue-img", fmt: str = "qcow2") -> dict:
    return {"rescue_image": {"id": image_id, "disk_format": fmt, "size": len(data),
                             "hash_algo": "sha512",
                             "hash_value": hashlib.sha512(data).hexdigest()}}


def ask(d: DesiredInstance, task: str, args: dict | None = None) -> None:
    """Set a task as the API side does (a function: no narrowing of the fields)."""
    d.task_state, d.task_args = task, dict(args or {})


def fake(agent: Agent) -> FakeDriver:
    assert isinstance(agent.hypervisor, FakeDriver)
    return agent.hypervisor


def booted(tmp_path: Path) -> tuple[Control, Agent, bytes]:
    path = tmp_path / "img.qcow2"
    write_empty_qcow2(path, 1 << 30)
    image = path.read_bytes()
    control = Control(image)
    d = instance(image, UUID)
    control.instances[UUID] = d
    agent = make_agent(tmp_path, control)
    agent.run_once(wait=True)
    assert d.vm_state == "active"
    return control, agent, image


def test_rescue_then_unrescue(tmp_path: Path) -> None:
    control, agent, image = booted(tmp_path)
    d = control.instances[UUID]
    ask(d, "rescuing", rescue_args(image))
    agent.run_once(wait=True)
    assert (d.vm_state, d.task_state, d.power_state) == ("rescued", None, 1)
    rescue = agent.storage.disk(rescue_disk_name(UUID))
    assert rescue is not None
    assert fake(agent).rescued(UUID) == f"file:{rescue.path}"
    ask(d, "unrescuing")
    agent.run_once(wait=True)
    assert (d.vm_state, d.task_state) == ("active", None)
    assert fake(agent).rescued(UUID) is None
    assert rescue_disk_name(UUID) not in agent.storage.list_disks()


def test_failed_rescue_leaves_the_guest_running_its_own_disk(tmp_path: Path) -> None:
    control, agent, image = booted(tmp_path)
    d = control.instances[UUID]
    guest = fake(agent)._get(UUID)
    assert guest is not None
    boots = guest["boots"]
    ask(d, "rescuing", rescue_args(b"not this", fmt="qcow2"))  # not what the image holds
    agent.run_once(wait=True)
    assert (d.vm_state, d.task_state) == ("active", None)
    assert "rescue-img" in control.faults[UUID]  # the rescue image's data was refused
    assert agent.hypervisor.power_state(UUID) == PowerState.RUNNING
    assert fake(agent).rescued(UUID) is None
    guest = fake(agent)._get(UUID)
    assert guest is not None and guest["boots"] == boots + 1
    assert agent.storage.list_disks() == [UUID]


def test_restarted_host_boots_a_rescued_guest_from_its_rescue_disk(tmp_path: Path) -> None:
    control, agent, image = booted(tmp_path)
    d = control.instances[UUID]
    ask(d, "rescuing", rescue_args(image))
    agent.run_once(wait=True)
    assert d.vm_state == "rescued"
    agent.hypervisor.power_off(UUID, 0)  # the host "reboots"
    second = make_agent(tmp_path, control)
    second.run_once(wait=True)
    rescue = second.storage.disk(rescue_disk_name(UUID))
    assert rescue is not None
    assert second.hypervisor.power_state(UUID) == PowerState.RUNNING
    assert fake(second).rescued(UUID) == f"file:{rescue.path}"
    assert d.vm_state == "rescued" and d.power_state == 1
    # deleting the rescued server removes both disks
    ask(d, "deleting")
    second.run_once(wait=True)
    assert second.storage.list_disks() == [] and second.hypervisor.list_guests() == {}
