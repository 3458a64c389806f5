"""Fixtures the Compute API tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.compute_helpers import BootEnv, add_host, boot, boot_env, force_state, quiet_cloud
from tests.conftest import Cloud


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[Cloud]:
    """A cloud without an agent and with one registered host, ``host-a``: servers stay in
    the states the API side gives them."""
    with quiet_cloud(tmp_path) as cloud:
        add_host(cloud, "host-a")
        yield cloud


@pytest.fixture
def env(quiet: Cloud) -> BootEnv:
    """What a server needs on ``quiet``: an image, a network with a subnet, a flavor."""
    return boot_env(quiet)


@pytest.fixture
def sid(quiet: Cloud, env: BootEnv) -> str:
    """An ACTIVE server on host-a (as if its agent had built it)."""
    server_id = str(boot(quiet, env)["id"])
    force_state(quiet, server_id, vm_state="active", task_state=None, power_state=1)
    return server_id
