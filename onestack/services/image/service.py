"""The image service facade (being written)."""

from __future__ import annotations

from onestack.common.config import Config
from onestack.db import Database
from onestack.services.identity import Identity


class Images:
    def __init__(self, db: Database, config: Config, identity: Identity) -> None:
        self.db = db
        self.config = config
        self.identity = identity
