"""`citesmail preview` and `serve` as commands: their options and defaults."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from citesmail.cli.web_commands import serve_port
from citesmail.config import Settings, load_settings
from tests.conftest import run


def test_serve_listens_where_unsubscribe_links_point_by_default() -> None:
    default = Settings()
    assert serve_port(default) == urlsplit(default.unsubscribe.base_url).port == 8080


@pytest.mark.parametrize(("base_url", "port"), [
    ("http://127.0.0.1:9000", 9000), ("http://localhost:8123/", 8123),
    ("https://lettres.example.org", 8080),  # behind a proxy: its own port
])
def test_serve_takes_the_port_of_a_local_base_url(tmp_path: Path, base_url: str,
                                                  port: int) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[unsubscribe]\nbase_url = "{base_url}"\n', encoding="utf-8")
    assert serve_port(load_settings(config, environ={})) == port


def test_serve_help_says_where_the_default_port_comes_from() -> None:
    shown = run("serve", "--help").stdout
    assert "the port of [unsubscribe] base_url" in " ".join(shown.split())
