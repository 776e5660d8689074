"""Signed tokens naming a contact and a campaign, for unsubscribe and web-view links."""

from __future__ import annotations

import base64
import hashlib
import hmac

from .errors import CitesmailError

# Used only when CITESMAIL_SECRET is unset, for previews and the outbox transport.
DEVELOPMENT_SECRET = "citesmail-development-secret-not-for-real-sends"
_TAG_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()[:_TAG_BYTES]


def make_token(secret: str, contact_id: int, campaign: str) -> str:
    payload = f"{contact_id}:{campaign}".encode()
    return f"{_b64(payload)}.{_b64(_tag(secret, payload))}"


def read_token(secret: str, token: str) -> tuple[int, str]:
    """(contact id, campaign) of a token this secret signed; anything else is refused."""
    try:
        payload_text, tag_text = token.split(".")
        payload, tag = _unb64(payload_text), _unb64(tag_text)
        contact, campaign = payload.decode("utf-8").split(":", 1)
        contact_id = int(contact)
    except ValueError:
        raise CitesmailError("malformed link token", "use the link from the email") from None
    if not hmac.compare_digest(tag, _tag(secret, payload)):
        raise CitesmailError("invalid link token", "the link was altered or is not ours")
    return contact_id, campaign
