"""The Fernet key repository: layout, rotation, pruning."""

from __future__ import annotations

import stat
import time

import pytest

from onestack.services.identity.keys import KeyRepository
from onestack.services.identity.tokens import (
    InvalidToken,
    TokenData,
    TokenFormatter,
    new_audit_id,
)


def sample(**kw) -> TokenData:
    base = dict(user_id="a" * 32, methods=("password",), expires_at=time.time() + 60,
                issued_at=time.time(), audit_ids=(new_audit_id(),), project_id="b" * 32)
    base.update(kw)
    return TokenData(**base)


def test_ensure_creates_staged_and_primary_private(tmp_path):
    repo = KeyRepository(tmp_path / "keys")
    repo.ensure()
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["0", "1"]
    assert stat.S_IMODE((tmp_path / "keys" / "1").stat().st_mode) == 0o600
    repo.ensure()  # idempotent
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["0", "1"]


def test_rotation_keeps_previous_key_until_pruned(tmp_path):
    repo = KeyRepository(tmp_path / "keys", max_active_keys=3)
    repo.ensure()
    old = TokenFormatter(repo).encode(sample())
    assert repo.rotate() == 2
    assert TokenFormatter(repo).decode(old).user_id == "a" * 32
    assert repo.rotate() == 3
    # 3 keys kept: staged 0, primary 3, secondary 2; key 1 (which made `old`) is gone
    assert sorted(int(p.name) for p in (tmp_path / "keys").iterdir()) == [0, 2, 3]
    with pytest.raises(InvalidToken):
        TokenFormatter(repo).decode(old)


def test_staged_key_is_accepted_before_promotion(tmp_path):
    """A process that has not seen a rotation yet still accepts tokens made after it."""
    repo = KeyRepository(tmp_path / "keys")
    repo.ensure()
    before = TokenFormatter(repo)
    repo.rotate()
    after = TokenFormatter(repo)
    token = after.encode(sample())
    assert before.decode(token).project_id == "b" * 32


def test_max_active_keys_must_allow_staged_and_primary(tmp_path):
    with pytest.raises(ValueError):
        KeyRepository(tmp_path, max_active_keys=1)


def test_formatter_round_trips_every_scope(tmp_path):
    repo = KeyRepository(tmp_path / "keys")
    repo.ensure()
    fmt = TokenFormatter(repo)
    for data in (sample(), sample(project_id=None, domain_id="default"),
                 sample(project_id=None), sample(app_cred_id="c" * 32,
                                                 methods=("application_credential",)),
                 sample(user_id="not-hex-id", methods=("password", "token"))):
        assert fmt.decode(fmt.encode(data)) == data


def test_tampered_and_foreign_tokens_are_refused(tmp_path):
    repo = KeyRepository(tmp_path / "a")
    repo.ensure()
    other = KeyRepository(tmp_path / "b")
    other.ensure()
    token = TokenFormatter(repo).encode(sample())
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    for bad in (flipped, "", "x" * 2000, "not-a-token"):
        with pytest.raises(InvalidToken):
            TokenFormatter(repo).decode(bad)
    with pytest.raises(InvalidToken):
        TokenFormatter(other).decode(token)
