"""What happened to a campaign after its send, counted in SQL (GROUP BY) from the send
log, the consent events that name the campaign, and the click and web-view counts: one
line per sent campaign, or one campaign's whole report. Nothing here loads rows one by
one: a report of 100,000 recipients reads a few dozen aggregated rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.orm import Session

from ..db import (
    ClickCount,
    ClickEvent,
    ConsentEvent,
    Database,
    Delivery,
    OpenEvent,
    Send,
    TrackedLink,
    WebViewCount,
)
from ..errors import CitesmailError, known_names
from ..states import ConsentKind, DeliveryState, SendState
from .hours import hour_of, read_hour
from .reasons import Reason, from_inbox, reason

# Sends that have a send log: their recipients were snapshotted when they started.
STARTED = (SendState.RUNNING, SendState.DONE)
UNSUBSCRIBES = (ConsentKind.UNSUBSCRIBE, ConsentKind.LIST_UNSUBSCRIBE)


def percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass(frozen=True)
class CampaignLine:
    """One sent campaign in the list of campaigns."""

    campaign: str
    date: datetime | None  # when its send started
    segment: str | None
    recipients: int
    delivered: int  # accepted by the server, and not bounced since
    failed: int  # refused at send time, or bounced later
    unsubscribed: int  # people who left through this campaign's message
    clicks: int | None  # clicks by people; None: no click measurement for this campaign

    @property
    def delivered_percent(self) -> float | None:
        return percent(self.delivered, self.recipients)

    @property
    def bounced_percent(self) -> float | None:
        return percent(self.failed, self.recipients)


@dataclass(frozen=True)
class Link:
    """A counted link of the message (`number`: its place in the message)."""

    number: int
    url: str
    clicks: int  # clicks by people (link scanners apart)
    automated: int  # clicks taken for a link scanner's
    people: int | None  # distinct people who clicked, among those who agreed to be measured


@dataclass(frozen=True)
class HourCount:
    hour: datetime  # the start of the hour, UTC
    count: int


@dataclass(frozen=True)
class CampaignReport:
    """One sent campaign: the delivery funnel, who left because of it, what was read."""

    campaign: str
    segment: str | None
    subject: str
    state: SendState
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int
    states: dict[str, int]  # send-log state -> rows, every state named
    retried: int  # accepted after at least one temporary failure
    failed: dict[str, int]  # Reason -> failed rows (at send time and bounced later)
    bounced_hard: int  # bounced after acceptance (inbox), the address does not exist
    bounced_soft: int  # bounced after acceptance for another reason (full, policy...)
    contacts_bounced: int  # contacts marked bounced because of this campaign's messages
    unsubscribed: int  # people who left (everything or one list) through this campaign
    complaints: int  # people who reported this campaign's message as spam
    web_views: int  # visits of the web version
    opened: int  # people seen opening, among those who agreed to it (0: opens not measured)
    measured: bool  # False: sent before click measurement (no counted links)
    links: list[Link] = field(default_factory=list)
    accepted_per_hour: list[HourCount] = field(default_factory=list)
    clicks_per_hour: list[HourCount] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return self.states[DeliveryState.SENT]

    @property
    def deferred(self) -> int:
        return self.states[DeliveryState.DEFERRED]

    @property
    def unknown(self) -> int:
        return self.states[DeliveryState.UNKNOWN]

    @property
    def skipped(self) -> int:
        return self.states[DeliveryState.SKIPPED]

    @property
    def clicks(self) -> int:
        return sum(link.clicks for link in self.links)

    @property
    def automated_clicks(self) -> int:
        return sum(link.automated for link in self.links)

    @property
    def delivered_percent(self) -> float | None:
        return percent(self.delivered, self.recipients)

    @property
    def bounced_percent(self) -> float | None:
        return percent(self.states[DeliveryState.FAILED], self.recipients)


# -- the list of campaigns --------------------------------------------------------------


def campaign_lines(db: Database) -> list[CampaignLine]:
    """Every campaign whose send started, newest first."""
    rows = (select(Send.campaign, Send.started_at, Send.segment, func.count(Delivery.id),
                   _rows_in(DeliveryState.SENT), _rows_in(DeliveryState.FAILED))
            .outerjoin(Delivery, Delivery.send_id == Send.id)
            .where(Send.state.in_([str(s) for s in STARTED]))
            .group_by(Send.id, Send.campaign, Send.started_at, Send.segment)
            .order_by(Send.started_at.desc(), Send.id.desc()))
    with db.session(write=False) as session:
        left = _people_per_campaign(session, UNSUBSCRIBES)
        clicks = {name: int(n or 0) for name, n in session.execute(
            select(ClickCount.campaign, func.sum(ClickCount.clicks))
            .group_by(ClickCount.campaign))}
        tracked = set(session.scalars(select(TrackedLink.campaign).distinct()))
        return [CampaignLine(campaign, started, segment, total, sent or 0, failed or 0,
                             left.get(campaign, 0),
                             clicks.get(campaign, 0) if campaign in tracked else None)
                for campaign, started, segment, total, sent, failed in session.execute(rows)]


def _rows_in(state: DeliveryState) -> ColumnElement[int]:
    return func.sum(case((Delivery.state == state, 1), else_=0))


def _people_per_campaign(session: Session, kinds: Iterable[ConsentKind],
                         campaign: str | None = None) -> dict[str, int]:
    """Distinct contacts with an event of `kinds` naming each campaign."""
    query = (select(ConsentEvent.campaign, func.count(distinct(ConsentEvent.contact_id)))
             .where(ConsentEvent.kind.in_([str(kind) for kind in kinds]),
                    ConsentEvent.campaign.is_not(None))
             .group_by(ConsentEvent.campaign))
    if campaign is not None:
        query = query.where(ConsentEvent.campaign == campaign)
    return {str(name): int(count) for name, count in session.execute(query)}


# -- one campaign's report --------------------------------------------------------------


def campaign_report(db: Database, campaign: str, *, files: Iterable[str] = ()) -> CampaignReport:
    """The report of a campaign whose send started. `files`: the campaigns of the
    workspace's folder, so that a campaign never sent is told apart from a typo."""
    with db.session(write=False) as session:
        send = session.scalar(select(Send).where(Send.campaign == campaign))
        if send is None or send.state not in STARTED:
            raise _not_sent(session, campaign, send, set(files))
        states, retried, failed, hard, soft = _funnel(session, send.id)
        links, measured = _links(session, campaign)
        return CampaignReport(
            campaign=campaign, segment=send.segment, subject=send.subject,
            state=SendState(send.state), started_at=send.started_at,
            finished_at=send.finished_at, recipients=sum(states.values()), states=states,
            retried=retried, failed=failed, bounced_hard=hard, bounced_soft=soft,
            contacts_bounced=_people(session, campaign, [ConsentKind.BOUNCE]),
            unsubscribed=_people(session, campaign, UNSUBSCRIBES),
            complaints=_people(session, campaign, [ConsentKind.COMPLAINT]),
            web_views=_web_views(session, campaign),
            opened=_opened(session, campaign), measured=measured, links=links,
            accepted_per_hour=_accepted_per_hour(session, send.id),
            clicks_per_hour=_clicks_per_hour(session, campaign))


def _people(session: Session, campaign: str, kinds: Iterable[ConsentKind]) -> int:
    return _people_per_campaign(session, kinds, campaign).get(campaign, 0)


def _web_views(session: Session, campaign: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(WebViewCount.views), 0))
                              .where(WebViewCount.campaign == campaign)) or 0)


def _not_sent(session: Session, campaign: str, send: Send | None,
              files: set[str]) -> CitesmailError:
    if send is not None and send.state == SendState.SCHEDULED:
        when = f" for {send.scheduled_at:%Y-%m-%d %H:%M} UTC" if send.scheduled_at else ""
        return CitesmailError(f"campaign '{campaign}' has not been sent yet: it is "
                              f"scheduled{when}", "its report starts when its send does; "
                              "see: citesmail schedules")
    if send is not None:
        return CitesmailError(f"campaign '{campaign}' was never sent: its time passed while "
                              "no worker ran (missed)", f"send it with: citesmail send {campaign}")
    if campaign in files:
        return CitesmailError(f"campaign '{campaign}' has not been sent: it is only a file",
                              f"send it with: citesmail send {campaign}")
    known = set(session.scalars(select(Send.campaign))) | files
    return CitesmailError(f"unknown campaign '{campaign}'",
                          known_names("campaign", campaign, known) if known
                          else "no campaign has been sent yet")


def _funnel(session: Session, send_id: int) -> tuple[dict[str, int], int, dict[str, int],
                                                     int, int]:
    """Rows per state, retried, failed per reason, bounced hard and soft (inbox)."""
    why, inbox = reason(), from_inbox()
    retried = case((Delivery.attempts > 1, 1), else_=0)
    query = (select(Delivery.state, why, inbox, retried, func.count())
             .where(Delivery.send_id == send_id).group_by(Delivery.state, why, inbox, retried))
    states: Counter[str] = Counter({str(state): 0 for state in DeliveryState})
    failed: Counter[str] = Counter({str(r): 0 for r in Reason})
    again = hard = soft = 0
    for state, cause, bounced_later, was_retried, count in session.execute(query):
        states[state] += count
        if cause is not None:
            failed[cause] += count
        if bounced_later:
            hard, soft = (hard + count, soft) if cause == Reason.ADDRESS else (hard, soft + count)
        if was_retried and state == DeliveryState.SENT:
            again += count
    return dict(states), again, dict(failed), hard, soft


def _links(session: Session, campaign: str) -> tuple[list[Link], bool]:
    """The counted links with their clicks; False when the campaign has none."""
    counted = {number: (int(clicks or 0), int(automated or 0))
               for number, clicks, automated in session.execute(
                   select(ClickCount.number, func.sum(ClickCount.clicks),
                          func.sum(ClickCount.automated))
                   .where(ClickCount.campaign == campaign).group_by(ClickCount.number))}
    people = {int(number): int(n) for number, n in session.execute(
        select(ClickEvent.number, func.count(distinct(ClickEvent.contact_id)))
        .where(ClickEvent.campaign == campaign, ClickEvent.automated.is_(False))
        .group_by(ClickEvent.number))}
    links = [Link(number, url, *counted.get(number, (0, 0)),
                  people.get(number, 0) if people else None)
             for number, url in session.execute(
                 select(TrackedLink.number, TrackedLink.url)
                 .where(TrackedLink.campaign == campaign).order_by(TrackedLink.number))]
    return links, bool(links)


def _opened(session: Session, campaign: str) -> int:
    return int(session.scalar(select(func.count(distinct(OpenEvent.contact_id)))
                              .where(OpenEvent.campaign == campaign)) or 0)


def _accepted_per_hour(session: Session, send_id: int) -> list[HourCount]:
    hour = hour_of(session, Delivery.sent_at)
    query = (select(hour, func.count()).where(Delivery.send_id == send_id,
                                               Delivery.sent_at.is_not(None))
             .group_by(hour).order_by(hour))
    return [HourCount(read_hour(at), int(n)) for at, n in session.execute(query)]


def _clicks_per_hour(session: Session, campaign: str) -> list[HourCount]:
    query = (select(ClickCount.hour, func.sum(ClickCount.clicks))
             .where(ClickCount.campaign == campaign)
             .group_by(ClickCount.hour).order_by(ClickCount.hour))
    return [HourCount(at, int(n or 0)) for at, n in session.execute(query)]
