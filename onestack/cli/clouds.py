"""The ``clouds.yaml`` that ``onestack up`` writes so the stock clients work at once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

CLOUD_NAME = "onestack"


def read_admin_password(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return data["clouds"][CLOUD_NAME]["auth"]["password"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def write_clouds_yaml(path: Path, public_url: str, password: str, region: str) -> None:
    data: dict[str, Any] = {"clouds": {CLOUD_NAME: {
        "auth": {
            "auth_url": f"{public_url}/v3",
            "username": "admin",
            "password": password,
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": region,
        "interface": "public",
        "identity_api_version": 3,
    }}}
    _write(path, data)


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(tmp, path)


def update_admin_password(path: Path, password: str) -> bool:
    """Put a new admin password into an existing clouds.yaml, keeping everything else
    (the URL the running server has). Returns False if there is no such file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
        auth = data["clouds"][CLOUD_NAME]["auth"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return False
    auth["password"] = password
    _write(path, data)
    return True
