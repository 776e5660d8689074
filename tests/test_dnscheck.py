"""dnscheck.py against a real authoritative server (nsd on 127.0.0.1, the zones of
tests/conftest.py:dns_zones), with keys made by `citesmail dkim keygen`'s function."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from citesmail.config import Settings, load_settings
from citesmail.dkim_keys import public_key
from citesmail.dnscheck import (
    Lookup,
    Report,
    SpfWalk,
    aligned,
    check_dns,
    parse_nameserver,
    spf_suggestion,
    spf_terms,
)
from citesmail.dnsrecords import txt_line
from citesmail.domains import organizational_domain
from citesmail.errors import CitesmailError
from tests.conftest import DnsWorld
from tests.dns_server import NameServer, zone

Row = tuple[str, str, str, str]
MOVE_ON = "once the reports show all your mail passing, move to p=quarantine, then p=reject"


def settings(world: DnsWorld, tmp_path: Path, sender: str, dkim_domain: str | None = None,
             key: str = "good", selector: str = "cm", **extra: str) -> Settings:
    return load_settings(None, environ={**world.env(sender, dkim_domain, key, selector),
                                        **extra}, cwd=tmp_path)


def rows(report: Report) -> list[Row]:
    return [(f.check, str(f.status), f.name, f.detail) for f in report.findings]


def aligned_rows(domain: str, dkim_domain: str | None = None) -> list[Row]:
    return [("DKIM alignment", "ok", domain,
             f"d={dkim_domain or domain} and From {domain} (relaxed)"),
            ("SPF alignment", "ok", domain,
             f"envelope sender {domain} and From {domain} (relaxed)")]


def key_record(world: DnsWorld, name: str, key: str = "good") -> str:
    return txt_line(name, public_key(world.keys[key].read_bytes(), "").record)


def test_a_domain_set_up_well_passes_every_check(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "annonces@bon.test", "bon.test"),
                      Lookup(dns_world.address))
    assert rows(found) == [
        ("SPF", "ok", "bon.test", "~all, 3 DNS lookups of 10"),  # include + a, mx in it
        ("DKIM", "ok", "cm._domainkey.bon.test",
         f"RSA 2048 bits, matches {dns_world.keys['good']}"),
        ("DMARC", "ok", "_dmarc.bon.test", "p=quarantine"),
        *aligned_rows("bon.test")]
    assert not found.failed and found.records == []


def test_a_subdomain_takes_dmarc_from_its_parent_and_spf_through_a_redirect(
        dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "annonces@lettres.bon.test", "bon.test"),
                      Lookup(dns_world.address))
    assert rows(found) == [
        # redirect=bon.test: 1, then bon.test's 3; its ~all is the one that applies
        ("SPF", "ok", "lettres.bon.test", "~all, 4 DNS lookups of 10"),
        ("DKIM", "ok", "cm._domainkey.bon.test",
         f"RSA 2048 bits, matches {dns_world.keys['good']}"),
        ("DMARC", "ok", "_dmarc.bon.test", "p=quarantine (the record of bon.test)"),
        *aligned_rows("lettres.bon.test", "bon.test")]
    assert not found.failed


def test_no_spf_record(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@sans-spf.test", "sans-spf.test"),
                      Lookup(dns_world.address))
    assert rows(found)[0] == (
        "SPF", "missing", "sans-spf.test", "no v=spf1 record: publish one that names the "
        "servers that send your mail (your relay's documentation may give an include:)")
    assert [row[1] for row in rows(found)[1:]] == ["ok"] * 4
    assert found.failed
    assert found.records == ['sans-spf.test. IN TXT "v=spf1 mx ~all"']


def test_spf_suggestion_names_the_relay(dns_world: DnsWorld, tmp_path: Path) -> None:
    def suggested(host: str) -> str:
        return spf_suggestion(settings(dns_world, tmp_path, "a@sans-spf.test",
                                       CITESMAIL_DELIVERY_TRANSPORT="smtp",
                                       CITESMAIL_SMTP_HOST=host))

    assert suggested("smtp.relais.test") == "v=spf1 a:smtp.relais.test ~all"
    assert suggested("192.0.2.25") == "v=spf1 mx ~all"  # a documentation range: not global
    assert suggested("8.8.4.4") == "v=spf1 ip4:8.8.4.4 ~all"
    assert suggested("2001:4860:4860::8844") == "v=spf1 ip6:2001:4860:4860::8844 ~all"
    assert suggested("127.0.0.1") == "v=spf1 mx ~all"
    assert suggested("localhost") == "v=spf1 mx ~all"


def test_a_published_key_that_is_not_ours(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@mauvaise-cle.test", "mauvaise-cle.test"),
                      Lookup(dns_world.address))
    assert rows(found) == [
        ("SPF", "ok", "mauvaise-cle.test", "-all, 1 DNS lookup of 10"),
        ("DKIM", "wrong", "cm._domainkey.mauvaise-cle.test",
         f"the published key is not the public half of {dns_world.keys['good']}"),
        ("DMARC", "ok", "_dmarc.mauvaise-cle.test", "p=reject"),
        *aligned_rows("mauvaise-cle.test")]
    assert found.failed
    assert found.records == [key_record(dns_world, "cm._domainkey.mauvaise-cle.test")]


def test_a_key_not_published(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@bon.test", "bon.test", selector="neuf"),
                      Lookup(dns_world.address))
    assert rows(found)[1] == ("DKIM", "missing", "neuf._domainkey.bon.test", "no TXT record")
    assert found.records == [key_record(dns_world, "neuf._domainkey.bon.test")]
    record = found.records[0]
    assert record.count('" "') == 1 and all(  # 392 characters: two strings
        len(piece) <= 255 for piece in record.split('"')[1::2])


def test_a_revoked_key(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@revoque.test", "revoque.test"),
                      Lookup(dns_world.address))
    assert rows(found)[1] == ("DKIM", "wrong", "cm._domainkey.revoque.test",
                              "the key is revoked (empty p=)")
    assert found.failed
    assert found.records == [key_record(dns_world, "cm._domainkey.revoque.test")]


def test_no_dmarc_record(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@sans-dmarc.test", "sans-dmarc.test"),
                      Lookup(dns_world.address))
    assert rows(found) == [
        ("SPF", "ok", "sans-dmarc.test", "~all, 1 DNS lookup of 10"),
        ("DKIM", "ok", "cm._domainkey.sans-dmarc.test",
         f"RSA 2048 bits, matches {dns_world.keys['good']}"),
        ("DMARC", "missing", "_dmarc.sans-dmarc.test",
         f"no v=DMARC1 record: start with p=none (reports only); {MOVE_ON}"),
        *aligned_rows("sans-dmarc.test")]
    assert found.failed
    assert found.records == [
        '_dmarc.sans-dmarc.test. IN TXT "v=DMARC1; p=none; '
        'rua=mailto:dmarc-reports@sans-dmarc.test"']


def test_a_subdomain_without_dmarc_anywhere(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@lettres.sans-dmarc.test"),
                      Lookup(dns_world.address))
    assert rows(found)[2] == (
        "DMARC", "missing", "_dmarc.lettres.sans-dmarc.test",
        "no v=DMARC1 record nor at _dmarc.sans-dmarc.test: start with p=none (reports "
        f"only); {MOVE_ON}")


def test_a_dkim_domain_that_is_not_the_from_domain(dns_world: DnsWorld,
                                                   tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@desaligne.test", "autre.test"),
                      Lookup(dns_world.address))
    assert rows(found) == [
        ("SPF", "ok", "desaligne.test", "~all, 1 DNS lookup of 10"),
        ("DKIM", "ok", "cm._domainkey.autre.test",
         f"RSA 2048 bits, matches {dns_world.keys['good']}"),
        ("DMARC", "ok", "_dmarc.desaligne.test", "p=quarantine"),
        ("DKIM alignment", "wrong", "desaligne.test",
         "d=autre.test is not the domain of From desaligne.test (relaxed): DMARC cannot pass "
         'on DKIM — set [dkim] domain = "desaligne.test" and publish the key there'),
        aligned_rows("desaligne.test")[1]]
    assert found.failed
    assert found.records == [key_record(dns_world, "cm._domainkey.desaligne.test")]


def test_spf_with_too_many_lookups(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@trop.test", "trop.test"),
                      Lookup(dns_world.address))
    # mx, then three includes of `a mx ptr`: 1 + 3 × (1 + 3)
    assert rows(found)[0] == (
        "SPF", "wrong", "trop.test", "13 DNS lookups or more, over the limit of 10: "
        "receivers fail SPF (permerror) — replace includes by the ip4:/ip6: ranges they give")
    assert [row[1] for row in rows(found)[1:]] == ["ok"] * 4
    assert found.failed and found.records == []


def test_two_spf_records_and_an_unknown_dmarc_policy(dns_world: DnsWorld,
                                                     tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@double.test", "double.test"),
                      Lookup(dns_world.address))
    assert rows(found)[0] == ("SPF", "wrong", "double.test", "2 v=spf1 records: receivers "
                              "fail SPF (permerror) — merge them into one")
    assert rows(found)[2] == ("DMARC", "wrong", "_dmarc.double.test",
                              "p=rejet: none, quarantine or reject expected")
    assert found.records == ['_dmarc.double.test. IN TXT "v=DMARC1; p=none; '
                             'rua=mailto:dmarc-reports@double.test"']


@pytest.mark.parametrize(("selector", "detail"), [
    ("cm", "p= is not base64"),
    ("autre", "not a DKIM key record (v=DKIM1; k=...; p=... expected)"),
    ("deux", "2 TXT records: receivers may take any — keep one"),
])
def test_broken_records(dns_world: DnsWorld, tmp_path: Path, selector: str,
                        detail: str) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@casse.test", "casse.test",
                               selector=selector), Lookup(dns_world.address))
    assert rows(found)[0] == ("SPF", "wrong", "casse.test",
                              "include:rien.casse.test has no SPF record; include:casse.test "
                              "loops back")
    assert rows(found)[1] == ("DKIM", "wrong", f"{selector}._domainkey.casse.test", detail)
    assert found.records == [key_record(dns_world, f"{selector}._domainkey.casse.test")]


def test_a_redirect_beside_an_all_is_not_followed(dns_world: DnsWorld) -> None:
    walk = SpfWalk(Lookup(dns_world.address))
    walk.walk("v=spf1 include:relais.test redirect=bon.test -all", ("x.test",))
    assert walk.count == 1 and walk.problems == ["include:relais.test has no SPF record"]
    walk = SpfWalk(Lookup(dns_world.address))
    walk.walk("v=spf1 redirect=bon.test", ("x.test",))
    assert walk.count == 4 and walk.problems == []  # 1, then bon.test's 3


def test_warnings_alone_do_not_fail(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@neutre.test", "neutre.test"),
                      Lookup(dns_world.address))
    assert rows(found)[0] == ("SPF", "warning", "neutre.test", "?all: mail from other servers "
                              "is neutral, not refused — end with ~all or -all; 1 DNS lookup "
                              "of 10")
    assert rows(found)[2] == ("DMARC", "warning", "_dmarc.neutre.test",
                              f"p=none: it protects nothing yet — {MOVE_ON}")
    assert not found.failed and found.records == []


@pytest.mark.parametrize(("key", "selector", "detail"), [
    ("weak", "faible", "RSA 1024 bits, matches {path}; make a 2048-bit one (citesmail dkim "
                       "keygen, another selector)"),
    ("ed", "ed", "Ed25519, matches {path}; Gmail and Microsoft do not check Ed25519 yet: "
                 "their receivers see the mail as unsigned"),
])
def test_keys_that_work_but_not_everywhere(dns_world: DnsWorld, tmp_path: Path, key: str,
                                           selector: str, detail: str) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@bon.test", "bon.test", key, selector),
                      Lookup(dns_world.address))
    assert rows(found)[1] == ("DKIM", "warning", f"{selector}._domainkey.bon.test",
                              detail.format(path=dns_world.keys[key]))
    assert not found.failed


def small_rsa_key(bits: int = 512) -> bytes:
    """An RSA key too short to be made by `cryptography`'s generator (1024 bits at least)."""
    def probable_prime(n: int) -> bool:  # Miller-Rabin
        d, r = n - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for _ in range(40):
            x = pow(secrets.randbelow(n - 3) + 2, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    def prime(size: int) -> int:
        while True:
            candidate = secrets.randbits(size) | (3 << size - 2) | 1
            if (candidate - 1) % 65537 and probable_prime(candidate):
                return candidate

    p, q = prime(bits // 2), prime(bits // 2)
    d = pow(65537, -1, (p - 1) * (q - 1))
    key = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                rsa.rsa_crt_iqmp(p, q),
                                rsa.RSAPublicNumbers(65537, p * q)).private_key()
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def test_a_key_under_1024_bits_fails(dns_world: DnsWorld, tmp_path: Path) -> None:
    path = tmp_path / "short.pem"
    path.write_bytes(small_rsa_key())
    found = check_dns(settings(dns_world, tmp_path, "a@bon.test", "bon.test",
                               CITESMAIL_DKIM_PRIVATE_KEY=str(path)),
                      Lookup(dns_world.address))
    assert rows(found)[1] == ("DKIM", "wrong", "cm._domainkey.bon.test",
                              f"the key {path} has 512 bits: receivers ignore RSA keys under "
                              "1024 bits — make a 2048-bit one with citesmail dkim keygen "
                              "(and another selector)")
    assert found.failed and found.records == []


def test_dkim_off(dns_world: DnsWorld, tmp_path: Path) -> None:
    found = check_dns(settings(dns_world, tmp_path, "a@bon.test"), Lookup(dns_world.address))
    assert rows(found)[1] == (
        "DKIM", "off", "-", "messages are not signed; to sign them: citesmail dkim keygen "
        "--selector citesmail --domain bon.test -o keys, publish its record, then set [dkim] "
        "selector, domain and private_key")
    assert rows(found)[3] == ("DKIM alignment", "off", "bon.test", "no DKIM signature: "
                              "DMARC rests on SPF alone, which forwarding breaks")
    assert not found.failed


@pytest.fixture
def empty_zone(tmp_path: Path) -> Iterator[NameServer]:
    """A server of its own whose zone vide.test has no SPF, DKIM or DMARC record."""
    with NameServer(tmp_path / "empty", {"vide.test": zone("vide.test", [])}) as server:
        yield server


def test_publishing_the_records_it_prints_makes_the_checks_pass(
        dns_world: DnsWorld, empty_zone: NameServer, tmp_path: Path) -> None:
    settings_ = settings(dns_world, tmp_path, "annonces@vide.test", "vide.test")
    before = check_dns(settings_, Lookup(empty_zone.address))
    assert [row[1] for row in rows(before)] == ["missing", "missing", "missing", "ok", "ok"]
    # The lines printed, as they are, in the zone file of another server.
    text = zone("vide.test", []) + "\n".join(before.records) + "\n"
    with NameServer(tmp_path / "published", {"vide.test": text}) as published:
        after = check_dns(settings_, Lookup(published.address))
    assert [row[1] for row in rows(after)] == ["ok", "ok", "warning", "ok", "ok"]  # p=none
    assert rows(after)[1][3] == f"RSA 2048 bits, matches {dns_world.keys['good']}"


def test_a_nameserver_that_does_not_answer_is_one_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never read
        silent.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(CitesmailError) as raised:
            Lookup(address, timeout=0.3).txt("bon.test")
    assert str(raised.value) == (f"the nameserver {address} did not answer within 0.3 s "
                                 "(asking for bon.test TXT) — check --nameserver and the "
                                 "network")


def test_a_nameserver_that_refuses_is_one_error(dns_world: DnsWorld) -> None:
    with pytest.raises(CitesmailError) as raised:
        Lookup(dns_world.address).txt("ailleurs.example")  # not one of its zones
    assert str(raised.value) == (
        f"the nameserver {dns_world.address} gave no answer for ailleurs.example TXT "
        "(REFUSED) — check --nameserver: it must resolve that name")


@pytest.mark.parametrize(("text", "parsed"), [
    ("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)), ("[::1]:5353", ("::1", 5353)), ("[::1]", ("::1", 53))])
def test_nameserver_forms(text: str, parsed: tuple[str, int]) -> None:
    assert parse_nameserver(text) == parsed


@pytest.mark.parametrize("text", ["ns.example.org", "127.0.0.1:dns", "127.0.0.1:0",
                                  "127.0.0.1:70000", "[::1]5353", ""])
def test_a_nameserver_that_is_not_an_address(text: str) -> None:
    with pytest.raises(CitesmailError) as raised:
        parse_nameserver(text)
    assert str(raised.value) == (f"--nameserver {text!r} is not an IP address with an "
                                 "optional port — e.g. 127.0.0.1, 127.0.0.1:5353 or "
                                 "[::1]:5353")


@pytest.mark.parametrize(("domain", "from_domain", "mode", "expected"), [
    ("bon.test", "bon.test", "s", True),
    ("bon.test", "lettres.bon.test", "r", True),
    ("bon.test", "lettres.bon.test", "s", False),
    ("Lettres.Bon.test", "lettres.bon.test", "s", True),
    ("autre.test", "bon.test", "r", False),
])
def test_alignment(domain: str, from_domain: str, mode: str, expected: bool) -> None:
    assert aligned(domain, from_domain, mode) is expected


def test_organizational_domain_keeps_the_last_two_labels() -> None:
    assert organizational_domain("a.b.lettres.cites.fr.") == "cites.fr"
    assert organizational_domain("cites.fr") == "cites.fr"
    assert organizational_domain("localhost") == "localhost"


def test_spf_terms() -> None:
    assert spf_terms("v=spf1 +a:mail.bon.test/24 -ip4:192.0.2.0/24 include:_spf.relais.test "
                     "redirect=bon.test a/24 MX ~ALL") == [
        ("+", "a", "mail.bon.test"), ("-", "ip4", "192.0.2.0"),
        ("", "include", "_spf.relais.test"), ("", "redirect", "bon.test"), ("", "a", ""),
        ("", "mx", ""), ("~", "all", "")]


def test_txt_line_splits_at_255_and_escapes() -> None:
    assert txt_line("x.test", 'a"b\\c') == 'x.test. IN TXT "a\\"b\\\\c"'
    assert txt_line("x.test.", "") == 'x.test. IN TXT ""'
    assert txt_line("x.test", "a" * 256) == f'x.test. IN TXT "{"a" * 255}" "a"'


def test_a_name_that_cannot_be_asked_is_one_error(dns_world: DnsWorld) -> None:
    with pytest.raises(CitesmailError) as raised:
        Lookup(dns_world.address).txt(f"{'x' * 64}.bon.test")
    assert str(raised.value).startswith(f"{'x' * 64}.bon.test cannot be a DNS name: ")
    assert str(raised.value).endswith(" — check [sender] from and [dkim]")


def test_spf_is_checked_at_the_return_path_domain_when_there_is_one() -> None:
    from citesmail.config import load_settings
    from citesmail.dnscheck import envelope_domain

    plain = load_settings(environ={"CITESMAIL_SENDER_FROM": "Labo <annonces@cites.fr>"})
    assert envelope_domain(plain) == "cites.fr"
    verp = load_settings(environ={"CITESMAIL_SENDER_FROM": "Labo <annonces@cites.fr>",
                                  "CITESMAIL_DELIVERY_RETURN_PATH": "b+{token}@Rebonds.Cites.fr"})
    assert envelope_domain(verp) == "rebonds.cites.fr"
