"""Image data (Glance v2): streamed upload and download, checksums, what failed or
interrupted uploads leave behind (nothing), quotas, glance-direct import and the
inspection of hostile images, in process."""

from __future__ import annotations

import base64
import hashlib
import random
import tracemalloc

import pytest

from onestack.services.image import Images
from tests.api.image_helpers import (
    HOSTILE,
    OCTET,
    TEST_MAX_VIRTUAL_SIZE,
    asgi_stream,
    assert_glance_error,
    create_image,
    hostile_image,
    make_project_member,
    qemu_img,
    show,
    store_files,
    upload,
)

MiB = 1 << 20


def file_url(image_id: str, what: str = "file") -> str:
    return f"/image/v2/images/{image_id}/{what}"


def chunks_of(total: int, chunk: int = MiB, seed: int = 7):
    """``total`` pseudo-random bytes in chunks, generated as they are consumed."""
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        sent += n
        yield rng.randbytes(n)


# -- upload and download --------------------------------------------------------------

def test_upload_and_download(cloud):
    image = create_image(cloud, name="small")
    data = bytes(range(256)) * 1000
    r = upload(cloud, image["id"], data)
    assert r.content == b""
    after = show(cloud, image["id"])
    assert after["status"] == "active"
    assert after["size"] == len(data) and after["virtual_size"] == len(data)
    assert after["checksum"] == hashlib.md5(data).hexdigest()
    assert after["os_hash_algo"] == "sha512"
    assert after["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert after["stores"] == "local"
    r = cloud.request("GET", file_url(image["id"]))
    assert r.status_code == 200 and r.content == data
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-MD5"] == after["checksum"]
    assert r.headers["Content-Length"] == str(len(data))
    assert store_files(cloud) == [image["id"]]


def test_download_ranges(cloud):
    image = create_image(cloud)
    data = bytes(range(100))
    upload(cloud, image["id"], data)
    for header, first, last in (("bytes=10-19", 10, 19), ("bytes=90-", 90, 99),
                                ("bytes=-5", 95, 99), ("bytes=95-200", 95, 99)):
        r = cloud.request("GET", file_url(image["id"]), headers={"Range": header})
        assert r.status_code == 206, (header, r.text)
        assert r.content == data[first:last + 1]
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/100"
    for header in ("bytes=100-", "bytes=20-10", "bytes=1-2,5-6", "pages=1-2"):
        r = cloud.request("GET", file_url(image["id"]), headers={"Range": header})
        assert_glance_error(r, 416)
        assert r.headers["Content-Range"] == "bytes */100"


def test_download_without_data_is_204(cloud):
    image = create_image(cloud)
    r = cloud.request("GET", file_url(image["id"]))
    assert r.status_code == 204 and r.content == b""
    missing = file_url("00000000-0000-0000-0000-000000000000")
    assert_glance_error(cloud.request("GET", missing), 404)


def test_upload_preconditions(cloud):
    image = create_image(cloud)
    # content type
    r = cloud.request("PUT", file_url(image["id"]), content=b"x",
                      headers={"Content-Type": "application/json"})
    assert_glance_error(r, 415, "octet-stream")
    # announced size
    for bad in ("-1", "ten"):
        r = cloud.request("PUT", file_url(image["id"]), content=b"x",
                          headers={**OCTET, "x-openstack-image-size": bad})
        assert_glance_error(r, 400, "size")
    r = cloud.request("PUT", file_url(image["id"]), content=b"x",
                      headers={**OCTET, "Content-MD5": "not-an-md5"})
    assert_glance_error(r, 400, "Content-MD5")
    r = cloud.request("PUT", file_url(image["id"]), content=b"x",
                      headers={**OCTET, "X-Image-Meta-Store": "ceph"})
    assert_glance_error(r, 400, "store")
    # formats must be set, and the container bare
    bare = create_image(cloud, disk_format=None)
    assert_glance_error(cloud.request("PUT", file_url(bare["id"]), content=b"x",
                                      headers=OCTET), 400, "disk_format")
    ova = create_image(cloud, container_format="ova")
    assert_glance_error(cloud.request("PUT", file_url(ova["id"]), content=b"x",
                                      headers=OCTET), 400, "bare")
    # only queued images take data
    upload(cloud, image["id"], b"first")
    r = cloud.request("PUT", file_url(image["id"]), content=b"second", headers=OCTET)
    assert_glance_error(r, 409, "queued")
    assert cloud.request("GET", file_url(image["id"])).content == b"first"
    for other in (bare, ova):
        assert show(cloud, other["id"])["status"] == "queued"
    assert store_files(cloud) == [image["id"]]


def test_content_md5_and_size_are_checked(cloud):
    data = b"checked data" * 100
    digest = hashlib.md5(data)
    image = create_image(cloud)
    upload(cloud, image["id"], data, headers={
        "Content-MD5": base64.b64encode(digest.digest()).decode(),
        "x-openstack-image-size": str(len(data))})
    assert show(cloud, image["id"])["checksum"] == digest.hexdigest()
    image = create_image(cloud)
    upload(cloud, image["id"], data, headers={"Content-MD5": digest.hexdigest().upper()})
    assert show(cloud, image["id"])["status"] == "active"


@pytest.mark.parametrize("headers, words", [
    ({"Content-MD5": "0" * 32}, ["MD5"]),
    ({"x-openstack-image-size": "999999"}, ["999999"]),
    ({"x-openstack-image-size": "10"}, ["larger"]),
])
def test_mismatch_leaves_nothing_and_the_image_queued(cloud, headers, words):
    image = create_image(cloud)
    r = cloud.request("PUT", file_url(image["id"]), content=b"m" * 4000,
                      headers={**OCTET, **headers})
    assert_glance_error(r, 400, *words)
    after = show(cloud, image["id"])
    assert after["status"] == "queued" and after["size"] is None
    assert after["checksum"] is None
    assert store_files(cloud) == []
    upload(cloud, image["id"], b"m" * 4000)  # a correct upload still works
    assert show(cloud, image["id"])["status"] == "active"


def test_streamed_upload_of_64_mib_keeps_memory_flat(cloud):
    """64 MiB generated on the fly, sent in 1 MiB chunks straight to the ASGI app:
    the hashes match and memory use during the upload stays a few MiB."""
    size = 64 * MiB
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    body = []

    def hashed():
        for chunk in chunks_of(size):
            md5.update(chunk)
            sha512.update(chunk)
            body.append(len(chunk))
            yield chunk

    image = create_image(cloud, name="big")
    tracemalloc.start()
    try:
        result = asgi_stream(cloud, "PUT", file_url(image["id"]), hashed(),
                             headers={**OCTET, "x-openstack-image-size": str(size)})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == 204, result.body
    assert sum(body) == size
    assert peak < 16 * MiB, f"peak traced memory {peak / MiB:.1f} MiB during a 64 MiB upload"
    after = show(cloud, image["id"])
    assert after["status"] == "active" and after["size"] == size
    assert after["checksum"] == md5.hexdigest()
    assert after["os_hash_value"] == sha512.hexdigest()
    # The download streams too: read it through the app chunk by chunk and re-hash.
    result = asgi_stream(cloud, "GET", file_url(image["id"]), None)
    assert result.status == 200
    assert hashlib.sha512(result.body).hexdigest() == after["os_hash_value"]
    assert result.headers["content-md5"] == md5.hexdigest()


def test_interrupted_upload_leaves_nothing(cloud):
    image = create_image(cloud)
    result = asgi_stream(cloud, "PUT", file_url(image["id"]), chunks_of(10 * MiB),
                         headers={**OCTET, "x-openstack-image-size": str(20 * MiB)},
                         disconnect_at_end=True)
    assert result.status == 400  # nobody is listening any more; the point is cleanup
    after = show(cloud, image["id"])
    assert after["status"] == "queued" and after["size"] is None
    assert store_files(cloud) == []
    upload(cloud, image["id"], b"again")
    assert show(cloud, image["id"])["status"] == "active"


def test_image_deleted_during_upload(cloud):
    image = create_image(cloud)

    def delete_midway(n: int) -> None:
        if n == 3:
            r = cloud.request("DELETE", f"/image/v2/images/{image['id']}")
            assert r.status_code == 204

    result = asgi_stream(cloud, "PUT", file_url(image["id"]), chunks_of(8 * MiB),
                         headers=OCTET, on_chunk=delete_midway)
    assert result.status == 410, result.body
    assert_glance_error(cloud.request("GET", f"/image/v2/images/{image['id']}"), 404)
    assert store_files(cloud) == []


def test_a_second_upload_while_saving_is_a_conflict(cloud):
    image = create_image(cloud)
    seen = {}

    def try_again(n: int) -> None:
        if n == 1:
            seen["status"] = show(cloud, image["id"])["status"]
            r = cloud.request("PUT", file_url(image["id"]), content=b"x", headers=OCTET)
            seen["second"] = r.status_code

    result = asgi_stream(cloud, "PUT", file_url(image["id"]), chunks_of(3 * MiB),
                         headers=OCTET, on_chunk=try_again)
    assert result.status == 204
    assert seen == {"status": "saving", "second": 409}


def test_image_size_cap(cloud):
    cloud.config.image.max_image_size = MiB
    image = create_image(cloud)
    r = cloud.request("PUT", file_url(image["id"]), content=bytes(MiB + 1),
                      headers={**OCTET, "x-openstack-image-size": str(MiB + 1)})
    assert_glance_error(r, 413, "too large")
    result = asgi_stream(cloud, "PUT", file_url(image["id"]), chunks_of(3 * MiB, 256 << 10),
                         headers=OCTET)  # no size announced: stopped while streaming
    assert result.status == 413
    assert show(cloud, image["id"])["status"] == "queued"
    assert store_files(cloud) == []
    upload(cloud, image["id"], bytes(MiB))


def test_deleting_an_image_keeps_open_downloads_whole(cloud):
    """Readers that already opened the data (a download, compute copying it into its
    cache) finish even if the image is deleted meanwhile."""
    image = create_image(cloud)
    data = bytes(range(256)) * 4096
    upload(cloud, image["id"], data)
    ctx = cloud.services.identity.tokens.validate(cloud.admin_token)
    download = cloud.services.images.data.open(ctx, image["id"])
    assert cloud.request("DELETE", f"/image/v2/images/{image['id']}").status_code == 204
    assert store_files(cloud) == []
    try:
        assert download.file.read() == data
    finally:
        download.file.close()


# -- quotas ---------------------------------------------------------------------------

def test_image_count_quota(cloud):
    cloud.config.image.image_count_total = 2
    first = create_image(cloud)
    create_image(cloud)
    r = cloud.request("POST", "/image/v2/images", json={"name": "third"})
    assert_glance_error(r, 413, "image_count_total")
    usage = cloud.request("GET", "/image/v2/info/usage").json()["usage"]
    assert usage["image_count_total"] == {"limit": 2, "usage": 2}
    cloud.request("DELETE", f"/image/v2/images/{first['id']}")
    create_image(cloud)


def test_image_size_quota(cloud):
    cloud.config.image.image_size_total = 2  # MiB
    one = create_image(cloud)
    upload(cloud, one["id"], bytes(MiB))
    two = create_image(cloud)
    # announced: refused before any data is read
    r = cloud.request("PUT", file_url(two["id"]), content=bytes(MiB + 1),
                      headers={**OCTET, "x-openstack-image-size": str(MiB + 1)})
    assert_glance_error(r, 413, "image_size_total")
    # not announced: stopped as soon as it passes the quota
    result = asgi_stream(cloud, "PUT", file_url(two["id"]), chunks_of(4 * MiB, 256 << 10),
                         headers=OCTET)
    assert result.status == 413, result.body
    assert show(cloud, two["id"])["status"] == "queued"
    assert store_files(cloud) == [one["id"]]
    usage = cloud.request("GET", "/image/v2/info/usage").json()["usage"]
    assert usage["image_size_total"] == {"limit": 2, "usage": 1}
    upload(cloud, two["id"], bytes(MiB))  # exactly at the limit
    # a project's own limit overrides the default
    cloud.services.images.quotas.set(cloud.admin_project_id, image_size_total=10)
    three = create_image(cloud)
    upload(cloud, three["id"], bytes(3 * MiB))
    cloud.services.images.quotas.set(cloud.admin_project_id, image_count_total=3)
    assert_glance_error(cloud.request("POST", "/image/v2/images", json={}), 413)


def test_quotas_are_per_project(cloud):
    cloud.config.image.image_count_total = 1
    token, _ = make_project_member(cloud, "quota-user")
    create_image(cloud)
    create_image(cloud, token=token)
    create_image(cloud, token=token, status=413)


# -- inspection -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_images_are_rejected_and_killed(cloud, tmp_path, kind):
    cloud.config.image.max_virtual_size = TEST_MAX_VIRTUAL_SIZE
    disk_format, words = HOSTILE[kind]
    data = hostile_image(kind, tmp_path).read_bytes()
    image = create_image(cloud, disk_format=disk_format)
    r = cloud.request("PUT", file_url(image["id"]), content=data, headers=OCTET)
    assert_glance_error(r, 400, words)
    after = show(cloud, image["id"])
    assert after["status"] == "killed" and after["size"] is None
    assert after["checksum"] is None
    assert store_files(cloud) == []
    assert cloud.request("GET", file_url(image["id"])).status_code == 204
    # a killed image takes no more data; it can only be deleted
    r = cloud.request("PUT", file_url(image["id"]), content=b"x", headers=OCTET)
    assert_glance_error(r, 409)
    assert cloud.request("DELETE", f"/image/v2/images/{image['id']}").status_code == 204


def test_genuine_qcow2_records_its_virtual_size(cloud, tmp_path):
    path = tmp_path / "disk.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "64M")
    image = create_image(cloud, disk_format="qcow2")
    upload(cloud, image["id"], path.read_bytes())
    after = show(cloud, image["id"])
    assert after["status"] == "active"
    assert after["virtual_size"] == 64 * MiB and after["size"] == path.stat().st_size


# -- glance-direct import -------------------------------------------------------------

def import_body(method: str = "glance-direct", **extra):
    return {"method": {"name": method}, **extra}


def test_glance_direct_import(cloud):
    image = create_image(cloud, name="imported")
    data = b"staged data" * 1000
    r = cloud.request("PUT", file_url(image["id"], "stage"), content=data, headers=OCTET)
    assert r.status_code == 204, r.text
    staged = show(cloud, image["id"])
    assert staged["status"] == "uploading" and staged["size"] == len(data)
    assert store_files(cloud) == [f"staging/{image['id']}"]
    assert cloud.request("GET", file_url(image["id"])).status_code == 204
    r = cloud.request("POST", file_url(image["id"], "import"), json=import_body(
        stores=["local"], all_stores_must_succeed=True))
    assert r.status_code == 202, r.text
    after = show(cloud, image["id"])
    assert after["status"] == "active" and after["virtual_size"] == len(data)
    assert after["checksum"] == hashlib.md5(data).hexdigest()
    assert after["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert cloud.request("GET", file_url(image["id"])).content == data
    assert store_files(cloud) == [image["id"]]


def test_import_refusals(cloud):
    image = create_image(cloud)
    url = file_url(image["id"], "import")
    assert_glance_error(cloud.request("POST", url, json=import_body()), 409, "uploading")
    cloud.request("PUT", file_url(image["id"], "stage"), content=b"data", headers=OCTET)
    for body, status, word in (
            ({}, 400, "method"), ({"method": {}}, 400, "name"),
            (import_body("web-download", ), 400, "web-download"),
            (import_body(all_stores="yes"), 400, "all_stores"),
            (import_body(stores="local"), 400, "stores"),
            (import_body(stores=["ceph"]), 409, "ceph")):
        assert_glance_error(cloud.request("POST", url, json=body), status, word)
    r = cloud.request("PUT", file_url(image["id"], "stage"), content=b"x", headers=OCTET)
    assert_glance_error(r, 409)  # already staged
    assert show(cloud, image["id"])["status"] == "uploading"


def test_interrupted_stage_leaves_nothing(cloud):
    image = create_image(cloud)
    result = asgi_stream(cloud, "PUT", file_url(image["id"], "stage"), chunks_of(5 * MiB),
                         headers=OCTET, disconnect_at_end=True)
    assert result.status == 400
    assert show(cloud, image["id"])["status"] == "queued"
    assert store_files(cloud) == []


def test_hostile_import_is_rejected_and_killed(cloud, tmp_path):
    data = hostile_image("qcow2-backing-file", tmp_path).read_bytes()
    image = create_image(cloud, disk_format="qcow2")
    cloud.request("PUT", file_url(image["id"], "stage"), content=data, headers=OCTET)
    r = cloud.request("POST", file_url(image["id"], "import"), json=import_body())
    assert_glance_error(r, 400, "backing file")
    assert show(cloud, image["id"])["status"] == "killed"
    assert store_files(cloud) == []


def test_deleting_a_staged_image_removes_the_staged_data(cloud):
    image = create_image(cloud)
    cloud.request("PUT", file_url(image["id"], "stage"), content=b"data", headers=OCTET)
    cloud.request("DELETE", f"/image/v2/images/{image['id']}")
    assert store_files(cloud) == []


# -- restart --------------------------------------------------------------------------

def test_start_up_cleans_what_a_crash_left(cloud):
    """A server that died mid-upload: the partial file goes, the image is queued again;
    data with no image behind it goes; staged data survives."""
    services = cloud.services
    saving = create_image(cloud)
    staged = create_image(cloud)
    cloud.request("PUT", file_url(staged["id"], "stage"), content=b"s", headers=OCTET)
    with services.db.session() as s:
        from onestack.db.models import Image
        s.get(Image, saving["id"]).status = "saving"
    store = services.images.store
    partial = store.new_partial(saving["id"])
    partial.write(b"half")
    partial.finish()
    orphan = "11111111-2222-3333-4444-555555555555"
    store.path(orphan).write_bytes(b"orphan")
    Images(services.db, services.config, services.identity)
    assert show(cloud, saving["id"])["status"] == "queued"
    assert show(cloud, staged["id"])["status"] == "uploading"
    assert store_files(cloud) == [f"staging/{staged['id']}"]


def test_import_without_staged_data_is_a_conflict(cloud):
    image = create_image(cloud)
    cloud.request("PUT", file_url(image["id"], "stage"), content=b"data", headers=OCTET)
    cloud.services.images.store.staged_path(image["id"]).unlink()
    r = cloud.request("POST", file_url(image["id"], "import"), json=import_body())
    assert_glance_error(r, 409, "stage it again")
    assert show(cloud, image["id"])["status"] == "queued"
