"""One recipient's complete message (RFC 5322 bytes) from a rendered campaign."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from .config import Settings
from .render import RenderedCampaign
from .tokens import DEVELOPMENT_SECRET, make_token

# Headers set with `set_raw` go out verbatim: the email package would otherwise fold a
# long List-Unsubscribe URL into RFC 2047 encoded words that mailbox providers cannot
# read. Other headers are still folded (and encoded when not ASCII) at 78 columns.
WIRE_POLICY = policy.SMTP.clone(refold_source="none")


@dataclass(frozen=True)
class Recipient:
    email: str
    first_name: str = ""
    last_name: str = ""
    organization: str = ""
    contact_id: int = 0

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


SAMPLE_RECIPIENT = Recipient(
    email="camille.martin@example.org",
    first_name="Camille",
    last_name="Martin",
    organization="Ville d'Exemple",
)


def _clean(value: str) -> str:
    """No header may carry a line break from any input."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


@dataclass(frozen=True)
class Links:
    unsubscribe: str
    webview: str
    unsubscribe_mailto: str | None


def links_for(settings: Settings, contact_id: int, campaign: str) -> Links:
    token = make_token(settings.secret or DEVELOPMENT_SECRET, contact_id, campaign)
    base = settings.unsubscribe.base_url.rstrip("/")
    mailto = settings.unsubscribe.mailto
    return Links(
        unsubscribe=f"{base}/u/{token}",
        webview=f"{base}/v/{token}",
        unsubscribe_mailto=f"mailto:{mailto}?subject=unsubscribe%20{token}" if mailto else None,
    )


def recipient_values(recipient: Recipient, links: Links) -> dict[str, str]:
    return {
        "first_name": recipient.first_name,
        "last_name": recipient.last_name,
        "email": recipient.email,
        "organization": recipient.organization,
        "unsubscribe_url": links.unsubscribe,
        "webview_url": links.webview,
    }


@dataclass(frozen=True)
class Personalized:
    """One recipient's HTML and text parts, and their links."""

    html: str
    text: str
    links: Links


def personalize(rendered: RenderedCampaign, recipient: Recipient,
                settings: Settings) -> Personalized:
    links = links_for(settings, recipient.contact_id, rendered.campaign.slug)
    html, text = rendered.fill(recipient_values(recipient, links))
    return Personalized(html, text, links)


def recipient_from_text(text: str) -> Recipient:
    """`--as` value: an address, optionally 'First Last <address>'; ValueError if not."""
    name, address = parseaddr(text)
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"not an address: {text!r}") from exc
    if "@" not in address or not address.isascii():
        raise ValueError(f"not an ASCII address such as camille@example.org: {text!r}")
    first, _, last = name.strip().partition(" ")
    return Recipient(email=address, first_name=first, last_name=last)


def _address(text: str) -> Address:
    name, addr = parseaddr(_clean(text))
    return Address(display_name=name, addr_spec=addr)


def build_message(
    rendered: RenderedCampaign,
    recipient: Recipient,
    settings: Settings,
    *,
    subject_prefix: str = "",
    now: datetime | None = None,
    parts: Personalized | None = None,
) -> EmailMessage:
    """The reference construction with the standard library (slow but plainly right)."""
    campaign = rendered.campaign
    parts = parts or personalize(rendered, recipient, settings)
    links, html, text = parts.links, parts.html, parts.text
    domain = settings.sender.domain

    message = EmailMessage(policy=policy.SMTP)
    message["From"] = _address(settings.sender.from_)
    if settings.sender.reply_to:
        message["Reply-To"] = _address(settings.sender.reply_to)
    message["To"] = Address(display_name=_clean(recipient.display_name),
                            addr_spec=_clean(recipient.email))
    message["Subject"] = _clean(subject_prefix + rendered.subject)
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = make_msgid(idstring=campaign.slug[:40], domain=domain)
    message["List-Id"] = f"{_clean(settings.organization.name)} <{campaign.slug}.{domain}>"
    unsubscribe = [f"<{links.unsubscribe}>"]
    if links.unsubscribe_mailto:
        unsubscribe.append(f"<{links.unsubscribe_mailto}>")
    message.set_raw("List-Unsubscribe", _clean(", ".join(unsubscribe)))
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def to_bytes(message: EmailMessage) -> bytes:
    """RFC 5322 bytes with CRLF line ends, as they go on the wire."""
    return message.as_bytes(policy=WIRE_POLICY)
