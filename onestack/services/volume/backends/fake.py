"""The ``fake`` volume backend: remembers volumes and snapshots in memory (their sizes
and their content: ``data`` holds the volume's first bytes, everything after them is
zeros; backups read and restores write it through ``open_data``), so the API can be
tested without qemu-img or Ceph. ``fail_next`` makes the next operation of a given
name raise ``VolumeError`` (tests of the error paths)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

from onestack.common.config import Config
from onestack.services.volume.backends.base import (
    Connector,
    ImageData,
    VolumeBackend,
    VolumeData,
    VolumeError,
)


class FakeVolumeBackend(VolumeBackend):
    name = "fake"
    storage_protocol = "fake"
    capabilities: ClassVar[dict[str, bool]] = {
        "snapshots": True, "clone": True, "create_from_image": True, "copy_to_image": True,
        "online_extend": True, "multiattach": True, "thin_provisioning": True,
        "constant_time_clone": True,
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        #: volume id -> {"size": GiB, "data": bytes}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        #: operation name -> message: the next call of it raises VolumeError(message).
        self.fail_next: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    def _maybe_fail(self, op: str, ident: str) -> None:
        self.calls.append((op, ident))
        message = self.fail_next.pop(op, None)
        if message is not None:
            raise VolumeError(message)

    def create(self, volume_id: str, size_gb: int) -> None:
        with self._lock:
            self._maybe_fail("create", volume_id)
            self.volumes[volume_id] = {"size": size_gb, "data": b""}

    def create_from_image(self, volume_id: str, image: ImageData, size_gb: int) -> None:
        data = b"".join(image.open())
        with self._lock:
            self._maybe_fail("create_from_image", volume_id)
            self.volumes[volume_id] = {"size": size_gb, "data": data[:4096],
                                       "image": image.id}

    def create_from_snapshot(self, volume_id: str, snapshot_id: str,
                             source_volume_id: str, size_gb: int) -> None:
        with self._lock:
            self._maybe_fail("create_from_snapshot", volume_id)
            snap = self.snapshots.get(snapshot_id)
            if snap is None:
                raise VolumeError(f"snapshot {snapshot_id} is not in the backend")
            self.volumes[volume_id] = {"size": size_gb, "data": snap["data"]}

    def clone(self, volume_id: str, source_volume_id: str, size_gb: int) -> None:
        with self._lock:
            self._maybe_fail("clone", volume_id)
            src = self.volumes.get(source_volume_id)
            if src is None:
                raise VolumeError(f"volume {source_volume_id} is not in the backend")
            self.volumes[volume_id] = {"size": size_gb, "data": src["data"]}

    def delete(self, volume_id: str) -> None:
        with self._lock:
            self._maybe_fail("delete", volume_id)
            self.volumes.pop(volume_id, None)

    def extend(self, volume_id: str, new_size_gb: int, online: bool = False) -> None:
        with self._lock:
            self._maybe_fail("extend", volume_id)
            if volume_id not in self.volumes:
                raise VolumeError(f"volume {volume_id} is not in the backend")
            self.volumes[volume_id]["size"] = max(new_size_gb,
                                                  self.volumes[volume_id]["size"])

    def exists(self, volume_id: str) -> bool:
        return volume_id in self.volumes

    def list_volumes(self) -> list[str]:
        return sorted(self.volumes)

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        with self._lock:
            self._maybe_fail("create_snapshot", snapshot_id)
            vol = self.volumes.get(volume_id)
            if vol is None:
                raise VolumeError(f"volume {volume_id} is not in the backend")
            self.snapshots[snapshot_id] = {"volume": volume_id, "size": vol["size"],
                                           "data": vol["data"]}

    def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        with self._lock:
            self._maybe_fail("delete_snapshot", snapshot_id)
            self.snapshots.pop(snapshot_id, None)

    def list_snapshots(self) -> list[str]:
        return sorted(self.snapshots)

    def copy_to_image(self, volume_id: str, disk_format: str) -> Iterator[bytes]:
        self._maybe_fail("copy_to_image", volume_id)
        vol = self.volumes.get(volume_id)
        if vol is None:
            raise VolumeError(f"volume {volume_id} is not in the backend")
        yield vol["data"] or b"\0" * 512

    @contextlib.contextmanager
    def open_data(self, volume_id: str, snapshot_id: str | None = None,
                  write: bool = False) -> Iterator[VolumeData]:
        self._maybe_fail("open_data", volume_id)
        store = self.snapshots if snapshot_id else self.volumes
        entry = store.get(snapshot_id or volume_id)
        if entry is None:
            raise VolumeError(f"{'snapshot' if snapshot_id else 'volume'} "
                              f"{snapshot_id or volume_id} is not in the backend")
        data = _FakeData(entry["size"] << 30, bytearray(entry["data"]))
        yield data
        if write:
            with self._lock:
                if volume_id in self.volumes:
                    self.volumes[volume_id]["data"] = bytes(data.buffer).rstrip(b"\0")

    def connection_info(self, volume_id: str, connector: Connector | None) -> dict[str, Any]:
        return {"driver_volume_type": "fake",
                "data": {"volume_id": volume_id, "name": f"volume-{volume_id}",
                         "path": f"/dev/fake/volume-{volume_id}", "format": "raw"}}

    def usage(self) -> tuple[int, int]:
        used = sum(v["size"] for v in self.volumes.values()) << 30
        return used, 1 << 50


class _FakeData(VolumeData):
    """The bytes of a fake volume: ``buffer`` then zeros up to ``size``."""

    def __init__(self, size: int, buffer: bytearray) -> None:
        self.size = size
        self.buffer = buffer

    def read(self, offset: int, length: int) -> bytes | None:
        length = max(0, min(length, self.size - offset))
        if offset >= len(self.buffer):
            return None
        part = bytes(self.buffer[offset:offset + length])
        return part + bytes(length - len(part))

    def write(self, offset: int, data: bytes | None, length: int = 0) -> None:
        if data is None:
            end = min(offset + length, len(self.buffer))
            if end > offset:
                self.buffer[offset:end] = bytes(end - offset)
            return
        if offset + len(data) > self.size:
            raise VolumeError("write beyond the end of the volume")
        if offset > len(self.buffer):
            self.buffer.extend(bytes(offset - len(self.buffer)))
        self.buffer[offset:offset + len(data)] = data
