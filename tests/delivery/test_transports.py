"""SMTP over TLS and with a login, against real aiosmtpd servers on 127.0.0.1.

Each test makes its own certificate authority and a server certificate it signs. The
client trusts that CA the way a user would make it trust a private CA: SSL_CERT_FILE,
which OpenSSL reads whenever `ssl.create_default_context()` loads the default paths.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from citesmail.audience.importer import import_contacts
from citesmail.audience.lists import add_list
from citesmail.db import Contact, Database, Send, open_database
from citesmail.delivery import RunResult, SendRun, counts
from citesmail.delivery.transports import make_transport
from citesmail.errors import CitesmailError
from citesmail.states import ContactStatus
from tests.cli.test_delivery_commands import smtp_env, with_audience
from tests.conftest import REPLAY, SECRET
from tests.conftest import run as cli
from tests.delivery.test_store import audience, run, settings_for, start
from tests.delivery.test_store import rows as store_rows
from tests.smtp_server import SmtpServer, Tap
from tests.test_scheduler import wait_for

USER, PASSWORD = "citesmail", "correct horse battery staple"


# -- a certificate authority of our own --------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
             ) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                           critical=False))


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class Authority:
    """A CA that signs server certificates, its certificate written to `path`."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    path: Path

    @classmethod
    def create(cls, folder: Path, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False)
        certificate = (_builder(name, _name(name), key.public_key())
                       .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                                      critical=True)
                       .add_extension(usage, critical=True)
                       .sign(key, hashes.SHA256()))
        path = folder / f"{name.replace(' ', '-')}.pem"
        path.write_bytes(_pem(certificate))
        return cls(key, certificate, path)

    def server_context(self, folder: Path, names: tuple[str, ...] = ("localhost",),
                       addresses: tuple[str, ...] = ("127.0.0.1",)) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for these names, signed here."""
        key = ec.generate_private_key(ec.SECP256R1())
        alternatives: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        alternatives += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        usage = x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False)
        ca_key_id = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        certificate = (
            _builder(names[0], self.certificate.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_key_id), critical=False)
            .sign(self.key, hashes.SHA256()))
        chain, key_path = folder / f"{names[0]}.pem", folder / f"{names[0]}.key"
        chain.write_bytes(_pem(certificate))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key_path)
        return context


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority.create(tmp_path, "citesmail test CA")


@pytest.fixture
def trusted(ca: Authority, monkeypatch: pytest.MonkeyPatch) -> Authority:
    """The CA, trusted by every default context made in this process from now on."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.path))
    return ca


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    """Lets in USER with PASSWORD only (aiosmtpd answers 535 otherwise)."""
    good = isinstance(auth_data, LoginPassword) and \
        (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=good, handled=False, auth_data=auth_data)


def starttls_server(authority: Authority, folder: Path, **options: Any) -> SmtpServer:
    """A server that refuses MAIL before STARTTLS (aiosmtpd: 530)."""
    return SmtpServer(tls_context=authority.server_context(folder), require_starttls=True,
                      **options)


TLS_VERSIONS = {"TLSv1.2", "TLSv1.3"}


# -- through SendRun and the real SmtpTransport ------------------------------------------

def test_starttls_delivers_every_message_over_tls(db: Database, tmp_path: Path,
                                                  trusted: Authority) -> None:
    addresses = audience(db, tmp_path, 5)
    with starttls_server(trusted, tmp_path) as server:
        cfg = settings_for(server.port, CITESMAIL_SMTP_SECURITY="starttls")
        assert run(db, cfg, start(db, cfg)) == {"sent": 5}
    assert server.handler.received == dict.fromkeys(addresses, 1)
    assert len(server.handler.tls_versions) == 5
    assert set(server.handler.tls_versions) <= TLS_VERSIONS
    assert server.handler.logins == [None] * 5  # no username: no AUTH


def test_implicit_tls_delivers_every_message(db: Database, tmp_path: Path,
                                             trusted: Authority) -> None:
    addresses = audience(db, tmp_path, 4)
    with SmtpServer(ssl_context=trusted.server_context(tmp_path)) as server:
        cfg = settings_for(server.port, CITESMAIL_SMTP_SECURITY="tls")
        assert run(db, cfg, start(db, cfg)) == {"sent": 4}
    assert server.handler.received == dict.fromkeys(addresses, 1)
    assert len(server.handler.tls_versions) == 4
    assert set(server.handler.tls_versions) <= TLS_VERSIONS


def test_login_with_the_right_password(db: Database, tmp_path: Path,
                                       trusted: Authority) -> None:
    addresses = audience(db, tmp_path, 3)
    with starttls_server(trusted, tmp_path, authenticator=authenticator,
                         auth_required=True) as server:
        cfg = settings_for(server.port, CITESMAIL_SMTP_SECURITY="starttls",
                           CITESMAIL_SMTP_USERNAME=USER, CITESMAIL_SMTP_PASSWORD=PASSWORD)
        assert run(db, cfg, start(db, cfg)) == {"sent": 3}
    assert server.handler.received == dict.fromkeys(addresses, 1)
    assert server.handler.logins == [USER.encode()] * 3


# -- through `citesmail send`, as a user sees it ---------------------------------------------

def send_env(port: int, security: str, **extra: str) -> dict[str, str]:
    return smtp_env(port, CITESMAIL_SMTP_SECURITY=security,
                    CITESMAIL_DELIVERY_RETRY_DELAYS="[1, 1]", **extra)


def states(workspace: Path) -> dict[str, int]:
    database = open_database(f"sqlite:///{workspace}/citesmail.db")
    try:
        with database.session(write=False) as session:
            send_id = session.scalar(select(Send.id))
            assert send_id is not None
            return {state: n for state, n in counts(session, send_id).items() if n}
    finally:
        database.close()


def test_a_refused_login_stops_the_send_and_the_right_password_finishes_it(
        workspace: Path, trusted: Authority) -> None:
    addresses = with_audience(workspace, 4)
    with starttls_server(trusted, workspace, authenticator=authenticator,
                         auth_required=True) as server:
        wrong = send_env(server.port, "starttls", CITESMAIL_SMTP_USERNAME=USER,
                         CITESMAIL_SMTP_PASSWORD="not the password")
        refused = cli("send", REPLAY, "--yes", env=wrong)
        assert refused.exit_code == 1
        assert refused.stderr.count("\n") == 1, refused.stderr  # one line, no traceback
        assert refused.stderr.startswith("error: stopped: SMTP login refused: 535 ")
        assert "CITESMAIL_SMTP_PASSWORD" in refused.stderr
        assert not server.handler.received
        assert states(workspace) == {"queued": 4}  # nothing sent, nobody failed
        right = cli("send", REPLAY, "--yes", env={**wrong, "CITESMAIL_SMTP_PASSWORD": PASSWORD})
        assert right.exit_code == 0, right.output
        assert right.stdout.strip() == "sent 4"
    assert server.handler.received == dict.fromkeys(addresses, 1)
    assert server.handler.logins == [USER.encode()] * 4


def test_a_login_refused_again_and_again_never_fails_a_recipient(
        workspace: Path, trusted: Authority) -> None:
    """Nothing about the recipients is wrong: each run gives them back to the queue."""
    addresses = with_audience(workspace, 1)
    with starttls_server(trusted, workspace, authenticator=authenticator,
                         auth_required=True) as server:
        wrong = send_env(server.port, "starttls", CITESMAIL_SMTP_USERNAME=USER,
                         CITESMAIL_SMTP_PASSWORD="not the password")
        for _ in range(4):  # more runs than there are retries
            assert cli("send", REPLAY, "--yes", env=wrong).exit_code == 1
            assert states(workspace) == {"queued": 1}  # no attempt counted
        right = cli("send", REPLAY, "--yes", env={**wrong, "CITESMAIL_SMTP_PASSWORD": PASSWORD})
        assert right.stdout.strip() == "sent 1", right.output
    assert server.handler.received == {addresses[0]: 1}


@pytest.mark.parametrize("security", ["starttls", "tls"])
@pytest.mark.parametrize("problem", ["unknown CA", "other host name"])
def test_a_certificate_that_cannot_be_verified_sends_nothing_and_fails_nobody(
        workspace: Path, ca: Authority, monkeypatch: pytest.MonkeyPatch, security: str,
        problem: str) -> None:
    addresses = with_audience(workspace, 3)
    if problem == "unknown CA":  # signed by a CA nobody trusts
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        context = ca.server_context(workspace)
    else:  # a trusted CA, but the certificate names another server
        monkeypatch.setenv("SSL_CERT_FILE", str(ca.path))
        context = ca.server_context(workspace, names=("mail.example.org",), addresses=())
    options = {"tls_context": context, "require_starttls": True} if security == "starttls" \
        else {"ssl_context": context}
    with SmtpServer(**options) as server:
        env = send_env(server.port, security)
        result = cli("send", REPLAY, "--yes", env=env)
        assert result.exit_code == 1, (result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: stopped: the SMTP server's certificate "
                                        "could not be verified")
        reason = "unable to get local issuer certificate" if problem == "unknown CA" \
            else "mismatch, certificate is not valid for '127.0.0.1'"
        assert reason in result.stderr
        assert not server.handler.received
        assert states(workspace) == {"queued": 3}  # nothing sent, nobody failed
        if problem == "unknown CA":  # the user trusts the CA now: the same command resumes
            monkeypatch.setenv("SSL_CERT_FILE", str(ca.path))
            again = cli("send", REPLAY, "--yes", env=env)
            assert again.stdout.strip() == "sent 3", again.output
    if problem == "unknown CA":
        assert server.handler.received == dict.fromkeys(addresses, 1)


def test_starttls_asked_of_a_server_without_it_stops_at_once(workspace: Path) -> None:
    """A setting problem, not a recipient's: one line, nobody failed or deferred."""
    with_audience(workspace, 3)
    with SmtpServer() as server:  # plain text only: no STARTTLS offered
        env = send_env(server.port, "starttls")
        result = cli("send", REPLAY, "--yes", env=env)
        assert result.exit_code == 1, (result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"error: stopped: the SMTP server 127.0.0.1:"
                                        f"{server.port} refuses: ")
        assert "STARTTLS" in result.stderr and "check [smtp] security" in result.stderr
        assert not server.handler.received
    assert states(workspace) == {"queued": 3}


# -- a password never crosses the network unencrypted -----------------------------------

def smtp_config(workspace: Path, host: str, *, allow: bool = False) -> int:
    """[smtp] in config.toml: a login without TLS to `host`; the line of `security`."""
    config = workspace / "config.toml"
    lines = config.read_text(encoding="utf-8").split("\n")
    values = {"host": f'"{host}"', "security": '"none"', "username": f'"{USER}"',
              "allow_plaintext_auth": "true" if allow else "false"}
    section = lines.index("[smtp]")
    for number, line in enumerate(lines[section:], start=section):
        key = line.partition(" = ")[0]
        if key in values:
            lines[number] = f"{key} = {values.pop(key)}"
    assert not values, values
    config.write_text("\n".join(lines), encoding="utf-8")
    return lines.index('security = "none"') + 1


REFUSED = '[smtp] security = "none" with a username would send the password to '


@pytest.mark.parametrize("host", ["mail.example.org", "192.0.2.25", "2001:db8::25"])
def test_a_login_in_clear_to_another_host_is_refused_by_check_and_by_send(
        workspace: Path, host: str) -> None:
    """Refused before any connection: no address of the example ranges is contacted."""
    line = smtp_config(workspace, host)
    checked = cli("check", REPLAY)
    assert checked.exit_code == 1
    assert f"config.toml:{line}: error: {REFUSED}{host} unencrypted — use security = " \
           '"starttls" or "tls"; or, if the network to that host is trusted, ' \
           "allow_plaintext_auth = true under [smtp]" in checked.stderr.splitlines()
    with_audience(workspace, 2)
    sent = cli("send", REPLAY, "--yes", env={"CITESMAIL_DELIVERY_TRANSPORT": "smtp",
                                             "CITESMAIL_SECRET": SECRET,
                                             "CITESMAIL_SMTP_PASSWORD": PASSWORD})
    assert sent.exit_code == 1
    assert sent.stderr.splitlines() == [line for line in checked.stderr.splitlines()
                                        if REFUSED in line]
    database = open_database(f"sqlite:///{workspace}/citesmail.db")
    try:
        with database.session(write=False) as session:
            assert session.scalar(select(Send.id)) is None  # the send never started
    finally:
        database.close()


def test_the_refusal_names_the_variable_that_set_it(workspace: Path) -> None:
    smtp_config(workspace, "mail.example.org")
    with pytest.raises(CitesmailError) as caught:
        make_transport(settings_for(25, CITESMAIL_SMTP_HOST="mail.example.org",
                                    CITESMAIL_SMTP_USERNAME=USER))
    [problem] = caught.value.problems
    assert str(problem).startswith(f"CITESMAIL_SMTP_SECURITY: {REFUSED}mail.example.org ")


@pytest.mark.parametrize(("host", "allow"), [
    ("localhost", False), ("127.0.0.1", False), ("127.8.9.10", False), ("::1", False),
    ("[::1]", False), ("mail.example.org", True)])
def test_a_login_in_clear_to_this_machine_or_when_allowed_passes_check(
        workspace: Path, host: str, allow: bool) -> None:
    smtp_config(workspace, host, allow=allow)
    checked = cli("check", REPLAY)
    assert REFUSED not in checked.stderr
    assert checked.exit_code == 0, checked.output


def test_a_login_in_clear_to_a_server_on_this_machine_goes_through(
        workspace: Path) -> None:
    addresses = with_audience(workspace, 3)
    # AUTH offered without TLS (aiosmtpd warns when it is also required)
    with SmtpServer(authenticator=authenticator, auth_require_tls=False) as server:
        env = send_env(server.port, "none", CITESMAIL_SMTP_USERNAME=USER,
                       CITESMAIL_SMTP_PASSWORD=PASSWORD)
        assert cli("check", REPLAY, env=env).exit_code == 0
        result = cli("send", REPLAY, "--yes", env=env)
        assert result.exit_code == 0, result.output
    assert server.handler.received == dict.fromkeys(addresses, 1)
    assert server.handler.logins == [USER.encode()] * 3
    assert server.handler.tls_versions == [None] * 3


@pytest.mark.parametrize("pipelining", [True, False])
def test_mail_rcpt_and_data_go_in_one_write_when_the_server_offers_pipelining(
        db: Database, tmp_path: Path, pipelining: bool) -> None:
    """One round trip instead of three before each message; a refusal is read the
    same way: 550 at RCPT fails the row and bounces the contact (the server refuses the
    DATA that followed), 554 after the message fails the row."""
    addresses = audience(db, tmp_path, 6)
    with SmtpServer() as server:
        server.handler.pipelining = pipelining
        server.handler.at_rcpt[addresses[1]] = [550]
        server.handler.at_data[addresses[3]] = [554]
        tap = Tap(server.port)
        try:
            cfg = settings_for(tap.port)
            assert run(db, cfg, start(db, cfg)) == {"sent": 4, "failed": 2}
        finally:
            tap.close()
    assert server.handler.received == {a: 1 for a in addresses if a not in addresses[1:4:2]}
    envelopes = [chunk for chunk in tap.chunks if b"mail FROM:<" in chunk]
    assert len(envelopes) == 6
    assert all((b"\r\nrcpt TO:<" in chunk and chunk.endswith(b"\r\ndata\r\n")) == pipelining
               for chunk in envelopes)
    found = store_rows(db)
    assert (found[addresses[1]].state, found[addresses[1]].last_code) == ("failed", 550)
    assert (found[addresses[3]].state, found[addresses[3]].last_code) == ("failed", 554)
    with db.session(write=False) as session:
        statuses = {email: status for email, status in
                    session.execute(select(Contact.email, Contact.status))}
    assert statuses[addresses[1]] == ContactStatus.BOUNCED
    assert statuses[addresses[3]] == ContactStatus.ACTIVE


def test_the_next_envelope_goes_with_the_message_when_the_server_offers_pipelining(
        db: Database, tmp_path: Path) -> None:
    """A connection that already holds its next row writes that row's MAIL, RCPT and
    DATA right after the message, before the message's answer (RFC 2920, 3.1): one wait
    per message. The server gets every message once, and every envelope once."""
    addresses = audience(db, tmp_path, 6)
    outcome: dict[str, int] = {}
    with SmtpServer() as server:
        server.handler.pipelining = True
        held = server.handler.hold[addresses[2]] = threading.Event()
        tap = Tap(server.port)
        try:
            cfg = settings_for(tap.port, CITESMAIL_DELIVERY_CONNECTIONS="1")
            sending = threading.Thread(
                target=lambda: outcome.update(run(db, cfg, start(db, cfg))))
            sending.start()
            # The server holds its answer to the third message: the fourth's envelope
            # comes all the same.
            fourth = f"rcpt TO:<{addresses[3]}>".encode()
            assert wait_for(lambda: fourth in b"".join(tap.chunks), 60)
            held.set()
            sending.join(60)
        finally:
            held.set()
            tap.close()
    assert outcome == {"sent": 6}
    assert server.handler.received == dict.fromkeys(addresses, 1)
    envelopes = re.findall(rb"mail FROM:<[^>]+>\r\nrcpt TO:<([^>]+)>\r\ndata\r\n",
                           b"".join(tap.chunks))
    assert envelopes == [a.encode() for a in addresses]


def test_what_goes_wrong_around_an_envelope_written_ahead(db: Database,
                                                          tmp_path: Path) -> None:
    """One connection, each envelope written with the message before it. A recipient
    refused at RCPT fails and bounces; a 451 after a message defers it; a server that
    keeps a message and drops the connection leaves it unknown; a 421 after a message
    closes the connection. Each following message goes once, on a new connection when
    the old one is gone."""
    addresses = audience(db, tmp_path, 8)
    with SmtpServer() as server:
        server.handler.pipelining = True
        server.handler.at_data[addresses[1]] = [451]
        server.handler.at_rcpt[addresses[2]] = [550]
        server.handler.drop_after_data[addresses[3]] = 1
        server.handler.at_data[addresses[5]] = ["421 4.3.2 closing"]
        cfg = settings_for(server.port, CITESMAIL_DELIVERY_CONNECTIONS="1")
        assert run(db, cfg, start(db, cfg)) == {"sent": 6, "failed": 1, "unknown": 1}
    assert server.handler.received == {a: 1 for a in addresses if a != addresses[2]}
    found = store_rows(db)
    assert (found[addresses[2]].state, found[addresses[2]].last_code) == ("failed", 550)
    assert found[addresses[3]].state == "unknown"
    assert found[addresses[1]].attempts == found[addresses[5]].attempts == 2
    with db.session(write=False) as session:
        assert session.scalar(select(Contact.status).where(
            Contact.email == addresses[2])) == ContactStatus.BOUNCED


def test_a_run_stopped_with_an_envelope_written_ahead_sends_that_message_later_once(
        db: Database, tmp_path: Path) -> None:
    """Stopped while its message is at the server, a connection has the next envelope
    written: that message does not go (the connection is closed without ending it), its
    row is queued again, and the next run sends it once."""
    addresses = audience(db, tmp_path, 20)
    with SmtpServer() as server:
        server.handler.pipelining = True
        gate = server.handler.hold[addresses[5]] = threading.Event()
        cfg = settings_for(server.port, CITESMAIL_DELIVERY_CONNECTIONS="1")
        send_id = start(db, cfg)
        outside = threading.Event()
        send_run = SendRun(db, send_id, cfg, lambda: make_transport(cfg), stop=outside)
        results: list[RunResult] = []
        runner = threading.Thread(target=lambda: results.append(send_run.run()))
        runner.start()
        deadline = time.monotonic() + 30  # until the 6th message waits at the server
        while len(server.handler.received) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        outside.set()
        assert send_run.stop.wait(10)  # the run knows it stops before the answer comes
        gate.set()
        runner.join(30)
        assert results and results[0].stopped
        assert (results[0].counts["sent"], results[0].counts["sending"]) == (6, 0)
        assert server.handler.received == dict.fromkeys(addresses[:6], 1)
        assert run(db, cfg, send_id) == {"sent": 20}
    assert server.handler.received == dict.fromkeys(addresses, 1)


def test_an_address_that_cannot_go_in_an_envelope_is_not_written_ahead(
        db: Database, tmp_path: Path) -> None:
    with db.session() as session:
        add_list(session, "l")
    path = tmp_path / "c.csv"
    path.write_text("email\na@example.org\nzoé@bücher.de\nc@example.org\n", encoding="utf-8")
    import_contacts(db, path, list_name="l")
    with SmtpServer() as server:
        server.handler.pipelining = True
        cfg = settings_for(server.port, CITESMAIL_DELIVERY_CONNECTIONS="1")
        assert run(db, cfg, start(db, cfg)) == {"sent": 2, "failed": 1}
    assert server.handler.received == {"a@example.org": 1, "c@example.org": 1}
    assert "SMTPUTF8" in (store_rows(db)["zoé@xn--bcher-kva.de"].last_error or "")


@pytest.mark.parametrize(("answer", "outcome"), [
    ("this is not an SMTP reply", {"sent": 2, "unknown": 1}),
    ("252 2.0.0 kept, in a 2xx of its own", {"sent": 3}),
])
def test_an_odd_answer_to_a_whole_message_never_sends_it_again(
        db: Database, tmp_path: Path, answer: str, outcome: dict[str, int]) -> None:
    """The server has the whole message when it answers it: an answer that is not a
    number says nothing of whether it kept it (unknown), and any 2xx says it did. Neither
    is a lost connection, which would put the row back in the queue to be sent again."""
    addresses = audience(db, tmp_path, 3)
    with SmtpServer() as server:
        server.handler.at_data[addresses[1]] = [answer]
        cfg = settings_for(server.port, CITESMAIL_DELIVERY_CONNECTIONS="1")
        assert run(db, cfg, start(db, cfg)) == outcome
    # Answered once (scripted, not counted as received), never sent a second time.
    assert server.handler.received == {addresses[0]: 1, addresses[2]: 1}
