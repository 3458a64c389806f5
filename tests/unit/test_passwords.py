from __future__ import annotations

from onestack.services.identity.passwords import Hasher


def test_hash_and_verify():
    hasher = Hasher(time_cost=1, memory_kib=1024)
    stored = hasher.hash("s3cret")
    assert stored.startswith("$argon2id$") and "s3cret" not in stored
    assert hasher.verify(stored, "s3cret")
    assert not hasher.verify(stored, "s3cret ")
    assert not hasher.verify(None, "onestack-dummy-secret")  # no password: never ok
    assert not hasher.verify("garbage", "s3cret")
