"""The command line as a user meets it: init, new, check, render, errors and exit codes."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

from citesmail.tokens import check_secret
from tests.conftest import EVENT, MINIMAL_REPLAY, REPLAY, ROOT, run, write

CITESMAIL = Path(sys.executable).parent / "citesmail"


def test_help_for_every_command() -> None:
    for command in ([], ["init"], ["new"], ["check"], ["render"]):
        result = run(*command, "--help")
        assert result.exit_code == 0
        assert "Usage: citesmail" in result.output


def test_init_creates_a_workspace_and_refuses_to_overwrite(tmp_path: Path,
                                                          monkeypatch: object) -> None:
    target = tmp_path / "centre"
    result = run("init", str(target))
    assert result.exit_code == 0, result.output
    assert (target / "config.toml").read_text(encoding="utf-8") == (
        ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert (target / "campaigns" / f"{REPLAY}.md").is_file()
    assert (target / "templates" / "README.md").is_file()
    # The README's walkthrough imports examples/contacts.csv in the new workspace.
    assert (target / "examples" / "contacts.csv").read_bytes() == (
        ROOT / "examples" / "contacts.csv").read_bytes()
    before = (target / "config.toml").stat().st_mtime_ns
    again = run("init", str(target))
    assert again.exit_code == 1
    assert "already exists" in again.stderr and "Traceback" not in again.output
    assert (target / "config.toml").stat().st_mtime_ns == before
    checked = run("--config", str(target / "config.toml"), "check")
    assert checked.exit_code == 0, checked.output
    assert "1 campaign checked: 0 errors, 3 warnings" in checked.output
    assert "example values still configured" in checked.output
    assert "DKIM signing is off: fine if your mail relay signs" in checked.output
    assert "audience: no segment 'partenaires-aura' yet" in checked.output
    assert 'CITESMAIL_SECRET="$(citesmail secret)"' in result.stdout
    assert "citesmail secret" in (target / "config.toml").read_text(encoding="utf-8")


def test_secret_prints_a_new_secret_that_sends_accept() -> None:
    first, second = run("secret"), run("secret")
    assert first.exit_code == 0 and first.stderr == ""
    secret = first.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret), secret  # 32 random bytes
    assert secret != second.stdout.strip()
    assert check_secret(secret, "sending") == secret


def test_new_writes_every_key_and_check_says_what_to_fill(workspace: Path) -> None:
    result = run("new", "replay", "Replay : l'emploi des femmes des quartiers",
                 "--date", "2026-12-01")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.name == "2026-12-01-replay-l-emploi-des-femmes-des-quartiers.md"
    text = path.read_text(encoding="utf-8")
    for key in ("kind", "subject", "preheader", "title", "lede", "lang", "audience",
                "objectives", "public", "agenda", "[event]", "starts", "ends", "location",
                "join_url", "registration_url", "[replay]", "video_url", "slides_url",
                "[[speakers]]", "name", "role", "organization", "group", "[[items]]",
                "summary", "image", "image_alt"):
        assert key in text, key
    assert 'title = "Replay : l\'emploi des femmes des quartiers"' in text
    checked = run("check", path.stem)
    assert checked.exit_code == 1
    assert "'replay.video_url': is empty" in checked.stderr
    assert "slides_url" not in checked.stderr  # optional keys left "" mean none
    again = run("new", "replay", "Replay : l'emploi des femmes des quartiers",
                "--date", "2026-12-01")
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_new_event_passes_check_and_newsletter_asks_for_its_items(workspace: Path) -> None:
    for kind in ("event", "newsletter"):
        assert run("new", kind, f"Un {kind}", "--date", "2027-02-02").exit_code == 0
    event = run("check", "2027-02-02-un-event")
    assert event.exit_code == 0, event.output
    assert "no preheader" in event.stdout
    newsletter = run("check", "2027-02-02-un-newsletter")
    assert newsletter.exit_code == 1
    errors = [line for line in newsletter.stderr.splitlines() if ": error: " in line]
    assert [e.split(": error: ")[1] for e in errors] == [
        "'items[0].title': is empty: fill it in",
        "'items[0].url': is empty: give the full address, starting with https://"]


def test_check_all_examples_passes(workspace: Path) -> None:
    event = workspace / "campaigns" / f"{EVENT}.md"  # still to come, whatever today is
    event.write_text(event.read_text(encoding="utf-8").replace("2027-01-19T", "2099-01-19T"),
                     encoding="utf-8")
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("3 campaigns checked: 0 errors, 5 warnings")
    warnings = [line for line in result.output.splitlines() if ": warning: " in line]
    assert warnings[0].startswith("config.toml: warning: example values still configured")
    assert warnings[1].startswith("config.toml:") and "DKIM signing is off" in warnings[1]
    assert len(warnings) == 5 and all("audience: no segment" in w for w in warnings[2:])


def test_check_reports_errors_one_line_each_and_exits_1(workspace: Path) -> None:
    write(workspace / "campaigns" / "bad.md",
          MINIMAL_REPLAY.replace('title = "Un titre"', 'titel = "x"\nkind2 = 1'))
    result = run("check", "bad", REPLAY)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors == ["campaigns/bad.md:5: error: unknown key 'titel' — did you mean 'title'?",
                      "campaigns/bad.md:6: error: unknown key 'kind2' — did you mean 'kind'?"]
    assert "2 campaigns checked: 2 errors, 3 warnings (1 could not be rendered: its " \
        "warnings show once its errors are fixed)" in result.stderr


def test_check_warnings_exit_0(workspace: Path) -> None:
    long_subject = "S" * 90
    write(workspace / "campaigns" / "warn.md", MINIMAL_REPLAY
          .replace('subject = "Replay"', f'subject = "{long_subject}"')
          .replace('preheader = "Le replay"\n', "")
          + "\n![](https://example.org/i.png) [lien](ftp://example.org/f)\n")
    result = run("check", "warn")
    assert result.exit_code == 0
    out = result.stdout
    assert "subject is 90 characters" in out
    assert "no preheader" in out
    assert "image without alt text: https://example.org/i.png" in out
    assert "link is not http(s) or mailto: ftp://example.org/f" in out
    assert "6 warnings" in out and "example values still configured" in out


def test_check_warns_when_html_is_over_102_kb(workspace: Path) -> None:
    body = "\n\n".join(f"Paragraphe {i} " + "texte " * 40 for i in range(500))
    write(workspace / "campaigns" / "big.md", MINIMAL_REPLAY + body)
    result = run("check", "big")
    assert result.exit_code == 0
    assert "Gmail clips messages over 102 KB" in result.stdout


def test_render_writes_html_text_and_complete_eml(workspace: Path) -> None:
    result = run("render", REPLAY, "-o", "out")
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert [p.suffix for p in paths] == [".html", ".txt", ".eml"]
    raw = (workspace / "out" / f"{REPLAY}.eml").read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    unsubscribe = next(line for line in raw.split(b"\r\n")
                       if line.startswith(b"List-Unsubscribe:"))
    assert unsubscribe.startswith(b"List-Unsubscribe: <https://lettres.example.org/u/")
    assert unsubscribe.endswith(b">")
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["From"] == "Labo Cités <annonces@example.org>"
    assert message["To"] == "Camille Martin <camille.martin@example.org>"
    assert message["Subject"] == "Replay : les cités de l'emploi, la visio du 12 juin en vidéo"
    assert message["Message-ID"].endswith("@example.org>")
    assert message["List-Unsubscribe"].startswith("<https://lettres.example.org/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Date"] is not None and message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    plain, html = (part.get_content_type() for part in message.iter_parts())
    assert (plain, html) == ("text/plain", "text/html")
    in_message = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    on_disk = (workspace / "out" / f"{REPLAY}.html").read_text(encoding="utf-8")
    assert in_message.rstrip("\n") == on_disk.rstrip("\n")
    assert "CITESMAIL_SECRET is not set" in result.stderr


def test_render_as_a_given_address(workspace: Path, monkeypatch: object) -> None:
    result = run("render", REPLAY, "--as", "Zoé Durand <zoe@exemple.fr>")
    assert result.exit_code == 0
    message = email.message_from_bytes((workspace / "out" / f"{REPLAY}.eml").read_bytes(),
                                       policy=policy.default)
    assert message["To"] == "Zoé Durand <zoe@exemple.fr>"
    assert "Bonjour Zoé," in message.get_body(("plain",)).get_content()
    for wrong in ("not-an-address", "a b@example.org", "é@exämple.org", "<>"):
        bad = run("render", REPLAY, "--as", wrong)
        assert bad.exit_code == 2 and "--as" in bad.output, wrong


def test_render_signs_links_with_the_secret(workspace: Path) -> None:
    env = {**os.environ, "CITESMAIL_SECRET": "k1"}
    out1 = subprocess.run([str(CITESMAIL), "render", REPLAY, "-o", "a"], env=env,
                          capture_output=True, text=True, check=True)
    env["CITESMAIL_SECRET"] = "k2"
    subprocess.run([str(CITESMAIL), "render", REPLAY, "-o", "b"], env=env,
                   capture_output=True, text=True, check=True)
    assert "CITESMAIL_SECRET is not set" not in out1.stderr
    a = (workspace / "a" / f"{REPLAY}.txt").read_text(encoding="utf-8")
    b = (workspace / "b" / f"{REPLAY}.txt").read_text(encoding="utf-8")
    unsigned = [re.sub(r"/([upv])/[\w.-]+", r"/\1/TOKEN", text) for text in (a, b)]
    assert a != b and unsigned[0] == unsigned[1]  # only the signed links differ


def test_errors_are_one_line_without_traceback(workspace: Path) -> None:
    cases = [
        (["render", "nope"], 1, "no campaign named 'nope'"),
        (["--config", "missing.toml", "check"], 1, "config file not found"),
        (["new", "webinar", "x"], 2, "Invalid value"),
        (["render"], 2, "Missing argument"),
    ]
    for args, code, needle in cases:
        result = subprocess.run([str(CITESMAIL), *args], capture_output=True, text=True)
        assert result.returncode == code, (args, result.stderr)
        assert needle in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_config_is_reported_with_its_line(workspace: Path) -> None:
    config = workspace / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        'transport = "outbox"', 'transport = "fax"'), encoding="utf-8")
    result = run("check")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("config.toml:")
    assert "'delivery.transport'" in line


def test_render_does_not_import_database_or_scheduler(workspace: Path) -> None:
    code = ("import sys; from citesmail.cli import main\n"
            f"try:\n    main(['render', {REPLAY!r}, '-o', 'out'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'apscheduler', 'alembic', 'premailer')]\n"
            "print('HEAVY', heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert "HEAVY []" in result.stdout


def test_each_command_is_found_in_the_module_that_defines_it() -> None:
    """COMMANDS names every command of every command module, each in its own module."""
    import importlib
    import pkgutil

    import citesmail.cli
    from citesmail.cli import COMMANDS, main

    modules = [m.name for m in pkgutil.iter_modules(citesmail.cli.__path__)]
    assert sorted(set(COMMANDS.values())) == sorted(modules)
    for module in modules:
        importlib.import_module(f"citesmail.cli.{module}")
    found = {name: command.callback.__module__.rsplit(".", 1)[1]
             for name, command in main.commands.items() if command.callback}
    assert found == COMMANDS


def _fresh(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a new interpreter: no command module imported beforehand."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **env})


def test_a_command_imports_only_its_own_module(workspace: Path) -> None:
    result = _fresh("import sys; from citesmail.cli import main\n"
                    "try:\n    main(['status'])\nexcept SystemExit:\n    pass\n"
                    "print('LOADED', sorted(m for m in sys.modules if m.endswith('_commands')))",
                    workspace)
    assert "LOADED ['citesmail.cli.delivery_commands']" in result.stdout, result.stderr


def test_a_mistyped_command_gets_the_nearest_name(workspace: Path) -> None:
    result = _fresh("from citesmail.cli import main; main(['sned', 'x'])", workspace)
    assert result.returncode == 2
    assert "No such command 'sned'. Did you mean 'send'?" in result.stderr


def test_shell_completion_lists_commands_and_stays_quiet_after_a_typo(
        workspace: Path) -> None:
    code = "from citesmail.cli import main; main(prog_name='citesmail')"
    listed = _fresh(code, workspace, _CITESMAIL_COMPLETE="bash_complete",
                    COMP_WORDS="citesmail se", COMP_CWORD="1")
    assert listed.returncode == 0 and listed.stderr == ""
    assert {"plain,send", "plain,segments", "plain,serve"} <= set(listed.stdout.split())
    typo = _fresh(code, workspace, _CITESMAIL_COMPLETE="bash_complete",
                  COMP_WORDS="citesmail sned ", COMP_CWORD="2")
    assert typo.returncode == 0 and typo.stderr == ""


@pytest.mark.parametrize("command", [["status"], ["contacts", "list"], ["contacts", "export"]])
def test_output_cut_short_by_its_reader_ends_quietly(workspace: Path, command: list[str]) -> None:
    """`citesmail ... | head`: the reader goes away before the output is written."""
    assert run("lists", "add", "l").exit_code == 0
    (workspace / "c.csv").write_text("email\nanne@lyon.fr\n", encoding="utf-8")
    assert run("contacts", "import", "c.csv", "--list", "l").exit_code == 0
    script = Path(sys.executable).parent / "citesmail"
    process = subprocess.Popen([str(script), *command], cwd=workspace,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # gone long before the command has started up
    said = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == 0, said
    assert b"error" not in said and b"Traceback" not in said, said


@pytest.mark.parametrize("command", [["status", "nope"], ["preview", "nope", "--no-browser"]])
def test_an_unknown_campaign_is_refused(workspace: Path, command: list[str]) -> None:
    result = run(*command)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no campaign named 'nope' — known campaigns: ")


def test_help_lists_the_commands_in_the_order_of_the_work() -> None:
    shown = run("--help").stdout
    titles = ["Write and check:", "Audience:", "Send:", "Schedule:", "Publish and follow up:",
              "Set up:"]
    places = [shown.index(title) for title in titles]
    assert places == sorted(places)
    listed = re.findall(r"^  ([a-z]+) ", shown, re.M)
    assert listed[:5] == ["init", "new", "check", "render", "preview"]
    assert listed.index("contacts") < listed.index("send") < listed.index("schedule") \
        < listed.index("serve")
    from citesmail.cli import COMMANDS

    assert sorted(listed) == sorted(COMMANDS)  # each command once
