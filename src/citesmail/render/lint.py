"""Warnings on a rendered email: things that hurt delivery or readers but do not block."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

from ..campaigns import Campaign, key_line
from ..campaigns.models import DEFAULT_LENGTH
from ..config import Settings, placeholder_problem
from ..dkim_keys import signing_key
from ..domains import aligned, domain_of, organizational_domain
from ..errors import Problem
from . import RenderedCampaign

GMAIL_CLIP_BYTES = 102 * 1024
SUBJECT_MAX = 78


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href") is not None:
            self.links.append(values["href"] or "")
        elif tag == "img":
            self.images.append((values.get("src") or "", values.get("alt")))


def lint(rendered: RenderedCampaign, sample_html: str) -> list[Problem]:
    """Warnings for one campaign, checked on the HTML a sample recipient would get."""
    campaign = rendered.campaign
    path = campaign.path
    warnings: list[Problem] = []
    size = len(sample_html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        warnings.append(Problem(
            f"the HTML is {size / 1024:.0f} KB: Gmail clips messages over 102 KB",
            "shorten the body or move content to a web page", path))
    collector = _Collector()
    collector.feed(sample_html)
    for src, alt in collector.images:
        if not (alt or "").strip():
            warnings.append(Problem(f"image without alt text: {src}",
                                    "give it a short description (image_alt)", path))
    for href in dict.fromkeys(collector.links):
        if urlsplit(href).scheme not in {"http", "https", "mailto"}:
            warnings.append(Problem(f"link is not http(s) or mailto: {href or '(empty)'}",
                                    "use a full address starting with https://", path))
    if len(campaign.subject) > SUBJECT_MAX:
        warnings.append(Problem(
            f"subject is {len(campaign.subject)} characters; over {SUBJECT_MAX} it is cut "
            "in most inboxes", "shorten it", path))
    if not campaign.preheader:
        warnings.append(Problem("no preheader", "add preheader = \"...\" (inbox preview text)",
                                path))
    return warnings


def timing_problems(campaign: Campaign, now: datetime | None = None,
                    ) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) about when the event is: the replay of an event still to come
    is an error (wrong date, or sent too early); an invitation to an event that is over,
    a warning."""
    event = campaign.event
    if event is None or event.starts is None or campaign.kind == "newsletter":
        return [], []
    now = now or datetime.now(UTC)
    path = campaign.path

    def at(*loc: str) -> int | None:
        return key_line(path, loc) if path.exists() else None

    when = f"{event.starts:%Y-%m-%d %H:%M}"
    ends = event.ends or event.starts + DEFAULT_LENGTH
    if campaign.kind == "replay" and ends > now:  # not over yet: no replay to show
        return [Problem(f"this replay's event ({when}) is not over yet",
                        "check event.starts, or send the replay after the event", path,
                        at("event", "starts"))], []
    warnings = []
    if campaign.kind == "event":
        if ends < now:
            warnings.append(Problem(f"this event ({when}) is over",
                                    "check event.starts and event.ends, or make it a replay "
                                    "(kind = \"replay\")", path, at("event", "starts")))
        if event.ends is None:
            warnings.append(Problem("the event has no end: calendars will show one hour",
                                    "add ends = ... under [event]", path, at("event")))
    return [], warnings


def lint_settings(settings: Settings) -> list[Problem]:
    """Warnings about the configuration every campaign shares."""
    where = settings.config_path or "configuration"
    warnings = []
    placeholders = placeholder_problem(settings)
    if placeholders is not None:
        warnings.append(placeholders)
    if not settings.organization.postal_address:
        warnings.append(Problem("no postal address in the footer: bulk-mail rules require one",
                                "set [organization] postal_address in config.toml", where))
    if settings.organization.logo_dark_url and not settings.organization.logo_url:
        warnings.append(Problem("[organization] logo_dark_url is set without logo_url: "
                                "no logo is shown, in either mode",
                                "set logo_url to the logo for light backgrounds", where))
    if not settings.unsubscribe.base_url.startswith("https://"):
        warnings.append(Problem(
            "[unsubscribe] base_url is not https: Gmail and Yahoo only honour one-click "
            "unsubscribe links (RFC 8058) over https",
            "set it to the public https address of the unsubscribe app before sending",
            where))
    warnings += alignment_problems(settings)
    if settings.dkim.enabled:
        pem = settings.dkim_key() or b""
        if signing_key(pem, settings.dkim.private_key)[1] == b"ed25519-sha256":
            warnings.append(Problem(
                "the DKIM key is Ed25519: Gmail and Microsoft do not check such signatures "
                "yet, so your mail counts as unsigned there",
                "use an RSA key (citesmail dkim keygen, the default)", where))
    return warnings


def alignment_problems(settings: Settings, *, dkim_off: bool = True) -> list[Problem]:
    """DKIM off (unless `dkim_off` is False: often fine, the relay may sign), or a DKIM
    domain or return path that does not align with the From domain: DMARC (relaxed)
    asks for one of them to share the From's organisational domain, and Gmail and Yahoo
    ask bulk senders for DMARC."""
    sender = settings.sender.domain
    found = []
    dkim = settings.dkim
    if not dkim.enabled and dkim_off:
        path, line = settings.place("dkim", "selector")
        found.append(Problem(
            "DKIM signing is off: fine if your mail relay signs messages for "
            f"{sender}; otherwise they go unsigned",
            "to sign them here, run citesmail dkim keygen --selector citesmail --domain "
            f"{organizational_domain(sender)} and set [dkim] selector, domain and "
            "private_key", path, line))
    elif dkim.enabled and not aligned(dkim.domain, sender):
        path, line = settings.place("dkim", "domain")
        found.append(Problem(
            f"[dkim] domain {dkim.domain} does not align with the From domain {sender}: "
            "DMARC does not count the signature",
            f'sign with the From\'s domain: [dkim] domain = "{organizational_domain(sender)}" '
            "(or a subdomain of it), with a key published there", path, line))
    return_path = settings.delivery.return_path
    if return_path and not aligned(domain_of(return_path), sender):
        path, line = settings.place("delivery", "return_path")
        found.append(Problem(
            f"[delivery] return_path domain {domain_of(return_path)} does not align with "
            f"the From domain {sender}: its SPF pass does not count for DMARC",
            "use a return path at the From's domain or a subdomain of it, e.g. "
            f'return_path = "bounces+{{token}}@{organizational_domain(sender)}"', path, line))
    return found
