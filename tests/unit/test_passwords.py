from __future__ import annotations

import asyncio
import threading

from onestack.services.identity.passwords import Hasher


def test_hash_and_verify():
    hasher = Hasher(time_cost=1, memory_kib=1024)
    stored = hasher.hash("s3cret")
    assert stored.startswith("$argon2id$") and "s3cret" not in stored
    assert hasher.verify(stored, "s3cret")
    assert not hasher.verify(stored, "s3cret ")
    assert not hasher.verify(None, "onestack-dummy-secret")  # no password: never ok
    assert not hasher.verify("garbage", "s3cret")


def test_concurrent_hashing_is_bounded_by_the_workers():
    """A login storm queues: never more argon2 computations at once than workers."""
    hasher = Hasher(time_cost=1, memory_kib=1024, workers=2)
    stored = hasher.hash("s3cret")

    async def storm() -> list[bool]:
        return await asyncio.gather(*(hasher.verify_async(stored, "s3cret" if i % 2 else "x")
                                      for i in range(40)))

    def sync_logins() -> None:
        for _ in range(5):
            assert hasher.verify(stored, "s3cret")

    threads = [threading.Thread(target=sync_logins) for _ in range(8)]
    for t in threads:
        t.start()
    results = asyncio.run(storm())
    for t in threads:
        t.join()
    assert results == [bool(i % 2) for i in range(40)]
    assert 1 <= hasher.most_running <= 2 and hasher.running == 0
    assert asyncio.run(hasher.hash_async("other")).startswith("$argon2id$")
    hasher.close()
