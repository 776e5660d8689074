"""What one message that came back is, without the database.

In this order, the first rule that holds:

1. complaint: an ARF report (RFC 5965: multipart/report; report-type=feedback-report,
   as Yahoo and most feedback loops send), or Microsoft's JMRP report (the original as a
   message/rfc822 part, no feedback-report part, from staff@hotmail.com or carrying
   X-HmXmrOriginalRecipient);
2. bounce: a delivery status notification (what `bounces import` reads: dsn.py);
3. unsubscribe: a subject `unsubscribe <token>` with a valid signed token (what the
   `mailto:` of List-Unsubscribe writes);
4. auto-reply: Auto-Submitted other than "no", X-Autoreply, X-Autorespond, Precedence
   auto_reply, or a subject that starts like an out-of-office answer;
5. unsubscribe: a reply to one of our messages (In-Reply-To or References holds one of
   our Message-IDs) whose subject or first lines of text ask it ("unsubscribe",
   "désinscri…", "désabonn…", accents and case ignored); the database then checks that
   it comes from the address the message went to;
6. other: anything else, a person's mail, left alone.

Which of our messages a report or a reply is about: the return-path token (VERP) or the
List-Unsubscribe token of the original, both signed, else its Message-ID.
"""

from __future__ import annotations

import contextlib
import email
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr
from enum import StrEnum
from typing import Any

from ..delivery.dsn import Bounce, decoded_text, read_bounce
from ..errors import CitesmailError
from ..folding import fold
from ..message import parse_message_id
from ..tokens import read_token
from ..verp import ReturnReader

ANY_ID = re.compile(r"<[^<>\s]+>")
# Where make_token's tokens sit in List-Unsubscribe: the link and the mailto subject.
LINK_TOKEN = re.compile(r"/u/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")
MAILTO_TOKEN = re.compile(r"subject=unsubscribe(?:%20|\+|\s)+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)",
                          re.IGNORECASE)
SUBJECT_TOKEN = re.compile(r"^\s*unsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$",
                           re.IGNORECASE)
# Folded (no case, no accents): what a reply says when it asks to leave.
ASKS_TO_LEAVE = ("unsubscribe", "desinscri", "desabonn")
FIRST_LINES = 5  # of a reply's own text (quoted lines not counted)
# A line where the quoted message begins: "> ...", "Le 3 mars ... a écrit :", "On ... wrote:".
QUOTE_START = re.compile(r"^(>|-{2,}\s*(original|message d'origine)|(le|on)\b.*(ecrit|wrote)\s*:)",
                         re.IGNORECASE)
REPLY_PREFIX = re.compile(r"^((re|tr|fw|fwd|aw|wg)\s*:\s*)+", re.IGNORECASE)
# Folded starts of auto-replies' subjects.
AUTO_SUBJECTS = ("absence du bureau", "out of office", "automatic reply", "auto reply",
                 "autoreply", "auto:", "reponse automatique", "message d'absence",
                 "automatische antwort")
AUTO_HEADERS = {"x-autoreply": "X-Autoreply", "x-autorespond": "X-Autorespond"}
JMRP_SENDERS = ("staff@hotmail.com",)
TAGS = re.compile(r"<[^>]*>")
BLOCKQUOTE = re.compile(r"<blockquote\b.*?</blockquote>|<div[^>]*gmail_quote.*",
                        re.IGNORECASE | re.DOTALL)


class Kind(StrEnum):
    COMPLAINT = "complaint"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto-reply"
    OTHER = "other"


@dataclass(frozen=True)
class Named:
    """Which of our messages a report or a reply is about. `send_id` comes with a
    return-path token, `campaign` with a link token or a Message-ID; `signed`: named by
    a token we signed (a Message-ID can be written by anyone)."""

    contact_id: int
    campaign: str = ""
    send_id: int = 0
    signed: bool = False


@dataclass(frozen=True)
class Complaint:
    feedback_type: str  # abuse, fraud, ... ("abuse" for JMRP)
    reporter: str  # the report's User-Agent, else its sender's domain
    named: Named | None
    recipient: str = ""  # the complaining address, when the report gives it


@dataclass(frozen=True)
class Request:
    """An unsubscribe request: by a signed token, or by a reply from `sender`."""

    named: Named
    by_reply: bool
    sender: str = ""


@dataclass(frozen=True)
class Classified:
    kind: Kind
    bounce: Bounce | None = None
    complaint: Complaint | None = None
    request: Request | None = None
    why: str = ""  # for an auto-reply: the sign that told


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def _subject(message: Message) -> str:
    """The subject as its writer wrote it (RFC 2047 encoded words decoded)."""
    value = message.get("subject")
    if value is None:
        return ""
    with contextlib.suppress(HeaderParseError, LookupError, UnicodeDecodeError):
        return _text(make_header(decode_header(str(value))))
    return _text(value)


def _own_parts(message: Message) -> Iterator[Message]:
    """The parts of a message, not descending into attached messages."""
    yield message
    if message.is_multipart() and message.get_content_maintype() != "message":
        for part in message.get_payload():
            if isinstance(part, Message):
                yield from _own_parts(part)


def _attached(message: Message) -> Iterator[Message]:
    """The original messages (or their headers) a report carries."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            yield from (p for p in part.get_payload() if isinstance(p, Message))
        elif kind == "text/rfc822-headers":
            yield email.message_from_string(decoded_text(part).lstrip())


def own_text(message: Message) -> str:
    """The message's own text: its first text/plain part, else its HTML without tags
    and without the quoted message."""
    html = ""
    for part in _own_parts(message):
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() == "text/plain":
            return decoded_text(part)
        if part.get_content_type() == "text/html" and not html:
            html = decoded_text(part)
    without_quote = BLOCKQUOTE.sub("", html)
    return TAGS.sub(" ", re.sub(r"<br\s*/?>|</p>|</div>", "\n", without_quote, flags=re.I))


def first_lines(text: str, count: int = FIRST_LINES) -> list[str]:
    """The first non-empty lines before the quoted message."""
    found: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if QUOTE_START.match(fold(line)):
            break
        if line:
            found.append(line)
            if len(found) == count:
                break
    return found


def asks_to_leave(subject: str, text: str) -> bool:
    lines = [subject, *first_lines(text)]
    return any(word in fold(line) for line in lines for word in ASKS_TO_LEAVE)


class Classifier:
    def __init__(self, secret: str, reader: ReturnReader | None = None) -> None:
        self.secret = secret
        self.reader = reader

    # -- which of our messages ------------------------------------------------------

    def _link_token(self, value: str) -> Named | None:
        if "=?" in value:  # a copy that a program re-encoded (RFC 2047)
            with contextlib.suppress(HeaderParseError, LookupError, UnicodeDecodeError):
                value = str(make_header(decode_header(value)))
            value = "".join(value.split())
        for pattern in (LINK_TOKEN, MAILTO_TOKEN):
            for token in pattern.findall(value):
                try:
                    contact_id, campaign = read_token(self.secret, token)
                except CitesmailError:
                    continue
                return Named(contact_id, campaign=campaign, signed=True)
        return None

    def _return_path(self, values: list[str]) -> Named | None:
        if self.reader is None:
            return None
        returned = self.reader.in_headers(values)
        if returned is None:
            return None
        return Named(returned.contact_id, send_id=returned.send_id, signed=True)

    def named_by_original(self, report: Message, fields: Message | None) -> Named | None:
        """Which of our messages a report quotes: signed tokens first."""
        originals = list(_attached(report))
        paths = [_text(fields.get("original-mail-from"))] if fields is not None else []
        paths += [_text(value) for original in originals
                  for value in original.get_all("return-path", [])]
        named = self._return_path([path for path in paths if path])
        for original in originals:
            named = named or self._link_token(_text(original.get("list-unsubscribe")))
        for original in originals:
            for token in ANY_ID.findall(_text(original.get("message-id"))):
                origin = parse_message_id(token)
                if named is None and origin is not None:
                    named = Named(origin.contact_id, campaign=origin.campaign)
        return named

    # -- the rules --------------------------------------------------------------------

    def complaint(self, message: Message) -> Complaint | None:
        fields = next((block for part in message.walk()
                       if part.get_content_type() == "message/feedback-report"
                       for block in (part.get_payload() if part.is_multipart() else
                                     [email.message_from_string(decoded_text(part))])
                       if isinstance(block, Message)), None)
        arf = fields is not None or (message.get_content_type() == "multipart/report" and
                                     fold(str(message.get_param("report-type") or ""))
                                     == "feedback-report")
        if arf:
            reporter = _text(fields.get("user-agent")) if fields is not None else ""
            recipient = _text(fields.get("original-rcpt-to")) if fields is not None else ""
            kind = _text(fields.get("feedback-type")).lower() if fields is not None else ""
            return Complaint(kind or "abuse", reporter or self._domain(message),
                             self.named_by_original(message, fields),
                             parseaddr(recipient)[1])
        originals = list(_attached(message))
        if not originals:
            return None
        marked = [value for part in (message, *originals)
                  for value in part.get_all("x-hmxmroriginalrecipient", [])]
        sender = parseaddr(_text(message.get("from")))[1].lower()
        if not marked and sender not in JMRP_SENDERS:
            return None
        recipient = parseaddr(_text(marked[0]))[1] if marked else ""
        return Complaint("abuse", "Microsoft JMRP", self.named_by_original(message, None),
                         recipient)

    @staticmethod
    def _domain(message: Message) -> str:
        return parseaddr(_text(message.get("from")))[1].rpartition("@")[2].lower()

    def token_request(self, message: Message) -> Request | None:
        found = SUBJECT_TOKEN.match(_text(message.get("subject")))
        if found is None:
            return None
        try:
            contact_id, campaign = read_token(self.secret, found[1])
        except CitesmailError:
            return None
        return Request(Named(contact_id, campaign=campaign, signed=True), by_reply=False)

    @staticmethod
    def auto_reply(message: Message) -> str:
        """The sign that a message was written by a program answering, or ""."""
        submitted = _text(message.get("auto-submitted")).lower()
        if submitted and submitted.split(";")[0].strip() != "no":
            return f"Auto-Submitted: {submitted}"
        for name, said in AUTO_HEADERS.items():
            if message.get(name) is not None:
                return said
        if _text(message.get("precedence")).lower() == "auto_reply":
            return "Precedence: auto_reply"
        subject = fold(REPLY_PREFIX.sub("", _subject(message)))
        if subject.startswith(AUTO_SUBJECTS):
            return "subject"
        return ""

    def reply_request(self, message: Message) -> Request | None:
        ids = [token for name in ("in-reply-to", "references")
               for token in ANY_ID.findall(_text(message.get(name)))]
        origin = next((found for found in map(parse_message_id, ids) if found), None)
        if origin is None:
            return None
        if not asks_to_leave(_subject(message), own_text(message)):
            return None
        sender = next((address for _name, address in
                       getaddresses([_text(message.get("from"))]) if address), "")
        return Request(Named(origin.contact_id, campaign=origin.campaign), by_reply=True,
                       sender=sender)

    def classify(self, message: Message) -> Classified:
        complaint = self.complaint(message)
        if complaint is not None:
            return Classified(Kind.COMPLAINT, complaint=complaint)
        bounce = read_bounce(message, self.reader)
        if bounce is not None:
            return Classified(Kind.BOUNCE, bounce=bounce)
        request = self.token_request(message)
        if request is not None:
            return Classified(Kind.UNSUBSCRIBE, request=request)
        sign = self.auto_reply(message)
        if sign:
            return Classified(Kind.AUTO_REPLY, why=sign)
        request = self.reply_request(message)
        if request is not None:
            return Classified(Kind.UNSUBSCRIBE, request=request)
        return Classified(Kind.OTHER)
