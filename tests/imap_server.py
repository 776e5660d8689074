"""A real IMAP server for the tests: Debian's Dovecot (dovecot-imapd), started in the
foreground on 127.0.0.1 with a configuration of its own in a temporary folder: TLS
required (a certificate from the test's CA), one user in a passwd-file, Maildir mail.

As root, Dovecot's own users (dovecot, dovenull) run its processes and the mail belongs
to `dovecot`; otherwise everything runs as the current user."""

from __future__ import annotations

import contextlib
import getpass
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

USER, PASSWORD = "citesmail", "correct horse battery staple"
START_TIMEOUT = 30.0  # seconds for Dovecot to answer: generous on a busy machine


def dovecot_path() -> str:
    """Dovecot's binary; a test needing it fails in CI when it is missing, else skips."""
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot"
                                        if Path("/usr/sbin/dovecot").exists() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed (scripts/test.sh installs dovecot-imapd)")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(folder: Path, cert: Path, key: Path, imap_port: int,
            imaps_port: int) -> tuple[str, pwd.struct_passwd]:
    if os.geteuid() == 0:
        mail_user = pwd.getpwnam("dovecot")
        users = ""
    else:
        mail_user = pwd.getpwuid(os.getuid())
        me = getpass.getuser()
        users = f"default_internal_user = {me}\ndefault_login_user = {me}\n"
    return f"""\
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = citesmail-test-{imaps_port}
listen = 127.0.0.1
protocols = imap
{users}ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain
first_valid_uid = {mail_user.pw_uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={folder}/mail/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
log_path = {folder}/dovecot.log
""", mail_user


class Dovecot:
    """`with Dovecot(cert, key) as server:` — ports `imap` (STARTTLS) and `imaps`."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self.imap, self.imaps = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.folder = Path()

    def __enter__(self) -> Dovecot:
        binary = dovecot_path()
        # Not under pytest's tmp_path: Dovecot's processes that are not root read here.
        self.folder = Path(tempfile.mkdtemp(prefix="citesmail-dovecot-"))
        self.folder.chmod(0o755)
        text, mail_user = _config(self.folder, self.cert, self.key, self.imap, self.imaps)
        (self.folder / "dovecot.conf").write_text(text, encoding="utf-8")
        passwd = self.folder / "passwd"
        passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n", encoding="utf-8")
        passwd.chmod(0o644)
        (self.folder / "mail").mkdir()
        os.chown(self.folder / "mail", mail_user.pw_uid, mail_user.pw_gid)
        self.process = subprocess.Popen([binary, "-F", "-c", str(self.folder / "dovecot.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self._wait_for_greeting()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_for_greeting(self) -> None:
        """Until the IMAPS port answers with an IMAP greeting (or Dovecot exits)."""
        deadline = time.monotonic() + START_TIMEOUT
        context = ssl.create_default_context(cafile=None)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only a probe
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                error = self.process.stderr.read() if self.process.stderr else b""
                log = self.log()
                raise RuntimeError(f"dovecot exited: {error.decode(errors='replace')}{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.imaps), timeout=5) as raw, \
                        context.wrap_socket(raw) as tls:
                    if tls.recv(200).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not answer in {START_TIMEOUT}s: {self.log()}")
            time.sleep(0.05)  # between tries to connect; the port answering is the event

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- a client, for the tests' own look at the mailbox ------------------------------

    def client(self, cafile: Path) -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=str(cafile))
        connection = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=context,
                                       timeout=30)
        connection.login(USER, PASSWORD)
        return connection

    def append(self, cafile: Path, messages: list[bytes], folder: str = "INBOX") -> None:
        connection = self.client(cafile)
        try:
            for data in messages:
                status, said = connection.append(folder, None, None, data)
                assert status == "OK", said
        finally:
            connection.logout()

    def contents(self, cafile: Path, folder: str) -> list[tuple[bytes, frozenset[str]]]:
        """Each message of a folder (its bytes, its flags), in UID order; [] when the
        folder does not exist."""
        connection = self.client(cafile)
        try:
            status, _ = connection.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            status, data = connection.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            found = []
            for item in data:
                if isinstance(item, tuple):
                    flags = imaplib.ParseFlags(item[0])
                    found.append((item[1], frozenset(f.decode() for f in flags)))
            return found
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                connection.logout()
