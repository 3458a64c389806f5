"""Security compliance ([identity] password_expires_days, unique_last_password_count,
minimum_password_age, password_regex, change_password_upon_first_use,
disable_user_account_days_inactive, lockout_*) and the user options that exempt a user,
in process."""

from __future__ import annotations

import datetime as dt

from onestack.db.models import User, utcnow
from tests.api.test_users import (
    PASSWORD,
    assert_error,
    change_password,
    create_project,
    create_user,
    grant,
    login,
    member,
    token_for,
)

EXPIRED = "The password is expired and needs to be changed for user: {}."


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def set_user(cloud, user_id: str, **columns) -> None:
    with cloud.services.identity.db.session() as session:
        user = session.get(User, user_id)
        for key, value in columns.items():
            setattr(user, key, value)


def test_defaults_are_off(cloud):
    cfg = cloud.config.identity
    assert (cfg.password_expires_days, cfg.unique_last_password_count,
            cfg.minimum_password_age, cfg.password_regex,
            cfg.change_password_upon_first_use,
            cfg.disable_user_account_days_inactive) == (0, 0, 0, "", False, 0)
    user, _, token = member(cloud, "plain")
    assert user["password_expires_at"] is None
    # the same password again, at once, twice: nothing forbids it
    assert change_password(cloud, user["id"], token, PASSWORD, PASSWORD).status_code == 204
    token = token_for(cloud, user["id"])
    assert change_password(cloud, user["id"], token, PASSWORD, PASSWORD).status_code == 204


def test_password_expires_after_the_configured_days(cloud):
    cloud.config.identity.password_expires_days = 30
    user = create_user(cloud, "ella")
    expires = parse_time(user["password_expires_at"])
    assert abs(expires - (utcnow() + dt.timedelta(days=30))) < dt.timedelta(minutes=1)
    shown = cloud.request("GET", f"/v3/users/{user['id']}").json()["user"]
    assert shown["password_expires_at"] == user["password_expires_at"]
    # the token tells it too
    r = login(cloud, user["id"])
    assert r.status_code == 201, r.text
    assert parse_time(r.json()["token"]["user"]["password_expires_at"]) == expires
    # once past, the login is refused with Keystone's message
    set_user(cloud, user["id"], password_expires_at=utcnow() - dt.timedelta(seconds=1))
    assert_error(login(cloud, user["id"]), 401, EXPIRED.format(user["id"]))
    # ... unless the user is exempt
    r = cloud.request("PATCH", f"/v3/users/{user['id']}",
                      json={"user": {"options": {"ignore_password_expiry": True}}})
    assert r.status_code == 200, r.text
    assert login(cloud, user["id"]).status_code == 201
    # a user created exempt gets no expiry at all
    exempt = create_user(cloud, "fred", options={"ignore_password_expiry": True})
    assert exempt["password_expires_at"] is None


def test_expired_password_is_changed_without_a_token(cloud):
    cloud.config.identity.password_expires_days = 30
    user = create_user(cloud, "gina")
    set_user(cloud, user["id"], password_expires_at=utcnow() - dt.timedelta(days=1))
    assert login(cloud, user["id"]).status_code == 401
    r = change_password(cloud, user["id"], None, PASSWORD, "gina-renewed")
    assert r.status_code == 204, r.text
    r = login(cloud, user["id"], "gina-renewed")
    assert r.status_code == 201, r.text
    assert parse_time(r.json()["token"]["user"]["password_expires_at"]) > \
        utcnow() + dt.timedelta(days=29)


def test_unique_last_password_count(cloud):
    cloud.config.identity.unique_last_password_count = 2
    user, project, token = member(cloud, "hugo")
    assert change_password(cloud, user["id"], token, PASSWORD, "hugo-one").status_code == 204
    token = token_for(cloud, user["id"], "hugo-one", project["id"])
    message = ("The new password cannot be identical to a previous password. The total "
               "number which includes the new password must be unique is 2.")
    # neither the current password nor the one before it
    assert_error(change_password(cloud, user["id"], token, "hugo-one", "hugo-one"), 400,
                 message)
    assert_error(change_password(cloud, user["id"], token, "hugo-one", PASSWORD), 400,
                 message)
    assert change_password(cloud, user["id"], token, "hugo-one", "hugo-two"
                           ).status_code == 204
    token = token_for(cloud, user["id"], "hugo-two", project["id"])
    # three passwords back is allowed again
    assert change_password(cloud, user["id"], token, "hugo-two", PASSWORD).status_code == 204
    # an administrator's reset is not held to the history
    for _ in range(2):
        r = cloud.request("PATCH", f"/v3/users/{user['id']}",
                          json={"user": {"password": PASSWORD}})
        assert r.status_code == 200, r.text
    token_for(cloud, user["id"])


def test_minimum_password_age(cloud):
    cloud.config.identity.minimum_password_age = 1
    user, project, token = member(cloud, "ivy")
    # the administrator set the first password: the user may change it at once
    assert change_password(cloud, user["id"], token, PASSWORD, "ivy-one").status_code == 204
    token = token_for(cloud, user["id"], "ivy-one", project["id"])
    r = change_password(cloud, user["id"], token, "ivy-one", "ivy-two")
    assert_error(r, 400, "minimum password age", "used for 1 day(s)")
    token_for(cloud, user["id"], "ivy-one")   # unchanged
    # a day later it may change
    set_user(cloud, user["id"], password_created_at=utcnow() - dt.timedelta(days=1, hours=1))
    assert change_password(cloud, user["id"], token, "ivy-one", "ivy-two").status_code == 204
    # and an administrator's reset is never held to the age
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": {"password": "x" * 8}})
    assert r.status_code == 200, r.text
    token_for(cloud, user["id"], "x" * 8)


def test_password_regex(cloud):
    cfg = cloud.config.identity
    cfg.password_regex = r"^(?=.*\d).{8,}$"
    cfg.password_regex_description = "at least 8 characters, one of them a digit"
    r = cloud.request("POST", "/v3/users", json={"user": {"name": "jo", "password": "short"}})
    assert_error(r, 400, "The password does not match the requirements: at least 8 "
                         "characters, one of them a digit.")
    user = create_user(cloud, "jack", password="jacks-pass-1")
    token = token_for(cloud, user["id"], "jacks-pass-1")
    r = change_password(cloud, user["id"], token, "jacks-pass-1", "no-digits-here")
    assert_error(r, 400, "one of them a digit")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}",
                      json={"user": {"password": "nodigits"}})
    assert_error(r, 400, "one of them a digit")
    assert change_password(cloud, user["id"], token, "jacks-pass-1", "jacks-pass-2"
                           ).status_code == 204


def test_change_password_upon_first_use(cloud):
    cloud.config.identity.change_password_upon_first_use = True
    project = create_project(cloud, "kim-project")
    user = create_user(cloud, "kim")
    grant(cloud, "UserProject", user["id"], project["id"])
    assert user["password_expires_at"] is not None
    assert_error(login(cloud, user["id"]), 401, EXPIRED.format(user["id"]))
    # the user changes it (no token to be had) and may then log in
    assert change_password(cloud, user["id"], None, PASSWORD, "kims-own").status_code == 204
    r = login(cloud, user["id"], "kims-own", project["id"])
    assert r.status_code == 201, r.text
    assert r.json()["token"]["user"]["password_expires_at"] is None
    # an administrator's reset has to be changed again
    r = cloud.request("PATCH", f"/v3/users/{user['id']}",
                      json={"user": {"password": "reset-by-admin"}})
    assert r.status_code == 200, r.text
    assert_error(login(cloud, user["id"], "reset-by-admin"), 401, "expired")
    # a user exempt from it logs in at once
    exempt = create_user(cloud, "lee", options={"ignore_change_password_upon_first_use": True})
    assert exempt["password_expires_at"] is None
    assert login(cloud, exempt["id"]).status_code == 201
    # the operator's reset (onestack admin reset-password) is not an API admin's
    cloud.services.identity.users.reset_password(user["id"], "Default", "operator-set")
    assert login(cloud, user["id"], "operator-set").status_code == 201


def test_lockout_reads_the_identity_options(cloud):
    cfg = cloud.config.identity
    cfg.lockout_failure_attempts, cfg.lockout_duration = 2, 60
    user = create_user(cloud, "max")
    for _ in range(2):
        assert login(cloud, user["id"], "wrong").status_code == 401
    assert_error(login(cloud, user["id"]), 401, "locked")
    set_user(cloud, user["id"], locked_until=utcnow() - dt.timedelta(seconds=1))
    assert login(cloud, user["id"]).status_code == 201
    # ignore_lockout_failure_attempts exempts a user
    exempt = create_user(cloud, "nia", options={"ignore_lockout_failure_attempts": True})
    for _ in range(3):
        assert login(cloud, exempt["id"], "wrong").status_code == 401
    assert login(cloud, exempt["id"]).status_code == 201


def test_inactive_users_are_disabled(cloud):
    cloud.config.identity.disable_user_account_days_inactive = 7
    user = create_user(cloud, "omar")
    assert login(cloud, user["id"]).status_code == 201   # records the activity
    with cloud.services.identity.db.session() as session:
        assert session.get(User, user["id"]).last_active_at is not None
    set_user(cloud, user["id"], last_active_at=utcnow() - dt.timedelta(days=8))
    assert_error(login(cloud, user["id"]), 401,
                 f"The account is disabled for user: {user['id']}.")
    assert cloud.request("GET", f"/v3/users/{user['id']}").json()["user"]["enabled"] is False
    # an administrator enables the user again
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": {"enabled": True}})
    assert r.status_code == 200 and r.json()["user"]["enabled"] is True, r.text
    assert login(cloud, user["id"]).status_code == 201
    # ignore_user_inactivity exempts a user
    set_user(cloud, user["id"], last_active_at=utcnow() - dt.timedelta(days=30),
             options={"ignore_user_inactivity": True})
    assert login(cloud, user["id"]).status_code == 201


def test_lock_password_forbids_own_changes(cloud):
    user, _, token = member(cloud, "pia")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}",
                      json={"user": {"options": {"lock_password": True}}})
    assert r.status_code == 200, r.text
    assert_error(change_password(cloud, user["id"], token, PASSWORD, "pias-new"), 403,
                 "password policy disallowing password changes")
    token_for(cloud, user["id"])
