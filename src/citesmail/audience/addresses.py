"""Email addresses: validated with email-validator (no DNS), normalised for storage.

The key that makes a contact unique is the lower-cased local part @ the ASCII (IDNA)
domain; the stored address keeps the local part as written and the domain lower-cased.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

# RFC 5322 dot-atom: what an unquoted ASCII local part may be. Addresses of this common
# shape only need their domain checked, once per domain; others go whole to the library.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_SHORT = 200


class AddressError(ValueError):
    """The address is not valid; the message says why."""


@dataclass(frozen=True)
class Address:
    email: str
    key: str
    domain: str


@lru_cache(maxsize=65536)
def _domain(domain: str) -> tuple[str, str] | str:
    """(domain as displayed, ASCII domain), or the reason it is refused."""
    from email_validator import EmailNotValidError, validate_email  # 25 ms: when needed

    try:
        result = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return result.domain, result.ascii_domain


def normalize_address(raw: str) -> Address:
    text = raw.strip()
    local, at, domain = text.rpartition("@")
    if at and len(text) < _SHORT and _DOT_ATOM.fullmatch(local) and len(local) <= 64:
        checked = _domain(domain)
        if isinstance(checked, str):
            raise AddressError(checked.replace("a@", "", 1))
        display, ascii_domain = checked
        if len(local) + len(ascii_domain) < _SHORT:
            return Address(f"{local}@{display}", f"{local.lower()}@{ascii_domain}", ascii_domain)
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
    ascii_domain = result.ascii_domain
    return Address(result.normalized, f"{result.local_part.lower()}@{ascii_domain}",
                   ascii_domain)


def normalize_domain(raw: str) -> str:
    """A domain as typed in a segment condition, to the ASCII form stored on contacts."""
    checked = _domain(raw.strip().lstrip("@"))
    if isinstance(checked, str):
        raise AddressError(checked)
    return checked[1]


def address_hash(key: str) -> str:
    """What the suppression list keeps of an erased address."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
