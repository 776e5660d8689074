"""What a run adds to a send's messages, by `[tracking]`: counted links (/c/), the
person part of a consenting contact's links, and their pixel (/o/).

Applied once per run to the stored campaign (never to `render`, the preview or test
sends, which keep the original links); per recipient, only two slot values are made.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from ..config import Settings, TrackingSettings
from ..db import Database, Send
from ..message import Recipient
from ..tokens import DEVELOPMENT_SECRET
from .links import rewrite
from .tokens import link_token, open_token, person_part

CLICK_PERSON = "click_person"  # slot: the person part of a consenting contact's links
OPEN_PIXEL = "open_pixel"  # slot: a consenting contact's pixel (raw HTML, made here)
_PIXEL_STYLE = "display:block;width:1px;height:1px;border:0"


@dataclass(frozen=True)
class Measurement:
    """How one send's messages are measured."""

    secret: str
    base: str  # `[unsubscribe] base_url`, without its last slash
    send_id: int
    clicks: str  # "off" | "aggregate" | "individual"
    opens: str  # "off" | "individual"

    def apply(self, html: str, text: str,
              slots: tuple[tuple[str, str], ...]) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """The campaign's (html, text, slots) as this send's messages carry them."""
        person = f"@@cm{len(slots)}@@"
        pixel = f"@@cm{len(slots) + 1}@@"
        if self.clicks != "off":
            def counted(number: int) -> str:
                return f"{self.base}/c/{link_token(self.secret, self.send_id, number)}{person}"
            html, text = rewrite(html, text, counted)
        if self.opens != "off":
            at = html.rfind("</body>")
            html = html + pixel if at < 0 else html[:at] + pixel + html[at:]
        return html, text, (*slots, (CLICK_PERSON, ""), (OPEN_PIXEL, ""))

    def values(self, recipient: Recipient) -> dict[str, str]:
        """The two slots' values: empty for anyone who did not agree to measurement."""
        if not recipient.measurement_consent or not recipient.contact_id:
            return {}
        found = {}
        if self.clicks == "individual":
            found[CLICK_PERSON] = person_part(self.secret, self.send_id, recipient.contact_id)
        if self.opens == "individual":
            token = open_token(self.secret, self.send_id, recipient.contact_id)
            found[OPEN_PIXEL] = (f'<img src="{self.base}/o/{token}" width="1" height="1" '
                                 f'alt="" style="{_PIXEL_STYLE}">')
        return found


def send_mode(db: Database, send_id: int, tracking: TrackingSettings) -> tuple[str, str]:
    """(clicks, opens) of a send: `[tracking]` as its first run found it, recorded then;
    a run that resumes it measures its messages the same way, whatever it is set to."""
    with db.session() as session:
        session.execute(update(Send).where(Send.id == send_id, Send.clicks.is_(None))
                        .values(clicks=tracking.clicks, opens=tracking.opens))
        row = session.execute(select(Send.clicks, Send.opens).where(Send.id == send_id)).one()
    return str(row[0]), str(row[1] or "off")


def measurement_for(settings: Settings, send_id: int, clicks: str,
                    opens: str) -> Measurement | None:
    """None when nothing is measured (`clicks = "off"`, `opens = "off"`)."""
    if clicks == "off" and opens == "off":
        return None
    return Measurement(settings.secret or DEVELOPMENT_SECRET,
                       settings.unsubscribe.base_url.rstrip("/"), send_id, clicks, opens)
