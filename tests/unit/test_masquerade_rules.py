"""The external network's masquerade (``[host] external_masquerade``): its nft script."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from onestack.agent.reconciler import _network_spec
from onestack.drivers.network.l2.linux import masquerade_ruleset
from onestack.hostlink.types import NetworkSpec, SubnetSpec

PUBLIC = NetworkSpec(id="pub", mtu=1500, external=True, subnets=[
    SubnetSpec(id="s4", cidr="203.0.113.0/24", ip_version=4, gateway_ip="203.0.113.1",
               enable_dhcp=False),
    SubnetSpec(id="s6", cidr="2001:db8::/64", ip_version=6, gateway_ip="2001:db8::1",
               enable_dhcp=False)])


def test_script_masquerades_the_subnets_leaving_by_other_links() -> None:
    script = masquerade_ruleset("osmasq-pub", "osbrqpub", ["203.0.113.1/24"])
    assert script.startswith("table ip osmasq-pub\ndelete table ip osmasq-pub\n")
    assert 'ip saddr 203.0.113.0/24 oifname != "osbrqpub" masquerade' in script
    assert "type nat hook postrouting priority srcnat" in script


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                    reason="nft -c needs root")
def test_script_is_valid_nft() -> None:
    script = masquerade_ruleset("osmasq-pub", "osbrqpub", ["203.0.113.1/24"])
    proc = subprocess.run(["nft", "-c", "-f", "-"], input=script, text=True,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_agent_asks_for_it_only_when_configured_and_on_external_networks() -> None:
    spec = _network_spec(PUBLIC, external_gateway_on_host=True)
    # The bridge holds both gateways; only IPv4 is ever masqueraded (no NAT66).
    assert spec.host_addresses == ["203.0.113.1/24", "2001:db8::1/64"]
    assert not spec.masquerade
    script = masquerade_ruleset("osmasq-pub", "osbrqpub", spec.host_addresses)
    assert "203.0.113.0/24" in script and "2001:db8" not in script
    assert _network_spec(PUBLIC, True, external_masquerade=True).masquerade
    assert _network_spec(PUBLIC, False, external_masquerade=True).host_addresses == []
    assert not _network_spec(PUBLIC, False, external_masquerade=True).masquerade
    tenant = NetworkSpec(id="t", mtu=1450, subnets=PUBLIC.subnets)
    assert _network_spec(tenant, True, True).host_addresses == []
