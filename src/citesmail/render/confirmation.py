"""A sign-up's confirmation email: `confirmation.mjml.j2` and `confirmation.txt.j2`
(a workspace's templates/ may override them), through Jinja2, MJML and CSS inlining as
a campaign is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..config import Settings
from ..languages import base_language
from . import inline_css
from .environment import environment, render_template, template_sources
from .labels import Dates, labels_for
from .mjml import compile_mjml
from .text import keep_french_spacing, keep_french_spacing_html, squeeze_blank_lines, wrap

TEMPLATES = ("confirmation.mjml.j2", "confirmation.txt.j2")


@dataclass(frozen=True)
class Confirmation:
    subject: str
    html: str
    text: str


def confirmation_context(settings: Settings, lang: str, email: str, lists: list[str],
                         url: str, until: datetime) -> dict[str, Any]:
    """What the templates see: `t` holds the words, with the organisation, the address
    and the link's last day filled in."""
    org = settings.organization
    values = {"org": org.name, "email": email, "until": Dates(lang, settings.tz).date(until)}
    words = {key: text.format(**values) if key.startswith("confirm") else text
             for key, text in labels_for(lang).items()}
    return {"lang": lang, "org": org, "t": words, "subject": words["confirm_subject"],
            "email": email, "lists": lists, "confirm_url": url, "until": values["until"]}


def render_confirmation(settings: Settings, lang: str, email: str, lists: list[str],
                        url: str, until: datetime) -> Confirmation:
    """The subject, HTML and text of one person's confirmation email."""
    env = environment(settings.templates_dir)
    context = confirmation_context(settings, lang, email, lists, url, until)
    mjml_source = render_template(env, TEMPLATES[0], context)
    html = inline_css(compile_mjml(mjml_source,
                                   lambda: template_sources(env, [TEMPLATES[0]])))
    text = render_template(env, TEMPLATES[1], context)
    if base_language(lang) == "fr":
        html, text = keep_french_spacing_html(html), keep_french_spacing(text)
    return Confirmation(context["subject"], html, squeeze_blank_lines(wrap(text)))
