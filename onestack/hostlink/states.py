"""The state words server, agents and drivers share, defined once.

``vm_state`` is where an instance is (or should stay); ``task_state`` the operation
pending on it; ``PowerState`` what the host observes (Nova's numbers). Who moves an
instance through them: docs/design/compute-states.md. How the API shows them (Nova's
``status`` table) is the compute service's business (``services/compute/states.py``).
"""

from __future__ import annotations

import enum

# -- vm_state ------------------------------------------------------------------------

ACTIVE = "active"
BUILDING = "building"
PAUSED = "paused"
SUSPENDED = "suspended"
STOPPED = "stopped"
RESCUED = "rescued"
RESIZED = "resized"
SOFT_DELETED = "soft-delete"
DELETED = "deleted"
ERROR = "error"
SHELVED = "shelved"
SHELVED_OFFLOADED = "shelved_offloaded"

# -- task_state ----------------------------------------------------------------------

SCHEDULING = "scheduling"
SPAWNING = "spawning"
DELETING = "deleting"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
PAUSING = "pausing"
UNPAUSING = "unpausing"
SUSPENDING = "suspending"
RESUMING = "resuming"
REBUILDING = "rebuilding"
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"
IMAGE_SNAPSHOT = "image_snapshot"
MIGRATING = "migrating"
RESCUING = "rescuing"
UNRESCUING = "unrescuing"
SHELVING = "shelving"
SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
SHELVING_OFFLOADING = "shelving_offloading"
UNSHELVING = "unshelving"


# -- power_state (observed by the host) ------------------------------------------------


class PowerState(enum.IntEnum):
    """Nova's power_state numbers (``OS-EXT-STS:power_state``)."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


NOSTATE = int(PowerState.NOSTATE)
RUNNING = int(PowerState.RUNNING)
POWER_PAUSED = int(PowerState.PAUSED)
SHUTDOWN = int(PowerState.SHUTDOWN)
CRASHED = int(PowerState.CRASHED)
POWER_SUSPENDED = int(PowerState.SUSPENDED)

#: What each task is called in os-instance-actions events (the host starts and
#: finishes them).
TASK_EVENTS = {
    SPAWNING: "compute__do_build_and_run_instance",
    DELETING: "compute_terminate_instance",
    POWERING_OFF: "compute_stop_instance",
    POWERING_ON: "compute_start_instance",
    REBOOTING: "compute_reboot_instance",
    REBOOTING_HARD: "compute_reboot_instance",
    PAUSING: "compute_pause_instance",
    UNPAUSING: "compute_unpause_instance",
    SUSPENDING: "compute_suspend_instance",
    RESUMING: "compute_resume_instance",
    REBUILDING: "compute_rebuild_instance",
    RESIZE_PREP: "compute_resize_instance",
    RESIZE_REVERTING: "compute_revert_resize",
    IMAGE_SNAPSHOT: "compute_snapshot_instance",
    RESCUING: "compute_rescue_instance",
    UNRESCUING: "compute_unrescue_instance",
    SHELVING: "compute_shelve_instance",
    SHELVING_IMAGE_PENDING_UPLOAD: "compute_shelve_instance",
    SHELVING_IMAGE_UPLOADING: "compute_shelve_instance",
    SHELVING_OFFLOADING: "compute_shelve_offload_instance",
    UNSHELVING: "compute_unshelve_instance",
}


def task_event(task: str) -> str:
    """The instance-action event name of ``task``."""
    return TASK_EVENTS.get(task, f"compute_{task}")
