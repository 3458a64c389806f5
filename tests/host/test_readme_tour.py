"""The README's tour, run as written, so that it stays true.

The commands are taken from README.md's "A short tour" section (its indented lines,
continuation lines joined) and run by one ``bash -e`` script, in a scratch directory,
against a ``onestack up`` the harness starts in a namespace of its own (so the tour's
``public`` network, its bridge and the external gateway address 203.0.113.1 exist only
there, and this thread, in that namespace, is "the host's shell"). Two lines are
adapted, and only these: ``source .venv/bin/activate`` takes this checkout's virtualenv,
and the ``clouds.yaml`` path is the harness's state directory instead of
``/var/lib/onestack``. Then the script's output must show what the tour promises: the
guest answered ping, ``ssh`` ran a command in it, ``curl`` fetched its page.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.services.image.testimage import build_test_image
from tests.host.harness import NetnsHost, netns_host

pytestmark = [
    pytest.mark.root, pytest.mark.qemu, pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, taps)"),
    pytest.mark.skipif(any(shutil.which(tool) is None for tool in
                           ("qemu-system-x86_64", "dnsmasq", "ssh", "ping", "curl")),
                       reason="needs QEMU, dnsmasq, openssh-client, ping and curl"),
]

README = Path(__file__).resolve().parents[2] / "README.md"
DEFAULT_CLOUDS_YAML = "/var/lib/onestack/clouds.yaml"


def tour_commands(readme: str) -> list[str]:
    """The tour's shell lines: the indented lines of its section, joined where a line
    ends in a backslash; comments and blank lines dropped."""
    section = readme.split("\n## A short tour\n", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    pending = ""
    for line in section.splitlines():
        if not line.startswith("    "):
            continue
        text = line[4:]
        if pending:
            text = pending + " " + text.strip()
            pending = ""
        if text.endswith("\\"):
            pending = text[:-1].rstrip()
            continue
        if text.strip() and not text.lstrip().startswith("#"):
            commands.append(text)
    assert not pending, "the tour ends inside a continued line"
    return commands


def test_tour_commands_are_extracted() -> None:
    commands = tour_commands(README.read_text())
    assert commands[0] == "source .venv/bin/activate"
    assert any(c.startswith("openstack server create") and "--key-name demo-key" in c
               for c in commands)
    assert "openstack server add floating ip demo-vm $FIP" in commands
    assert any(c.startswith("ping -c 3 ") for c in commands)
    assert any(c.startswith("ssh -i demo-key") and "cirros@$FIP" in c for c in commands)
    assert any(c.startswith("curl ") for c in commands)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsHost]:
    build_test_image()  # before entering the namespace (apt needs the outside)
    with netns_host(tmp_path_factory.mktemp("host"), ONESTACK_HOST_ACCEL="tcg") as h:
        yield h


def test_the_readme_tour_runs_as_written(host: NetnsHost, tmp_path: Path) -> None:
    commands = tour_commands(README.read_text())
    adapted = []
    for command in commands:
        if command == "source .venv/bin/activate":
            command = f"source {Path(sys.executable).parent / 'activate'}"
        adapted.append(command.replace(DEFAULT_CLOUDS_YAML, str(host.clouds_yaml)))
    script = tmp_path / "tour.sh"
    script.write_text("set -euo pipefail\n" + "".join(
        f"echo '+ {c.replace(chr(39), '')}'\n{c}\n" for c in adapted))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    tour = tmp_path / "tour"
    tour.mkdir()
    done = subprocess.run(["bash", str(script)], cwd=tour, env=env, capture_output=True,
                          text=True, timeout=540, stdin=subprocess.DEVNULL)
    out = done.stdout
    if done.returncode != 0:
        print(out[-6000:], done.stderr[-3000:], host.log_tail(), sep="\n")
    assert done.returncode == 0, done.stderr[-2000:]
    # ping: some of the 3 answered.
    ping = re.search(r"3 packets transmitted, (\d) received", out)
    assert ping and int(ping.group(1)) >= 1, out[-3000:]
    # ssh ran `uptime` in the guest; curl fetched the page the ssh command wrote.
    assert re.search(r"up .*load average", out), out[-3000:]
    assert "hello from demo-vm" in out, out[-3000:]
    # The end of the tour: the server is gone.
    assert "+ openstack server delete --wait demo-vm" in out
