"""A workspace still holding the example values (organisation, postal address, example.org
addresses) is said so by `check`, and no SMTP send to another machine goes out with them."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from citesmail.config import load_settings, placeholder_values
from tests.conftest import REPLAY, SECRET, run


def test_check_names_every_placeholder_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            ) -> None:
    assert run("init", str(tmp_path / "centre")).exit_code == 0
    monkeypatch.chdir(tmp_path / "centre")
    checked = run("check")
    assert checked.exit_code == 0, checked.output
    [line] = [line for line in checked.output.splitlines() if "example values" in line]
    assert line.startswith("config.toml: warning: example values still configured: ")
    for shown in ("[organization] name", "[organization] postal_address", "[sender] from",
                  "[unsubscribe] base_url"):
        assert shown in line


def test_init_takes_the_real_values_and_check_is_then_quiet(tmp_path: Path) -> None:
    made = run("init", str(tmp_path / "centre"), "--organization", "Centre Ressources Ville",
               "--postal-address", "12 rue Garibaldi, 69003 Lyon",
               "--from", "Centre Ressources <annonces@crv-lyon.fr>",
               "--base-url", "https://lettres.crv-lyon.fr")
    assert made.exit_code == 0, made.output
    settings = load_settings(tmp_path / "centre" / "config.toml", environ={})
    assert settings.organization.name == "Centre Ressources Ville"
    assert settings.organization.postal_address == "12 rue Garibaldi, 69003 Lyon"
    assert settings.sender.from_ == "Centre Ressources <annonces@crv-lyon.fr>"
    assert settings.unsubscribe.base_url == "https://lettres.crv-lyon.fr"
    assert placeholder_values(settings) == []


def test_an_smtp_send_to_another_machine_refuses_example_values(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    env = {"CITESMAIL_DELIVERY_TRANSPORT": '"smtp"', "CITESMAIL_SMTP_HOST": '"relay.invalid"',
           "CITESMAIL_SECRET": SECRET}
    (workspace / "c.csv").write_text("email\np@example.org\n", encoding="utf-8")
    assert run("lists", "add", "aura").exit_code == 0
    assert run("contacts", "import", "c.csv", "--list", "aura").exit_code == 0
    assert run("segments", "add", "partenaires-aura", "--list", "aura").exit_code == 0
    refused = run("send", REPLAY, "--yes", env=env)
    assert refused.exit_code == 1
    assert "error: example values still configured" in refused.stderr
    assert "citesmail does not send them to relay.invalid" in refused.stderr
