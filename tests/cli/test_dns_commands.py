"""`citesmail dns check` end to end, against nsd on 127.0.0.1 (tests/conftest.py:dns_world)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from citesmail.dkim_keys import public_key
from citesmail.dnsrecords import txt_line
from tests.conftest import DnsWorld, run


def test_a_domain_set_up_well(dns_world: DnsWorld, workspace: Path) -> None:
    result = run("dns", "check", "--nameserver", dns_world.address,
                 env=dns_world.env("annonces@bon.test", "bon.test"))
    key = dns_world.keys["good"]
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "check           status  name                    detail",
        "SPF             ok      bon.test                ~all, 3 DNS lookups of 10",
        f"DKIM            ok      cm._domainkey.bon.test  RSA 2048 bits, matches {key}",
        "DMARC           ok      _dmarc.bon.test         p=quarantine",
        "DKIM alignment  ok      bon.test                d=bon.test and From bon.test "
        "(relaxed)",
        "SPF alignment   ok      bon.test                envelope sender bon.test and From "
        "bon.test (relaxed)"]
    assert result.stderr == ""


def test_what_is_wrong_comes_with_the_records_to_publish(dns_world: DnsWorld,
                                                         workspace: Path) -> None:
    result = run("dns", "check", "--nameserver", dns_world.address,
                 env=dns_world.env("annonces@desaligne.test", "autre.test"))
    key = dns_world.keys["good"]
    record = txt_line("cm._domainkey.desaligne.test", public_key(key.read_bytes(), "").record)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "check           status  name                      detail",
        "SPF             ok      desaligne.test            ~all, 1 DNS lookup of 10",
        f"DKIM            ok      cm._domainkey.autre.test  RSA 2048 bits, matches {key}",
        "DMARC           ok      _dmarc.desaligne.test     p=quarantine",
        "DKIM alignment  wrong   desaligne.test            d=autre.test is not the domain of "
        "From desaligne.test (relaxed): DMARC cannot pass on DKIM — set [dkim] domain = "
        '"desaligne.test" and publish the key there',
        "SPF alignment   ok      desaligne.test            envelope sender desaligne.test and "
        "From desaligne.test (relaxed)",
        "",
        "publish these records (zone-file syntax):",
        record]


def test_missing_records_each_get_one(dns_world: DnsWorld, workspace: Path) -> None:
    result = run("dns", "check", "--nameserver", dns_world.address,
                 env=dns_world.env("annonces@sans-spf.test", "sans-spf.test", selector="neuf"))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [re.split(r"\s{2,}", line)[1] for line in lines[1:6]] == [
        "missing", "missing", "ok", "ok", "ok"]
    key = public_key(dns_world.keys["good"].read_bytes(), "").record
    assert lines[6:] == ["", "publish these records (zone-file syntax):",
                         'sans-spf.test. IN TXT "v=spf1 mx ~all"',
                         txt_line("neuf._domainkey.sans-spf.test", key)]


def test_without_dkim_it_says_how_to_turn_it_on(dns_world: DnsWorld, workspace: Path) -> None:
    result = run("dns", "check", "--nameserver", dns_world.address,
                 env=dns_world.env("annonces@bon.test"))
    assert result.exit_code == 0  # unsigned mail is a warning, not a failure
    lines = result.stdout.splitlines()
    assert lines[2] == ("DKIM            off     -                messages are not signed; to "
                        "sign them: citesmail dkim keygen --selector citesmail --domain "
                        "bon.test -o keys, publish its record, then set [dkim] selector, "
                        "domain and private_key")
    assert lines[4].startswith("DKIM alignment  off     bon.test")


def test_a_silent_nameserver_is_a_one_line_error(workspace: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never read
        silent.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        result = run("dns", "check", "--nameserver", address, "--timeout", "0.3",
                     env={"CITESMAIL_SENDER_FROM": "a@bon.test"})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (f"error: the nameserver {address} did not answer within 0.3 s "
                             "(asking for bon.test TXT) — check --nameserver and the "
                             "network\n")


def test_a_nameserver_that_is_not_an_address(workspace: Path) -> None:
    result = run("dns", "check", "--nameserver", "ns1.bon.test")
    assert result.exit_code == 1
    assert result.stderr == ("error: --nameserver 'ns1.bon.test' is not an IP address with "
                             "an optional port — e.g. 127.0.0.1, 127.0.0.1:5353 or "
                             "[::1]:5353\n")


def test_a_timeout_must_be_positive(workspace: Path) -> None:
    result = run("dns", "check", "--nameserver", "127.0.0.1", "--timeout", "0")
    assert result.exit_code == 2
    assert "Invalid value for '--timeout'" in result.stderr
