"""The tokens of counted links and of the open pixel, each under a key of its own so that
no other token of citesmail reads as one.

- A link token `<send>.<number>.<tag>` names a send and the number of one of its links,
  never a person: the same for every recipient of the send.
- A person part `.<contact>.<tag>`, appended to it only in the messages of contacts who
  agreed to measurement, names the contact within that send.
- An open token `<send>.<contact>.<tag>`: the pixel of a consenting contact's message.

Tags are 12 bytes of HMAC-SHA-256 (16 base64url characters, no padding and no unused
bits), short enough that a counted link fits a text line of 78 columns. Reading compares
the whole token with the one this secret writes: a truncated, extended or altered token,
or one whose parts come from two sends, is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

_TAG_BYTES = 12
_LINK_KEY = b"citesmail-click-link:"
_PERSON_KEY = b"citesmail-click-person:"
_OPEN_KEY = b"citesmail-open:"
_TAG = r"[A-Za-z0-9_-]{16}"
CLICK_TOKEN = re.compile(
    rf"(?P<send>[1-9][0-9]{{0,8}})\.(?P<number>[1-9][0-9]{{0,4}})\.(?P<tag>{_TAG})"
    rf"(?:\.(?P<contact>[1-9][0-9]{{0,12}})\.(?P<person>{_TAG}))?")
OPEN_TOKEN = re.compile(rf"(?P<send>[1-9][0-9]{{0,8}})\.(?P<contact>[1-9][0-9]{{0,12}})"
                        rf"\.(?P<tag>{_TAG})")


@dataclass(frozen=True)
class Click:
    """What a counted link's token names: a send's link, and a person when they agreed."""

    send_id: int
    number: int
    contact_id: int | None = None


def _tag(key: bytes, secret: str, payload: str) -> str:
    digest = hmac.new(key + secret.encode("utf-8"), payload.encode("ascii"),
                      hashlib.sha256).digest()[:_TAG_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def link_token(secret: str, send_id: int, number: int) -> str:
    return f"{send_id}.{number}.{_tag(_LINK_KEY, secret, f'{send_id}:{number}')}"


def person_part(secret: str, send_id: int, contact_id: int) -> str:
    """What follows a link token in a consenting contact's message (every link of it)."""
    return f".{contact_id}.{_tag(_PERSON_KEY, secret, f'{send_id}:{contact_id}')}"


def read_click(secret: str, token: str) -> Click | None:
    """What a counted link's token names; None for anything this secret did not write."""
    found = CLICK_TOKEN.fullmatch(token)
    if found is None:
        return None
    send_id, number = int(found["send"]), int(found["number"])
    contact_id = int(found["contact"]) if found["contact"] else None
    expected = link_token(secret, send_id, number)
    if contact_id is not None:
        expected += person_part(secret, send_id, contact_id)
    if not hmac.compare_digest(expected.encode("ascii"), token.encode("ascii")):
        return None
    return Click(send_id, number, contact_id)


def open_token(secret: str, send_id: int, contact_id: int) -> str:
    return f"{send_id}.{contact_id}.{_tag(_OPEN_KEY, secret, f'{send_id}:{contact_id}')}"


def read_open(secret: str, token: str) -> tuple[int, int] | None:
    """(send id, contact id) of an open token this secret wrote; None for anything else."""
    found = OPEN_TOKEN.fullmatch(token)
    if found is None:
        return None
    send_id, contact_id = int(found["send"]), int(found["contact"])
    expected = open_token(secret, send_id, contact_id)
    if not hmac.compare_digest(expected.encode("ascii"), token.encode("ascii")):
        return None
    return send_id, contact_id
