"""The network topology picture: an SVG drawn on the server from the API's lists.

Networks are vertical bars (the external ones first, then the project's, each labelled
with its name and subnets' CIDRs); routers and servers are boxes in rows at the left,
with a line to each network they have a port on (a router's gateway to its external
network) and a dot where the line meets the bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

BOX_W, BOX_H, ROW, LEFT, COL, LINE = 170, 36, 54, 16, 150, 14


@dataclass
class Device:
    kind: str            # "router" | "server"
    id: str
    name: str
    status: str
    networks: list[str] = field(default_factory=list)


def build(networks: list[dict[str, Any]], subnets: list[dict[str, Any]],
          routers: list[dict[str, Any]], ports: list[dict[str, Any]],
          servers: list[dict[str, Any]]) -> str:
    """The SVG (a string of markup, attributes escaped)."""
    nets = sorted(networks, key=lambda n: (not n.get("router:external"), n.get("name") or ""))
    cidrs: dict[str, list[str]] = {}
    for s in subnets:
        cidrs.setdefault(s["network_id"], []).append(s.get("cidr") or "")
    devices: list[Device] = []
    by_id: dict[str, Device] = {}
    for r in sorted(routers, key=lambda r: r.get("name") or ""):
        d = Device("router", r["id"], r.get("name") or r["id"][:8], r.get("status") or "")
        gw = (r.get("external_gateway_info") or {}).get("network_id")
        if gw:
            d.networks.append(gw)
        devices.append(d)
        by_id[d.id] = d
    for s in sorted(servers, key=lambda s: s.get("name") or ""):
        d = Device("server", s["id"], s.get("name") or s["id"][:8], s.get("status") or "")
        devices.append(d)
        by_id[d.id] = d
    for p in ports:
        owner = by_id.get(p.get("device_id") or "")
        if owner is not None and p["network_id"] not in owner.networks:
            owner.networks.append(p["network_id"])
    labels = {n["id"]: cidrs.get(n["id"], []) or (["external"] if n.get("router:external")
                                                  else []) for n in nets}
    top = 58 + LINE * max([len(v) for v in labels.values()] + [1])
    x0 = LEFT + BOX_W + 80
    col = {n["id"]: x0 + i * COL for i, n in enumerate(nets)}
    width = max(x0 + len(nets) * COL, 480)
    height = top + max(len(devices), 1) * ROW + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" role="img" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'aria-labelledby="topo-title"><title id="topo-title">Network topology: '
           f'{len(nets)} networks, {len(devices)} routers and servers</title>']
    for n in nets:
        x = col[n["id"]]
        ext = bool(n.get("router:external"))
        name = escape(n.get("name") or n["id"][:8])
        out.append(f'<g class="topo-network{" external" if ext else ""}" '
                   f'data-name="{name}" data-id="{escape(n["id"])}">'
                   f'<rect x="{x - 5}" y="{top - 24}" width="10" height="{height - top + 12}"'
                   f' rx="5"/><text x="{x}" y="16" text-anchor="middle">{name}</text>'
                   + "".join(f'<text class="cidr" x="{x}" y="{32 + i * LINE}" '
                             f'text-anchor="middle">{escape(c)}</text>'
                             for i, c in enumerate(labels[n["id"]]))
                   + '</g>')
    for i, d in enumerate(devices):
        y = top + i * ROW
        mid = y + BOX_H / 2
        name = escape(d.name)
        out.append(f'<g class="topo-{d.kind}" data-name="{name}" data-id="{escape(d.id)}">')
        reach = [col[n] for n in d.networks if n in col]
        if reach:
            out.append(f'<line x1="{LEFT + BOX_W}" y1="{mid}" x2="{max(reach)}" y2="{mid}"/>')
            for x in reach:
                out.append(f'<circle cx="{x}" cy="{mid}" r="5"/>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
                   f'<text x="{LEFT + 10}" y="{y + 15}">{"⇄ " if d.kind == "router" else ""}'
                   f'{name}</text><text class="status" x="{LEFT + 10}" y="{y + 29}">'
                   f'{d.kind} · {escape(d.status)}</text></g>')
    out.append("</svg>")
    return "".join(out)
