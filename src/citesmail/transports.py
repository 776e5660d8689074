"""Where messages go: a Maildir outbox (no mail leaves the machine) or an SMTP relay.

A transport sends one message to one recipient and says how it went, as an `Outcome`
the send log understands; it never raises for a delivery problem.
"""

from __future__ import annotations

import contextlib
import mailbox
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from .config import Settings
from .errors import CitesmailError

Kind = Literal["sent", "temporary", "permanent", "connection"]


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    code: int | None = None
    message: str = ""
    bounce: bool = False  # the server refused the address itself (5xx at RCPT)


SENT = Outcome("sent", 250)


class Transport(Protocol):
    def send(self, sender: str, recipient: str, data: bytes) -> Outcome: ...

    def close(self) -> None: ...


class OutboxTransport:
    """Every message written into a Maildir folder, readable by any mail client."""

    def __init__(self, folder: Path) -> None:
        try:
            self.maildir = mailbox.Maildir(folder, create=True)
        except OSError as exc:
            raise CitesmailError(f"cannot use the outbox {folder}: {exc.strerror}",
                                 "check [delivery] outbox in config.toml") from None

    def send(self, sender: str, recipient: str, data: bytes) -> Outcome:
        self.maildir.add(data)
        return SENT

    def close(self) -> None:
        self.maildir.close()


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:500]


def classify(code: int, message: bytes | str, *, at_recipient: bool) -> Outcome:
    """4xx and 552 are temporary (retried); other 5xx are permanent; anything else (smtplib
    says -1 when the connection dropped before a reply) is a lost connection."""
    if not 400 <= code < 600:
        return Outcome("connection", None, _text(message) or "no reply from the server")
    if 400 <= code < 500 or code == 552:
        return Outcome("temporary", code, _text(message))
    return Outcome("permanent", code, _text(message), bounce=at_recipient and code >= 550)


class SmtpTransport:
    """One SMTP connection, opened when first needed and reused for many messages."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        smtp = self.settings.smtp
        context = ssl.create_default_context()
        if smtp.security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port,
                                                         timeout=self.timeout, context=context)
        else:
            connection = smtplib.SMTP(smtp.host, smtp.port, timeout=self.timeout)
            if smtp.security == "starttls":
                connection.starttls(context=context)
        if smtp.username:
            connection.login(smtp.username, self.settings.smtp_password or "")
        return connection

    def send(self, sender: str, recipient: str, data: bytes) -> Outcome:
        try:
            if self.connection is None or self.connection.sock is None:  # closed by a 421
                self.connection = self._connect()
            self.connection.sendmail(sender, [recipient], data)
            return SENT
        except smtplib.SMTPRecipientsRefused as exc:
            code, message = exc.recipients.get(recipient, (550, b"refused"))
            return classify(code, message, at_recipient=True)
        except smtplib.SMTPSenderRefused as exc:
            self._reset()
            return classify(exc.smtp_code, exc.smtp_error, at_recipient=False)
        except smtplib.SMTPDataError as exc:
            self._reset()
            return classify(exc.smtp_code, exc.smtp_error, at_recipient=False)
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            return Outcome("connection", None, f"disconnected: {_text(str(exc))}")
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise CitesmailError(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                                 "check [smtp] username and CITESMAIL_SMTP_PASSWORD") from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome("connection", None, f"{type(exc).__name__}: {_text(str(exc))}")

    def _reset(self) -> None:
        try:
            if self.connection is not None:
                self.connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            finally:
                self.connection = None

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.connection.quit()
            self._drop()


def make_transport(settings: Settings) -> Transport:
    """A new transport (one per parallel connection)."""
    if settings.delivery.transport == "smtp":
        if not settings.secret:
            raise CitesmailError(
                "sending through SMTP needs CITESMAIL_SECRET (it signs unsubscribe links)",
                "export CITESMAIL_SECRET=<a long random string>, and keep it")
        return SmtpTransport(settings)
    return OutboxTransport(settings.outbox_dir)
