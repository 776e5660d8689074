"""The warnings on the configuration about authentication: DKIM, and the alignment of
its domain and of the return path with the From domain."""

from __future__ import annotations

from pathlib import Path

from citesmail.checks import check_settings
from citesmail.config import load_settings
from citesmail.dkim_keys import generate
from citesmail.render.lint import alignment_problems, lint_settings


def messages(workspace: Path, **env: str) -> list[str]:
    return [p.message for p in alignment_problems(load_settings(workspace / "config.toml",
                                                                environ=env))]


def signing(workspace: Path, domain: str) -> dict[str, str]:
    pem, _ = generate("cm", domain, workspace / "keys", "rsa")
    return {"CITESMAIL_DKIM_SELECTOR": "cm", "CITESMAIL_DKIM_DOMAIN": domain,
            "CITESMAIL_DKIM_PRIVATE_KEY": str(pem)}


def test_dkim_off_is_said_with_how_to_turn_it_on(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    [off] = alignment_problems(settings)
    assert off.message == ("DKIM signing is off: fine if your mail relay signs messages for "
                           "example.org; otherwise they go unsigned")
    assert "citesmail dkim keygen --selector citesmail --domain example.org" in off.hint
    assert off.path == workspace / "config.toml" and off.line is not None
    assert off in lint_settings(settings) and off in check_settings(settings).warnings


def test_a_signature_aligned_with_from_is_not_warned_about(workspace: Path) -> None:
    assert messages(workspace, **signing(workspace, "example.org")) == []
    assert messages(workspace, **signing(workspace, "lettres.example.org")) == []


def test_a_dkim_domain_of_another_organisation_is_warned_about(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml",
                             environ=signing(workspace, "relais-mail.net"))
    [unaligned] = alignment_problems(settings)
    assert unaligned.message == ("[dkim] domain relais-mail.net does not align with the From "
                                 "domain example.org: DMARC does not count the signature")
    assert '[dkim] domain = "example.org"' in unaligned.hint
    assert unaligned.path == "CITESMAIL_DKIM_DOMAIN"


def test_a_return_path_of_another_organisation_is_warned_about(workspace: Path) -> None:
    aligned = signing(workspace, "example.org")
    assert messages(workspace, CITESMAIL_DELIVERY_RETURN_PATH="b+{token}@rebonds.example.org",
                    **aligned) == []
    [unaligned] = alignment_problems(load_settings(
        workspace / "config.toml",
        environ={"CITESMAIL_DELIVERY_RETURN_PATH": "b+{token}@bounces.relais.net", **aligned}))
    assert unaligned.message == (
        "[delivery] return_path domain bounces.relais.net does not align with the From "
        "domain example.org: its SPF pass does not count for DMARC")
    assert 'return_path = "bounces+{token}@example.org"' in unaligned.hint


def test_the_from_domain_decides_what_aligns(workspace: Path) -> None:
    env = {"CITESMAIL_SENDER_FROM": "Labo <annonces@lettres.labo.fr>",
           "CITESMAIL_DELIVERY_RETURN_PATH": "b+{token}@labo.fr", **signing(workspace, "labo.fr")}
    assert messages(workspace, **env) == []
