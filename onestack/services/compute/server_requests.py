"""What a server request asks for, its shape already checked by the API: a create
(``BootRequest`` and its ``NetworkRequest`` entries, answered by a ``BootResult``) and a
list (``ServerQuery``), with the limits both sides check."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from onestack.common.errors import BadRequest

#: Nova's limits on server tags.
MAX_TAGS = 50
MAX_TAG_LENGTH = 60


@dataclass
class NetworkRequest:
    """One entry of ``networks``: a network (with an optional fixed IP) or a port."""

    network_id: str | None = None
    port_id: str | None = None
    fixed_ip: str | None = None
    tag: str | None = None


@dataclass
class BootRequest:
    """A server create request, its shape already checked by the API."""

    name: str
    flavor_ref: str
    image_ref: str = ""
    #: A list of requests, "auto", "none", or None (not given: before 2.37).
    networks: list[NetworkRequest] | str | None = None
    admin_pass: str | None = None
    key_name: str | None = None
    user_data: str | None = None
    #: Personality (before 2.57): files for the guest, (path, contents) pairs.
    personality: list[tuple[str, bytes]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    #: Names (or ids) of security groups; None: the project's default group.
    security_groups: list[str] | None = None
    min_count: int = 1
    max_count: int = 1
    availability_zone: str | None = None
    config_drive: bool = False
    block_device_mapping: list[dict[str, Any]] = field(default_factory=list)
    description: str | None = None
    hostname: str | None = None
    tags: list[str] = field(default_factory=list)
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    #: ``OS-DCF:diskConfig``: True for AUTO, False for MANUAL, None: the image decides.
    auto_disk_config: bool | None = None
    scheduler_hints: dict[str, Any] = field(default_factory=dict)
    #: 2.74 (admins): a host and/or hypervisor node to boot on.
    requested_host: str | None = None
    requested_node: str | None = None


@dataclass
class BootResult:
    reservation_id: str
    admin_pass: str
    uuids: list[str]


@dataclass
class ServerQuery:
    """A server list request, already mapped to columns by the API.

    ``exact``: column -> accepted values; ``regex``: column -> a pattern that must be
    found in the column's text (Nova's REGEXP filters)."""

    exact: dict[str, list[Any]] = field(default_factory=dict)
    regex: dict[str, str] = field(default_factory=dict)
    #: ``?status=``: the vm_states, and the task_states (None: any) it means.
    vm_states: set[str] | None = None
    task_states: set[str | None] | None = None
    ip: str | None = None
    ip6: str | None = None
    tags: list[str] = field(default_factory=list)
    tags_any: list[str] = field(default_factory=list)
    not_tags: list[str] = field(default_factory=list)
    not_tags_any: list[str] = field(default_factory=list)
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    #: True: deleted ones only; False: live ones only; None: live ones unless a
    #: changes-since/before filter asks for recent deletions too.
    deleted: bool | None = None
    locked: bool | None = None
    #: A flavor id (servers booted with it) and an image id.
    flavor: str | None = None
    image: str | None = None
    all_tenants: bool = False
    #: (column, ascending) pairs; uuid is always added last.
    sorts: list[tuple[str, bool]] = field(default_factory=list)
    limit: int = 1000
    marker: str | None = None
    detail: bool = False


def personality_deltas(files: list[tuple[str, bytes]]) -> dict[str, int]:
    """The quota deltas of personality files: Nova limits their number and each file's
    path and content lengths."""
    return {"injected_files": len(files),
            "injected_file_path_bytes": max((len(p.encode()) for p, _ in files), default=0),
            "injected_file_content_bytes": max((len(c) for _, c in files), default=0)}


def stored_personality(files: list[tuple[str, bytes]]) -> list[dict[str, str]]:
    """How an instance keeps its personality files (``injected_files``)."""
    return [{"path": p, "contents": base64.b64encode(c).decode()} for p, c in files]


def validate_user_data(value: str) -> None:
    """Base64 as Nova decodes it; at most 65535 characters (Nova's schema)."""
    if len(value) > 65535:
        raise BadRequest("Invalid input for field/attribute user_data. Value: is too long "
                         "(at most 65535 characters of base64).")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("User data needs to be valid base 64.") from None

