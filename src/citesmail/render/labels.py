"""Words the templates print, per language, and dates in that language (Babel)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
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
        "web_announcements": "Annonces",
        "web_upcoming": "À venir",
        "web_all": "Toutes",
        "web_kind_event": "Invitations",
        "web_kind_replay": "Replays",
        "web_kind_newsletter": "Lettres",
        "web_filter": "Filtrer par type",
        "web_latest": "Dernières annonces",
        "web_none": "Aucune annonce publiée pour le moment.",
        "web_draft": "Brouillon",
        "web_scheduled": "Programmé",
        "web_back": "Toutes les annonces",
        "web_feed": "Fil Atom",
        "web_calendar_feed": "Agenda des rendez-vous (iCalendar)",
        "web_follow": "Suivre",
        "web_video": "Vidéo",
        "web_online": "En ligne",
        "read_more": "Lire la suite",
        "read_more_about": "Lire la suite\u00a0: «\u00a0{title}\u00a0»",
        "view_in_browser": "Voir ce message dans le navigateur",
        "unsubscribe": "Se désabonner",
        "reason": "Vous recevez ce message car vous êtes inscrit·e aux annonces de {org}.",
        "manage_subscriptions": "Gérer mes abonnements",
        "sent_to": "Vous recevez ce message à {email} car vous êtes inscrit·e à\u00a0: {lists}.",
        "lists_default": "la liste de diffusion de {org}",
        "sent_to_address": "Vous recevez ce message à l'adresse",
        "sent_to_because": "car vous êtes inscrit·e à\u00a0:",
        "colon": "\u00a0: ",
        "unsubscribe_question": "Ne plus recevoir les messages de {org} à l'adresse {email} ?",
        "unsubscribe_button": "Me désabonner",
        "unsubscribed": "C'est fait : {email} ne recevra plus les messages de {org}.",
        "bad_link": "Ce lien n'est pas valide. Utilisez celui du message reçu.",
        "try_again": "Votre demande n'a pas pu être enregistrée. Réessayez dans une minute.",
        "prefs_title": "Mes abonnements",
        "prefs_intro": "Choisissez les listes de {org} que vous recevez à l'adresse {email}.",
        "prefs_lists": "Listes de diffusion",
        "prefs_none": "{org} ne propose aucune liste à choisir pour le moment.",
        "prefs_private": "Vous êtes aussi inscrit·e à ces listes, gérées par {org}\u00a0:",
        "prefs_save": "Enregistrer mes choix",
        "prefs_saved": "C'est enregistré.",
        "prefs_everything_intro": "Vous ne voulez plus rien recevoir de {org}\u00a0?",
        "prefs_everything": "Se désabonner de tout",
        "prefs_not_active": "Nous n'envoyons plus de messages à {email}. Vous pouvez quitter "
                            "une liste ici, mais pas en rejoindre une\u00a0: pour revenir, "
                            "inscrivez-vous de nouveau par le formulaire de {org}.",
        "prefs_cannot_join": "Cette adresse ne peut pas être réinscrite ici. Rien n'a changé.",
        "prefs_bad_choice": "Cette liste n'est pas proposée. Rien n'a changé.",
        "prefs_refused": "Ce formulaire ne vient pas de notre site. Rien n'a changé.",
        "confirm_subject": "Confirmez votre inscription aux messages de {org}",
        "confirm_preview": "Un clic pour confirmer votre inscription.",
        "confirm_intro": "Vous (ou quelqu'un avec votre adresse {email}) avez demandé à "
                         "recevoir les messages de {org}. Confirmez-le pour recevoir :",
        "confirm_button": "Confirmer mon inscription",
        "confirm_expires": "Ce lien est valable jusqu'au {until}.",
        "confirm_link_text": "Si le bouton ne fonctionne pas, copiez ce lien dans votre "
                             "navigateur :",
        "confirm_ignore": "Vous n'avez rien demandé ? Ignorez ce message : sans "
                          "confirmation, votre adresse sera effacée.",
        "signup_title": "S'inscrire aux messages de {org}",
        "signup_intro": "Les champs marqués d'un astérisque (*) sont obligatoires.",
        "field_email": "Adresse e-mail",
        "field_first_name": "Prénom",
        "field_last_name": "Nom",
        "field_organization": "Structure",
        "field_lists": "Listes",
        "field_website": "Ne pas remplir ce champ",
        "field_consent": "Consentement",
        "signup_button": "M'inscrire",
        "signup_lists": "Je souhaite recevoir :",
        "signup_error": "L'inscription n'a pas pu être enregistrée : {problem}",
        "signup_sent": "Vérifiez votre boîte aux lettres : si l'adresse {email} peut "
                       "s'inscrire, un message vient d'y être envoyé. Cliquez sur le lien "
                       "qu'il contient pour confirmer votre inscription.",
        "signup_sent_title": "Vérifiez votre boîte aux lettres",
        "signup_unknown_list": "Cette liste n'existe pas.",
        "signup_too_many": "Trop d'inscriptions depuis votre connexion. Réessayez dans "
                           "quelques minutes.",
        "signup_origin": "Ce formulaire ne peut pas être envoyé depuis ce site.",
        "signup_honeypot": "Le formulaire n'a pas été accepté : un champ qui doit rester "
                           "vide a été rempli.",
        "problem_consent": "cochez la case de consentement",
        "problem_too_long": "le champ « {field} » est trop long",
        "problem_line_break": "le champ « {field} » contient un retour à la ligne",
        "problem_tag": "le champ « {field} » contient une balise HTML",
        "problem_field": "le champ « {field} » n'est pas valide ({why})",
        "confirm_title": "Confirmer votre inscription",
        "confirm_question": "Confirmez l'inscription de {email} aux messages de {org}.",
        "confirmed": "C'est fait : votre inscription est confirmée. Merci !",
        "confirm_expired": "Ce lien de confirmation a expiré. Inscrivez-vous à nouveau "
                           "pour en recevoir un autre.",
        "confirm_gone": "Cette inscription n'existe plus. Inscrivez-vous à nouveau.",
        "confirm_refused": "Cette adresse ne peut plus être inscrite. Contactez {org}.",
        "measurement_consent": "J'accepte que {org} enregistre, à mon nom, {what}. Ces "
                               "données sont effacées après {days} jours\u00a0; je peux "
                               "retirer mon accord à tout moment depuis la page «\u00a0Gérer "
                               "mes abonnements\u00a0» de chaque message.",
        "measurement_clicks": "les liens sur lesquels je clique dans ses messages",
        "measurement_opens": "l'ouverture de ses messages",
        "measurement_both": "l'ouverture de ses messages et les liens sur lesquels j'y "
                            "clique",
        "measurement_optional": "(facultatif)",
        "prefs_measurement": "Mesure d'audience",
        "prefs_measurement_stop": "Si vous décochez cette case, la mesure s'arrête\u00a0: "
                                  "vos clics et ouvertures déjà enregistrés sont effacés "
                                  "aussitôt.",
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
        "web_announcements": "Announcements",
        "web_upcoming": "Coming up",
        "web_all": "All",
        "web_kind_event": "Invitations",
        "web_kind_replay": "Replays",
        "web_kind_newsletter": "Newsletters",
        "web_filter": "Filter by kind",
        "web_latest": "Latest announcements",
        "web_none": "No announcement published yet.",
        "web_draft": "Draft",
        "web_scheduled": "Scheduled",
        "web_back": "All announcements",
        "web_feed": "Atom feed",
        "web_calendar_feed": "Calendar of events (iCalendar)",
        "web_follow": "Follow",
        "web_video": "Video",
        "web_online": "Online",
        "read_more": "Read more",
        "read_more_about": "Read more: “{title}”",
        "view_in_browser": "View this message in your browser",
        "unsubscribe": "Unsubscribe",
        "reason": "You receive this message because you subscribed to announcements from {org}.",
        "manage_subscriptions": "Manage my subscriptions",
        "sent_to": "You receive this message at {email} because you subscribed to: {lists}.",
        "lists_default": "the mailing list of {org}",
        "sent_to_address": "You receive this message at",
        "sent_to_because": "because you subscribed to:",
        "colon": ": ",
        "unsubscribe_question": "Stop receiving messages from {org} at {email}?",
        "unsubscribe_button": "Unsubscribe me",
        "unsubscribed": "Done: {email} will no longer receive messages from {org}.",
        "bad_link": "This link is not valid. Please use the one in the message you received.",
        "try_again": "Your request could not be recorded. Please try again in a minute.",
        "prefs_title": "My subscriptions",
        "prefs_intro": "Choose the lists of {org} you receive at {email}.",
        "prefs_lists": "Mailing lists",
        "prefs_none": "{org} offers no list to choose from for now.",
        "prefs_private": "You are also on these lists, managed by {org}:",
        "prefs_save": "Save my choices",
        "prefs_saved": "Saved.",
        "prefs_everything_intro": "Don't want to receive anything from {org}?",
        "prefs_everything": "Unsubscribe from everything",
        "prefs_not_active": "We no longer send messages to {email}. You can leave a list "
                            "here, but not join one: to come back, sign up again with the "
                            "form of {org}.",
        "prefs_cannot_join": "This address cannot be subscribed again here. Nothing changed.",
        "prefs_bad_choice": "This list is not offered. Nothing changed.",
        "prefs_refused": "This form does not come from our site. Nothing changed.",
        "confirm_subject": "Confirm your subscription to messages from {org}",
        "confirm_preview": "One click to confirm your subscription.",
        "confirm_intro": "You (or someone with your address {email}) asked to receive "
                         "messages from {org}. Confirm it to receive:",
        "confirm_button": "Confirm my subscription",
        "confirm_expires": "This link is valid until {until}.",
        "confirm_link_text": "If the button does not work, copy this link into your "
                             "browser:",
        "confirm_ignore": "You asked for nothing? Ignore this message: without "
                          "confirmation, your address will be deleted.",
        "signup_title": "Subscribe to messages from {org}",
        "signup_intro": "Fields marked with an asterisk (*) are required.",
        "field_email": "Email address",
        "field_first_name": "First name",
        "field_last_name": "Last name",
        "field_organization": "Organisation",
        "field_lists": "Lists",
        "field_website": "Leave this field empty",
        "field_consent": "Consent",
        "signup_button": "Subscribe",
        "signup_lists": "I would like to receive:",
        "signup_error": "The subscription could not be recorded: {problem}",
        "signup_sent": "Check your mailbox: if {email} can subscribe, a message has just "
                       "been sent to it. Follow its link to confirm your subscription.",
        "signup_sent_title": "Check your mailbox",
        "signup_unknown_list": "This list does not exist.",
        "signup_too_many": "Too many sign-ups from your connection. Please try again in a "
                           "few minutes.",
        "signup_origin": "This form cannot be sent from this site.",
        "signup_honeypot": "The form was not accepted: a field that must stay empty was "
                           "filled.",
        "problem_consent": "tick the consent box",
        "problem_too_long": "the field \u201c{field}\u201d is too long",
        "problem_line_break": "the field \u201c{field}\u201d contains a line break",
        "problem_tag": "the field \u201c{field}\u201d contains an HTML tag",
        "problem_field": "the field \u201c{field}\u201d is not valid ({why})",
        "confirm_title": "Confirm your subscription",
        "confirm_question": "Confirm the subscription of {email} to messages from {org}.",
        "confirmed": "Done: your subscription is confirmed. Thank you!",
        "confirm_expired": "This confirmation link has expired. Sign up again to receive "
                           "another one.",
        "confirm_gone": "This sign-up no longer exists. Please sign up again.",
        "confirm_refused": "This address can no longer be subscribed. Contact {org}.",
        "measurement_consent": "I agree that {org} records, under my name, {what}. This "
                               "data is deleted after {days} days; I can withdraw my "
                               "agreement at any time from the \u201cManage my "
                               "subscriptions\u201d page of each message.",
        "measurement_clicks": "the links I click in its messages",
        "measurement_opens": "when I open its messages",
        "measurement_both": "when I open its messages and the links I click in them",
        "measurement_optional": "(optional)",
        "prefs_measurement": "Audience measurement",
        "prefs_measurement_stop": "If you untick this box, measuring stops: your clicks "
                                  "and opens already recorded are deleted at once.",
    },
}

# Babel patterns giving "lundi 12 juin 2023 à 14 h 00" and "Monday 12 June 2023 at 2:00 PM".
_DATETIME = {"fr": "EEEE d MMMM y 'à' H 'h' mm", "en": "EEEE d MMMM y 'at' h:mm a"}
_TIME = {"fr": "H 'h' mm", "en": "h:mm a"}
_NBSP = "\u00a0"
_SPAN = {"fr": "{date} de {start} à {end}", "en": "{date}, {start} to {end}"}


def labels_for(lang: str) -> dict[str, str]:
    return LABELS.get(base_language(lang), LABELS["en"])


@lru_cache(maxsize=32)
def _locale(lang: str) -> Locale:
    """Babel's locale, made once: given its name, every format call parsed it again (a
    third of formatting a date)."""
    return Locale.parse(lang.replace("-", "_"))


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
