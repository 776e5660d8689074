"""Audience benchmark: 100k-contact CSV import, 1M-contact segment, SQLite and PostgreSQL.

Run from the repository root:
    .venv/bin/python benchmarks/audience.py [--quick] [--write-docs] [--skip-pg]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, select, text

from citesmail.audience import segments
from citesmail.audience.importer import ImportReport, import_contacts
from citesmail.audience.lists import add_list
from citesmail.db import Contact, Database, MailingList, open_database
from citesmail.folding import contact_keys
from report import DOCS, compile_bytecode, markdown_table, text_table, write_section

IMPORT_ROWS, SEGMENT_ROWS, BATCH = 100_000, 1_000_000, 10_000
CACHE_VERSION = 4  # PRAGMA user_version of the cached file: bump when the data changes
# One file a version: a benchmark of an older schema running beside keeps its own.
CACHE = Path(f"/tmp/citesmail-bench-1m-v{CACHE_VERSION}.db")
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SQLITE3 = "/usr/bin/sqlite3"
IMPORT_TARGET, COUNT_TARGET, STREAM_TARGET, RSS_TARGET_MB = 5.0, 0.5, 3.0, 200
HEADER = "Courriel;Prénom;Nom;Structure;Fonction;Territoire;Secteur"
TERRITORIES = {"Lyon": 14, "Grenoble": 8, "Saint-Étienne": 7, "Villeurbanne": 6,
               "Clermont-Ferrand": 6, "Vénissieux": 5, "Valence": 5, "Chambéry": 4,
               "Annecy": 4, "Roanne": 3, "Bourg-en-Bresse": 3, "Échirolles": 3,
               "Vaulx-en-Velin": 3, "Annemasse": 3, "Montélimar": 3, "Vienne": 3,
               "Bron": 3, "Rillieux-la-Pape": 2, "Givors": 2, "Oyonnax": 2}
ROLES = {"chargé de mission": 22, "directeur": 15, "délégué du préfet": 6,
         "chef de projet politique de la ville": 12, "conseiller en insertion": 18,
         "élu": 8, "coordinateur": 11, "médiateur": 8}
FIRST = ["Amélie", "André", "Benoît", "Cécile", "Chloé", "Clément", "Élodie", "Émile",
         "François", "Gaëlle", "Hélène", "Jérôme", "Joël", "Léa", "Léon", "Maëlle",
         "Mélanie", "Noël", "Océane", "Raphaël", "Sébastien", "Stéphane", "Thérèse", "Zoé"]
LAST = ["Bérard", "Bœuf", "Chevalier", "Dupré", "Durand", "Fabre", "Gérard", "Guérin",
        "Hébert", "Lefèvre", "Lemaître", "Ménard", "Moreau", "Pétrot", "Régnier", "Rousseau",
        "Thévenin", "Vidal", "Besançon", "N'Diaye", "Da Costa", "Le Goff", "Müller", "Faure"]
KINDS = ["Mairie de", "Mission locale de", "CCAS de", "Centre social de", "France services de"]
SECTORS = ["emploi", "insertion", "jeunesse", "logement", "santé", "éducation", "culture"]
FREE_MAIL = ["orange.fr", "gmail.com", "laposte.net", "free.fr"]
LISTS = {"partenaires": 0.40, "lettre": 0.25, "elus": 0.10}
SEGMENT = ["territory=Lyon", "territory=Grenoble", "role=délégué du préfet"]

Row = tuple[str, str, str, str]
TABLE_COLUMNS: Row = ("measurement", "citesmail", "reference/target", "verdict")


def ascii_slug(value: str, sep: str = "") -> str:
    plain = unicodedata.normalize("NFKD", value.replace("œ", "oe")).encode("ascii", "ignore")
    return re.sub(r"[^a-z0-9]+", sep, plain.decode().lower()).strip(sep)


ORGS = [(f"{kind} {town}", f"{ascii_slug(kind.split()[0])}-{ascii_slug(town, '-')}.fr")
        for town in list(TERRITORIES)[:10] for kind in KINDS]  # 50 organizations


def people(n: int, seed: int) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of (id, email, key, domain, first, last, org, role, territory, sector, lists)."""
    rng = random.Random(seed)
    for start in range(1, n + 1, BATCH):
        k = min(BATCH, n + 1 - start)
        towns = rng.choices(list(TERRITORIES), list(TERRITORIES.values()), k=k)
        roles = rng.choices(list(ROLES), list(ROLES.values()), k=k)
        batch: list[tuple[Any, ...]] = []
        for i, town, role in zip(range(start, start + k), towns, roles, strict=True):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            org, domain = rng.choice(ORGS) if rng.random() < 0.8 else (None, rng.choice(FREE_MAIL))
            local = f"{ascii_slug(first)}.{ascii_slug(last)}.{i}"
            email = f"{local}@{domain}"
            lists = [name for name, share in LISTS.items() if rng.random() < share]
            batch.append((i, email, email, domain, first, last, org, role, town,
                          rng.choice(SECTORS), lists))
        yield batch


def write_csv(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        for batch in people(n, seed=1):
            out.writelines(f"{p[1]};{p[4]};{p[5]};{p[6] or ''};{p[7]};{p[8]};{p[9]}\n"
                           for p in batch)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def verdict(ok: bool) -> str:
    return "within target" if ok else "OVER target"


@contextmanager
def pg_schema(name: str) -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped on the way out; yields its citesmail URL."""
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"))
        yield f"{PG}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        admin.dispose()


def import_once(url: str, csv_path: Path) -> float:
    db = open_database(url)
    try:
        with db.session() as session:
            add_list(session, "bench")
        report: list[ImportReport] = []
        seconds = timed(lambda: report.append(import_contacts(db, csv_path, list_name="bench")))
        if report[0].imported != IMPORT_ROWS:
            raise RuntimeError(f"imported {report[0].summary()}")
        return seconds
    finally:
        db.close()


def import_rows(tmp: Path, runs: int, skip_pg: bool) -> list[Row]:
    csv_path = tmp / "contacts.csv"
    write_csv(csv_path, IMPORT_ROWS)
    ours: list[float] = []
    floor: list[float] = []
    pg: list[float] = []
    for run in range(runs):
        ours.append(import_once(f"sqlite:///{tmp}/import-{run}.db", csv_path))
        script = f".mode csv\n.separator ;\n.import {csv_path} bare\n"
        command = [SQLITE3, str(tmp / f"floor-{run}.db")]
        floor.append(timed(partial(subprocess.run, command, input=script, text=True,
                                   check=True)))
        if not skip_pg:
            with pg_schema(f"bench_import_{os.getpid()}_{run}") as url:
                pg.append(import_once(url, csv_path))
    rows: list[Row] = []
    for backend, samples in (("SQLite", ours), ("PostgreSQL", pg)):
        seconds = statistics.median(samples) if samples else 0.0
        reference = (f"floor: sqlite3 .import {statistics.median(floor):.2f} s; "
                     if backend == "SQLite" else "")
        rows += [(f"Import 100k CSV, {backend}", f"{seconds:.2f} s",
                  f"{reference}target {IMPORT_TARGET:g} s",
                  verdict(seconds <= IMPORT_TARGET))] if samples else []
    return rows


def list_ids(db: Database) -> dict[str, int]:
    with db.session() as session:
        for name in LISTS:
            add_list(session, name)
    with db.session() as session:
        query = select(MailingList.name, MailingList.id)
        return {name: list_id for name, list_id in session.execute(query)}


def folded(p: tuple[Any, ...]) -> tuple[Any, ...]:
    """The folded columns an import fills (segments compare them)."""
    keys = contact_keys({"email": p[1], "first_name": p[4], "last_name": p[5],
                         "organization": p[6], "role": p[7], "territory": p[8],
                         "attributes": {"secteur": p[9]}})
    return (keys["role_key"], keys["territory_key"], keys["organization_key"],
            json.dumps(keys["attributes_key"]), keys["search_key"])


def contact_values(batch: list[tuple[Any, ...]], now: Any) -> list[tuple[Any, ...]]:
    # 5% of contacts not active; French mostly; attributes as imported (a JSON object)
    return [(p[0], *p[1:9], "fr" if p[0] % 10 else "en", json.dumps({"secteur": p[9]}),
             "active" if p[0] % 20 else "unsubscribed", now, now,
             *folded(p)) for p in batch]


def member_values(batch: list[tuple[Any, ...]], ids: dict[str, int],
                  now: Any) -> list[tuple[Any, ...]]:
    return [(ids[name], p[0], now) for p in batch for name in p[10]]


COLUMNS = ("id, email, email_key, domain, first_name, last_name, organization, role, "
           "territory, lang, attributes, status, created_at, updated_at,"
           " role_key, territory_key, organization_key, attributes_key, search_key")


def build_sqlite() -> None:
    if CACHE.exists():
        with closing(sqlite3.connect(CACHE)) as con:
            if con.execute("PRAGMA user_version").fetchone()[0] == CACHE_VERSION:
                return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{CACHE}{suffix}").unlink(missing_ok=True)
    print(f"building {CACHE} (1M contacts, cached for the next runs)...", flush=True)
    db = open_database(f"sqlite:///{CACHE}")
    ids = list_ids(db)
    db.close()
    now = "2024-03-01 09:00:00.000000"  # SQLAlchemy's SQLite DateTime format
    with closing(sqlite3.connect(CACHE)) as con, con:
        con.execute("PRAGMA synchronous = OFF")
        for batch in people(SEGMENT_ROWS, seed=2):
            con.executemany(f"INSERT INTO contacts ({COLUMNS}) VALUES ({', '.join('?' * 19)})",
                            contact_values(batch, now))
            con.executemany("INSERT INTO memberships VALUES (?, ?, ?)",
                            member_values(batch, ids, now))
        con.execute(f"PRAGMA user_version = {CACHE_VERSION}")


def build_pg(url: str) -> None:
    db = open_database(url)
    ids = list_ids(db)
    db.close()
    now = datetime.datetime(2024, 3, 1, 9)
    dsn = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for batch in people(SEGMENT_ROWS, seed=2):
            for table, values in ((f"contacts ({COLUMNS})", contact_values(batch, now)),
                                  ("memberships", member_values(batch, ids, now))):
                with cur.copy(f"COPY {table} FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
        cur.execute("ANALYZE")  # what autovacuum does after a bulk load


def definition() -> segments.Definition:
    return segments.Definition(lists=["partenaires"], exclude_lists=[],
                               where=[segments.parse_condition(c) for c in SEGMENT])


def peak_rss_kb() -> int:
    """Peak RSS (VmHWM), not ru_maxrss: Linux gives a child started by vfork + exec (as
    subprocess does) its parent's ru_maxrss."""
    found = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(found.group(1)) if found else 0


def stream_child(url: str) -> None:
    """In a fresh process: open the database, stream the segment's ids, report."""
    db = open_database(url)
    before = peak_rss_kb()
    with db.session(write=False) as session:
        start = time.perf_counter()
        rows = sum(len(batch) for batch in segments.stream(
            session, definition(), columns=(Contact.id,), batch=1000))
        seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "seconds": seconds, "before_kb": before,
                      "peak_kb": peak_rss_kb()}))


def segment_rows(backend: str, url: str, count_runs: int, stream_runs: int) -> list[Row]:
    db = open_database(url)
    try:
        with db.session(write=False) as session:
            matching = segments.count(session, definition())  # untimed warm-up
            seconds = statistics.median(timed(lambda: segments.count(session, definition()))
                                        for _ in range(count_runs))
    finally:
        db.close()
    children = [json.loads(subprocess.run(
        [sys.executable, __file__, "--stream-child", url], check=True, capture_output=True,
        text=True).stdout) for _ in range(stream_runs)]
    if any(child["rows"] != matching for child in children):
        raise RuntimeError(f"streamed {children[0]['rows']} ids, counted {matching}")
    stream_s = statistics.median(child["seconds"] for child in children)
    peak = max(child["peak_kb"] for child in children) / 1024
    before = max(child["before_kb"] for child in children) / 1024
    return [(f"Segment count, 1M, {backend}", f"{seconds:.3f} s ({matching:,} match)",
             f"target {COUNT_TARGET:g} s", verdict(seconds <= COUNT_TARGET)),
            (f"Segment stream ids, 1M, {backend}",
             f"{stream_s:.2f} s, peak {peak:.0f} MB ({before:.0f} MB before)",
             f"target {STREAM_TARGET:g} s, {RSS_TARGET_MB} MB",
             verdict(stream_s <= STREAM_TARGET and peak <= RSS_TARGET_MB))]


def machine_line(skip_pg: bool) -> str:
    cpuinfo = Path("/proc/cpuinfo")
    found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text() if cpuinfo.exists()
                      else "", re.MULTILINE)
    cli = subprocess.run([SQLITE3, "--version"], capture_output=True, text=True).stdout
    pg = "skipped"
    if not skip_pg:
        with psycopg.connect(PG.replace("postgresql+psycopg", "postgresql")) as conn:
            pg = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    return (f"{platform.platform()}; {found.group(1).strip() if found else 'unknown CPU'}; "
            f"{os.cpu_count()} cores; Python {platform.python_version()}; SQLAlchemy "
            f"{version('sqlalchemy')}; SQLite {sqlite3.sqlite_version}; sqlite3 CLI "
            f"{cli.split()[0] if cli else 'absent'}; PostgreSQL {pg}; psycopg {version('psycopg')}")


def audience_section(rows: list[Row], machine: str, runs: int, count_runs: int) -> str:
    table = markdown_table(TABLE_COLUMNS, rows)
    return (f"## Audience\n\nImport: `import_contacts` of a generated 100,000-line CSV "
            f"(`;`, UTF-8, French names, 20 territories, 8 roles, 50 organizations and 20% "
            f"without one, a `Secteur` attribute column) into a fresh database and a list, "
            f"median of {runs} runs; the floor is the `sqlite3` CLI `.import` of the same file "
            f"into a bare table (whole process). Segment: `--list partenaires "
            f"{' '.join(SEGMENT)}` over 1,000,000 generated contacts (weighted territories "
            f"and roles, 95% active, lists of 40%, 25% and 10%), bulk-loaded; PostgreSQL is "
            f"ANALYZEd after the load, SQLite is not (citesmail never runs ANALYZE). `count` "
            f"is the median of {count_runs} calls after a warm-up; streaming ids (`stream`, "
            f"batches of 1000) the median of {runs} fresh processes that only open the "
            f"database and stream; their peak RSS is VmHWM, whole process (`ru_maxrss` would "
            f"inherit this script's peak through vfork + exec). Rerun with "
            f"`.venv/bin/python benchmarks/audience.py --write-docs`.\n\n"
            f"Machine: {machine}\n\nDate: {datetime.date.today().isoformat()}\n\n"
            + table + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run instead of 3")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite ## Audience in {DOCS}")
    parser.add_argument("--skip-pg", action="store_true", help="SQLite only")
    parser.add_argument("--stream-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_child:
        stream_child(args.stream_child)
        return
    runs, count_runs = (1, 3) if args.quick else (3, 5)
    machine = machine_line(args.skip_pg)
    compile_bytecode()
    print(f"Machine: {machine}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="citesmail-bench-") as tmp:
        rows = import_rows(Path(tmp), runs, args.skip_pg)
    build_sqlite()
    rows += segment_rows("SQLite", f"sqlite:///{CACHE}", count_runs, runs)
    if not args.skip_pg:
        with pg_schema(f"bench_segment_{os.getpid()}") as url:
            build_pg(url)
            rows += segment_rows("PostgreSQL", url, count_runs, runs)
    print(text_table(TABLE_COLUMNS, rows))
    if args.write_docs:
        write_section("Audience", audience_section(rows, machine, runs, count_runs))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
