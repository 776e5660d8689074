"""What authors can get wrong in bodies and workspace templates: each reported with its
place, never a traceback, never a placeholder leaking into a recipient's email."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MINIMAL_REPLAY, REPLAY, ROOT, run, write

BODY_LINE = 14  # the first body line after MINIMAL_REPLAY's greeting


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("{{ recipient.first_name | upper }}", "a filter other than default()"),
        ("{{ recipient.first_name | urlencode }}", "a filter other than default()"),
        ("{{ recipient.first_name[0] }}", "cannot be indexed"),
        ("{% if recipient.organization %}x{% endif %}", "cannot be tested"),
        ("{{ recipient }}", "print one value"),
        ("{{ recipient.first_name | default(recipient.last_name) }}", "must be text"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ('{{ "a" + 1 }}', "TypeError"),
    ],
)
def test_misused_recipient_values_and_runtime_errors_in_the_body(
        workspace: Path, body: str, needle: str) -> None:
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY + body + "\n")
    result = run("check", "b")
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if ": error: " in x]
    assert line.startswith(f"campaigns/b.md:{BODY_LINE}: error: ")
    assert needle in line
    assert "Traceback" not in result.output


def test_recipient_value_inside_a_link_address_is_refused(workspace: Path) -> None:
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY +
          "[Mon profil](https://example.org/p?nom={{ recipient.last_name }})\n")
    result = run("check", "b")
    assert result.exit_code == 1
    assert "a recipient value is used inside a link address" in result.stderr


def test_raw_html_in_the_body_is_shown_as_text_and_cannot_break_the_layout(
        workspace: Path) -> None:
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY + "<div>ouvert </mj-text>\n")
    assert run("render", "b").exit_code == 0
    html = (workspace / "out" / "b.html").read_text(encoding="utf-8")
    assert "&lt;div&gt;ouvert &lt;/mj-text&gt;" in html


def test_runtime_error_in_a_workspace_template(workspace: Path) -> None:
    write(workspace / "templates" / "replay.mjml.j2",
          '{% extends "base.mjml.j2" %}\n{% block content %}\n\n{{ "a" + 1 }}\n{% endblock %}\n')
    result = run("check", REPLAY)
    assert result.exit_code == 1
    assert "templates/replay.mjml.j2:4: error: error: TypeError" in result.stderr


def test_include_of_a_missing_template_names_the_includer(workspace: Path) -> None:
    write(workspace / "templates" / "replay.mjml.j2",
          '{% extends "base.mjml.j2" %}\n{% block content %}\n{% include "nope.mjml.j2" %}\n'
          "{% endblock %}\n")
    result = run("check", REPLAY)
    assert result.exit_code == 1
    assert "templates/replay.mjml.j2:3: error: template not found: nope.mjml.j2" in \
        result.stderr


def test_template_that_is_not_utf8(workspace: Path) -> None:
    (workspace / "templates" / "replay.mjml.j2").write_bytes(b"\xff\xfe{{ x }}")
    result = run("check", REPLAY)
    assert result.exit_code == 1
    assert "is not UTF-8" in result.stderr and "Traceback" not in result.output


def test_unclosed_tag_deep_in_the_base_template_is_found_at_its_line(workspace: Path) -> None:
    builtin = ROOT / "src/citesmail/templates/base.mjml.j2"
    lines = builtin.read_text(encoding="utf-8").split("\n")
    target = max(i for i, line in enumerate(lines) if "</mj-text>" in line)
    lines[target] = lines[target].replace("</mj-text>", "")
    write(workspace / "templates" / "base.mjml.j2", "\n".join(lines))
    result = run("check", REPLAY)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()[:1]
    assert line.startswith(f"templates/base.mjml.j2:{target + 1}: error: MJML error")


def test_french_spacing_in_the_html(workspace: Path) -> None:
    assert run("render", REPLAY).exit_code == 0
    html = (workspace / "out" / f"{REPLAY}.html").read_text(encoding="utf-8")
    assert "ou souhaitez y revenir\u00a0?" in html
    assert "y revenir ?" not in html


RESERVED = ("error: '@@cm' is reserved: citesmail marks recipient values with it while "
            "rendering — write it another way, e.g. '@@ cm'")


@pytest.mark.parametrize("text", ["@@cm99@@", "@@cm0@@", "@@CM1@@", "%40%40cm0%40%40",
                                  "&#64;&#64;cm0&#64;&#64;", "@@cm"])
def test_text_that_reads_as_a_recipient_token_in_the_body_is_refused(
        workspace: Path, text: str) -> None:
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY + f"Notre code : {text}.\n")
    result = run("check", "b")
    assert result.exit_code == 1
    [line] = [x for x in result.stderr.splitlines() if ": error: " in x]
    assert line == f"campaigns/b.md:{BODY_LINE}:{len('Notre code : ') + 1}: {RESERVED}"
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_text_that_reads_as_a_token_in_the_front_matter_or_the_config_is_refused(
        workspace: Path) -> None:
    write(workspace / "campaigns" / "b.md",
          MINIMAL_REPLAY.replace('title = "Un titre"', 'title = "Un titre @@cm0@@"'))
    result = run("check", "b")
    assert result.exit_code == 1
    assert f"campaigns/b.md:5: {RESERVED}" in result.stderr.splitlines()
    config = workspace / "config.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('reason = ""', 'reason = "@@cm1@@"'), encoding="utf-8")
    line = text.split("\n").index('reason = ""') + 1
    result = run("check", REPLAY)
    assert result.exit_code == 1
    assert f"config.toml:{line}: {RESERVED}" in result.stderr.splitlines()


@pytest.mark.parametrize(("body", "error"), [
    ("{{ recipent.first_name }}",
     "undefined variable: 'recipent' is undefined in the body — did you mean 'recipient'?"),
    ("{{ recipient.frist_name }}",
     "undefined variable: 'recipient' has no attribute 'frist_name' in the body — did you "
     "mean 'recipient.first_name'?"),
    ("{{ links.unsubscrib }}",
     "undefined variable: 'links' has no attribute 'unsubscrib' in the body — did you mean "
     "'links.unsubscribe'?"),
    ("{{ campaing.title }}",
     "undefined variable: 'campaing' is undefined in the body — did you mean 'campaign'?"),
    # Nothing close: what the body may use.
    ("{{ recipient.prenom }}",
     "undefined variable: 'recipient' has no attribute 'prenom' in the body — the body may "
     "use recipient.first_name, recipient.last_name, recipient.email and "
     "recipient.organization"),
])
def test_a_misspelt_name_in_the_body_gets_the_name_meant(
        workspace: Path, body: str, error: str) -> None:
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY + body + "\n")
    result = run("check", "b")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"campaigns/b.md:{BODY_LINE}: error: {error}"


def test_a_misspelt_name_in_a_workspace_template_gets_the_name_meant(workspace: Path) -> None:
    write(workspace / "templates" / "replay.mjml.j2",
          '{% extends "base.mjml.j2" %}\n{% block content %}\n\n{{ campaing.title }}\n'
          "{% endblock %}\n")
    result = run("check", REPLAY)
    assert result.exit_code == 1
    assert "templates/replay.mjml.j2:4: error: undefined variable: 'campaing' is undefined " \
        "— did you mean 'campaign'?" in result.stderr
    write(workspace / "templates" / "replay.mjml.j2",
          '{% extends "base.mjml.j2" %}\n{% block content %}\n'
          "{% for speaker in campaign.speakers %}{{ speaker.nmae }}{% endfor %}\n"
          "{% endblock %}\n")
    result = run("check", REPLAY)
    assert "templates/replay.mjml.j2:3: error: undefined variable: 'citesmail.campaigns." \
        "models.Speaker object' has no attribute 'nmae' — did you mean 'name'?" in result.stderr
