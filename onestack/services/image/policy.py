"""Who may see and do what with images: Glance's default (secure RBAC) policy.

- An administrator (``admin`` on the token's scope) sees and does everything.
- An image is visible to its owner project, to everyone if it is ``public`` or
  ``community``, and, if it is ``shared``, to projects that are its members (whatever
  their member status; the status only decides whether it shows up in their lists).
- Changing an image, its data, tags or members needs the ``member`` role on the owner
  project. Only administrators may make an image ``public`` (``publicize_image``) or
  give it to another project.
- A member project may set its own member status; only the owner manages members.
- Reading data needs the ``member`` role and visibility; data of a ``deactivated``
  image is for administrators only.

An image the caller cannot see is a 404 (its existence is not revealed); one the
caller can see but not change is a 403.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, or_
from sqlalchemy.orm import Session

from onestack.common.errors import Forbidden, NotFound
from onestack.db.models import Image, ImageMember
from onestack.services.identity.context import ValidatedToken
from onestack.services.image.fields import UUID_RE


def has_member_role(ctx: ValidatedToken) -> bool:
    return ctx.is_admin or "member" in ctx.role_names


def owns(ctx: ValidatedToken, image: Image) -> bool:
    return ctx.project_id is not None and image.owner == ctx.project_id


def visible(session: Session, ctx: ValidatedToken, image: Image) -> bool:
    if ctx.is_admin or owns(ctx, image):
        return True
    if image.visibility in ("public", "community"):
        return True
    if image.visibility == "shared" and ctx.project_id is not None:
        return session.get(ImageMember, (image.id, ctx.project_id)) is not None
    return False


def find_image(session: Session, ctx: ValidatedToken, image_id: str,
               for_update: bool = False) -> Image:
    """The image if the caller may see it; 404 otherwise (also for a malformed id)."""
    image = None
    if UUID_RE.match(image_id):
        image = session.get(Image, image_id.lower(), with_for_update=for_update)
    if image is None or not visible(session, ctx, image):
        raise NotFound(f"No image found with ID {image_id}")
    return image


def member_of(project_id: str, status: str | None = None) -> Any:
    """SQL: the image is shared with ``project_id`` (with that member status)."""
    cond = [ImageMember.image_id == Image.id, ImageMember.member_id == project_id]
    if status is not None:
        cond.append(ImageMember.status == status)
    return exists().where(*cond)


def listable(ctx: ValidatedToken, member_status: str | None) -> Any:
    """SQL: the images a non-admin caller's lists may hold: its own, public and
    community ones, and shared ones whose membership has ``member_status`` (None:
    any)."""
    conds: list[Any] = [Image.visibility.in_(("public", "community"))]
    if ctx.project_id is not None:
        conds.append(Image.owner == ctx.project_id)
        conds.append((Image.visibility == "shared") & member_of(ctx.project_id,
                                                                member_status))
    return or_(*conds)


def may_manage(ctx: ValidatedToken, image: Image) -> bool:
    return ctx.is_admin or (owns(ctx, image) and has_member_role(ctx))


def enforce_manage(ctx: ValidatedToken, image: Image, action: str = "modify_image") -> None:
    if not may_manage(ctx, image):
        raise Forbidden(f"You are not authorized to perform the requested action: {action} "
                        f"on image {image.id}.")


def enforce_download(ctx: ValidatedToken, image: Image) -> None:
    if not has_member_role(ctx):
        raise Forbidden("You are not authorized to perform the requested action: "
                        "download_image.")
    if image.status == "deactivated" and not ctx.is_admin:
        raise Forbidden("The requested image has been deactivated. Image data download "
                        "is forbidden.")


def enforce_create(ctx: ValidatedToken, owner: str | None) -> None:
    """``add_image``: admins, or members creating an image their project owns."""
    if ctx.is_admin:
        return
    if ctx.project_id is None or not has_member_role(ctx):
        raise Forbidden("You are not authorized to perform the requested action: "
                        "add_image (a project-scoped token with the member role is needed).")
    if owner != ctx.project_id:
        raise Forbidden("You are not permitted to create images owned by another project.")


def enforce_visibility(ctx: ValidatedToken, visibility: str) -> None:
    """``publicize_image`` is for administrators only."""
    if visibility == "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to perform the requested action: "
                        "publicize_image.")


def enforce_owner_change(ctx: ValidatedToken) -> None:
    if not ctx.is_admin:
        raise Forbidden("Owner can't be updated by non admin.")
