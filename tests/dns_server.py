"""A real authoritative DNS server for tests: Debian's nsd on 127.0.0.1, serving zones
written into a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import pytest

from citesmail.dnsrecords import txt_line
from tests.smtp_server import free_port

# How long nsd may take to answer its first query on a busy machine, before the test
# gives up (the wait ends as soon as it answers).
START_LIMIT = 60.0


def nsd_path() -> str:
    """nsd's executable; a test needing it fails in CI when it is missing, else skips."""
    found = shutil.which("nsd") or shutil.which("nsd", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nsd is missing (scripts/test.sh installs it: apt-get install nsd)")
        pytest.skip("nsd is missing (apt-get install nsd)")
    return found


def zone(origin: str, records: list[tuple[str, str]]) -> str:
    """A zone file: SOA and NS, then TXT records (`@` is the origin itself), written the
    way citesmail prints records to publish."""
    lines = [f"$ORIGIN {origin}.", "$TTL 300",
             f"@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300",
             f"@ IN NS ns.{origin}.", "ns IN A 127.0.0.1"]
    for name, value in records:
        lines.append(txt_line(origin if name == "@" else f"{name}.{origin}", value))
    return "\n".join(lines) + "\n"


class NameServer:
    """nsd serving `zones` (origin -> zone file text) on 127.0.0.1 at a free port."""

    def __init__(self, folder: Path, zones: dict[str, str]) -> None:
        self.folder = folder
        self.zones = zones
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = folder / "nsd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> NameServer:
        executable = nsd_path()
        self.folder.mkdir(parents=True, exist_ok=True)
        for origin, text in self.zones.items():
            (self.folder / f"{origin}.zone").write_text(text, encoding="ascii")
        conf = self.folder / "nsd.conf"
        conf.write_text(self.config(), encoding="ascii")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([executable, "-d", "-c", str(conf)],
                                            stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def config(self) -> str:
        """nsd.conf (see `man nsd.conf`): everything inside the folder, no user to
        switch to (the tests may run as root), no database, no remote control."""
        folder = self.folder
        server = [
            "server:",
            f"  ip-address: 127.0.0.1@{self.port}",
            '  username: ""',
            '  chroot: ""',
            '  database: ""',
            f'  zonesdir: "{folder}"',
            f'  zonelistfile: "{folder}/zone.list"',
            f'  xfrdfile: "{folder}/xfrd.state"',
            f'  xfrdir: "{folder}"',
            f'  pidfile: "{folder}/nsd.pid"',
            "  server-count: 1",
            "  verbosity: 1",
            "remote-control:",
            "  control-enable: no",
        ]
        for origin in self.zones:
            server += ["zone:", f"  name: {origin}", f"  zonefile: {origin}.zone"]
        return "\n".join(server) + "\n"

    def wait_until_answering(self) -> None:
        """Ask for the first zone's SOA until nsd answers it: every zone is loaded by
        then (nsd reads them all before it serves)."""
        assert self.process is not None
        query = dns.message.make_query(f"{next(iter(self.zones))}.", "SOA")
        deadline = time.monotonic() + START_LIMIT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"nsd stopped ({self.process.returncode}): "
                                     + self.log.read_text(errors="replace"))
            try:
                answer = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
            except (dns.exception.Timeout, OSError):
                answer = None
            if answer is not None and answer.answer:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"nsd did not answer within {START_LIMIT:g} s: "
                                     + self.log.read_text(errors="replace"))

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
