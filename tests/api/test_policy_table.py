"""Every route of the app, called by every kind of caller, against the expected-policy
table ``tests/api/policy_table.toml`` (issue 9).

The routes come from the app's own routing table (``app.routes``, through every
``Mount``), so a route added without a row in the table fails this test, and so does a
row whose route is gone. Each route and method is called, with an empty body, by:

- ``admin``: the cloud administrator;
- ``member``: the ``member`` of project alpha, which owns every resource named in the
  path (network, port, server, image, keypair, ...);
- ``reader``: a user holding only ``reader`` on alpha;
- ``app_cred``: alpha's member through an application credential limited to
  ``reader``;
- ``other``: the member of project beta;
- ``unscoped``: alpha's member with an unscoped token;
- ``none``: no token at all.

An outcome is ``allow`` (authorization passed: anything but 401 and 403, and not the
404 that hides another project's resource), ``deny`` (403, or that 404) or ``unauth``
(401). A 404 to a read the administrator also gets a 404 for, or on a row marked
``absent``, says nothing (there is nothing to find, e.g. no volume attachments) and
is taken as what the table expects. An empty body is enough to prove a refusal by
access level because every route checks its level before it reads the body
(``onestack.api.policy``); where a refusal comes from the service (another project's
resource), the table's ``[bodies]`` give a body that gets that far.

Requests that change something run after the refused ones, least privileged first,
and any change (a 2xx to a write) makes the fixtures be made afresh for the next
request, so a delete cannot spoil what comes after it.

``ONESTACK_POLICY_RECORD=1`` prints a table of what the app does now instead of
comparing (a start for new rows; review every one of them).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from onestack.api.metadata import sign
from tests.api.compute_helpers import LATEST, add_host, boot_env, upload_image
from tests.api.rbac_helpers import Callers, callers
from tests.api.test_compute_keypairs import ssh_key
from tests.conftest import Cloud, running_cloud

TABLE = Path(__file__).with_name("policy_table.toml")
TOKENS = ("admin", "member", "reader", "app_cred", "other", "unscoped", "none")
OUTCOMES = ("allow", "deny", "unauth")
SAFE = ("GET", "HEAD")


# -- the app's routes ------------------------------------------------------------------


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through every Mount; ``*`` for a route that
    takes any method, ``WS`` for a WebSocket route."""
    for route in routes:
        if isinstance(route, Mount):
            yield from walk(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            for method in sorted(route.methods or {"*"}):
                if method != "HEAD":   # Starlette adds HEAD to every GET
                    yield method, prefix + route.path
        elif isinstance(route, WebSocketRoute):
            yield "WS", prefix + route.path
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


# -- the table -------------------------------------------------------------------------


Row = tuple[dict[str, str], bool]


def load_table() -> tuple[dict[str, dict[str, str]], dict[str, Row], dict[str, Any]]:
    """The levels (name -> token -> outcome); for each "METHOD /path", the outcome per
    token and whether the row is marked ``absent``; the bodies to send."""
    data = tomllib.loads(TABLE.read_text())
    levels: dict[str, dict[str, str]] = data["levels"]
    for name, outcomes in levels.items():
        assert set(outcomes) == set(TOKENS), f"level {name}: one outcome per token"
        assert set(outcomes.values()) <= set(OUTCOMES), f"level {name}"
    rows = {}
    for key, spec in data["routes"].items():
        level, *changes = [part.strip() for part in spec.split(",")]
        assert level in levels, f"{key}: unknown level {level!r}"
        expected = dict(levels[level])
        absent = False
        for change in changes:
            if change == "absent":
                absent = True
                continue
            token, _, outcome = change.partition("=")
            assert token in TOKENS and outcome in OUTCOMES, f"{key}: bad {change!r}"
            expected[token] = outcome
        rows[key] = (expected, absent)
    bodies = data.get("bodies", {})
    for key, text in bodies.items():
        assert key in rows, f"[bodies] {key}: no such row"
        json.loads(text)
    return levels, rows, bodies


# -- the fixtures, owned by project alpha ----------------------------------------------


class World:
    """The callers and, made when first needed, the resources the paths name. ``spoil``
    forgets the resources (and, after an Identity change, the callers): the next
    request makes new ones."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.generation = 0
        self._callers: Callers | None = None
        self._made: dict[str, Any] = {}

    def spoil(self, identity: bool) -> None:
        self.generation += 1
        self._made = {}
        if identity:
            self._callers = None

    @property
    def who(self) -> Callers:
        if self._callers is None:
            self._callers = callers(self.cloud, f"-{self.generation}")
            # fixtures made afresh pile up in alpha: no quota may stop them
            project = self._callers.alpha.project_id
            self.admin("PUT", f"/network/v2.0/quotas/{project}", json={"quota": {
                name: -1 for name in ("network", "subnet", "port", "router", "floatingip",
                                      "security_group", "security_group_rule")}})
            self.compute("PUT", f"/os-quota-sets/{project}", token=self.cloud.admin_token,
                         json={"quota_set": {"instances": -1, "cores": -1, "ram": -1,
                                             "key_pairs": -1, "server_groups": -1}})
        return self._callers

    def token(self, name: str) -> str | None:
        if name == "admin":
            return self.cloud.admin_token
        return self.who.tokens(self.cloud.admin_token)[name]

    def get(self, name: str) -> Any:
        if name not in self._made:
            self._made[name] = getattr(self, f"make_{name}")()
        return self._made[name]

    # requests as alpha's member (or the admin), asserting success

    def call(self, method: str, path: str, token: str | None = None, status: int = 0,
             **kw: Any) -> Any:
        r = self.cloud.request(method, path, token=token or self.who.alpha.token, **kw)
        assert (r.status_code == status) if status else r.status_code < 300, \
            f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content and "json" in r.headers.get("content-type", "") \
            else r

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        return self.call(method, path, token=self.cloud.admin_token, **kw)

    @property
    def n(self) -> str:
        return str(self.generation)

    # Networking

    def make_env(self) -> Any:
        env = boot_env(self.cloud, self.who.alpha.token, image=self.get("public_image"),
                       name=f"alpha-net-{self.n}")
        for collection, id_ in (("networks", env.network), ("subnets", env.subnet)):
            self.call("PUT", f"/network/v2.0/{collection}/{id_}/tags/t1")
        return env

    def make_public_image(self) -> str:
        return upload_image(self.cloud, name=f"public-{self.n}")

    def make_port(self) -> str:
        body = self.call("POST", "/network/v2.0/ports",
                         json={"port": {"network_id": self.get("env").network}})
        self.call("PUT", f"/network/v2.0/ports/{body['port']['id']}/tags/t1")
        return body["port"]["id"]

    def make_subnetpool(self) -> str:
        body = self.call("POST", "/network/v2.0/subnetpools",
                         json={"subnetpool": {"name": f"sp-{self.n}",
                                              "prefixes": ["10.200.0.0/16"]}})
        return body["subnetpool"]["id"]

    def make_router(self) -> str:
        body = self.call("POST", "/network/v2.0/routers",
                         json={"router": {"name": f"r-{self.n}"}})
        return body["router"]["id"]

    def make_security_group(self) -> str:
        body = self.call("POST", "/network/v2.0/security-groups",
                         json={"security_group": {"name": f"sg-{self.n}"}})
        return body["security_group"]["id"]

    def make_rule(self) -> str:
        body = self.call("POST", "/network/v2.0/security-group-rules", json={
            "security_group_rule": {"security_group_id": self.get("security_group"),
                                    "direction": "ingress", "protocol": "tcp",
                                    "port_range_min": 22, "port_range_max": 22}})
        return body["security_group_rule"]["id"]

    def make_floating_ip(self) -> str:
        public = self.admin("GET", "/network/v2.0/networks?router:external=true")
        body = self.call("POST", "/network/v2.0/floatingips", json={
            "floatingip": {"floating_network_id": public["networks"][0]["id"]}})
        return body["floatingip"]["id"]

    # Compute

    def make_host(self) -> str:
        add_host(self.cloud, f"host-{self.n}")
        return f"host-{self.n}"

    def compute(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        return self.call(method, f"/compute/v2.1{path}", token=token, headers={
            "OpenStack-API-Version": f"compute {LATEST}"}, **kw)

    def make_server(self) -> str:
        self.get("host")
        env = self.get("env")
        body = self.compute("POST", "/servers", json={"server": env.server(
            name=f"vm-{self.n}", metadata={"k1": "v1"}, tags=["t1"])})
        return body["server"]["id"]

    def make_server_port(self) -> str:
        ports = self.admin("GET", f"/network/v2.0/ports?device_id={self.get('server')}")
        return ports["ports"][0]["id"]

    def make_instance_action(self) -> str:
        body = self.compute("GET", f"/servers/{self.get('server')}/os-instance-actions")
        return body["instanceActions"][0]["request_id"]

    def make_keypair(self) -> str:
        name = f"key-{self.n}"
        self.compute("POST", "/os-keypairs", json={"keypair": {
            "name": name, "public_key": ssh_key()}})
        return name

    def make_flavor(self) -> str:
        body = self.compute("POST", "/flavors", token=self.cloud.admin_token, json={
            "flavor": {"name": f"fx-{self.n}", "ram": 64, "vcpus": 1, "disk": 1}})
        flavor_id = body["flavor"]["id"]
        self.compute("POST", f"/flavors/{flavor_id}/os-extra_specs",
                     token=self.cloud.admin_token, json={"extra_specs": {"k1": "v1"}})
        return flavor_id

    def make_server_group(self) -> str:
        body = self.compute("POST", "/os-server-groups", json={"server_group": {
            "name": f"sg-{self.n}", "policy": "anti-affinity"}})
        return body["server_group"]["id"]

    def make_hypervisor(self) -> str:
        self.get("host")
        body = self.compute("GET", "/os-hypervisors", token=self.cloud.admin_token)
        return body["hypervisors"][0]["id"]

    def make_compute_service(self) -> str:
        self.get("host")
        body = self.compute("GET", "/os-services", token=self.cloud.admin_token)
        return body["services"][0]["id"]

    # Image

    def make_image(self) -> str:
        """alpha's image (with property k1), shared with beta (whose member status beta
        may set)."""
        image_id = upload_image(self.cloud, token=self.who.alpha.token,
                                name=f"alpha-{self.n}", visibility="shared", tags=["t1"],
                                k1="v1")
        self.call("POST", f"/image/v2/images/{image_id}/members",
                  json={"member": self.who.other.project_id})
        return image_id

    def make_metadef_namespace(self) -> str:
        """A public namespace of the admin's holding object o1, property p1, tag t1 and
        the association with OS::Glance::Image."""
        name = f"fx-ns-{self.n}"
        prop = {"title": "P", "type": "string"}
        self.admin("POST", "/image/v2/metadefs/namespaces", json={
            "namespace": name, "visibility": "public", "properties": {"p1": prop},
            "objects": [{"name": "o1"}], "tags": [{"name": "t1"}],
            "resource_type_associations": [{"name": "OS::Glance::Image"}]})
        return name

    # Identity

    def make_group(self) -> str:
        body = self.admin("POST", "/v3/groups", json={"group": {"name": f"g-{self.n}"}})
        self.admin("PUT", f"/v3/groups/{body['group']['id']}/users/{self.who.alpha.user_id}")
        return body["group"]["id"]

    def make_role(self) -> str:
        """A role alpha's member holds on alpha (directly and through the group) and
        on the Default domain, also inherited to projects."""
        body = self.admin("POST", "/v3/roles", json={"role": {"name": f"fx-{self.n}"}})
        role = body["role"]["id"]
        user, group, project = self.who.alpha.user_id, self.get("group"), \
            self.who.alpha.project_id
        for path in (f"/projects/{project}/users/{user}/roles/{role}",
                     f"/projects/{project}/groups/{group}/roles/{role}",
                     f"/domains/default/users/{user}/roles/{role}",
                     f"/domains/default/groups/{group}/roles/{role}"):
            self.admin("PUT", f"/v3{path}")
            self.admin("PUT", f"/v3/OS-INHERIT{path}/inherited_to_projects")
        for path in (f"/system/users/{user}/roles/{role}",
                     f"/system/groups/{group}/roles/{role}"):
            self.admin("PUT", f"/v3{path}")
        return role

    def make_implied_role(self) -> str:
        body = self.admin("POST", "/v3/roles", json={"role": {"name": f"fx-i-{self.n}"}})
        implied = body["role"]["id"]
        self.admin("PUT", f"/v3/roles/{self.get('role')}/implies/{implied}")
        return implied

    def make_region(self) -> str:
        return self.admin("POST", "/v3/regions",
                          json={"region": {"id": f"region-{self.n}"}})["region"]["id"]

    def make_service(self) -> str:
        return self.admin("POST", "/v3/services", json={"service": {
            "type": f"fx-{self.n}", "name": f"fx-{self.n}"}})["service"]["id"]

    def make_endpoint(self) -> str:
        return self.admin("POST", "/v3/endpoints", json={"endpoint": {
            "service_id": self.get("service"), "interface": "public",
            "url": "http://fx.example.org"}})["endpoint"]["id"]

    def make_domain(self) -> str:
        """A disabled domain of alpha's project (a domain must be disabled to go)."""
        return self.admin("POST", "/v3/domains", json={"domain": {
            "name": f"fx-{self.n}", "enabled": False}})["domain"]["id"]

    def make_project_tag(self) -> str:
        self.admin("PUT", f"/v3/projects/{self.who.alpha.project_id}/tags/t1")
        return "t1"

    def make_app_cred(self) -> str:
        who = self.who
        return self.call("POST", f"/v3/users/{who.alpha.user_id}/application_credentials",
                         json={"application_credential": {"name": f"fx-{self.n}"}}
                         )["application_credential"]["id"]

    def make_access_rule(self) -> str:
        """An access rule of alpha's member, no longer used by a credential."""
        user_id = self.who.alpha.user_id
        cred = self.call("POST", f"/v3/users/{user_id}/application_credentials",
                         json={"application_credential": {
                             "name": f"fx-rule-{self.n}", "access_rules": [{
                                 "service": "compute", "method": "GET",
                                 "path": f"/v2.1/fx-{self.n}"}]}})["application_credential"]
        self.call("DELETE", f"/v3/users/{user_id}/application_credentials/{cred['id']}")
        return str(cred["access_rules"][0]["id"])

    def make_credential(self) -> str:
        return self.call("POST", "/v3/credentials", json={"credential": {
            "user_id": self.who.alpha.user_id, "type": "totp",
            "blob": f"fx-{self.n}"}})["credential"]["id"]

    def make_policy_blob(self) -> str:
        return self.admin("POST", "/v3/policies", json={"policy": {
            "blob": "{}", "type": "application/json"}})["policy"]["id"]

    def make_consumer(self) -> str:
        return self.admin("POST", "/v3/OS-OAUTH1/consumers", json={
            "consumer": {"description": f"fx-{self.n}"}})["consumer"]["id"]

    def make_endpoint_group(self) -> str:
        return self.admin("POST", "/v3/OS-EP-FILTER/endpoint_groups", json={
            "endpoint_group": {"name": f"fx-{self.n}", "filters": {"interface": "public"}}}
        )["endpoint_group"]["id"]

    def make_ec2_access(self) -> str:
        who = self.who
        return self.call("POST", f"/v3/users/{who.alpha.user_id}/credentials/OS-EC2",
                         json={"tenant_id": who.alpha.project_id})["credential"]["access"]

    # Block Storage

    def volume_call(self, method: str, path: str, token: str | None = None, **kw: Any
                    ) -> Any:
        body = self.call(method, f"/volume/v3/{self.who.alpha.project_id}{path}",
                         token=token, headers={"OpenStack-API-Version": "volume 3.70"}, **kw)
        self.cloud.services.volume.wait_idle()
        return body

    def new_volume(self, name: str) -> str:
        # DELETE .../os-quota-sets/{tenant_id} (a route under test) resets the quotas
        project = self.who.alpha.project_id
        self.volume_call("PUT", f"/os-quota-sets/{project}", token=self.cloud.admin_token,
                         json={"quota_set": {"volumes": -1, "gigabytes": -1,
                                             "snapshots": -1}})
        return self.volume_call("POST", "/volumes", json={"volume": {
            "size": 1, "name": f"{name}-{self.n}", "metadata": {"k1": "v1"}}})["volume"]["id"]

    def make_volume(self) -> str:
        return self.new_volume("vol")

    def make_snapshot(self) -> str:
        return self.volume_call("POST", "/snapshots", json={"snapshot": {
            "volume_id": self.new_volume("snapped"), "metadata": {"k1": "v1"}}}
        )["snapshot"]["id"]

    def make_volume_type(self) -> str:
        return self.volume_call("POST", "/types", token=self.cloud.admin_token, json={
            "volume_type": {"name": f"vt-{self.n}", "extra_specs": {"k1": "v1"}}}
        )["volume_type"]["id"]

    def make_qos(self) -> str:
        return self.volume_call("POST", "/qos-specs", token=self.cloud.admin_token, json={
            "qos_specs": {"name": f"qos-{self.n}", "k1": "v1"}})["qos_specs"]["id"]

    def make_attachment(self) -> str:
        return self.volume_call("POST", "/attachments", json={"attachment": {
            "volume_uuid": self.new_volume("attached"),
            "instance_uuid": "00000000-0000-4000-8000-000000000002"}})["attachment"]["id"]

    def make_transfer(self) -> str:
        return self.volume_call("POST", "/os-volume-transfer", json={"transfer": {
            "volume_id": self.new_volume("moving")}})["transfer"]["id"]

    def make_volume_group_type(self) -> str:
        return self.volume_call("POST", "/group_types", token=self.cloud.admin_token, json={
            "group_type": {"name": f"gt-{self.n}", "group_specs": {"k1": "v1"}}}
        )["group_type"]["id"]

    def make_volume_group(self) -> str:
        return self.volume_call("POST", "/groups", json={"group": {
            "name": f"grp-{self.n}", "group_type": self.get("volume_group_type"),
            "volume_types": [self.get("volume_type")]}})["group"]["id"]

    def make_volume_group_snapshot(self) -> str:
        return self.volume_call("POST", "/group_snapshots", json={"group_snapshot": {
            "group_id": self.get("volume_group")}})["group_snapshot"]["id"]

    def make_message(self) -> str:
        backend = self.cloud.services.volume.backend
        backend.fail_next["create"] = "the fixture's failure"  # type: ignore[attr-defined]
        volume_id = self.new_volume("failed")
        messages = self.volume_call("GET", "/messages")["messages"]
        return next(m["id"] for m in messages if m["resource_uuid"] == volume_id)


#: path parameter -> (fixture, or a function of the world) for the id to use.
def params(world: World, path: str) -> dict[str, Callable[[], str]]:
    w = world
    group_paths = path.startswith(("/v3/groups", "/v3/projects/{project_id}/groups",
                                   "/v3/domains/{domain_id}/groups",
                                   "/v3/OS-INHERIT/projects/{project_id}/groups",
                                   "/v3/OS-INHERIT/domains/{domain_id}/groups",
                                   "/v3/system/groups"))
    return {
        # Networking
        "network_id": lambda: w.get("env").network,
        "subnet_id": lambda: w.get("env").subnet,
        "port_id": (lambda: w.get("server_port")) if "/servers/" in path
        else (lambda: w.get("port")),
        "router_id": lambda: w.get("router"),
        "agent_id": lambda: "00000000-0000-4000-8000-0000000000a1",
        "subnetpool_id": lambda: w.get("subnetpool"),
        "floatingip_id": lambda: w.get("floating_ip"),
        "rule_id": (lambda: w.get("access_rule")) if path.startswith("/v3")
        else (lambda: w.get("rule")),
        "collection": lambda: "networks",
        "resource_id": lambda: w.get("env").network,
        "alias": lambda: "security-group",
        # Compute
        "server_id": lambda: w.get("server"),
        "flavor_id": lambda: w.get("flavor"),
        "name": lambda: w.get("keypair"),
        "request_id": lambda: w.get("instance_action"),
        "network_label": lambda: f"alpha-net-{w.n}",
        "host_name": (lambda: f"onestack@{w.cloud.services.volume.backend_name}")
        if path.startswith("/volume") else (lambda: w.get("host")),
        "host_action": lambda: "reboot",
        "before": lambda: "2026-01-01 00:00:00",
        "hypervisor_id": lambda: str(w.get("hypervisor")),
        "pattern": lambda: w.get("host"),
        "service_id": (lambda: str(w.get("compute_service"))) if path.startswith("/compute")
        else (lambda: w.get("service")),
        "tenant_id": lambda: w.who.alpha.project_id,
        "class_name": lambda: "default",
        "key": lambda: "k1",
        "volume_id": (lambda: w.get("volume"))
        if path.startswith(("/volume", "/compute/v2.1/os-volumes"))
        else (lambda: "00000000-0000-4000-8000-000000000001"),
        "snapshot_id": lambda: w.get("snapshot"),
        "type_id": lambda: w.get("volume_type"),
        "qos_id": lambda: w.get("qos"),
        "attachment_id": lambda: w.get("attachment"),
        "transfer_id": lambda: w.get("transfer"),
        "message_id": lambda: w.get("message"),
        "group_type_id": lambda: w.get("volume_group_type"),
        "group_snapshot_id": lambda: w.get("volume_group_snapshot"),
        "action": lambda: "enable",
        "host": lambda: f"onestack@{w.cloud.services.volume.backend_name}",
        "backup_id": lambda: "00000000-0000-4000-8000-000000000003",
        "migration_id": lambda: "1",
        "aggregate_id": lambda: "1",
        "group_id": (lambda: w.get("group")) if group_paths
        else (lambda: w.get("volume_group")) if path.startswith("/volume")
        else (lambda: w.get("server_group")) if path.startswith("/compute")
        and "/os-security-group" not in path
        else (lambda: w.get("security_group")),
        # Image
        "image_id": lambda: w.get("image"),
        "member_id": lambda: w.who.other.project_id,
        "task_id": lambda: "00000000-0000-4000-8000-000000000009",
        "group": lambda: "identity",
        "option": lambda: "driver",
        "namespace": lambda: w.get("metadef_namespace"),
        "object_name": lambda: "o1",
        "property_name": lambda: "p1",
        "tag_name": lambda: "t1",
        "resource_type": lambda: "OS::Glance::Image",
        # Identity
        "user_id": lambda: w.who.alpha.user_id,
        "project_id": lambda: w.who.alpha.project_id,
        "domain_id": (lambda: w.get("domain")) if path == "/v3/domains/{domain_id}"
        else (lambda: "default"),
        "role_id": lambda: w.get("role"),
        "prior_role_id": lambda: w.get("role"),
        "implied_role_id": lambda: w.get("implied_role"),
        "region_id": lambda: w.get("region"),
        "endpoint_id": lambda: w.get("endpoint"),
        "cred_id": lambda: w.get("app_cred"),
        "credential_id": lambda: w.get("credential"),
        "access": lambda: w.get("ec2_access"),
        "policy_id": lambda: w.get("policy_blob"),
        "endpoint_group_id": lambda: w.get("endpoint_group"),
        "consumer_id": lambda: w.get("consumer"),
        # OAuth request and access tokens exist only once a signed client asked for them
        "request_token_id": lambda: "0" * 32,
        "access_token_id": lambda: "0" * 32,
        "trust_id": lambda: "0" * 32,
        "tag": (lambda: w.get("project_tag")) if path.startswith("/v3") else (lambda: "t1"),
        "path": lambda: "openstack/latest/meta_data.json",
    }


def fill(world: World, path: str) -> str:
    values = params(world, path)
    out = path
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        name = out[start + 1:end].split(":")[0]
        assert name in values, f"{path}: no fixture for the path parameter {name!r}"
        out = out[:start] + values[name]() + out[end + 1:]
    return out


def body_for(world: World, path: str, text: str | None) -> str | None:
    """A ``[bodies]`` entry with its ``<name>`` placeholders filled as path parameters
    are."""
    if text is None:
        return None
    for name, value in params(world, path).items():
        if f"<{name}>" in text:
            text = text.replace(f"<{name}>", value())
    return text


def headers_for(world: World, path: str, body: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if body is not None:
        headers["Content-Type"] = "application/openstack-images-v2.1-json-patch" \
            if path.startswith("/image") and body.startswith("[") else "application/json"
    # os-hosts, the hypervisor search and the image proxy are gone at the latest version
    if path.startswith("/compute") and "os-hosts" not in path and "{pattern}" not in path \
            and not path.startswith("/compute/v2.1/images") \
            and not path.startswith("/compute/v2.1/os-security-group") \
            and not path.startswith(("/compute/v2.1/os-volumes",
                                     "/compute/v2.1/os-snapshots")):  # gone at 2.36
        headers["OpenStack-API-Version"] = f"compute {LATEST}"
    if path.startswith("/volume"):
        headers["OpenStack-API-Version"] = "volume 3.70"
    if path.startswith("/metadata"):
        server = world.get("server")
        secret = world.cloud.services.compute.metadata.secret()
        headers.update({"X-Instance-ID": server, "X-Instance-ID-Signature":
                        sign(secret, server)})
    if path == "/v3/auth/tokens":
        headers["X-Subject-Token"] = world.token("member") or ""
    return headers


def classify(status: int, admin_status: int | None, absent: bool) -> str:
    if status == 401:
        return "unauth"
    if status == 403:
        return "deny"
    if status == 404:
        return "unknown" if absent or admin_status == 404 else "deny"
    return "allow"


def order(expected: dict[str, str], method: str) -> list[str]:
    """Reads: the admin first (its 404 tells "absent" from "hidden"). Writes: refusals
    first, then the allowed callers, least privileged first, the admin last."""
    if method in SAFE:
        return list(TOKENS)
    refused = [t for t in TOKENS if expected[t] != "allow"]
    allowed = [t for t in ("none", "unscoped", "app_cred", "reader", "other", "member",
                           "admin") if expected[t] == "allow"]
    return refused + allowed


# -- the test ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[Cloud]:
    with running_cloud(tmp_path_factory.mktemp("policy"), host_agent=False) as c:
        yield c


def test_every_route_follows_the_policy_table(cloud: Cloud) -> None:
    levels, rows, bodies = load_table()
    routes = list(walk(cloud.client.app.routes))  # type: ignore[attr-defined]
    keys = [f"{m} {p}" for m, p in routes]
    missing = [k for k in keys if k not in rows]
    stale = [k for k in rows if k not in keys]
    record = os.environ.get("ONESTACK_POLICY_RECORD") == "1"
    problems: list[str] = []
    if not record:
        assert not missing, "routes missing from tests/api/policy_table.toml:\n  " + \
            "\n  ".join(missing)
        assert not stale, "rows of tests/api/policy_table.toml for routes that no longer " \
            "exist:\n  " + "\n  ".join(stale)
    world = World(cloud)
    observed: dict[str, dict[str, str]] = {}
    for method, path in routes:
        key = f"{method} {path}"
        expected, absent = rows.get(key, (levels["admin"], False))
        if method == "WS":
            observed[key] = check_websocket(cloud, path)
            got = observed[key]
        else:
            got = {}
            admin_status = None
            for token_name in order(expected, method):
                url = fill(world, path)
                send = "GET" if method == "*" else method
                body = body_for(world, path, bodies.get(key))
                headers = headers_for(world, path, body)
                r = cloud.request(send, url, token=world.token(token_name), headers=headers,
                                  content=body, follow_redirects=False)
                assert r.status_code in range(500) or r.status_code == 501, \
                    f"{send} {url} as {token_name}: {r.text}"
                status = r.status_code
                if status in (302, 303) and r.headers.get("location", "").startswith(
                        "/dashboard/login"):
                    status = 401   # the dashboard sends a caller without a session there
                if token_name == "admin" and send in SAFE:
                    admin_status = status  # nothing to find for anyone
                got[token_name] = classify(status, admin_status, absent)
                if got[token_name] == "unknown":
                    got[token_name] = expected[token_name] if not record else "unknown"
                if send not in SAFE and r.status_code < 300:
                    world.spoil(identity=path.startswith("/v3"))
                if not record and got[token_name] != expected[token_name]:
                    problems.append(f"{key} as {token_name}: expected {expected[token_name]}"
                                    f", got {r.status_code} {r.text[:160]}")
            observed[key] = got
    if record:
        print_table(levels, observed)
        return
    assert not problems, f"{len(problems)} calls disagree with the table:\n  " + \
        "\n  ".join(problems)


def check_websocket(cloud: Cloud, path: str) -> dict[str, str]:
    """A WebSocket route authorizes with a short-lived token in its query (the serial
    console's comes from ``POST /servers/{id}/remote-consoles``, whose row is in the
    table): without one, or with a made-up one, the connection is refused whoever
    calls."""
    for query in ("", "?token=made-up"):
        try:
            with cloud.client.websocket_connect(path + query) as ws:
                ws.receive_bytes()
        except WebSocketDisconnect:
            continue
        raise AssertionError(f"WS {path}{query}: accepted without a console token")
    return {t: "deny" for t in TOKENS}


def print_table(levels: dict[str, dict[str, str]], observed: dict[str, dict[str, str]]
                ) -> None:
    for key, got in observed.items():
        def differ(name: str, got: dict[str, str] = got) -> list[str]:
            return [t for t in TOKENS if got[t] != "unknown" and levels[name][t] != got[t]]
        best = min(levels, key=lambda name: len(differ(name)))
        changes = [f"{t}={got[t]}" for t in differ(best)]
        if "unknown" in got.values():
            changes.append("(404 for all: " + " ".join(
                t for t in TOKENS if got[t] == "unknown") + ")")
        print(f'"{key}" = "{", ".join([best, *changes])}"')
