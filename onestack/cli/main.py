"""The ``onestack`` command: ``up`` runs the all-in-one cloud, ``down --purge`` throws
its host objects away, ``admin`` does the operator tasks that have no OpenStack API."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal, TypedDict

import typer
from rich.console import Console

from onestack.ceph.cli import ceph_app
from onestack.cli import server_lock
from onestack.cli.clouds import (
    CLOUD_NAME,
    read_admin_password,
    update_admin_password,
    write_clouds_yaml,
)
from onestack.common.config import load_config

app = typer.Typer(help="OneStack: an OpenStack-compatible cloud in one program.",
                  no_args_is_help=True, add_completion=False)
admin_app = typer.Typer(help="Operator tasks with no OpenStack API.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
console = Console(stderr=True)

StateDir = Annotated[Path | None, typer.Option(
    "--state-dir", help="Where all state lives (default: $ONESTACK_STATE_DIR, else "
    "/var/lib/onestack as root, else ~/.local/share/onestack).")]


@app.command()
def up(state_dir: StateDir = None,
       host: Annotated[str | None, typer.Option(help="Address to listen on "
                                                "[default: 127.0.0.1].")] = None,
       port: Annotated[int | None, typer.Option(help="Port to listen on "
                                                "[default: 5000].")] = None,
       storage: Annotated[str | None, typer.Option(
           help="Disks, images and volumes: local (qcow2 overlays, files) or rbd (RBD "
           "clones, images and volumes in Ceph; see `onestack ceph up`) [default: local].")
       ] = None,
       ceph_conf: Annotated[Path | None, typer.Option(
           help="rbd: the cluster's ceph.conf (config: ceph.conf).")] = None,
       ceph_keyring: Annotated[Path | None, typer.Option(
           help="rbd: the client's keyring (config: ceph.keyring).")] = None,
       ceph_user: Annotated[str | None, typer.Option(
           help="rbd: the cephx user, client.<user> [default: onestack].")] = None) -> None:
    """Start the all-in-one cloud in the foreground (Ctrl-C stops it)."""
    import uvicorn

    from onestack.api.app import create_app
    from onestack.assembly import Services
    from onestack.common.logging import setup_logging

    if storage not in (None, "local", "rbd"):
        console.print(f"[red]--storage must be local or rbd, not {storage!r}[/]")
        raise typer.Exit(2)
    config = load_config(
        state_dir, server_host=host, server_port=port, host_storage_driver=storage,
        image_store={"local": "file", "rbd": "rbd"}.get(storage or ""),
        volume_backend="rbd" if storage == "rbd" else None,
        ceph_conf=str(ceph_conf.absolute()) if ceph_conf else None,
        ceph_keyring=str(ceph_keyring.absolute()) if ceph_keyring else None,
        ceph_user=ceph_user)
    try:
        # Held until this process ends; `onestack down` checks it.
        _lock = server_lock.hold(config.state_dir, config.host)  # noqa: F841
    except server_lock.ServerRunning as exc:
        console.print(f"[red]{exc}; stop it first.[/]")
        raise typer.Exit(1) from None
    setup_logging(config.log_dir, config.server.log_level)
    services = Services(config)
    clouds = config.state_dir / "clouds.yaml"
    password = services.bootstrap.admin_password or read_admin_password(clouds)
    if password is not None:
        write_clouds_yaml(clouds, config.public_url, password, config.identity.region)
    _print_welcome(config.state_dir, config.public_url, clouds, password is not None)
    real = [d for d in (config.host.hypervisor_driver, config.host.network_driver)
            if d != "fake"]
    if real and os.geteuid() != 0:
        console.print("[yellow]Not running as root: servers will fail to boot (bridges, "
                      "taps and namespaces need root). For the APIs alone, set "
                      "ONESTACK_HOST_HYPERVISOR_DRIVER=fake ONESTACK_HOST_STORAGE_DRIVER="
                      "fake ONESTACK_HOST_NETWORK_DRIVER=fake.[/]")
    uvicorn.run(create_app(config, services), host=config.server.host,
                port=config.server.port, log_config=None, access_log=False,
                server_header=False, lifespan="on", **_fast_uvicorn())


@app.command()
def down(state_dir: StateDir = None,
         purge: Annotated[bool, typer.Option(
             "--purge", help="Remove them (without it they are only listed).")] = False,
         force: Annotated[bool, typer.Option(
             "--force", help="Purge even though a server runs on the state directory.")
         ] = False) -> None:
    """List, or with --purge remove, every guest, disk, DHCP namespace, bridge, tap and
    process (QEMU, dnsmasq) the state directory owns on this host. `onestack up` leaves
    them running when it stops (a restart adopts them); this throws them away. The
    database, images and keys stay: delete the directory afterwards to forget the cloud.
    """
    from onestack.agent.purge import HostPurge

    config = load_config(state_dir)
    # Host objects are found by their name prefix: never act on a directory that is not
    # a cloud's (the default prefix would name another cloud's objects).
    if not any((config.state_dir / name).exists()
               for name in ("onestack.db", server_lock.LOCK_FILE)):
        console.print(f"[red]No OneStack state in {config.state_dir}.[/]")
        raise typer.Exit(1)
    pid = server_lock.running(config.state_dir)
    if pid is not None and purge and not force:
        console.print(f"[red]A OneStack server{f' (PID {pid})' if pid else ''} is running on "
                      f"{config.state_dir}: stop it first (Ctrl-C), or pass --force to "
                      "purge under it.[/]")
        raise typer.Exit(1)
    # The prefix and drivers the objects were made with (the environment of the `up`
    # that made them may have set them), not necessarily this process's.
    for key, value in server_lock.recorded_host(config.state_dir).items():
        setattr(config.host, key, value)
    host = HostPurge(config)
    objects = host.inventory()
    prefix = config.host.name_prefix
    console.print(f"{config.state_dir} (host objects prefixed {prefix!r}"
                  f"{f', server PID {pid} running' if pid else ''}):")
    for what, items in (("guests", objects.guests), ("disks", objects.disks),
                        ("networks", objects.networks), ("ports", objects.ports),
                        ("routers", objects.routers),
                        ("processes", [f"{p} ({f})" for f, p in objects.processes.items()])):
        console.print(f"  {what}: {', '.join(map(str, items)) or '-'}")
    if not purge:
        if not objects.empty():
            console.print("Remove them with --purge.")
        return
    errors = host.purge(report=lambda line: console.print(f"[dim]{line}[/]"))
    if errors:
        console.print("[red]Not everything could be removed:[/]\n  " + "\n  ".join(errors))
        raise typer.Exit(1)
    console.print(f"Purged the host objects of {config.state_dir}. Its database, images and "
                  f"keys are still there; delete the directory to forget the cloud.")


class _UvicornFast(TypedDict):
    loop: Literal["uvloop", "asyncio"]
    http: Literal["httptools", "h11"]


def _fast_uvicorn() -> _UvicornFast:
    """uvloop and httptools (uvicorn[standard]) when installed: about 1.7 times the
    requests/s of asyncio's own loop with h11 (see docs/performance.md)."""
    from importlib.util import find_spec

    return {"loop": "uvloop" if find_spec("uvloop") else "asyncio",
            "http": "httptools" if find_spec("httptools") else "h11"}


def _print_welcome(state_dir: Path, url: str, clouds: Path, have_password: bool) -> None:
    console.print(f"[bold green]OneStack[/] is starting on [bold]{url}[/]  "
                  f"(state in {state_dir})")
    if have_password:
        console.print("Use it with the stock OpenStack client:\n"
                      f"  export OS_CLIENT_CONFIG_FILE={clouds}\n"
                      f"  export OS_CLOUD={CLOUD_NAME}\n"
                      "  openstack token issue\n"
                      "  openstack server create --image IMAGE --flavor m1.nano "
                      "--network NET vm1\n"
                      f"The admin password is in {clouds}.")
    else:
        console.print(f"[yellow]{clouds} is missing and the admin password is not known; "
                      f"set a new one with:[/]\n  onestack admin reset-password admin "
                      f"--state-dir {state_dir}")
    console.print("Stop with Ctrl-C.")


@admin_app.command("rotate-keys")
def rotate_keys(state_dir: StateDir = None) -> None:
    """Rotate the token keys: tokens issued under the previous key stay valid until the
    key falls out of the repository (after `max_active_keys - 1` more rotations)."""
    from onestack.services.identity.keys import KeyRepository

    config = load_config(state_dir)
    repo = KeyRepository(config.key_repository, config.identity.max_active_keys)
    if not config.key_repository.is_dir():
        console.print(f"[red]No key repository at {config.key_repository}; "
                      f"run `onestack up` once first.[/]")
        raise typer.Exit(1)
    primary = repo.rotate()
    console.print(f"Rotated token keys in {config.key_repository}; new primary key "
                  f"{primary}.")


@admin_app.command("reset-password")
def reset_password(
        user: Annotated[str, typer.Argument(help="User name (or id).")],
        domain: Annotated[str, typer.Option(help="Domain name of the user.")] = "Default",
        password: Annotated[str | None, typer.Option(
            help="New password (default: generate one and print it).")] = None,
        state_dir: StateDir = None) -> None:
    """Set a user's password (and unlock it); the user's existing tokens are revoked."""
    from onestack.common.errors import OneStackError
    from onestack.db import Database
    from onestack.services.identity import Identity

    config = load_config(state_dir)
    if not (config.state_dir / "onestack.db").exists() and not config.database.url:
        console.print(f"[red]No OneStack state in {config.state_dir}.[/]")
        raise typer.Exit(1)
    identity = Identity(Database(config.database_url), config)
    new_password = password or secrets.token_urlsafe(18)
    try:
        user_id = identity.users.reset_password(user, domain, new_password)
    except OneStackError as exc:
        console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(1) from None
    console.print(f"Password of user {user} ({user_id}) reset; its tokens are revoked.")
    if password is None:
        print(new_password)
    clouds = config.state_dir / "clouds.yaml"
    if user == "admin" and domain == "Default":
        if not update_admin_password(clouds, new_password):
            write_clouds_yaml(clouds, config.public_url, new_password, config.identity.region)
        console.print(f"Updated {clouds}.")


host_credential_app = typer.Typer(help="Host credentials: what a remote agent proves "
                                  "itself with (`onestack agent --credential FILE`).",
                                  no_args_is_help=True)
admin_app.add_typer(host_credential_app, name="host-credential")

HostName = Annotated[str, typer.Argument(help="The host's name (as its agent's --host-name).")]


@host_credential_app.command("create")
def host_credential_create(
        host: HostName,
        output: Annotated[Path | None, typer.Option(
            "--output", "-o", help="Write the secret to this file (mode 0600) instead of "
            "printing it.")] = None,
        state_dir: StateDir = None) -> None:
    """Make a new credential for HOST (its older one stops working); the server keeps
    only its digest, so the secret is shown this once."""
    from onestack.hostlink.credentials import CredentialError, CredentialStore

    config = load_config(state_dir)
    try:
        secret = CredentialStore(config.state_dir).create(host)
    except CredentialError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if output is None:
        console.print(f"Credential of host {host} (give it to its agent in a file, "
                      "--credential FILE):")
        print(secret)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    console.print(f"Credential of host {host} written to {output}.")


@host_credential_app.command("list")
def host_credential_list(state_dir: StateDir = None) -> None:
    """The hosts that have a credential."""
    from onestack.hostlink.credentials import CredentialStore

    for host in CredentialStore(load_config(state_dir).state_dir).hosts():
        print(host)


@host_credential_app.command("delete")
def host_credential_delete(host: HostName, state_dir: StateDir = None) -> None:
    """Remove HOST's credential: its agent is refused from its next request."""
    from onestack.hostlink.credentials import CredentialError, CredentialStore

    try:
        deleted = CredentialStore(load_config(state_dir).state_dir).delete(host)
    except CredentialError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if not deleted:
        console.print(f"[red]Host {host} has no credential.[/]")
        raise typer.Exit(1)
    console.print(f"Deleted the credential of host {host}.")


@app.command()
def agent(
        server: Annotated[str, typer.Option(help="The server's URL, e.g. "
                                            "http://controller:5000.")],
        host_name: Annotated[str, typer.Option(help="This host's name (its credential's).")],
        credential: Annotated[Path, typer.Option(help="File holding this host's credential "
                                                 "(`onestack admin host-credential "
                                                 "create`).")],
        state_dir: StateDir = None,
        listen: Annotated[str, typer.Option(help="Address:port of this agent's listener, "
                                            "which the server calls (console, wake-up).")
                          ] = "127.0.0.1:5050",
        advertise: Annotated[str | None, typer.Option(
            help="The listener's URL as the server reaches it [default: from --listen].")
        ] = None) -> None:
    """Run this host's agent alone, for a OneStack server elsewhere (Ctrl-C stops it;
    guests keep running and are re-adopted at the next start)."""
    import uvicorn

    from onestack.agent.standalone import build_standalone_agent
    from onestack.common.logging import setup_logging
    from onestack.common.statedir import PRIVATE_UMASK, make_private
    from onestack.hostlink.credentials import CredentialError, read_secret

    config = load_config(state_dir)
    config.host.name = host_name
    address, _, port_text = listen.rpartition(":")
    if not address or not port_text.isdigit():
        console.print(f"[red]--listen {listen!r}: expected ADDRESS:PORT.[/]")
        raise typer.Exit(1)
    try:
        secret = read_secret(credential)
    except CredentialError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    os.umask(PRIVATE_UMASK)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    make_private(config.state_dir)
    setup_logging(config.log_dir, config.server.log_level)
    standalone = build_standalone_agent(
        config, server, host_name, secret, listen_host=address.strip("[]"),
        listen_port=int(port_text), advertise=advertise)
    console.print(f"[bold green]OneStack agent[/] of host [bold]{host_name}[/] for {server}"
                  f" (state in {config.state_dir}); listening on {listen}. Stop with "
                  "Ctrl-C.")
    standalone.agent.start()
    try:
        uvicorn.run(standalone.app(), host=standalone.listen_host,
                    port=standalone.listen_port, log_config=None, access_log=False,
                    server_header=False, lifespan="off", **_fast_uvicorn())
    finally:
        standalone.close()


app.add_typer(ceph_app, name="ceph")

image_app = typer.Typer(help="Images: the bootable test image.", no_args_is_help=True)
app.add_typer(image_app, name="image")


@image_app.command("build-test")
def build_test(
        output: Annotated[Path | None, typer.Option(
            "--output", "-o", help="Copy the image here (default: print the cached path).")
        ] = None,
        cache_dir: Annotated[Path | None, typer.Option(
            help="Cache for packages and images (default: $ONESTACK_CACHE_DIR, else build/ "
            "of a source checkout, else ~/.cache/onestack).")] = None) -> None:
    """Build the tiny bootable test image (qcow2) from Debian packages; print its path.

    Load it with: openstack image create --disk-format qcow2 --container-format bare
    --file $(onestack image build-test) onestack-test
    """
    import time

    from onestack.services.image.testimage import TestImageError, build_test_image

    started = time.monotonic()
    with console.status("Building the test image") as status:
        def report(step: str) -> None:
            console.print(f"[dim]{time.monotonic() - started:5.1f} s[/]  {step}")
            status.update(f"Test image: {step}")

        try:
            path = build_test_image(output, cache_dir, report)
        except TestImageError as exc:
            console.print(f"[red]{exc.message}[/]")
            raise typer.Exit(1) from None
    size = path.stat().st_size / 1e6
    console.print(f"Test image ready: {path} ({size:.1f} MB, "
                  f"{time.monotonic() - started:.1f} s)")
    print(path)


def main() -> None:
    app()
