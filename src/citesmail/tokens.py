"""Signed tokens naming a contact and a campaign, for unsubscribe and web-view links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from .errors import CitesmailError

# Used only when CITESMAIL_SECRET is unset, for previews and the outbox transport. It is
# published here, so it must never sign a link that reaches someone.
DEVELOPMENT_SECRET = "citesmail-development-secret-not-for-real-sends"
# HMAC-SHA256 keys shorter than this can be guessed offline from one link.
MIN_SECRET_BYTES = 32
_TAG_BYTES = 16
_HOW_TO_MAKE_ONE = ("make one with `citesmail secret` and export CITESMAIL_SECRET=<it>, the "
                    "same for sends and for serve")


def new_secret() -> str:
    """A fresh random signing secret (32 random bytes, URL-safe text of 43 characters)."""
    return secrets.token_urlsafe(MIN_SECRET_BYTES)


def check_secret(secret: str | None, needed_by: str) -> str:
    """The secret, when it may sign links that leave this machine; otherwise an error
    that says why and how to make one. `needed_by` says who asks ("citesmail serve")."""
    if not secret:
        raise CitesmailError(f"{needed_by} needs CITESMAIL_SECRET: without it anyone could "
                             "forge links", _HOW_TO_MAKE_ONE)
    if hmac.compare_digest(secret.encode("utf-8"), DEVELOPMENT_SECRET.encode("utf-8")):
        raise CitesmailError(f"{needed_by}: CITESMAIL_SECRET is the development key that "
                             "citesmail publishes: anyone could forge links", _HOW_TO_MAKE_ONE)
    size = len(secret.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        raise CitesmailError(f"{needed_by}: CITESMAIL_SECRET is too short ({size} bytes, "
                             f"at least {MIN_SECRET_BYTES}): it could be guessed",
                             _HOW_TO_MAKE_ONE)
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()[:_TAG_BYTES]


class LinkTokens:
    """make_token for one secret and one campaign, for every recipient of a send: the
    keyed HMAC is set up once and copied for each token (a third cheaper)."""

    def __init__(self, secret: str, campaign: str) -> None:
        self.keyed = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
        self.campaign = campaign.encode("utf-8")

    def __call__(self, contact_id: int) -> str:
        payload = b"%d:%s" % (contact_id, self.campaign)
        signer = self.keyed.copy()
        signer.update(payload)
        return f"{_b64(payload)}.{_b64(signer.digest()[:_TAG_BYTES])}"


def make_token(secret: str, contact_id: int, campaign: str) -> str:
    return LinkTokens(secret, campaign)(contact_id)


def read_token(secret: str, token: str) -> tuple[int, str]:
    """(contact id, campaign) of a token this secret signed; anything else is refused.

    The token must be exactly what make_token writes: base64 decoding forgives padding,
    stray characters and unused low bits, so a decoded tag that matches is not enough;
    each link has a single spelling, and the whole token is compared with it."""
    try:
        payload_text, _tag_text = token.split(".")
        contact, campaign = _unb64(payload_text).decode("utf-8").split(":", 1)
        contact_id = int(contact)
    except ValueError:  # (binascii.Error and UnicodeDecodeError are ValueErrors)
        raise CitesmailError("malformed link token", "use the link from the email") from None
    expected = make_token(secret, contact_id, campaign)
    if not hmac.compare_digest(expected.encode("utf-8"), token.encode("utf-8", "replace")):
        raise CitesmailError("invalid link token", "the link was altered or is not ours")
    return contact_id, campaign


# A return-path token (VERP): `<contact id>-<send id>-<tag>`, in digits and lower-case
# base32, so that it survives relays that fold the case of local parts. The send names
# the campaign (one send per campaign); a test message has send 0.
_RETURN_TAG_BYTES = 10
RETURN_TOKEN = re.compile(r"(?P<contact>[0-9]{1,13})-(?P<send>[0-9]{1,7})-(?P<tag>[a-z2-7]{16})")


def _return_tag(secret: str, contact_id: int, send_id: int) -> str:
    payload = f"return-path:{contact_id}:{send_id}".encode()
    digest = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()
    return base64.b32encode(digest[:_RETURN_TAG_BYTES]).decode("ascii").lower()


def make_return_token(secret: str, contact_id: int, send_id: int) -> str:
    """The token of one message's envelope sender: at most 38 characters."""
    return f"{contact_id}-{send_id}-{_return_tag(secret, contact_id, send_id)}"


def read_return_token(secret: str, token: str) -> tuple[int, int] | None:
    """(contact id, send id) of a token this secret signed, whatever its case; None for
    anything else (a forged or altered token is ignored, not an error)."""
    found = RETURN_TOKEN.fullmatch(token.lower())
    if found is None:
        return None
    contact_id, send_id = int(found["contact"]), int(found["send"])
    expected = _return_tag(secret, contact_id, send_id)
    if not hmac.compare_digest(expected.encode("ascii"), found["tag"].encode("ascii")):
        return None
    return contact_id, send_id


# A confirmation token (the link of a sign-up's confirmation email): the contact, the
# lists the confirmation joins, and when the link stops working (Unix seconds). Its tag
# is made under a key of its own, so that no other token reads as one.
_CONFIRM_KEY = b"citesmail-confirmation:"


class ExpiredToken(CitesmailError):
    """A genuine confirmation token whose time has passed."""


def _confirm_tag(secret: str, payload: bytes) -> bytes:
    key = _CONFIRM_KEY + secret.encode("utf-8")
    return hmac.new(key, payload, hashlib.sha256).digest()[:_TAG_BYTES]


def make_confirm_token(secret: str, contact_id: int, list_ids: list[int],
                       expires: int) -> str:
    lists = ",".join(str(number) for number in sorted(set(list_ids)))
    payload = f"{contact_id}:{lists}:{expires}".encode()
    return f"{_b64(payload)}.{_b64(_confirm_tag(secret, payload))}"


def read_confirm_token(secret: str, token: str, now: int) -> tuple[int, list[int]]:
    """(contact id, list ids) of a confirmation token this secret signed, before it
    expires; ExpiredToken after, CitesmailError for anything else."""
    try:
        payload_text, _tag_text = token.split(".")
        contact, lists, expires = _unb64(payload_text).decode("utf-8").split(":")
        contact_id, until = int(contact), int(expires)
        list_ids = [int(number) for number in lists.split(",")] if lists else []
    except ValueError:
        raise CitesmailError("malformed confirmation token",
                             "use the link from the email") from None
    expected = make_confirm_token(secret, contact_id, list_ids, until)
    if not hmac.compare_digest(expected.encode("utf-8"), token.encode("utf-8", "replace")):
        raise CitesmailError("invalid confirmation token", "the link was altered or is not ours")
    if now > until:
        raise ExpiredToken("the confirmation link has expired", "sign up again")
    return contact_id, list_ids
