"""The .eml a recipient gets: headers safe from injection, signed links."""

from __future__ import annotations

import base64
import dataclasses
import email
import hashlib
import hmac
import re
import string
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from citesmail.campaigns import load_campaign
from citesmail.config import load_settings
from citesmail.dkim_keys import generate
from citesmail.errors import CitesmailError
from citesmail.message import (
    MessageTemplate,
    Origin,
    Recipient,
    links_for,
    message_id,
    parse_message_id,
    recipient_from_text,
    reference_message,
    to_bytes,
)
from citesmail.render import render_campaign
from citesmail.tokens import (
    DEVELOPMENT_SECRET,
    check_secret,
    make_token,
    new_secret,
    read_token,
)
from tests.conftest import EVENT, REPLAY


def raw_message_for(workspace: Path, recipient: Recipient, **env: str) -> bytes:
    settings = load_settings(workspace / "config.toml", environ=env)
    campaign = load_campaign(workspace / "campaigns" / f"{REPLAY}.md", default_lang="fr",
                             tz=settings.tz)
    return MessageTemplate(render_campaign(campaign, settings), settings).build(recipient)


def message_for(workspace: Path, recipient: Recipient, **env: str) -> email.message.Message:
    raw = raw_message_for(workspace, recipient, **env)
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


def test_a_token_has_one_spelling() -> None:
    """Base64 decoding forgives padding, stray characters and the unused low bits of the
    last character: none of those other spellings of a valid token may verify."""
    token = make_token("secret", 42, "camp")
    payload, tag = token.split(".")
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    # 16 bytes in 22 characters: the last one carries 2 bits, its 4 low bits are unused.
    same_bits = [c for c in alphabet if c != tag[-1]
                 and alphabet.index(c) >> 4 == alphabet.index(tag[-1]) >> 4]
    assert len(same_bits) == 15
    assert all(base64.urlsafe_b64decode(tag[:-1] + c + "==")
               == base64.urlsafe_b64decode(tag + "==") for c in same_bits)
    variants = [f"{payload}.{tag[:-1]}{c}" for c in same_bits]
    variants += [token + "!!!", token + "====", token + "=", f"{payload}=.{tag}",
                 f"{payload}.{tag[:4]}!{tag[4:]}", f"{payload}.{tag[:4]}\n{tag[4:]}",
                 f"{payload}.{tag[:4]}+{tag[5:]}", token + ".", " " + token]
    for variant in variants:
        with pytest.raises(CitesmailError):
            read_token("secret", variant)
    assert read_token("secret", token) == (42, "camp")


def test_a_token_with_a_payload_spelled_otherwise_is_refused() -> None:
    """'042' and '+42' read as contact 42: only the payload make_token writes is ours."""
    for contact in ("042", "+42", " 42", "4_2"):
        payload = f"{contact}:camp".encode()
        signed = hmac.new(b"secret", payload, hashlib.sha256).digest()[:16]
        token = f"{_b64(payload)}.{_b64(signed)}"
        with pytest.raises(CitesmailError):
            read_token("secret", token)


def test_the_tag_is_16_bytes_and_a_cut_one_is_refused() -> None:
    token = make_token("secret", 42, "camp")
    payload, tag = token.split(".")
    raw = base64.urlsafe_b64decode(tag + "==")
    assert len(raw) == 16
    for size in range(16):
        with pytest.raises(CitesmailError):
            read_token("secret", f"{payload}.{_b64(raw[:size])}")


@pytest.mark.parametrize("secret", ["", "x", "a" * 31, "é" * 15, DEVELOPMENT_SECRET])
def test_a_short_or_published_secret_is_refused_saying_how_to_make_one(secret: str) -> None:
    with pytest.raises(CitesmailError) as refused:
        check_secret(secret, "citesmail serve")
    [line] = str(refused.value).splitlines()
    assert line.startswith("citesmail serve") and "`citesmail secret`" in line


def test_a_secret_of_32_bytes_is_enough() -> None:
    for secret in ("a" * 32, "é" * 16):
        assert check_secret(secret, "citesmail serve") == secret


@pytest.mark.parametrize(("secret", "why"), [
    ("", "citesmail serve needs CITESMAIL_SECRET: without it anyone could forge links"),
    (DEVELOPMENT_SECRET, "citesmail serve: CITESMAIL_SECRET is the development key that "
                         "citesmail publishes: anyone could forge links"),
    ("é" * 15, "citesmail serve: CITESMAIL_SECRET is too short (30 bytes, at least 32): "
               "it could be guessed"),
])
def test_a_refused_secret_says_why(secret: str, why: str) -> None:
    with pytest.raises(CitesmailError) as refused:
        check_secret(secret, "citesmail serve")
    assert str(refused.value).startswith(why + " — make one with `citesmail secret`")


def test_a_new_secret_is_random_and_long_enough() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert len(base64.urlsafe_b64decode(first + "=")) == 32
    assert check_secret(first, "citesmail serve") == first


@pytest.mark.parametrize("campaign", ["a:b", "2026:12:printemps", ":", "camp:"])
def test_a_campaign_name_with_colons_round_trips(campaign: str) -> None:
    assert read_token("secret", make_token("secret", 42, campaign)) == (42, campaign)


def test_a_refused_token_says_what_to_do() -> None:
    token = make_token("secret", 42, "camp")
    with pytest.raises(CitesmailError) as malformed:
        read_token("secret", "garbage")
    assert str(malformed.value) == "malformed link token — use the link from the email"
    with pytest.raises(CitesmailError) as invalid:
        read_token("other", token)
    assert str(invalid.value) == "invalid link token — the link was altered or is not ours"


def test_a_token_with_characters_that_are_not_text_is_refused() -> None:
    """A path decoded with surrogateescape may hold lone surrogates: refused, not a crash."""
    token = make_token("secret", 42, "camp")
    payload, tag = token.split(".")
    for variant in (f"{payload}.{tag}\udcff", f"{payload}.\udcff{tag[1:]}"):
        with pytest.raises(CitesmailError, match="invalid link token"):
            read_token("secret", variant)


def test_a_message_id_names_its_campaign_and_contact(workspace: Path) -> None:
    """A bounce quotes the Message-ID: it must lead back to the campaign and contact."""
    sent = message_for(workspace, Recipient(email="a@example.org", contact_id=4217))
    assert parse_message_id(sent["Message-ID"]) == Origin(REPLAY, 4217)
    assert parse_message_id(f" {sent['Message-ID']}\r\n") == Origin(REPLAY, 4217)
    written = message_id("lettre-2", 7, "0a1b", "lettres.example.org")
    assert parse_message_id(written) == Origin("lettre-2", 7)
    for other in ("<CAF3k9vT2eXq8m1p@mail.example.org>", written[1:-1], written + "x",
                  "<lettre-2.7.0a1g@lettres.example.org>", "<lettre-2.x.0a1b@example.org>"):
        assert parse_message_id(other) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("camille@example.org", Recipient(email="camille@example.org")),
    ("Camille Martin <camille@example.org>",
     Recipient(email="camille@example.org", first_name="Camille", last_name="Martin")),
    ("  Anne Marie Dupont <a@example.org>",
     Recipient(email="a@example.org", first_name="Anne", last_name="Marie Dupont")),
])
def test_a_recipient_from_the_command_line(text: str, expected: Recipient) -> None:
    assert recipient_from_text(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("not an address", "not an address: 'not an address'"),
    ("<>", "not an address: '<>'"),
    ("a@b@c", "not an address: 'a@b@c'"),
    ("camille@exämple.fr",
     "not an ASCII address such as camille@example.org: 'camille@exämple.fr'"),
])
def test_what_is_not_a_recipient_is_refused_saying_so(text: str, why: str) -> None:
    with pytest.raises(ValueError) as refused:
        recipient_from_text(text)
    assert str(refused.value) == why


@pytest.mark.parametrize(("algorithm", "signed_with"), [("rsa", b"a=rsa-sha256"),
                                                       ("ed25519", b"a=ed25519-sha256")])
def test_a_signed_message_verifies_and_an_altered_one_does_not(
        workspace: Path, algorithm: str, signed_with: bytes) -> None:
    import dkim

    pem, record = generate("cm", "example.org", workspace / "keys", algorithm)  # type: ignore[arg-type]
    raw = raw_message_for(workspace, Recipient(email="a@example.org", contact_id=3),
                          CITESMAIL_DKIM_SELECTOR="cm", CITESMAIL_DKIM_DOMAIN="example.org",
                          CITESMAIL_DKIM_PRIVATE_KEY=str(pem))

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record.encode() if name == b"cm._domainkey.example.org." else b""

    assert raw.startswith(b"DKIM-Signature: ")
    signature = email.message_from_bytes(raw, policy=policy.default)["DKIM-Signature"]
    fields = {k.strip(): v.strip() for k, _, v in
              (part.partition("=") for part in "".join(signature.split()).split(";"))}
    assert (fields["d"], fields["s"], fields["c"]) == ("example.org", "cm", "relaxed/relaxed")
    assert signed_with in raw.split(b"\r\n\r\n", 1)[0]
    assert set(fields["h"].lower().split(":")) >= {
        "from", "to", "subject", "date", "message-id", "list-unsubscribe",
        "list-unsubscribe-post", "mime-version", "content-type"}
    assert dkim.verify(raw, dnsfunc=dns)
    for header in (b"Subject: ", b"List-Unsubscribe: ", b"MIME-Version: ", b"Message-ID: "):
        assert not dkim.verify(raw.replace(header, header + b"X", 1), dnsfunc=dns), header


def test_the_reference_message_names_its_headers_date_and_message_id(
        workspace: Path) -> None:
    """The standard-library build the fast path is held to: its own headers pinned."""
    from datetime import UTC, datetime
    from email.utils import format_datetime

    from citesmail.message import reference_message

    settings = load_settings(workspace / "config.toml", environ={})
    campaign = load_campaign(workspace / "campaigns" / f"{REPLAY}.md", default_lang="fr",
                             tz=settings.tz)
    moment = datetime(2026, 11, 30, 8, 15, tzinfo=UTC)
    recipient = Recipient(email="a@example.org", first_name="Anne", last_name="Léger",
                          contact_id=12)
    built = reference_message(render_campaign(campaign, settings), recipient, settings,
                              now=moment)
    assert list(built.keys()) == [
        "From", "To", "Subject", "List-Id", "Feedback-ID", "Precedence", "Date",
        "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version",
        "Content-Type"]
    assert built["Date"] == format_datetime(moment)
    assert built["Message-ID"] == f"<{REPLAY}.12.0@{settings.sender.domain}>"
    assert built["To"].addresses[0].display_name == "Anne Léger"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_links_use_the_base_url(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={})
    links = links_for(settings, 3, REPLAY)
    assert links.unsubscribe.startswith("https://lettres.example.org/u/")
    assert links.webview.replace("/v/", "/u/") == links.unsubscribe
    assert links.unsubscribe_mailto is None


def reference_for(workspace: Path, recipient: Recipient, *, now: datetime | None = None,
                  slug: str = REPLAY, **env: str) -> tuple[EmailMessage, bytes]:
    """The standard-library build and the fast path's, for the same recipient."""
    settings = load_settings(workspace / "config.toml", environ=env)
    campaign = load_campaign(workspace / "campaigns" / f"{slug}.md", default_lang="fr",
                             tz=settings.tz)
    rendered = render_campaign(campaign, settings)
    return (reference_message(rendered, recipient, settings, now=now),
            MessageTemplate(rendered, settings).build(recipient, now=now))


def header_lines(raw: bytes) -> dict[bytes, bytes]:
    """Each header as it is on the wire (folded lines kept), by its name as written."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    fields = head.replace(b"\r\n ", b"\0 ").replace(b"\r\n\t", b"\0\t").split(b"\r\n")
    return {f.split(b":", 1)[0]: f.replace(b"\0", b"\r\n") for f in fields}


def test_the_reference_on_the_wire_keeps_list_unsubscribe_as_written_with_crlf(
        workspace: Path) -> None:
    """Mailbox providers read List-Unsubscribe as written: the reference, like the fast
    path, sends it on one line (not folded into RFC 2047 words), and every line ends CRLF."""
    recipient = Recipient(email="a@example.org", first_name="Anne", contact_id=3)
    built, fast = reference_for(workspace, recipient,
                                CITESMAIL_UNSUBSCRIBE_MAILTO="desinscription@example.org")
    raw = to_bytes(built)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    line = header_lines(raw)[b"List-Unsubscribe"]
    assert line == header_lines(fast)[b"List-Unsubscribe"]
    assert b"\r\n" not in line and b"=?" not in line and len(line) > 78
    assert line.startswith(b"List-Unsubscribe: <https://lettres.example.org/u/")


def test_the_reference_writes_reply_to_as_the_fast_path_names_it(workspace: Path) -> None:
    recipient = Recipient(email="a@example.org", contact_id=3)
    built, fast = reference_for(workspace, recipient,
                                CITESMAIL_SENDER_REPLY_TO="Équipe <equipe@example.org>")
    assert list(built.keys())[:3] == ["From", "Reply-To", "To"]
    assert list(header_lines(to_bytes(built)))[:3] == list(header_lines(fast))[:3] == [
        b"From", b"Reply-To", b"To"]
    assert built["Reply-To"].addresses[0].addr_spec == "equipe@example.org"


def test_without_a_given_time_both_builds_are_dated_now_in_utc(workspace: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    built, fast = reference_for(workspace, Recipient(email="a@example.org", contact_id=3))
    after = datetime.now(UTC)
    for raw in (to_bytes(built), fast):
        date = header_lines(raw)[b"Date"].split(b": ", 1)[1].decode("ascii")
        assert date.endswith(" +0000")
        moment = parsedate_to_datetime(date)
        assert moment.tzinfo is not None and before <= moment <= after


def mime_parts(raw: bytes) -> list[tuple[str, str | None, str | None]]:
    """Each part's type, charset and transfer encoding, in order."""
    parsed = email.message_from_bytes(raw, policy=policy.default)
    return [(part.get_content_type(), part.get_param("charset"),
             part["Content-Transfer-Encoding"]) for part in parsed.walk()]


@pytest.mark.parametrize("short_lines", [False, True])
def test_the_reference_has_the_fast_paths_parts_and_encodings(workspace: Path,
                                                              short_lines: bool) -> None:
    """Text and HTML both go as UTF-8 quoted-printable (safe through any relay), in the
    reference as in the fast path: also a body whose lines are all short, which the
    standard library would otherwise send as 8bit."""
    settings = load_settings(workspace / "config.toml", environ={})
    rendered = render_campaign(load_campaign(workspace / "campaigns" / f"{REPLAY}.md",
                                             default_lang="fr", tz=settings.tz), settings)
    if short_lines:
        rendered = dataclasses.replace(
            rendered, html="<p>Bonjour @@cm0@@, à bientôt</p>\n",
            text="Bonjour @@cm0@@, à bientôt\n", slots=(("first_name", "à tous"),))
    recipient = Recipient(email="a@example.org", first_name="Zoé", contact_id=3)
    built = reference_message(rendered, recipient, settings)
    fast = MessageTemplate(rendered, settings).build(recipient)
    assert mime_parts(to_bytes(built)) == mime_parts(fast) == [
        ("multipart/alternative", None, None),
        ("text/plain", "utf-8", "quoted-printable"),
        ("text/html", "utf-8", "quoted-printable")]


def wire_headers(raw: bytes) -> list[tuple[str | None, str | None, str | None]]:
    """Each part's Content-Type, Content-Transfer-Encoding and Content-Disposition as
    written (unfolded; MIME boundaries, which are random, left out)."""
    parsed = email.message_from_bytes(raw, policy=policy.compat32)
    found = []
    for part in parsed.walk():
        kind, encoding, disposition = (
            " ".join(value.split()) if value is not None else None
            for value in (part["Content-Type"], part["Content-Transfer-Encoding"],
                          part["Content-Disposition"]))
        if part.is_multipart():
            kind = kind.split(";")[0] if kind else kind
        found.append((kind, encoding, disposition))
    return found


def test_an_invitation_goes_alike_in_the_reference_and_the_fast_path(
        workspace: Path) -> None:
    """An event's message: text, HTML and the invitation as alternatives (text/calendar,
    method PUBLISH, base64), then the invitation again as an .ics attachment; the
    reference writes every part's headers as the fast path does."""
    recipient = Recipient(email="a@example.org", first_name="Zoé", contact_id=7)
    built, fast = reference_for(workspace, recipient, slug=EVENT)
    name = f"{EVENT}.ics"
    expected = [
        ("multipart/mixed", None, None),
        ("multipart/alternative", None, None),
        ('text/plain; charset="utf-8"', "quoted-printable", None),
        ('text/html; charset="utf-8"', "quoted-printable", None),
        ('text/calendar; charset="utf-8"; method="PUBLISH"', "base64", None),
        (f'text/calendar; charset="utf-8"; name="{name}"', "base64",
         f'attachment; filename="{name}"')]
    assert wire_headers(to_bytes(built)) == wire_headers(fast) == expected
    invitations = []
    for raw in (to_bytes(built), fast):
        parsed = email.message_from_bytes(raw, policy=policy.default)
        *_, inline, attached = (part for part in parsed.walk() if not part.is_multipart())
        assert attached.get_content() == inline.get_content()
        invitations.append(inline.get_content())
    assert invitations[0] == invitations[1]
    assert invitations[0].startswith("BEGIN:VCALENDAR") and "BEGIN:VEVENT" in invitations[0]


def template_for(workspace: Path, **changes: object) -> tuple[MessageTemplate, object]:
    """The example replay's template, its rendering changed as asked (subject, bodies...)."""
    settings = load_settings(workspace / "config.toml", environ={})
    rendered = render_campaign(load_campaign(workspace / "campaigns" / f"{REPLAY}.md",
                                             default_lang="fr", tz=settings.tz), settings)
    rendered = dataclasses.replace(rendered, **changes)  # type: ignore[arg-type]
    return MessageTemplate(rendered, settings), rendered


@pytest.mark.parametrize("length", [14, 69])
def test_an_ascii_subject_that_fits_a_line_goes_as_written(workspace: Path,
                                                           length: int) -> None:
    """'Subject: ' and up to 69 characters make a line of 78: left whole."""
    subject = ("Lettre de mars " * 5)[:length - 1] + "!"
    template, _ = template_for(workspace, subject=subject)
    raw = template.build(Recipient(email="a@example.org"))
    assert header_lines(raw)[b"Subject"] == b"Subject: " + subject.encode("ascii")


def test_a_long_ascii_subject_is_folded_not_encoded(workspace: Path) -> None:
    subject = "La lettre de mars : rencontres, visios et replays des cités de l'emploi"
    subject = subject.replace("é", "e") + " en Auvergne-Rhone-Alpes"
    template, _ = template_for(workspace, subject=subject)
    raw = template.build(Recipient(email="a@example.org"))
    line = header_lines(raw)[b"Subject"]
    assert b"=?" not in line and b"\r\n " in line
    assert all(len(part) <= 78 for part in line.split(b"\r\n"))
    assert email.message_from_bytes(raw, policy=policy.default)["Subject"] == subject


def test_a_recipient_without_a_name_is_addressed_by_the_address_alone(
        workspace: Path) -> None:
    raw = raw_message_for(workspace, Recipient(email="a@example.org"))
    assert header_lines(raw)[b"To"] == b"To: a@example.org"


@pytest.mark.parametrize(("first", "last", "shown"), [
    ("Anne\tMarie", "Lee\r\n", "Anne Marie Lee"),
    ("Anne <A.", "Lee> <b@example.org>", "Anne <A. Lee> <b@example.org>"),
    ('"Zoé" <z@example.org>,', "Durand", '"Zoé" <z@example.org>, Durand'),
])
def test_a_name_with_breaks_or_brackets_reads_back_as_one_name(
        workspace: Path, first: str, last: str, shown: str) -> None:
    message = message_for(workspace, Recipient(email="a@example.org", first_name=first,
                                               last_name=last))
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (shown, "a@example.org")


@pytest.mark.parametrize("name", ["é" * 100, "Zoé 👩🏽‍💼 " * 12, "ß" * 23 + "a" * 45])
def test_a_long_name_goes_in_encoded_words_of_at_most_75_characters(
        workspace: Path, name: str) -> None:
    raw = raw_message_for(workspace, Recipient(email="a@example.org", first_name=name))
    line = header_lines(raw)[b"To"]
    words = re.findall(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=", line)
    assert len(words) > 1 and all(len(word) <= 75 for word in words)
    assert all(len(part) <= 78 for part in line.split(b"\r\n"))
    assert phrase_of(line) == " ".join(name.split())


def phrase_of(line: bytes) -> str:
    """The display name of an address header line as an RFC 2047 decoder reads it
    (whitespace between encoded words ignored)."""
    value = line.split(b": ", 1)[1].replace(b"\r\n ", b" ").decode("ascii")
    return str(make_header(decode_header(value.rsplit(" <", 1)[0])))


def test_an_ascii_name_goes_as_written_up_to_200_characters(workspace: Path) -> None:
    """Up to 200 characters an ASCII name is written as it is; a longer one goes in
    encoded words on folded lines (a header line must stay under 998 bytes)."""
    for length, encoded in ((200, False), (201, True)):
        name = "Marie-" + "a" * (length - 6)
        raw = raw_message_for(workspace, Recipient(email="a@example.org", first_name=name))
        line = header_lines(raw)[b"To"]
        assert (b"=?" in line) == encoded, length
        if not encoded:
            assert line == f"To: {name} <a@example.org>".encode("ascii")
        assert phrase_of(line) == name


def test_every_recipient_field_fills_its_placeholder(workspace: Path) -> None:
    slots = (("first_name", ""), ("last_name", ""), ("email", ""), ("organization", ""))
    template, _ = template_for(workspace, text="@@cm0@@|@@cm1@@|@@cm2@@|@@cm3@@\n",
                               html="<p>@@cm0@@|@@cm1@@|@@cm2@@|@@cm3@@</p>\n", slots=slots)
    raw = template.build(Recipient(email="zoe@example.org", first_name="Zoé",
                                   last_name="Durand", organization="Mairie & Cie",
                                   contact_id=5))
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed.get_body(("plain",)).get_content().rstrip() == \
        "Zoé|Durand|zoe@example.org|Mairie & Cie"
    assert parsed.get_body(("html",)).get_content().rstrip() == \
        "<p>Zoé|Durand|zoe@example.org|Mairie &amp; Cie</p>"


def test_links_keep_the_base_url_as_written_but_its_last_slash(workspace: Path) -> None:
    settings = load_settings(workspace / "config.toml", environ={
        "CITESMAIL_UNSUBSCRIBE_BASE_URL": "https://lettres.example.org/BOX/"})
    links = links_for(settings, 3, REPLAY)
    assert links.unsubscribe.startswith("https://lettres.example.org/BOX/u/")
    assert links.webview.startswith("https://lettres.example.org/BOX/v/")


def test_the_date_is_the_time_given_or_the_second_each_message_is_built(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import citesmail.message

    template, _ = template_for(workspace)
    recipient = Recipient(email="a@example.org")
    given = datetime(2026, 11, 30, 8, 15, 42, 100000, tzinfo=UTC)

    def date_of(raw: bytes) -> bytes:
        return header_lines(raw)[b"Date"]

    assert date_of(template.build(recipient, now=given)) == \
        b"Date: Mon, 30 Nov 2026 08:15:42 +0000"
    in_paris = given.astimezone(ZoneInfo("Europe/Paris"))  # the same second, its own zone
    assert date_of(template.build(recipient, now=in_paris)) == \
        b"Date: Mon, 30 Nov 2026 09:15:42 +0100"
    # Without a time: the clock's, read for each message (its second is what shows).
    template, _ = template_for(workspace)
    ticks = iter([given, given + timedelta(milliseconds=500), given + timedelta(seconds=1)])

    class Clock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return next(ticks)

    monkeypatch.setattr(citesmail.message, "datetime", Clock)
    assert [date_of(template.build(recipient)) for _ in range(3)] == [
        b"Date: Mon, 30 Nov 2026 08:15:42 +0000", b"Date: Mon, 30 Nov 2026 08:15:42 +0000",
        b"Date: Mon, 30 Nov 2026 08:15:43 +0000"]


def test_an_unreadable_dkim_key_is_named_when_it_is_refused(workspace: Path) -> None:
    key = workspace / "keys" / "cm.pem"
    key.parent.mkdir()
    key.write_text("not a PEM key\n", encoding="utf-8")
    settings = load_settings(workspace / "config.toml", environ={
        "CITESMAIL_DKIM_SELECTOR": "cm", "CITESMAIL_DKIM_DOMAIN": "example.org",
        "CITESMAIL_DKIM_PRIVATE_KEY": str(key)})
    rendered = render_campaign(load_campaign(workspace / "campaigns" / f"{REPLAY}.md",
                                             default_lang="fr", tz=settings.tz), settings)
    with pytest.raises(CitesmailError) as refused:
        MessageTemplate(rendered, settings)
    assert str(refused.value).startswith(f"the DKIM private key {key} cannot be read")
