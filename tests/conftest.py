"""Shared fixtures: a workspace on disk, the CLI runner, campaign writing helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from citesmail.cli import main
from citesmail.db import Database, open_database

ROOT = Path(__file__).resolve().parent.parent
# Screenshots and other files the tests leave for a person to look at (not committed).
ARTEFACTS = ROOT / "test-artefacts"
EXAMPLES = ROOT / "campaigns"
REPLAY = "2023-06-12-replay-cites-de-l-emploi"
EVENT = "2027-01-19-invitation-emploi-des-jeunes"
NEWSLETTER = "2026-12-15-lettre-decembre"
# A signing secret long enough for SMTP sends and `citesmail serve` (32 bytes or more).
SECRET = "a-test-secret-of-more-than-32-bytes"


_SESSION_START = pytest.StashKey[float]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SESSION_START] = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """Say where this run's screenshots are."""
    started = config.stash.get(_SESSION_START, time.time())
    written = [path for path in ARTEFACTS.rglob("*.png") if path.stat().st_mtime >= started] \
        if ARTEFACTS.exists() else []
    if written:
        folders = sorted({str(path.parent) for path in written})
        terminalreporter.write_line(f"{len(written)} screenshots in {', '.join(folders)}")


def make_workspace(ws: Path) -> Path:
    """The example config and the three example campaigns in the folder `ws`."""
    (ws / "campaigns").mkdir(parents=True)
    (ws / "templates").mkdir()
    shutil.copy(ROOT / "config.example.toml", ws / "config.toml")
    for example in EXAMPLES.glob("*.md"):
        shutil.copy(example, ws / "campaigns" / example.name)
    return ws


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with the example config and the three example campaigns; cwd inside it."""
    ws = make_workspace(tmp_path / "ws")
    monkeypatch.chdir(ws)
    for name in ("CITESMAIL_SECRET", "CITESMAIL_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return ws


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, prog_name="citesmail",
                              env=env)


PG_URL = os.environ.get("CITESMAIL_TEST_PG_URL")


def _with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a schema of its own on the PostgreSQL server.

    Without CITESMAIL_TEST_PG_URL the PostgreSQL runs are skipped, except in CI where
    they fail; with it set, an unreachable server fails them.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/citesmail.db"
        return
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("CITESMAIL_TEST_PG_URL is not set (.ci/run sets it)")
        pytest.skip("CITESMAIL_TEST_PG_URL is not set")
    from sqlalchemy import create_engine, text

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _with_search_path(PG_URL, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.close()


MINIMAL_REPLAY = textwrap.dedent("""
    +++
    kind = "replay"
    subject = "Replay"
    preheader = "Le replay"
    title = "Un titre"

    [event]
    starts = 2023-06-12T14:00:00

    [replay]
    video_url = "https://example.org/video"
    +++
    Bonjour {{ recipient.first_name | default("à tous") }},
    """).lstrip("\n")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (CI runs as root, which may mount one)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs (not root?): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all the free space of `disk` but `leave` bytes."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with filler.open("wb") as out:
        out.write(b"\0" * max(free - leave, 0))
    return filler


@dataclass(frozen=True)
class DnsWorld:
    """nsd serving the test zones (see dns_world), and the DKIM keys they publish."""

    address: str  # --nameserver
    keys: dict[str, Path]

    def env(self, sender: str, dkim_domain: str | None = None, key: str = "good",
            selector: str = "cm") -> dict[str, str]:
        """CITESMAIL_* variables: From `sender`, signing as `dkim_domain` (none: no DKIM)."""
        env = {"CITESMAIL_SENDER_FROM": f"Centre <{sender}>"}
        if dkim_domain is not None:
            env |= {"CITESMAIL_DKIM_SELECTOR": selector, "CITESMAIL_DKIM_DOMAIN": dkim_domain,
                    "CITESMAIL_DKIM_PRIVATE_KEY": str(self.keys[key])}
        return env


QUARANTINE = "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@bon.test"


def dns_zones(records: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """The test zones, each a case of `citesmail dns check`; `records` are the DKIM
    records of the keys by name."""
    good = records["good"]
    three = "v=spf1 a mx ptr -all"
    return {
        "bon.test": [("@", "v=spf1 ip4:192.0.2.10 include:_spf.relais.test ~all"),
                     ("cm._domainkey", good), ("_dmarc", QUARANTINE),
                     ("lettres", "v=spf1 redirect=bon.test"),
                     ("faible._domainkey", records["weak"]), ("ed._domainkey", records["ed"])],
        "relais.test": [("_spf", "v=spf1 a mx -all")],
        "sans-spf.test": [("@", "site-verification=0123"), ("cm._domainkey", good),
                          ("_dmarc", QUARANTINE)],
        "mauvaise-cle.test": [("@", "v=spf1 mx -all"), ("cm._domainkey", records["other"]),
                              ("_dmarc", "v=DMARC1; p=reject")],
        "sans-dmarc.test": [("@", "v=spf1 mx ~all"), ("cm._domainkey", good)],
        "desaligne.test": [("@", "v=spf1 mx ~all"), ("_dmarc", QUARANTINE)],
        "autre.test": [("cm._domainkey", good)],
        "trop.test": [("@", "v=spf1 mx include:a.trop.test include:b.trop.test "
                            "include:c.trop.test ~all"),
                      ("a", three), ("b", three), ("c", three),
                      ("cm._domainkey", good), ("_dmarc", QUARANTINE)],
        "revoque.test": [("@", "v=spf1 mx -all"), ("cm._domainkey", "v=DKIM1; k=rsa; p="),
                         ("_dmarc", QUARANTINE)],
        "neutre.test": [("@", "v=spf1 mx ?all"), ("cm._domainkey", good),
                        ("_dmarc", "v=DMARC1; p=none")],
        "casse.test": [("@", "v=spf1 include:rien.casse.test include:casse.test "
                             "redirect=bon.test -all"),
                       ("cm._domainkey", "v=DKIM1; k=rsa; p=not*base64"),
                       ("autre._domainkey", "k=rsa"), ("_dmarc", QUARANTINE),
                       ("deux._domainkey", good), ("deux._domainkey", records["other"])],
        "double.test": [("@", "v=spf1 mx -all"), ("@", "v=spf1 a -all"),
                        ("cm._domainkey", good), ("_dmarc", "v=DMARC1; p=rejet")],
    }


@pytest.fixture(scope="session")
def dns_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsWorld]:
    """One nsd for the session, serving dns_zones with keys made by `dkim keygen`'s
    function: `good` (RSA 2048, published at most zones), `other` (published where
    `good` is expected), `weak` (RSA 1024) and `ed` (Ed25519)."""
    from citesmail.dkim_keys import generate
    from tests.dns_server import NameServer, nsd_path, zone

    nsd_path()  # fails in CI, skips elsewhere, before any key is made
    folder = tmp_path_factory.mktemp("dns")
    keys, records = {}, {}
    for name, algorithm, bits in (("good", "rsa", 2048), ("other", "rsa", 2048),
                                  ("weak", "rsa", 1024), ("ed", "ed25519", 256)):
        keys[name], records[name] = generate(name, "keys.test", folder / "keys",
                                             "ed25519" if algorithm == "ed25519" else "rsa",
                                             bits)
    zones = {origin: zone(origin, rows) for origin, rows in dns_zones(records).items()}
    with NameServer(folder / "nsd", zones) as server:
        yield DnsWorld(server.address, keys)
