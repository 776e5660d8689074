"""Words the templates print, per language, and dates in that language (Babel)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time

from ..languages import base_language

LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "objectives": "Objectifs",
        "public": "Public",
        "agenda": "Déroulé",
        "speakers": "Intervenants",
        "when": "Date",
        "where": "Lieu",
        "original_event": "Visio-conférence du",
        "watch_replay": "Voir le replay",
        "slides": "Télécharger le support",
        "register": "S'inscrire",
        "join": "Rejoindre la visio",
        "add_to_calendar": "Ajouter à mon agenda",
        "google_calendar": "Google Agenda",
        "outlook_calendar": "Outlook.com",
        "ics_file": "fichier .ics (Apple, Thunderbird…)",
        "read_more": "Lire la suite",
        "read_more_about": "Lire la suite\u00a0: «\u00a0{title}\u00a0»",
        "view_in_browser": "Voir ce message dans le navigateur",
        "unsubscribe": "Se désabonner",
        "reason": "Vous recevez ce message car vous êtes inscrit·e aux annonces de {org}.",
        "colon": "\u00a0: ",
        "unsubscribe_question": "Ne plus recevoir les messages de {org} à l'adresse {email} ?",
        "unsubscribe_button": "Me désabonner",
        "unsubscribed": "C'est fait : {email} ne recevra plus les messages de {org}.",
        "bad_link": "Ce lien n'est pas valide. Utilisez celui du message reçu.",
        "try_again": "Votre demande n'a pas pu être enregistrée. Réessayez dans une minute.",
    },
    "en": {
        "objectives": "Objectives",
        "public": "Who is it for",
        "agenda": "Agenda",
        "speakers": "Speakers",
        "when": "When",
        "where": "Where",
        "original_event": "Web conference of",
        "watch_replay": "Watch the replay",
        "slides": "Download the slides",
        "register": "Register",
        "join": "Join the web conference",
        "add_to_calendar": "Add to my calendar",
        "google_calendar": "Google Calendar",
        "outlook_calendar": "Outlook.com",
        "ics_file": ".ics file (Apple, Thunderbird…)",
        "read_more": "Read more",
        "read_more_about": "Read more: “{title}”",
        "view_in_browser": "View this message in your browser",
        "unsubscribe": "Unsubscribe",
        "reason": "You receive this message because you subscribed to announcements from {org}.",
        "colon": ": ",
        "unsubscribe_question": "Stop receiving messages from {org} at {email}?",
        "unsubscribe_button": "Unsubscribe me",
        "unsubscribed": "Done: {email} will no longer receive messages from {org}.",
        "bad_link": "This link is not valid. Please use the one in the message you received.",
        "try_again": "Your request could not be recorded. Please try again in a minute.",
    },
}

# Babel patterns giving "lundi 12 juin 2023 à 14 h 00" and "Monday 12 June 2023 at 2:00 PM".
_DATETIME = {"fr": "EEEE d MMMM y 'à' H 'h' mm", "en": "EEEE d MMMM y 'at' h:mm a"}
_TIME = {"fr": "H 'h' mm", "en": "h:mm a"}
_NBSP = "\u00a0"
_SPAN = {"fr": "{date} de {start} à {end}", "en": "{date}, {start} to {end}"}


def labels_for(lang: str) -> dict[str, str]:
    return LABELS.get(base_language(lang), LABELS["en"])


def _locale(lang: str) -> str:
    return lang.replace("-", "_")


def _glue(text: str) -> str:
    """Keep '14 h 00' and '2:00 PM' on one line."""
    return text.replace(" h ", f"{_NBSP}h{_NBSP}").replace(" AM", f"{_NBSP}AM").replace(
        " PM", f"{_NBSP}PM")


class Dates:
    """Date formatting bound to a language and the display time zone."""

    def __init__(self, lang: str, tz: ZoneInfo) -> None:
        self.lang, self.tz = lang, tz

    def datetime(self, moment: dt.datetime) -> str:
        moment = moment.astimezone(self.tz)
        pattern = _DATETIME.get(base_language(self.lang))
        if pattern:
            return _glue(format_datetime(moment, pattern, locale=_locale(self.lang)))
        day = format_date(moment, "full", locale=_locale(self.lang))
        return f"{day} {format_time(moment, 'short', locale=_locale(self.lang))}"

    def date(self, moment: dt.datetime) -> str:
        return format_date(moment.astimezone(self.tz), "full", locale=_locale(self.lang))

    def time(self, moment: dt.datetime) -> str:
        pattern = _TIME.get(base_language(self.lang), "short")
        return _glue(format_time(moment.astimezone(self.tz), pattern, locale=_locale(self.lang)))

    def span(self, starts: dt.datetime, ends: dt.datetime | None) -> str:
        """One day: 'lundi 12 juin 2023 de 14 h 00 à 16 h 00'; else the start alone."""
        if ends is None or starts.astimezone(self.tz).date() != ends.astimezone(self.tz).date():
            return self.datetime(starts)
        template = _SPAN.get(base_language(self.lang), "{date}, {start} – {end}")
        return template.format(
            date=self.date(starts),
            start=self.time(starts),
            end=self.time(ends),
        )
