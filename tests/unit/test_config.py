"""Configuration precedence: defaults < TOML < environment < command line."""

from __future__ import annotations

import pytest

from onestack.common.config import load_config


def test_defaults(tmp_path):
    config = load_config(tmp_path, environ={})
    assert config.server.port == 5000
    assert config.public_url == "http://127.0.0.1:5000"
    assert config.database_url == f"sqlite:///{tmp_path / 'onestack.db'}"


def test_precedence(tmp_path):
    (tmp_path / "onestack.toml").write_text(
        "[server]\nport = 6000\nhost = '0.0.0.0'\n[identity]\ntoken_expiration = 60\n")
    config = load_config(tmp_path, environ={})
    assert config.server.port == 6000 and config.identity.token_expiration == 60
    assert config.public_url == "http://127.0.0.1:6000"  # never advertise 0.0.0.0
    config = load_config(tmp_path, environ={"ONESTACK_SERVER_PORT": "7000"})
    assert config.server.port == 7000
    config = load_config(tmp_path, environ={"ONESTACK_SERVER_PORT": "7000"},
                         server_port=8000, server_host=None)
    assert config.server.port == 8000 and config.server.host == "0.0.0.0"


def test_unknown_options_are_refused(tmp_path):
    (tmp_path / "onestack.toml").write_text("[server]\nprot = 1\n")
    with pytest.raises(ValueError, match="prot"):
        load_config(tmp_path, environ={})
    (tmp_path / "onestack.toml").write_text("[nope]\n")
    with pytest.raises(ValueError, match="nope"):
        load_config(tmp_path, environ={})
