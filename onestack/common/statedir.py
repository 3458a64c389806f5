"""The state directory is private to the user OneStack runs as.

It holds the database (password and application-credential hashes, everything users
stored), the token keys and the logs, so no other local user may read any of it: the
directory is 0700 and everything in it 0600 (directories 0700). ``make_private`` makes
it so at every start, which also mends installs made before this rule; files are
created private where they are made (the database, keys, ``clouds.yaml``, the log), and
``onestack up`` runs with the umask ``PRIVATE_UMASK`` besides.

Guest disks and image files are private too: QEMU runs as the same user (root) as the
server. dnsmasq therefore keeps root rather than dropping to ``nobody``, who cannot
reach its files below a 0700 directory (``drivers.network.dhcp.dnsmasq.dnsmasq_user``).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

#: The umask of the server process: group and others get nothing.
PRIVATE_UMASK = 0o077


def make_private(state_dir: Path) -> None:
    """Create ``state_dir`` if needed and take every group and other permission (and
    set-id and sticky bits) from it and from everything below it. Symbolic links are
    left alone, and not followed: what they point to is not the state directory's."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _restrict(state_dir)
    for root, dirs, files in os.walk(state_dir):
        for name in (*dirs, *files):
            _restrict(Path(root) / name)


def _restrict(path: Path) -> None:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            return
        mode = stat.S_IMODE(st.st_mode)
        if mode != mode & 0o700:
            os.chmod(path, mode & 0o700)
    except FileNotFoundError:
        pass  # removed meanwhile (a guest's socket, a partial upload)
    except OSError as exc:  # not ours: another user's file
        log.warning("cannot make %s private: %s", path, exc)


def create_private(path: Path) -> None:
    """Create ``path`` as an empty 0600 file unless it exists (for files another
    library will open, such as SQLite's database or the log, whatever the umask)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    os.close(fd)
