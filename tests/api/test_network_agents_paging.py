"""GET /v2.0/agents pages and checks its query as every Neutron list does."""

from __future__ import annotations

import time

from tests.conftest import Cloud


def test_agents_page_with_limit_and_marker_and_refuse_bad_paging(cloud: Cloud) -> None:
    deadline = time.monotonic() + 30
    while True:   # the in-process host reports its L3 and DHCP agents
        agents = cloud.request("GET", "/network/v2.0/agents").json()["agents"]
        if len(agents) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    ids = [a["id"] for a in agents]
    assert len(ids) >= 2, agents
    first = cloud.request("GET", "/network/v2.0/agents?limit=1").json()
    assert [a["id"] for a in first["agents"]] == ids[:1]
    (link,) = first["agents_links"]
    assert link["rel"] == "next" and f"marker={ids[0]}" in link["href"]
    second = cloud.request("GET", f"/network/v2.0/agents?limit=1&marker={ids[0]}").json()
    assert [a["id"] for a in second["agents"]] == ids[1:2]
    back = cloud.request("GET", f"/network/v2.0/agents?limit=5&marker={ids[1]}"
                                "&page_reverse=true").json()
    assert [a["id"] for a in back["agents"]] == ids[:1]
    for query, status in (("limit=-1", 400), ("limit=99999999999999999999999", 400),
                          ("page_reverse=maybe", 400), ("marker=nope", 404)):
        r = cloud.request("GET", f"/network/v2.0/agents?{query}")
        assert r.status_code == status, (query, r.text)
        assert r.json()["NeutronError"]["message"], r.text
