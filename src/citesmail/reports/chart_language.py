"""The language of a report's charts: their words (a gettext catalogue), numbers and
hours (Babel, in a locale and a time zone). English and UTC unless a page says otherwise,
so that the library and the CLI need nothing; the studio passes its own catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from gettext import NullTranslations

from babel.dates import format_skeleton, format_time
from babel.numbers import format_decimal


@dataclass(frozen=True)
class ChartLanguage:
    # msgids are the English words: without a catalogue they are what is shown
    translations: NullTranslations = field(default_factory=NullTranslations)
    locale: str = "en"
    zone: tzinfo = UTC

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def number(self, value: int | Decimal) -> str:
        """1234 -> '1 234' in French, '1,234' in English."""
        return format_decimal(value, locale=self.locale)

    def hour(self, moment: datetime) -> str:
        """The start of an hour in the zone, short: '2 mars à 09:00' / 'Mar 2 at 9:00 AM'."""
        local = moment.astimezone(self.zone)
        return self.gettext("%(day)s at %(hour)s") % {
            "day": format_skeleton("MMMd", local, locale=self.locale),
            "hour": format_time(local, format="short", locale=self.locale)}

    @property
    def zone_name(self) -> str:
        """'Europe/Paris', 'UTC'."""
        return str(getattr(self.zone, "key", None) or self.zone.tzname(None) or "UTC")


ENGLISH = ChartLanguage()
