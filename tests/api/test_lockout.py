"""Lockout without a denial of service: the admin is exempt, failures name nobody, and a
client that keeps failing logins is slowed per address (429), in process."""

from __future__ import annotations

import pytest

from onestack.common.errors import TooManyRequests
from onestack.services.identity.bootstrap import bootstrap
from onestack.services.identity.throttle import FailedLogins
from tests.api.test_users import PASSWORD, assert_error, create_user, login, token_for
from tests.conftest import ADMIN_PASSWORD


def admin_login(cloud, password: str = ADMIN_PASSWORD):
    return cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}}}})


def assert_names_nobody(r, *ids: str) -> None:
    for user_id in ids:
        assert user_id not in r.text


def test_the_admin_cannot_be_locked_out(cloud):
    cloud.config.identity.failed_logins_per_source = 0  # lockout alone
    r = cloud.request("GET", f"/v3/users/{cloud.admin_user_id}")
    assert r.json()["user"]["options"] == {"ignore_lockout_failure_attempts": True}
    for _ in range(cloud.config.identity.lockout_failure_attempts + 5):
        r = admin_login(cloud, "wrong")
        assert_error(r, 401)
        assert_names_nobody(r, cloud.admin_user_id)
    assert admin_login(cloud).status_code == 201


def test_a_user_is_locked_and_no_answer_names_or_reveals_them(cloud):
    cloud.config.identity.lockout_failure_attempts = 3
    user = create_user(cloud, "victor")
    unknown = login(cloud, "no-such-user-id", "wrong")
    for _ in range(3):
        r = login(cloud, user["id"], "wrong")
        assert r.json() == unknown.json()
    # locked: a guess looks exactly like a guess at a user that does not exist ...
    r = login(cloud, user["id"], "wrong again")
    assert r.status_code == 401 and r.json() == unknown.json()
    # ... and only the right password learns about the lock, without an id
    r = login(cloud, user["id"])
    assert_error(r, 401, "locked")
    assert_names_nobody(r, user["id"])
    # the user's own password change says the same
    cloud.services.identity.users.reset_password(user["id"], "Default", PASSWORD)
    token = token_for(cloud, user["id"])
    for _ in range(3):
        assert cloud.request("POST", f"/v3/users/{user['id']}/password", token=token, json={
            "user": {"original_password": "wrong", "password": "new-pw"}}).status_code == 401
    r = cloud.request("POST", f"/v3/users/{user['id']}/password", token=token, json={
        "user": {"original_password": PASSWORD, "password": "new-pw"}})
    assert r.status_code == 401 and "locked" in r.text and user["id"] not in r.text


def test_the_option_round_trips_through_the_users_api(cloud):
    cloud.config.identity.lockout_failure_attempts = 2
    user = create_user(cloud, "wendy")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={
        "user": {"options": {"ignore_lockout_failure_attempts": True}}})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["options"] == {"ignore_lockout_failure_attempts": True}
    r = cloud.request("GET", f"/v3/users/{user['id']}")
    assert r.json()["user"]["options"] == {"ignore_lockout_failure_attempts": True}
    for _ in range(4):
        assert_error(login(cloud, user["id"], "wrong"), 401)
    token_for(cloud, user["id"])
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={
        "user": {"options": {"ignore_lockout_failure_attempts": None}}})
    assert r.json()["user"]["options"] == {}
    for _ in range(2):
        assert_error(login(cloud, user["id"], "wrong"), 401)
    assert_error(login(cloud, user["id"]), 401, "locked")


def test_bootstrap_exempts_an_existing_admin_but_keeps_an_explicit_choice(cloud):
    ident = cloud.services.identity
    ident.users.update(None, cloud.admin_user_id, {"options": {
        "ignore_lockout_failure_attempts": None}})  # an install from before the option
    bootstrap(ident, cloud.config.public_url)
    assert ident.users.get(None, cloud.admin_user_id).options == {
        "ignore_lockout_failure_attempts": True}
    ident.users.update(None, cloud.admin_user_id, {"options": {
        "ignore_lockout_failure_attempts": False}})
    bootstrap(ident, cloud.config.public_url)
    assert ident.users.get(None, cloud.admin_user_id).options == {
        "ignore_lockout_failure_attempts": False}


def test_failed_logins_from_one_address_are_limited(cloud):
    ic = cloud.config.identity
    ic.failed_logins_per_source, ic.failed_logins_window = 4, 60
    user = create_user(cloud, "xena")
    for _ in range(4):
        assert_error(admin_login(cloud, "wrong"), 401)
    r = admin_login(cloud)  # even the right password: this address must wait
    assert_error(r, 429, "Too many failed logins")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert_error(login(cloud, user["id"]), 429)
    # application credentials count and are refused the same way
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": "nope", "secret": "x"}}}})
    assert_error(r, 429)
    # tokens already issued, and rescoping, are unaffected
    assert cloud.request("GET", "/v3/auth/projects").status_code == 200
    ic.failed_logins_per_source = 0
    assert admin_login(cloud).status_code == 201


def test_the_window_slides():
    now = [1000.0]

    class Config:
        failed_logins_per_source = 3
        failed_logins_window = 60

    limit = FailedLogins(lambda: Config, clock=lambda: now[0])  # type: ignore[arg-type,return-value]
    for _ in range(3):
        limit.check("198.51.100.1")
        limit.failed("198.51.100.1")
        now[0] += 10
    with pytest.raises(TooManyRequests) as caught:
        limit.check("198.51.100.1")
    assert caught.value.headers["Retry-After"] == "30"
    limit.check("198.51.100.2")  # another address is not limited
    limit.check(None)
    now[0] += 30  # the first failure has left the window
    limit.check("198.51.100.1")
