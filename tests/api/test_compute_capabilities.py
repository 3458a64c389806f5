"""Host capabilities: declared by the drivers, reported by the host, filtered on by the
scheduler, and behind the API's "not supported" answers."""

from __future__ import annotations

from onestack.db.models import ComputeNode, Instance, utcnow
from tests.api.compute_helpers import (
    action,
    boot,
    boot_env,
    force_state,
    nova,
    ok,
    server,
    wait_for,
)
from tests.api.nova_helpers import nova_error


def node_capabilities(cloud, host: str | None = None) -> dict[str, bool]:
    with cloud.services.db.session() as session:
        query = session.query(ComputeNode)
        node = query.filter_by(host=host).one() if host else query.one()
        return dict(node.capabilities)


def set_capabilities(cloud, host: str, **values: bool) -> None:
    with cloud.services.db.session() as session:
        node = session.query(ComputeNode).filter_by(host=host).one()
        node.capabilities = {**node.capabilities, **values}


def test_the_host_reports_its_drivers_capabilities(cloud):
    env = boot_env(cloud)
    sid = boot(cloud, env)["id"]
    wait_for(cloud, sid, "ACTIVE")
    have = node_capabilities(cloud)
    assert have["pause"] and have["suspend"] and have["snapshot"] and have["resize"]
    assert have["live_migration"] is False and have["rbd"] is False
    assert cloud.services.agent is not None
    assert cloud.services.agent.capabilities() == have


def test_the_scheduler_places_only_on_hosts_with_the_flavors_capabilities(quiet, env):
    set_capabilities(quiet, "host-a", pause=True, live_migration=False)
    ok(nova(quiet, "POST", f"/flavors/{env.flavor}/os-extra_specs",
            json={"extra_specs": {"capabilities:live_migration": "<is> True"}}))
    sid = boot(quiet, env)["id"]
    body = server(quiet, sid)
    assert body["status"] == "ERROR"
    assert "host-a: lacks the capabilities live_migration" in body["fault"]["message"]
    set_capabilities(quiet, "host-a", live_migration=True)
    sid = boot(quiet, env)["id"]
    with quiet.services.db.session() as session:
        assert session.get(Instance, sid).host == "host-a"


def test_actions_the_host_cannot_do_are_501(quiet, env):
    sid = boot(quiet, env)["id"]
    force_state(quiet, sid, vm_state="active", task_state=None, power_state=1,
                launched_at=utcnow())
    # A host that reported nothing (an older agent) is not second-guessed.
    r = action(quiet, sid, {"pause": None})
    assert r.status_code == 202, r.text
    force_state(quiet, sid, task_state=None)
    set_capabilities(quiet, "host-a", pause=False, suspend=True, snapshot=False)
    nova_error(action(quiet, sid, {"pause": None}), 501, "not supported: pause",
               "cannot: pause")
    nova_error(action(quiet, sid, {"createImage": {"name": "snap"}}), 501, "createImage")
    assert action(quiet, sid, {"suspend": None}).status_code == 202


def test_features_the_hosts_drivers_lack_name_the_host(quiet, env):
    """Interfaces, volumes, diagnostics, moves and rescue: the 501 says which host's
    drivers cannot, when the host declared it; a server of another project is a 404."""
    sid = boot(quiet, env)["id"]
    set_capabilities(quiet, "host-a", attach_interface=False, volume_hotplug=False,
                     diagnostics=False, live_migration=False, rescue=False)
    host_says = "the drivers of host host-a cannot"
    nova_error(nova(quiet, "POST", f"/servers/{sid}/os-interface",
                    json={"interfaceAttachment": {}}), 501, host_says, "attach_interface")
    nova_error(nova(quiet, "POST", f"/servers/{sid}/os-volume_attachments",
                    json={"volumeAttachment": {
                        "volumeId": "6b9f6c55-0c9e-4a54-9f7a-6f1b2d3c4e5f"}}), 501, host_says,
               "volume_hotplug")
    nova_error(nova(quiet, "GET", f"/servers/{sid}/diagnostics"), 501, host_says,
               "diagnostics")
    for name, capability in (("migrate", "live_migration"),
                             ("os-migrateLive", "live_migration"),
                             ("rescue", "rescue")):
        nova_error(action(quiet, sid, {name: None}), 501, host_says, capability)
    # Drivers that could still meet a control plane without the operation.
    set_capabilities(quiet, "host-a", diagnostics=True)
    nova_error(nova(quiet, "GET", f"/servers/{sid}/diagnostics"), 409,
               "Cannot get_diagnostics")  # it does not run (test_compute_diagnostics.py)
    nova_error(action(quiet, "00000000-0000-0000-0000-000000000000", {"rescue": None}),
               404)
