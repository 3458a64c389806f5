"""Image inspection: hostile images crafted byte by byte, and genuine ones from qemu-img."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from onestack.common.errors import BadRequest
from onestack.services.image.inspect import ImageInfo, ImageRejected, inspect_image

MiB = 1024 * 1024
GiB = 1024 * MiB
LIMIT = 64 * GiB


def write(tmp_path: Path, data: bytes, name: str = "image") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rejected(path: Path, disk_format: str, match: str | None = None,
             limit: int = LIMIT) -> str:
    with pytest.raises(ImageRejected, match=match) as info:
        inspect_image(path, disk_format, limit)
    return info.value.message


# --- crafted images ---------------------------------------------------------------------

def qcow2(size: int = GiB, version: int = 3, backing: bytes = b"", incompatible: int = 0,
          total: int = 4096) -> bytes:
    """A qcow2 header (optionally naming a backing file at offset 512), zero padded."""
    backing_offset = 512 if backing else 0
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", version, backing_offset, len(backing), 16, size,
        0, 1, 0x30000, 0x10000, 1, 0, 0, incompatible, 0, 0, 4, 104)
    data = bytearray(total)
    data[:len(header)] = header
    data[512:512 + len(backing)] = backing
    return bytes(data)


def vmdk_sparse(descriptor: str, sectors: int = 2048, desc_sector: int = 1,
                gd_offset: int = 21) -> bytes:
    """A hosted sparse extent (KDMV) header with an embedded text descriptor."""
    desc = descriptor.encode()
    desc_sectors = 20
    header = struct.pack("<4sIIQQQQIQQQ?cccc", b"KDMV", 1, 3, sectors, 128, desc_sector,
                         desc_sectors, 512, 0, gd_offset, 128, False,
                         b"\n", b" ", b"\r", b"\n")
    data = bytearray(64 * 1024)
    data[:len(header)] = header
    data[512:512 + len(desc)] = desc
    return bytes(data)


def vmdk_descriptor(create_type: str, extents: list[str]) -> str:
    return "\n".join([
        "# Disk DescriptorFile", "version=1", "CID=fffffffe", "parentCID=ffffffff",
        f'createType="{create_type}"', "", "# Extent description", *extents, "",
        "# The Disk Data Base", "#DDB", 'ddb.virtualHWVersion = "4"',
        'ddb.geometry.cylinders = "2"', 'ddb.adapterType = "ide"', ""])


def vhd_footer(disk_type: int, size: int = GiB) -> bytes:
    footer = bytearray(512)
    struct.pack_into(">8sIIQI4sI4sQQI", footer, 0, b"conectix", 2, 0x10000,
                     512 if disk_type != 2 else 0xFFFFFFFFFFFFFFFF, 0, b"qemu", 0x50003,
                     b"Wi2k", size, size, 0)
    struct.pack_into(">I", footer, 60, disk_type)
    return bytes(footer)


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


VHDX_META_REGION = "8B7CA206-4790-4B9A-B8FE-575F050F886E"
VHDX_VIRTUAL_DISK_SIZE = "2FA54224-CD1B-4876-B211-5DBED83BF4B8"
VHDX_FILE_PARAMETERS = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
VHDX_PARENT_LOCATOR = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"


def vhdx(size: int = GiB, has_parent: bool = False, parent_locator: bool = False) -> bytes:
    """The parts of a VHDX the inspector reads: ident, region table, metadata table."""
    meta_at = 1 * MiB
    data = bytearray(2 * MiB)
    data[:8] = b"vhdxfile"
    region = bytearray(b"regi" + struct.pack("<III", 0, 1, 0))
    region += _guid(VHDX_META_REGION) + struct.pack("<QII", meta_at, MiB, 1)
    data[192 * 1024:192 * 1024 + len(region)] = region
    items = [(VHDX_FILE_PARAMETERS, 0x10000, struct.pack("<II", 32 * MiB,
                                                          2 if has_parent else 0)),
             (VHDX_VIRTUAL_DISK_SIZE, 0x10008, struct.pack("<Q", size))]
    if parent_locator:
        items.append((VHDX_PARENT_LOCATOR, 0x10010, b"/etc/passwd".ljust(16, b"\0")))
    table = bytearray(b"metadata" + struct.pack("<HH", 0, len(items)) + bytes(20))
    for guid, offset, payload in items:
        table += _guid(guid) + struct.pack("<IIII", offset, len(payload), 0, 0)
        data[meta_at + offset:meta_at + offset + len(payload)] = payload
    data[meta_at:meta_at + len(table)] = table
    return bytes(data)


def vdi(image_type: int, size: int = GiB) -> bytes:
    header = bytearray(1024)
    header[:40] = b"<<< QEMU VM Virtual Disk Image >>>\n".ljust(40, b"\0")
    struct.pack_into("<III", header, 0x40, 0xBEDA107F, 0x00010001, 400)
    struct.pack_into("<I", header, 0x4C, image_type)
    struct.pack_into("<Q", header, 0x170, size)
    return bytes(header)


def iso(blocks: int = 100, mbr: bool = False) -> bytes:
    data = bytearray(blocks * 2048)
    pvd = bytearray(2048)
    pvd[0:7] = b"\x01CD001\x01"
    struct.pack_into("<I", pvd, 80, blocks)
    struct.pack_into("<H", pvd, 128, 2048)
    data[32768:32768 + 2048] = pvd
    if mbr:
        data[446:462] = struct.pack("<B3BB3BII", 0x80, 0, 2, 0, 0x17, 0, 0, 0, 0, blocks * 4)
        data[510:512] = b"\x55\xaa"
    return bytes(data)


def mbr(boot_flag: int = 0x80, ostype: int = 0x83, size: int = MiB) -> bytes:
    data = bytearray(size)
    data[446:462] = struct.pack("<B3BB3BII", boot_flag, 0, 2, 0, ostype, 0, 0, 0, 2048, 100)
    data[510:512] = b"\x55\xaa"
    return bytes(data)


# --- the error type ---------------------------------------------------------------------

def test_rejection_is_a_bad_request(tmp_path: Path) -> None:
    assert issubclass(ImageRejected, BadRequest)
    exc = ImageRejected("nope")
    assert exc.status == 400 and exc.message == "nope"


def test_unknown_disk_format_is_rejected(tmp_path: Path) -> None:
    rejected(write(tmp_path, b"x" * 1024), "ploop", "cannot be inspected")


# --- qcow2 ------------------------------------------------------------------------------

def test_qcow2_accepted_with_virtual_size(tmp_path: Path) -> None:
    info = inspect_image(write(tmp_path, qcow2(size=5 * GiB)), "qcow2", LIMIT)
    assert info == ImageInfo(format="qcow2", virtual_size=5 * GiB)


def test_qcow2_version2_accepted(tmp_path: Path) -> None:
    assert inspect_image(write(tmp_path, qcow2(version=2)), "qcow2", LIMIT).format == "qcow2"


def test_qcow2_backing_file_etc_passwd(tmp_path: Path) -> None:
    path = write(tmp_path, qcow2(backing=b"/etc/passwd"))
    rejected(path, "qcow2", "backing file")
    rejected(path, "raw", "really in qcow2")


def test_qcow2_backing_file_relative_name(tmp_path: Path) -> None:
    rejected(write(tmp_path, qcow2(backing=b"other-image")), "qcow2", "backing file")


def test_qcow2_external_data_file_bit(tmp_path: Path) -> None:
    rejected(write(tmp_path, qcow2(incompatible=1 << 2)), "qcow2", "data_file")


def test_qcow2_unknown_incompatible_feature(tmp_path: Path) -> None:
    rejected(write(tmp_path, qcow2(incompatible=1 << 9)), "qcow2", "Unknown")


def test_qcow_version1_rejected(tmp_path: Path) -> None:
    rejected(write(tmp_path, qcow2(version=1)), "qcow2", "version")


def test_qcow2_declared_raw_is_rejected(tmp_path: Path) -> None:
    rejected(write(tmp_path, qcow2()), "raw", "really in qcow2")
    for raw_like in ("ami", "ari", "aki"):
        rejected(write(tmp_path, qcow2()), raw_like, "really in qcow2")


def test_qcow2_declared_vmdk_is_a_mismatch(tmp_path: Path) -> None:
    rejected(write(tmp_path, qcow2()), "vmdk", "content is qcow2")


def test_truncated_qcow2_header(tmp_path: Path) -> None:
    path = write(tmp_path, qcow2()[:50])
    rejected(path, "qcow2", "not a valid qcow2")
    # Too short to parse, but it still starts like one: never let it pass as raw.
    rejected(path, "raw", "starts with a qcow/qcow2 header")


def test_qcow2_over_the_virtual_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path, qcow2(size=1 << 60))
    rejected(path, "qcow2", "exceeds the maximum", limit=LIMIT)
    assert inspect_image(path, "qcow2", 1 << 60).virtual_size == 1 << 60


def test_qcow2_with_an_mbr_signature_is_ambiguous(tmp_path: Path) -> None:
    data = bytearray(qcow2())
    data[446:462] = struct.pack("<B3BB3BII", 0x80, 0, 2, 0, 0x83, 0, 0, 0, 2048, 100)
    data[510:512] = b"\x55\xaa"
    rejected(write(tmp_path, bytes(data)), "qcow2", "several formats")


# --- VMDK -------------------------------------------------------------------------------

def test_vmdk_text_descriptor_with_flat_extent_on_etc_passwd(tmp_path: Path) -> None:
    desc = vmdk_descriptor("monolithicFlat", ['RW 100 FLAT "/etc/passwd" 0'])
    path = write(tmp_path, desc.encode())
    rejected(path, "vmdk")
    rejected(path, "raw", "vmdk")


def test_vmdk_text_descriptor_claiming_sparse_without_slash(tmp_path: Path) -> None:
    # No '/' in the name, and a subformat the upstream check allows: still a descriptor
    # that names another file next to the image, so refused.
    desc = vmdk_descriptor("monolithicSparse", ['RW 100 FLAT "passwd" 0'])
    rejected(write(tmp_path, desc.encode()), "vmdk", "descriptor files name other files")


def test_vmdk_sparse_accepted(tmp_path: Path) -> None:
    desc = vmdk_descriptor("monolithicSparse", ['RW 2048 SPARSE "disk.vmdk"'])
    info = inspect_image(write(tmp_path, vmdk_sparse(desc)), "vmdk", LIMIT)
    assert info == ImageInfo(format="vmdk", virtual_size=2048 * 512)


def test_vmdk_sparse_embedded_descriptor_points_at_etc_passwd(tmp_path: Path) -> None:
    desc = vmdk_descriptor("monolithicSparse", ['RW 100 FLAT "/etc/passwd" 0'])
    path = write(tmp_path, vmdk_sparse(desc))
    rejected(path, "vmdk", "vmdk safety checks")
    rejected(path, "raw", "really in vmdk")


def test_vmdk_sparse_with_a_second_extent(tmp_path: Path) -> None:
    desc = vmdk_descriptor("monolithicSparse",
                           ['RW 2048 SPARSE "disk.vmdk"', 'RW 2048 FLAT "other-image" 0'])
    rejected(write(tmp_path, vmdk_sparse(desc)), "vmdk", "exactly one")


def test_vmdk_sparse_with_a_flat_extent_without_slash(tmp_path: Path) -> None:
    desc = vmdk_descriptor("monolithicSparse", ['RW 2048 FLAT "passwd" 0'])
    rejected(write(tmp_path, vmdk_sparse(desc)), "vmdk", "exactly one embedded SPARSE")


def test_vmdk_sparse_split_subformat(tmp_path: Path) -> None:
    desc = vmdk_descriptor("twoGbMaxExtentSparse", ['RW 2048 SPARSE "disk-s001.vmdk"'])
    rejected(write(tmp_path, vmdk_sparse(desc)), "vmdk", "Unsupported subformat")


def test_vmdk_sparse_with_a_misplaced_descriptor(tmp_path: Path) -> None:
    desc = vmdk_descriptor("monolithicSparse", ['RW 2048 SPARSE "disk.vmdk"'])
    rejected(write(tmp_path, vmdk_sparse(desc, desc_sector=7)), "vmdk", "not a valid vmdk")


def test_vmdk_sparse_with_unknown_descriptor_lines(tmp_path: Path) -> None:
    desc = vmdk_descriptor("monolithicSparse", ['RW 2048 SPARSE "disk.vmdk"'])
    desc += "\nparentFileNameHint /etc/passwd\n"
    rejected(write(tmp_path, vmdk_sparse(desc)), "vmdk", "vmdk safety checks")


def test_truncated_vmdk_header(tmp_path: Path) -> None:
    desc = vmdk_descriptor("monolithicSparse", ['RW 2048 SPARSE "disk.vmdk"'])
    path = write(tmp_path, vmdk_sparse(desc)[:600])
    rejected(path, "vmdk")
    rejected(path, "raw")


# --- VHD, VHDX, VDI ---------------------------------------------------------------------

def test_vhd_dynamic_accepted_and_vpc_alias(tmp_path: Path) -> None:
    path = write(tmp_path, vhd_footer(3) + bytes(1536) + vhd_footer(3))
    assert inspect_image(path, "vhd", LIMIT) == ImageInfo(format="vhd", virtual_size=GiB)
    assert inspect_image(path, "vpc", LIMIT).format == "vhd"
    rejected(path, "raw", "really in vhd")


def test_vhd_differencing_rejected(tmp_path: Path) -> None:
    rejected(write(tmp_path, vhd_footer(4) + bytes(1536)), "vhd", "differencing")


def test_vhd_fixed_footer_at_the_end(tmp_path: Path) -> None:
    path = write(tmp_path, bytes(MiB) + vhd_footer(2, size=MiB))
    assert inspect_image(path, "vhd", LIMIT) == ImageInfo(format="vhd", virtual_size=MiB)


def test_vhd_footer_at_the_end_must_be_fixed(tmp_path: Path) -> None:
    rejected(write(tmp_path, bytes(MiB) + vhd_footer(4, size=MiB)), "vhd", "disk type 4")


def test_vhdx_accepted(tmp_path: Path) -> None:
    info = inspect_image(write(tmp_path, vhdx(size=3 * GiB)), "vhdx", LIMIT)
    assert info == ImageInfo(format="vhdx", virtual_size=3 * GiB)


def test_vhdx_with_parent_locator_rejected(tmp_path: Path) -> None:
    rejected(write(tmp_path, vhdx(parent_locator=True)), "vhdx", "parent locator")


def test_vhdx_has_parent_flag_rejected(tmp_path: Path) -> None:
    rejected(write(tmp_path, vhdx(has_parent=True)), "vhdx", "parent")


def test_vhdx_declared_raw(tmp_path: Path) -> None:
    rejected(write(tmp_path, vhdx()), "raw", "really in vhdx")


def test_vdi_normal_accepted_and_differencing_rejected(tmp_path: Path) -> None:
    assert inspect_image(write(tmp_path, vdi(1)), "vdi", LIMIT).virtual_size == GiB
    rejected(write(tmp_path, vdi(4)), "vdi", "image type 4")
    rejected(write(tmp_path, vdi(1)), "raw", "really in vdi")


def test_qed_is_never_accepted(tmp_path: Path) -> None:
    data = b"QED\x00" + bytes(4092)
    rejected(write(tmp_path, data), "raw", "qed")
    rejected(write(tmp_path, data), "qcow2")


# --- ISO, raw and partition tables ------------------------------------------------------

def test_iso_accepted_with_its_volume_size(tmp_path: Path) -> None:
    info = inspect_image(write(tmp_path, iso(blocks=100)), "iso", LIMIT)
    assert info == ImageInfo(format="iso", virtual_size=100 * 2048)


def test_hybrid_iso_with_an_mbr(tmp_path: Path) -> None:
    assert inspect_image(write(tmp_path, iso(mbr=True)), "iso", LIMIT).format == "iso"


def test_iso_declared_raw_and_raw_declared_iso(tmp_path: Path) -> None:
    rejected(write(tmp_path, iso()), "raw", "really in iso")
    rejected(write(tmp_path, os.urandom(64 * 1024), "r"), "iso", "not a valid iso")


def test_raw_garbage_accepted_as_raw_only(tmp_path: Path) -> None:
    path = write(tmp_path, os.urandom(3 * MiB))
    assert inspect_image(path, "raw", LIMIT) == ImageInfo(format="raw", virtual_size=3 * MiB)
    for declared in ("qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"):
        rejected(path, declared, "not a valid")


def test_raw_text_and_empty_files(tmp_path: Path) -> None:
    text = write(tmp_path, b"just some text\n" * 1000, "text")
    assert inspect_image(text, "raw", LIMIT).format == "raw"
    empty = write(tmp_path, b"", "empty")
    assert inspect_image(empty, "raw", LIMIT) == ImageInfo(format="raw", virtual_size=0)
    rejected(empty, "qcow2")


def test_raw_over_the_virtual_size_limit(tmp_path: Path) -> None:
    rejected(write(tmp_path, bytes(2 * MiB)), "raw", "exceeds", limit=MiB)


def test_raw_disk_with_a_partition_table(tmp_path: Path) -> None:
    assert inspect_image(write(tmp_path, mbr()), "raw", LIMIT).format == "raw"


def test_raw_disk_with_a_broken_partition_table(tmp_path: Path) -> None:
    # Glance's rule: a partitioned raw disk must have a sane MBR ...
    path = write(tmp_path, mbr(boot_flag=0x42))
    rejected(path, "raw", "boot flag")
    # ... but a kernel (aki) also ends its first sector with 0x55AA and has no table.
    assert inspect_image(path, "aki", LIMIT).format == "raw"


def test_raw_declared_for_text_descriptor_magic(tmp_path: Path) -> None:
    rejected(write(tmp_path, b"# Disk DescriptorFile\n" + bytes(100)), "raw")


def test_sparse_big_raw_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(4 * GiB)
    assert inspect_image(path, "raw", LIMIT).virtual_size == 4 * GiB


# --- genuine images from qemu-img -------------------------------------------------------

qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")


def qemu_img_create(path: Path, fmt: str, size: str = "64M", *options: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *options, str(path), size],
                   check=True)
    return path


def qemu_virtual_size(path: Path, fmt: str) -> int:
    out = subprocess.run(["qemu-img", "info", "-f", fmt, "--output=json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(json.loads(out)["virtual-size"])


@qemu_img
@pytest.mark.parametrize(("qemu_format", "options", "disk_format"), [
    ("qcow2", (), "qcow2"),
    ("qcow2", ("-o", "compat=0.10"), "qcow2"),
    ("raw", (), "raw"),
    ("vmdk", (), "vmdk"),
    ("vmdk", ("-o", "subformat=streamOptimized"), "vmdk"),
    ("vpc", (), "vhd"),
    ("vpc", ("-o", "subformat=fixed"), "vhd"),
    ("vhdx", (), "vhdx"),
    ("vdi", (), "vdi"),
])
def test_genuine_images(tmp_path: Path, qemu_format: str, options: tuple[str, ...],
                        disk_format: str) -> None:
    path = qemu_img_create(tmp_path / "disk", qemu_format, "64M", *options)
    info = inspect_image(path, disk_format, LIMIT)
    assert info.format == disk_format
    assert info.virtual_size == qemu_virtual_size(path, qemu_format)
    if disk_format != "raw" and not (qemu_format == "vpc" and options):
        # A fixed VHD is a raw disk with a footer at its end, so raw fits it too.
        rejected(path, "raw", "really in")


@qemu_img
def test_genuine_qcow2_with_data_converted_from_raw(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(os.urandom(MiB) + bytes(3 * MiB))
    out = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", "-c", str(raw), str(out)], check=True)
    assert inspect_image(out, "qcow2", LIMIT) == ImageInfo("qcow2", 4 * MiB)
    assert inspect_image(raw, "raw", LIMIT) == ImageInfo("raw", 4 * MiB)


@qemu_img
def test_qemu_img_backing_file_and_data_file(tmp_path: Path) -> None:
    base = qemu_img_create(tmp_path / "base", "qcow2")
    overlay = qemu_img_create(tmp_path / "overlay", "qcow2", "64M",
                              "-b", str(base), "-F", "qcow2")
    rejected(overlay, "qcow2", "backing file")
    with_data = qemu_img_create(tmp_path / "with-data", "qcow2", "64M",
                                "-o", f"data_file={tmp_path / 'data'}")
    rejected(with_data, "qcow2", "data_file")


@qemu_img
@pytest.mark.parametrize("subformat", ["monolithicFlat", "twoGbMaxExtentSparse",
                                       "twoGbMaxExtentFlat"])
def test_qemu_img_multi_file_vmdks(tmp_path: Path, subformat: str) -> None:
    path = qemu_img_create(tmp_path / "disk.vmdk", "vmdk", "64M", "-o",
                           f"subformat={subformat}")
    rejected(path, "vmdk")
    rejected(path, "raw")


@qemu_img
def test_qemu_img_qed(tmp_path: Path) -> None:
    rejected(qemu_img_create(tmp_path / "disk", "qed"), "raw", "qed")
