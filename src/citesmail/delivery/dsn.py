"""Delivery status notifications read from an mbox file or a Maildir, without the
database: which addresses failed, permanently or temporarily (flufl.bounce), why, and
which citesmail message each reports on: the address it came back to, when that holds a
valid return-path token (verp.py), else its Message-ID (written by message.py)."""

from __future__ import annotations

import email
import logging
import mailbox
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from flufl.bounce import all_failures

from ..errors import CitesmailError
from ..message import Origin, parse_message_id
from ..verp import Returned, ReturnReader

# flufl.bounce logs a traceback before re-raising a detector's error. The error is
# reported here as an unreadable message; without a handler, logging would print the
# traceback on stderr by itself.
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())

ANY_ID = re.compile(r"<[^<>\s]+>")
ID_LINE = re.compile(r"^message-id:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
# A permanent SMTP reply in the text of a notification that is not a DSN (Exim, ...).
SMTP_REPLY = re.compile(r"^[ \t]*(5[0-9][0-9][ -].*)$", re.MULTILINE)
REPLY_CODE = re.compile(r"([2-5][0-9][0-9])(?:[ -]|$)")
ENHANCED = re.compile(r"\b([245])\.([0-9]{1,3})\.([0-9]{1,3})\b")  # RFC 3463: 5.1.1
# RFC 3463 subjects that say nothing about the address: network and routing (3, 4) and
# security or policy (7: spam filters, blocked relays).
NOT_THE_ADDRESS = {"3", "4", "7"}
# Where a notification says whom it was delivered to: the return path it came back to.
RETURNED_TO = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to")


@dataclass(frozen=True)
class Failure:
    address: str  # as the notification gives it
    diagnostic: str
    status: str = ""  # the DSN's Status field (5.1.1), when it has one

    @property
    def code(self) -> str:
        """The enhanced status code (RFC 3463), from the Status field or the text."""
        if ENHANCED.fullmatch(self.status):
            return self.status
        found = ENHANCED.search(self.diagnostic)
        return found[0] if found else ""

    @property
    def about_address(self) -> bool:
        """Whether the address itself failed (5.1.x, 5.2.x, ...): then its contact is
        bounced. A refusal by policy or a spam filter (5.7.x), or a network or system
        trouble (5.3.x, 5.4.x), fails the message, not the address. Without a code the
        failure is taken as the address's."""
        code = self.code
        return not code or code.split(".")[1] not in NOT_THE_ADDRESS

    @property
    def reply_code(self) -> int | None:
        """The SMTP reply code the diagnostic starts with (550 ...), if it does."""
        found = REPLY_CODE.match(self.diagnostic)
        return int(found[1]) if found else None


@dataclass(frozen=True)
class Bounce:
    """What one notification says."""

    permanent: tuple[Failure, ...]
    temporary: tuple[str, ...]
    origin: Origin | None
    returned: Returned | None = None  # what the return path's token names, when valid


@dataclass
class Scan:
    """Everything read from a mailbox, before the database is touched."""

    messages: int = 0
    bounces: list[Bounce] = field(default_factory=list)
    not_bounces: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (which, why)


def _text(value: Any) -> str:
    """A header as one line (compat32 gives a Header object for 8-bit values)."""
    return " ".join(str(value or "").split())


def _leaves(message: Message) -> Iterator[Message]:
    return (part for part in message.walk() if not part.is_multipart())


def decoded_text(part: Message) -> str:
    """A leaf part's text, whatever its charset says."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", errors="replace")


def _report_blocks(message: Message) -> Iterator[Message]:
    """The header blocks of every message/delivery-status part (RFC 3464)."""
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status" and part.is_multipart():
            for block in part.get_payload():
                if isinstance(block, Message):
                    yield block


def _candidate_ids(message: Message) -> Iterator[str]:
    """Where the original Message-ID may be, most trustworthy first."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            for original in part.get_payload():
                if isinstance(original, Message):
                    yield _text(original.get("message-id"))
        elif kind == "text/rfc822-headers":
            headers = email.message_from_string(decoded_text(part))
            yield _text(headers.get("message-id"))
    for name in ("in-reply-to", "references"):
        yield _text(message.get(name))
    blocks = [message, *_report_blocks(message)]
    for name in ("original-message-id", "x-original-message-id"):
        for block in blocks:
            yield _text(block.get(name))
    # Exim copies the original message into its text; Exchange lists its headers.
    for leaf in _leaves(message):
        if leaf.get_content_type() == "text/plain":
            yield from ID_LINE.findall(decoded_text(leaf))


def find_origin(message: Message) -> Origin | None:
    for value in _candidate_ids(message):
        for token in ANY_ID.findall(value):
            origin = parse_message_id(token)
            if origin is not None:
                return origin
    return None


def _recipient(field_value: str) -> str:
    """`rfc822; someone@example.org` -> `someone@example.org`."""
    return field_value.rpartition(";")[2].strip().strip("<>").lower()


def _statuses(message: Message) -> dict[str, str]:
    """Per recipient (lower-cased), the DSN's Status field."""
    found: dict[str, str] = {}
    for block in _report_blocks(message):
        status = _text(block.get("status"))
        for name in ("final-recipient", "original-recipient"):
            address = _recipient(_text(block.get(name)))
            if address and status:
                found.setdefault(address, status)
    return found


def _diagnostics(message: Message) -> dict[str, str]:
    """Per recipient (lower-cased), the DSN's Diagnostic-Code, else its Status."""
    found: dict[str, str] = {}
    for block in _report_blocks(message):
        diagnostic = _text(block.get("diagnostic-code"))
        status = _text(block.get("status"))
        if diagnostic:
            # "smtp; 550 5.1.1 ..." -> "550 5.1.1 ..."
            kind, semicolon, rest = diagnostic.partition(";")
            text = rest.strip() if semicolon and " " not in kind.strip() else diagnostic
        elif status:
            text = f"status {status}"
        else:
            continue
        for name in ("final-recipient", "original-recipient"):
            address = _recipient(_text(block.get(name)))
            if address:
                found.setdefault(address, text)
    return found


def _reply_in_text(message: Message) -> str:
    for leaf in _leaves(message):
        if leaf.get_content_type() == "text/plain":
            found = SMTP_REPLY.search(decoded_text(leaf))
            if found:
                return " ".join(found[1].split())
    return ""


def _addresses(found: frozenset[bytes]) -> list[str]:
    """Sorted, each address once whatever its case (a DSN may give it twice, as its
    Original-Recipient and its Final-Recipient)."""
    unique: dict[str, str] = {}
    for raw in sorted(found):
        address = raw.decode("ascii", "replace").strip().strip("<>")
        if address:
            unique.setdefault(address.lower(), address)
    return sorted(unique.values(), key=str.lower)


def returned_to(message: Message, reader: ReturnReader) -> Returned | None:
    """The message and contact named by the return path the notification came back to
    (a forged or altered token names nothing)."""
    return reader.in_headers([_text(value) for name in RETURNED_TO
                              for value in message.get_all(name, [])])


def read_bounce(message: Message, reader: ReturnReader | None = None) -> Bounce | None:
    """The failures a notification reports, or None when it is not a bounce."""
    temporary, permanent = all_failures(message)
    if not temporary and not permanent:
        return None
    per_recipient, statuses = _diagnostics(message), _statuses(message)
    fallback = _reply_in_text(message) or "permanent failure (no diagnostic given)"
    failures = tuple(Failure(address, per_recipient.get(address.lower(), fallback),
                             statuses.get(address.lower(), ""))
                     for address in _addresses(permanent))
    returned = returned_to(message, reader) if reader is not None else None
    return Bounce(failures, tuple(_addresses(temporary)), find_origin(message), returned)


def open_mailbox(path: Path) -> mailbox.Mailbox[Any]:
    """A Maildir folder (cur/, new/, tmp/) or an mbox file; anything else is an error."""
    hint = "give an mbox file or a Maildir folder (with cur/, new/ and tmp/)"
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            return mailbox.Maildir(path, factory=None, create=False)
        raise CitesmailError("a folder, but not a Maildir: it has no cur/, new/ and tmp/",
                             hint, path=path)
    if not path.exists():
        raise CitesmailError("no such file or folder", hint, path=path)
    with path.open("rb") as file:
        start = file.read(5)
    if start and start != b"From ":
        raise CitesmailError("not an mbox file: it does not begin with a 'From ' line",
                             f"{hint}; to read single .eml files, put them in a Maildir's "
                             "new/ folder", path=path)
    return mailbox.mbox(path, factory=None, create=False)


def _entries(box: mailbox.Mailbox[Any]) -> Iterator[tuple[str, Any]]:
    """(how the report names a message, its key): mbox messages counted from 1."""
    if isinstance(box, mailbox.Maildir):
        for key in sorted(box.iterkeys()):
            yield f"Maildir message {key}", key
    else:
        for number, key in enumerate(box.iterkeys(), start=1):
            yield f"mbox message {number}", key


def scan(path: Path, progress: Callable[[int, int], None] | None = None,
         reader: ReturnReader | None = None) -> Scan:
    """Read and classify every message; a message that cannot be read or scanned is
    named in `unreadable`, and the others are still read. `reader` finds the return-path
    tokens of the configured VERP address."""
    box = open_mailbox(path)
    result = Scan()
    try:
        total = len(box)
        for name, key in _entries(box):
            result.messages += 1
            try:
                bounce = read_bounce(email.message_from_bytes(box.get_bytes(key)), reader)
            except Exception as exc:  # a malformed message must not stop the others
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                result.unreadable.append((name, f"cannot be scanned ({why})"))
            else:
                if bounce is None:
                    result.not_bounces += 1
                else:
                    result.bounces.append(bounce)
            if progress is not None:
                progress(result.messages, total)
    finally:
        box.close()
    return result
