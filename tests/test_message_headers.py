"""The headers that name a message's list and sender to mailbox providers (List-Id,
Feedback-ID, Precedence), and what DKIM signs of them."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from citesmail.campaigns import load_campaign
from citesmail.config import load_settings
from citesmail.dkim_keys import generate
from citesmail.message import Audience, MessageTemplate, Recipient
from citesmail.render import render_campaign
from tests.conftest import REPLAY

PARTNERS = Audience("partenaires-aura", "Partenaires Auvergne-Rhône-Alpes")


def build(workspace: Path, audience: Audience | None = None, **env: str) -> bytes:
    settings = load_settings(workspace / "config.toml", environ=env)
    campaign = load_campaign(workspace / "campaigns" / f"{REPLAY}.md", default_lang="fr",
                             tz=settings.tz)
    template = MessageTemplate(render_campaign(campaign, settings), settings,
                               audience=audience)
    return template.build(Recipient(email="a@example.org", contact_id=3))


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_the_list_id_names_the_segment_not_the_campaign(workspace: Path) -> None:
    message = parsed(build(workspace, PARTNERS))
    assert message["List-Id"] == ("Labo Cités \u2014 Partenaires Auvergne-Rhône-Alpes "
                                  "<partenaires-aura.example.org>")
    assert REPLAY not in message["List-Id"]


def test_a_segment_without_a_title_is_named_by_its_name(workspace: Path) -> None:
    message = parsed(build(workspace, Audience("elus")))
    assert message["List-Id"] == "Labo Cités \u2014 elus <elus.example.org>"


def test_without_a_segment_the_list_id_is_the_organisations_all(workspace: Path) -> None:
    message = parsed(build(workspace))
    assert message["List-Id"] == "Labo Cités <all.example.org>"


def test_feedback_id_names_campaign_segment_organisation_and_citesmail(
        workspace: Path) -> None:
    assert parsed(build(workspace, PARTNERS))["Feedback-ID"] == \
        f"{REPLAY}:partenaires-aura:labo-cites:citesmail"
    assert parsed(build(workspace))["Feedback-ID"] == f"{REPLAY}:all:labo-cites:citesmail"


def test_feedback_id_takes_the_organisations_short_name(workspace: Path) -> None:
    raw = build(workspace, PARTNERS, CITESMAIL_ORGANIZATION_SHORT_NAME="lc69")
    assert parsed(raw)["Feedback-ID"] == f"{REPLAY}:partenaires-aura:lc69:citesmail"


def test_every_message_says_it_is_bulk_mail(workspace: Path) -> None:
    assert parsed(build(workspace))["Precedence"] == "bulk"


# -- DKIM ---------------------------------------------------------------------------


def signed(workspace: Path, **env: str) -> tuple[bytes, object]:
    pem, record = generate("cm", "example.org", workspace / "keys", "rsa")
    raw = build(workspace, PARTNERS, CITESMAIL_DKIM_SELECTOR="cm",
                CITESMAIL_DKIM_DOMAIN="example.org", CITESMAIL_DKIM_PRIVATE_KEY=str(pem),
                **env)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record.encode() if name == b"cm._domainkey.example.org." else b""

    return raw, dns


def signed_names(raw: bytes) -> list[str]:
    signature = parsed(raw)["DKIM-Signature"]
    fields = dict(part.partition("=")[::2] for part in "".join(signature.split()).split(";"))
    return fields["h"].lower().split(":")


def add_header(raw: bytes, line: bytes, *, first: bool) -> bytes:
    """The message with one more header line, before all others or after all others
    (both after the DKIM-Signature, as a relay would add it)."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"DKIM-Signature: ")
    signature = 1 + next(i for i, text in enumerate(lines[1:]) if text[:1] not in b" \t")
    lines.insert(signature if first else len(lines), line)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


REPLY_TO = {"CITESMAIL_SENDER_REPLY_TO": "Équipe <equipe@example.org>"}


@pytest.mark.parametrize("env", [{}, REPLY_TO], ids=["no reply-to", "reply-to"])
def test_dkim_signs_the_list_headers_and_over_signs_from_subject_reply_to(
        workspace: Path, env: dict[str, str]) -> None:
    import dkim

    raw, dns = signed(workspace, **env)
    names = signed_names(raw)
    assert dkim.verify(raw, dnsfunc=dns)
    present = 2 if env else 1  # Reply-To: once per header, and once more
    assert (names.count("from"), names.count("subject"), names.count("reply-to")) == \
        (2, 2, present)
    for name in ("list-id", "feedback-id", "to", "date", "message-id", "list-unsubscribe",
                 "list-unsubscribe-post", "mime-version", "content-type"):
        assert names.count(name) == 1, name


@pytest.mark.parametrize("env", [{}, REPLY_TO], ids=["no reply-to", "reply-to"])
@pytest.mark.parametrize("line", [b"From: Mallory <m@example.net>",
                                  b"Subject: Gagnez un prix",
                                  b"Reply-To: m@example.net"])
@pytest.mark.parametrize("first", [True, False], ids=["prepended", "appended"])
def test_a_second_from_subject_or_reply_to_breaks_the_signature(
        workspace: Path, env: dict[str, str], line: bytes, first: bool) -> None:
    import dkim

    raw, dns = signed(workspace, **env)
    assert dkim.verify(raw, dnsfunc=dns)
    assert not dkim.verify(add_header(raw, line, first=first), dnsfunc=dns)


def test_an_unsigned_header_added_leaves_the_signature_valid(workspace: Path) -> None:
    """The test above fails for the reason it says: adding a header nobody signs is fine."""
    import dkim

    raw, dns = signed(workspace)
    for first in (True, False):
        assert dkim.verify(add_header(raw, b"X-Relay: 1", first=first), dnsfunc=dns)


@pytest.mark.parametrize(("header", "changed"), [
    (b"List-Id: ", b"List-Id: autre <autre.example.org>\r\nX-Old-List-Id: "),
    (b"Feedback-ID: ", b"Feedback-ID: x:y:z:citesmail\r\nX-Old-Feedback-ID: "),
])
def test_changing_list_id_or_feedback_id_breaks_the_signature(
        workspace: Path, header: bytes, changed: bytes) -> None:
    import dkim

    raw, dns = signed(workspace)
    assert header in raw
    assert not dkim.verify(raw.replace(header, changed, 1), dnsfunc=dns)
    assert not dkim.verify(raw.replace(header, header + b"X", 1), dnsfunc=dns)


@pytest.mark.parametrize("value", ["labo:cites", "labo cités", "x" * 31, "-labo"])
def test_a_short_name_that_cannot_be_a_feedback_id_field_is_refused(value: str) -> None:
    from citesmail.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"CITESMAIL_ORGANIZATION_SHORT_NAME": value})
    assert "at most 30 ASCII letters" in str(refused.value)


@pytest.mark.parametrize(("name", "slug"), [
    ("Labo Cités", "labo-cites"), ("Centre : Ressources & Co", "centre-ressources-co"),
    ("Œuvre", "uvre"), ("東京", "citesmail"),
    ("Centre de ressources politique de la ville Auvergne", "centre-de-ressources-politique"),
])
def test_without_a_short_name_feedback_id_takes_a_slug_of_the_name(name: str,
                                                                    slug: str) -> None:
    settings = load_settings(environ={"CITESMAIL_ORGANIZATION_NAME": name})
    assert settings.organization.feedback_name == slug
    assert len(slug) <= 30 and ":" not in slug and slug.isascii()
