"""The in-process transport: both sides in one Python process (``onestack up``'s
all-in-one mode, the API tests).

No serialization: the agent is handed the server's host service itself as its
``HostToServer``, and the server's ``HostDirectory`` gets the agent itself as that
host's ``ServerToHost``. These functions only name the seam (and check the objects do
implement the interfaces), so the assembly reads the same for every transport.
"""

from __future__ import annotations

from onestack.hostlink.interfaces import HostToServer, ServerToHost


def server_link(server_side: HostToServer) -> HostToServer:
    """What an in-process agent calls: the server's implementation, as it is."""
    if not isinstance(server_side, HostToServer):
        raise TypeError(f"{type(server_side).__name__} does not implement HostToServer")
    return server_side


def host_handle(host_side: ServerToHost) -> ServerToHost:
    """What the server calls for an in-process host: the agent, as it is."""
    if not isinstance(host_side, ServerToHost):
        raise TypeError(f"{type(host_side).__name__} does not implement ServerToHost")
    return host_side
