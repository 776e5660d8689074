"""Settings: defaults < config.toml < CITESMAIL_* environment < overrides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from citesmail.config import load_settings
from citesmail.errors import ConfigError
from tests.conftest import ROOT, run, write


def test_built_in_defaults_without_a_config_file(tmp_path: Path) -> None:
    settings = load_settings(None, environ={}, cwd=tmp_path)
    assert settings.config_path is None
    assert settings.delivery.transport == "outbox"
    assert settings.schedule.timezone == "Europe/Paris"
    assert settings.schedule.misfire_grace == timedelta(hours=6)
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/citesmail.db"
    assert settings.outbox_dir == tmp_path.resolve() / "outbox"
    assert settings.secret is None


def test_example_config_is_valid_and_documents_every_key() -> None:
    settings = load_settings(ROOT / "config.example.toml", environ={})
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section, model in settings:
        if section in {"workspace", "config_path", "secret", "smtp_password", "imap_password"}:
            continue
        assert f"[{section}]" in text
        for key, field in type(model).model_fields.items():
            assert f"\n{field.alias or key} = " in text, f"{section}.{key} is not documented"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = write(tmp_path / "config.toml", '[smtp]\nport = 2525\nhost = "mail.local"\n'
                   '[schedule]\nmisfire_grace = "30m"\n[database]\nurl = "sqlite:///data/x.db"\n')
    settings = load_settings(
        config,
        environ={"CITESMAIL_SMTP_PORT": "2626", "CITESMAIL_SECRET": "s3cret",
                 "CITESMAIL_DELIVERY_RETRY_DELAYS": "[1, 2]", "CITESMAIL_TEST_PG_URL": "x"},
        overrides={"smtp": {"host": "127.0.0.1"}},
    )
    assert settings.smtp.port == 2626
    assert settings.smtp.host == "127.0.0.1"
    assert settings.delivery.retry_delays == [1, 2]
    assert settings.schedule.misfire_grace == timedelta(minutes=30)
    assert settings.secret == "s3cret"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/data/x.db"


def test_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    config = write(tmp_path / "config.toml", '[smtp]\nhost = "x"\nprot = 25\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    [problem] = caught.value.problems
    assert problem.line == 3
    assert problem.message == "unknown key 'smtp.prot'"
    assert "port" in problem.hint


def test_unknown_section_and_secret_in_file(tmp_path: Path) -> None:
    config = write(tmp_path / "config.toml", '[organisation]\nname = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'organisation'"):
        load_settings(config, environ={})
    config = write(tmp_path / "config.toml", 'secret = "x"\n')
    with pytest.raises(ConfigError, match="CITESMAIL_SECRET"):
        load_settings(config, environ={})


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[schedule]\ntimezone = "Europe/Pariss"\n', "unknown time zone"),
        ('[schedule]\nmisfire_grace = "six hours"\n', "duration"),
        ('[delivery]\ntransport = "pigeon"\n', "'delivery.transport'"),
        ('[sender]\nfrom = "nobody"\n', "'sender.from'"),
        ("[smtp]\nport = 70000\n", "'smtp.port'"),
    ],
)
def test_bad_values_are_located(tmp_path: Path, text: str, needle: str) -> None:
    config = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert needle in str(caught.value)
    assert caught.value.problems[0].line == 2


def test_toml_syntax_error(tmp_path: Path) -> None:
    config = write(tmp_path / "config.toml", "[smtp]\nport = \n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.problems[0].line == 2


def test_missing_explicit_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[campaigns]\nlang = "xx-yy"\n', "unknown language"),
        ('[unsubscribe]\nbase_url = "lettres.example.org"\n', "https://lettres.example.org"),
        ('[unsubscribe]\nbase_url = "https://exemple.fr/désabonnement"\n',
         "https://exemple.fr/d%C3%A9sabonnement"),
        ('[unsubscribe]\nmailto = "pas une adresse"\n', "'unsubscribe.mailto'"),
    ],
)
def test_language_and_unsubscribe_settings_are_checked(tmp_path: Path, text: str,
                                                       needle: str) -> None:
    config = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert needle in str(caught.value)
    assert caught.value.problems[0].line == 2


def test_config_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes('[organization]\nname = "Cités"\n'.encode("cp1252"))
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.problems[0].line == 2


def test_secrets_come_from_the_environment_and_are_not_settings(tmp_path: Path) -> None:
    settings = load_settings(None, cwd=tmp_path, environ={
        "CITESMAIL_SMTP_PASSWORD": "pw", "CITESMAIL_SECRET": "s"})
    assert settings.smtp_password == "pw" and settings.secret == "s"


def test_a_bad_value_from_the_environment_names_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ROOT / "config.example.toml",
                      environ={"CITESMAIL_SMTP_PORT": "abc", "CITESMAIL_SMTP_PROT": "25",
                               "CITESMAIL_DELIVERY_RATE_PER_SECOND": "-1"})
    lines = sorted(problem.format("error") for problem in caught.value.problems)
    assert [line.split(" — ")[0] for line in lines] == [
        "CITESMAIL_DELIVERY_RATE_PER_SECOND: error: 'delivery.rate_per_second': input "
        "should be greater than or equal to 0",
        "CITESMAIL_SMTP_PORT: error: 'smtp.port': input should be a valid integer, unable "
        "to parse string as an integer",
        "CITESMAIL_SMTP_PROT: error: unknown key 'smtp.prot'"]


def test_toml_unfinished_at_the_end_names_the_last_line(tmp_path: Path) -> None:
    config = write(tmp_path / "config.toml", "[smtp]\nhost = \"relais\"\nport = ")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    [problem] = caught.value.problems
    assert problem.line == 3
    assert problem.format("error").startswith(f"{config}:3: error: TOML syntax error: "
                                              "invalid value — ")


DEEP = "[" * 10_000 + "]" * 10_000
DELAYS = "retry_delays = [60, 300, 1800, 7200]"


# name: (line of config.example.toml, what replaces it, the error on that line)
CANNOT_WORK = {
    "busy_timeout overflow": (
        'busy_timeout = "5s"', 'busy_timeout = "99999999999d"',
        "'database.busy_timeout': is far too long: give a duration such as '30s' or '6h'"),
    "busy_timeout over a day": (
        'busy_timeout = "5s"', 'busy_timeout = "2d"',
        "'database.busy_timeout': must be at most 1d (a command waiting for another one)"),
    "negative busy_timeout": (
        'busy_timeout = "5s"', "busy_timeout = -5",
        "'database.busy_timeout': must not be negative"),
    "mysql url": (
        'url = "sqlite:///citesmail.db"', 'url = "mysql://news:hunter2@db.example.org/news"',
        "'database.url': unsupported database 'mysql': use sqlite:///<file> or "
        "postgresql+psycopg://<user>@<host>/<database>"),
    "postgresql url without psycopg": (
        'url = "sqlite:///citesmail.db"', 'url = "postgresql://news@db.example.org/news"',
        "'database.url': unsupported database 'postgresql': use sqlite:///<file> or "
        "postgresql+psycopg://"),
    "zero retry delay": (
        DELAYS, "retry_delays = [60, 0]",
        "'delivery.retry_delays[1]': input should be greater than 0"),
    "negative retry delay": (
        DELAYS, "retry_delays = [-60]",
        "'delivery.retry_delays[0]': input should be greater than 0"),
    "retry delay overflow": (
        DELAYS, "retry_delays = [60, 99999999999999999]",
        "'delivery.retry_delays[1]': input should be less than or equal to 2592000"),
    "javascript logo": (
        'logo_url = ""', 'logo_url = "javascript:alert(1)"',
        "'organization.logo_url': an https:// address is expected (or \"\" for none)"),
    "http logo": (
        'logo_url = ""', 'logo_url = "http://example.org/logo.png"',
        "'organization.logo_url': an https:// address is expected"),
    "http dark logo": (
        'logo_dark_url = ""', 'logo_dark_url = "http://example.org/logo-dark.png"',
        "'organization.logo_dark_url': an https:// address is expected"),
    "javascript website": (
        'website = "https://example.org"', 'website = "javascript:alert(document.cookie)"',
        "'organization.website': an https:// address is expected"),
    "zero smtp timeout": (
        'timeout = "30s"', "timeout = 0", "'smtp.timeout': must be more than 0s"),
    "zero misfire_grace": (
        'misfire_grace = "6h"', 'misfire_grace = "0m"',
        "'schedule.misfire_grace': must be more than 0s"),
    "deep nesting": (
        DELAYS, f"retry_delays = {DEEP}",
        "arrays or inline tables nested more than 50 deep — flatten the value"),
}


@pytest.mark.parametrize(("line", "replacement", "message"), list(CANNOT_WORK.values()),
                         ids=list(CANNOT_WORK))
def test_values_that_cannot_work_are_refused_at_their_line(
        workspace: Path, line: str, replacement: str, message: str) -> None:
    config = workspace / "config.toml"
    text = config.read_text(encoding="utf-8")
    assert text.count(f"\n{line}\n") == 1
    config.write_text(text.replace(f"\n{line}\n", f"\n{replacement}\n"), encoding="utf-8")
    number = text.split("\n").index(line) + 1
    result = run("check")
    assert result.exit_code == 1
    [error] = result.stderr.splitlines()
    assert error.startswith(f"config.toml:{number}:")  # and a column, for the nesting
    assert f" error: {message}" in error
    assert "hunter2" not in result.output  # a database URL's password is not repeated


def test_an_empty_logo_and_website_and_https_ones_are_accepted(workspace: Path) -> None:
    config = workspace / "config.toml"
    text = config.read_text(encoding="utf-8")
    for website, logo in (("", ""), ("https://example.org/a", "https://example.org/l.png")):
        config.write_text(text.replace('website = "https://example.org"',
                                       f'website = "{website}"')
                          .replace('logo_url = ""', f'logo_url = "{logo}"')
                          .replace('logo_dark_url = ""', f'logo_dark_url = "{logo}"'),
                          encoding="utf-8")
        organization = load_settings(config, environ={}).organization
        assert (organization.website, organization.logo_url,
                organization.logo_dark_url) == (website, logo, logo)


@pytest.mark.parametrize(("value", "column"), [
    (DEEP, len("x = ") + 51),  # the 51st [
    ("{a = " * 5_000 + "1" + "}" * 5_000, len("x = ") + 50 * len("{a = ") + 1)])  # 51st {
def test_toml_nested_too_deep_is_refused_at_its_line_and_column(
        tmp_path: Path, value: str, column: int) -> None:
    # Brackets in comments and strings do not count.
    config = write(tmp_path / "config.toml",
                   f'# a "[[[" in a comment\n[organization]\nname = "[[[["\nx = {value}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (4, column)
    assert problem.message == "arrays or inline tables nested more than 50 deep"
