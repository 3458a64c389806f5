"""Network namespaces and shell-outs: ``run`` (errors become ``NetworkDriverError``),
``ip -j`` parsing, sysctls, and running Python code inside a named namespace.

Python 3.11 has no ``os.setns``, so ``setns(2)`` is called through ctypes. A network
namespace belongs to a thread, not to the process: ``call_in_namespace`` runs a function
in a short-lived thread that switches first, so the caller's thread never moves; what
that function creates (a socket) stays in the namespace it was made in.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.names import check_id

CLONE_NEWNET = 0x40000000
#: Where ``ip netns`` keeps named namespaces.
NETNS_DIR = Path("/run/netns")

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def namespace_path(name: str) -> Path:
    return NETNS_DIR / name


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace ``fd`` refers to."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def inside(path: Path | str) -> Iterator[None]:
    """Switch the calling thread into a network namespace (a ``/run/netns/<name>`` or
    ``/proc/<pid>/ns/net`` path) and back again afterwards; subprocesses started
    meanwhile from this thread are born in it."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(own)
    finally:
        os.close(own)


def call_in_namespace(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a short-lived thread switched into the named namespace; returns what
    it returns or raises what it raises."""
    path = namespace_path(name)
    if not path.exists():
        raise NetworkDriverError(f"network namespace {name} does not exist")
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(fd)
            finally:
                os.close(fd)
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"netns:{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def run(argv: list[str], *, check: bool = True, timeout: float = 30,
        input: str | None = None) -> str:
    """Run a command (never through a shell), with ``input`` on its stdin if given; its
    stdout. A failure raises ``NetworkDriverError`` naming the command and quoting its
    stderr."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              **({"input": input} if input is not None
                                 else {"stdin": subprocess.DEVNULL}))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkDriverError(f"{shlex.join(argv)} failed: {exc}") from exc
    if check and proc.returncode != 0:
        raise NetworkDriverError(f"{shlex.join(argv)} failed (exit {proc.returncode}): "
                                 f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def ip_json(*args: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """``ip -j <args>`` (in ``namespace`` with ``ip -n``) parsed; [] for no output."""
    argv = ["ip", "-j"] + (["-n", namespace] if namespace else []) + list(args)
    out = run(argv).strip()
    return json.loads(out) if out else []


def ip(*args: str, namespace: str | None = None) -> None:
    run(["ip"] + (["-n", namespace] if namespace else []) + list(args))


def links() -> dict[str, dict[str, Any]]:
    """Every link of the calling thread's namespace by name, with details (``-d``)."""
    return {link["ifname"]: link for link in ip_json("-d", "link", "show")}


def namespaces() -> set[str]:
    """Names of the named network namespaces (``ip netns list``)."""
    return {ns["name"] for ns in ip_json("netns", "list")}


def namespace_pids(name: str) -> list[int]:
    """PIDs of the processes in the named namespace (``ip netns pids``); [] if it does
    not exist."""
    if not namespace_path(name).exists():
        return []
    return [int(word) for word in run(["ip", "netns", "pids", name]).split()
            if word.isdigit()]


def link_kind(link: dict[str, Any]) -> str:
    """``bridge``, ``veth``, ``tun``, ... ("" for a plain device)."""
    return str(link.get("linkinfo", {}).get("info_kind", ""))


def set_sysctl(key: str, value: str) -> bool:
    """Write ``/proc/sys/<key>``, a slash-separated path such as
    ``net/ipv6/conf/<ifname>/disable_ipv6`` (``net/`` keys: in the calling thread's
    network namespace); False if it does not exist (e.g. no IPv6)."""
    try:
        Path("/proc/sys", key).write_text(value)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise NetworkDriverError(f"cannot set {key} to {value}: {exc}") from exc
    return True


Link = dict[str, Any]


def is_up(link: Link) -> bool:
    return "UP" in link.get("flags", [])


def ours(link: Link, kind: str, id_: str) -> bool:
    """A link of the expected kind whose alias, if any, is this id (shortened ids can
    collide; the alias tells)."""
    alias = link.get("ifalias")
    return link_kind(link) == kind and (not alias or alias == id_)


def check_ours(link: Link, kind: str, id_: str) -> None:
    """Refuse a link of ours by name that is not ours by kind or alias."""
    if not ours(link, kind, id_):
        raise NetworkDriverError(
            f"{link['ifname']} exists but is not ours for {id_} (a {link_kind(link)} "
            f"for {link.get('ifalias') or 'unknown'}); delete it or change the prefix")


def checked_id(kind: str, value: str) -> str:
    """``names.check_id`` raising ``NetworkDriverError``."""
    try:
        return check_id(kind, value)
    except ValueError as exc:
        raise NetworkDriverError(str(exc)) from exc


def ensure_addresses(ns: str | None, ifname: str, wanted: list[str]) -> None:
    """Make the global addresses of ``ifname`` in namespace ``ns`` (None: the calling
    thread's) exactly ``wanted``
    ("10.0.0.1/24"; IPv6 ones added ``nodad``, usable at once); link-local ones stay."""
    current = set()
    for entry in ip_json("addr", "show", "dev", ifname, namespace=ns):
        for addr in entry.get("addr_info", []):
            if addr.get("scope") == "link":
                continue
            current.add(str(ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}")))
    desired = [str(ipaddress.ip_interface(a)) for a in wanted]
    for address in current - set(desired):
        ip("addr", "del", address, "dev", ifname, namespace=ns)
    for address in desired:
        if address in current:
            continue
        extra = ["nodad"] if ipaddress.ip_interface(address).version == 6 else []
        ip("addr", "add", address, "dev", ifname, *extra, namespace=ns)
