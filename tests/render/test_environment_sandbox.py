"""Campaign bodies and workspace templates cannot run code: the usual template-injection
payloads are refused at their line, and what they would run never runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader
from starlette.testclient import TestClient

from citesmail.config import load_settings
from citesmail.render.environment import environment
from citesmail.web.preview import create_preview_app
from tests.conftest import MINIMAL_REPLAY, REPLAY, run, write

BODY_LINE = 14  # the first body line after MINIMAL_REPLAY's greeting
TEMPLATE_LINE = 4  # the payload's line in the workspace template below
# {touch} stands for a shell command creating a file: the payloads that would reach a
# shell run it.
PAYLOADS = {
    "cycler globals": "{{ cycler.__init__.__globals__.os.popen('{touch}').read() }}",
    "joiner globals": "{{ joiner.__init__.__globals__.os.popen('{touch}').read() }}",
    "namespace globals": "{{ namespace.__init__.__globals__.os.popen('{touch}').read() }}",
    "lipsum globals": "{{ lipsum.__globals__.os.popen('{touch}').read() }}",
    "subclasses": "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
                  "{% if c.__name__ == 'Popen' %}{{ c('{touch}', shell=True).wait() }}"
                  "{% endif %}{% endfor %}",
    "template reference context": "{{ self._TemplateReference__context.cycler.__init__"
                                  ".__globals__.os.popen('{touch}').read() }}",
    "attr filter": "{{ ((cycler|attr('__init__')|attr('__globals__'))['os'])"
                   ".popen('{touch}').read() }}",
    "attr filter, not printed": "{% set c = ()|attr('__class__') %}",
    "str.format": "{{ '{0.__init__.__globals__[os]}'.format(cycler) }}",
    "format filter": "{{ '%s'|format(cycler.__init__.__globals__.os.popen('{touch}')"
                     ".read()) }}",
    "list append": "{% set x = [] %}{{ x.append(1) }}",
    "dict update": "{% set d = {} %}{% set _ = d.update(a=1) %}",
}


def payload(name: str, marker: Path) -> str:
    return PAYLOADS[name].replace("{touch}", f"touch {marker}")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file a payload would create if it could run a command."""
    return tmp_path / "pwned"


def assert_refused(stderr: str, where: str) -> None:
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"{where}: error: unsafe template code: access to attribute ")
    assert "templates run in a sandbox" in errors[0]
    assert "Traceback" not in stderr


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_a_payload_in_a_campaign_body_is_refused_at_its_line(
        workspace: Path, marker: Path, name: str) -> None:
    write(workspace / "campaigns" / "b.md", MINIMAL_REPLAY + payload(name, marker) + "\n")
    result = run("check", "b")
    assert result.exit_code == 1
    assert_refused(result.stderr, f"campaigns/b.md:{BODY_LINE}")
    assert not marker.exists()


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_a_payload_in_a_workspace_template_is_refused_at_its_line(
        workspace: Path, marker: Path, name: str) -> None:
    write(workspace / "templates" / "replay.mjml.j2",
          '{% extends "base.mjml.j2" %}\n{% block content %}\n\n'
          f"{payload(name, marker)}\n{{% endblock %}}\n")
    result = run("check", REPLAY)
    assert result.exit_code == 1
    assert_refused(result.stderr, f"templates/replay.mjml.j2:{TEMPLATE_LINE}")
    assert not marker.exists()


def test_render_schedule_and_preview_refuse_it_too(workspace: Path, marker: Path) -> None:
    write(workspace / "campaigns" / "b.md",
          MINIMAL_REPLAY + payload("cycler globals", marker) + "\n")
    for command in (["render", "b"], ["schedule", "b", "--at", "2099-01-01 10:00"]):
        result = run(*command)
        assert result.exit_code == 1, result.output
        assert_refused(result.stderr, f"campaigns/b.md:{BODY_LINE}")
    settings = load_settings(workspace / "config.toml", environ={})
    with TestClient(create_preview_app(settings, None), base_url="http://127.0.0.1") as client:
        page = client.get("/campaigns/b")
    assert "campaigns/b.md:14: unsafe template code: access to attribute" in page.text
    assert not marker.exists()


def test_code_a_plain_environment_left_in_the_cache_is_never_run(
        workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja keys its bytecode cache by template name, and sandboxed code differs from
    plain code (calls go through the sandbox): an entry an unsandboxed environment (an
    older citesmail) wrote for the same file must not be loaded."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    template = write(workspace / "templates" / "text.txt.j2", "REAL {{ campaign.title }}\n")
    folder = cache / "citesmail" / "jinja"
    folder.mkdir(parents=True)
    plain = Environment(loader=FileSystemLoader(str(template.parent)))
    source, filename, _ = plain.loader.get_source(plain, "text.txt.j2")  # type: ignore
    # An entry for this very source, holding code that is not the sandbox's: were it
    # loaded, the text part would say so.
    store = FileSystemBytecodeCache(str(folder))
    entry = store.get_bucket(plain, "text.txt.j2", filename, source)
    entry.code = plain.compile("NOT SANDBOXED\n", "text.txt.j2", filename)
    store.set_bucket(entry)
    environment.cache_clear()  # as a new process would start
    try:
        assert run("render", REPLAY).exit_code == 0
    finally:
        environment.cache_clear()
    text = (workspace / "out" / f"{REPLAY}.txt").read_text(encoding="utf-8")
    assert text.startswith("REAL Les cités de l'emploi")
