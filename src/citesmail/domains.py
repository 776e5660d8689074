"""Domains compared as DMARC compares them: relaxed alignment asks that two domains
share their organisational domain.

The organisational domain is taken as the last two labels (`lettres.example.org` ->
`example.org`), a simplification of RFC 7489 §3.2, which reads the Public Suffix List.
That is right for domains under a one-label suffix (.fr, .org, .eu) and wrong for those
under a two-label suffix (`centre.gouv.nc`, `x.co.uk`), where it gives the suffix
itself (`ville.gouv.fr` and `mairie.gouv.fr` look aligned; a DMARC lookup at the suffix
finds no record and says so). `citesmail dns check` and `check` both judge with it.
"""

from __future__ import annotations


def organizational_domain(domain: str) -> str:
    """`news.example.org` -> `example.org` (lower case, without a final dot)."""
    labels = [label for label in domain.strip().rstrip(".").lower().split(".") if label]
    return ".".join(labels[-2:])


def aligned(domain: str, other: str) -> bool:
    """Whether two domains align in DMARC's relaxed mode (same organisational domain)."""
    mine = organizational_domain(domain)
    return bool(mine) and mine == organizational_domain(other)


def domain_of(address: str) -> str:
    """The domain of `someone@example.org` (lower case); "" without one."""
    return address.rpartition("@")[2].strip().rstrip(".").lower() if "@" in address else ""
