"""Address normalisation agrees with email-validator, the authority, on every input."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from citesmail.audience.addresses import AddressError, normalize_address

LOCAL = st.text(alphabet=st.sampled_from("abcXYZ019.-_+'!#%&=?éü \"@"), min_size=0,
                max_size=20)
DOMAIN = st.sampled_from(["exemple.fr", "EXEMPLE.FR", "bücher.de", "xn--bcher-kva.de",
                          "a..b.fr", "-x.fr", "localhost", "x.test", "ville-lyon.fr",
                          "sub.domaine.gouv.fr", "1.2", "a_b.fr", "exemple.fr."])


def reference(text: str) -> tuple[str, str, str] | None:
    try:
        result = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return (result.normalized, f"{result.local_part.lower()}@{result.ascii_domain}",
            result.ascii_domain)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(LOCAL, DOMAIN)
def test_same_verdict_and_normalisation_as_email_validator(local: str, domain: str) -> None:
    text = f"{local}@{domain}"
    expected = reference(text)
    try:
        got = normalize_address(text)
    except AddressError:
        assert expected is None, text
        return
    assert expected == (got.email, got.key, got.domain), text


@pytest.mark.parametrize("text", ["", "sans-arobase", "a@b", "a@@b.fr", " @x.fr"])
def test_invalid(text: str) -> None:
    with pytest.raises(AddressError):
        normalize_address(text)
