"""`bounces import`: what the notifications read by dsn.py change. A permanent failure
marks the contact with that address `bounced`; when the notification names the citesmail
message it reports on (by the return-path token it came back to, else by the message's
Message-ID), the contact's row in that campaign's send log becomes `failed`.
Temporary failures are only counted. The notifications are read first, without the
database; the changes are then made in one transaction, so a failure leaves nothing
half-written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..audience.addresses import AddressError, normalize_address
from ..audience.status import leave
from ..db import Contact, Database, Delivery, Send, changed, utcnow
from ..message import Origin
from ..states import BOUNCE_REPORT_PREFIX, ContactStatus, DeliveryState
from ..verp import ReturnReader
from .dsn import Bounce, Failure, Scan, scan

# Deliveries a bounce report may fail: not `sending` (another process holds it), nor
# `skipped` (never sent), nor `failed` already.
FAILABLE = (DeliveryState.QUEUED, DeliveryState.SENT, DeliveryState.DEFERRED,
            DeliveryState.UNKNOWN)
MAX_ERROR = 1000  # deliveries.last_error is String(1000)


@dataclass
class Report:
    messages: int = 0
    permanent: int = 0
    temporary: int = 0
    not_bounces: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    bounced: list[tuple[str, str | None]] = field(default_factory=list)  # (email, campaign)
    already_bounced: list[tuple[str, str | None]] = field(default_factory=list)
    not_active: list[tuple[str, str]] = field(default_factory=list)  # (email, status)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (email, code): kept
    unknown: list[str] = field(default_factory=list)
    deliveries_failed: int = 0
    linked: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.bounced or self.deliveries_failed)

    def lines(self) -> list[str]:
        campaigns = ", ".join(f"{slug} {n}" for slug, n in sorted(self.linked.items()))
        counts = [
            ("messages read", self.messages), ("permanent failures", self.permanent),
            ("temporary failures", self.temporary), ("not a bounce", self.not_bounces),
            ("unreadable", len(self.unreadable)),
            ("contacts marked bounced", len(self.bounced)),
            ("already bounced", len(self.already_bounced)),
            ("not active, left as is", len(self.not_active)),
            ("refused, contact kept", len(self.refused)),
            ("unknown addresses", len(self.unknown)),
            ("deliveries marked failed", self.deliveries_failed),
            ("linked to campaigns", campaigns or "none"),
        ]
        lines = [f"{label + ':':<26}{value}" for label, value in counts]
        lines += self.details()
        if self.dry_run:
            lines.append("dry run: nothing was changed")
        elif self.already_bounced and not self.changed:
            lines.append("nothing changed: these bounces were already imported")
        return lines

    def details(self) -> list[str]:
        """A line per address, then per unreadable message."""
        lines = [f"{address}: bounced, {_campaign(campaign)}"
                  for address, campaign in self.bounced]
        lines += [f"{address}: already bounced, {_campaign(campaign)}"
                  for address, campaign in self.already_bounced]
        lines += [f"{address}: {status}, left as is" for address, status in self.not_active]
        lines += [f"{address}: refused ({code or 'no code'}: policy, spam filter or network), "
                  "contact kept" for address, code in self.refused]
        lines += [f"{address}: unknown address" for address in self.unknown]
        lines += [f"{name}: unreadable, {why}" for name, why in self.unreadable]
        return lines


def _campaign(slug: str | None) -> str:
    return f"campaign {slug}" if slug else "no campaign matched"


class BounceRecorder:
    """The changes one import makes, inside one session."""

    def __init__(self, session: Session, report: Report) -> None:
        self.session = session
        self.report = report
        self.sends: dict[str, Send | None] = {}

    def _send(self, campaign: str) -> Send | None:
        if campaign not in self.sends:
            self.sends[campaign] = self.session.scalar(
                select(Send).where(Send.campaign == campaign))
        return self.sends[campaign]

    def origin(self, bounce: Bounce) -> Origin | None:
        """The message a notification reports on: its return-path token's (signed, so
        trusted first), else its Message-ID's. A test message's token (send 0) names
        the contact and no campaign."""
        returned = bounce.returned
        if returned is None:
            return bounce.origin
        send = self.session.get(Send, returned.send_id) if returned.send_id else None
        return Origin(send.campaign if send is not None else "", returned.contact_id)

    def delivery(self, origin: Origin | None, contact: Contact) -> Delivery | None:
        """The contact's row in the send log of the message the bounce reports on."""
        if origin is None or origin.contact_id != contact.id or not origin.campaign:
            return None
        send = self._send(origin.campaign)
        if send is None:
            return None
        return self.session.scalar(select(Delivery).where(
            Delivery.send_id == send.id, Delivery.contact_id == contact.id))

    def contact(self, address: str) -> Contact | None:
        try:
            key = normalize_address(address).key
        except AddressError:
            return None
        return self.session.scalar(select(Contact).where(Contact.email_key == key))

    def permanent(self, failure: Failure, origin: Origin | None, *, alone: bool) -> None:
        """One permanent failure. Changes are conditional (an unsubscribe or a send
        meanwhile is not overwritten)."""
        report = self.report
        contact = self.contact(failure.address)
        if contact is None and origin is not None and alone:
            # A forwarded address: the failing one is not the contact's, but the
            # message the notification reports on names the contact.
            contact = self.session.get(Contact, origin.contact_id)
        if contact is None:
            report.unknown.append(failure.address)
            return
        delivery = self.delivery(origin, contact)
        campaign = origin.campaign if delivery is not None and origin is not None else None
        if campaign is not None:
            report.linked[campaign] += 1
        now = utcnow()
        if not failure.about_address:
            report.refused.append((contact.email, failure.code))
        elif leave(self.session, [contact.id], ContactStatus.BOUNCED,
                   source=f"delivery status notification: {failure.code} "
                          f"{failure.diagnostic}".strip(), campaign=campaign):
            report.bounced.append((contact.email, campaign))
        elif contact.status == ContactStatus.BOUNCED:
            report.already_bounced.append((contact.email, campaign))
        else:
            report.not_active.append((contact.email, contact.status))
        if delivery is not None:
            report.deliveries_failed += changed(self.session,
                update(Delivery).where(Delivery.id == delivery.id,
                                       Delivery.state.in_(FAILABLE))
                .values(state=DeliveryState.FAILED, updated_at=now, last_code=failure.reply_code,
                        last_error=(BOUNCE_REPORT_PREFIX + failure.diagnostic)[:MAX_ERROR]))


def apply(db: Database, scan: Scan, *, dry_run: bool = False) -> Report:
    """Record the permanent failures, all in one transaction (rolled back if dry_run)."""
    report = Report(messages=scan.messages, not_bounces=scan.not_bounces,
                    unreadable=list(scan.unreadable), dry_run=dry_run)
    with db.session(rollback=dry_run) as session:
        recorder = BounceRecorder(session, report)
        for bounce in scan.bounces:
            report.temporary += len(bounce.temporary)
            report.permanent += len(bounce.permanent)
            origin = recorder.origin(bounce)
            for failure in bounce.permanent:
                recorder.permanent(failure, origin, alone=len(bounce.permanent) == 1)
    return report


def import_bounces(db: Database, path: Path, *, dry_run: bool = False,
                   progress: Callable[[int, int], None] | None = None,
                   reader: ReturnReader | None = None) -> Report:
    return apply(db, scan(path, progress, reader), dry_run=dry_run)
