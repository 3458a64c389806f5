"""Image members: sharing an image with other projects (Glance's sharing API).

Only ``shared`` images have members. The owner adds and removes them; a member project
sets its own status (``pending`` -> ``accepted`` or ``rejected``), which decides only
whether the image appears in its lists: every member may see and use the image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from onestack.db.models import Image, ImageMember, utcnow
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import fields, policy

if TYPE_CHECKING:
    from onestack.services.image.service import Images


def _only_shared(image: Image) -> None:
    if image.visibility != "shared":
        raise Forbidden("Only shared images have members.")


class Members:
    def __init__(self, images: Images) -> None:
        self.images = images
        self.db = images.db

    def add(self, ctx: ValidatedToken, image_id: str, member_id: Any) -> ImageMember:
        if not isinstance(member_id, str) or not member_id.strip():
            raise BadRequest("Member can't be empty" if member_id in ("", None) else
                             'Expected a member in the form: {"member": "project_id"}')
        if len(member_id) > 255:
            raise BadRequest("Invalid member: longer than 255 characters.")
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id, for_update=True)
            _only_shared(image)
            policy.enforce_manage(ctx, image, "add_member")
            if session.get(ImageMember, (image.id, member_id)) is not None:
                raise Conflict(f"Member {member_id} is duplicated for image {image.id}")
            quota = self.images.config.image.image_member_quota
            count = session.scalar(select(func.count()).select_from(ImageMember).where(
                ImageMember.image_id == image.id)) or 0
            if 0 <= quota <= count:
                raise PayloadTooLarge(f"Image member limit exceeded for image {image.id}: "
                                      f"an image may have {quota} members.")
            now = utcnow()
            member = ImageMember(image_id=image.id, member_id=member_id, status="pending",
                                 created_at=now, updated_at=now)
            session.add(member)
        return member

    def list(self, ctx: ValidatedToken, image_id: str) -> list[ImageMember]:
        """All members for the owner (and admins); a member sees only itself."""
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id)
            _only_shared(image)
            query = select(ImageMember).where(ImageMember.image_id == image.id)
            if not (ctx.is_admin or policy.owns(ctx, image)):
                query = query.where(ImageMember.member_id == ctx.project_id)
            return list(session.scalars(query.order_by(ImageMember.created_at,
                                                       ImageMember.member_id)))

    def get(self, ctx: ValidatedToken, image_id: str, member_id: str) -> ImageMember:
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id)
            if image.visibility != "shared":
                raise NotFound("Only shared images have members.")
            return self._member(session, ctx, image, member_id)

    def _member(self, session: Session, ctx: ValidatedToken, image: Image,
                member_id: str) -> ImageMember:
        member = session.get(ImageMember, (image.id, member_id))
        mine = ctx.is_admin or policy.owns(ctx, image) or member_id == ctx.project_id
        if member is None or not mine:
            raise NotFound(f"{member_id} not found in the member list of the image "
                           f"{image.id}.")
        return member

    def update(self, ctx: ValidatedToken, image_id: str, member_id: str,
               status: Any) -> ImageMember:
        """A member project accepts or rejects (or resets to pending) an image."""
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id)
            _only_shared(image)
            member = self._member(session, ctx, image, member_id)
            if not (ctx.is_admin or (ctx.project_id == member_id
                                     and policy.has_member_role(ctx))):
                raise Forbidden(f"Not allowed to update members for image {image.id}.")
            if status not in fields.MEMBER_STATUSES:
                raise BadRequest('Status must be "pending", "accepted" or "rejected".')
            member.status = status
            member.updated_at = utcnow()
        return member

    def remove(self, ctx: ValidatedToken, image_id: str, member_id: str) -> None:
        with self.db.session() as session:
            image = policy.find_image(session, ctx, image_id)
            _only_shared(image)
            policy.enforce_manage(ctx, image, "delete_member")
            member = self._member(session, ctx, image, member_id)
            session.delete(member)
