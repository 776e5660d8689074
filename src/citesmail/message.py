"""One recipient's complete message (RFC 5322 bytes) from a rendered campaign.

`MessageTemplate` is the fast path used for every send and preview: everything that is
the same for all recipients (headers, MIME structure, the quoted-printable encoding of
the HTML and text between placeholders) is built once per campaign; per recipient only
a few short values are encoded and joined. `reference_message` builds the same message
with `email.message.EmailMessage` (about 30 times slower); tests and benchmarks hold
the fast path to it.
"""

from __future__ import annotations

import base64
import html
import itertools
import operator
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy, quoprimime
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Protocol

from .campaigns.models import SLUG
from .config import Settings
from .dkim_keys import signing_key
from .render import RenderedCampaign
from .render.slots import RAW_FIELDS, TOKEN, fill
from .tokens import DEVELOPMENT_SECRET, LinkTokens, make_token

# Headers set with `set_raw` go out verbatim: the email package would otherwise fold a
# long List-Unsubscribe URL into RFC 2047 encoded words that mailbox providers cannot
# read. Other headers are still folded (and encoded when not ASCII) at 78 columns.
WIRE_POLICY = policy.SMTP.clone(refold_source="none")
CRLF = b"\r\n"
# The headers DKIM signs, in the order of the message. From, Subject and Reply-To are
# named once more than they occur ("over-signed"): a header of that name added on the
# way, before or after ours, then breaks the signature.
DKIM_HEADERS = [b"from", b"reply-to", b"to", b"subject", b"list-id", b"feedback-id",
                b"date", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post",
                b"mime-version", b"content-type"]
OVER_SIGNED = [b"from", b"subject", b"reply-to"]
# What a message's List-Id and Feedback-ID say when its send has no segment.
ALL_SEGMENT = "all"
# <campaign slug>.<contact id>.<hex digits>@<sender domain>: a bounce names the message it
# reports on by its Message-ID, which says which campaign and contact it was for.
MESSAGE_ID = re.compile(
    rf"<(?P<campaign>{SLUG.pattern})\.(?P<contact>[0-9]+)\.[0-9a-f]+@[^<>@\s]+>")


@dataclass(frozen=True)
class Origin:
    """The citesmail message a Message-ID names."""

    campaign: str
    contact_id: int


def message_id(slug: str, contact_id: int, unique: str, domain: str) -> str:
    """The Message-ID of a campaign's message to a contact (`unique`: hex digits)."""
    return f"<{slug}.{contact_id}.{unique}@{domain}>"


def parse_message_id(value: str) -> Origin | None:
    """The campaign and contact of a Message-ID `message_id` wrote; None for others."""
    found = MESSAGE_ID.fullmatch(value.strip())
    if found is None:
        return None
    return Origin(found["campaign"], int(found["contact"]))


def dkim_headers(reply_to: bool) -> list[bytes]:
    """The h= list: each header present once, then the over-signed ones again (Reply-To
    once when absent: adding one later breaks the signature too)."""
    present = [name for name in DKIM_HEADERS if reply_to or name != b"reply-to"]
    return present + OVER_SIGNED


@dataclass(frozen=True)
class Audience:
    """The segment a send goes to: List-Id and Feedback-ID name it, the same for every
    campaign sent to it (mail clients and feedback loops group messages by it)."""

    name: str  # a segment name: lower-case letters, digits, '-' and '_'
    title: str = ""


def list_id(organization: str, audience: Audience | None, domain: str) -> tuple[str, str]:
    """(description, identifier) of List-Id: `Labo Cités — Partenaires` and
    `partenaires.example.org`; without a segment, the organisation and `all.<domain>`."""
    name = clean(organization)
    if audience is None:
        return name, f"{ALL_SEGMENT}.{domain}"
    label = clean(audience.title) or audience.name
    return f"{name} \u2014 {label}", f"{audience.name}.{domain}"


def feedback_id(campaign: str, audience: Audience | None, organization: str) -> str:
    """Gmail's Feedback-ID: colon-separated fields, the last one the sender's."""
    segment = audience.name if audience is not None else ALL_SEGMENT
    return f"{campaign}:{segment}:{organization}:citesmail"


@dataclass(frozen=True)
class Recipient:
    email: str  # as it goes on the wire: the domain in its ASCII (IDNA) form
    first_name: str = ""
    last_name: str = ""
    organization: str = ""
    contact_id: int = 0
    lists: str = ""  # the public lists through which they are in the segment, by title
    measurement_consent: bool = False  # they agreed that their clicks and opens be theirs

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


SAMPLE_RECIPIENT = Recipient(
    email="camille.martin@example.org",
    first_name="Camille",
    last_name="Martin",
    organization="Ville d'Exemple",
)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HTML_SPECIAL = re.compile("[&<>\"']")  # what html.escape(quote=True) changes


def clean(value: str) -> str:
    """No header may carry a line break (or any control character) from any input."""
    return " ".join(_CONTROL.sub(" ", value).split())


@dataclass(frozen=True)
class Links:
    unsubscribe: str
    webview: str
    unsubscribe_mailto: str | None
    preferences: str = ""

    @property
    def list_unsubscribe(self) -> str:
        found = [f"<{self.unsubscribe}>"]
        if self.unsubscribe_mailto:
            found.append(f"<{self.unsubscribe_mailto}>")
        return ", ".join(found)


def links_for(settings: Settings, contact_id: int, campaign: str) -> Links:
    return _links(settings, make_token(settings.secret or DEVELOPMENT_SECRET, contact_id,
                                       campaign))


def _links(settings: Settings, token: str) -> Links:
    base = settings.unsubscribe.base_url.rstrip("/")
    mailto = settings.unsubscribe.mailto
    return Links(
        unsubscribe=f"{base}/u/{token}",
        webview=f"{base}/v/{token}",
        unsubscribe_mailto=f"mailto:{mailto}?subject=unsubscribe%20{token}" if mailto else None,
        preferences=f"{base}/p/{token}",
    )


def recipient_values(recipient: Recipient, links: Links) -> dict[str, str]:
    return {
        "first_name": recipient.first_name,
        "last_name": recipient.last_name,
        "email": recipient.email,
        "organization": recipient.organization,
        "lists": recipient.lists,
        "unsubscribe_url": links.unsubscribe,
        "webview_url": links.webview,
        "preferences_url": links.preferences,
        "calendar_url": f"{links.webview}/event.ics",
        "google_calendar_url": f"{links.webview}/google",
        "outlook_calendar_url": f"{links.webview}/outlook",
    }


Slots = tuple[tuple[str, str], ...]


class Measures(Protocol):
    """What a send adds to its messages to measure them (tracking/measure.py)."""

    def apply(self, html: str, text: str, slots: Slots) -> tuple[str, str, Slots]: ...
    def values(self, recipient: Recipient) -> dict[str, str]: ...


@dataclass(frozen=True)
class Personalized:
    """One recipient's HTML and text parts, and their links."""

    html: str
    text: str
    links: Links


def personalize(rendered: RenderedCampaign, recipient: Recipient, settings: Settings,
                measurement: Measures | None = None) -> Personalized:
    links = links_for(settings, recipient.contact_id, rendered.campaign.slug)
    values = recipient_values(recipient, links)
    if measurement is None:
        html_part, text_part = rendered.fill(values)
        return Personalized(html_part, text_part, links)
    html_body, text_body, slots = measurement.apply(rendered.html, rendered.text,
                                                    rendered.slots)
    values.update(measurement.values(recipient))
    return Personalized(fill(html_body, slots, values, escape=True),
                        fill(text_body, slots, values, escape=False), links)


def recipient_from_text(text: str) -> Recipient:
    """`--as` value: an address, optionally 'First Last <address>'; ValueError if not."""
    name, address = parseaddr(text)
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"not an address: {text!r}") from exc
    if "@" not in address or not address.isascii():
        raise ValueError(f"not an ASCII address such as camille@example.org: {text!r}")
    first, _, last = name.strip().partition(" ")
    return Recipient(email=address, first_name=first, last_name=last)


def _qp(text: str) -> bytes:
    """Quoted-printable of UTF-8 text, CRLF line ends, lines of at most 76 characters."""
    return quoprimime.body_encode(text.encode("utf-8").decode("latin-1"), maxlinelen=76,
                                  eol="\r\n").encode("ascii")


_PLAIN = re.compile(r"[!-<>-~][ !-<>-~]{0,70}[!-<>-~]|[!-<>-~]")
_PLAIN_LONG = re.compile(r"[!-<>-~][ !-<>-~]*[!-<>-~]")


def _qp_plain(text: str) -> bytes:
    """What _qp makes of printable ASCII without '=' that ends on a visible character
    (a link, say), without its character-by-character work: lines of 75 characters
    and a soft break, the last one of at most 76."""
    lines, start = [], 0
    while start <= len(text) - 77:
        lines.append(text[start:start + 75] + "=")
        start += 75
    lines.append(text[start:])
    return "\r\n".join(lines).encode("ascii")


def _qp_piece(text: str) -> bytes:
    """A piece of a body that more pieces follow: it ends on a soft line break, so that
    pieces encoded apart decode to their concatenation."""
    if not text:
        return b""
    if len(text) <= 72:
        if _PLAIN.fullmatch(text):  # short printable ASCII without '=': encodes as itself
            return text.encode("ascii") + b"=\r\n"
    elif _PLAIN_LONG.fullmatch(text):  # a link: cut into lines, as _qp would
        return _qp_plain(text) + b"=\r\n"
    encoded = _qp(text)
    return encoded if text.endswith("\n") else encoded + b"=\r\n"


def _split_body(text: str) -> list[bytes | int]:
    """Static pieces, pre-encoded, and slot indices in between."""
    pieces: list[bytes | int] = []
    for index, part in enumerate(TOKEN.split(text)):
        if index % 2:
            pieces.append(int(part))
        elif part:
            pieces.append(_qp_piece(part))
    return pieces


def _encoded_words(text: str) -> str:
    """RFC 2047 base64 words of at most 75 characters, never splitting a character,
    folded onto continuation lines."""
    whole = text.encode("utf-8")
    if len(whole) <= 45:  # one word: most names
        return f"=?utf-8?b?{base64.b64encode(whole).decode('ascii')}?="
    words, chunk = [], b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 45:  # 45 bytes -> 60 base64 characters
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def _phrase(name: str) -> str:
    """A display name for an address header: quoted if needed, RFC 2047 if not ASCII."""
    if not name:
        return ""
    if name.isascii() and len(name) <= 200:
        return formataddr((name, "x@x")).rsplit(" <", 1)[0]
    return _encoded_words(name)  # folded onto lines: a long name stays under 998 bytes


def _address_header(name: str, address: str) -> str:
    phrase = _phrase(clean(name))
    return f"{phrase} <{address}>" if phrase else address


def _unstructured(name: str, value: str) -> bytes:
    if value.isascii() and len(name) + len(value) + 2 <= 78:
        return f"{name}: {value}".encode("ascii") + CRLF
    encoded = Header(value, "utf-8" if not value.isascii() else "us-ascii",
                     header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}".encode("ascii") + CRLF


class Renderable(Protocol):
    """A rendered campaign, fresh (RenderedCampaign) or as stored by a send."""

    @property
    def slug(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def slots(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def calendar(self) -> str | None: ...


def _base64(data: bytes) -> bytes:
    """Base64 body lines of 76 characters, CRLF."""
    encoded = base64.b64encode(data)
    return b"".join(encoded[i:i + 76] + CRLF for i in range(0, len(encoded), 76))


def calendar_filename(slug: str) -> str:
    return f"{slug}.ics"


def _calendar_parts(calendar: str, slug: str, inner: bytes, outer: bytes) -> bytes:
    """After the HTML: the invitation as the last alternative (text/calendar, which
    Outlook and Gmail offer to add), then as an .ics attachment for every other client:
    text/calendar too (the registered type), without a method, so that it stays a file."""
    data = calendar.encode("utf-8")
    name = calendar_filename(slug).encode("ascii")
    return b"".join([
        b"\r\n--", inner, b"\r\n",
        b'Content-Type: text/calendar; charset="utf-8"; method="PUBLISH"\r\n',
        b"Content-Transfer-Encoding: base64\r\n\r\n", _base64(data),
        b"\r\n--", inner, b"--\r\n",
        b"\r\n--", outer, b"\r\n",
        b'Content-Type: text/calendar; charset="utf-8"; name="', name, b'"\r\n',
        b'Content-Disposition: attachment; filename="', name, b'"\r\n',
        b"Content-Transfer-Encoding: base64\r\n\r\n", _base64(data),
        b"\r\n--", outer, b"--\r\n",
    ])


class Wire(bytes):
    """A message as SMTP's DATA carries it (RFC 5321, 4.5.2): every dot that starts a
    line doubled, ended by CRLF . CRLF."""


def dot_stuffed(data: bytes) -> Wire:
    """Any message as DATA carries it."""
    body = data.replace(b"\n.", b"\n..")
    if body.startswith(b"."):
        body = b"." + body
    if not body.endswith(CRLF):
        body += CRLF
    return Wire(body + b".\r\n")


def _stuffed(piece: bytes) -> bytes:
    """A piece of a message that starts a line, its line-starting dots doubled."""
    if piece.startswith(b"."):
        piece = b"." + piece
    return piece.replace(b"\n.", b"\n..") if b"\n." in piece else piece


@dataclass(frozen=True)
class _Frame:
    """What every recipient's message shares, around their values: headers, the body
    pieces (with slot indices where a value goes), the MIME boundaries."""

    head: bytes
    middle: bytes
    tail: bytes
    text: list[bytes | int]
    between: bytes
    html: list[bytes | int]
    end: bytes

    def stuffed(self) -> _Frame:
        """The same, dot-stuffed for DATA once, not once per message: each part starts
        a line (every body piece ends on a line break, soft or hard)."""
        def pieces(found: list[bytes | int]) -> list[bytes | int]:
            return [p if isinstance(p, int) else _stuffed(p) for p in found]

        return _Frame(_stuffed(self.head), _stuffed(self.middle), _stuffed(self.tail),
                      pieces(self.text), _stuffed(self.between), pieces(self.html),
                      _stuffed(self.end))


class _Layout:
    """The order of a message's parts: the pieces every message shares (`shared`), and
    after them, in the list a message is made from, its own: its To, Date, Message-ID
    and List-Unsubscribe lines, then each slot's value as the text shows it, then as
    the HTML shows it. `order` picks them all in message order, in one call."""

    HEADERS = 4  # To, Date, Message-ID, List-Unsubscribe

    def __init__(self, frame: _Frame, slots: int, ending: bytes = b"") -> None:
        self.shared: list[bytes] = []
        positions: list[int] = []
        mine = {"to": 0, "date": 1, "id": 2, "unsubscribe": 3}

        def add(piece: bytes | int | str, base: int = 0) -> None:
            if isinstance(piece, bytes):
                positions.append(len(self.shared))
                self.shared.append(piece)
            else:  # a value of the message's own, placed once `shared` is complete
                positions.append(-1 - (mine[piece] if isinstance(piece, str) else base + piece))

        for piece in (frame.head, "to", frame.middle, "date", "id", "unsubscribe",
                      frame.tail):
            add(piece)
        for found in frame.text:
            add(found, self.HEADERS)
        add(frame.between)
        for found in frame.html:
            add(found, self.HEADERS + slots)
        add(frame.end)
        if ending:
            add(ending)
        size = len(self.shared)
        indices = [p if p >= 0 else size - 1 - p for p in positions]
        self.order = operator.itemgetter(*indices)
        self.text_slots = sorted({p for p in frame.text if isinstance(p, int)})
        self.html_slots = sorted({p for p in frame.html if isinstance(p, int)})


class MessageTemplate:
    """A campaign's message with the recipient left out, ready to be filled fast."""

    def __init__(self, rendered: Renderable, settings: Settings, *,
                 subject_prefix: str = "", audience: Audience | None = None,
                 measurement: Measures | None = None) -> None:
        self.rendered = rendered
        self.settings = settings
        self.measurement = measurement
        html_body, text_body, self.slots = rendered.html, rendered.text, rendered.slots
        if measurement is not None:
            html_body, text_body, self.slots = measurement.apply(html_body, text_body,
                                                                 self.slots)
        self.raw = [field in RAW_FIELDS for field, _ in self.slots]
        self.domain = settings.sender.domain
        self.slug = rendered.slug
        boundary = f"=_citesmail_{secrets.token_hex(12)}"  # "=_" never occurs in QP
        # Message-IDs: random per template, then counted (no system call per message).
        self._id_prefix, self._ids = secrets.token_hex(6), itertools.count()
        sender = settings.sender
        head = [b"From: " + _address_header(*parseaddr(clean(sender.from_))).encode("ascii")
                + CRLF]
        if sender.reply_to:
            head.append(b"Reply-To: " + _address_header(
                *parseaddr(clean(sender.reply_to))).encode("ascii") + CRLF)
        head_bytes = b"".join(head)
        organization = settings.organization
        middle = b"".join([
            _unstructured("Subject", clean(subject_prefix + rendered.subject)),
            b"List-Id: " + _address_header(*list_id(organization.name, audience, self.domain))
            .encode("ascii") + CRLF,
            b"Feedback-ID: " + feedback_id(self.slug, audience, organization.feedback_name)
            .encode("ascii") + CRLF,
            b"Precedence: bulk\r\n",
        ])
        self.dkim_headers = dkim_headers(bool(sender.reply_to))
        inner = boundary.encode()
        alternative = b'Content-Type: multipart/alternative; boundary="' + inner + b'"\r\n'
        calendar = rendered.calendar
        outer = inner + b"_mixed"
        tail = b"".join([
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"MIME-Version: 1.0\r\n",
            b'Content-Type: multipart/mixed; boundary="' + outer + b'"\r\n\r\n--' + outer
            + b"\r\n" if calendar else b"",
            alternative,
            b"\r\n--" + inner + b"\r\n"
            b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
        ])
        between = (b"\r\n--" + inner + b"\r\n"
                   b'Content-Type: text/html; charset="utf-8"\r\n'
                   b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        end = _calendar_parts(calendar, self.slug, inner, outer) if calendar else \
            b"\r\n--" + inner + b"--\r\n"
        pem = settings.dkim_key()
        self.dkim = signing_key(pem, settings.dkim.private_key) if pem else None
        self.frame = _Frame(head_bytes, middle, tail, _split_body(text_body), between,
                            _split_body(html_body), end)
        self.layout = _Layout(self.frame, len(self.slots))
        self.wire_layout = _Layout(self.frame.stuffed(), len(self.slots), b".\r\n")
        self.tokens = LinkTokens(settings.secret or DEVELOPMENT_SECRET, self.slug)
        # Each slot the bodies show, with what fills it: encoded once per message.
        self.blank = [b""] * len(self.slots)
        self.text_fields = [(slot, *self.slots[slot]) for slot in self.layout.text_slots]
        self.html_fields = [(slot, *self.slots[slot], self.raw[slot])
                            for slot in self.layout.html_slots]
        self._date = (0, b"")

    def _date_header(self, now: datetime | None) -> bytes:
        moment = now or datetime.now(UTC)
        second = int(moment.timestamp())
        if now is not None or self._date[0] != second:
            self._date = (second, f"Date: {format_datetime(moment)}\r\n".encode("ascii"))
        return self._date[1]

    def build(self, recipient: Recipient, *, now: datetime | None = None,
              links: Links | None = None) -> bytes:
        """The complete RFC 5322 message for one recipient (CRLF, lines <= 998 bytes)."""
        data = b"".join(self._parts(recipient, now, links, self.layout))
        return self._signed(data) if self.dkim else data

    def build_wire(self, recipient: Recipient, *, now: datetime | None = None) -> Wire:
        """The same message as SMTP's DATA carries it: `dot_stuffed(build(...))`, made
        from parts stuffed once per campaign rather than by scanning every message."""
        if self.dkim:  # the signature is over the message as it is: stuff it after
            return dot_stuffed(self.build(recipient, now=now))
        return Wire(b"".join(self._parts(recipient, now, None, self.wire_layout)))

    def _parts(self, recipient: Recipient, now: datetime | None, links: Links | None,
               layout: _Layout) -> tuple[bytes, ...]:
        contact_id = recipient.contact_id
        links = links or _links(self.settings, self.tokens(contact_id))
        values = recipient_values(recipient, links)
        if self.measurement is not None:
            values.update(self.measurement.values(recipient))
        wire = layout is self.wire_layout  # each value starts a line, as every piece does
        encoded: dict[str, bytes] = {}  # a value shown in both bodies is encoded once

        def encode(value: str) -> bytes:
            found = encoded.get(value)
            if found is None:
                found = _qp_piece(value)
                if wire and found:
                    found = _stuffed(found)
                encoded[value] = found
            return found

        text, html_ = self.blank.copy(), self.blank.copy()
        for slot, field, default in self.text_fields:
            text[slot] = encode(values.get(field) or default)
        for slot, field, default, raw in self.html_fields:
            value = values.get(field) or default
            if not raw and _HTML_SPECIAL.search(value):
                value = html.escape(value, quote=True)
            html_[slot] = encode(value)
        identifier = message_id(self.slug, contact_id, f"{self._id_prefix}{next(self._ids):x}",
                                self.domain)
        mine = [
            b"To: %s\r\n" % _address_header(recipient.display_name,
                                             recipient.email).encode("ascii"),
            self._date_header(now),
            b"Message-ID: %s\r\n" % identifier.encode("ascii"),
            b"List-Unsubscribe: %s\r\n" % clean(links.list_unsubscribe).encode("ascii"),
        ]
        parts: tuple[bytes, ...] = layout.order(layout.shared + mine + text + html_)
        return parts

    def _signed(self, data: bytes) -> bytes:
        """DKIM-Signature (rsa-sha256 or ed25519-sha256, relaxed/relaxed) over the headers
        RFC 8058 and the mailbox providers look at, From, Subject and Reply-To over-signed."""
        import dkim

        dkim_settings = self.settings.dkim
        assert self.dkim is not None
        key, algorithm = self.dkim
        signature = dkim.sign(data, dkim_settings.selector.encode(),
                              dkim_settings.domain.encode(), key,
                              signature_algorithm=algorithm,
                              canonicalize=(b"relaxed", b"relaxed"),
                              include_headers=self.dkim_headers, linesep=b"\r\n")
        signed: bytes = signature + data
        return signed


def reference_message(rendered: RenderedCampaign, recipient: Recipient, settings: Settings,
                      *, subject_prefix: str = "", now: datetime | None = None,
                      audience: Audience | None = None,
                      measurement: Measures | None = None) -> EmailMessage:
    """The same message built with the standard library: plainly right, and slow."""
    campaign = rendered.campaign
    parts = personalize(rendered, recipient, settings, measurement)
    domain = settings.sender.domain
    message = EmailMessage(policy=policy.SMTP)
    name, address = parseaddr(clean(settings.sender.from_))
    message["From"] = Address(display_name=name, addr_spec=address)
    if settings.sender.reply_to:
        name, address = parseaddr(clean(settings.sender.reply_to))
        message["Reply-To"] = Address(display_name=name, addr_spec=address)
    message["To"] = Address(display_name=clean(recipient.display_name),
                            addr_spec=recipient.email)
    message["Subject"] = clean(subject_prefix + rendered.subject)
    description, identifier = list_id(settings.organization.name, audience, domain)
    message["List-Id"] = f"{description} <{identifier}>"
    message.set_raw("Feedback-ID", feedback_id(campaign.slug, audience,  # one word: unfolded
                                               settings.organization.feedback_name))
    message["Precedence"] = "bulk"
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = message_id(campaign.slug, recipient.contact_id, "0", domain)
    message.set_raw("List-Unsubscribe", clean(parts.links.list_unsubscribe))
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(parts.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(parts.html, subtype="html", charset="utf-8",
                            cte="quoted-printable")
    if rendered.calendar:
        message.add_alternative(rendered.calendar, subtype="calendar", charset="utf-8",
                                cte="base64", params={"method": "PUBLISH"})
        name = calendar_filename(campaign.slug)
        message.add_attachment(rendered.calendar.encode("utf-8"), maintype="text",
                               subtype="calendar", filename=name,
                               params={"charset": "utf-8", "name": name})
    return message


def to_bytes(message: EmailMessage) -> bytes:
    """RFC 5322 bytes with CRLF line ends, as they go on the wire."""
    return message.as_bytes(policy=WIRE_POLICY)


def personal_message(settings: Settings, to: str, subject: str, html_part: str,
                     text_part: str, identifier: str, *,
                     now: datetime | None = None) -> bytes:
    """A message to one person that is no campaign's (a sign-up's confirmation): no
    List-* headers, no bulk precedence; DKIM-signed when `[dkim]` is on."""
    message = EmailMessage(policy=policy.SMTP)
    name, address = parseaddr(clean(settings.sender.from_))
    message["From"] = Address(display_name=name, addr_spec=address)
    if settings.sender.reply_to:
        name, address = parseaddr(clean(settings.sender.reply_to))
        message["Reply-To"] = Address(display_name=name, addr_spec=address)
    message["To"] = to
    message["Subject"] = clean(subject)
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = f"<{identifier}.{secrets.token_hex(8)}@{settings.sender.domain}>"
    message["Auto-Submitted"] = "auto-generated"  # no out-of-office reply to it
    message.set_content(text_part, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html_part, subtype="html", charset="utf-8",
                            cte="quoted-printable")
    data = to_bytes(message)
    pem = settings.dkim_key()
    if pem is None:
        return data
    import dkim

    key, algorithm = signing_key(pem, settings.dkim.private_key)
    headers = [b"from", b"reply-to", b"to", b"subject", b"date", b"message-id",
               b"mime-version", b"content-type", *OVER_SIGNED]
    signature: bytes = dkim.sign(data, settings.dkim.selector.encode(),
                                 settings.dkim.domain.encode(), key,
                                 signature_algorithm=algorithm,
                                 canonicalize=(b"relaxed", b"relaxed"),
                                 include_headers=headers, linesep=b"\r\n")
    return signature + data
