"""Fixtures the Compute API tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.compute_helpers import BootEnv, add_host, boot_env, quiet_cloud
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
