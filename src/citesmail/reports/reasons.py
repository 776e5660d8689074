"""Why a message failed, in a few classes a person can act on, told from the SMTP reply
code and the enhanced status code (RFC 3463) in the stored answer. The class is an SQL
expression, so that a report counts failures with GROUP BY and never loads the rows."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ColumnElement, String, and_, case, func, literal, or_

from ..db import Delivery
from ..states import BOUNCE_REPORT_PREFIX, DeliveryState


class Reason(StrEnum):
    ADDRESS = "address"  # the address does not exist, or its mailbox is disabled
    MAILBOX_FULL = "mailbox_full"  # over quota: the address may work later
    POLICY = "policy"  # refused by a policy or a spam filter: the address is fine
    OTHER = "other"  # network, system, retries used up, no answer


LABELS = {Reason.ADDRESS: "address", Reason.MAILBOX_FULL: "mailbox full",
          Reason.POLICY: "policy or spam", Reason.OTHER: "other"}

# Words of the replies that carry no enhanced status code.
_FULL_WORDS = ("%mailbox full%", "%mailbox is full%", "%quota%", "%insufficient storage%")
_POLICY_WORDS = ("%spam%", "%policy%", "%blocked%", "%blacklist%", "%blocklist%",
                 "%reputation%", "%dmarc%")
_ADDRESS_WORDS = ("%user unknown%", "%unknown user%", "%no such user%", "%does not exist%",
                  "%recipient not found%", "%invalid recipient%", "%address rejected%")
_FULL_CODES = (452, 552)
_ADDRESS_CODES = (550, 551, 553)  # RFC 5321: mailbox unavailable, not local, name invalid


def _text() -> ColumnElement[str]:
    # A space first, so that a status at the very start is preceded by one too.
    return literal(" ", String) + func.lower(func.coalesce(Delivery.last_error, ""))


def _status(text: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """An enhanced status code starting with `prefix` (2.2 -> 4.2.2 or 5.2.2), after a
    space or a dash (Gmail's 550-5.1.1), not inside a number such as an IP address."""
    return or_(*(text.like(f"%{sep}{cls}.{prefix}%") for sep in (" ", "-") for cls in "45"))


def _words(text: ColumnElement[str], patterns: tuple[str, ...]) -> ColumnElement[bool]:
    return or_(*(text.like(pattern) for pattern in patterns))


def reason() -> ColumnElement[str | None]:
    """A failed row's Reason (its value), NULL for the other rows."""
    text = _text()
    code = Delivery.last_code
    return case(
        (Delivery.state != DeliveryState.FAILED, None),
        (or_(_status(text, "2.2"), code.in_(_FULL_CODES), _words(text, _FULL_WORDS)),
         str(Reason.MAILBOX_FULL)),
        (or_(_status(text, "7."), _words(text, _POLICY_WORDS)), str(Reason.POLICY)),
        (or_(_status(text, "1."), _status(text, "2."), _words(text, _ADDRESS_WORDS)),
         str(Reason.ADDRESS)),
        (or_(*(_status(text, f"{subject}.") for subject in "3456")), str(Reason.OTHER)),
        (code.in_(_ADDRESS_CODES), str(Reason.ADDRESS)),
        else_=str(Reason.OTHER))


def from_inbox() -> ColumnElement[int]:
    """1 for a failed row that the server had accepted and a bounce report failed later,
    else 0 (a number: both databases group it alike)."""
    return case((and_(Delivery.state == DeliveryState.FAILED,
                      Delivery.last_error.like(f"{BOUNCE_REPORT_PREFIX}%")), 1), else_=0)
