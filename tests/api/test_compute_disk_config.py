"""``OS-DCF:diskConfig``: kept per server, set on create, rebuild, resize and update,
and shown as set (Tempest's ``servers.test_disk_config``)."""

from __future__ import annotations

import pytest

from onestack.db.models import Instance
from tests.api.compute_helpers import (
    action,
    boot,
    force_state,
    nova,
    nova_error,
    ok,
    server,
    upload_image,
)


def _active(cloud, sid: str) -> None:
    force_state(cloud, sid, vm_state="active", task_state=None, task_args={},
                power_state=1)


def _disk_config(cloud, sid: str) -> str:
    return server(cloud, sid)["OS-DCF:diskConfig"]


def test_create_show_update_and_list(quiet, env):
    # unset: the image says nothing, so MANUAL (Nova's default)
    sid = boot(quiet, env)["id"]
    assert _disk_config(quiet, sid) == "MANUAL"
    created = boot(quiet, env, **{"OS-DCF:diskConfig": "AUTO"})
    assert created["OS-DCF:diskConfig"] == "AUTO"
    assert _disk_config(quiet, created["id"]) == "AUTO"
    _active(quiet, sid)
    r = nova(quiet, "PUT", f"/servers/{sid}",
             json={"server": {"OS-DCF:diskConfig": "AUTO"}})
    assert ok(r)["server"]["OS-DCF:diskConfig"] == "AUTO"
    assert _disk_config(quiet, sid) == "AUTO"
    r = nova(quiet, "PUT", f"/servers/{sid}",
             json={"server": {"OS-DCF:diskConfig": "MANUAL"}})
    assert ok(r)["server"]["OS-DCF:diskConfig"] == "MANUAL"
    listed = {s["id"]: s["OS-DCF:diskConfig"]
              for s in ok(nova(quiet, "GET", "/servers/detail"))["servers"]}
    assert listed == {sid: "MANUAL", created["id"]: "AUTO"}
    # bad values are Nova's schema 400, and change nothing
    for bad in ("auto", "", None, 1):
        nova_error(nova(quiet, "PUT", f"/servers/{sid}",
                        json={"server": {"OS-DCF:diskConfig": bad}}), 400,
                   "OS-DCF:diskConfig")
    nova_error(boot(quiet, env, status=400, **{"OS-DCF:diskConfig": "SOMETIMES"}), 400,
               "OS-DCF:diskConfig")
    assert _disk_config(quiet, sid) == "MANUAL"


def test_rebuild_sets_it_or_keeps_it(quiet, env):
    sid = boot(quiet, env, **{"OS-DCF:diskConfig": "AUTO"})["id"]
    _active(quiet, sid)
    other = upload_image(quiet, name="other")
    r = action(quiet, sid, {"rebuild": {"imageRef": other, "OS-DCF:diskConfig": "MANUAL"}})
    assert r.status_code == 202, r.text
    assert r.json()["server"]["OS-DCF:diskConfig"] == "MANUAL"
    assert _disk_config(quiet, sid) == "MANUAL"
    _active(quiet, sid)
    assert action(quiet, sid, {"rebuild": {"imageRef": other}}).status_code == 202
    assert _disk_config(quiet, sid) == "MANUAL"  # not given: kept
    _active(quiet, sid)
    nova_error(action(quiet, sid, {"rebuild": {"imageRef": other,
                                               "OS-DCF:diskConfig": "NONE"}}), 400,
               "OS-DCF:diskConfig")
    r = action(quiet, sid, {"rebuild": {"imageRef": other, "OS-DCF:diskConfig": "AUTO"}})
    assert r.status_code == 202, r.text
    assert _disk_config(quiet, sid) == "AUTO"


@pytest.mark.parametrize("start, to", [("MANUAL", "AUTO"), ("AUTO", "MANUAL")])
def test_resize_records_it(quiet, env, start, to):
    sid = boot(quiet, env, **{"OS-DCF:diskConfig": start})["id"]
    _active(quiet, sid)
    nova_error(action(quiet, sid, {"resize": {"flavorRef": "2",
                                              "OS-DCF:diskConfig": "x"}}), 400,
               "OS-DCF:diskConfig")
    assert _disk_config(quiet, sid) == start
    r = action(quiet, sid, {"resize": {"flavorRef": "2", "OS-DCF:diskConfig": to}})
    assert r.status_code == 202, r.text
    assert _disk_config(quiet, sid) == to
    with quiet.services.db.session() as session:
        inst = session.get(Instance, sid)
        assert inst is not None
        assert inst.task_state == "resize_prep"
        assert inst.auto_disk_config is (to == "AUTO")


def test_the_image_decides_when_unset_and_may_refuse_auto(quiet, env):
    auto_image = upload_image(quiet, name="auto", auto_disk_config="true")
    sid = boot(quiet, env, imageRef=auto_image)["id"]
    assert _disk_config(quiet, sid) == "AUTO"
    disabled = upload_image(quiet, name="fixed", auto_disk_config="Disabled")
    nova_error(boot(quiet, env, status=400, imageRef=disabled,
                    **{"OS-DCF:diskConfig": "AUTO"}), 400,
               f"Requested image {disabled} has automatic disk resize disabled.")
    manual = boot(quiet, env, imageRef=disabled, **{"OS-DCF:diskConfig": "MANUAL"})["id"]
    _active(quiet, manual)
    nova_error(nova(quiet, "PUT", f"/servers/{manual}",
                    json={"server": {"OS-DCF:diskConfig": "AUTO"}}), 400,
               "has automatic disk resize disabled")
    nova_error(action(quiet, manual, {"resize": {"flavorRef": "2",
                                                 "OS-DCF:diskConfig": "AUTO"}}), 400,
               "has automatic disk resize disabled")
    assert _disk_config(quiet, manual) == "MANUAL"
    # rebuilding onto an image that allows it may turn it on
    r = action(quiet, manual, {"rebuild": {"imageRef": env.image,
                                           "OS-DCF:diskConfig": "AUTO"}})
    assert r.status_code == 202, r.text
    assert _disk_config(quiet, manual) == "AUTO"
    # and rebuilding onto the disabled one with AUTO is refused
    _active(quiet, manual)
    nova_error(action(quiet, manual, {"rebuild": {"imageRef": disabled,
                                                  "OS-DCF:diskConfig": "AUTO"}}), 400,
               "has automatic disk resize disabled")
