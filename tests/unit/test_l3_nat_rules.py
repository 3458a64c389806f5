"""The Linux L3 driver's NAT table, as the nftables script it applies (no root needed)."""

from __future__ import annotations

from onestack.drivers.network.l3.base import FloatingIp, RouterPort, RouterSpec
from onestack.drivers.network.l3.linux import nat_ruleset


def spec(**changes: object) -> RouterSpec:
    value = RouterSpec(
        id="r1",
        interfaces=[RouterPort("p1", "n1", "fa:16:3e:00:00:01", ["10.0.0.1/24"])],
        gateway=RouterPort("p2", "ext", "fa:16:3e:00:00:02",
                           ["203.0.113.10/24", "2001:db8::10/64"]),
        external_gateways=["203.0.113.1"],
        floating_ips=[FloatingIp("203.0.113.20", "10.0.0.5")])
    for key, val in changes.items():
        setattr(value, key, val)
    return value


def test_replaced_in_one_transaction() -> None:
    script = nat_ruleset(spec(), "qg-p2")
    # Made if missing, deleted, made anew: one nft -f, so no packet sees half of it.
    assert script.startswith("table ip onestack\ndelete table ip onestack\n"
                             "table ip onestack {\n")


def test_floating_ip_snat_and_hairpin() -> None:
    script = nat_ruleset(spec(), "qg-p2")
    lines = [line.strip() for line in script.splitlines()]
    assert "ip daddr 203.0.113.20 dnat to 10.0.0.5" in lines
    post = lines[lines.index("chain postrouting {"):]
    assert post[2:6] == [
        'iifname != "qg-p2" oifname != "qg-p2" ct status ! dnat accept',
        "ip saddr 10.0.0.5 snat to 203.0.113.20",
        'iifname != "qg-p2" ct status dnat snat to 203.0.113.10',
        'oifname "qg-p2" snat to 203.0.113.10',
    ]


def test_no_snat_when_disabled_and_nothing_without_gateway() -> None:
    script = nat_ruleset(spec(enable_snat=False), "qg-p2")
    assert 'oifname "qg-p2" snat' not in script
    assert "snat to 203.0.113.20" in script  # floating IPs stay 1:1
    bare = nat_ruleset(spec(gateway=None, floating_ips=[]), None)
    assert "snat" not in bare and "dnat" not in bare


def test_metadata_redirect_on_legs_without_dhcp() -> None:
    script = nat_ruleset(spec(), "qg-p2", ["qr-p1"])
    lines = [line.strip() for line in script.splitlines()]
    assert 'iifname "qr-p1" ip daddr 169.254.169.254 tcp dport 80 redirect to :9697' \
        in lines
    # The socket's port is reachable only through the redirect.
    assert "tcp dport 9697 ct status ! dnat drop" in lines
    assert "9697" not in nat_ruleset(spec(), "qg-p2")
