"""The state directory is private: 0700, and everything in it 0600 (directories 0700),
on a fresh start, after an older install left it world-readable, and for what the
running cloud creates (common/statedir.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from onestack.common.logging import setup_logging
from onestack.common.statedir import make_private
from tests.api.compute_helpers import boot, boot_env, wait_for
from tests.conftest import running_cloud


def modes(state_dir: Path) -> dict[str, int]:
    """Mode of the directory and of everything under it, symbolic links aside."""
    out = {".": stat.S_IMODE(state_dir.stat().st_mode)}
    for root, dirs, files in os.walk(state_dir):
        for name in (*dirs, *files):
            path = Path(root) / name
            st = path.lstat()
            if not stat.S_ISLNK(st.st_mode):
                out[str(path.relative_to(state_dir))] = stat.S_IMODE(st.st_mode)
    return out


def assert_private(state_dir: Path) -> None:
    found = modes(state_dir)
    wrong = {path: oct(mode) for path, mode in found.items()
             if mode != (0o700 if (state_dir / path).is_dir() else 0o600)}
    assert not wrong, wrong


def start_and_use(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """Start a cloud on ``tmp_path / "state"`` with a log file, boot a server (the fake
    drivers write disks and guest files), stop it; returns the state directory and its
    modes while the cloud ran."""
    state = tmp_path / "state"
    setup_logging(state / "logs", "info", console=False)
    try:
        with running_cloud(tmp_path) as cloud:
            server = boot(cloud, boot_env(cloud))
            wait_for(cloud, server["id"], "ACTIVE")
            assert_private(state)
            running = modes(state)
    finally:
        setup_logging(None, "warning", console=False)
    return state, running


def test_a_new_state_directory_is_private(tmp_path: Path) -> None:
    state, found = start_and_use(tmp_path)
    for name in ("onestack.db", "onestack.db-wal", "onestack.db-shm", "logs/onestack.log",
                 "fernet-keys/0"):
        assert found.get(name) == 0o600, (name, found.get(name))
    assert_private(state)


def test_an_old_world_readable_install_is_mended_at_start(tmp_path: Path) -> None:
    state, _ = start_and_use(tmp_path)
    # What an install made before the rule looks like: 0755 directories, 0644 files.
    for path in [state, *state.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    (state / "clouds.yaml").write_text("clouds: {}\n")
    (state / "clouds.yaml").chmod(0o644)
    (state / "odd").mkdir(mode=0o777)
    (state / "odd" / "tool").write_text("#!/bin/sh\n")
    (state / "odd" / "tool").chmod(0o4775)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the cloud's")
    outside.chmod(0o644)
    (state / "odd" / "link").symlink_to(outside)
    assert modes(state)["onestack.db"] == 0o644
    with running_cloud(tmp_path) as cloud:
        r = cloud.request("GET", "/v3/users")
        assert r.status_code == 200
        found = modes(state)
        assert found["."] == 0o700 and found["onestack.db"] == 0o600
        assert found["odd/tool"] == 0o700  # executable for its owner still, nothing more
        del found["odd/tool"]
        wrong = {p: oct(m) for p, m in found.items()
                 if m != (0o700 if (state / p).is_dir() else 0o600)}
        assert not wrong, wrong
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link's target is not ours


def test_make_private_leaves_what_it_cannot_change(tmp_path: Path) -> None:
    state = tmp_path / "s"
    make_private(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    (state / "gone").symlink_to(tmp_path / "missing")  # a dangling link is fine
    make_private(state)
    assert (state / "gone").is_symlink()
