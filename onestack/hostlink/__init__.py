"""The server <-> host boundary: wire types, state words, both interfaces, transports.

Both sides import this package; it imports neither (nothing from ``services``, ``api``,
``agent``, ``drivers`` or ``db``). Modules:

- ``types``: the wire types (instances with typed disks, NICs, networks, subnets, DHCP
  hosts, routers, security-group rule sets, volume attachments, host reports);
- ``states``: vm_state / task_state words, ``PowerState``, task events;
- ``capabilities``: the names of what a host's drivers can do;
- ``interfaces``: ``HostToServer`` and ``ServerToHost``;
- ``directory``: the server's handles on its hosts, by name;
- ``inprocess``: the in-process transport; ``http``: the HTTP client;
- ``codec``: wire types to JSON values and back.
"""

from onestack.hostlink.directory import HostDirectory
from onestack.hostlink.interfaces import HostToServer, HostUnreachable, ServerToHost
from onestack.hostlink.states import TASK_EVENTS, PowerState, task_event
from onestack.hostlink.types import (
    DesiredInstance,
    DhcpHost,
    Disk,
    FloatingIPSpec,
    HostReport,
    HostState,
    ImageDisk,
    ImageRef,
    NetworkSpec,
    PortInfo,
    RbdDisk,
    RouterPort,
    RouterSpec,
    SecurityGroupRule,
    SecurityGroupRuleSet,
    SerialEndpoint,
    SubnetSpec,
    VolumeAttachment,
    VolumeDisk,
)

__all__ = [
    "TASK_EVENTS", "DesiredInstance", "DhcpHost", "Disk", "FloatingIPSpec", "HostDirectory",
    "HostReport", "HostState", "HostToServer", "HostUnreachable", "ImageDisk", "ImageRef",
    "NetworkSpec", "PortInfo", "PowerState", "RbdDisk", "RouterPort", "RouterSpec",
    "SecurityGroupRule", "SecurityGroupRuleSet", "SerialEndpoint", "ServerToHost",
    "SubnetSpec", "VolumeAttachment", "VolumeDisk", "task_event",
]
