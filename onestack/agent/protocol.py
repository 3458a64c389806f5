"""Moved: what agent and server exchange is ``onestack.hostlink`` (wire types, state
words, both interfaces). These names stay importable from here for older callers."""

from onestack.hostlink.interfaces import HostToServer as ControlPlane
from onestack.hostlink.states import TASK_EVENTS
from onestack.hostlink.types import DesiredInstance, HostReport, ImageRef, PortInfo

__all__ = ["TASK_EVENTS", "ControlPlane", "DesiredInstance", "HostReport", "ImageRef",
           "PortInfo"]
