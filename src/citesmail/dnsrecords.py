"""DNS records as a zone file writes them, and the DMARC record citesmail suggests to
start with. No lookups here (dnscheck.py asks the DNS)."""

from __future__ import annotations

# A character-string in a TXT record holds 255 bytes at most (RFC 1035 §3.3): a longer
# value goes as several strings, which receivers join without spaces.
TXT_STRING = 255

# Where a suggested DMARC record sends its aggregate reports: a mailbox at the domain
# itself (reports to another domain need that domain's consent, RFC 7489 §7.1).
REPORTS_MAILBOX = "dmarc-reports"

MOVE_ON = ("once the reports show all your mail passing, move to p=quarantine, then "
           "p=reject")
DMARC_NEXT_STEP = f"p=none only asks for reports: {MOVE_ON}"


def txt_line(name: str, value: str) -> str:
    """`name. IN TXT "..."`, the value cut into strings of 255 characters."""
    pieces = [value[start:start + TXT_STRING]
              for start in range(0, len(value), TXT_STRING)] or [""]
    strings = " ".join('"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"'
                       for piece in pieces)
    return f"{name.rstrip('.')}. IN TXT {strings}"


def dmarc_name(domain: str) -> str:
    return f"_dmarc.{domain}"


def dmarc_suggestion(domain: str) -> str:
    """A first DMARC record: monitoring only (p=none), with aggregate reports."""
    return f"v=DMARC1; p=none; rua=mailto:{REPORTS_MAILBOX}@{domain}"
