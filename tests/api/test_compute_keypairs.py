"""/compute/v2.1/os-keypairs: import, generation (before 2.92), fingerprints, types,
pagination, other users' key pairs, quota."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from onestack.common.errors import BadRequest
from onestack.services.compute.keypairs import generate_x509
from tests.api.nova_helpers import nova, nova_error, ok, tenant


def ssh_key(comment: str = "me@host") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()
    return f"{text} {comment}"


def md5_fingerprint(public_key: str) -> str:
    raw = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(raw[i:i + 2] for i in range(0, len(raw), 2))


def create(cloud, token="admin", microversion="2.92", status=None, **keypair):
    r = nova(cloud, "POST", "/os-keypairs", token, microversion, json={"keypair": keypair})
    if status is None:
        return ok(r, 201 if microversion and microversion != "2.1" else 200)["keypair"]
    return r


def test_import_show_list_delete(cloud):
    key = ssh_key()
    created = create(cloud, name="mine", public_key=key)
    assert created == {"name": "mine", "public_key": key, "fingerprint": md5_fingerprint(key),
                       "user_id": cloud.admin_user_id, "type": "ssh"}
    shown = ok(nova(cloud, "GET", "/os-keypairs/mine", microversion="2.2"))["keypair"]
    assert shown["fingerprint"] == md5_fingerprint(key) and shown["type"] == "ssh"
    assert shown["user_id"] == cloud.admin_user_id and shown["deleted"] is False
    assert isinstance(shown["id"], int) and shown["created_at"]
    listed = ok(nova(cloud, "GET", "/os-keypairs"))["keypairs"]
    assert listed == [{"keypair": {"name": "mine", "public_key": key,
                                   "fingerprint": md5_fingerprint(key)}}]
    assert nova(cloud, "DELETE", "/os-keypairs/mine", microversion="2.2").status_code == 204
    nova_error(nova(cloud, "GET", "/os-keypairs/mine"), 404, "Keypair mine not found for user")
    nova_error(nova(cloud, "DELETE", "/os-keypairs/mine"), 404)


def test_old_versions_status_codes(cloud):
    r = nova(cloud, "POST", "/os-keypairs",
             json={"keypair": {"name": "old", "public_key": ssh_key()}})
    assert r.status_code == 200 and "type" not in r.json()["keypair"]
    assert nova(cloud, "DELETE", "/os-keypairs/old").status_code == 202


def test_generation_before_292(cloud):
    created = create(cloud, microversion="2.91", name="generated")
    assert created["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert created["public_key"].startswith("ssh-rsa ")
    assert created["public_key"].endswith(" Generated-by-Nova")
    assert created["fingerprint"] == md5_fingerprint(created["public_key"])
    private = serialization.load_pem_private_key(created["private_key"].encode(), None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    assert created["public_key"].startswith(public)
    shown = ok(nova(cloud, "GET", "/os-keypairs/generated"))["keypair"]
    assert "private_key" not in shown
    # from 2.92 the public key is required
    nova_error(create(cloud, status=400, name="nokey"), 400, "public_key")


def test_x509(cloud):
    created = create(cloud, microversion="2.91", name="cert", type="x509")
    assert created["type"] == "x509"
    assert created["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    assert base64.b64decode(created["private_key"])
    assert len(created["fingerprint"].split(":")) == 20
    _, pem = generate_x509("someone")
    imported = create(cloud, name="imported", type="x509", public_key=pem)
    assert imported["fingerprint"].count(":") == 19
    nova_error(create(cloud, status=400, name="badcert", type="x509", public_key=ssh_key()),
               400, "Keypair data is invalid")


@pytest.mark.parametrize("keypair, version", [
    ({"name": "bad/name", "public_key": "k"}, "2.92"),
    ({"name": "", "public_key": "k"}, "2.92"),
    ({"name": "x" * 256, "public_key": "k"}, "2.92"),
    ({"name": " lead", "public_key": "k"}, "2.92"),
    ({"name": 5, "public_key": "k"}, "2.92"),
    ({"name": "at@sign"}, "2.91"),
    ({"name": "ok", "public_key": "not a key"}, "2.92"),
    ({"name": "ok", "public_key": "ssh-rsa AAAA"}, "2.92"),
    ({"name": "ok", "public_key": 7}, "2.92"),
    ({"name": "ok", "public_key": "k", "type": "pgp"}, "2.92"),
    ({"name": "ok", "type": "x509"}, "2.1"),
    ({"name": "ok", "user_id": "x"}, "2.9"),
    ({"name": "ok", "bogus": 1}, "2.92"),
])
def test_validation(cloud, keypair, version):
    r = nova(cloud, "POST", "/os-keypairs", microversion=version, json={"keypair": keypair})
    nova_error(r, 400)


def test_names_292_allow_at_and_dot(cloud):
    created = create(cloud, name="me@example.org", public_key=ssh_key())
    assert created["name"] == "me@example.org"
    nova_error(create(cloud, microversion="2.91", status=400, name="me@example.org",
                      public_key=ssh_key()), 400)


def test_duplicate_name(cloud):
    create(cloud, name="dup", public_key=ssh_key())
    nova_error(create(cloud, status=409, name="dup", public_key=ssh_key()), 409,
               "Key pair 'dup' already exists.")


def test_pagination(cloud):
    for name in ("a", "b", "c"):
        create(cloud, name=name, public_key=ssh_key())
    page = ok(nova(cloud, "GET", "/os-keypairs?limit=2", microversion="2.35"))
    assert [k["keypair"]["name"] for k in page["keypairs"]] == ["a", "b"]
    assert page["keypairs_links"][0]["href"].endswith("/os-keypairs?limit=2&marker=b")
    page = ok(nova(cloud, "GET", "/os-keypairs?limit=2&marker=b", microversion="2.35"))
    assert [k["keypair"]["name"] for k in page["keypairs"]] == ["c"]
    assert "keypairs_links" not in page
    nova_error(nova(cloud, "GET", "/os-keypairs?marker=zzz", microversion="2.35"), 400)
    nova_error(nova(cloud, "GET", "/os-keypairs?limit=-1", microversion="2.35"), 400)
    # before 2.35 the parameters are ignored
    assert len(ok(nova(cloud, "GET", "/os-keypairs?limit=1"))["keypairs"]) == 3


def test_users_and_admins(cloud):
    a, b = tenant(cloud, "alpha"), tenant(cloud, "beta")
    create(cloud, a.token, name="shared-name", public_key=ssh_key())
    create(cloud, b.token, name="shared-name", public_key=ssh_key())
    assert [k["keypair"]["name"] for k in ok(nova(cloud, "GET", "/os-keypairs",
                                                  a.token))["keypairs"]] == ["shared-name"]
    assert ok(nova(cloud, "GET", "/os-keypairs"))["keypairs"] == []
    # an admin reaches other users' key pairs with user_id (2.10)
    listed = ok(nova(cloud, "GET", f"/os-keypairs?user_id={a.user_id}", microversion="2.10"))
    assert len(listed["keypairs"]) == 1
    shown = ok(nova(cloud, "GET", f"/os-keypairs/shared-name?user_id={b.user_id}",
                    microversion="2.10"))["keypair"]
    assert shown["user_id"] == b.user_id
    made = create(cloud, name="for-a", public_key=ssh_key(), user_id=a.user_id)
    assert made["user_id"] == a.user_id
    assert nova(cloud, "DELETE", f"/os-keypairs/for-a?user_id={a.user_id}",
                microversion="2.10").status_code == 204
    # others may not
    nova_error(nova(cloud, "GET", f"/os-keypairs?user_id={b.user_id}", a.token, "2.10"), 403,
               "os_compute_api:os-keypairs:index")
    nova_error(nova(cloud, "GET", f"/os-keypairs/shared-name?user_id={b.user_id}", a.token,
                    "2.10"), 403)
    nova_error(create(cloud, a.token, status=403, name="x", public_key=ssh_key(),
                      user_id=b.user_id), 403)
    nova_error(nova(cloud, "DELETE", f"/os-keypairs/shared-name?user_id={b.user_id}",
                    a.token, "2.10"), 403)


def test_quota(cloud):
    t = tenant(cloud, "alpha")
    r = nova(cloud, "PUT", f"/os-quota-sets/{t.project_id}",
             json={"quota_set": {"key_pairs": 2}})
    assert r.status_code == 200, r.text
    create(cloud, t.token, name="one", public_key=ssh_key())
    create(cloud, t.token, name="two", public_key=ssh_key())
    nova_error(create(cloud, t.token, status=403, name="three", public_key=ssh_key()), 403,
               "Quota exceeded, too many key pairs.")
    assert nova(cloud, "DELETE", "/os-keypairs/one", t.token, "2.92").status_code == 204
    create(cloud, t.token, name="three", public_key=ssh_key())


def test_get_for_server_create(cloud):
    key = ssh_key()
    create(cloud, name="boot", public_key=key)
    keypairs = cloud.services.compute.keypairs
    with cloud.services.db.session() as session:
        assert keypairs.get(session, cloud.admin_user_id, "boot").public_key == key
        with pytest.raises(BadRequest, match="Invalid key_name provided."):
            keypairs.get(session, cloud.admin_user_id, "nope")
