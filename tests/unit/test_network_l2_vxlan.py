"""The Linux L2 driver's VXLAN bookkeeping without the kernel: which peers a device
floods to, which FDB entries change, the tunnel address, the device's name."""

from __future__ import annotations

import pytest

from onestack.agent.host import tunnel_ip
from onestack.common.config import Config, load_config
from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.l2.linux import (
    fdb_changes,
    flood_peers,
    remote_unicast,
    tunnel_address,
    unicast_changes,
)
from onestack.drivers.network.names import IFNAME_MAX, Names


def test_flood_peers_drop_self_duplicates_junk_and_other_families():
    peers = ["192.0.2.3", "192.0.2.1", "192.0.2.3", "192.0.2.10", "bogus", "2001:db8::2",
             "127.0.0.1", "0.0.0.0"]
    assert flood_peers(peers, "192.0.2.1") == ["192.0.2.3", "192.0.2.10"]
    assert flood_peers(peers, "2001:db8::1") == ["2001:db8::2"]
    assert flood_peers([], "192.0.2.1") == []


def test_fdb_changes_add_the_missing_and_remove_the_stale():
    assert fdb_changes({"192.0.2.2", "192.0.2.9"}, ["192.0.2.2", "192.0.2.3"]) == (
        ["192.0.2.3"], ["192.0.2.9"])
    assert fdb_changes({"192.0.2.2"}, ["192.0.2.2"]) == ([], [])
    assert fdb_changes({"192.0.2.10", "192.0.2.9"}, []) == ([], ["192.0.2.9", "192.0.2.10"])


def test_unicast_changes():
    m1, m2, m3 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02", "fa:16:3e:00:00:03"
    present = {m1: {"192.0.2.2"}, m2: {"192.0.2.2", "192.0.2.3"}, m3: {"192.0.2.9"}}
    wanted = {m1: "192.0.2.2", m2: "192.0.2.3", "fa:16:3e:00:00:04": "192.0.2.3"}
    put, drop = unicast_changes(present, wanted)
    assert put == {m2: "192.0.2.3", "fa:16:3e:00:00:04": "192.0.2.3"}
    assert drop == [(m2, "192.0.2.2"), (m3, "192.0.2.9")]
    assert unicast_changes({m1: {"192.0.2.2"}}, {m1: "192.0.2.2"}) == ({}, [])


def test_remote_unicast_keeps_valid_macs_of_peers():
    assert remote_unicast({"FA:16:3E:00:00:01": "192.0.2.2", "fa:16:3e:00:00:02": "192.0.2.9",
                           "junk": "192.0.2.2", "00:00:00:00:00:00": "192.0.2.2"},
                          ["192.0.2.2"]) == {"fa:16:3e:00:00:01": "192.0.2.2"}


def test_tunnel_address():
    assert tunnel_address("192.0.2.1 ") == "192.0.2.1"
    assert tunnel_address("2001:DB8::1") == "2001:db8::1"
    for none in ("", "127.0.0.1", "::1", "0.0.0.0"):
        assert tunnel_address(none) == ""
    with pytest.raises(NetworkDriverError, match="tunnel_ip"):
        tunnel_address("eth0")


def test_vxlan_device_name_fits():
    net = "0d5b6a3e-1f7c-4c1e-9a53-2b1f0e8c7d6a"
    assert Names().vxlan(net) == "vx-0d5b6a3e-1f"
    for prefix in ("", "os", "x1a2", "abcdef"):
        name = Names(prefix).vxlan(net)
        assert name.startswith(prefix + "vx-") and len(name) <= IFNAME_MAX
        assert Names(prefix).link_id("vx-", name) == net[:Names(prefix).id_chars]


def test_the_agents_tunnel_address(tmp_path):
    config = Config(state_dir=tmp_path)
    assert tunnel_ip(config) == "127.0.0.1"  # the all-in-one host: towards 127.0.0.1
    configured = load_config(tmp_path, environ={"ONESTACK_HOST_TUNNEL_IP": "192.0.2.7"})
    assert tunnel_ip(configured) == "192.0.2.7"
