"""The index pages: the announcements (all of them, or those of one kind), invitations to
events still to come first, from the campaigns' Parts (their pages are not needed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..config import Settings
from ..render.environment import environment, render_template
from ..render.labels import labels_for
from ..states import Publication
from .pages import KINDS, Urls, index_name
from .parts import Part


def upcoming_first(parts: list[Part], now: datetime) -> tuple[list[Part], list[Part]]:
    """(invitations to events still to come, soonest first; the others, as given)."""
    upcoming = [part for part in parts if part.is_upcoming(now)]
    upcoming.sort(key=lambda part: (part.starts, part.slug))
    return upcoming, [part for part in parts if not part.is_upcoming(now)]


def _card(part: Part) -> dict[str, Any]:
    return {"title": part.title, "href": f"{part.slug}/index.html", "lang": part.lang,
            "kind": part.kind, "lede": part.lede, "when": part.when,
            "published": part.published_text,
            "published_iso": part.published.date().isoformat(),
            "draft": part.state == Publication.DRAFT,
            "scheduled": part.state == Publication.SCHEDULED}


def index_page(parts: list[Part], kind: str | None, settings: Settings, urls: Urls,
               now: datetime) -> str:
    """The list of announcements (of one kind, or all): events to come first."""
    lang = settings.campaigns.lang
    shown = [part for part in parts if kind is None or part.kind == kind]
    upcoming, others = upcoming_first(shown, now)
    kinds = [k for k in KINDS if any(part.kind == k for part in parts)]
    t = labels_for(lang)
    context = {
        "lang": lang, "t": t, "org": settings.organization, "kind": kind,
        "url": urls.file("" if kind is None else index_name(kind)),
        "filters": [(None, t["web_all"], index_name(None))]
        + [(k, t[f"web_kind_{k}"], index_name(k)) for k in kinds],
        "upcoming": [_card(part) for part in upcoming],
        "others": [_card(part) for part in others],
        "root": "", "image": settings.organization.logo_url,
    }
    env = environment(settings.templates_dir)
    return render_template(env, "web/index.html.j2", context)
