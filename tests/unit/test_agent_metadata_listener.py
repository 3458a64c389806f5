"""The agent's metadata listeners follow the DHCP namespaces they live in: when the last
server on a network goes and only a router keeps the network on the host (its spec then
has no DHCP port), the DHCP namespace goes with its listener; the next server on the
network gets a new namespace and a new listener (a guest there used to find no metadata
service, so no SSH key: Tempest's validation runs caught it)."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

from tests.unit.test_agent import Control, image, instance, make_agent  # noqa: F401

__all__ = ["image"]


class RecordingProxy:
    """What the agent asks of ``MetadataProxy``: serve and stop per network."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.serving: set[str] = set()

    def serve(self, network_id: str, sock: socket.socket) -> None:
        self.calls.append(("serve", network_id))
        self.serving.add(network_id)
        sock.close()

    def stop(self, network_id: str) -> None:
        self.calls.append(("stop", network_id))
        self.serving.discard(network_id)

    def close(self) -> None:
        self.serving.clear()


def test_listener_goes_with_the_dhcp_namespace_and_comes_back(tmp_path: Path,
                                                              image: bytes) -> None:  # noqa: F811
    control = Control(image)
    first = instance(image)
    control.instances[first.uuid] = first
    agent = make_agent(tmp_path, control)
    proxy = RecordingProxy()
    agent.metadata_proxy = proxy
    agent.network.metadata_socket = lambda network_id: socket.socket()  # type: ignore[method-assign]
    agent.network_idle_seconds = 3600
    agent.run_once(wait=True)
    assert proxy.serving == {"net-1"}
    assert agent.network.dhcp.list_networks() == ["net-1"]

    # The server goes; a router on the network keeps it here, without a DHCP port.
    router_view = dataclasses.replace(control.networks("host-1")[0], dhcp_mac=None,
                                      dhcp_ips=[], hosts=[])
    first.task_state = "deleting"
    agent.run_once(wait=True)
    control.extra_networks = [router_view]
    agent.run_once(wait=True)
    agent.run_once(wait=True)
    assert first.uuid not in control.instances
    assert agent.network.dhcp.list_networks() == []  # the DHCP namespace went
    assert proxy.serving == set()  # and its listener with it
    assert proxy.calls == [("serve", "net-1"), ("stop", "net-1")]

    # The next server on the network: DHCP again, and a listener in the new namespace.
    second = instance(image, "22222222-2222-3333-4444-555555555555")
    control.instances[second.uuid] = second
    agent.run_once(wait=True)
    assert agent.network.dhcp.list_networks() == ["net-1"]
    assert proxy.serving == {"net-1"}
    assert proxy.calls[-1] == ("serve", "net-1")
