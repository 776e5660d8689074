"""What the messages that came back change, and which of them are filed away.

Every message is read and classified first (classify.py), without the database; the
changes are then made in one transaction, so a failure leaves nothing half-written, and
only after it has committed are the handled messages moved (sources.py, imap.py). A
crash between the two only makes the next run do the same changes again, which changes
nothing: each change is conditional (only an active contact leaves; a send-log row is
noted once).

- bounce: as `bounces import` (delivery/bounces.py);
- complaint: the contact becomes `complained` (audience/status.py's leave), and its row
  in the campaign's send log is noted (last_error `complaint report: ...`);
- unsubscribe: the contact becomes `unsubscribed`; a reply counts only when it comes
  from the address the message went to (else it is left for a person);
- auto-reply: nothing; filed away;
- other: nothing; left where it is, unseen.
"""

from __future__ import annotations

import email
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from ..audience.addresses import AddressError, normalize_address
from ..audience.status import leave
from ..db import Contact, Database, Delivery, Send, changed, utcnow
from ..delivery.bounces import MAX_ERROR, BounceRecorder
from ..delivery.bounces import Report as BounceReport
from ..message import Origin
from ..states import ContactStatus
from .classify import Classified, Classifier, Complaint, Kind, Named, Request
from .sources import Source

NOTE = "complaint report: "
LABELS = {Kind.BOUNCE: "bounces", Kind.COMPLAINT: "complaint reports",
          Kind.UNSUBSCRIBE: "unsubscribe requests", Kind.AUTO_REPLY: "auto-replies, ignored",
          Kind.OTHER: "other mail, left alone"}


@dataclass
class Reading:
    """Every message of a source, classified."""

    messages: int = 0
    found: list[tuple[str, Classified]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class InboxReport:
    messages: int = 0
    kinds: Counter[Kind] = field(default_factory=Counter)
    bounces: BounceReport = field(default_factory=BounceReport)
    complained: list[tuple[str, str]] = field(default_factory=list)  # (email, campaign)
    unsubscribed: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[tuple[str, str, str]] = field(default_factory=list)  # (email, status, why)
    not_found: list[tuple[str, str]] = field(default_factory=list)  # (message, what)
    left_alone: list[tuple[str, str]] = field(default_factory=list)  # (message, why)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    deliveries_noted: int = 0
    handled: list[str] = field(default_factory=list)  # names of the messages to file away
    filed: int = 0
    where: str = ""
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.bounces.changed or self.complained or self.unsubscribed
                    or self.deliveries_noted or self.filed)

    def summary(self) -> str:
        """One line: what was read, what changed."""
        kinds = ", ".join(f"{self.kinds[kind]} {kind}" for kind in Kind if self.kinds[kind])
        changes = [(len(self.bounces.bounced), "bounced"), (len(self.complained), "complained"),
                   (len(self.unsubscribed), "unsubscribed"), (self.filed, "moved")]
        said = ", ".join(f"{n} {what}" for n, what in changes if n) or "nothing changed"
        return f"{self.messages} messages ({kinds or 'none'}); {said}"

    def lines(self) -> list[str]:
        bounced = self.bounces
        counts: list[tuple[str, object]] = [("messages read", self.messages)]
        counts += [(label, self.kinds[kind]) for kind, label in LABELS.items()]
        counts += [("unreadable", len(self.unreadable)),
                   ("contacts marked bounced", len(bounced.bounced)),
                   ("contacts complained", len(self.complained)),
                   ("contacts unsubscribed", len(self.unsubscribed)),
                   ("deliveries marked failed", bounced.deliveries_failed),
                   ("deliveries noted", self.deliveries_noted)]
        if self.where:
            counts.append((f"moved to {self.where}", self.filed))
        lines = [f"{label + ':':<25} {value}" for label, value in counts]
        lines += [line for line in bounced.details() if ": unreadable, " not in line]
        lines += [f"{address}: complained, {_campaign(slug)}" for address, slug in self.complained]
        lines += [f"{address}: unsubscribed, {_campaign(slug)}"
                  for address, slug in self.unsubscribed]
        lines += [f"{address}: {status}, left as is ({why})"
                  for address, status, why in self.unchanged]
        lines += [f"{name}: {what}" for name, what in self.not_found]
        lines += [f"{name}: left alone, {why}" for name, why in self.left_alone]
        lines += [f"{name}: unreadable, {why}" for name, why in self.unreadable]
        if self.dry_run:
            lines.append("dry run: nothing was changed")
        elif not self.changed:
            lines.append("nothing changed")
        return lines


def _campaign(slug: str) -> str:
    return f"campaign {slug}" if slug else "no campaign matched"


def read_source(source: Source, classifier: Classifier,
                progress: Callable[[int, int], None] | None = None) -> Reading:
    """Read and classify every message; one that cannot be read is named, the others
    are still read."""
    reading = Reading()
    total = source.count()
    for name, data in source.messages():
        reading.messages += 1
        try:
            reading.found.append((name, classifier.classify(email.message_from_bytes(data))))
        except Exception as exc:  # a malformed message must not stop the others
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            reading.unreadable.append((name, f"cannot be scanned ({why})"))
        if progress is not None:
            progress(reading.messages, total)
    return reading


class _Recorder:
    """The changes of one run, inside one session."""

    def __init__(self, session: Session, report: InboxReport) -> None:
        self.session = session
        self.report = report
        self.bounces = BounceRecorder(session, report.bounces)

    def _resolve(self, named: Named) -> tuple[Contact | None, str, Delivery | None]:
        """The contact, campaign and send-log row a message names. A Message-ID (not
        signed) counts only when the send log holds that message."""
        campaign = named.campaign
        if named.send_id:
            send = self.session.get(Send, named.send_id)
            campaign = send.campaign if send is not None else ""
        contact = self.session.get(Contact, named.contact_id)
        if contact is None:
            return None, campaign, None
        delivery = self.bounces.delivery(Origin(campaign, contact.id), contact)
        if not named.signed and delivery is None:
            return None, campaign, None
        return contact, campaign, delivery

    def _leave(self, contact: Contact, status: ContactStatus, why: str, name: str,
               campaign: str | None) -> bool:
        """`name`: the message, as the report names it (the consent history's source);
        `campaign`: the campaign of the message the request is about, when the send log
        holds it."""
        if leave(self.session, [contact.id], status, source=f"{why}: {name}",
                 campaign=campaign):
            return True
        self.report.unchanged.append((contact.email, contact.status, why))
        return False

    def bounce(self, classified: Classified) -> None:
        bounce = classified.bounce
        assert bounce is not None
        self.report.bounces.temporary += len(bounce.temporary)
        self.report.bounces.permanent += len(bounce.permanent)
        origin = self.bounces.origin(bounce)
        for failure in bounce.permanent:
            self.bounces.permanent(failure, origin, alone=len(bounce.permanent) == 1)

    def complaint(self, name: str, complaint: Complaint) -> None:
        contact, campaign, delivery = (self._resolve(complaint.named)
                                       if complaint.named is not None else (None, "", None))
        if contact is None and complaint.recipient:
            contact = self.bounces.contact(complaint.recipient)
        if contact is None:
            self.report.not_found.append(
                (name, f"{complaint.feedback_type} report from {complaint.reporter or 'unknown'}"
                       ", no contact found"))
            return
        known = campaign if delivery is not None else ""
        if self._leave(contact, ContactStatus.COMPLAINED, "complaint report", name, known):
            self.report.complained.append((contact.email, known))
        if delivery is not None:
            note = f"{NOTE}{complaint.feedback_type} ({complaint.reporter or 'unknown'})"
            self.report.deliveries_noted += changed(self.session, update(Delivery).where(
                Delivery.id == delivery.id,
                or_(Delivery.last_error.is_(None), ~Delivery.last_error.startswith(NOTE)))
                .values(last_error=note[:MAX_ERROR], updated_at=utcnow()))

    def unsubscribe(self, name: str, request: Request) -> bool:
        """False when the request is left for a person (a reply from another address)."""
        contact, campaign, delivery = self._resolve(request.named)
        if contact is None:
            if request.by_reply:
                self.report.left_alone.append((name, "a reply asking to unsubscribe, to a "
                                                     "message not found in the send log"))
                return False
            self.report.not_found.append((name, "unsubscribe request, no contact found"))
            return True
        if request.by_reply and not _same_address(request.sender, contact.email):
            self.report.left_alone.append(
                (name, f"a reply asking to unsubscribe, from {request.sender or 'no address'}"
                       f", not {contact.email} the message went to"))
            return False
        if self._leave(contact, ContactStatus.UNSUBSCRIBED, "unsubscribe request", name,
                       campaign if delivery is not None else None):
            self.report.unsubscribed.append((contact.email, campaign))
        return True


def _same_address(one: str, other: str) -> bool:
    try:
        return normalize_address(one).key == normalize_address(other).key
    except AddressError:
        return False


def apply(db: Database, reading: Reading, *, dry_run: bool = False) -> InboxReport:
    """Make the changes, all in one transaction (rolled back if dry_run); the report
    names the messages to file away."""
    report = InboxReport(messages=reading.messages, unreadable=list(reading.unreadable),
                         dry_run=dry_run)
    report.bounces.dry_run = dry_run
    with db.session(rollback=dry_run) as session:
        recorder = _Recorder(session, report)
        for name, classified in reading.found:
            report.kinds[classified.kind] += 1
            handled = True
            if classified.kind == Kind.BOUNCE:
                recorder.bounce(classified)
            elif classified.kind == Kind.COMPLAINT:
                assert classified.complaint is not None
                recorder.complaint(name, classified.complaint)
            elif classified.kind == Kind.UNSUBSCRIBE:
                assert classified.request is not None
                handled = recorder.unsubscribe(name, classified.request)
            elif classified.kind == Kind.OTHER:
                handled = False
            if handled:
                report.handled.append(name)
    return report


def process(db: Database, source: Source, classifier: Classifier, *, dry_run: bool = False,
            progress: Callable[[int, int], None] | None = None) -> InboxReport:
    """Read, change, then file away what was handled (nothing on a dry run)."""
    report = apply(db, read_source(source, classifier, progress), dry_run=dry_run)
    report.where = source.where
    if not dry_run:
        report.filed = source.file_away(report.handled)
    return report
