"""The README's walkthrough ("Walkthrough: announcing a replay"), run as a user runs it.

The ```sh blocks of that section are read from README.md, so a change of the README
changes what runs. Each command line runs with bash in a fresh folder, as in a terminal
where the environment was activated: the venv's bin first on PATH, HOME a folder of its
own, no CITESMAIL_* variable but the one the README tells the user to export, and no
network but 127.0.0.1 (in a network namespace of its own, where the machine allows one).
`cd` and `export` carry over from one line to the next, as they do in a terminal.

What the README shows a user seeing is checked against what the commands print: an
untagged ``` block after a ```sh block is the output of that block's last command
("…" stands for what differs from one run to the next), and a command whose output shows
an `error:` exits 1. What the prose (not a command) tells the user to do, or says a command
wrote, is done or checked by the actions in PROSE, each at the sentence it quotes, in the
order of the README.
"""

from __future__ import annotations

import email
import functools
import os
import queue
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

from tests.conftest import ROOT

SECTION = "## Walkthrough: announcing a replay"
BIN = Path(sys.executable).parent  # the venv's bin, where `citesmail` is
# A bound for one command, so that a hang fails the test instead of blocking it; commands
# take a second or two, the worker a few to start on a busy machine.
BOUND = 120.0
# How long the worker may take to log what the README shows (it starts in seconds).
WORKER_BOUND = 60.0
ERROR_LINE = re.compile(r"\berror: ")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# "On a terminal it first asks your organisation's name, its postal address (in every
# footer), the From of the emails and the public https address of `citesmail serve` [...];
# press Enter to keep the examples, as this walkthrough does" (README, step 1).
INIT_QUESTIONS = {"Organisation: ": "", "Postal address: ": "",
                  'From ("Name <address>"): ': "", "Public https address: ": ""}


# -- the README, read ---------------------------------------------------------------------


@dataclass
class Commands:
    """A ```sh block: its command lines, and the output the README shows after it."""

    lines: list[str]
    shown: list[str] | None = None


@dataclass
class Step:
    number: int
    title: str
    text: str
    items: list[tuple[int, Commands | Prose]] = field(default_factory=list)


def walkthrough() -> list[Step]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(SECTION) == 1, f"README.md has no section {SECTION!r}"
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    heads = list(re.finditer(r"^\*\*(\d+)\. ([^*]+)\*\*", section, re.MULTILINE))
    assert [int(head[1]) for head in heads] == list(range(1, len(heads) + 1)) and heads
    steps = []
    for head, following in zip(heads, [*heads[1:], None], strict=True):
        text = section[head.start():following.start() if following else len(section)]
        steps.append(Step(int(head[1]), head[2].strip(), text))
    for step in steps:
        current: Commands | None = None
        for block in re.finditer(r"^```(\w*)\n(.*?)^```$", step.text,
                                 re.MULTILINE | re.DOTALL):
            if block[1] == "sh":
                current = Commands(command_lines(block[2]))
                step.items.append((block.start(), current))
            else:
                assert block[1] == "" and current is not None and current.shown is None, (
                    f"step {step.number}: an output block without the commands it shows")
                current.shown = block[2].splitlines()
    for prose in PROSE:
        [step] = [step for step in steps if step.number == prose.step]
        found = list(re.finditer(r"\s+".join(map(re.escape, prose.sentence.split())),
                                 step.text))
        assert len(found) == 1, (f"step {step.number} of the README no longer says "
                                 f"{prose.sentence!r}: update PROSE in {__file__}")
        step.items.append((found[0].start(), prose))
    for step in steps:
        step.items.sort(key=lambda item: item[0])
    return steps


def command_lines(block: str) -> list[str]:
    """The block's commands, a line ending in a backslash joined to the next."""
    lines: list[str] = []
    pending = ""
    for line in block.splitlines():
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line, pending = pending + line, ""
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line)
    assert not pending
    return lines


def backticked(sentence: str) -> list[str]:
    return re.findall(r"`([^`]+)`", sentence)


# -- a terminal, as a user has one -------------------------------------------------------


@functools.cache
def network_jail() -> tuple[list[str], str]:
    """A command prefix and a script prologue that leave only 127.0.0.1 to the commands:
    a network namespace of their own with its loopback up. Where the machine allows no
    namespace, the commands run without (they talk to no server: the transport is the
    outbox folder)."""
    prefix = ["unshare", "--net", "--map-root-user"]
    prologue = "ip link set lo up\n"
    try:
        probe = subprocess.run([*prefix, "bash", "-c", prologue], capture_output=True,
                               timeout=BOUND)
    except (OSError, subprocess.TimeoutExpired):
        return [], ""
    return (prefix, prologue) if probe.returncode == 0 else ([], "")


def clean(output: str) -> list[str]:
    """Output lines as a terminal leaves them: a line redrawn after a carriage return
    shows its last drawing; colours and cursor moves are dropped."""
    return [ANSI.sub("", line.split("\r")[-1]).rstrip()
            for line in output.replace("\r\n", "\n").split("\n")]


@dataclass
class Session:
    """A terminal: a folder, the environment, where the user is (cd carries over)."""

    root: Path
    env: dict[str, str]
    cwd: Path
    campaign: Path | None = None  # the campaign file `new` wrote, relative to cwd
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (line, output)

    @classmethod
    def fresh(cls, root: Path) -> Session:
        (root / "home").mkdir(parents=True)
        (root / "work").mkdir()
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("CITESMAIL_")}
        env.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                   HOME=str(root / "home"), VIRTUAL_ENV=str(BIN.parent))
        return cls(root, env, root / "work")

    def fork(self, root: Path) -> Session:
        """The same terminal on a copy of its folder (a copy of the workspace and home)."""
        shutil.copytree(self.root, root, symlinks=True)
        env = {name: value.replace(str(self.root), str(root))
               for name, value in self.env.items()}
        return Session(root, env, root / self.cwd.relative_to(self.root), self.campaign)

    def script(self, line: str, *, keep: bool = True) -> list[str]:
        prefix, prologue = network_jail()
        text = f"{prologue}cd -- {shlex.quote(str(self.cwd))} || exit 99\n{line}\n"
        if keep:  # where the line left the user, and what it exported
            state = shlex.quote(str(self.root / ".state"))
            text += (f"status=$?\npwd > {state}.cwd\nenv -0 > {state}.env\n"
                     "exit $status\n")
        return [*prefix, "bash", "-c", text]

    def keep_state(self) -> None:
        state = self.root / ".state"
        self.cwd = Path(Path(f"{state}.cwd").read_text(encoding="utf-8").rstrip("\n"))
        pairs = Path(f"{state}.env").read_bytes().decode().split("\0")
        self.env = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        for name in ("PWD", "OLDPWD", "SHLVL", "_"):
            self.env.pop(name, None)

    def run(self, line: str, status: int = 0) -> str:
        done = subprocess.run(self.script(line), env=self.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=BOUND)
        assert done.returncode == status, (
            f"$ {line}\nexited {done.returncode}, not {status}:\n{done.stdout}")
        self.keep_state()
        self.outputs.append((line, done.stdout))
        return done.stdout

    def run_answering(self, line: str, answers: dict[str, str]) -> str:
        """Run LINE on a pseudo-terminal, as in a terminal; type the answer to each question
        of ANSWERS when it is asked (every one must be)."""
        leader, follower = os.openpty()
        process = subprocess.Popen(self.script(line), env=self.env, stdin=follower,
                                   stdout=follower, stderr=follower, start_new_session=True)
        os.close(follower)
        seen, answered, waiting = b"", 0, list(answers.items())
        deadline = time.monotonic() + BOUND
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([leader], [], [], deadline - time.monotonic())
                if not ready:
                    break
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: every writer is gone
                    break
                if not chunk:
                    break
                seen += chunk
                # Each question once, in order: the next one is looked for after the last.
                while waiting and (at := seen.find(waiting[0][0].encode(), answered)) >= 0:
                    question, answer = waiting.pop(0)
                    os.write(leader, answer.encode() + b"\n")
                    answered = at + len(question.encode())
            try:
                status: int | None = process.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                status = None
        finally:
            os.close(leader)
            if process.poll() is None:
                process.kill()
                process.wait()
        output = seen.decode(errors="replace")
        assert status is not None, f"$ {line}\ndid not end in {BOUND:.0f} s:\n{output}"
        assert not waiting, f"$ {line}\nnever asked {waiting[0][0]!r}:\n{output}"
        assert status == 0, f"$ {line}\nexited {status}:\n{output}"
        self.keep_state()
        self.outputs.append((line, output))
        return output

    def run_until_shown(self, line: str, shown: list[str]) -> str:
        """Start a long-running LINE, wait until it has printed every line of SHOWN, then
        stop it with SIGTERM, as a service manager does; it must exit 0."""
        process = subprocess.Popen(self.script(f"exec {line}", keep=False), env=self.env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for got in process.stdout:
                lines.put(got)
            lines.put(None)  # the end of the output

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        printed: list[str] = []
        deadline = time.monotonic() + WORKER_BOUND
        try:
            wanted = [pattern(text) for text in shown]
            while wanted:
                try:
                    got = lines.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    got = None
                assert got is not None, (f"$ {line}\ndid not print {shown[-len(wanted)]!r}"
                                         f" (in {WORKER_BOUND:.0f} s):\n{''.join(printed)}")
                printed.append(got)
                if wanted[0].fullmatch(got.rstrip()):
                    wanted.pop(0)
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=BOUND)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(timeout=BOUND)
        process.stdout.close()
        while (rest := lines.get()) is not None:
            printed.append(rest)
        output = "".join(printed)
        assert status == 0, f"$ {line}\nexited {status} on SIGTERM:\n{output}"
        assert "worker stopped" in output, output
        self.outputs.append((line, output))
        return output


def pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*".join(map(re.escape, shown.split("…"))))


def assert_shown(shown: list[str], line: str, output: str) -> None:
    """The lines the README shows are printed, in that order."""
    printed = iter(clean(output))
    for wanted in shown:
        assert any(pattern(wanted).fullmatch(got) for got in printed), (
            f"the README shows {wanted!r} after `{line}`, which printed:\n{output}")


def run_block(session: Session, block: Commands) -> None:
    for index, line in enumerate(block.lines):
        last = index == len(block.lines) - 1
        shown = block.shown if last else None
        argv = shlex.split(line, comments=True)
        if argv[:2] == ["citesmail", "preview"]:
            # Skipped: it serves a page until Ctrl-C (tests/web/ run it in a browser).
            continue
        if argv[:2] == ["citesmail", "worker"]:
            # It runs until stopped: the README's output after it says what to wait for.
            assert shown, "the README shows no worker output to wait for"
            assert any(": scheduled for " in text for text in shown), shown
            session.run_until_shown(line, shown)
            continue
        if argv[:2] == ["citesmail", "send"] and not {"--yes", "--dry-run", "--test"} & {
                *argv}:
            # "The last one asks first (`--yes` does not; without a terminal, as in a
            # script, it refuses)": on a terminal, answer yes.
            output = session.run_answering(line, {"? [y/N]: ": "y"})
        elif argv[:2] == ["citesmail", "init"]:
            output = session.run_answering(line, INIT_QUESTIONS)
        else:
            # "Errors are one line and exit 1" (README, Commands).
            failing = shown is not None and any(ERROR_LINE.search(text) for text in shown)
            output = session.run(line, status=1 if failing else 0)
        if shown is not None:
            assert_shown(shown, line, output)


# -- what the prose says ------------------------------------------------------------------


@dataclass(frozen=True)
class Prose:
    """A sentence of a step (quoted; line breaks may differ) and what it has the user do,
    or says a command did."""

    step: int
    sentence: str
    act: Callable[[Session, str], None]


def campaign_written(session: Session, sentence: str) -> None:
    [path] = [text for text in backticked(sentence) if text.startswith("campaigns/")]
    assert (session.cwd / path).is_file(), f"{path} was not written"
    session.campaign = Path(path)


def edit_campaign(session: Session, old: str, new: str) -> None:
    assert session.campaign is not None
    path = session.cwd / session.campaign
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path.name} has not one {old!r}:\n{text}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def fill_in_video_url(session: Session, sentence: str) -> None:
    key = backticked(sentence)[0]
    assert key == "video_url"
    edit_campaign(session, f'\n{key} = ""\n', f'\n{key} = "https://example.org/replay"\n')


def rendered_files(session: Session, sentence: str) -> None:
    assert session.campaign is not None
    slug = session.campaign.stem
    for name in backticked(sentence):
        assert (session.cwd / name.replace("<slug>", slug)).is_file(), name
    # The last render was `--as "Zoé Durand <zoe@exemple.fr>"`: the .eml is addressed so.
    line = session.outputs[-1][0]
    recipient = shlex.split(line)[shlex.split(line).index("--as") + 1]
    eml = (session.cwd / "out" / f"{slug}.eml").read_bytes()
    message = email.message_from_bytes(eml, policy=policy.default)
    assert message["To"] == recipient
    headers = re.search(r"headers included \(([^)]*)\)", " ".join(sentence.split()))
    assert headers is not None
    for header in headers[1].split(", "):
        assert message[header], header


def export_secret(session: Session, sentence: str) -> None:
    [command] = [text for text in backticked(sentence) if text.startswith("export ")]
    session.run(command)
    assert len(session.env["CITESMAIL_SECRET"]) >= 32


def name_the_audience(session: Session, sentence: str) -> None:
    old, new = backticked(sentence)
    edit_campaign(session, old, new)


def messages_in_outbox(session: Session, sentence: str) -> None:
    outbox = session.cwd / backticked(sentence)[0]
    recipients = []
    for file in sorted(outbox.iterdir()):
        message = email.message_from_bytes(file.read_bytes(), policy=policy.default)
        recipients.append(message["To"].addresses[0].addr_spec)
    test_address = re.search(r"the test message to (\S+),", " ".join(sentence.split()))
    assert test_address is not None
    exported = (session.cwd / "prefets.csv").read_text(encoding="utf-8-sig").splitlines()
    segment = [row.split(";")[0] for row in exported[1:]]  # step 5's export of the segment
    assert len(segment) == int(re.findall(r"(\d+) contacts", sentence)[0])
    assert sorted(recipients) == sorted([test_address[1], *segment]), recipients
    # Sent with the secret step 4 exported, not the development key.
    sends = [output for line, output in session.outputs if line.startswith("citesmail send")]
    assert sends and not any("development key" in output for output in sends), sends


def dkim_keys_written(session: Session, sentence: str) -> None:
    for name in backticked(sentence):
        assert "PRIVATE KEY-----" in (session.cwd / name).read_text(encoding="ascii"), name
    printed = [output for line, output in session.outputs if "dkim keygen" in line]
    assert len(printed) == 2 and all('IN TXT "v=DKIM1; k=' in text for text in printed)


PROSE = (
    Prose(2, "writes `campaigns/2023-06-12-replay-les-cites-de-l-emploi.md`, with every key "
             "present", campaign_written),
    Prose(3, "Fill in `video_url` with the address of the recording", fill_in_video_url),
    Prose(4, "writes `out/<slug>.html`, `out/<slug>.txt` and `out/<slug>.eml`: the complete "
             "message that recipient would receive, headers included (From, To, Subject, "
             "List-Id, Feedback-ID, Message-ID, List-Unsubscribe, List-Unsubscribe-Post)",
          rendered_files),
    Prose(4, 'Make a real one with `export CITESMAIL_SECRET="$(citesmail secret)"` and keep '
             "it", export_secret),
    Prose(5, 'Name it in the campaign: in its front matter, replace the comment `# audience = '
             '"SEGMENT"` by `audience = "prefets-lyon-grenoble"`', name_the_audience),
    Prose(6, "The messages are files in `outbox/new/` (a Maildir: open them with any mail "
             "client), one for each address: the test message to moi@example.org, then one "
             "to each of the segment's 2 contacts.", messages_in_outbox),
    Prose(7, "writes `keys/citesmail.example.org.pem` (and "
             "`keys/citesmail-ed.example.org.pem`) and prints the TXT record to publish",
             dkim_keys_written),
)


# -- the walkthrough ----------------------------------------------------------------------


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    steps = walkthrough()
    session = Session.fresh(tmp_path / "terminal")
    before: dict[int, Session] = {}
    for step in steps:
        if step.title.startswith("Or "):
            # "7. Or schedule it. Instead of step 6's send, ...": the other way from where
            # the previous step started, in a copy of the workspace as it was then.
            session = before[step.number - 1]
        elif any(later.number == step.number + 1 and later.title.startswith("Or ")
                 for later in steps):
            before[step.number] = session.fork(tmp_path / f"before-step-{step.number}")
        for _, item in step.items:
            if isinstance(item, Commands):
                run_block(session, item)
            else:
                item.act(session, item.sentence)


def test_every_sh_block_of_the_walkthrough_is_run() -> None:
    """What the walkthrough test relies on: a README that changes it fails here first."""
    steps = walkthrough()
    lines = [line for step in steps for _, item in step.items
             if isinstance(item, Commands) for line in item.lines]
    assert lines[0] == "citesmail init centre && cd centre"
    assert sum(line.startswith("citesmail worker") for line in lines) == 1
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    assert section.count("```sh") == sum(
        isinstance(item, Commands) for step in steps for _, item in step.items)
