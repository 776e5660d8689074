"""The studio's words in the workspace language: Babel catalogues read from their .po
files at run time (compiled in memory, so no binary catalogue is kept in the repository)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib.resources import files
from io import BytesIO

from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from ..config import Settings
from ..languages import base_language

DOMAIN = "studio"
LANGUAGES = ("fr", "en")
# A workspace in another language gets the English interface: it has no catalogue.
FALLBACK = "en"


def studio_language(settings: Settings) -> str:
    """The workspace language ([campaigns] lang), if the studio speaks it."""
    lang = base_language(settings.campaigns.lang)
    return lang if lang in LANGUAGES else FALLBACK


def catalogue_path(lang: str) -> str:
    return str(files("citesmail") / "locale" / lang / "LC_MESSAGES" / f"{DOMAIN}.po")


@cache
def translations(lang: str) -> Translations:
    with open(catalogue_path(lang), "rb") as source:
        catalogue = read_po(source, locale=lang, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def day(value: datetime, lang: str) -> str:
    """'12 juin 2023' / 'June 12, 2023'."""
    return format_date(value, format="long", locale=lang)


def hour(value: datetime, lang: str) -> str:
    """'14:05' / '2:05 PM'."""
    return format_time(value, format="short", locale=lang)


def number(value: int, lang: str) -> str:
    """'1 234' / '1,234'."""
    return format_decimal(value, locale=lang)
