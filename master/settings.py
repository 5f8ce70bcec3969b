"""The farm's settings: one object loaded from farm.toml, validated on load.

Every error names the key it is about and says what to do, because the first reader of it is an
operator who just edited the file. Secrets are never stored here: a setting names the file or the
environment variable that holds them (see master/secrets.py).
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import re
import sys
import tomllib
from pathlib import Path

from farm_runner import contract

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "farm.toml"

OS_NAMES = ("linux", "macos", "windows")
PYTHON_VERSION = re.compile(contract.SLOT_PYTHON)  # "3.12", or "3.13t" for a free-threaded build
WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SettingsError(ValueError):
    """farm.toml (or the file FARM_CONFIG names) says something the farm cannot use."""


# The [pypi] table is the change source's own; it raises SettingsError, hence the late import.
from pypi_poller import settings as pypi_settings  # noqa: E402


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    name: str
    os: str
    # Python versions ("3.12") the worker serves; "auto" means: the interpreters the runner finds
    # on this machine (only meaningful for a worker on the master's own machine).
    pythons: tuple[str, ...] | str
    password_file: Path | None
    password_env: str | None
    # The interpreter that runs the runner (runner.pyz) on the worker (3.9 or newer); "auto" is the
    # master's own interpreter, which is right for the local worker only.
    runner_python: str
    max_builds: int
    local: bool


_DEFAULT = contract.DEFAULT_LIMITS  # the runner's own defaults, so farm.toml's match its flags


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one phase of one build may use; passed to the runner as its flags."""

    timeout: int = _DEFAULT["timeout"]  # seconds of wall time
    silence_timeout: int = _DEFAULT["silence_timeout"]  # seconds without output
    memory_mb: int = _DEFAULT["memory_mb"]
    processes: int = _DEFAULT["processes"]
    disk_mb: int = _DEFAULT["disk_mb"]  # the build's own folders
    max_log_mb: int = _DEFAULT["max_log_mb"]
    # auto: bubblewrap where it works, else refuse; bwrap: bubblewrap or refuse; none: no sandbox.
    sandbox: str = "auto"

    def runner_flags(self) -> list[str]:
        return [
            "--timeout", str(self.timeout),
            "--silence-timeout", str(self.silence_timeout),
            "--memory", f"{self.memory_mb}M",
            "--processes", str(self.processes),
            "--disk", f"{self.disk_mb}M",
            "--max-log", f"{self.max_log_mb}M",
            "--sandbox", self.sandbox,
        ]


ADMIN_USER = "admin"
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# (no control character either: a NUL would make two different signed links sign the same bytes)
ADDRESS = re.compile(r"^[^@\s<>\x00-\x1f\x7f]+@[^@\s<>\x00-\x1f\x7f]+$")


@dataclasses.dataclass(frozen=True)
class AccessSettings:
    """Who may force, stop and rebuild (the `admins` role); everyone else reads only."""

    admins: tuple[str, ...] = (ADMIN_USER,)
    # `user:password` lines, outside the repo (master/access.py creates admin's on first run).
    users_file: Path | None = None


@dataclasses.dataclass(frozen=True)
class MailSettings:
    """Mail to registered maintainers (on change only) and to the operators (infra errors)."""

    enabled: bool = False
    sender: str = "PyPI test farm <farm@localhost>"
    relay_host: str = "localhost"
    relay_port: int = 25
    use_tls: bool = False
    smtp_user: str = ""
    smtp_password_env: str | None = None
    smtp_password_file: Path | None = None
    operators: tuple[str, ...] = ()
    # Who wants mail for which package (master/maintainers.py); reloaded on `buildbot reconfig`.
    maintainers_file: Path | None = None
    # Also ask the maintainer and author addresses of the package's own metadata on PyPI to
    # confirm; once confirmed they get mail as registrations do (master/recipients.py).
    pypi_addresses: bool = False
    # At most this many addresses mailed for one project's release; at most this many mails to
    # one address a day (past it, its changes wait for its digest).
    max_recipients: int = 5
    max_mails_per_address: int = 20
    # Addresses from metadata the farm asks to confirm, at most, in a day (one uploader may own
    # many projects: this bounds the mail a stranger can make the farm send to strangers).
    max_questions_per_day: int = 100
    # Seconds between two digests, for registrations that asked for one.
    digest_interval: int = 24 * 3600
    # Seconds a worker may stay away before the operators are mailed that it is missing.
    worker_missing_after: int = 3600


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """Several masters on one database (Buildbot's multi-master): `router` is the Crossbar router
    of the WAMP message queue between them; empty, this master is the only one."""

    router: str = ""
    realm: str = "farm"
    # Seconds a master may stay silent before the others take it for dead, retry its builds and
    # take over its services (Buildbot's heartbeat is every 60 s; its own default is 600).
    master_timeout: int = 600
    # Seconds between a master's tries to take over a service another master held (Buildbot: 300).
    claim_interval: int = 60
    # false: this master only builds and serves the UI; the change source and the farm's duties
    # (re-test top-ups, mail digests) always run on the masters that have it true.
    services: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.router)


@dataclasses.dataclass(frozen=True)
class RetentionSettings:
    """How long the database keeps logs and build data (Buildbot's janitor, once a day); 0: forever."""

    log_days: int = 0
    build_days: int = 0
    # The hour (0-23, the master's local time) the janitor runs at.
    hour: int = 3


ROLLING_SETS = ("all", "watch", "file:PATH")
DURATION = re.compile(r"^(\d+)\s*([smhdw]?)$")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclasses.dataclass(frozen=True)
class RollingSettings:
    """Re-tests of packages already tested (master/retests.py): rolling, and on dependency releases."""

    # Re-test the latest release of every package of `set`, least recently tested first.
    enabled: bool = False
    # "all": every project of the index followed ([pypi] url's simple index, read once a day);
    # "watch": [pypi] watch; "file": the names in set_file (one a line, # comments).
    set: str = "watch"
    set_file: Path | None = None
    # The period the operator hopes each package is re-tested in on every slot; the overview shows
    # the period achieved at the current rate.
    period: int = 7 * 86400
    period_text: str = "7d"
    # Re-test the packages of the set that depend on a package when it has a new release.
    dependants: bool = False
    # Re-test requests kept pending per slot; 0: twice the slot's capacity (its workers' max_builds).
    pending_per_slot: int = 0
    # Seconds between two top-ups of the re-test queue.
    top_up_interval: int = 30

    @property
    def active(self) -> bool:
        return self.enabled or self.dependants


@dataclasses.dataclass(frozen=True)
class Settings:
    source: Path
    title: str
    title_url: str
    buildbot_url: str
    http_port: int
    pb_port: int
    db_url: str
    basedir: Path
    secrets_dir: Path
    index_url: str
    workers: tuple[WorkerSettings, ...]
    limits: Limits
    retries: int
    pypi: pypi_settings.PypiSettings
    access: AccessSettings = AccessSettings()
    mail: MailSettings = MailSettings()
    rolling: RollingSettings = RollingSettings()
    # [farm] sdist_check: also build each release from its sdist when the test used a wheel.
    sdist_check: bool = False
    cluster: ClusterSettings = ClusterSettings()
    retention: RetentionSettings = RetentionSettings()

    @property
    def local_worker(self) -> WorkerSettings | None:
        return next((w for w in self.workers if w.local), None)


def load(path: str | os.PathLike | None = None, environ=os.environ) -> Settings:
    """Read the settings from `path`, else $FARM_CONFIG, else the checked-in farm.toml."""
    path = Path(path or environ.get("FARM_CONFIG") or DEFAULT_FILE).resolve()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file; copy farm.toml or unset FARM_CONFIG.") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML ({error}); fix the file and try again.") from None
    return parse(raw, path, environ)


class _Table:
    """Typed access to one TOML table that names the key in every error."""

    def __init__(self, source: Path, prefix: str, data):
        if not isinstance(data, dict):
            raise SettingsError(f"{source}: '{prefix}' must be a table ([{prefix}]).")
        self.source, self.prefix, self.data = source, prefix, data
        self.used: set[str] = set()

    def error(self, key: str, message: str) -> SettingsError:
        name = f"{self.prefix}.{key}" if self.prefix else key
        return SettingsError(f"{self.source}: '{name}' {message}")

    def get(self, key: str, kind: type, default=dataclasses.MISSING):
        self.used.add(key)
        if key not in self.data:
            if default is dataclasses.MISSING:
                raise self.error(key, "is required.")
            return default
        value = self.data[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise self.error(key, f"must be {_KIND_NAMES[kind]}, not {value!r}.")
        return value

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "is not a known setting; check its spelling.")


_KIND_NAMES = {str: "a string", int: "a whole number", list: "a list", dict: "a table", bool: "true or false"}


def _port(table: _Table, key: str, default: int, env_name: str, environ) -> int:
    value = table.get(key, int, default)  # read (and checked) even when the environment overrides it
    if environ.get(env_name):
        try:
            value = int(environ[env_name])
        except ValueError:
            raise SettingsError(f"${env_name} must be a port number, not {environ[env_name]!r}.") from None
        if not 0 < value < 65536:
            raise SettingsError(f"${env_name} must be a port number between 1 and 65535, not {value}.")
    if not 0 < value < 65536:
        raise table.error(key, f"must be a port number between 1 and 65535, not {value}.")
    return value


def _overridden(value, env_name: str, environ):
    """The file's value (read first, so its key counts as known), or the environment's."""
    return environ.get(env_name) or value


def parse(raw: dict, source: Path, environ=os.environ) -> Settings:
    base = source.parent
    top = _Table(source, "", raw)
    master = _Table(source, "master", top.get("master", dict, {}))
    index = _Table(source, "index", top.get("index", dict, {}))
    limits = _Table(source, "limits", top.get("limits", dict, {}))
    access = _Table(source, "access", top.get("access", dict, {}))
    mail = _Table(source, "mail", top.get("mail", dict, {}))
    rolling = _Table(source, "rolling", top.get("rolling", dict, {}))
    farm = _Table(source, "farm", top.get("farm", dict, {}))
    cluster = _Table(source, "cluster", top.get("cluster", dict, {}))
    retention = _Table(source, "retention", top.get("retention", dict, {}))
    http_port = _port(master, "http_port", 8010, "FARM_HTTP_PORT", environ)
    settings = Settings(
        source=source,
        title=master.get("title", str, "PyPI test farm"),
        title_url=master.get("title_url", str, "https://pypi.org/"),
        buildbot_url=master.get("url", str, f"http://localhost:{http_port}/"),
        http_port=http_port,
        pb_port=_port(master, "pb_port", 9989, "FARM_PB_PORT", environ),
        db_url=master.get("db_url", str, "sqlite:///state.sqlite"),
        basedir=base / master.get("basedir", str, "var/master"),
        secrets_dir=base / master.get("secrets_dir", str, "var/secrets"),
        index_url=_overridden(index.get("url", str, "https://pypi.org/simple"), "FARM_INDEX_URL", environ),
        workers=tuple(_worker(source, i, w) for i, w in enumerate(top.get("workers", list, []))),
        limits=_limits(limits),
        retries=limits.get("retries", int, 1),
        pypi=pypi_settings.parse(top.get("pypi", dict, {}), source, environ),
        access=_access(access, base),
        mail=_mail(mail, base),
        rolling=_rolling(rolling, base),
        sdist_check=farm.get("sdist_check", bool, False),
        cluster=_cluster(cluster),
        retention=_retention(retention),
    )
    if not settings.buildbot_url.endswith("/"):
        raise master.error("url", "must end with '/'.")
    if not settings.index_url.startswith(("http://", "https://")):
        raise index.error("url", f"must be an http(s) URL of a simple index, not {settings.index_url!r}.")
    if not settings.workers:
        raise top.error("workers", "must list at least one worker ([[workers]]).")
    names = [w.name for w in settings.workers]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise top.error("workers", f"names the worker {duplicate!r} twice; worker names must be unique.")
    if sum(w.local for w in settings.workers) > 1:
        raise top.error("workers", "has more than one worker with local = true; there is one local worker.")
    if settings.retries < 0:
        raise limits.error("retries", "must be 0 or more.")
    if settings.cluster.enabled and settings.db_url.startswith("sqlite"):
        raise cluster.error("router", "needs a database the masters share: set [master] db_url to PostgreSQL.")
    for table in (top, master, index, limits, access, mail, rolling, farm, cluster, retention):
        table.check_unknown()
    return settings


def _positive(table: _Table, key: str, default: int, what: str = "number of seconds") -> int:
    value = table.get(key, int, default)
    if value <= 0:
        raise table.error(key, f"must be a positive {what}, not {value}.")
    return value


def _cluster(table: _Table) -> ClusterSettings:
    defaults = ClusterSettings()
    router = table.get("router", str, defaults.router)
    if router and not router.startswith(("ws://", "wss://")):
        raise table.error("router", f"must be the router's WebSocket URL (ws://host:port/ws), not {router!r}.")
    values = {key: table.get(key, int, getattr(defaults, key)) for key in ("master_timeout", "claim_interval")}
    if values["master_timeout"] < 90:
        raise table.error("master_timeout", "must be 90 seconds or more: masters say they are alive once a minute.")
    if values["claim_interval"] <= 0:
        raise table.error("claim_interval", "must be a positive number of seconds.")
    return ClusterSettings(router=router, realm=table.get("realm", str, defaults.realm),
                           services=table.get("services", bool, defaults.services), **values)


def _retention(table: _Table) -> RetentionSettings:
    defaults = RetentionSettings()
    values = {key: table.get(key, int, getattr(defaults, key)) for key in ("log_days", "build_days", "hour")}
    for key in ("log_days", "build_days"):
        if values[key] < 0:
            raise table.error(key, "must be 0 (keep for ever) or a number of days.")
    if not 0 <= values["hour"] <= 23:
        raise table.error("hour", "must be an hour from 0 to 23.")
    return RetentionSettings(**values)


def _limits(table: _Table) -> Limits:
    defaults = Limits()
    values = {}
    for field in dataclasses.fields(Limits):
        if field.name == "sandbox":
            continue
        value = table.get(field.name, int, getattr(defaults, field.name))
        if value <= 0:
            raise table.error(field.name, f"must be a positive number, not {value}.")
        values[field.name] = value
    sandbox = table.get("sandbox", str, defaults.sandbox)
    if sandbox not in contract.SANDBOX_MODES:
        raise table.error("sandbox", f"must be one of {', '.join(contract.SANDBOX_MODES)}, not {sandbox!r}.")
    return Limits(sandbox=sandbox, **values)


def _access(table: _Table, base: Path) -> AccessSettings:
    admins = table.get("admins", list, [ADMIN_USER])
    bad = next((name for name in admins if not isinstance(name, str) or not USER_NAME.match(name)), None)
    if bad is not None:
        raise table.error("admins", f"must list user names (letters, digits, '.', '_', '-', '@'); {bad!r} is not one.")
    users_file = table.get("users_file", str, "var/secrets/users.pass")
    return AccessSettings(admins=tuple(admins), users_file=base / users_file)


def _mail(table: _Table, base: Path) -> MailSettings:
    defaults = MailSettings()
    sender = table.get("from", str, defaults.sender)
    if not ADDRESS.match(email.utils.parseaddr(sender)[1]):
        raise table.error("from", f"must be a mail address (like \"Farm <farm@example.org>\"), not {sender!r}.")
    operators = table.get("operators", list, [])
    bad = next((a for a in operators if not isinstance(a, str) or not ADDRESS.match(a)), None)
    if bad is not None:
        raise table.error("operators", f"must list mail addresses; {bad!r} is not one.")
    relay_port = table.get("relay_port", int, defaults.relay_port)
    if not 0 < relay_port < 65536:
        raise table.error("relay_port", f"must be a port number between 1 and 65535, not {relay_port}.")
    digest_interval = table.get("digest_interval", int, defaults.digest_interval)
    if digest_interval <= 0:
        raise table.error("digest_interval", f"must be a positive number of seconds, not {digest_interval}.")
    password_file = table.get("smtp_password_file", str, None)
    settings = MailSettings(
        enabled=table.get("enabled", bool, defaults.enabled),
        sender=sender,
        relay_host=table.get("relay_host", str, defaults.relay_host),
        relay_port=relay_port,
        use_tls=table.get("use_tls", bool, defaults.use_tls),
        smtp_user=table.get("smtp_user", str, ""),
        smtp_password_env=table.get("smtp_password_env", str, None),
        smtp_password_file=base / password_file if password_file else None,
        operators=tuple(operators),
        maintainers_file=base / table.get("maintainers_file", str, "var/maintainers.toml"),
        pypi_addresses=table.get("pypi_addresses", bool, defaults.pypi_addresses),
        digest_interval=digest_interval,
        max_recipients=_positive(table, "max_recipients", defaults.max_recipients, "number"),
        max_mails_per_address=_positive(table, "max_mails_per_address", defaults.max_mails_per_address,
                                        "number"),
        max_questions_per_day=_positive(table, "max_questions_per_day", defaults.max_questions_per_day,
                                        "number"),
        worker_missing_after=_positive(table, "worker_missing_after", defaults.worker_missing_after),
    )
    if settings.smtp_user and not (settings.smtp_password_env or settings.smtp_password_file):
        raise table.error("smtp_password_file", "or 'smtp_password_env' must say where the SMTP password is.")
    return settings


def parse_duration(text: str) -> int | None:
    """Seconds of "7d", "12h", "30m", "90s", "2w" or "3600"; None when it is none of these."""
    match = DURATION.match(text.strip().lower())
    if not match:
        return None
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def _rolling(table: _Table, base: Path) -> RollingSettings:
    defaults = RollingSettings()
    chosen = table.get("set", str, defaults.set)
    set_file = None
    if chosen.startswith("file:"):
        if not chosen[len("file:"):].strip():
            raise table.error("set", 'must name the file after "file:", like "file:var/rolling.txt".')
        set_file = base / chosen[len("file:"):].strip()
        chosen = "file"
    elif chosen not in ("all", "watch"):
        raise table.error("set", f"must be one of {', '.join(ROLLING_SETS)}, not {chosen!r}.")
    period_text = table.get("period", str, defaults.period_text)
    period = parse_duration(period_text)
    if not period:
        raise table.error("period", f'must be a duration like "7d", "12h", "30m" or "2w", not {period_text!r}.')
    pending = table.get("pending_per_slot", int, defaults.pending_per_slot)
    if pending < 0:
        raise table.error("pending_per_slot", f"must be 0 (twice the slot's capacity) or more, not {pending}.")
    interval = table.get("top_up_interval", int, defaults.top_up_interval)
    if interval < 1:
        raise table.error("top_up_interval", f"must be 1 second or more, not {interval}.")
    return RollingSettings(
        enabled=table.get("enabled", bool, defaults.enabled),
        set=chosen,
        set_file=set_file,
        period=period,
        period_text=period_text,
        dependants=table.get("dependants", bool, defaults.dependants),
        pending_per_slot=pending,
        top_up_interval=interval,
    )


def _worker(source: Path, position: int, data) -> WorkerSettings:
    table = _Table(source, f"workers[{position}]", data)
    name = table.get("name", str)
    if not WORKER_NAME.match(name):
        raise table.error("name", f"must be letters, digits, '.', '_' or '-', not {name!r}.")
    local = table.get("local", bool, False)
    os_name = table.get("os", str, _this_os() if local else dataclasses.MISSING)
    if os_name not in OS_NAMES:
        raise table.error("os", f"must be one of {', '.join(OS_NAMES)}, not {os_name!r}.")
    pythons = table.get("pythons", (list, str), "auto" if local else dataclasses.MISSING)
    if isinstance(pythons, str):
        if pythons != "auto" or not local:
            raise table.error("pythons", 'must be a list of versions like ["3.12"] ("auto" only for the local worker).')
    else:
        bad = next((p for p in pythons if not isinstance(p, str) or not PYTHON_VERSION.match(p)), None)
        if bad is not None:
            raise table.error("pythons", f'must list versions like "3.12" (or "3.13t", free-threaded); '
                                         f'{bad!r} is not one.')
        pythons = tuple(pythons)
    password_file = table.get("password_file", str, None)
    password_env = table.get("password_env", str, None)
    if not password_file and not password_env:
        raise table.error("password_file", "or 'password_env' must say where the worker's password is.")
    max_builds = table.get("max_builds", int, 2)
    if max_builds < 1:
        raise table.error("max_builds", "must be 1 or more.")
    runner_python = table.get("runner_python", str, "auto" if local else "python3")
    if runner_python == "auto" and not local:
        raise table.error("runner_python", "must name the worker's interpreter; 'auto' is for the local worker.")
    table.check_unknown()
    return WorkerSettings(
        name=name,
        os=os_name,
        pythons=pythons,
        password_file=source.parent / password_file if password_file else None,
        password_env=password_env,
        runner_python=sys.executable if runner_python == "auto" else runner_python,
        max_builds=max_builds,
        local=local,
    )


_KIND_NAMES[(list, str)] = "a list or a string"


def _this_os() -> str:
    return {"darwin": "macos", "win32": "windows"}.get(sys.platform, "linux")
