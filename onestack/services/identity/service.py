"""The identity service facade: one object the API and the other services use."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Integer, event, select, update
from sqlalchemy.orm import Session

from onestack.common.config import Config
from onestack.db import Database
from onestack.db.models import Meta
from onestack.services.identity.app_creds import ApplicationCredentials
from onestack.services.identity.assignments import Assignments
from onestack.services.identity.auth import Tokens
from onestack.services.identity.catalog import Catalog
from onestack.services.identity.credentials import Credentials
from onestack.services.identity.domains import Domains
from onestack.services.identity.groups import Groups
from onestack.services.identity.keys import KeyRepository
from onestack.services.identity.oauth1 import OAuth1
from onestack.services.identity.passwords import Hasher
from onestack.services.identity.policies import EndpointGroups, Policies
from onestack.services.identity.projects import Projects
from onestack.services.identity.roles import Roles
from onestack.services.identity.trusts import Trusts
from onestack.services.identity.users import Users

REVISION_KEY = "identity_revision"


class Identity:
    """Keystone v3 for the whole cloud.

    Validation results are cached per token and thrown away whenever anything that can
    change a token's validity is written (the *identity revision*: a counter in the
    database, bumped in the same transaction as the change, re-read at most once a
    second so that writes by other server processes are seen too).
    """

    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config
        ic = config.identity
        self.hasher = Hasher(ic.argon2_time_cost, ic.argon2_memory_kib, ic.argon2_parallelism,
                             ic.password_hash_workers)
        self.keys = KeyRepository(config.key_repository, ic.max_active_keys)
        self._revision_lock = threading.Lock()
        self._local_revision = 0
        self._db_revision = "0"
        self._db_revision_read = 0.0
        self.domains = Domains(self)
        self.projects = Projects(self)
        self.users = Users(self)
        self.groups = Groups(self)
        self.roles = Roles(self)
        self.assignments = Assignments(self)
        self.catalog = Catalog(self)
        self.app_creds = ApplicationCredentials(self)
        self.credentials = Credentials(self)
        self.oauth1 = OAuth1(self)
        self.trusts = Trusts(self)
        self.policies = Policies(self)
        self.endpoint_groups = EndpointGroups(self)
        self.tokens = Tokens(self)

    # -- revision -------------------------------------------------------------------

    def bump_revision(self, session: Session) -> None:
        session.execute(
            update(Meta).where(Meta.key == REVISION_KEY)
            .values(value=(Meta.value.cast(type_=_int()) + 1).cast(type_=Meta.value.type)))
        if not session.info.get("identity_bump_registered"):
            session.info["identity_bump_registered"] = True

            def after(_session: Session) -> None:
                with self._revision_lock:
                    self._local_revision += 1
                _session.info.pop("identity_bump_registered", None)

            event.listen(session, "after_commit", after, once=True)
        with self._revision_lock:
            # also invalidate now: a validation racing this transaction must not cache
            self._local_revision += 1

    def revision(self) -> tuple[int, str]:
        now = time.monotonic()
        if now - self._db_revision_read > 1.0:
            with self.db.session() as session:
                value = session.scalar(select(Meta.value).where(Meta.key == REVISION_KEY))
            self._db_revision = value or "0"
            self._db_revision_read = now
        return (self._local_revision, self._db_revision)

    def ensure_revision_row(self, session: Session) -> None:
        if session.get(Meta, REVISION_KEY) is None:
            session.add(Meta(key=REVISION_KEY, value="1"))


def _int() -> Integer:
    return Integer()
