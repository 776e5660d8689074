"""The .eml a recipient gets: headers safe from injection, signed links."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from citesmail.campaigns import load_campaign
from citesmail.config import load_settings
from citesmail.errors import CitesmailError
from citesmail.message import MessageTemplate, Recipient, links_for
from citesmail.render import render_campaign
from citesmail.tokens import make_token, read_token

from .conftest import REPLAY


def message_for(workspace: Path, recipient: Recipient, **env: str) -> email.message.Message:
    settings = load_settings(workspace / "config.toml", environ=env)
    campaign = load_campaign(workspace / "campaigns" / f"{REPLAY}.md", default_lang="fr",
                             tz=settings.tz)
    raw = MessageTemplate(render_campaign(campaign, settings), settings).build(recipient)
    return email.message_from_bytes(raw, policy=policy.default)


def test_no_header_carries_a_line_break_from_input(workspace: Path) -> None:
    sneaky = Recipient(email="a@example.org", first_name="Anne\r\nBcc: victim@example.org",
                       last_name="Lee\nX-Evil: 1")
    message = message_for(workspace, sneaky)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert message["To"].addresses[0].addr_spec == "a@example.org"


def test_reply_to_and_mailto_unsubscribe(workspace: Path) -> None:
    message = message_for(workspace, Recipient(email="a@example.org", contact_id=7),
                          CITESMAIL_SENDER_REPLY_TO="Équipe <equipe@example.org>",
                          CITESMAIL_UNSUBSCRIBE_MAILTO="desinscription@example.org",
                          CITESMAIL_UNSUBSCRIBE_BASE_URL="https://lettres.example.org/",
                          CITESMAIL_SECRET="s")
    assert message["Reply-To"] == "Équipe <equipe@example.org>"
    web, mailto = (part.strip() for part in message["List-Unsubscribe"].split(","))
    assert web.startswith("<https://lettres.example.org/u/") and web.endswith(">")
    assert mailto.startswith("<mailto:desinscription@example.org?subject=unsubscribe%20")
    token = web[len("<https://lettres.example.org/u/"):-1]
    assert read_token("s", token) == (7, REPLAY)
    assert web[1:-1] in message.get_body(("html",)).get_content()


def test_tokens_refuse_forgery_and_other_secrets() -> None:
    token = make_token("secret", 42, "camp")
    assert read_token("secret", token) == (42, "camp")
    with pytest.raises(CitesmailError, match="invalid"):
        read_token("other", token)
    forged = make_token("other", 43, "camp").split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(CitesmailError, match="invalid"):
        read_token("secret", forged)
    with pytest.raises(CitesmailError, match="malformed"):
        read_token("secret", "garbage")


def test_links_use_the_base_url(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    links = links_for(settings, 3, REPLAY)
    assert links.unsubscribe.startswith("https://lettres.example.org/u/")
    assert links.webview.replace("/v/", "/u/") == links.unsubscribe
    assert links.unsubscribe_mailto is None
