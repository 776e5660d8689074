"""Where messages go: a Maildir outbox (no mail leaves the machine) or an SMTP relay.

A transport sends one message to one recipient and says how it went, as an `Outcome`
the send log understands; it never raises for a delivery problem.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import re
import smtplib
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from ..config import Settings, is_loopback, placeholder_problem, plaintext_auth_problem
from ..errors import CitesmailError, ConfigError
from ..message import Wire, dot_stuffed
from ..tokens import check_secret

Kind = Literal["sent", "temporary", "permanent", "connection", "unknown"]


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    code: int | None = None
    message: str = ""
    bounce: bool = False  # the server refused the address itself (5xx at RCPT)
    fatal: bool = False  # no message can go until someone fixes it (e.g. the login)


SENT = Outcome("sent", 250)


BeforeData = Callable[[], None]  # called just before the message's bytes leave
Envelope = tuple[str, str]  # (sender, recipient) of a message


class Transport(Protocol):
    parallel: bool  # False: one at a time in the sending thread (no gain in threads)
    wire: bool  # True: takes a message already as DATA carries it (message.Wire)

    def send(self, sender: str, recipient: str, data: bytes,
             before_data: BeforeData | None = None, then: Envelope | None = None
             ) -> Outcome:
        """`then`: the message this transport sends next, when already known (an SMTP
        server that offers PIPELINING gets its envelope with this message)."""

    def close(self) -> None: ...


_UNIQUE = itertools.count()  # Maildir names unique within the process, across threads


class OutboxTransport:
    """Every message written into a Maildir folder, readable by any mail client: into
    tmp/ under a unique name, then renamed into new/ (readers never see half a message).
    There is no fsync per message, unlike Python's `mailbox`: that fsync was half the
    cost of a message, and the outbox is for demos and dry runs, not a mail spool."""

    parallel = False
    wire = False

    def __init__(self, folder: Path) -> None:
        try:
            for sub in ("tmp", "new", "cur"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CitesmailError(f"cannot use the outbox {folder}: {exc.strerror}",
                                 "check [delivery] outbox in config.toml") from None
        self.tmp, self.new = str(folder / "tmp"), str(folder / "new")
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        self.suffix = f"P{os.getpid()}.{host}"

    def send(self, sender: str, recipient: str, data: bytes,
             before_data: BeforeData | None = None, then: Envelope | None = None
             ) -> Outcome:
        now = time.time()
        name = f"{int(now)}.M{int(now % 1 * 1e6)}Q{next(_UNIQUE)}{self.suffix}"
        if before_data is not None:
            before_data()
        try:
            fd = os.open(f"{self.tmp}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.rename(f"{self.tmp}/{name}", f"{self.new}/{name}")
        except OSError as exc:  # no message can go until someone fixes the folder
            with contextlib.suppress(OSError):
                os.unlink(f"{self.tmp}/{name}")
            return Outcome("connection", None, self._problem(exc), fatal=True)
        return SENT

    def _problem(self, exc: OSError) -> str:
        folder = os.path.dirname(self.tmp)
        if exc.errno == errno.ENOSPC:
            return f"the disk holding the outbox {folder} is full"
        return (f"cannot write to the outbox {folder}: {exc.strerror} (check its "
                "permissions, or [delivery] outbox in config.toml)")

    def close(self) -> None:
        pass


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:500]


# An address smtplib's quoteaddr would give back unchanged between < and >: dot-atom
# local part, plain domain (parsing every address with email.utils cost as much as
# building the message).
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


_MAXLINE = 8192  # smtplib's longest reply line


def _kernel_timeout(sock: socket.socket, seconds: float) -> None:
    """The connection's timeout kept by the kernel (SO_RCVTIMEO and SO_SNDTIMEO on a
    blocking socket) once it is set up. Python's own timeout polls before every send and
    receive: twice the system calls, and each one lets another thread take the GIL.
    Not under TLS: there a read the kernel times out comes back from OpenSSL as "want
    read", which a socket without Python's timeout reads again, for ever."""
    if isinstance(sock, ssl.SSLSocket):
        return
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)


def _write(connection: smtplib.SMTP, data: bytes) -> None:
    """What smtplib's send does with bytes, without its per-call checks and audit."""
    if connection.sock is None:
        raise smtplib.SMTPServerDisconnected("please run connect() first")
    try:
        connection.sock.sendall(data)
    except OSError:  # a kernel timeout says EAGAIN
        connection.close()
        raise smtplib.SMTPServerDisconnected("Server not connected") from None


def _write_message(connection: smtplib.SMTP, message: bytes,
                   after: bytes) -> OSError | None:
    """The message, then `after` (the next envelope, written ahead). Raises as _write
    does while the message's end has not left: nothing is at the server, safe to try
    again. Returns the error when only `after` could not follow: the server may have
    the message. On a plain socket both go in one system call (one segment, read by the
    server at once: the envelope's answers come with the message's); under TLS, which
    cannot say how much of a failed write left, in two writes."""
    sock = connection.sock
    if not after or sock is None or isinstance(sock, ssl.SSLSocket):
        _write(connection, message)
        if after:
            try:
                _write(connection, after)
            except (smtplib.SMTPException, OSError) as exc:
                return exc
        return None
    size, sent = len(message), 0
    try:
        while sent < size + len(after):  # (a write cut short goes on where it stopped)
            sent += sock.sendmsg([memoryview(message)[sent:], after] if sent < size
                                 else [memoryview(after)[sent - size:]])
    except OSError as exc:  # a kernel timeout says EAGAIN
        connection.close()
        if sent < size:
            raise smtplib.SMTPServerDisconnected("Server not connected") from None
        return exc
    return None


def _reply(connection: smtplib.SMTP) -> tuple[int, bytes]:
    """What smtplib's getreply reads and raises (code -1 when it cannot read one), with
    less work per line: a message waits for four replies."""
    if connection.file is None:
        if connection.sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        connection.file = connection.sock.makefile("rb")
    lines = []
    while True:
        try:
            line = connection.file.readline(_MAXLINE + 1)
        except OSError as exc:
            connection.close()
            raise smtplib.SMTPServerDisconnected(
                f"Connection unexpectedly closed: {exc}") from None
        if not line.endswith(b"\n"):  # closed, or the kernel's timeout: a reply cut short
            connection.close()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        if len(line) > _MAXLINE:
            connection.close()
            raise smtplib.SMTPResponseException(500, "Line too long.")
        lines.append(line[4:].strip(b" \t\r\n"))
        try:
            code = int(line[:3])
        except ValueError:
            return -1, b"\n".join(lines)
        if line[3:4] != b"-":
            return code, b"\n".join(lines)


def _path(address: str) -> str:
    """An address as MAIL FROM and RCPT TO carry it: <address>."""
    if _PLAIN.fullmatch(address):
        return f"<{address}>"
    quoted = smtplib.quoteaddr(address)
    if "\r" in quoted or "\n" in quoted:  # as smtplib's putcmd refuses it
        raise ValueError("a line break in an address")
    return quoted


def classify(code: int, message: bytes | str, *, at_recipient: bool) -> Outcome:
    """4xx and 552 are temporary (retried); other 5xx are permanent; anything else (smtplib
    says -1 when the connection dropped before a reply) is a lost connection."""
    if not 400 <= code < 600:
        return Outcome("connection", None, _text(message) or "no reply from the server")
    if 400 <= code < 500 or code == 552:
        return Outcome("temporary", code, _text(message))
    return Outcome("permanent", code, _text(message), bounce=at_recipient and code >= 550)


def tls_context() -> ssl.SSLContext:
    """`ssl.create_default_context()`, made once and shared by the connections (loading
    the trusted certificates takes about 20 ms); made again when SSL_CERT_FILE or
    SSL_CERT_DIR, or the file they name, changes."""
    paths = ssl.get_default_verify_paths()
    try:
        stamp = os.stat(paths.cafile).st_mtime_ns if paths.cafile else 0
    except OSError:
        stamp = 0
    return _context(paths.cafile, paths.capath, stamp)


@functools.lru_cache(maxsize=4)
def _context(cafile: str | None, capath: str | None, stamp: int) -> ssl.SSLContext:
    return ssl.create_default_context()


class SmtpTransport:
    """One SMTP connection, opened when first needed and reused for many messages."""

    parallel = True
    wire = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.smtp.timeout.total_seconds()
        self.connection: smtplib.SMTP | None = None
        self.sender = ("", b"")  # the last envelope sender, and its MAIL command
        # MAIL, RCPT and DATA of the next message, written after the last one; the
        # server's replies to them are read when that message is sent.
        self.ahead: Envelope | None = None

    def _connect(self) -> smtplib.SMTP:
        smtp = self.settings.smtp
        if smtp.security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=self.timeout, context=tls_context())
        else:
            connection = smtplib.SMTP(smtp.host, smtp.port, timeout=self.timeout)
        try:
            connection.ehlo_or_helo_if_needed()
            if smtp.security == "starttls":
                connection.starttls(context=tls_context())
                connection.ehlo()
            if smtp.username:
                connection.login(smtp.username, self.settings.smtp_password or "")
            assert connection.sock is not None
            _kernel_timeout(connection.sock, self.timeout)
            # Each write is whole commands or a whole message: none waits for the
            # acknowledgement of the one before (Nagle), not even the envelope written
            # ahead right after a message, which would reach the server a round trip late.
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            connection.close()
            raise
        return connection

    def send(self, sender: str, recipient: str, data: bytes,
             before_data: BeforeData | None = None, then: Envelope | None = None
             ) -> Outcome:
        """One SMTP transaction, step by step, so that a failure is known to be before
        the message (safe to retry) or after it (the server may have it: unknown). With
        PIPELINING, `then`'s MAIL, RCPT and DATA follow the message at once (RFC 2920,
        3.1): their replies come with this message's, one wait instead of two."""
        reused = self.connection is not None and self.connection.sock is not None
        try:
            if not reused:
                self._drop()
                self.connection = self._connect()
            connection = self.connection
            assert connection is not None
            refused = self._envelope(connection, sender, recipient)
            if refused is not None:
                return refused
            after = self._commands(then) if then is not None and self._pipelined() else b""
            if before_data is not None:
                try:
                    before_data()
                except BaseException:  # the message must not go: never end this DATA
                    self._drop()
                    raise
            # Made ready by the run (build_wire) or here: one write for the socket. A
            # write that raises has not put the message's end on the wire: safe to retry.
            cut = _write_message(connection, data if isinstance(data, Wire)
                                 else dot_stuffed(data), after)
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise CitesmailError(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                                 "check [smtp] username and CITESMAIL_SMTP_PASSWORD") from None
        except smtplib.SMTPNotSupportedError as exc:  # STARTTLS or AUTH not offered
            self._drop()
            raise CitesmailError(f"the SMTP server {self.settings.smtp.host}:"
                                 f"{self.settings.smtp.port} refuses: {_text(str(exc))}",
                                 "check [smtp] security (starttls, tls or none) and "
                                 "username") from None
        except ssl.SSLCertVerificationError as exc:  # no message can go: not a retry matter
            self._drop()
            raise CitesmailError(
                "the SMTP server's certificate could not be verified: "
                f"{_text(exc.verify_message or exc.reason or str(exc))}",
                "check [smtp] host (a name the certificate lists); for a private CA, "
                "export SSL_CERT_FILE=<its certificate, PEM>") from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            if reused:  # an idle connection the server had closed: try a fresh one once
                return self.send(sender, recipient, data, before_data, then)
            return Outcome("connection", None, f"{type(exc).__name__}: {_text(str(exc))}")
        try:  # the message has left: from here, whatever fails is `unknown`
            if cut is not None:
                raise cut
            self.ahead = then if after else None
            code, reply = _reply(connection)
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Outcome("unknown", None, "no answer after the message was sent (the "
                           f"server may have it): {_text(str(exc))}")
        return self._answered(code, reply)

    def _answered(self, code: int, reply: bytes) -> Outcome:
        """What the server's reply to a message it has whole says."""
        if 200 <= code < 300:
            return SENT
        if not 400 <= code < 600:  # no reply that says: it may have the message
            self._drop()
            return Outcome("unknown", None, "an unreadable answer after the message was "
                           f"sent (the server may have it): {_text(reply)}")
        if code == 421:  # the server is closing the connection
            self._drop()
        elif self.ahead is None:  # (else the server is reading the next envelope)
            self._reset()
        return classify(code, reply, at_recipient=False)

    def _pipelined(self) -> bool:
        connection = self.connection
        return connection is not None and bool(connection.does_esmtp) \
            and connection.has_extn("pipelining")

    def _each_command(self, sender: str, recipient: str) -> tuple[bytes, bytes, bytes]:
        if sender != self.sender[0]:  # the same for every message, but with VERP
            self.sender = (sender, f"mail FROM:{_path(sender)}\r\n".encode("ascii"))
        return self.sender[1], f"rcpt TO:{_path(recipient)}\r\n".encode("ascii"), b"data\r\n"

    def _commands(self, envelope: Envelope) -> bytes:
        """MAIL, RCPT and DATA for `envelope`, to write ahead; nothing for an address
        that cannot go in them (its own send says why)."""
        try:
            return b"".join(self._each_command(*envelope))
        except (ValueError, UnicodeEncodeError):
            return b""

    def _envelope(self, connection: smtplib.SMTP, sender: str,
                  recipient: str) -> Outcome | None:
        """MAIL, RCPT and DATA (spelled as smtplib spells them); None once the server
        waits for the message (354), else what the refusal means. A server that offers
        PIPELINING (RFC 2920) gets the three commands in one write (or had them with the
        last message), and answers them together: one round trip instead of three."""
        pipelined = self._pipelined()
        written, self.ahead = self.ahead, None
        if written is not None and written != (sender, recipient):
            # written for a message that did not go: the server waits for its data
            raise smtplib.SMTPServerDisconnected("the next envelope was another message's")
        commands = self._each_command(sender, recipient)
        if pipelined and written is None:
            _write(connection, b"".join(commands))
        replies: list[tuple[int, bytes]] = []
        for command, wanted in zip(commands, ((250,), (250, 251), (354,)), strict=True):
            if not pipelined:
                _write(connection, command)
            replies.append(_reply(connection))
            if replies[-1][0] == 421:  # the server is closing the connection
                self._drop()
                break
            if replies[-1][0] not in wanted and not pipelined:
                break
        codes = [code for code, _ in replies]
        if codes[:1] == [250] and codes[1:2] in ([250], [251]) and codes[2:] == [354]:
            return None
        if pipelined and codes[2:] == [354]:
            # DATA taken though MAIL or RCPT was refused: end it empty (RFC 2920, 3.1)
            _write(connection, b".\r\n")
            _reply(connection)
        self._reset()
        (mail, mail_reply), *rest = replies
        if mail != 250:  # the sender refused: every message would be; pause-worthy
            return Outcome("connection", mail, f"sender refused: {_text(mail_reply)}")
        rcpt, rcpt_reply = rest[0]
        if rcpt not in (250, 251):
            return classify(rcpt, rcpt_reply, at_recipient=True)
        return classify(*rest[1], at_recipient=False)

    def _reset(self) -> None:
        try:
            if self.connection is not None:
                self.connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        self.ahead = None
        if self.connection is not None:
            try:
                self.connection.close()
            finally:
                self.connection = None

    def close(self) -> None:
        if self.connection is not None and self.ahead is None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.connection.quit()
        self._drop()  # (after an envelope written ahead, the server waits for a message)


def check_sending_secret(settings: Settings) -> None:
    """Before anything goes out through SMTP, refuse: a missing, short or published
    CITESMAIL_SECRET (it signs the unsubscribe and web-view links), a login in clear to
    another machine, and example values sent to a relay. The outbox stays on this
    machine, so the development key and the examples are allowed there."""
    if settings.delivery.transport == "smtp":
        check_secret(settings.secret, "sending through SMTP")
        problem = plaintext_auth_problem(settings)
        if problem is not None:  # before any connection: the password must not leave
            raise ConfigError.from_problems([problem])
        if not is_loopback(settings.smtp.host):  # a relay: the mail would go out
            problem = placeholder_problem(settings, sending_to=settings.smtp.host)
            if problem is not None:
                raise ConfigError.from_problems([problem])


def make_transport(settings: Settings) -> Transport:
    """A new transport (one per parallel connection)."""
    if settings.delivery.transport == "smtp":
        check_sending_secret(settings)
        return SmtpTransport(settings)
    return OutboxTransport(settings.outbox_dir)
