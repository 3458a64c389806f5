"""``Compute``: the facade the API and the agents call; one sub-service per concern.

Each sub-service gets this object and reaches its siblings and the other services
(identity, images, network) through it:

- flavors, keypairs, server_groups, quotas (limits), hosts (os-services, hypervisors,
  availability zones), aggregates (host aggregates; their zone is their hosts'), usage
  (simple tenant usage);
- servers (create, list, show, update, delete), server_metadata (metadata and tags),
  actions (stop, start, reboot, ...),
  scheduler (which host runs an instance);
- hostapi: compute's slice of what hosts call (``services/hosts`` puts the slices
  together); host_links: the hosts this process can call;
- metadata: the documents the metadata service serves a guest;
- volume_attachments: a server's volumes (attach, detach, boot from volume) through the
  volume service, ``volume`` (set by the assembly; None: no block storage).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from onestack.common.config import Config
from onestack.db.engine import Database
from onestack.hostlink.directory import HostDirectory
from onestack.services.compute.actions import ServerActions
from onestack.services.compute.aggregates import Aggregates
from onestack.services.compute.flavors import Flavors
from onestack.services.compute.hostapi import HostAPI
from onestack.services.compute.hosts import Hosts
from onestack.services.compute.interfaces import Interfaces
from onestack.services.compute.keypairs import KeyPairs
from onestack.services.compute.metadata import MetadataService
from onestack.services.compute.migrations import Migrations
from onestack.services.compute.quotas import ComputeQuotas
from onestack.services.compute.scheduler import Scheduler
from onestack.services.compute.server_groups import ServerGroups
from onestack.services.compute.server_metadata import ServerMetadata
from onestack.services.compute.servers import Servers
from onestack.services.compute.usage import Usage
from onestack.services.compute.volume_attachments import VolumeAttachments

if TYPE_CHECKING:
    from onestack.services.identity.service import Identity
    from onestack.services.image.service import Images
    from onestack.services.network.service import Networking


class Compute:
    def __init__(self, db: Database, config: Config, identity: Identity, images: Images,
                 network: Networking) -> None:
        self.db = db
        self.config = config
        self.identity = identity
        self.images = images
        self.network = network
        #: Called with a host name whenever that host's desired state changed (the agent
        #: wakes up at once instead of at its next poll). Agents register here.
        self.listeners: list[Callable[[str], None]] = []
        #: Handles on the hosts this process can call (``hostlink.ServerToHost``: console
        #: output, serial consoles, uptime, wake-up), by host name; the assembly adds the
        #: in-process host, the HTTP transport remote ones.
        self.host_links = HostDirectory()
        self.flavors = Flavors(self)
        self.keypairs = KeyPairs(self)
        self.server_groups = ServerGroups(self)
        self.quotas = ComputeQuotas(self)
        self.hosts = Hosts(self)
        self.aggregates = Aggregates(self)
        self.usage = Usage(self)
        self.scheduler = Scheduler(self)
        self.servers = Servers(self)
        self.server_metadata = ServerMetadata(self)
        self.actions = ServerActions(self)
        self.migrations = Migrations(self)
        self.hostapi = HostAPI(self)
        self.metadata = MetadataService(self)
        #: The Block Storage service (``onestack.services.volume``), when there is one.
        self.volume: Any = None
        self.volume_attachments = VolumeAttachments(self)
        self.interfaces = Interfaces(self)

    def notify(self, host: str | None) -> None:
        """Tell ``host``'s agent its desired state changed."""
        if not host:
            return
        self.host_links.notify(host)
        for listener in list(self.listeners):
            listener(host)

    def bootstrap(self) -> None:
        """Seed what a fresh cloud needs (default flavors) and register the server's own
        services (nova-scheduler, nova-conductor) on its host; idempotent."""
        seed = getattr(self.flavors, "seed_defaults", None)
        if seed is not None:
            seed()
        self.hosts.bootstrap()
