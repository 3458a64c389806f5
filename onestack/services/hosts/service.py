"""``HostService``: what hosts call on the control plane (``hostlink.HostToServer``).

It owns no tables. A host's desired state is put together from each domain service's
slice: compute (the instances, ``services/compute/hostapi.py``), network (their NICs,
the networks they are on with DHCP, ``services/network/hostview.py``), image (image
bytes, snapshot uploads); block storage (attachments) and the network's routers and
security groups join here when they come. Reports go back to the service that owns
what they are about.

Every transport ends here: the in-process agent holds this object itself, the HTTP
routes (``api/hostlink.py``) call it for remote hosts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onestack.db.models import Image
from onestack.hostlink.types import HostReport, HostState
from onestack.services.compute.hostapi import service_context

if TYPE_CHECKING:
    from onestack.services.compute import Compute
    from onestack.services.image import Images
    from onestack.services.network import Networking


class HostService:
    def __init__(self, compute: Compute, network: Networking, images: Images) -> None:
        self.compute = compute
        self.network = network
        self.images = images
        self.db = compute.db

    # -- hosts ------------------------------------------------------------------------

    def register(self, report: HostReport) -> None:
        self.compute.hostapi.register(report)

    # -- desired state ----------------------------------------------------------------

    def desired_state(self, host: str) -> HostState:
        instances = self.compute.hostapi.desired_instances(host)
        nics = self.network.hostview.nics([p for i in instances for p in i.port_ids])
        for item in instances:
            item.spec.ports = [nics[p] for p in item.port_ids if p in nics]
        dns_names = {p: i.dns_name for i in instances for p in i.port_ids}
        groups = sorted({g for n in nics.values() for g in n.security_group_ids})
        networks = self.network.hostview.networks(host, dns_names)
        # The routers of the networks here, and the networks they need besides (the
        # external network of their gateways, their other subnets): bridges, no DHCP.
        routers = self.network.hostview.routers([n.id for n in networks], host=host)
        have = {n.id for n in networks}
        legs = {p.network_id for r in routers
                for p in [*r.interfaces, *([r.gateway] if r.gateway else [])]}
        networks += self.network.hostview.router_networks(sorted(legs - have), host=host)
        # Block storage's slice: the volumes attached to those instances (compute keeps
        # each server's attachments, with the volume service's connection info).
        attachments = [a for i in instances for a in i.attachments]
        return HostState(host=host, instances=[i.spec for i in instances],
                         attachments=attachments,
                         networks=networks, routers=routers,
                         security_groups=self.network.hostview.security_groups(groups))

    def existing_networks(self, network_ids: list[str]) -> list[str]:
        return self.network.hostview.existing_networks(network_ids)

    def config_drive_files(self, uuid: str) -> dict[str, bytes]:
        return self.compute.hostapi.config_drive_files(uuid)

    def open_image(self, image_id: str) -> Iterator[bytes]:
        file = self.images.store.open(image_id)
        if file is None:
            raise FileNotFoundError(f"image {image_id} has no data in the image store")
        with file:
            while chunk := file.read(1 << 20):
                yield chunk

    def upload_snapshot(self, image_id: str, path: Path) -> None:
        with self.db.session() as session:
            image = session.get(Image, image_id)
            if image is None:
                raise FileNotFoundError(f"snapshot image {image_id} was deleted")
            owner = image.owner

        async def chunks() -> AsyncIterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        asyncio.run(self.images.data.upload(service_context(owner), image_id, chunks(),
                                            size=path.stat().st_size))

    # -- observed state ---------------------------------------------------------------

    def start_event(self, uuid: str, event: str) -> None:
        self.compute.hostapi.start_event(uuid, event)

    def finish_task(self, uuid: str, expected_task_state: str | None, *, event: str = "",
                    **changes: Any) -> bool:
        return self.compute.hostapi.finish_task(uuid, expected_task_state, event=event,
                                                **changes)

    def fail_task(self, uuid: str, expected_task_state: str | None, message: str, *,
                  event: str = "", details: str = "", vm_state: str | None = None) -> bool:
        return self.compute.hostapi.fail_task(uuid, expected_task_state, message,
                                              event=event, details=details,
                                              vm_state=vm_state)

    def report_power(self, uuid: str, power_state: int, vm_state: str | None = None) -> None:
        self.compute.hostapi.report_power(uuid, power_state, vm_state)

    def set_port_status(self, port_ids: list[str], status: str) -> None:
        self.network.hostview.set_port_status(port_ids, status)
        # interfaces being attached or detached wait for their host's word
        self.compute.interfaces.ports_reported(port_ids, status)

    def report_routers(self, host: str, applied: dict[str, dict[str, str]],
                       failed: list[str]) -> None:
        self.network.hostview.report_routers(host, applied, failed)

    def instance_deleted(self, uuid: str) -> None:
        self.compute.hostapi.instance_deleted(uuid)

    def report_attachments(self, uuid: str, attachment_ids: list[str]) -> None:
        self.compute.volume_attachments.report(uuid, attachment_ids)

    def volume_extended(self, uuid: str, volume_id: str, size_gb: int,
                        error: str | None) -> None:
        self.compute.volume_attachments.extend_done(uuid, volume_id, size_gb, error)

    # -- the metadata proxy -----------------------------------------------------------

    def metadata_secret(self) -> bytes:
        return self.compute.metadata.secret()

    def instance_for_address(self, network_id: str, ip: str) -> tuple[str, str] | None:
        return self.compute.metadata.instance_for_address(network_id, ip)
