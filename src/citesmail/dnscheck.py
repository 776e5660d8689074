"""Whether the DNS says what receivers need to trust the mail: SPF for the envelope
sender's domain, the DKIM key of `[dkim]`, DMARC for the From domain, and the two
alignments DMARC asks for. Each check gives one Finding; the missing and wrong ones
carry the records to publish. Nothing here prints: `citesmail dns check` shows them."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import dns.exception
import dns.name
import dns.resolver

from .config import Settings
from .dkim_keys import PublicKey, dns_name, public_key
from .dnsrecords import (
    MOVE_ON,
    dmarc_name,
    dmarc_suggestion,
    txt_line,
)
from .domains import aligned as relaxed_aligned
from .domains import domain_of, organizational_domain
from .errors import CitesmailError

TIMEOUT = 5.0  # seconds for one name, all tries included

# RFC 7208 §4.6.4: past 10 terms that query the DNS, receivers fail SPF (permerror).
SPF_LOOKUP_LIMIT = 10
SPF_LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
DMARC_POLICIES = ("none", "quarantine", "reject")


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    OFF = "off"  # not configured (DKIM): a warning that says so
    MISSING = "missing"
    WRONG = "wrong"


FAILING = frozenset({Status.MISSING, Status.WRONG})


@dataclass(frozen=True)
class Finding:
    """One check: what was looked at (a DNS name, a domain), its status, why, and the
    records that would make it pass."""

    check: str
    name: str
    status: Status
    detail: str
    records: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        return any(finding.status in FAILING for finding in self.findings)

    @property
    def records(self) -> list[str]:
        """The records to publish, each once, in the order of the checks."""
        return list(dict.fromkeys(record for finding in self.findings
                                  for record in finding.records))


# -- asking the DNS ------------------------------------------------------------------------


def parse_nameserver(text: str) -> tuple[str, int]:
    """`IP`, `IP:PORT`, `IPv6` or `[IPv6]:PORT` -> (address, port)."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("53" if not rest else "")
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = str(ipaddress.ip_address(host))
        number = int(port)
    except ValueError:
        number = 0
    if not 0 < number < 65536:
        raise CitesmailError(f"--nameserver {text!r} is not an IP address with an optional "
                             "port", "e.g. 127.0.0.1, 127.0.0.1:5353 or [::1]:5353")
    return address, number


class Lookup:
    """TXT lookups through one resolver: the nameserver given, else the system's."""

    def __init__(self, nameserver: str | None = None, timeout: float = TIMEOUT) -> None:
        if nameserver is None:
            try:
                self.resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise CitesmailError("this system has no DNS resolver configured",
                                     "name one with --nameserver IP") from None
            self.server = ", ".join(str(server) for server in self.resolver.nameservers) \
                or "the system resolver"
        else:
            address, port = parse_nameserver(nameserver)
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [address]
            self.resolver.port = port
            self.server = nameserver
        self.resolver.lifetime = timeout
        self.resolver.timeout = timeout
        self.timeout = timeout

    def txt(self, name: str) -> list[str]:
        """The TXT records at `name`, each one's strings joined; none when the name or
        the record does not exist."""
        try:
            answer = self.resolver.resolve(dns.name.from_text(name), "TXT",
                                           raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.Timeout:
            raise CitesmailError(f"the nameserver {self.server} did not answer within "
                                 f"{self.timeout:g} s (asking for {name} TXT)",
                                 "check --nameserver and the network") from None
        except dns.resolver.NoNameservers as exc:
            raise CitesmailError(f"the nameserver {self.server} gave no answer for {name} "
                                 f"TXT ({_reasons(exc)})",
                                 "check --nameserver: it must resolve that name") from None
        except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel,
                dns.name.IDNAException) as exc:
            raise CitesmailError(f"{name} cannot be a DNS name: {exc}",
                                 "check [sender] from and [dkim]") from None
        return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def _reasons(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    return "; ".join(str(error[3]) for error in errors) or str(exc)


# -- SPF ---------------------------------------------------------------------------------------


def spf_records(lookup: Lookup, domain: str) -> list[str]:
    return [text for text in lookup.txt(domain)
            if text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")]


def spf_terms(record: str) -> list[tuple[str, str, str]]:
    """(qualifier, name in lower case, domain argument) for each term after `v=spf1`:
    `~all` -> ("~", "all", ""), `include:x` -> ("", "include", "x"),
    `redirect=x` -> ("", "redirect", "x"), `a:x/24` -> ("", "a", "x")."""
    terms = []
    for term in record.split()[1:]:
        qualifier = term[0] if term[0] in "+-~?" else ""
        match = re.match(r"([^:=/]*)(?:[:=]([^/]*))?", term[len(qualifier):])
        assert match is not None  # the pattern matches any text
        terms.append((qualifier, match[1].lower(), match[2] or ""))
    return terms


@dataclass
class SpfWalk:
    """Counts the terms that query the DNS, through includes and redirects; past the
    limit it stops following them (the count is then a lower bound)."""

    lookup: Lookup
    count: int = 0
    problems: list[str] = field(default_factory=list)

    def walk(self, record: str, path: tuple[str, ...]) -> None:
        terms = spf_terms(record)
        has_all = any(name == "all" for _, name, _ in terms)
        for _, name, argument in terms:
            if name == "redirect" and has_all:
                continue  # RFC 7208 §6.1: ignored beside an `all`
            if name not in SPF_LOOKUP_TERMS:
                continue
            self.count += 1
            if name in {"include", "redirect"} and self.count <= SPF_LOOKUP_LIMIT:
                self.follow(name, argument.lower().rstrip("."), path)

    def follow(self, name: str, target: str, path: tuple[str, ...]) -> None:
        if not target or "%" in target:  # a macro: known only when a message comes
            return
        if target in path:
            self.problems.append(f"{name}:{target} loops back")
            return
        found = spf_records(self.lookup, target)
        if len(found) != 1:
            self.problems.append(f"{name}:{target} has "
                                 + (f"{len(found)} SPF records" if found else "no SPF record"))
            return
        self.walk(found[0], (*path, target))


def spf_all(lookup: Lookup, record: str, seen: tuple[str, ...] = ()) -> str | None:
    """The record's `all` with its qualifier (`-all`, `~all`, `?all`, `+all`), or the
    one of the record a `redirect=` names; None when there is none."""
    terms = spf_terms(record)
    for qualifier, name, _ in terms:
        if name == "all":
            return (qualifier or "+") + "all"
    for _, name, argument in terms:
        target = argument.lower().rstrip(".")
        if name == "redirect" and target and "%" not in target and target not in seen \
                and len(seen) < SPF_LOOKUP_LIMIT:
            found = spf_records(lookup, target)
            return spf_all(lookup, found[0], (*seen, target)) if len(found) == 1 else None
    return None


ALL_WARNINGS = {
    "?all": "?all: mail from other servers is neutral, not refused — end with ~all or -all",
    "+all": "+all: any server in the world may send as you — end with ~all or -all",
    None: "no all: mail from other servers is neutral, not refused — end with ~all or -all",
}


def check_spf(lookup: Lookup, domain: str, suggestion: str) -> Finding:
    found = spf_records(lookup, domain)
    if not found:
        return Finding("SPF", domain, Status.MISSING,
                       "no v=spf1 record: publish one that names the servers that send "
                       "your mail (your relay's documentation may give an include:)",
                       (txt_line(domain, suggestion),))
    if len(found) > 1:
        return Finding("SPF", domain, Status.WRONG,
                       f"{len(found)} v=spf1 records: receivers fail SPF (permerror) — "
                       "merge them into one")
    walk = SpfWalk(lookup)
    walk.walk(found[0], (domain.lower(),))
    wrong = list(walk.problems)
    if walk.count > SPF_LOOKUP_LIMIT:
        wrong.insert(0, f"{walk.count} DNS lookups or more, over the limit of "
                        f"{SPF_LOOKUP_LIMIT}: receivers fail SPF (permerror) — replace "
                        "includes by the ip4:/ip6: ranges they give")
    if wrong:
        return Finding("SPF", domain, Status.WRONG, "; ".join(wrong))
    ending = spf_all(lookup, found[0])
    count = f"{walk.count} DNS lookup{'s' if walk.count != 1 else ''} of {SPF_LOOKUP_LIMIT}"
    if ending in {"-all", "~all"}:
        return Finding("SPF", domain, Status.OK, f"{ending}, {count}")
    return Finding("SPF", domain, Status.WARNING, f"{ALL_WARNINGS[ending]}; {count}")


def spf_suggestion(settings: Settings) -> str:
    """A first SPF record: the SMTP relay when citesmail sends to a public one, else the
    domain's mail servers (`mx`)."""
    host = settings.smtp.host.lower().rstrip(".") if settings.delivery.transport == "smtp" \
        else ""
    mechanism = "mx"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." in host and host != "localhost" and not host.endswith(".localhost"):
            mechanism = f"a:{host}"
    else:
        if address.is_global:
            mechanism = f"ip{address.version}:{address}"
    return f"v=spf1 {mechanism} ~all"


# -- DKIM --------------------------------------------------------------------------------------


def tags(record: str) -> dict[str, str]:
    """`v=DKIM1; k=rsa; p=...` -> {"v": "DKIM1", ...} (RFC 6376 §3.2: tag names in lower
    case here, spaces around values dropped). A part without `=` is left out."""
    found: dict[str, str] = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            found.setdefault(name.strip().lower(), value.strip())
    return found


def turn_on_dkim(domain: str) -> str:
    return (f"citesmail dkim keygen --selector citesmail --domain {domain} -o keys, publish "
            "its record, then set [dkim] selector, domain and private_key")


def check_dkim(lookup: Lookup, settings: Settings) -> Finding:
    config = settings.dkim
    if not config.enabled:
        return Finding("DKIM", "-", Status.OFF, "messages are not signed; to sign them: "
                       + turn_on_dkim(settings.sender.domain))
    pem = settings.dkim_key()
    assert pem is not None  # enabled
    mine = public_key(pem, config.private_key)
    name = dns_name(config.selector, config.domain)
    wanted = (txt_line(name, mine.record),)
    if mine.algorithm == "rsa" and mine.bits < 1024:
        return Finding("DKIM", name, Status.WRONG,
                       f"the key {config.private_key} has {mine.bits} bits: receivers ignore "
                       "RSA keys under 1024 bits — make a 2048-bit one with citesmail dkim "
                       "keygen (and another selector)")
    found = lookup.txt(name)
    if not found:
        return Finding("DKIM", name, Status.MISSING, "no TXT record", wanted)
    if len(found) > 1:
        return Finding("DKIM", name, Status.WRONG,
                       f"{len(found)} TXT records: receivers may take any — keep one", wanted)
    return _published_key(name, tags(found[0]), mine, settings, wanted)


def _published_key(name: str, published: dict[str, str], mine: PublicKey,
                   settings: Settings, wanted: tuple[str, ...]) -> Finding:
    def wrong(detail: str) -> Finding:
        return Finding("DKIM", name, Status.WRONG, detail, wanted)

    if "p" not in published or published.get("v", "DKIM1") != "DKIM1":
        return wrong("not a DKIM key record (v=DKIM1; k=...; p=... expected)")
    if not published["p"]:
        return wrong("the key is revoked (empty p=)")
    try:
        key = base64.b64decode(re.sub(r"\s", "", published["p"]), validate=True)
    except (binascii.Error, ValueError):
        return wrong("p= is not base64")
    algorithm = published.get("k", "rsa").lower()
    if algorithm != mine.algorithm or key != mine.public:
        return wrong(f"the published key is not the public half of {settings.dkim.private_key}")
    if mine.algorithm == "ed25519":
        return Finding("DKIM", name, Status.WARNING,
                       f"Ed25519, matches {settings.dkim.private_key}; Gmail and Microsoft "
                       "do not check Ed25519 yet: their receivers see the mail as unsigned")
    if mine.bits < 2048:
        return Finding("DKIM", name, Status.WARNING,
                       f"RSA {mine.bits} bits, matches {settings.dkim.private_key}; "
                       "make a 2048-bit one (citesmail dkim keygen, another selector)")
    return Finding("DKIM", name, Status.OK,
                   f"RSA {mine.bits} bits, matches {settings.dkim.private_key}")


# -- DMARC -------------------------------------------------------------------------------------


def dmarc_records(lookup: Lookup, domain: str) -> tuple[str, list[str]]:
    """The name the record was found at and the records there: `_dmarc.<domain>`, else
    `_dmarc.<organisational domain>` (see organizational_domain)."""
    name = dmarc_name(domain)
    found = _dmarc_at(lookup, name)
    parent = organizational_domain(domain)
    if not found and parent != domain.lower():
        found = _dmarc_at(lookup, dmarc_name(parent))
        if found:
            name = dmarc_name(parent)
    return name, found


def _dmarc_at(lookup: Lookup, name: str) -> list[str]:
    return [text for text in lookup.txt(name)
            if re.match(r"v\s*=\s*DMARC1\s*(;|$)", text)]


def check_dmarc(lookup: Lookup, domain: str) -> tuple[Finding, dict[str, str]]:
    """The DMARC finding and the record's tags (empty when there is no usable record)."""
    name, found = dmarc_records(lookup, domain)
    wanted = (txt_line(dmarc_name(domain), dmarc_suggestion(domain)),)
    if not found:
        parent = organizational_domain(domain)
        also = f" nor at {dmarc_name(parent)}" if parent != domain.lower() else ""
        return Finding("DMARC", name, Status.MISSING,
                       f"no v=DMARC1 record{also}: start with p=none (reports only); "
                       + MOVE_ON, wanted), {}
    if len(found) > 1:
        return Finding("DMARC", name, Status.WRONG,
                       f"{len(found)} v=DMARC1 records: receivers apply none — keep one",
                       wanted), {}
    record = tags(found[0])
    policy = record.get("p", "").lower()
    if policy not in DMARC_POLICIES:
        return Finding("DMARC", name, Status.WRONG,
                       f"p={policy or '(none given)'}: none, quarantine or reject expected",
                       wanted), {}
    inherited = name != dmarc_name(domain)
    if inherited and record.get("sp", "").lower() in DMARC_POLICIES:
        policy = record["sp"].lower()  # the policy for subdomains
    where = f" (the record of {organizational_domain(domain)})" if inherited else ""
    if policy == "none":
        return Finding("DMARC", name, Status.WARNING,
                       f"p=none{where}: it protects nothing yet — {MOVE_ON}"), record
    return Finding("DMARC", name, Status.OK, f"p={policy}{where}"), record


# -- alignment ---------------------------------------------------------------------------------


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment (RFC 7489 §3.1): the same domain when strict (`s`),
    the same organisational domain when relaxed (the default)."""
    if mode.lower() == "s":
        return domain.lower() == from_domain.lower()
    return relaxed_aligned(domain, from_domain)


def _mode(record: dict[str, str], tag: str) -> str:
    return "strict" if record.get(tag, "r").lower() == "s" else "relaxed"


def check_dkim_alignment(settings: Settings, record: dict[str, str]) -> Finding:
    from_domain = settings.sender.domain
    config = settings.dkim
    if not config.enabled:
        return Finding("DKIM alignment", from_domain, Status.OFF,
                       "no DKIM signature: DMARC rests on SPF alone, which forwarding breaks")
    mode = _mode(record, "adkim")
    domain = config.domain.lower()
    if aligned(domain, from_domain, mode[0]):
        return Finding("DKIM alignment", from_domain, Status.OK,
                       f"d={domain} and From {from_domain} ({mode})")
    pem = settings.dkim_key()
    assert pem is not None  # enabled
    mine = public_key(pem, config.private_key)
    return Finding("DKIM alignment", from_domain, Status.WRONG,
                   f"d={domain} is not the domain of From {from_domain} ({mode}): DMARC "
                   f"cannot pass on DKIM — set [dkim] domain = \"{from_domain}\" and publish "
                   "the key there",
                   (txt_line(dns_name(config.selector, from_domain), mine.record),))


def envelope_domain(settings: Settings) -> str:
    """The domain of the envelope sender (MAIL FROM), the one SPF checks: the
    `[delivery] return_path` when set (VERP), else the From address."""
    return domain_of(settings.delivery.return_path) or settings.sender.domain


def check_spf_alignment(settings: Settings, record: dict[str, str]) -> Finding:
    from_domain = settings.sender.domain
    domain = envelope_domain(settings)
    mode = _mode(record, "aspf")
    if aligned(domain, from_domain, mode[0]):
        return Finding("SPF alignment", from_domain, Status.OK,
                       f"envelope sender {domain} and From {from_domain} ({mode})")
    return Finding("SPF alignment", from_domain, Status.WRONG,
                   f"envelope sender {domain} is not the domain of From {from_domain} "
                   f"({mode}): DMARC cannot pass on SPF")


# -- all of them -------------------------------------------------------------------------------


def check_dns(settings: Settings, lookup: Lookup) -> Report:
    """Every check, in the order `citesmail dns check` shows them."""
    spf = check_spf(lookup, envelope_domain(settings), spf_suggestion(settings))
    dkim = check_dkim(lookup, settings)
    dmarc, record = check_dmarc(lookup, settings.sender.domain)
    checks: tuple[Callable[[Settings, dict[str, str]], Finding], ...] = (
        check_dkim_alignment, check_spf_alignment)
    return Report((spf, dkim, dmarc, *(check(settings, record) for check in checks)))
