"""Relaxed DMARC alignment, as citesmail judges it (with the Public Suffix List)."""

from __future__ import annotations

import pytest

from citesmail.domains import aligned, domain_of, organizational_domain


@pytest.mark.parametrize(("domain", "organizational"), [
    ("example.org", "example.org"), ("lettres.example.org", "example.org"),
    ("a.b.Example.ORG.", "example.org"), ("localhost", "localhost"), ("", ""),
    # Under a public suffix of two labels, the organisation is one label more.
    ("ville.gouv.fr", "ville.gouv.fr"), ("lettres.ville.gouv.fr", "ville.gouv.fr"),
    ("news.centre.co.uk", "centre.co.uk"),
    # A public suffix is its own (DMARC finds no organisation above it).
    ("gouv.fr", "gouv.fr"), ("fr", "fr"),
])
def test_the_organisational_domain_is_one_label_under_the_public_suffix(domain: str,
                                                          organizational: str) -> None:
    assert organizational_domain(domain) == organizational


@pytest.mark.parametrize(("one", "other", "expected"), [
    ("example.org", "example.org", True),
    ("lettres.example.org", "example.org", True),
    ("bounces.example.org", "news.EXAMPLE.org", True),
    ("example.net", "example.org", False),
    ("example.org.evil.net", "example.org", False),
    # Two services of the State are two organisations: gouv.fr is a public suffix.
    ("ville.gouv.fr", "mairie.gouv.fr", False),
    ("lettres.prefecture.gouv.fr", "prefecture.gouv.fr", True),
    ("a.co.uk", "b.co.uk", False),
    ("", "", False),
])
def test_two_domains_align_when_they_share_it(one: str, other: str, expected: bool) -> None:
    assert aligned(one, other) is expected
    assert aligned(other, one) is expected


def test_the_domain_of_an_address() -> None:
    assert domain_of("bounces+{token}@Lettres.Example.org") == "lettres.example.org"
    assert domain_of("no-domain") == ""
