"""Reading contact spreadsheets as exported by French offices: `;`, `,` or tab,
UTF-8 with or without BOM, else cp1252; header names in any case, with or without accents."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import CitesmailError
from .textfile import read_text_bytes

DELIMITERS = ";,\t"
FIELDS = ("email", "first_name", "last_name", "organization", "role", "territory", "lang")
_ALIASES = {
    "email": {"email", "e-mail", "courriel", "mail", "adresse mail", "adresse e-mail",
              "adresse email", "adresse electronique", "email address"},
    "first_name": {"prenom", "first name", "firstname", "first_name", "given name"},
    "last_name": {"nom", "last name", "lastname", "last_name", "nom de famille", "surname"},
    "organization": {"organisme", "structure", "organisation", "organization"},
    "role": {"fonction", "role", "poste"},
    "territory": {"territoire", "commune", "ville", "territory", "city"},
    "lang": {"lang", "langue", "language"},
    # Consent to measurement (yes/no): read by imports, never stored as a contact field.
    "measurement": {"measurement", "mesure", "mesure d'audience", "measurement consent",
                    "consentement mesure", "consentement a la mesure"},
}
MEASUREMENT = "measurement"
_YES = {"yes", "y", "oui", "o", "true", "vrai", "1", "x"}
_NO = {"no", "n", "non", "false", "faux", "0"}
MEASUREMENT_VALUES = "yes or no (also oui/non, true/false, 1/0, x or empty)"


class NotYesNo(ValueError):
    """A cell of the measurement column that says neither yes nor no."""


def yes_no(cell: str) -> bool | None:
    """A measurement cell: True, False, or None when empty (nothing said)."""
    value = cell.strip().casefold()
    if not value:
        return None
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise NotYesNo(cell)


def _plain(header: str) -> str:
    """'Prénom ' -> 'prenom', 'E_Mail' -> 'e mail': no accents, case or extra spaces."""
    text = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode()
    return re.sub(r"[\s_]+", " ", text.strip().lower())


# What a spreadsheet takes for the start of a formula when it opens a CSV file.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet would evaluate is written with a leading apostrophe."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def from_spreadsheet(cell: str) -> str:
    """The apostrophe `spreadsheet_safe` adds is taken off again, so that an exported
    file imports back to the same values. (Tabs and CRs never start a cell that has been
    trimmed, so only the visible characters are looked for.)"""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@") else cell


_LOOKUP = {_plain(alias): field for field, aliases in _ALIASES.items() for alias in aliases}
_LOOKUP.update({alias.replace(" ", "-"): field for alias, field in list(_LOOKUP.items())})


@dataclass
class Sheet:
    """The header mapped to fields, and the records with the line each starts on."""

    headers: list[str]
    columns: dict[int, str]  # column index -> field name (the others are attributes)
    rows: Iterator[tuple[int, list[str]]]
    encoding: str
    delimiter: str
    path: Path | None = None  # where the sheet was read, for errors about a cell


def _decode(data: bytes, path: Path) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise CitesmailError(
                f"not UTF-8, though the file starts with the UTF-8 mark (byte {exc.start + 3})",
                "save the file as CSV UTF-8 from your spreadsheet", path=path) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise CitesmailError(f"neither UTF-8 nor Windows-1252 (byte {exc.start})",
                             "save the file as CSV UTF-8 from your spreadsheet",
                             path=path) from None


def _delimiter(text: str) -> str:
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = sample.split("\n", 1)[0]
        return max(DELIMITERS, key=first.count)


def map_headers(headers: list[str]) -> dict[int, str]:
    columns: dict[int, str] = {}
    for index, header in enumerate(headers):
        field = _LOOKUP.get(_plain(header))
        if field and field not in columns.values():
            columns[index] = field
    return columns


def read_sheet(path: Path) -> Sheet:
    data = read_text_bytes(path)
    if not data.strip():
        raise CitesmailError("the file is empty", "export the contacts again, with a header row",
                             path=path)
    text, encoding = _decode(data, path)
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = next(reader)
    except csv.Error as exc:
        raise CitesmailError(f"cannot read the header: {exc}", path=path, line=1) from None
    headers = [from_spreadsheet(h.strip()) for h in headers]
    columns = map_headers(headers)
    if "email" not in columns.values():
        found = ", ".join(repr(h) for h in headers) or "none"
        raise CitesmailError(
            f"no email column (headers found: {found})",
            "name one column email, e-mail, courriel, mail or adresse mail", path=path, line=1)
    return Sheet(headers, columns, _records(reader, path), encoding, delimiter, path)


def _records(reader: Iterator[list[str]], path: Path) -> Iterator[tuple[int, list[str]]]:
    line = 1
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CitesmailError(str(exc), "check the quotes on that line", path=path,
                                 line=start) from None
        line = reader.line_num  # type: ignore[attr-defined]
        yield start, row
