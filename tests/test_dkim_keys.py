"""DKIM: a key pair from `citesmail dkim keygen`, messages signed, verified by dkimpy."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import dkim
import pytest

from tests.cli.test_delivery_commands import with_audience
from tests.conftest import REPLAY, run


@pytest.mark.parametrize(("algorithm", "signed_with"), [("rsa", b"a=rsa-sha256"),
                                                       ("ed25519", b"a=ed25519-sha256")])
def test_keygen_sign_and_verify(workspace: Path, algorithm: str, signed_with: bytes) -> None:
    made = run("dkim", "keygen", "--selector", "cm", "--domain", "example.org", "-o", "keys",
               "--algorithm", algorithm)
    assert made.exit_code == 0, made.output
    lines = made.stdout.splitlines()
    record = lines[2]
    assert record.startswith(
        f'cm._domainkey.example.org. IN TXT "v=DKIM1; k={algorithm}; p=')
    assert lines[3:] == [
        "and, unless example.org has one already, a DMARC record to start with:",
        '_dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org"',
        "(p=none only asks for reports: once the reports show all your mail passing, move to "
        "p=quarantine, then p=reject)",
        "then see what the DNS says: citesmail dns check"]
    strings = record.split('"')[1::2]
    assert all(len(part) <= 255 for part in strings)  # a DNS string's limit
    txt = "".join(strings).encode()
    assert (workspace / "keys" / "cm.example.org.pem").stat().st_mode & 0o077 == 0
    again = run("dkim", "keygen", "--selector", "cm", "--domain", "example.org", "-o", "keys")
    assert again.exit_code == 1 and "already exists" in again.stderr

    env = {"CITESMAIL_DKIM_SELECTOR": "cm", "CITESMAIL_DKIM_DOMAIN": "example.org",
           "CITESMAIL_DKIM_PRIVATE_KEY": "keys/cm.example.org.pem"}
    checked = run("check", REPLAY, env=env)
    assert ("the DKIM key is Ed25519" in checked.output) == (algorithm == "ed25519")
    with_audience(workspace, 2)
    assert run("send", REPLAY, "--yes", env=env).exit_code == 0
    messages = [path.read_bytes() for path in (workspace / "outbox" / "new").iterdir()]
    assert len(messages) == 2

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return txt if name == b"cm._domainkey.example.org." else b""

    for raw in messages:
        assert raw.startswith(b"DKIM-Signature: ")
        assert signed_with in raw.split(b"\r\n\r\n", 1)[0]
        assert dkim.verify(raw, dnsfunc=dns)
        signature = email.message_from_bytes(raw, policy=policy.default)["DKIM-Signature"]
        signed = {h.strip().lower() for h in
                  signature.split("h=")[1].split(";")[0].replace("\r\n", "").split(":")}
        assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe",
                "list-unsubscribe-post"} <= signed
        tampered = raw.replace(b"Subject: ", b"Subject: X", 1)
        assert not dkim.verify(tampered, dnsfunc=dns)


def test_unreadable_key_is_a_clear_error(workspace: Path) -> None:
    env = {"CITESMAIL_DKIM_SELECTOR": "cm", "CITESMAIL_DKIM_DOMAIN": "example.org",
           "CITESMAIL_DKIM_PRIVATE_KEY": "missing.pem"}
    result = run("render", REPLAY, env=env)
    assert result.exit_code == 1
    assert "cannot read the DKIM private key" in result.stderr


def test_a_key_that_is_not_pem_is_a_clear_error(workspace: Path) -> None:
    (workspace / "bad.pem").write_text("not a key\n", encoding="utf-8")
    env = {"CITESMAIL_DKIM_SELECTOR": "cm", "CITESMAIL_DKIM_DOMAIN": "example.org",
           "CITESMAIL_DKIM_PRIVATE_KEY": "bad.pem"}
    result = run("render", REPLAY, env=env)
    assert result.exit_code == 1
    assert "the DKIM private key bad.pem cannot be read" in result.stderr
    assert "Traceback" not in result.output


def test_a_selector_that_cannot_be_a_dns_name_is_refused(workspace: Path) -> None:
    made = run("dkim", "keygen", "--selector", "a b", "--domain", "example.org", "-o", "keys")
    assert made.exit_code == 1
    assert "'a b' cannot be a DKIM selector" in made.stderr
    assert not (workspace / "keys").exists() or not any((workspace / "keys").iterdir())
    checked = run("check", env={"CITESMAIL_DKIM_SELECTOR": "a b"})
    assert checked.exit_code == 1
    assert "'dkim.selector'" in checked.stderr and "a DNS name is expected" in checked.stderr
