"""The IMAP folder `inbox fetch` reads ([inbox]): over TLS or STARTTLS, the server's
certificate always checked (a private CA is trusted with SSL_CERT_FILE, as for SMTP).

Messages are read with BODY.PEEK[], so a message left alone stays unseen. Handled ones
are flagged \\Seen and moved to [inbox] processed_folder (created when missing): with
MOVE (RFC 6851), else COPY, \\Deleted and UID EXPUNGE of just those UIDs (UIDPLUS,
RFC 4315): no other message is ever expunged.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from collections.abc import Iterator, Sequence
from types import TracebackType

from ..config import InboxSettings
from ..errors import CitesmailError

BATCH = 200  # UIDs per FETCH
NAME = "IMAP message UID "
LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"(?P<sep>(?:\\.|[^"])*)"|NIL) ')


def _said(data: object) -> str:
    """A server's answer as text, for an error message."""
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace").strip()
    return str(data or "").strip()


class ImapSource:
    def __init__(self, settings: InboxSettings, password: str | None) -> None:
        self.settings = settings
        self.password = password
        self.where = settings.processed_folder
        self.connection: imaplib.IMAP4 | None = None
        self.uids: list[bytes] = []
        self.separator = "/"
        self.capabilities: set[str] = set()

    # -- connecting -----------------------------------------------------------------

    def _fail(self, said: str, hint: str) -> CitesmailError:
        where = f"{self.settings.host}:{self.settings.port}"
        return CitesmailError(f"IMAP server {where}: {said}", hint)

    def _connect(self) -> imaplib.IMAP4:
        inbox = self.settings
        context = ssl.create_default_context()
        timeout = inbox.timeout.total_seconds()
        if inbox.security == "tls":
            return imaplib.IMAP4_SSL(inbox.host, inbox.port, ssl_context=context,
                                     timeout=timeout)
        connection = imaplib.IMAP4(inbox.host, inbox.port, timeout=timeout)
        try:
            connection.starttls(context)
        except BaseException:
            with contextlib.suppress(OSError):  # the socket may be closed already
                connection.shutdown()
            raise
        return connection

    def open(self) -> None:
        inbox = self.settings
        if not inbox.enabled:
            raise CitesmailError("no IMAP server configured",
                                 "set [inbox] host, port, security and username in config.toml")
        if not self.password:
            raise CitesmailError("CITESMAIL_IMAP_PASSWORD is not set",
                                 f"export the password of {inbox.username or 'the mailbox'} "
                                 "in CITESMAIL_IMAP_PASSWORD")
        try:
            self.connection = self._connect()
        except ssl.SSLCertVerificationError as exc:
            raise self._fail(
                "its certificate could not be verified: "
                f"{exc.verify_message or exc.reason or exc}",
                "check [inbox] host (a name the certificate lists); for a private CA, "
                "export SSL_CERT_FILE=<its certificate, PEM>") from None
        except (ssl.SSLError, imaplib.IMAP4.error) as exc:
            raise self._fail(f"no TLS: {_said(exc.args[0] if exc.args else exc)}",
                             f'check [inbox] port and security ("{inbox.security}")') from None
        except OSError as exc:
            raise self._fail(f"cannot connect: {exc.strerror or exc}",
                             "check [inbox] host and port, and that the server runs") from None
        try:
            self.connection.login(inbox.username, self.password)
        except imaplib.IMAP4.error as exc:
            self.close()
            raise self._fail(f"login of {inbox.username!r} refused ({_said(exc.args[0])})",
                             "check [inbox] username and CITESMAIL_IMAP_PASSWORD") from None
        self.capabilities = self._capabilities()
        self.separator = self._separator()
        status, data = self.connection.select(self._quoted(inbox.folder))
        if status != "OK":
            self.close()
            raise self._fail(f"no folder {inbox.folder!r} ({_said(data)})",
                             "check [inbox] folder") from None
        status, data = self.connection.uid("SEARCH", "ALL")
        self.uids = data[0].split() if status == "OK" and data and data[0] else []

    def _capabilities(self) -> set[str]:
        """What the server offers once logged in (more than in its greeting)."""
        assert self.connection is not None
        status, data = self.connection.capability()
        if status != "OK" or not data or not isinstance(data[0], bytes):
            return {str(item).upper() for item in self.connection.capabilities}
        return set(data[0].decode("ascii", "replace").upper().split())

    def _separator(self) -> str:
        assert self.connection is not None
        status, data = self.connection.list('""', '""')
        found = LIST_LINE.match(data[0]) if status == "OK" and data and \
            isinstance(data[0], bytes) else None
        return found["sep"].decode("ascii", "replace") if found and found["sep"] else "/"

    def _quoted(self, folder: str) -> str:
        """A configured folder name ('/' between levels) as the server spells it."""
        return '"' + folder.replace("/", self.separator) + '"'

    def close(self) -> None:
        if self.connection is None:
            return
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            self.connection.logout()
        self.connection = None

    def __enter__(self) -> ImapSource:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------

    def count(self) -> int:
        return len(self.uids)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        assert self.connection is not None
        for start in range(0, len(self.uids), BATCH):
            batch = b",".join(self.uids[start:start + BATCH]).decode("ascii")
            status, data = self.connection.uid("FETCH", batch, "(UID BODY.PEEK[])")
            if status != "OK":
                raise self._fail(f"cannot read messages ({_said(data)})", "try again later")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                found = re.search(rb"UID (\d+)", item[0])
                if found is not None:
                    yield f"{NAME}{found[1].decode('ascii')}", item[1]

    # -- filing away ----------------------------------------------------------------

    def _ensure_folder(self) -> str:
        assert self.connection is not None
        target = self._quoted(self.settings.processed_folder)
        status, data = self.connection.list('""', target)
        if status == "OK" and any(item for item in data):
            return target
        status, data = self.connection.create(target)
        if status != "OK":
            raise self._fail(f"cannot create the folder {self.settings.processed_folder!r} "
                             f"({_said(data)})", "create it, or check [inbox] processed_folder")
        self.connection.subscribe(target)
        return target

    def file_away(self, names: Sequence[str]) -> int:
        connection = self.connection
        assert connection is not None
        uids = [name.removeprefix(NAME) for name in names]
        if not uids:
            return 0
        target = self._ensure_folder()
        capabilities = self.capabilities
        if "MOVE" not in capabilities and "UIDPLUS" not in capabilities:
            raise self._fail("has neither MOVE nor UIDPLUS: handled messages cannot be moved "
                             "without expunging others", "use a server that has one of them")
        for start in range(0, len(uids), BATCH):
            batch = ",".join(uids[start:start + BATCH])
            connection.uid("STORE", batch, "+FLAGS.SILENT", r"(\Seen)")
            if "MOVE" in capabilities:
                status, data = connection.uid("MOVE", batch, target)
            else:
                status, data = connection.uid("COPY", batch, target)
                if status == "OK":
                    connection.uid("STORE", batch, "+FLAGS.SILENT", r"(\Deleted)")
                    status, data = connection.uid("EXPUNGE", batch)
            if status != "OK":
                raise self._fail(f"cannot move messages to {self.settings.processed_folder!r} "
                                 f"({_said(data)})", "the next fetch tries again")
        return len(uids)
