"""Typed settings: built-in defaults < config.toml < CITESMAIL_* environment < CLI options.

Relative paths are resolved against the folder of the config file (the workspace).
Secrets are read from the environment only, never from the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import unicodedata
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from .errors import ConfigError, Problem, did_you_mean
from .languages import check_language
from .tomlfile import key_lines, line_of, parse_toml, validation_problems

CONFIG_NAME = "config.toml"
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
# A DNS name in ASCII: labels of letters, digits, '_' and inner hyphens (a DKIM selector
# is one).
DNS_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                      r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """`90s`, `30m`, `6h`, `2d` or a number of seconds; never negative."""
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, int) and not isinstance(value, bool):
        duration = _seconds(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("a duration such as '90s', '30m', '6h' or '2d' is expected")
        duration = _seconds(int(match.group(1)) * _UNITS[match.group(2)])
    if duration < timedelta(0):
        raise ValueError("must not be negative")
    return duration


def _seconds(count: int) -> timedelta:
    try:
        return timedelta(seconds=count)
    except OverflowError:  # timedelta stops at 999,999,999 days
        raise ValueError("is far too long: give a duration such as '30s' or '6h'") from None


def _at_most(limit: timedelta, why: str) -> Any:
    def check(value: timedelta) -> timedelta:
        if value > limit:
            raise ValueError(f"must be at most {_words(limit)} ({why})")
        return value
    return AfterValidator(check)


def _positive(value: timedelta) -> timedelta:
    if not value:
        raise ValueError("must be more than 0s")
    return value


def _words(duration: timedelta) -> str:
    """'1d', '90m', ...: in the largest unit that divides it."""
    seconds = int(duration.total_seconds())
    return next(f"{seconds // size}{unit}" for unit, size in
                sorted(_UNITS.items(), key=lambda item: -item[1]) if seconds % size == 0)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration),
                             AfterValidator(_positive)]
DATABASE_URLS = ("sqlite:///", "postgresql+psycopg://")
# The longest delay a retry may wait (a month); longer ones only overflow dates.
MAX_RETRY_DELAY = 30 * 86400


def _https_or_empty(value: str) -> str:
    """An address shown in every email: https (a `javascript:` link or a clear-text
    image would be read by mail clients), or empty for none."""
    value = value.strip()
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc or not value.isascii() \
            or any(char.isspace() for char in value):
        raise ValueError('an https:// address is expected (or "" for none)')
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


SHORT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,28}[A-Za-z0-9])?")
SHORT_NAME_MAX = 30


def _short_name(value: str) -> str:
    value = value.strip()
    if value and not SHORT_NAME.fullmatch(value):
        raise ValueError(f"at most {SHORT_NAME_MAX} ASCII letters, digits, '.', '-' and '_' "
                         "are expected (no colon, no space), e.g. 'labo-cites'")
    return value


def name_slug(text: str) -> str:
    """An ASCII slug of a name, short: 'Labo Cités' -> 'labo-cites'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:SHORT_NAME_MAX].rstrip("-") or "citesmail"


class OrganizationSettings(Section):
    name: str = "Centre de ressources"
    # Names the organisation in each message's Feedback-ID ("" = a slug of the name).
    short_name: Annotated[str, AfterValidator(_short_name)] = ""
    postal_address: str = ""
    website: Annotated[str, AfterValidator(_https_or_empty)] = ""
    logo_url: Annotated[str, AfterValidator(_https_or_empty)] = ""
    # Shown instead of logo_url when the reader's mail app is in dark mode.
    logo_dark_url: Annotated[str, AfterValidator(_https_or_empty)] = ""
    reason: str = ""

    @property
    def feedback_name(self) -> str:
        """The organisation in Feedback-ID: short_name, else a slug of the name."""
        return self.short_name or name_slug(self.name)


class SenderSettings(Section):
    from_: str = Field("Centre de ressources <annonces@example.org>", alias="from")
    reply_to: str = ""

    @field_validator("from_")
    @classmethod
    def _has_address(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError("an address such as 'Name <news@your-domain.fr>' is expected")
        return value

    @property
    def domain(self) -> str:
        return parseaddr(self.from_)[1].rpartition("@")[2].lower()


class CampaignsSettings(Section):
    lang: Annotated[str, AfterValidator(check_language)] = "fr"


class DatabaseSettings(Section):
    url: str = "sqlite:///citesmail.db"
    # SQLite keeps its busy timeout as a C int of milliseconds (about 24 days at most).
    busy_timeout: Annotated[Duration, _at_most(timedelta(days=1), "a command waiting for "
                                                "another one")] = timedelta(seconds=5)

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith(DATABASE_URLS):
            scheme = value.partition("://")[0] if "://" in value else value[:20]
            raise ValueError(f"unsupported database '{scheme}': use sqlite:///<file> or "
                             "postgresql+psycopg://<user>@<host>/<database>")
        return value


RETURN_TOKEN = "{token}"
RETURN_PATH_ROOM = 26  # 64 characters in a local part, less the longest token (38)
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`|~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`|~-]+)*")


def _return_path(value: str) -> str:
    """An ASCII address whose local part holds {token} exactly once, or ""."""
    value = value.strip()
    if not value:
        return value
    example = "an address such as 'bounces+{token}@lettres.example.org' is expected"
    local, at, domain = value.rpartition("@")
    if at and (local.count(RETURN_TOKEN) != 1 or RETURN_TOKEN in domain):
        raise ValueError(f"{{token}} must be in the part before '@', exactly once: {example}")
    if not at or not value.isascii() or not DNS_NAME.fullmatch(domain) or "." not in domain:
        raise ValueError(example)
    if not _LOCAL_PART.fullmatch(local.replace(RETURN_TOKEN, "x")):
        raise ValueError(example)
    if len(local) - len(RETURN_TOKEN) > RETURN_PATH_ROOM:
        raise ValueError(f"the part before '@' is too long: {RETURN_PATH_ROOM} characters at "
                         "most besides {token} (an address's local part holds 64 at most, "
                         "and the token takes up to 38)")
    return value


class DeliverySettings(Section):
    transport: Literal["outbox", "smtp"] = "outbox"
    outbox: Path = Path("outbox")
    connections: int = Field(4, ge=1, le=64)
    rate_per_second: float = Field(0.0, ge=0)
    hourly_cap: int = Field(0, ge=0)
    retry_delays: list[Annotated[int, Field(gt=0, le=MAX_RETRY_DELAY)]] = Field(
        default_factory=lambda: [60, 300, 1800, 7200])
    # VERP: the envelope sender, with {token} naming the message ("" = the From address).
    return_path: Annotated[str, AfterValidator(_return_path)] = ""


class SmtpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    timeout: PositiveDuration = timedelta(seconds=30)  # 0 would make sockets non-blocking
    allow_plaintext_auth: bool = False


class UnsubscribeSettings(Section):
    base_url: str = "http://127.0.0.1:8080"  # where `citesmail serve` listens by default
    mailto: str = ""

    @field_validator("base_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
            raise ValueError("an address such as 'https://lettres.example.org' is expected")
        if not value.isascii():
            encoded = quote(value, safe=":/%@!$&'()*+,;=-._~")
            raise ValueError(f"non-ASCII characters must be percent-encoded: {encoded}")
        return value

    @field_validator("mailto")
    @classmethod
    def _mail_address(cls, value: str) -> str:
        if value and (not value.isascii() or not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.\w+",
                                                                value)):
            raise ValueError("an ASCII address such as 'desinscription@example.org' is expected")
        return value


DEFAULT_CONSENT_TEXT = (
    "J'accepte de recevoir les lettres d'information et les invitations du centre de "
    "ressources par courriel. Je peux me désinscrire à tout moment par le lien présent "
    "dans chaque message.")


def _origin(value: str) -> str:
    """A web origin as browsers send it: scheme://host[:port], lower-case, no path."""
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname or \
            parts.path.strip("/") or parts.query or not value.isascii():
        raise ValueError(f"{value!r}: an origin such as 'https://www.example.org' is "
                         "expected (no path)")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def origin_of(url: str) -> str:
    """The origin (scheme://host[:port]) of an address."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


class SubscribeSettings(Section):
    """People who sign up: how long an unconfirmed sign-up is kept, what they agree to."""

    pending_days: int = Field(7, ge=1, le=365)
    consent_text: str = DEFAULT_CONSENT_TEXT
    # Days a confirmation link stays valid.
    confirm_days: int = Field(7, ge=1, le=365)
    # Sign-ups one IP address may post in 10 minutes (more get 429).
    rate_per_ip: int = Field(10, ge=1, le=100_000)
    # Other sites whose pages may post the form (`forms snippet`), as https://host[:port];
    # serve's own base_url is always allowed.
    allowed_origins: list[str] = []

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        return [_origin(value) for value in values]

    @field_validator("consent_text")
    @classmethod
    def _some_text(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the consent text shown on sign-up forms is expected")
        return value


IMAP_FOLDER = re.compile(r"[A-Za-z0-9 ._/&+-]+")


def _imap_folder(value: str) -> str:
    """A folder name sent as is: ASCII letters, digits, spaces, '.', '_', '-', '+', '&'
    and '/' between levels (replaced by the server's own separator)."""
    value = value.strip().strip("/")
    if not IMAP_FOLDER.fullmatch(value):
        raise ValueError("a folder name such as 'INBOX' or 'citesmail/processed' is expected "
                         "(ASCII letters, digits, spaces, '.', '_', '-', '/')")
    return value


class InboxSettings(Section):
    """The mailbox that `inbox fetch` (and the worker) reads over IMAP: bounces,
    complaints, unsubscribe requests ("" host = none)."""

    host: str = ""
    port: int = Field(993, ge=1, le=65535)
    security: Literal["tls", "starttls"] = "tls"
    username: str = ""
    folder: Annotated[str, AfterValidator(_imap_folder)] = "INBOX"
    processed_folder: Annotated[str, AfterValidator(_imap_folder)] = "citesmail/processed"
    poll_every: PositiveDuration = timedelta(minutes=10)
    timeout: PositiveDuration = timedelta(minutes=1)

    @property
    def enabled(self) -> bool:
        return bool(self.host.strip())


class DkimSettings(Section):
    """DKIM signing of every message; off until all three keys are set."""

    selector: str = ""
    domain: str = ""
    private_key: Path = Path("")

    @field_validator("selector", "domain")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if value and not DNS_NAME.fullmatch(value):
            raise ValueError("a DNS name is expected: letters, digits, '-' and '.' "
                             "(an international domain in its xn-- form)")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.selector and self.domain and str(self.private_key) not in {"", "."})


class ScheduleSettings(Section):
    timezone: str = "Europe/Paris"
    misfire_grace: PositiveDuration = timedelta(hours=6)  # APScheduler refuses 0
    # PostgreSQL: how soon a standby worker takes over from an active one that died.
    takeover: PositiveDuration = timedelta(seconds=30)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (try 'Europe/Paris')") from None
        return value


class TrackingSettings(Section):
    """What is measured after a send (see docs/tracking.md): clicks counted per link, and
    a person's own clicks and opens only when that person agreed."""

    # "off": links go straight to their address; "aggregate": each link goes through
    # serve's /c/ and is counted, naming nobody; "individual": as aggregate, and the
    # clicks of contacts who agreed to measurement are recorded as theirs.
    clicks: Literal["off", "aggregate", "individual"] = "aggregate"
    # "individual": a pixel in the messages of contacts who agreed to measurement only.
    opens: Literal["off", "individual"] = "off"
    # How long a person's own clicks and opens are kept; the counts stay.
    retention: PositiveDuration = timedelta(days=395)
    # The box people tick to agree (sign-up form, preference page); empty: the words of
    # the workspace language, saying what is measured and for how long.
    consent_text: str = ""

    @field_validator("consent_text")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()

    @property
    def individual(self) -> bool:
        """Something is measured per person: the consent box is offered."""
        return self.clicks == "individual" or self.opens == "individual"


class Settings(Section):
    organization: OrganizationSettings = OrganizationSettings()
    sender: SenderSettings = SenderSettings()
    campaigns: CampaignsSettings = CampaignsSettings()
    database: DatabaseSettings = DatabaseSettings()
    delivery: DeliverySettings = DeliverySettings()
    smtp: SmtpSettings = SmtpSettings()
    unsubscribe: UnsubscribeSettings = UnsubscribeSettings()
    subscribe: SubscribeSettings = SubscribeSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    dkim: DkimSettings = DkimSettings()
    inbox: InboxSettings = InboxSettings()
    tracking: TrackingSettings = TrackingSettings()

    # Not read from the file: where the workspace is, and secrets from the environment.
    workspace: Path = Field(default_factory=Path.cwd, exclude=True)
    config_path: Path | None = Field(None, exclude=True)
    secret: str | None = Field(None, exclude=True, repr=False)
    smtp_password: str | None = Field(None, exclude=True, repr=False)
    imap_password: str | None = Field(None, exclude=True, repr=False)
    # (section, key) -> the CITESMAIL_* variable that set it, to say where a value is from.
    _variables: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)

    def place(self, section: str, key: str) -> tuple[Path | str, int | None]:
        """Where a setting was given: its CITESMAIL_* variable, else its line in the
        config file (the file, or "configuration", for a default)."""
        variable = self._variables.get((section, key))
        if variable is not None:
            return variable, None
        if self.config_path is None:
            return "configuration", None
        try:
            text = self.config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return self.config_path, None
        return self.config_path, key_lines(text).get((section, key))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.schedule.timezone)

    @property
    def templates_dir(self) -> Path:
        return self.workspace / "templates"

    @property
    def campaigns_dir(self) -> Path:
        return self.workspace / "campaigns"

    def dkim_key(self) -> bytes | None:
        """The DKIM private key (PEM), when signing is configured."""
        if not self.dkim.enabled:
            return None
        path = self.workspace / self.dkim.private_key
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the DKIM private key {path}: {exc.strerror}",
                              "check [dkim] private_key, or run citesmail dkim keygen") from None

    @property
    def outbox_dir(self) -> Path:
        return self.workspace / self.delivery.outbox

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made relative to the workspace."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.workspace / url[len(prefix) :])
        return url


_NOT_FROM_FILE = {"workspace", "config_path", "secret", "smtp_password", "imap_password"}
_SECTIONS = tuple(name for name in Settings.model_fields if name not in _NOT_FROM_FILE)


_SECRET_VARIABLES = {"CITESMAIL_SECRET", "CITESMAIL_SMTP_PASSWORD", "CITESMAIL_IMAP_PASSWORD"}


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    """CITESMAIL_<SECTION>_<KEY>=value; values are read as TOML when they parse, else text."""
    found: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith("CITESMAIL_"):
            continue
        if name in _SECRET_VARIABLES:
            continue  # read as secrets, never as settings
        section, _, key = name[len("CITESMAIL_") :].lower().partition("_")
        if section not in _SECTIONS or not key:
            continue
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        found.setdefault(section, {})[key] = value
    return found


def _merge(base: dict[str, Any], extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        merged.setdefault(section, {})
        if isinstance(merged[section], dict):
            merged[section].update(values)
    return merged


def _refuse_unknown_sections(data: dict[str, Any], text: str, path: Path) -> None:
    for name in data:
        if name in _SECTIONS:
            continue
        line = line_of(key_lines(text), (name,))
        if name in {"secret", "password", "smtp_password", "imap_password"}:
            hint = ("secrets are read from CITESMAIL_SECRET, CITESMAIL_SMTP_PASSWORD and "
                    "CITESMAIL_IMAP_PASSWORD only")
        else:
            hint = did_you_mean(name, _SECTIONS) or \
                f"fix its spelling or remove it (sections: {', '.join(_SECTIONS)})"
        raise ConfigError(f"unknown key '{name}'", hint, path=path, line=line)


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: traffic that never leaves the machine."""
    name = host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# What `citesmail init` writes until told the real values (src/citesmail/skeleton/).
SAMPLE_ORGANIZATION = "Labo Cités"
SAMPLE_ADDRESS = "4 rue de l'Exemple, 69001 Lyon"
_EXAMPLE_DOMAINS = ("example.org", "example.com", "example.net")  # RFC 2606
_EXAMPLE_ENDINGS = (".example", ".test", ".invalid", ".localhost")


def _example_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in _EXAMPLE_DOMAINS or host.endswith(
        tuple(f".{domain}" for domain in _EXAMPLE_DOMAINS) + _EXAMPLE_ENDINGS)


def placeholder_values(settings: Settings) -> list[str]:
    """The settings still holding example values: links and replies would go nowhere."""
    found = []
    organization = settings.organization
    if organization.postal_address == SAMPLE_ADDRESS:
        if organization.name == SAMPLE_ORGANIZATION:
            found.append(f"[organization] name ({SAMPLE_ORGANIZATION})")
        found.append(f"[organization] postal_address ({SAMPLE_ADDRESS})")
    for key, address in (("from", settings.sender.from_),
                         ("reply_to", settings.sender.reply_to)):
        if address and _example_host(parseaddr(address)[1].rpartition("@")[2]):
            found.append(f"[sender] {key} ({parseaddr(address)[1]})")
    base_url = settings.unsubscribe.base_url
    if _example_host(urlsplit(base_url).hostname or ""):
        found.append(f"[unsubscribe] base_url ({base_url})")
    return found


def placeholder_problem(settings: Settings, sending_to: str = "") -> Problem | None:
    found = placeholder_values(settings)
    if not found:
        return None
    said = f"example values still configured: {', '.join(found)}"
    if sending_to:
        said += f"; citesmail does not send them to {sending_to}"
    return Problem(said, "set your organisation's own in config.toml (citesmail init "
                   "--organization, --postal-address, --from and --base-url write them)",
                   settings.config_path)


def plaintext_auth_problem(settings: Settings) -> Problem | None:
    """A login over an unencrypted connection to another machine: anyone on the way
    reads the password (AUTH PLAIN and LOGIN only encode it in base64)."""
    smtp = settings.smtp
    if smtp.security != "none" or not smtp.username or smtp.allow_plaintext_auth \
            or is_loopback(smtp.host):
        return None
    path, line = settings.place("smtp", "security")
    return Problem(
        f'[smtp] security = "none" with a username would send the password to {smtp.host} '
        "unencrypted",
        'use security = "starttls" or "tls"; or, if the network to that host is trusted, '
        "allow_plaintext_auth = true under [smtp]",
        path, line)


def database_exists(url: str) -> bool:
    """A SQLite file not created yet is no database yet: there is nothing to check the
    audience against (and a check must not create it). Here, not in db.py, so that a
    command can ask without importing SQLAlchemy."""
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists()


def find_config(explicit: Path | None, cwd: Path | None = None) -> Path | None:
    """The config file to use: the one given, else ./config.toml if present, else none."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(
                f"config file not found: {explicit}",
                "check the path, or run 'citesmail init' to create a workspace",
            )
        return explicit
    candidate = (cwd or Path.cwd()) / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_settings(
    config_path: Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    cwd: Path | None = None,
) -> Settings:
    environ = dict(os.environ) if environ is None else environ
    path = find_config(config_path, cwd)
    data: dict[str, Any] = {}
    text = ""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            data_bytes = path.read_bytes()
            raise ConfigError(
                f"not UTF-8 (byte 0x{data_bytes[exc.start]:02x})", "save the file as UTF-8",
                path=path, line=data_bytes.count(b"\n", 0, exc.start) + 1,
            ) from None
        data = parse_toml(text, path, error=ConfigError)
        _refuse_unknown_sections(data, text, path)
    from_env = _env_overrides(environ)
    data = _merge(_merge(data, from_env), overrides or {})
    workspace = (path.parent if path else (cwd or Path.cwd())).resolve()
    variables: dict[tuple[str, ...], str] = {(section, key): f"CITESMAIL_{section}_{key}".upper()
                 for section, values in from_env.items() for key in values}
    try:
        settings = Settings.model_validate(
            {
                **data,
                "workspace": workspace,
                "config_path": path,
                "secret": environ.get("CITESMAIL_SECRET") or None,
                "smtp_password": environ.get("CITESMAIL_SMTP_PASSWORD") or None,
                "imap_password": environ.get("CITESMAIL_IMAP_PASSWORD") or None,
            }
        )
    except ValidationError as exc:
        where = path or "configuration"
        raise ConfigError.from_problems(
            validation_problems(exc, Settings, text, where, elsewhere=variables)) from None
    settings._variables = variables
    return settings
