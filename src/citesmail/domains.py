"""Domains compared as DMARC compares them: relaxed alignment asks that two domains
share their organisational domain.

The organisational domain is found as RFC 7489 §3.2 says, with the Public Suffix List
(the publicsuffixlist package, which carries a copy of it): the public suffix and one
label more. So `lettres.example.org` -> `example.org`, but `ville.gouv.fr` stays
`ville.gouv.fr` (gouv.fr is a public suffix: `ville.gouv.fr` and `mairie.gouv.fr` are two
organisations, not aligned) and `x.co.uk` stays `x.co.uk`. A domain that is itself a
public suffix (or has no dot) is its own organisational domain.
`citesmail dns check` and `check` both judge with it.
"""

from __future__ import annotations

from functools import cache

from publicsuffixlist import PublicSuffixList


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # reads the list once (a few milliseconds)


def organizational_domain(domain: str) -> str:
    """`news.example.org` -> `example.org` (lower case, without a final dot)."""
    name = ".".join(label for label in domain.strip().rstrip(".").lower().split(".") if label)
    if not name:
        return ""
    return _suffixes().privatesuffix(name) or name


def aligned(domain: str, other: str) -> bool:
    """Whether two domains align in DMARC's relaxed mode (same organisational domain)."""
    mine = organizational_domain(domain)
    return bool(mine) and mine == organizational_domain(other)


def domain_of(address: str) -> str:
    """The domain of `someone@example.org` (lower case); "" without one."""
    return address.rpartition("@")[2].strip().rstrip(".").lower() if "@" in address else ""
