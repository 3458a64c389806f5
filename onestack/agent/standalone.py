"""A host's agent in a process of its own (``onestack agent``), talking to a remote
server over the HTTP transport (``onestack.hostlink.http``).

The same reconciler as the all-in-one mode, with ``HttpServerLink`` as its
``HostToServer``; the server reaches this host through a small listener
(``hostlink.http.host_app``: console output, serial endpoint, uptime, capabilities,
wake-up) whose URL the agent sends with every ``register``. The host proves itself
with its credential (``onestack admin host-credential create HOST`` on the server);
no Keystone password is kept here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.agent.host import build_agent
from onestack.agent.reconciler import Agent
from onestack.common.config import Config
from onestack.hostlink.http import HttpServerLink, host_app

log = logging.getLogger(__name__)


@dataclass
class StandaloneAgent:
    agent: Agent
    link: HttpServerLink
    listen_host: str
    listen_port: int
    secret: str

    def app(self) -> Any:
        return host_app(self.agent, self.secret)

    def close(self) -> None:
        self.agent.stop()
        self.link.close()


def build_standalone_agent(config: Config, server_url: str, host: str, secret: str, *,
                           listen_host: str = "127.0.0.1", listen_port: int = 5050,
                           advertise: str | None = None,
                           probe_kernel: Path | None = None) -> StandaloneAgent:
    """The agent of ``host`` for the server at ``server_url``, with the drivers
    ``config`` names, built as the in-process host is (``agent.host.build_agent``);
    its listener is advertised as ``advertise`` (default: the listening address)."""
    endpoint = advertise or f"http://{_url_host(listen_host)}:{listen_port}"
    link = HttpServerLink(server_url, host, secret, endpoint=endpoint)
    config.host.name = host
    # the metadata proxy forwards guests' requests to the server's metadata API
    config.server.public_url = server_url
    agent = build_agent(config, link, probe_kernel=probe_kernel)
    log.info("agent for host %s: server %s, listener %s", host, server_url, endpoint)
    return StandaloneAgent(agent, link, listen_host, listen_port, secret)


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
