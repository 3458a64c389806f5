"""The image service facade: image records (create, list, show, update, delete, tags,
deactivate/reactivate). Members, data and quotas hang off it as ``members``, ``data``
and ``quotas``.

Every method takes the caller (a validated token) and enforces ``policy`` itself, so
the API and the dashboard cannot disagree about who may do what.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from onestack.common.config import Config
from onestack.common.errors import Conflict, Forbidden, NotFound, PayloadTooLarge
from onestack.db import Database
from onestack.db.models import Image, ImageProperty, ImageTag, utcnow
from onestack.services.identity import Identity
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import fields, policy
from onestack.services.image.data import ImageData, reset_to_queued
from onestack.services.image.listing import ListQuery, list_images
from onestack.services.image.members import Members
from onestack.services.image.metadefs import Metadefs
from onestack.services.image.quotas import Quotas
from onestack.services.image.store import make_image_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One JSON-patch operation on an image: ``op`` is add, replace or remove; ``path``
    the top-level field (Glance allows nothing deeper for images)."""

    op: str
    path: str
    value: Any = None


class Images:
    """Glance v2 for the whole cloud."""

    def __init__(self, db: Database, config: Config, identity: Identity) -> None:
        self.db = db
        self.config = config
        self.identity = identity
        self.store = make_image_store(config)
        self.quotas = Quotas(db, config)
        self.members = Members(self)
        self.data = ImageData(self)
        self.metadefs = Metadefs(db)
        self.recover()

    # -- start-up -------------------------------------------------------------------

    def recover(self) -> None:
        """Undo what a crash left half-done: partial uploads are removed, images caught
        mid-upload go back to where they were, data without an image is deleted.

        Assumes one server process per state directory (the image store is local)."""
        removed = self.store.remove_partials()
        with self.db.session() as session:
            for image in session.scalars(select(Image).where(
                    Image.status.in_(("saving", "importing", "uploading")))):
                staged = self.store.staged_path(image.id).exists()
                if image.status in ("importing", "uploading") and staged:
                    image.status = "uploading"
                else:
                    reset_to_queued(image)
            known = set(session.scalars(select(Image.id)))
        orphans = self.store.image_ids() - known
        for image_id in orphans:
            self.store.delete(image_id)
        if removed or orphans:
            log.info("image store: removed %d partial upload(s) and %d orphaned file(s)",
                     removed, len(orphans))

    # -- lookups --------------------------------------------------------------------

    def get(self, ctx: ValidatedToken, image_id: str) -> Image:
        with self.db.session() as session:
            return policy.find_image(session, ctx, image_id)

    # -- create ---------------------------------------------------------------------

    def create(self, ctx: ValidatedToken, body: dict[str, Any]) -> Image:
        """Create an image record (``queued``) from a Glance create body: base
        properties, ``tags`` and free-form string properties."""
        values: dict[str, Any] = {}
        properties: dict[str, str] = {}
        for name, value in body.items():
            if name in fields.WRITABLE:
                values[name] = fields.check_base(name, value)
            elif name == "id":
                values["id"] = fields.check_image_id(value)
            else:
                fields.check_settable(name)
                properties[name] = fields.check_property(name, value)
        tags = values.pop("tags", [])
        self._check_counts(len(properties), len(tags))
        owner = values.pop("owner") if "owner" in values else ctx.project_id
        policy.enforce_create(ctx, owner)
        visibility = values.get("visibility", "shared")
        policy.enforce_visibility(ctx, visibility)
        now = utcnow()
        with self.db.session() as session:
            image_id = values.pop("id", None) or str(uuid.uuid4())
            if session.get(Image, image_id) is not None:
                raise Conflict(f"An image with identifier {image_id} already exists")
            self.quotas.check_new_image(session, owner)
            image = Image(id=image_id, owner=owner, status="queued", visibility=visibility,
                          protected=values.get("protected", False),
                          os_hidden=values.get("os_hidden", False),
                          name=values.get("name"), disk_format=values.get("disk_format"),
                          container_format=values.get("container_format"),
                          min_disk=values.get("min_disk", 0),
                          min_ram=values.get("min_ram", 0), created_at=now, updated_at=now)
            image.properties = [ImageProperty(name=k, value=v) for k, v in properties.items()]
            image.tags = [ImageTag(tag=t) for t in tags]
            session.add(image)
        return image

    def _check_counts(self, n_properties: int, n_tags: int) -> None:
        quota = self.config.image
        if 0 <= quota.image_property_quota < n_properties:
            raise PayloadTooLarge(f"Maximum number of properties exceeded: an image may "
                                  f"have {quota.image_property_quota}.")
        if 0 <= quota.image_tag_quota < n_tags:
            raise PayloadTooLarge(f"Maximum number of tags exceeded: an image may have "
                                  f"{quota.image_tag_quota}.")

    # -- list -----------------------------------------------------------------------

    def list(self, ctx: ValidatedToken, params: Sequence[tuple[str, str]]
             ) -> tuple[builtins.list[Image], str | None]:
        """One page of the images the caller may see, filtered and sorted as Glance's
        query string asks; returns the page and the marker of the next one (None when
        this is the last)."""
        query = ListQuery.parse(params, self.config.image)
        with self.db.session() as session:
            return list_images(session, ctx, query)

    # -- update ---------------------------------------------------------------------

    def update(self, ctx: ValidatedToken, image_id: str, changes: Iterable[Change]) -> Image:
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id, for_update=True)
            policy.enforce_manage(ctx, image)
            properties = {p.name: p.value for p in image.properties}
            tags = [t.tag for t in image.tags]
            for change in changes:
                fields.check_settable(change.path)
                if change.path in fields.WRITABLE:
                    tags = self._change_base(ctx, image, change, tags)
                else:
                    self._change_property(properties, change)
            self._check_counts(len(properties), len(tags))
            set_properties(image, properties)
            set_tags(image, tags)
            image.updated_at = utcnow()
        return image

    def _change_base(self, ctx: ValidatedToken, image: Image, change: Change,
                     tags: builtins.list[str]) -> builtins.list[str]:
        name = change.path
        if change.op == "remove":
            raise Forbidden(f"Property {name} may not be removed.")
        value = fields.check_base(name, change.value)
        if name == "tags":
            return list(value)
        if name == "owner" and value != image.owner:
            policy.enforce_owner_change(ctx)
        if name == "visibility" and value != image.visibility:
            policy.enforce_visibility(ctx, value)
        if name in ("disk_format", "container_format") and value != getattr(image, name) \
                and image.status not in ("queued", "importing"):
            raise Forbidden(f"Attribute {name} can be only replaced for a queued image.")
        setattr(image, name, value)
        return tags

    @staticmethod
    def _change_property(properties: dict[str, str], change: Change) -> None:
        name = change.path
        if change.op == "remove":
            if name not in properties:
                raise Conflict(f"Property {name} does not exist.")
            del properties[name]
        elif change.op == "replace" and name not in properties:
            raise Conflict(f"Property {name} does not exist.")
        else:
            properties[name] = fields.check_property(name, change.value)

    # -- delete ---------------------------------------------------------------------

    def delete(self, ctx: ValidatedToken, image_id: str) -> None:
        """Delete the record and its data. Servers booted from the image keep working:
        compute keeps its own verified copy of the data (see docs/image.md)."""
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id, for_update=True)
            policy.enforce_manage(ctx, image, "delete_image")
            if image.protected:
                raise Forbidden(f"Image {image.id} is protected and cannot be deleted.")
            session.delete(image)
            deleted_id = image.id
        self.store.delete(deleted_id)

    # -- tags -----------------------------------------------------------------------

    def add_tag(self, ctx: ValidatedToken, image_id: str, tag: str) -> None:
        tag = fields.check_tag(tag)
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id, for_update=True)
            policy.enforce_manage(ctx, image)
            if any(t.tag == tag for t in image.tags):
                return
            self._check_counts(0, len(image.tags) + 1)
            image.tags.append(ImageTag(image_id=image.id, tag=tag))
            image.updated_at = utcnow()

    def remove_tag(self, ctx: ValidatedToken, image_id: str, tag: str) -> None:
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id, for_update=True)
            policy.enforce_manage(ctx, image)
            found = [t for t in image.tags if t.tag == tag]
            if not found:
                raise NotFound(f"Tag {tag} not found on image {image.id}.")
            image.tags.remove(found[0])
            image.updated_at = utcnow()

    # -- deactivate / reactivate ----------------------------------------------------

    def set_active(self, ctx: ValidatedToken, image_id: str, active: bool) -> None:
        """Deactivate (``active=False``) or reactivate an image; a no-op if it already
        is; 403 in any status other than active and deactivated (as Glance)."""
        action = "reactivate" if active else "deactivate"
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id, for_update=True)
            policy.enforce_manage(ctx, image, action)
            if image.status not in ("active", "deactivated"):
                raise Forbidden(f"Not allowed to {action} image in status '{image.status}'")
            wanted = "active" if active else "deactivated"
            if image.status != wanted:
                image.status = wanted
                image.updated_at = utcnow()


def set_properties(image: Image, properties: dict[str, str]) -> None:
    """Make the image's free-form properties exactly ``properties`` (rows are changed in
    place, so no row is deleted and re-added under the same key in one flush)."""
    current = {p.name: p for p in image.properties}
    for name, row in current.items():
        if name not in properties:
            image.properties.remove(row)
        elif row.value != properties[name]:
            row.value = properties[name]
    for name, value in properties.items():
        if name not in current:
            image.properties.append(ImageProperty(image_id=image.id, name=name, value=value))


def set_tags(image: Image, tags: list[str]) -> None:
    current = {t.tag: t for t in image.tags}
    for tag, row in current.items():
        if tag not in tags:
            image.tags.remove(row)
    for tag in tags:
        if tag not in current:
            image.tags.append(ImageTag(image_id=image.id, tag=tag))
