"""Scale benchmark: `citesmail send` of 20,000 recipients against Postfix's `smtp-sink`, with
Postfix's own load generator `smtp-source` to the same sink as the reference.

In one run, alternating round by round: smtp-source (same message size, same number of
connections, each connection reused), `citesmail send` in one process (SQLite), the same
on PostgreSQL, and two processes on PostgreSQL (`send --join`, when the command has it).
Each citesmail row is a fresh copy of the campaign (a new send of every recipient).
Reported: messages per second over the whole command, CPU (user + sys) per message of
the sending processes, and the ratio to smtp-source. Medians over the rounds.

Needs Debian's `postfix` package for smtp-sink and smtp-source: installed here when
missing and run as root (no Postfix daemon is left running; only those two programs are
used, on 127.0.0.1 and a free port).

Run from the repository root:
    .venv/bin/python benchmarks/scale.py [--quick] [--rounds N] [--skip-pg] [--write-docs]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from audience import pg_schema
from citesmail.message import MessageTemplate
from delivery import CAMPAIGN, CITESMAIL, NAME, clean_env, load, machine_line, people, workspace
from report import DOCS, compile_bytecode, markdown_table, text_table, write_section

SINK, SOURCE = Path("/usr/sbin/smtp-sink"), Path("/usr/sbin/smtp-source")
CONNECTIONS = 4
ONE_TARGET, TWO_TARGET = 0.6, 0.8  # of smtp-source's rate
CPU_TARGET = 250.0  # µs of CPU per message, one process (issue 19)
WAIT = 600.0  # seconds: a run that takes longer is a failure, not a figure

Row = tuple[str, str, str, str, str]
HEADER: Row = ("sender", "msg/s (whole command)", "CPU per message", "ratio to smtp-source",
               "target")


def ensure_postfix() -> str:
    """smtp-sink and smtp-source, from Debian's postfix package (installed when missing
    and run as root); any Postfix daemon the package started is stopped."""
    if not (SINK.exists() and SOURCE.exists()):
        if os.geteuid() != 0:
            raise SystemExit("smtp-sink and smtp-source are missing: run "
                             "'sudo apt-get install postfix' (choose 'No configuration')")
        print("installing Debian's postfix package for smtp-sink and smtp-source", flush=True)
        subprocess.run(["debconf-set-selections"], check=True, text=True,
                       input="postfix postfix/main_mailer_type select No configuration\n")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postfix"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    if subprocess.run(["pgrep", "-x", "master"], capture_output=True).returncode == 0:
        print("stopping the Postfix daemon the package started", flush=True)
        subprocess.run(["postfix", "stop"], capture_output=True)
    found = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "postfix"],
                           capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Sink:
    """smtp-sink on 127.0.0.1, its running counter (`-c`) read as it prints it."""

    port: int
    count: int = 0
    times: list[float] = field(default_factory=list)  # monotonic time of each count seen
    changed: threading.Condition = field(default_factory=threading.Condition)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [str(SINK), *user, "-c", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # listening once a connection is taken
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("smtp-sink did not start") from None
                time.sleep(0.05)
        raise RuntimeError("smtp-sink is not listening")

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        pending = b""
        while chunk := self.process.stdout.read1(4096):
            pending += chunk
            *done, pending = re.split(rb"[\r\n]", pending)
            found = [int(m.group(1)) for line in done
                     if (m := re.search(rb"mesg=(\d+)", line))]
            if found:
                with self.changed:
                    now = time.monotonic()
                    self.times += [now] * (found[-1] - self.count)
                    self.count = found[-1]
                    self.changed.notify_all()

    def take(self, expected: int) -> tuple[float, float]:
        """Wait until `expected` more messages are counted; the times of the first and
        the last of them."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.times) >= expected, WAIT):
                raise RuntimeError(f"smtp-sink counted {len(self.times)} of {expected}")
            if len(self.times) != expected:
                raise RuntimeError(f"smtp-sink counted {len(self.times)}, {expected} expected")
            first, last = self.times[0], self.times[-1]
            self.times.clear()
        return first, last

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class Timed:
    seconds: float
    cpu: float  # user + sys of the child processes


def timed(run: Callable[[], None]) -> Timed:
    """Wall time, and the CPU of the children that `run` started and reaped."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(seconds, cpu)


def smtp_source(port: int, n: int, size: int) -> Callable[[], None]:
    def run() -> None:
        subprocess.run([str(SOURCE), "-d", "-s", str(CONNECTIONS), "-m", str(n), "-l",
                        str(size), "-f", "annonces@example.org", "-t", "x@example.org",
                        f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
    return run


def has_join() -> bool:
    found = subprocess.run([str(CITESMAIL), "send", "--help"], capture_output=True, text=True)
    return "--join" in found.stdout


def citesmail_send(ws: Path, env: dict[str, str], slug: str, n: int, sink: Sink,
                   processes: int) -> Callable[[], None]:
    """`citesmail send` of a new copy of the campaign. With several processes each is a
    `send --join` (a plain send holds the send alone); the first one starts the send, the
    others join once its first message has been counted."""
    shutil.copy(ws / CAMPAIGN, ws / "campaigns" / f"{slug}.md")
    command = [str(CITESMAIL), "send", slug, "--yes", *(["--join"] if processes > 1 else [])]

    def run() -> None:
        first = subprocess.Popen(command, cwd=ws, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        others = []
        if processes > 1:
            with sink.changed:
                sink.changed.wait_for(lambda: len(sink.times) > 0 or first.poll() is not None,
                                      WAIT)
            others = [subprocess.Popen(command, cwd=ws, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
                      for _ in range(processes - 1)]
        for process in [first, *others]:
            out, err = process.communicate(timeout=WAIT)
            if process.returncode != 0:
                raise RuntimeError(f"citesmail send {slug}: {err.strip()[-500:]}")
            print(f"  {slug} (process {process.pid}): {out.strip()}", flush=True)
    return run


@contextmanager
def workspaces(root: Path, n: int, skip_pg: bool) -> Iterator[dict[str, Path]]:
    """A `citesmail init` workspace of n recipients on SQLite, and one on PostgreSQL."""
    recipients = people(n, seed=17)
    (root / "sqlite").mkdir()
    found = {"sqlite": workspace(root / "sqlite", recipients)}
    if skip_pg:
        yield found
        return
    with pg_schema(f"bench_scale_{os.getpid()}") as url:
        (root / "pg").mkdir()
        os.environ["CITESMAIL_DATABASE_URL"] = url  # the imports' `citesmail` commands
        try:
            found["pg"] = workspace(root / "pg", recipients)
        finally:
            del os.environ["CITESMAIL_DATABASE_URL"]
        (found["pg"] / ".url").write_text(url)
        yield found


@dataclass
class Series:
    label: str
    runs: list[Timed] = field(default_factory=list)
    steady: list[float] = field(default_factory=list)  # first to last message, msg/s


def measure(n: int, rounds: int, skip_pg: bool, size: int) -> tuple[list[Series], bool]:
    join = has_join()
    sink = Sink(free_port())
    sink.start()
    series = {"source": Series(f"smtp-source, {CONNECTIONS} connections"),
              "one": Series("citesmail send, 1 process, SQLite"),
              "one-pg": Series("citesmail send, 1 process, PostgreSQL"),
              "two-pg": Series("citesmail send, 2 processes, PostgreSQL")}
    try:
        with tempfile.TemporaryDirectory(prefix="citesmail-scale-") as tmp, \
                workspaces(Path(tmp), n, skip_pg) as ws:
            base = clean_env(CITESMAIL_DELIVERY_TRANSPORT="smtp",
                             CITESMAIL_SMTP_HOST="127.0.0.1", CITESMAIL_SMTP_PORT=str(sink.port),
                             CITESMAIL_SMTP_SECURITY="none",
                             CITESMAIL_DELIVERY_CONNECTIONS=str(CONNECTIONS))
            plans: list[tuple[str, Callable[[int], Callable[[], None]]]] = [
                ("source", lambda r: smtp_source(sink.port, n, size)),
                ("one", lambda r: citesmail_send(ws["sqlite"], base, f"{NAME}-s{r}", n,
                                                 sink, 1))]
            if not skip_pg:
                pg_env = {**base, "CITESMAIL_DATABASE_URL": (ws["pg"] / ".url").read_text()}
                plans.append(("one-pg", lambda r: citesmail_send(
                    ws["pg"], pg_env, f"{NAME}-p{r}", n, sink, 1)))
                if join:
                    plans.append(("two-pg", lambda r: citesmail_send(
                        ws["pg"], pg_env, f"{NAME}-j{r}", n, sink, 2)))
            for round_ in range(rounds):
                for key, plan in plans:
                    result = timed(plan(round_))
                    first, last = sink.take(n)
                    series[key].runs.append(result)
                    series[key].steady.append((n - 1) / max(last - first, 1e-9))
                    print(f"round {round_ + 1}, {series[key].label}: {n / result.seconds:.0f} "
                          f"msg/s, CPU {result.cpu / n * 1e6:.0f} µs/message", flush=True)
    finally:
        sink.stop()
    return list(series.values()), join


def rows(found: list[Series], n: int, join: bool, skip_pg: bool) -> list[Row]:
    """One row per sender: medians over the rounds, against smtp-source's median rate."""
    reference = n / statistics.median(r.seconds for r in found[0].runs)
    table: list[Row] = []
    targets = ((None, None), (ONE_TARGET, CPU_TARGET), (None, CPU_TARGET), (TWO_TARGET, None))
    for s, (target, cpu_target) in zip(found, targets, strict=True):
        wanted = "; ".join(([f"≥ {target:.1f} of smtp-source"] if target else [])
                           + ([f"≤ {cpu_target:.0f} µs"] if cpu_target else [])) or "—"
        if not s.runs:
            why = "skipped (--skip-pg)" if skip_pg else \
                "not available (no `send --join`)" if not join else "not run"
            table.append((s.label, why, "—", "—", wanted))
            continue
        per_second = n / statistics.median(r.seconds for r in s.runs)
        spread = f"{n / max(r.seconds for r in s.runs):.0f}–" \
                 f"{n / min(r.seconds for r in s.runs):.0f}"
        cpu = statistics.median(r.cpu for r in s.runs) / n * 1e6
        ratio = per_second / reference
        missed = ([f"UNDER {target:.1f}"] if target and ratio < target else []) \
            + ([f"OVER {cpu_target:.0f} µs"] if cpu_target and cpu > cpu_target else [])
        verdict = wanted if target is None and cpu_target is None else \
            f"{wanted}: {', '.join(missed) or 'within target'}"
        table.append((s.label, f"{per_second:.0f} ({spread}; steady "
                      f"{statistics.median(s.steady):.0f})", f"{cpu:.0f} µs",
                      f"{ratio:.2f}", verdict))
    return table


def message_size() -> int:
    rendered, settings = load()
    return len(MessageTemplate(rendered, settings).build(people(1)[0]))


def section(table: list[Row], machine: str, n: int, rounds: int, size: int,
            postfix: str) -> str:
    today = datetime.date.today().isoformat()
    return (f"## Scale\n\n`citesmail send --yes` of `{CAMPAIGN}` ({size / 1024:.0f} KB per "
            f"message) to {n:,} contacts (imported with the CLI into a `citesmail init` "
            f"workspace), through {CONNECTIONS} connections, into Postfix's `smtp-sink` on "
            f"127.0.0.1; the reference is Postfix's load generator `smtp-source` with the "
            f"same message size and {CONNECTIONS} connections, each reused (`-d`), to the "
            f"same sink. The senders alternate round by round ({rounds} rounds; each "
            f"citesmail send a fresh copy of the campaign); msg/s is the whole command "
            f"(start-up and the snapshot of the recipients included), median and range, "
            f"and 'steady' from the first to the last message the sink counted; CPU is "
            f"user + sys of the sending processes (getrusage of the children), median, per "
            f"message. Two processes: `citesmail send --join`, and a second one started once "
            f"the sink has counted the first message. Targets: one process at least "
            f"{ONE_TARGET} of smtp-source's rate and at most {CPU_TARGET:.0f} µs of CPU per "
            f"message (issue 19), two processes at least {TWO_TARGET} of it. Rerun with "
            f"`.venv/bin/python benchmarks/scale.py --write-docs`.\n\n"
            f"Machine: {machine}; postfix {postfix}\n\nDate: {today} (load average at "
            f"the end {os.getloadavg()[0]:.2f})\n\n{markdown_table(HEADER, table)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 recipients, 1 round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-pg", action="store_true", help="SQLite only")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"rewrite ## Scale in {DOCS}")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    rounds = 1 if args.quick else args.rounds
    postfix = ensure_postfix()
    machine = machine_line()
    compile_bytecode()
    size = message_size()
    print(f"Machine: {machine}; postfix {postfix}; message {size} bytes\n", flush=True)
    found, join = measure(n, rounds, args.skip_pg, size)
    table = rows(found, n, join, args.skip_pg)
    print(text_table(HEADER, table))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    if args.write_docs:
        write_section("Scale", section(table, machine, n, rounds, size, postfix))
        print(f"\nwrote {DOCS}")


if __name__ == "__main__":
    main()
