"""The local image store: partial files, hashing while writing, atomic commit, and
nothing left behind on failure."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from onestack.common.errors import PayloadTooLarge
from onestack.services.image.store import BUFFER_SIZE, ImageStore, receive

IMAGE_ID = "0b0e5b0c-41bd-4bd2-8d3c-6a2f3f0f7a11"


async def agen(chunks):
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


def test_receive_hashes_writes_and_commits(tmp_path):
    store = ImageStore(tmp_path / "images", fsync=True)
    chunks = [os.urandom(n) for n in (1, 4096, BUFFER_SIZE, 3 * BUFFER_SIZE + 5, 0, 17)]
    # many tiny chunks too: more than one writev() call's worth in one batch
    chunks += [b"x"] * 3000
    data = b"".join(chunks)
    partial = store.new_partial(IMAGE_ID)
    assert partial.path.parent == store.root and partial.path.name.startswith(".partial-")
    asyncio.run(receive(partial, agen(chunks), lambda total: None))
    partial.finish()
    assert partial.size == len(data)
    assert partial.md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert partial.sha512.hexdigest() == hashlib.sha512(data).hexdigest()
    partial.commit(store.path(IMAGE_ID))
    assert store.path(IMAGE_ID).read_bytes() == data
    assert sorted(os.listdir(store.root)) == [IMAGE_ID, "staging"]
    partial.discard()  # after commit: harmless, the data stays
    assert store.exists(IMAGE_ID)
    with store.open(IMAGE_ID) as f:
        assert f.read() == data
    assert store.image_ids() == {IMAGE_ID}


def test_a_failing_check_stops_the_transfer_and_discard_leaves_nothing(tmp_path):
    store = ImageStore(tmp_path / "images")
    partial = store.new_partial(IMAGE_ID)
    seen = []

    def check(total):
        seen.append(total)
        if total > 3 * BUFFER_SIZE:
            raise PayloadTooLarge("too much")

    chunks = [bytes(BUFFER_SIZE // 2)] * 20
    with pytest.raises(PayloadTooLarge):
        asyncio.run(receive(partial, agen(chunks), check))
    assert len(seen) == 7  # stopped at once, not after reading everything
    partial.discard()
    partial.discard()
    assert not partial.path.exists()
    assert sorted(os.listdir(store.root)) == ["staging"]
    with pytest.raises(ValueError):
        partial.write(b"late")


def test_store_paths_are_only_uuids(tmp_path):
    store = ImageStore(tmp_path / "images")
    for bad in ("../etc/passwd", "", "x" * 36, f"{IMAGE_ID}/../x"):
        with pytest.raises(ValueError):
            store.path(bad)
        with pytest.raises(ValueError):
            store.new_partial(bad)
    assert store.open(IMAGE_ID) is None
    store.delete(IMAGE_ID)  # nothing there: fine


def test_symlinks_are_not_followed(tmp_path):
    store = ImageStore(tmp_path / "images")
    secret = tmp_path / "secret"
    secret.write_text("host data")
    store.path(IMAGE_ID).symlink_to(secret)
    with pytest.raises(OSError):
        store.open(IMAGE_ID)


def test_staged_data_is_promoted_and_partials_are_swept(tmp_path):
    store = ImageStore(tmp_path / "images")
    store.staged_path(IMAGE_ID).write_bytes(b"staged")
    assert store.image_ids() == {IMAGE_ID}
    store.promote_staged(IMAGE_ID)
    assert store.path(IMAGE_ID).read_bytes() == b"staged"
    assert not store.staged_path(IMAGE_ID).exists()
    left = store.new_partial(IMAGE_ID)
    left.write(b"half")
    assert store.remove_partials() == 1 and not left.path.exists()
    store.delete(IMAGE_ID)
    assert store.image_ids() == set()
    assert oct(store.root.stat().st_mode & 0o777) == oct(0o700)
