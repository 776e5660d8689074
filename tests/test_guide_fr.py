"""The French guide (docs/guide.fr.md), run as a user runs it, from install to a
scheduled send.

Its ```sh blocks are read from the guide and run in order, line by line, in a fresh
folder, with the machinery of tests/test_readme.py (the same terminal, the same checks of
what an untagged ``` block after a ```sh block shows). The guide starts where the README's
Quick start does: `bash scripts/demo.sh` is not run here (it installs, which the test
suite's environment already did), and `. .venv/bin/activate` activates the environment
this test runs in. What the prose has the user do (fill in the video link, name the
audience) is done by the actions in PROSE, each at the sentence it quotes.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.test_readme import (
    INIT_QUESTIONS,
    Commands,
    Prose,
    Session,
    backticked,
    campaign_written,
    command_lines,
    edit_campaign,
    run_block,
)

GUIDE = ROOT / "docs" / "guide.fr.md"
QUICK_START = "bash scripts/demo.sh"
ACTIVATE = ". .venv/bin/activate"


def replace_in_campaign(session: Session, sentence: str) -> None:
    """"Remplacez `OLD` par `NEW`": the user's edit of the campaign file."""
    old, new = backticked(sentence)
    edit_campaign(session, old, new)


PROSE = (
    Prose(0, "La commande crée le fichier "
             "`campaigns/2026-11-19-replay-les-cites-educatives.md`.", campaign_written),
    Prose(0, 'Remplacez `video_url = ""` par '
             '`video_url = "https://videos.centre-ressources.fr/cites-educatives"`',
          replace_in_campaign),
    Prose(0, 'remplacez `# audience = "SEGMENT"` par `audience = "delegues-prefet"`',
          replace_in_campaign),
)


def guide() -> list[Commands | Prose]:
    """The guide's ```sh blocks (each with the output shown after it) and PROSE, in the
    guide's order."""
    text = GUIDE.read_text(encoding="utf-8")
    items: list[tuple[int, Commands | Prose]] = []
    current: Commands | None = None
    for block in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        if block[1] == "sh":
            current = Commands(command_lines(block[2]))
            items.append((block.start(), current))
        else:
            assert block[1] == "" and current is not None and current.shown is None, (
                "an output block without the commands it shows")
            current.shown = block[2].splitlines()
    for prose in PROSE:
        found = list(re.finditer(r"\s+".join(map(re.escape, prose.sentence.split())), text))
        assert len(found) == 1, (f"the guide no longer says {prose.sentence!r}: update "
                                 f"PROSE in {__file__}")
        items.append((found[0].start(), prose))
    return [item for _, item in sorted(items, key=lambda pair: pair[0])]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line for block in re.findall(r"^```sh\n(.*?)^```$", quick_start,
                                         re.MULTILINE | re.DOTALL)
            for line in command_lines(block)]


def run_line(session: Session, line: str, shown: list[str] | None) -> None:
    argv = shlex.split(line, comments=True)
    if line == QUICK_START:
        # Not run: it installs citesmail into .venv (minutes), which the environment of
        # this test already is. It is the README's Quick start, as the guide says.
        assert QUICK_START in quick_start_commands()
        assert shown is None
        return
    if line == ACTIVATE:
        # The guide's .venv is the environment this test runs in.
        activate = Path(sys.prefix) / "bin" / "activate"
        assert activate.is_file(), activate
        session.run(f". {shlex.quote(str(activate))}")
        return
    if argv[:2] == ["citesmail", "init"]:
        # Every value given on the command line: init asks nothing, even on a terminal.
        output = session.run_answering(line, {})
        assert not any(question in output for question in INIT_QUESTIONS), output
        assert shown is None
        return
    if argv[:3] == ["citesmail", "worker", "--systemd"]:
        # It prints the unit and exits (test_readme's run_block waits for a worker's log).
        output = session.run(line)
        assert "[Service]" in output and " worker\n" in output, output
        assert shown is None
        return
    run_block(session, Commands([line], shown))


def test_the_french_guide_runs_as_written(tmp_path: Path) -> None:
    session = Session.fresh(tmp_path / "terminal")
    for item in guide():
        if isinstance(item, Commands):
            for index, line in enumerate(item.lines):
                last = index == len(item.lines) - 1
                run_line(session, line, item.shown if last else None)
        else:
            item.act(session, item.sentence)
    # The schedule the guide shows is in the workspace, for the segment it names.
    output = session.run("citesmail schedules")
    assert "scheduled 2031-09-16 09:00:00" in output and "delegues-prefet (2 now)" in output
    # The test message went to the outbox; the dry run sent nothing.
    assert session.campaign is not None
    outbox = session.cwd / "outbox" / "new"
    assert len(list(outbox.iterdir())) == 1


def test_the_guide_starts_from_the_quick_start_and_ends_with_the_worker() -> None:
    """What the test above relies on: a guide that changes it fails here first."""
    lines = [line for item in guide() if isinstance(item, Commands) for line in item.lines]
    assert lines[:2] == [QUICK_START, ACTIVATE]
    assert sum(argv[:2] == ["citesmail", "init"] and "--organization" in argv
               for argv in map(shlex.split, lines)) == 1
    assert "citesmail worker" in lines and lines[-1] == "citesmail worker --systemd"
    text = GUIDE.read_text(encoding="utf-8")
    assert text.count("```sh") == sum(isinstance(item, Commands) for item in guide())


def test_the_readme_links_the_guide_in_its_first_lines() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/guide.fr.md)" in readme.split("## Quick start", 1)[0]
