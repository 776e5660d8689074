"""The classification rules of inbox/classify.py, message by message (no database)."""

from __future__ import annotations

import email

import pytest

from citesmail.inbox.classify import Classifier, Kind, Named, asks_to_leave, first_lines
from citesmail.tokens import make_token
from tests.conftest import REPLAY, SECRET
from tests.inbox.returns import OUT_OF_OFFICE, mail

OURS = f"<{REPLAY}.7.0123456789abcdef@example.org>"


def kind_of(data: bytes, secret: str = SECRET) -> Kind:
    return Classifier(secret).classify(email.message_from_bytes(data)).kind


def test_the_mailto_token_must_be_signed_with_our_secret() -> None:
    token = make_token(SECRET, 7, REPLAY)
    request = mail("a@example.net", "desinscription@example.org", f"unsubscribe {token}", "x")
    found = Classifier(SECRET).classify(email.message_from_bytes(request))
    assert found.kind == Kind.UNSUBSCRIBE
    assert found.request is not None
    assert found.request.named == Named(7, campaign=REPLAY, signed=True)
    assert not found.request.by_reply
    assert kind_of(request, secret="another-secret-of-more-than-32-bytes!") == Kind.OTHER
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert kind_of(mail("a@example.net", "d@example.org", f"unsubscribe {altered}", "x")) \
        == Kind.OTHER


@pytest.mark.parametrize(("headers", "subject"), [
    ({"Auto_Submitted": "auto-replied"}, "Re: Replay"),
    ({"X_Autoreply": "yes"}, "Re: Replay"),
    ({"X_Autorespond": "yes"}, "Re: Replay"),
    ({"Precedence": "auto_reply"}, "Re: Replay"),
    ({}, "Absence du bureau : Replay"),
    ({}, "Automatic reply: Replay"),
    ({}, "RE: Réponse automatique : Replay"),
    ({}, "Out of Office: Replay"),
])
def test_auto_replies(headers: dict[str, str], subject: str) -> None:
    data = mail("a@example.net", "annonces@example.org", subject, "Je suis absent.",
                In_Reply_To=OURS, **headers)
    assert kind_of(data) == Kind.AUTO_REPLY


def test_auto_submitted_no_and_an_ordinary_subject_are_not_auto_replies() -> None:
    data = mail("a@example.net", "annonces@example.org", "Absent à la réunion ?", "Bonjour",
                Auto_Submitted="no")
    assert kind_of(data) == Kind.OTHER
    assert kind_of(OUT_OF_OFFICE) == Kind.AUTO_REPLY


def test_a_reply_asks_to_leave_in_its_own_words_not_in_the_quoted_footer() -> None:
    footer = "> Se désabonner : https://lettres.example.org/u/abc"
    assert not asks_to_leave("Re: Replay", f"Merci !\n\n{footer}\n")
    assert not asks_to_leave("Re: Replay", "Merci !\nLe 12 juin, Labo a écrit :\nDésabonner")
    assert asks_to_leave("Re: Replay", "merci de me DESINSCRIRE\n" + footer)
    assert asks_to_leave("Désabonnement", "")
    assert asks_to_leave("Re: Replay", "Bonjour,\n\nPlease unsubscribe me.")
    assert first_lines("1\n\n2\n3\n4\n5\n6 désinscrire") == ["1", "2", "3", "4", "5"]
    asking = mail("a@example.net", "annonces@example.org", "Re: Replay",
                  "Je souhaite me désinscrire.", In_Reply_To=OURS)
    assert kind_of(asking) == Kind.UNSUBSCRIBE
    not_ours = mail("a@example.net", "annonces@example.org", "Re: Replay",
                    "Je souhaite me désinscrire.", In_Reply_To="<abc@mail.example.net>")
    assert kind_of(not_ours) == Kind.OTHER


def test_a_forwarded_message_is_not_a_complaint() -> None:
    """A person who forwards one of our messages as an attachment: not a JMRP report."""
    original = mail("annonces@example.org", "a@example.net", "Replay", "Bonjour",
                    Message_ID=OURS)
    forward = (b"From: a@example.net\r\nTo: b@example.net\r\nSubject: Fwd: Replay\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: text/plain\r\n\r\nA lire\r\n--b\r\n"
               b"Content-Type: message/rfc822\r\n\r\n" + original + b"\r\n--b--\r\n")
    assert kind_of(forward) == Kind.OTHER
