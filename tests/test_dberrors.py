"""Files that cannot be written say so, by name, and a read-only episode breaks nothing
afterwards. Root ignores file modes: the commands run here without that power
(setpriv drops CAP_DAC_OVERRIDE), as a user's would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPLAY, run

CITESMAIL = Path(sys.executable).parent / "citesmail"


def as_a_user(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                           str(CITESMAIL), *args], capture_output=True, text=True, timeout=60)


def with_contacts(workspace: Path) -> Path:
    (workspace / "c.csv").write_text("email\na@example.org\nb@example.org\n")
    assert run("lists", "add", "aura").exit_code == 0
    assert run("contacts", "import", "c.csv", "--list", "aura").exit_code == 0
    assert run("segments", "add", "partenaires-aura", "--list", "aura").exit_code == 0
    return workspace / "citesmail.db"


def test_a_read_only_database_is_named_and_a_later_command_works(workspace: Path) -> None:
    database = with_contacts(workspace)
    database.chmod(0o444)
    assert as_a_user("contacts", "list").returncode == 0  # reading needs no writing
    refused = as_a_user("lists", "add", "other")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"error: {database} is read-only — make it writable (chmod u+w {database}), "
        "then run the command again (a send resumes where it stopped)"]
    # The episode left -wal and -shm files as read-only as the database was.
    assert not (Path(f"{database}-shm").stat().st_mode & 0o200)
    database.chmod(0o644)
    listed = as_a_user("contacts", "list")
    assert listed.returncode == 0, listed.stderr
    added = as_a_user("lists", "add", "other")
    assert added.returncode == 0, added.stderr


def test_a_read_only_folder_is_named(workspace: Path) -> None:
    with_contacts(workspace)
    workspace.chmod(0o555)
    try:
        refused = as_a_user("lists", "add", "other")
    finally:
        workspace.chmod(0o755)
    assert refused.returncode == 1
    assert f"the folder {workspace} holding citesmail.db is read-only" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_outbox_that_cannot_be_written_stops_the_send_naming_it(workspace: Path) -> None:
    with_contacts(workspace)
    outbox = workspace / "outbox"
    for sub in ("tmp", "new", "cur"):
        (outbox / sub).mkdir(parents=True)
    (outbox / "tmp").chmod(0o555)
    try:
        stopped = as_a_user("send", REPLAY, "--yes")
    finally:
        (outbox / "tmp").chmod(0o755)
    assert stopped.returncode == 1
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error")]
    assert errors == [f"error: stopped: cannot write to the outbox {outbox}: Permission "
                      "denied (check its permissions, or [delivery] outbox in config.toml) "
                      "— fix it, then run the same command to resume"], stopped.stderr
    resumed = run("send", REPLAY, "--yes")
    assert resumed.exit_code == 0 and resumed.stdout.strip() == "sent 2", resumed.output
