"""The `[pypi]` table of farm.toml: which index the farm follows, through which feed, and what it skips.

Every error names the key and says what to do, like the rest of the farm's settings.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from pathlib import Path

from packaging.utils import canonicalize_name

from master.settings import SettingsError

FEEDS = ("auto", "changelog", "simple", "watch", "none")

# Followed when `feed` is "watch", or when "auto" finds neither the journal nor the JSON simple
# index (the case on machines behind a proxy that only passes the JSON API). Packages that release
# often and whose own tests take seconds, not minutes (or that ship none), so that a fresh farm shows
# real builds soon and a rebuild someone forces is not stuck behind a long suite.
DEFAULT_WATCH = (
    "boto3", "platformdirs", "filelock", "cachetools", "types-requests", "types-setuptools",
    "certifi", "idna", "six", "iniconfig",
)
_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$", re.ASCII)


@dataclasses.dataclass(frozen=True)
class SkipEntry:
    """A package the farm never builds, and why (the reason is shown with each skipped release)."""

    name: str  # normalised (PEP 503)
    reason: str


@dataclasses.dataclass(frozen=True)
class PypiSettings:
    url: str = "https://pypi.org"
    feed: str = "auto"
    # Seconds between two polls: a release waits up to this long to be seen, so it bounds how soon a
    # maintainer sees a result. 30 s is at the polite end of PyPI's advice (one call every 30-60 s).
    poll_interval: int = 30
    contact: str = ""
    watch: tuple[str, ...] = DEFAULT_WATCH
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    skip: tuple[SkipEntry, ...] = ()
    # Seconds a release with wheels but no sdist waits for its sdist before it is built anyway.
    sdist_wait: int = 120
    # Build what was published before the first start: false = begin at the current serial.
    backfill: bool = False
    # On the first start of the watch feed, the latest release of each watched package counts as
    # new if it was uploaded less than this many seconds ago (0: only releases after the start).
    watch_recent: int = 7 * 24 * 3600
    # Serials behind the cursor the changelog feed reads again, for transactions committed late.
    margin: int = 1000
    # Seconds before one HTTP request is given up.
    timeout: int = 30

    @property
    def user_agent(self) -> str:
        contact = self.contact or "no contact configured: set pypi.contact in farm.toml"
        return f"pypi-test-farm/0.1 (Buildbot change source; {contact})"

    def skip_reason(self, name: str) -> str | None:
        return next((entry.reason for entry in self.skip if entry.name == name), None)

    def wanted(self, name: str) -> bool:
        """include/exclude are shell-style patterns (fnmatch) on the normalised name."""
        if self.include and not any(fnmatch.fnmatchcase(name, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)


def _count(value: int, key: str, error) -> int:
    if value < 0:
        raise error(key, f"must be 0 or more, not {value}.")
    return value


def parse(table: dict, source: Path, environ=os.environ) -> PypiSettings:
    """The `[pypi]` table (an empty dict when absent) as settings; FARM_PYPI_URL overrides `url`."""
    if not isinstance(table, dict):
        raise SettingsError(f"{source}: 'pypi' must be a table ([pypi]), not {table!r}.")
    used: set[str] = set()

    def error(key: str, message: str) -> SettingsError:
        return SettingsError(f"{source}: 'pypi.{key}' {message}")

    def get(key, kind, default, what):
        used.add(key)
        if key not in table:
            return default
        value = table[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise error(key, f"must be {what}, not {value!r}.")
        return value

    def seconds(key, default, minimum):
        value = get(key, int, default, "a whole number of seconds")
        if value < minimum:
            raise error(key, f"must be {minimum} seconds or more, not {value}.")
        return value

    def names(key, default, patterns=False):
        value = get(key, list, default, "a list of package names" + (" or patterns" if patterns else ""))
        for item in value:
            if not isinstance(item, str) or not item or (not patterns and not _NAME.fullmatch(item)):
                raise error(key, f"must list package names like \"requests\"; {item!r} is not one.")
        return tuple(canonicalize_name(item) for item in value)

    url = get("url", str, PypiSettings.url, "a string")
    url = environ.get("FARM_PYPI_URL") or url
    if not url.startswith(("http://", "https://")):
        raise error("url", f"must be the http(s) address of a PyPI-like index (\"https://pypi.org\"), not {url!r}.")
    feed = get("feed", str, "auto", "a string")
    if feed not in FEEDS:
        raise error("feed", f"must be one of {', '.join(FEEDS)}, not {feed!r}.")
    contact = get("contact", str, "", "a string (an e-mail address or URL the index can reach you at)")
    if any(c in contact for c in "\r\n") or len(contact) > 200:
        raise error("contact", f"must be one short line (an e-mail address or URL), not {contact!r}.")

    skip = []
    for position, entry in enumerate(get("skip", list, [], "a list of tables like {name = \"x\", reason = \"why\"}")):
        if not isinstance(entry, dict) or set(entry) != {"name", "reason"}:
            raise error(f"skip[{position}]", f"must be a table with exactly 'name' and 'reason' (the UI shows the reason), not {entry!r}.")
        name, reason = entry["name"], entry["reason"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise error(f"skip[{position}].name", f"must be a package name, not {name!r}.")
        if not isinstance(reason, str) or not reason.strip():
            raise error(f"skip[{position}].reason", "must say why the package is skipped; the UI shows it.")
        skip.append(SkipEntry(canonicalize_name(name), reason.strip()))

    settings = PypiSettings(
        url=url.rstrip("/"),
        feed=feed,
        poll_interval=seconds("poll_interval", PypiSettings.poll_interval, 10),
        contact=contact,
        watch=names("watch", list(DEFAULT_WATCH)),
        include=names("include", [], patterns=True),
        exclude=names("exclude", [], patterns=True),
        skip=tuple(skip),
        sdist_wait=seconds("sdist_wait", 120, 0),
        backfill=get("backfill", bool, False, "true or false"),
        watch_recent=seconds("watch_recent", PypiSettings.watch_recent, 0),
        margin=_count(get("margin", int, 1000, "a whole number of serials"), "margin", error),
        timeout=seconds("timeout", 30, 1),
    )
    if feed == "watch" and not settings.watch:
        raise error("watch", "must name at least one package when feed = \"watch\".")
    unknown = sorted(set(table) - used)
    if unknown:
        raise error(unknown[0], "is not a known setting; check its spelling.")
    return settings
