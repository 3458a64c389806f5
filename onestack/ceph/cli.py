"""``onestack ceph up | down | status``: a Ceph cluster on this machine for development
and tests (see ``onestack.ceph.cluster`` and docs/design/ceph.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

ceph_app = typer.Typer(help="A Ceph cluster on this machine (Debian's packages) for the rbd "
                       "storage backend.", no_args_is_help=True)
console = Console(stderr=True)

CephDir = Annotated[Path, typer.Option(
    "--state-dir", help="The cluster's directory: ceph.conf, keyrings, daemons' data, "
    "pidfiles and logs.")]


@ceph_app.command("up")
def ceph_up(state_dir: CephDir,
            osds: Annotated[int, typer.Option(help="OSDs to make (3 or more).")] = 3,
            timeout: Annotated[float, typer.Option(help="Seconds to wait for HEALTH_OK.")
                               ] = 300) -> None:
    """Make the cluster (or start its stopped daemons) and wait for HEALTH_OK with every
    PG active+clean; prints the flags `onestack up` needs to use it."""
    from onestack.ceph.cluster import CephError, Cluster

    started = time.monotonic()

    def report(line: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:5.1f} s[/]  {line}")

    cluster = Cluster(state_dir, report)
    try:
        cluster.up(osds=osds, timeout=timeout)
    except CephError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    s = cluster.client_settings()
    console.print("[bold green]Ceph is up.[/] Start OneStack on it with:\n"
                  f"  onestack up --storage rbd --ceph-conf {s['conf']} "
                  f"--ceph-keyring {s['keyring']} --ceph-user {s['user']}")


@ceph_app.command("down")
def ceph_down(state_dir: CephDir,
              purge: Annotated[bool, typer.Option(
                  "--purge", help="Also remove the directory and all data in it.")] = False
              ) -> None:
    """Stop the cluster's daemons (by the PIDs in their pidfiles)."""
    from onestack.ceph.cluster import CephError, Cluster

    try:
        stopped = Cluster(state_dir).down(purge=purge)
    except CephError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}"
                  + (f"; removed {state_dir}" if purge else ""))


@ceph_app.command("status")
def ceph_status(state_dir: CephDir) -> None:
    """Daemons (PIDs) and the cluster's health."""
    from onestack.ceph.cluster import CephError, Cluster

    cluster = Cluster(state_dir)
    if not cluster.exists():
        console.print(f"[red]no cluster in {state_dir}[/]")
        raise typer.Exit(1)
    running = True
    for daemon in cluster.daemons():
        pid = cluster.pid(daemon)
        running = running and pid is not None
        print(f"{daemon.name:8} {'pid ' + str(pid) if pid else 'stopped'}")
    if not running and cluster.pid(cluster.daemons()[0]) is None:
        raise typer.Exit(1)
    try:
        health, why = cluster.health()
    except CephError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    print(f"health   {health}{'; ' + why if why else '; all PGs active+clean'}")
    raise typer.Exit(0 if not why else 1)
