"""Nova's instance states and how the API shows them.

``vm_state`` is where an instance is (or should stay); ``task_state`` is the operation
pending on it (see docs/design/compute-states.md for who moves it). The API shows one
``status`` made of both, with Nova's table (``nova/api/openstack/common.py``).
"""

from __future__ import annotations

# The words themselves are the boundary's (server, agents and drivers share them).
from onestack.hostlink.states import (
    ACTIVE,
    BUILDING,
    CRASHED,
    DELETED,
    DELETING,
    ERROR,
    IMAGE_SNAPSHOT,
    MIGRATING,
    NOSTATE,
    PAUSED,
    PAUSING,
    POWER_PAUSED,
    POWER_SUSPENDED,
    POWERING_OFF,
    POWERING_ON,
    REBOOTING,
    REBOOTING_HARD,
    REBUILDING,
    RESCUED,
    RESCUING,
    RESIZE_FINISH,
    RESIZE_MIGRATED,
    RESIZE_MIGRATING,
    RESIZE_PREP,
    RESIZE_REVERTING,
    RESIZED,
    RESUMING,
    RUNNING,
    SCHEDULING,
    SHELVED,
    SHELVED_OFFLOADED,
    SHELVING,
    SHELVING_IMAGE_PENDING_UPLOAD,
    SHELVING_IMAGE_UPLOADING,
    SHELVING_OFFLOADING,
    SHUTDOWN,
    SOFT_DELETED,
    SPAWNING,
    STOPPED,
    SUSPENDED,
    SUSPENDING,
    UNPAUSING,
    UNRESCUING,
    UNSHELVING,
)

_DEFAULT = "default"
_REBUILD: dict[str | None, str] = {
    REBUILDING: "REBUILD", "rebuild_block_device_mapping": "REBUILD",
    "rebuild_spawning": "REBUILD"}
_RESIZE: dict[str | None, str] = {
    RESIZE_PREP: "RESIZE", RESIZE_MIGRATING: "RESIZE", RESIZE_MIGRATED: "RESIZE",
    RESIZE_FINISH: "RESIZE"}

#: vm_state -> {task_state or "default": status}, Nova's ``_STATE_MAP``.
STATE_MAP: dict[str, dict[str | None, str]] = {
    ACTIVE: {_DEFAULT: "ACTIVE", REBOOTING: "REBOOT", "reboot_pending": "REBOOT",
             "reboot_started": "REBOOT", REBOOTING_HARD: "HARD_REBOOT",
             "reboot_pending_hard": "HARD_REBOOT", "reboot_started_hard": "HARD_REBOOT",
             "updating_password": "PASSWORD", MIGRATING: "MIGRATING", **_REBUILD,
             **_RESIZE},
    BUILDING: {_DEFAULT: "BUILD"},
    STOPPED: {_DEFAULT: "SHUTOFF", **_RESIZE, **_REBUILD},
    RESIZED: {_DEFAULT: "VERIFY_RESIZE", RESIZE_REVERTING: "REVERT_RESIZE"},
    PAUSED: {_DEFAULT: "PAUSED", MIGRATING: "MIGRATING"},
    SUSPENDED: {_DEFAULT: "SUSPENDED"},
    RESCUED: {_DEFAULT: "RESCUE"},
    ERROR: {_DEFAULT: "ERROR", **_REBUILD},
    DELETED: {_DEFAULT: "DELETED"},
    SOFT_DELETED: {_DEFAULT: "SOFT_DELETED"},
    SHELVED: {_DEFAULT: "SHELVED"},
    SHELVED_OFFLOADED: {_DEFAULT: "SHELVED_OFFLOADED"},
}

#: Every status the API may show.
STATUSES = sorted({s for m in STATE_MAP.values() for s in m.values()} | {"UNKNOWN"})


def status_of(vm_state: str, task_state: str | None, deleted: bool = False) -> str:
    """The API's ``status`` for an instance."""
    if deleted:
        return "DELETED"
    task_map = STATE_MAP.get(vm_state)
    if task_map is None:
        return "UNKNOWN"
    return task_map.get(task_state, task_map[_DEFAULT])


def states_for_statuses(statuses: list[str]) -> tuple[set[str], set[str | None] | None]:
    """The (vm_states, task_states) a ``?status=`` filter means, as Nova computes them:
    task_states is None when any task state matches (a "default" entry matched).
    Both empty when no status is known."""
    wanted = {s.lower() for s in statuses}
    vm_states: set[str] = set()
    task_states: set[str | None] = set()
    any_task = False
    for vm_state, task_map in STATE_MAP.items():
        for task_state, status in task_map.items():
            if status.lower() in wanted:
                vm_states.add(vm_state)
                if task_state == _DEFAULT:
                    any_task = True
                else:
                    task_states.add(task_state)
    return vm_states, (None if any_task else task_states)


__all__ = [
    "ACTIVE",
    "BUILDING",
    "CRASHED",
    "DELETED",
    "DELETING",
    "ERROR",
    "IMAGE_SNAPSHOT",
    "MIGRATING",
    "NOSTATE",
    "PAUSED",
    "PAUSING",
    "POWERING_OFF",
    "POWERING_ON",
    "POWER_PAUSED",
    "POWER_SUSPENDED",
    "REBOOTING",
    "REBOOTING_HARD",
    "REBUILDING",
    "RESCUED",
    "RESCUING",
    "RESIZED",
    "RESIZE_FINISH",
    "RESIZE_MIGRATED",
    "RESIZE_MIGRATING",
    "RESIZE_PREP",
    "RESIZE_REVERTING",
    "RESUMING",
    "RUNNING",
    "SCHEDULING",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "SHELVING",
    "SHELVING_IMAGE_PENDING_UPLOAD",
    "SHELVING_IMAGE_UPLOADING",
    "SHELVING_OFFLOADING",
    "SHUTDOWN",
    "SOFT_DELETED",
    "SPAWNING",
    "STATE_MAP",
    "STATUSES",
    "STOPPED",
    "SUSPENDED",
    "SUSPENDING",
    "UNPAUSING",
    "UNRESCUING",
    "UNSHELVING",
    "states_for_statuses",
    "status_of",
]
