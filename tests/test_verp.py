"""Return-path tokens (VERP): what the envelope sender of each message names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citesmail.config import load_settings
from citesmail.errors import ConfigError
from citesmail.tokens import make_return_token, read_return_token
from citesmail.verp import Returned, ReturnPath, ReturnReader
from tests.conftest import SECRET

VERP = {"CITESMAIL_DELIVERY_RETURN_PATH": "bounces+{token}@lettres.example.org",
        "CITESMAIL_SECRET": SECRET}


@given(contact=st.integers(0, 10**13 - 1), send=st.integers(0, 10**7 - 1))
def test_a_token_names_its_contact_and_send_whatever_its_case(contact: int, send: int) -> None:
    token = make_return_token(SECRET, contact, send)
    assert len(token) <= 38 and re.fullmatch(r"[0-9a-z2-7-]+", token)
    assert read_return_token(SECRET, token) == (contact, send)
    assert read_return_token(SECRET, token.upper()) == (contact, send)


def test_a_forged_or_altered_token_names_nothing() -> None:
    token = make_return_token(SECRET, 12, 3)
    contact, send, tag = token.split("-")
    assert read_return_token("another-secret-of-more-than-32-bytes", token) is None
    assert read_return_token(SECRET, f"13-{send}-{tag}") is None  # another contact
    assert read_return_token(SECRET, f"{contact}-4-{tag}") is None  # another send
    assert read_return_token(SECRET, token[:-1]) is None
    assert read_return_token(SECRET, token + "a") is None
    assert read_return_token(SECRET, "") is None
    assert read_return_token(SECRET, "12-3-" + "a" * 16) is None


def test_the_envelope_sender_is_the_return_path_with_the_token(workspace: object) -> None:
    settings = load_settings(environ=VERP)
    sender = ReturnPath(settings).sender(41, 2)
    assert sender == f"bounces+{make_return_token(SECRET, 41, 2)}@lettres.example.org"
    assert len(sender.partition("@")[0]) <= 64
    assert ReturnReader(settings).read(sender) == Returned(41, 2)
    assert ReturnReader(settings).read(f"<{sender.upper()}>") == Returned(41, 2)


def test_without_a_return_path_the_envelope_sender_is_the_from_address() -> None:
    settings = load_settings(environ={"CITESMAIL_SENDER_FROM": "Labo <annonces@example.org>"})
    assert ReturnPath(settings).sender(41, 2) == "annonces@example.org"
    assert ReturnReader(settings).read("bounces+41-2-aaaaaaaaaaaaaaaa@example.org") is None


def test_an_address_of_another_shape_names_nothing() -> None:
    reader = ReturnReader(load_settings(environ=VERP))
    token = make_return_token(SECRET, 41, 2)
    assert reader.read(f"bounces+{token}@example.org") is None  # another domain
    assert reader.read(f"other+{token}@lettres.example.org") is None
    assert reader.in_headers([f"Someone <x@example.org>, bounces+{token}@lettres.example.org"]) \
        == Returned(41, 2)


@pytest.mark.parametrize(("value", "why"), [
    ("bounces@example.org", "{token} must be in the part before '@', exactly once"),
    ("bounces+{token}{token}@example.org", "exactly once"),
    ("bounces@{token}.example.org", "exactly once"),
    ("bounces+{token}", "an address such as"),
    ("rebonds+{token}@exemple-é.fr", "an address such as"),
    ("bounces +{token}@example.org", "an address such as"),
    ("Name <bounces+{token}@example.org>", "an address such as"),
    ("b" * 27 + "{token}@example.org", "too long"),
])
def test_a_return_path_without_one_token_in_an_ascii_address_is_refused(
        value: str, why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"CITESMAIL_DELIVERY_RETURN_PATH": value})
    assert why in str(refused.value) and "return_path" in str(refused.value)


def test_a_return_path_of_26_characters_besides_the_token_is_taken() -> None:
    value = "b" * 26 + "{token}@example.org"
    assert load_settings(environ={"CITESMAIL_DELIVERY_RETURN_PATH": value}) \
        .delivery.return_path == value
