"""Counted links' tokens: each names what it was made for, and nothing else reads."""

from __future__ import annotations

from citesmail.tokens import make_token
from citesmail.tracking.tokens import (
    Click,
    link_token,
    open_token,
    person_part,
    read_click,
    read_open,
)

SECRET = "a-secret-long-enough-for-the-tests-0123456789"


def test_a_link_token_names_a_send_and_a_link_and_nobody() -> None:
    token = link_token(SECRET, 7, 3)
    assert read_click(SECRET, token) == Click(7, 3, None)
    assert token.split(".")[:2] == ["7", "3"] and token.count(".") == 2
    assert len(token) <= 24  # a counted link fits a text line of 78 columns


def test_a_consenting_contacts_link_names_them() -> None:
    token = link_token(SECRET, 7, 3) + person_part(SECRET, 7, 4242)
    assert read_click(SECRET, token) == Click(7, 3, 4242)


def test_altered_tokens_are_refused() -> None:
    token = link_token(SECRET, 7, 3)
    person = person_part(SECRET, 7, 4242)
    send, number, tag = token.split(".")
    refused = [
        token[:-1],  # truncated
        token + "A",  # extended
        token + ".",  # extended by an empty part
        f"{send}.4.{tag}",  # replayed with another link's number
        f"8.{number}.{tag}",  # another send's
        f"{send}.{number}.{tag[:-1]}B" if tag[-1] != "B" else f"{send}.{number}.{tag[:-1]}C",
        link_token("another-secret-long-enough-for-the-tests-01", 7, 3),  # forged
        link_token(SECRET, 7, 3) + person_part(SECRET, 8, 4242),  # person of another send
        link_token(SECRET, 7, 3) + person[:-1],
        f"0{token}",  # another spelling of the same numbers
        make_token(SECRET, 4242, "2023-06-12-replay"),  # an unsubscribe token
        open_token(SECRET, 7, 3),  # an open token
        "", "7.3", "../../etc",
    ]
    assert [t for t in refused if read_click(SECRET, t) is not None] == []


def test_open_tokens() -> None:
    token = open_token(SECRET, 7, 4242)
    assert read_open(SECRET, token) == (7, 4242)
    assert read_open(SECRET, token[:-1]) is None
    assert read_open(SECRET, link_token(SECRET, 7, 4242)) is None
    assert read_open(SECRET, token.replace("7.", "8.", 1)) is None
