"""What one host may touch through the host boundary: its own instances, their ports,
the images they boot from, and the snapshots they are taking.

A remote agent proves which host it is (a credential per host, ``onestack.hostlink.
credentials``); the HTTP routes (``onestack.api.hostlink``) then ask this before every
call, so host A cannot finish a task of an instance on host B, read B's config drive,
or download an image none of its instances uses. The in-process agent is the server's
own host and is not asked.
"""

from __future__ import annotations

from sqlalchemy import select

from onestack.db.engine import Database
from onestack.db.models import Instance, Port


class HostScope:
    def __init__(self, db: Database) -> None:
        self.db = db

    def owns_instance(self, host: str, uuid: str) -> bool:
        """The instance exists (deleted or not: a late report changes nothing) and is
        assigned to ``host``."""
        with self.db.session() as session:
            inst = session.get(Instance, uuid)
            return inst is not None and inst.host == host

    def owns_ports(self, host: str, port_ids: list[str]) -> bool:
        """Every port is bound to ``host`` or belongs to an instance on it."""
        if not port_ids:
            return True
        with self.db.session() as session:
            ports = session.scalars(select(Port).where(Port.id.in_(port_ids))).all()
            devices = {p.device_id for p in ports if p.binding_host_id != host}
            on_host = set(session.scalars(select(Instance.uuid).where(
                Instance.uuid.in_(devices), Instance.host == host)).all()) if devices \
                else set()
            return all(p.binding_host_id == host or p.device_id in on_host for p in ports)

    def may_read_image(self, host: str, image_id: str) -> bool:
        """An instance on ``host`` boots from the image (or is being built from it)."""
        with self.db.session() as session:
            if session.scalar(select(Instance.uuid).where(
                    Instance.host == host, Instance.image_ref == image_id,
                    Instance.deleted.is_(False)).limit(1)) is not None:
                return True
            # a server unshelved there boots from its shelve image
            return any((inst.task_args or {}).get("image_id") == image_id
                       for inst in session.scalars(select(Instance).where(
                           Instance.host == host, Instance.deleted.is_(False),
                           Instance.task_state == "unshelving")))

    def may_upload_snapshot(self, host: str, image_id: str) -> bool:
        """An instance on ``host`` is taking a snapshot into the image."""
        with self.db.session() as session:
            for inst in session.scalars(select(Instance).where(
                    Instance.host == host, Instance.deleted.is_(False),
                    Instance.task_state.in_(("image_snapshot", "shelving_image_uploading")))):
                if (inst.task_args or {}).get("image_id") == image_id:
                    return True
            return False
