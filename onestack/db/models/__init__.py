"""SQLAlchemy models, one module per service. Every table arrives through an Alembic
migration in ``onestack/db/migrations/versions``; change both together."""

from onestack.db.models.base import Base, utcnow
from onestack.db.models.identity import (
    ApplicationCredential,
    Assignment,
    Domain,
    Endpoint,
    Group,
    GroupMembership,
    ImpliedRole,
    Meta,
    Project,
    ProjectTag,
    Region,
    RevocationEvent,
    Role,
    Service,
    User,
)

__all__ = [
    "ApplicationCredential", "Assignment", "Base", "Domain", "Endpoint", "Group",
    "GroupMembership", "ImpliedRole", "Meta", "Project", "ProjectTag", "Region",
    "RevocationEvent", "Role", "Service", "User", "utcnow",
]
