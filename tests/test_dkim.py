"""DKIM: a key pair from `citesmail dkim keygen`, messages signed, verified by dkimpy."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import dkim

from .conftest import REPLAY, run
from .test_send_cli import with_audience


def test_keygen_sign_and_verify(workspace: Path) -> None:
    made = run("dkim", "keygen", "--selector", "cm", "--domain", "example.org", "-o", "keys")
    assert made.exit_code == 0, made.output
    record = made.stdout.strip().splitlines()[-1]
    assert record.startswith('cm._domainkey.example.org. IN TXT "v=DKIM1; k=rsa; p=')
    txt = record.split('"')[1].encode()
    assert (workspace / "keys" / "cm.example.org.pem").stat().st_mode & 0o077 == 0
    again = run("dkim", "keygen", "--selector", "cm", "--domain", "example.org", "-o", "keys")
    assert again.exit_code == 1 and "already exists" in again.stderr

    env = {"CITESMAIL_DKIM_SELECTOR": "cm", "CITESMAIL_DKIM_DOMAIN": "example.org",
           "CITESMAIL_DKIM_PRIVATE_KEY": "keys/cm.example.org.pem"}
    with_audience(workspace, 2)
    assert run("send", REPLAY, "--yes", env=env).exit_code == 0
    messages = [path.read_bytes() for path in (workspace / "outbox" / "new").iterdir()]
    assert len(messages) == 2

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return txt if name == b"cm._domainkey.example.org." else b""

    for raw in messages:
        assert raw.startswith(b"DKIM-Signature: ")
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
