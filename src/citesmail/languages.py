"""Language codes, checked against the locales Babel knows."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError


def check_language(value: str) -> str:
    try:
        Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise ValueError(f"unknown language code {value!r} (try 'fr' or 'en')") from None
    return value


def base_language(value: str) -> str:
    """'fr-CA' and 'fr_CA' -> 'fr'."""
    return value.replace("_", "-").split("-")[0].lower()
