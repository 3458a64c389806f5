"""Inspection of uploaded image files before any host tool touches them.

A disk image can point QEMU at host files: a qcow2 backing file or external data file,
VMDK extents, a VHD/VHDX parent. ``inspect_image`` decides the real format from the
bytes, requires it to match the declared ``disk_format``, rejects anything that could
reference another file, and records the virtual size.

The parsing is oslo.utils' ``format_inspector`` (the one Glance, Nova and Cinder use
since OSSA-2024-001). On top of its safety checks we add stricter rules of our own:

- raw (and ami/ari/aki) is the catch-all, so the danger is content that a format
  prober would take for something else. Raw is refused when a recognised format
  matches, and also when the file merely *starts like* one (a truncated qcow2 header
  is still refused as raw).
- VMDK: only a sparse (``KDMV``) file with an embedded descriptor whose single extent
  is the file itself (monolithicSparse or streamOptimized). Text descriptors always
  name other files and are refused.
- VHD: fixed or dynamic only (a differencing VHD names its parent). A fixed VHD (footer
  at the end only) is recognised when declared ``vhd``.
- VHDX: refused when it has a parent locator or the file parameters say HasParent.
- VDI: normal or fixed only.

Reads are bounded: the detection reads in chunks until every format's inspector has
what it needs (usually under 1 MiB; a streamOptimized VMDK is read to the end for its
footer), and our own extra checks read at most a few KiB at offsets they validate
against the file size first. Nothing here runs qemu-img.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from oslo_utils.imageutils import format_inspector as fi

from onestack.common.errors import BadRequest

LOG = logging.getLogger(__name__)

#: disk_format values we can inspect. ``vpc`` is QEMU's name for VHD.
RAW_LIKE = frozenset({"raw", "ami", "ari", "aki"})
DISK_FORMATS = RAW_LIKE | {"qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"}
_ALIASES = {"vpc": "vhd"}

_CHUNK = 64 * 1024

# Magic numbers of formats QEMU's probes recognise, checked at the start of any file
# declared raw so that even a header too short to parse cannot pass as raw.
_LEADING_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"QFI\xfb", "qcow/qcow2"),
    (b"QED\x00", "qed"),
    (b"KDMV", "vmdk"),
    (b"COWD", "vmdk (version 3)"),
    (b"# Disk DescriptorFile", "vmdk descriptor"),
    (b"conectix", "vhd"),
    (b"vhdxfile", "vhdx"),
    (b"LUKS\xba\xbe", "luks"),
    (b"Bochs Virtual HD Image", "bochs"),
    (b"WithoutFreeSpace", "parallels"),
    (b"WithouFreSpacExt", "parallels"),
)
_VDI_MAGIC_OFFSET = 0x40
_VDI_MAGIC = struct.pack("<I", 0xBEDA107F)

_VHD_FIXED, _VHD_DYNAMIC = 2, 3
_VDI_NORMAL, _VDI_FIXED = 1, 2

_VHDX_FILE_PARAMETERS = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
_VHDX_PARENT_LOCATOR = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"
_VHDX_HAS_PARENT = 0x2


@dataclass(frozen=True)
class ImageInfo:
    """What inspection found: the real format and the virtual size in bytes."""

    format: str
    virtual_size: int | None


class ImageRejected(BadRequest):
    """The upload is not a safe image of its declared format (rendered as a 400)."""


def inspect_image(path: Path, disk_format: str, max_virtual_size: int) -> ImageInfo:
    """Inspect the file at ``path`` declared as ``disk_format``.

    Returns the detected format (``raw`` for raw-like declarations) and virtual size;
    raises ``ImageRejected`` with a message for the user when the content does not
    match the declaration, could reference a host file, or is larger than
    ``max_virtual_size`` bytes once expanded.
    """
    declared = _ALIASES.get(disk_format, disk_format)
    if declared not in DISK_FORMATS:
        raise ImageRejected(f"Image content of disk_format '{disk_format}' cannot be "
                            f"inspected; use one of {', '.join(sorted(DISK_FORMATS))}")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        matches, errors = _detect(f)
        info = _decide(f, size, declared, matches, errors)
    if info.virtual_size is not None and info.virtual_size > max_virtual_size:
        raise ImageRejected(
            f"Image virtual size {info.virtual_size} bytes exceeds the maximum of "
            f"{max_virtual_size} bytes")
    return info


def _detect(f: BinaryIO) -> tuple[dict[str, fi.FileInspector], dict[str, str]]:
    """Feed the file to every format's inspector; return the matches and the errors."""
    alive = {name: cls() for name, cls in fi.ALL_FORMATS.items() if name != "raw"}
    errors: dict[str, str] = {}
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        for name, inspector in list(alive.items()):
            try:
                inspector.eat_chunk(chunk)
            except Exception as exc:  # a parse failure only means "not this format"
                errors[name] = str(exc) or type(exc).__name__
                del alive[name]
        if all(i.complete for i in alive.values()):
            break
    matches = {}
    for name, inspector in alive.items():
        inspector.finish()
        try:
            if inspector.format_match:
                matches[name] = inspector
        except Exception as exc:
            errors[name] = str(exc) or type(exc).__name__
    return matches, errors


def _decide(f: BinaryIO, size: int, declared: str, matches: dict[str, fi.FileInspector],
            errors: dict[str, str]) -> ImageInfo:
    names = set(matches)
    if names == {"iso", "gpt"}:
        names = {"iso"}  # a hybrid ISO carries an MBR for USB sticks
    if len(names) > 1:
        raise ImageRejected(
            f"Image content matches several formats ({', '.join(sorted(names))}); "
            "refusing an ambiguous image")
    detected = names.pop() if names else "raw"
    if detected in ("raw", "gpt"):
        return _accept_raw(f, size, declared, matches.get("gpt"), errors)
    if declared in RAW_LIKE:
        hint = f"; declare disk_format '{detected}'" if detected in DISK_FORMATS else ""
        raise ImageRejected(
            f"Image declared as disk_format '{declared}' is really in {detected} format{hint}")
    if detected != declared:
        raise ImageRejected(
            f"Image content is {detected}, not the declared disk_format '{declared}'")
    inspector = matches[detected]
    _safety_check(inspector, detected)
    _EXTRA_CHECKS[detected](f, size, inspector)
    virtual_size = inspector.virtual_size
    if detected == "iso" and not virtual_size:
        virtual_size = size
    return ImageInfo(format=detected, virtual_size=virtual_size)


def _accept_raw(f: BinaryIO, size: int, declared: str, gpt: fi.FileInspector | None,
                errors: dict[str, str]) -> ImageInfo:
    """Content no inspector recognised (or a partition table, which is raw too)."""
    if declared == "vhd":
        fixed = _fixed_vhd_size(f, size)
        if fixed is not None:
            return ImageInfo(format="vhd", virtual_size=fixed)
    if declared not in RAW_LIKE:
        why = f" ({errors[declared]})" if declared in errors else ""
        raise ImageRejected(
            f"Image content is not a valid {declared} image{why}")
    magic = _leading_magic(f)
    if magic:
        raise ImageRejected(
            f"Image declared as disk_format '{declared}' starts with a {magic} header "
            "but does not parse as one; refusing it")
    # Glance checks the protective MBR of a partitioned raw disk; a kernel or ramdisk
    # (aki/ari) also ends its first sector with 0x55AA but has no partition table.
    if gpt is not None and declared in ("raw", "ami"):
        _safety_check(gpt, "MBR/GPT partition table")
    return ImageInfo(format="raw", virtual_size=size)


def _safety_check(inspector: fi.FileInspector, what: str) -> None:
    try:
        inspector.safety_check()
    except fi.SafetyCheckFailed as exc:
        reasons = "; ".join(str(v) or k for k, v in exc.failures.items())
        raise ImageRejected(f"Image failed the {what} safety checks: {reasons}") from None
    except fi.ImageFormatError as exc:
        raise ImageRejected(f"Image is not a valid {what} image: {exc}") from None


def _leading_magic(f: BinaryIO) -> str | None:
    head = _pread(f, 0, 512)
    for magic, name in _LEADING_MAGIC:
        if head.startswith(magic):
            return name
    if head[_VDI_MAGIC_OFFSET:_VDI_MAGIC_OFFSET + 4] == _VDI_MAGIC:
        return "vdi"
    return None


def _pread(f: BinaryIO, offset: int, length: int) -> bytes:
    return os.pread(f.fileno(), length, offset)


def _check_qcow2(f: BinaryIO, size: int, inspector: fi.FileInspector) -> None:
    """oslo checks backing file, data-file bit and unknown features; nothing to add."""


def _check_vmdk(f: BinaryIO, size: int, inspector: fi.FileInspector) -> None:
    """Only a sparse file whose one extent is itself: no descriptor, no other files."""
    if not _pread(f, 0, 4) == b"KDMV":
        raise ImageRejected("VMDK descriptor files name other files; upload a single-file "
                            "monolithicSparse or streamOptimized VMDK")
    desc = getattr(inspector, "desc_text", None) or ""
    extents = [line.split() for line in (x.strip() for x in desc.splitlines())
               if line.split(" ")[0] in ("rw", "rdonly", "noaccess")]
    if len(extents) != 1 or len(extents[0]) < 4 or extents[0][2] != "sparse":
        raise ImageRejected("VMDK must have exactly one embedded SPARSE extent")
    if "/" in extents[0][3] or "\\" in extents[0][3]:
        raise ImageRejected("VMDK extent names a path")


def _check_vhd(f: BinaryIO, size: int, inspector: fi.FileInspector) -> None:
    """A differencing VHD names its parent file."""
    footer = _pread(f, 0, 512)
    (disk_type,) = struct.unpack(">I", footer[60:64])
    if disk_type not in (_VHD_FIXED, _VHD_DYNAMIC):
        raise ImageRejected(f"VHD disk type {disk_type} is not fixed or dynamic "
                            "(differencing disks name a parent file)")


def _fixed_vhd_size(f: BinaryIO, size: int) -> int | None:
    """The virtual size of a fixed VHD (footer only at the end), else None."""
    if size < 1024 or size % 512:
        return None
    footer = _pread(f, size - 512, 512)
    if not footer.startswith(b"conectix"):
        return None
    (current_size,) = struct.unpack(">Q", footer[48:56])
    (disk_type,) = struct.unpack(">I", footer[60:64])
    if disk_type != _VHD_FIXED:
        raise ImageRejected(f"VHD disk type {disk_type} without a leading footer")
    if current_size != size - 512:
        raise ImageRejected("Fixed VHD footer size does not match the file")
    return int(current_size)


def _check_vhdx(f: BinaryIO, size: int, inspector: fi.FileInspector) -> None:
    """Refuse a differencing VHDX: it has a parent locator and the HasParent flag."""
    if not inspector.has_region("metadata"):
        raise ImageRejected("VHDX metadata region not found")
    meta = inspector.region("metadata")
    table = bytes(meta.data)
    if len(table) < 32:
        raise ImageRejected("VHDX metadata table is truncated")
    (count,) = struct.unpack("<H", table[10:12])
    if 32 + 32 * count > len(table):
        raise ImageRejected("VHDX metadata table is truncated")
    for i in range(count):
        entry = table[32 + 32 * i:64 + 32 * i]
        guid = fi.VHDXInspector._guid(entry[:16])
        if guid == _VHDX_PARENT_LOCATOR:
            raise ImageRejected("VHDX has a parent locator (differencing disk)")
        if guid == _VHDX_FILE_PARAMETERS:
            item_offset, item_length = struct.unpack("<II", entry[16:24])
            where = meta.offset + item_offset
            if item_length < 8 or where + 8 > size:
                raise ImageRejected("VHDX file parameters lie outside the file")
            (_block_size, flags) = struct.unpack("<II", _pread(f, where, 8))
            if flags & _VHDX_HAS_PARENT:
                raise ImageRejected("VHDX has a parent (differencing disk)")


def _check_vdi(f: BinaryIO, size: int, inspector: fi.FileInspector) -> None:
    """Only normal (dynamic) and fixed VDIs; others refer to a parent."""
    (image_type,) = struct.unpack("<I", _pread(f, 0x4C, 4))
    if image_type not in (_VDI_NORMAL, _VDI_FIXED):
        raise ImageRejected(f"VDI image type {image_type} is not normal or fixed")


def _check_iso(f: BinaryIO, size: int, inspector: fi.FileInspector) -> None:
    """An ISO is opened as raw data by QEMU; nothing can point outside it."""


_EXTRA_CHECKS = {
    "qcow2": _check_qcow2,
    "vmdk": _check_vmdk,
    "vhd": _check_vhd,
    "vhdx": _check_vhdx,
    "vdi": _check_vdi,
    "iso": _check_iso,
}
