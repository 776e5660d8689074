"""A real network cut between one process and PostgreSQL on 127.0.0.1:5432.

iptables (Debian's, nft backend) drops every packet of the process's connections to the
server, both ways and silently (DROP: a cut answers nothing), and its new connections for
as long as the cut lasts. The process starts in a cgroup (v2) of its own, so that a rule
matches whatever socket it opens; the packets the server sends back are matched by the
process's local ports, read from /proc when the cut starts. Loopback only: every packet,
either way, goes through OUTPUT. The rules sit in a chain of their own, hooked into
OUTPUT while it exists; nothing else of the firewall is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

SERVER = "127.0.0.1"
PORT = 5432


class CutUnavailable(Exception):
    """iptables or cgroup v2 cannot be used here (not root, not installed, no cgroup2)."""


def iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)


def _must(*args: str) -> None:
    done = iptables(*args)
    if done.returncode != 0:
        raise CutUnavailable(f"iptables {' '.join(args)}: {done.stderr.strip()}")


def cgroup2_root() -> Path:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified when the
    machine mixes v1 and v2)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    raise CutUnavailable("no cgroup2 hierarchy is mounted")


def own_cgroup() -> str:
    """This process's cgroup v2, as a path from the hierarchy's root ('/' at the top)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise CutUnavailable("this process is in no cgroup v2")


def server_ports(pid: int) -> set[int]:
    """The local ports of the process's TCP connections to the server, in any state
    (one still opening included)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in sockets and int(remote.rsplit(":", 1)[1], 16) == PORT:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


class NetworkCut:
    """Cuts the processes started with `command` from PostgreSQL, and restores them.
    `close()` removes the chain and the cgroup, whatever happened."""

    def __init__(self) -> None:
        if shutil.which("iptables") is None:
            raise CutUnavailable("iptables is not installed (Debian package iptables)")
        tag = uuid.uuid4().hex[:8]
        self.chain = f"citesmail-cut-{tag}"
        root = cgroup2_root()
        self.cgroup = f"{own_cgroup().rstrip('/')}/citesmail-cut-{tag}"
        self.directory = root / self.cgroup.lstrip("/")
        self.chain_made = False
        try:
            self.directory.mkdir()
        except OSError as exc:
            raise CutUnavailable(f"cannot make the cgroup {self.directory}: {exc}") from None
        try:
            _must("-N", self.chain)
            self.chain_made = True
            _must(*self._new_connections())  # the cgroup match works here: tried now,
            _must("-F", self.chain)  # before anything depends on it
            _must("-I", "OUTPUT", "1", "-j", self.chain)
        except CutUnavailable:
            self.close()
            raise
        self.ports: set[int] = set()  # the cut process's, when the cut began
        self.cut_at = 0.0  # then (time.time())

    def _new_connections(self) -> list[str]:
        """The rule that drops what the cgroup's processes send to the server."""
        return ["-A", self.chain, "-p", "tcp", "-d", SERVER, "--dport", str(PORT),
                "-m", "cgroup", "--path", self.cgroup, "-j", "DROP"]

    def command(self, argv: list[str]) -> list[str]:
        """`argv` started inside the cut's cgroup (it joins it, then execs)."""
        procs = self.directory / "cgroup.procs"
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(procs), *argv]

    def cut(self, pid: int) -> set[int]:
        """Cut now; returns the local ports of the process's connections at the cut."""
        self.cut_at = time.time()
        _must(*self._new_connections())
        self.ports = server_ports(pid)  # after the rule: none can open unseen
        for port in sorted(self.ports):
            _must("-A", self.chain, "-p", "tcp", "-s", SERVER, "--sport", str(PORT),
                  "--dport", str(port), "-j", "DROP")
        return self.ports

    def restore(self) -> None:
        _must("-F", self.chain)

    def dropped(self) -> int:
        """Packets dropped so far (the counters of the chain's rules)."""
        listed = iptables("-L", self.chain, "-n", "-v", "-x")
        return sum(int(line.split()[0]) for line in listed.stdout.splitlines()[2:] if line)

    def close(self) -> None:
        if self.chain_made:
            iptables("-D", "OUTPUT", "-j", self.chain)
            iptables("-F", self.chain)
            iptables("-X", self.chain)
            self.chain_made = False
        if self.directory.exists():
            self._empty_cgroup()
            self.directory.rmdir()

    def _empty_cgroup(self) -> None:
        """Kill what is left in the cut's cgroup (only processes `command` started can
        be there), and wait until the kernel says it is empty."""
        for pid in (self.directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "populated 1" in (self.directory / "cgroup.events").read_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes left in {self.directory}")
            time.sleep(0.05)
