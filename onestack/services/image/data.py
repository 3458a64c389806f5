"""Image data: streamed upload, glance-direct staging and import, download.

An upload runs in three steps, and only the last makes the data visible:

1. *claim* (one transaction): the image must be ``queued``; it becomes ``saving``
   (``uploading`` when staging), so a second upload gets a 409.
2. *receive*: the body streams into a ``PartialFile`` (hashed as it is written, never
   whole in memory), stopped as soon as it passes the size cap or the quota. Then the
   size and MD5 the client announced are checked and the inspector
   (``onestack.services.image.inspect``) decides whether the content is a safe image of
   its ``disk_format``.
3. *commit* (one transaction): quota checked again, the file renamed into place, the
   image ``active`` with its size, virtual size and hashes.

Whatever goes wrong before the commit (a mismatch, the client going away, a full quota)
removes the partial data and puts the image back to ``queued``, as Glance does; an
image the inspector rejects is ``killed``. An image deleted during its upload makes
the upload a 410.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from onestack.common.errors import BadRequest, Conflict, Gone, PayloadTooLarge
from onestack.db.models import Image, utcnow
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import policy
from onestack.services.image.inspect import ImageInfo, ImageRejected, inspect_image
from onestack.services.image.quotas import too_large_for_quota
from onestack.services.image.store import PartialFile, receive

if TYPE_CHECKING:
    from onestack.services.image.service import Images

log = logging.getLogger(__name__)

#: The one store there is (``/v2/info/stores``).
STORE_ID = "local"
IMPORT_METHODS = ("glance-direct",)
#: Images carrying data: their data can be downloaded.
WITH_DATA = ("active", "deactivated")


@dataclass
class Download:
    """An open image file and what the response says about it."""

    file: BinaryIO
    size: int
    checksum: str | None


@dataclass
class _Claim:
    image_id: str
    owner: str | None
    disk_format: str | None
    #: Most bytes the upload may bring (size cap and quota); None: unlimited.
    limit: int | None
    quota_limited: bool
    #: The status the image holds while the data arrives.
    status: str


def reset_to_queued(image: Image) -> None:
    """Back to ``queued``: no data, so no size or hashes (as Glance's restore)."""
    image.status = "queued"
    image.size = image.virtual_size = None
    image.checksum = image.os_hash_algo = image.os_hash_value = None
    image.updated_at = utcnow()


def parse_md5(value: str) -> str:
    """An expected MD5, as hex (Glance's ``Content-MD5``) or base64 (RFC 1864)."""
    value = value.strip()
    if len(value) == 32:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise BadRequest(f"Invalid Content-MD5 {value!r}: expected 32 hex digits or the "
                         "base64 of 16 bytes.")
    return raw.hex()


class ImageData:
    def __init__(self, images: Images) -> None:
        self.images = images
        self.db = images.db
        self.store = images.store
        self.config = images.config.image

    # -- upload and stage -----------------------------------------------------------

    async def upload(self, ctx: ValidatedToken, image_id: str, chunks: AsyncIterator[bytes],
                     size: int | None = None, md5: str | None = None) -> None:
        """``PUT /v2/images/{id}/file``: store the data, inspect it, make it active."""
        claim = self._claim(ctx, image_id, size, staging=False)
        partial = self.store.new_partial(claim.image_id)
        try:
            await self._receive(claim, partial, chunks, size, md5)
            info = await asyncio.to_thread(self._inspect, partial.path, claim)
            self._commit(claim, partial, info.virtual_size, self.store.path(claim.image_id))
        except ImageRejected:
            partial.discard()
            self._kill(claim)
            raise
        except BaseException:
            partial.discard()
            self._restore(claim)
            raise

    async def stage(self, ctx: ValidatedToken, image_id: str, chunks: AsyncIterator[bytes],
                    size: int | None = None, md5: str | None = None) -> None:
        """``PUT /v2/images/{id}/stage`` (glance-direct): store the data aside; the image
        stays ``uploading`` until it is imported."""
        claim = self._claim(ctx, image_id, size, staging=True)
        partial = self.store.new_partial(claim.image_id)
        try:
            await self._receive(claim, partial, chunks, size, md5)
            self._commit(claim, partial, None, self.store.staged_path(claim.image_id))
        except BaseException:
            partial.discard()
            self._restore(claim)
            raise

    def _claim(self, ctx: ValidatedToken, image_id: str, size: int | None,
               staging: bool) -> _Claim:
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id, for_update=True)
            policy.enforce_manage(ctx, image, "upload_image")
            if image.status != "queued":
                raise Conflict(f"Image {image.id} is {image.status}: data can be uploaded "
                               "only to a queued image.")
            if not staging:
                _require_formats(image)
            cap = self.config.max_image_size
            if size is not None and size > cap:
                raise PayloadTooLarge(f"The incoming image is too large: {size} bytes "
                                      f"exceeds the maximum of {cap}.")
            room = self.images.quotas.room(session, image.owner, image.id)
            if room is not None and size is not None and size > room:
                raise too_large_for_quota(image.owner, self._size_limit_mib(image.owner))
            image.status = "uploading" if staging else "saving"
            image.updated_at = utcnow()
            limit = cap if room is None else min(cap, room)
            return _Claim(image.id, image.owner, image.disk_format, limit,
                          room is not None and room < cap, image.status)

    def _size_limit_mib(self, owner: str | None) -> int:
        with self.db.session() as session:
            return self.images.quotas.limits(session, owner).image_size_total

    async def _receive(self, claim: _Claim, partial: PartialFile,
                       chunks: AsyncIterator[bytes], size: int | None,
                       md5: str | None) -> None:
        def check(total: int) -> None:
            if size is not None and total > size:
                raise BadRequest(f"The image data is larger than the {size} bytes "
                                 "announced.")
            if claim.limit is not None and total > claim.limit:
                if claim.quota_limited:
                    raise too_large_for_quota(claim.owner, self._size_limit_mib(claim.owner))
                raise PayloadTooLarge(f"The incoming image is too large: it exceeds the "
                                      f"maximum of {self.config.max_image_size} bytes.")

        await receive(partial, chunks, check)
        await asyncio.to_thread(partial.finish)
        if size is not None and partial.size != size:
            raise BadRequest(f"The image data is {partial.size} bytes, not the {size} bytes "
                             "announced.")
        if md5 is not None and partial.md5.hexdigest() != md5:
            raise BadRequest(f"The image data's MD5 is {partial.md5.hexdigest()}, not the "
                             f"{md5} announced.")

    def _inspect(self, path: Path, claim: _Claim) -> ImageInfo:
        return inspect_image(path, claim.disk_format or "", self.config.max_virtual_size)

    def _commit(self, claim: _Claim, partial: PartialFile, virtual_size: int | None,
                destination: Path) -> None:
        moved = False
        try:
            with self.db.session() as session:
                image = session.get(Image, claim.image_id, with_for_update=True)
                if image is None or image.status != claim.status:
                    raise Gone(f"Image {claim.image_id} was deleted (or changed) during "
                               "the upload; its data was discarded.")
                room = self.images.quotas.room(session, image.owner, image.id)
                if room is not None and partial.size > room:
                    raise too_large_for_quota(
                        image.owner, self.images.quotas.limits(session, image.owner)
                        .image_size_total)
                image.size = partial.size
                image.checksum = partial.md5.hexdigest()
                image.os_hash_algo = "sha512"
                image.os_hash_value = partial.sha512.hexdigest()
                if claim.status == "saving":
                    image.status = "active"
                    image.virtual_size = virtual_size
                image.updated_at = utcnow()
                session.flush()
                partial.commit(destination)
                moved = True
        except BaseException:
            if moved:
                destination.unlink(missing_ok=True)
            raise

    def _restore(self, claim: _Claim) -> None:
        """Put an image whose upload failed back to ``queued`` (unless it moved on)."""
        try:
            with self.db.session() as session:
                image = session.get(Image, claim.image_id, with_for_update=True)
                if image is not None and image.status == claim.status:
                    reset_to_queued(image)
        except Exception:
            log.exception("could not restore image %s to queued", claim.image_id)

    def _kill(self, claim: _Claim) -> None:
        with self.db.session() as session:
            image = session.get(Image, claim.image_id, with_for_update=True)
            if image is not None:
                reset_to_queued(image)
                image.status = "killed"
        self.store.delete(claim.image_id)
        log.warning("image %s killed: its data failed inspection", claim.image_id)

    # -- import ---------------------------------------------------------------------

    async def import_image(self, ctx: ValidatedToken, image_id: str, method: str,
                           stores: list[str] | None = None) -> None:
        """``POST /v2/images/{id}/import`` with glance-direct: inspect the staged data and
        make it the image's. Runs to completion before answering (Glance answers 202 at
        once and imports in the background; the result is the same, only sooner)."""
        if method not in IMPORT_METHODS:
            raise BadRequest(f"Unknown import method name '{method}'.")
        for store in stores or []:
            if store != STORE_ID:
                raise Conflict(f"Unknown store {store!r}: the only store is {STORE_ID!r}.")
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id, for_update=True)
            policy.enforce_manage(ctx, image, "import_image")
            if image.status != "uploading":
                raise Conflict(f"Image {image.id} is {image.status}: glance-direct import "
                               "needs staged data (status uploading).")
            _require_formats(image)
            image.status = "importing"
            image.updated_at = utcnow()
            claim = _Claim(image.id, image.owner, image.disk_format, None, False,
                           "importing")
        staged = self.store.staged_path(claim.image_id)
        try:
            info = await asyncio.to_thread(self._inspect, staged, claim)
        except FileNotFoundError:
            self._restore(claim)
            raise Conflict(f"The staged data of image {claim.image_id} is gone; stage it "
                           "again.") from None
        except ImageRejected:
            self._kill(claim)
            raise
        except BaseException:
            self._unimport(claim)
            raise
        try:
            with self.db.session() as session:
                current = session.get(Image, claim.image_id, with_for_update=True)
                if current is None or current.status != "importing":
                    self.store.delete(claim.image_id)
                    raise Gone(f"Image {claim.image_id} was deleted during the import.")
                current.status = "active"
                current.virtual_size = info.virtual_size
                current.updated_at = utcnow()
                session.flush()
                try:
                    self.store.promote_staged(claim.image_id)
                except FileNotFoundError:
                    raise Gone(f"Image {claim.image_id} was deleted during the "
                               "import.") from None
        except Gone:
            raise
        except BaseException:
            self._unimport(claim)
            raise

    def _unimport(self, claim: _Claim) -> None:
        with self.db.session() as session:
            image = session.get(Image, claim.image_id, with_for_update=True)
            if image is not None and image.status == "importing":
                image.status = "uploading"

    # -- download -------------------------------------------------------------------

    def open(self, ctx: ValidatedToken, image_id: str) -> Download | None:
        """The image's data, opened for reading; None if it has none (a 204)."""
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id)
            policy.enforce_download(ctx, image)
            if image.status not in WITH_DATA:
                return None
            file = self.store.open(image.id)
            if file is None:
                log.error("image %s is %s but its data is missing from the store",
                          image.id, image.status)
                return None
            return Download(file, image.size or 0, image.checksum)


def _require_formats(image: Image) -> None:
    missing = [k for k in ("disk_format", "container_format") if not getattr(image, k)]
    if missing:
        raise BadRequest(f"Propert{'y' if len(missing) == 1 else 'ies'} "
                         f"{', '.join(missing)} must be set prior to saving data.")
    if image.container_format != "bare":
        raise BadRequest(f"Container format '{image.container_format}' is not supported "
                         "for image data: only 'bare' images can be uploaded.")

