"""Where the program is put together: the one place that knows every layer.

- ``Services``: the server side (database, identity, image, network, compute, volume
  and the host service), built once per process: ``onestack up``, the tests, the dashboard.
  With ``[host] agent`` on, ``start()`` also runs this machine's host in the same
  process (the all-in-one mode), over the in-process transport.
- ``build_host``: a host's agent for a given ``HostToServer`` link: the in-process one
  above, or an HTTP client for a standalone agent (``onestack agent``).

The API layer (``api/app.py``) only builds the ASGI app around a ``Services``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from onestack.agent.host import build_agent
from onestack.agent.reconciler import Agent
from onestack.common.config import Config
from onestack.common.statedir import PRIVATE_UMASK, make_private
from onestack.db import Database
from onestack.hostlink import inprocess
from onestack.hostlink.interfaces import HostToServer
from onestack.services.compute import Compute
from onestack.services.hosts import HostService
from onestack.services.identity import Identity
from onestack.services.identity.bootstrap import BootstrapResult, bootstrap
from onestack.services.image import Images
from onestack.services.network import Networking
from onestack.services.volume import Volumes

log = logging.getLogger(__name__)


def build_host(config: Config, control: HostToServer,
               probe_kernel: Path | None = None) -> Agent:
    """This machine's host agent (drivers from ``[host]``), talking to the server
    through ``control``. Not started."""
    return build_agent(config, control, probe_kernel=probe_kernel)


class Services:
    """Everything the API calls, built once per process."""

    def __init__(self, config: Config, admin_password: str | None = None) -> None:
        self.config = config
        # The state directory is no one else's business (common/statedir.py): what this
        # process creates from now on is private, and what an older install left is
        # made so.
        os.umask(PRIVATE_UMASK)
        make_private(config.state_dir)
        self.db = Database(config.database_url)
        self.db.migrate()
        self.identity = Identity(self.db, config)
        self.bootstrap: BootstrapResult = bootstrap(self.identity, config.public_url,
                                                   admin_password)
        self.images = Images(self.db, config, self.identity)
        self.network = Networking(self.db, config, self.identity)
        self.network.bootstrap(self.bootstrap.admin_project_id)
        self.compute = Compute(self.db, config, self.identity, self.images, self.network)
        self.compute.bootstrap()
        #: Block Storage (Cinder v3); compute attaches its volumes through
        #: ``volume.attachments`` (the contract is in services/volume/attachments.py).
        self.volume = Volumes(self.db, config, self.identity, self.images)
        self.volume.attachment_wanted = self._attachment_wanted
        self.volume.bootstrap()
        # Compute attaches volumes and boots from them through it, and grows an attached
        # volume in its guest when it is extended.
        self.compute.volume = self.volume
        self.volume.register_extend_attached(self.compute.volume_attachments.extended)
        # A change of routers or floating IPs wakes every host this process reaches.
        self.network.listeners.append(self._wake_hosts)
        #: What hosts call (``hostlink.HostToServer``), whatever their transport.
        self.hosts = HostService(self.compute, self.network, self.images)
        #: This machine's host, when it runs in this process (the all-in-one mode).
        self.agent: Agent | None = None

    def _attachment_wanted(self, instance_uuid: str | None, attachment_id: str) -> bool:
        """Whether a server still has a block device mapping for the attachment (what
        volume recovery asks after a crash)."""
        from onestack.db.models import Instance

        if instance_uuid is None:
            return False
        with self.db.session() as session:
            inst = session.get(Instance, instance_uuid)
            return inst is not None and not inst.deleted and any(
                isinstance(e, dict) and e.get("attachment_id") == attachment_id
                for e in inst.block_device_mapping or [])

    def _wake_hosts(self) -> None:
        for host in self.compute.host_links.names():
            self.compute.notify(host)

    def start(self) -> None:
        """What the server does once it serves: run this machine's host in process if
        ``[host] agent`` says so (a host that cannot start leaves the APIs serving;
        os-services shows its compute as down)."""
        if not self.config.host.agent:
            return
        try:
            self.start_agent()
        except Exception:
            log.exception("this host's agent could not start")

    def start_agent(self) -> None:
        """Run this host's agent in this process, over the in-process transport."""
        if self.agent is not None:
            return
        from onestack.services.image.testimage import cached_test_image

        # The test image, if it was ever built, is what the KVM probe boots.
        agent = build_host(self.config, inprocess.server_link(self.hosts),
                           probe_kernel=cached_test_image())
        self.compute.host_links.add(inprocess.host_handle(agent))
        self.agent = agent
        agent.start()

    def stop_agent(self) -> None:
        agent, self.agent = self.agent, None
        if agent is None:
            return
        self.compute.host_links.remove(agent.host)
        agent.stop()

    def close(self) -> None:
        self.stop_agent()
        self.volume.close()
        self.db.dispose()
