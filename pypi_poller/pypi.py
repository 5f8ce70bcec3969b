"""PyPI's answers, read by plain functions: no Twisted, no I/O, so each is tested with recorded answers.

Everything that comes from the index is a stranger's string: names and versions are checked
against conservative patterns and bounded in length before they go anywhere (a Change, a build
property, a log line), and anything that does not fit is rejected with a reason.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import xml.parsers.expat
import xmlrpc.client

from packaging.utils import canonicalize_name

MAX_NAME = 200  # longer names are refused: they end up in paths and file names on the workers
MAX_VERSION = 128
_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$", re.ASCII)
# PEP 440 and the legacy versions PyPI still holds ("2004d", "1.0-beta-2"): letters, digits and
# . + ! _ - only, so nothing a shell, a URL or a path would read specially.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$", re.ASCII)
_RESET = re.compile(r"reset in (\d+)\s*seconds?", re.IGNORECASE)
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
MAX_FILES = 200  # per Change: a release with more files is listed in part


class FeedError(Exception):
    """The index answered something this feed cannot use now; try again later."""


class Unavailable(FeedError):
    """The index does not offer this feed at all (404/405, not XML-RPC, not JSON): `auto` falls back."""


class RateLimited(FeedError):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def valid_name(raw) -> str | None:
    """The normalised name, or None when `raw` is not a project name we will carry."""
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_NAME or not _NAME.fullmatch(raw):
        return None
    return canonicalize_name(raw)


def valid_version(raw) -> str | None:
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_VERSION or not _VERSION.fullmatch(raw):
        return None
    return raw


def release_key(name: str, version: str) -> str:
    return f"{name}=={version}"


# -- XML-RPC ---------------------------------------------------------------------------------------

def xmlrpc_body(method: str, *params) -> bytes:
    return xmlrpc.client.dumps(tuple(params), method).encode("utf-8")


def xmlrpc_answer(body: bytes):
    """The value of an XML-RPC answer; faults and garbage become FeedErrors."""
    try:
        (value,), _method = xmlrpc.client.loads(body)
    except xmlrpc.client.Fault as fault:
        message = str(fault.faultString)[:300]
        if fault.faultCode == -32500:
            match = _RESET.search(message)
            raise RateLimited(f"XML-RPC fault -32500: {message}", float(match.group(1)) if match else 60.0) from None
        raise FeedError(f"XML-RPC fault {fault.faultCode}: {message}") from None
    except (xml.parsers.expat.ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError) as error:
        raise Unavailable(f"not an XML-RPC answer ({type(error).__name__}: {str(error)[:200]})") from None
    return value


# -- the journal -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Event:
    name: str  # normalised
    version: str | None
    timestamp: int
    kind: str  # see classify()
    serial: int
    filename: str | None = None


def classify(action: str) -> tuple[str | None, str | None]:
    """(kind, filename) of a journal action; kind None for actions that do not concern builds."""
    if action == "new release":
        return "new", None
    if action.startswith("add ") and " file " in action:
        filename = action.split(" file ", 1)[1].strip()
        if filename.endswith(".whl"):
            return "wheel", filename
        if action.startswith("add source file") or filename.endswith((".tar.gz", ".zip", ".tar.bz2", ".tgz")):
            return "sdist", filename
        return "file", filename
    return {
        "yank release": ("yank", None),
        "unyank release": ("unyank", None),
        "remove release": ("remove-release", None),
        "remove project": ("remove-project", None),
    }.get(action, (None, None))


def parse_changelog(rows) -> tuple[list[Event], list[str]]:
    """Rows of changelog_since_serial as Events in serial order, and why each other row was refused."""
    if not isinstance(rows, list):
        raise FeedError(f"changelog_since_serial answered {type(rows).__name__}, not a list")
    events, refused = [], []
    for row in rows:
        if not isinstance(row, (list, tuple)) or len(row) != 5:
            refused.append(f"not a journal row: {str(row)[:80]!r}")
            continue
        raw_name, raw_version, timestamp, action, serial = row
        if not isinstance(serial, int) or isinstance(serial, bool) or not isinstance(action, str):
            refused.append(f"row without a serial or action: {str(row)[:80]!r}")
            continue
        kind, filename = classify(action)
        if kind is None:
            continue
        name = valid_name(raw_name)
        if name is None:
            refused.append(f"serial {serial}: {str(raw_name)[:80]!r} is not a project name")
            continue
        version = None
        if kind != "remove-project":
            version = valid_version(raw_version)
            if version is None:
                refused.append(f"serial {serial}: {name} {str(raw_version)[:80]!r} is not a version we build")
                continue
        if filename is not None and (len(filename) > 255 or "/" in filename or not filename.isprintable()):
            filename = None
        events.append(Event(name, version, timestamp if isinstance(timestamp, int) else 0, kind, serial, filename))
    events.sort(key=lambda event: event.serial)
    return events, refused


# -- the JSON simple index (PEP 691) ---------------------------------------------------------------

def parse_simple_index(body: bytes, content_type: str) -> tuple[int, list[tuple[str, int]]]:
    """(the index's last serial, [(normalised name, project's last serial)]) of `GET /simple/`."""
    if SIMPLE_JSON not in (content_type or "") and not (content_type or "").startswith("application/json"):
        raise Unavailable(f"the simple index answered {content_type or 'no content type'}, not {SIMPLE_JSON}")
    try:
        document = json.loads(body)
        serial = document["meta"]["_last-serial"]
        projects = document["projects"]
    except (ValueError, KeyError, TypeError) as error:
        raise Unavailable(f"the simple index has no _last-serial ({type(error).__name__}: {str(error)[:100]})") from None
    if not isinstance(serial, int) or not isinstance(projects, list):
        raise Unavailable("the simple index's _last-serial is not a number")
    found = []
    for project in projects:
        if not isinstance(project, dict):
            continue
        name, project_serial = valid_name(project.get("name")), project.get("_last-serial")
        if name is not None and isinstance(project_serial, int):
            found.append((name, project_serial))
    return serial, found


def changed_since(projects: list[tuple[str, int]], cursor: int) -> list[tuple[str, int]]:
    """The projects changed after `cursor`, oldest change first, so the cursor can advance in steps."""
    return sorted(((name, serial) for name, serial in projects if serial > cursor), key=lambda p: p[1])


# -- the JSON API (/pypi/<name>/json) --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Release:
    name: str
    version: str
    sdists: tuple[str, ...]
    wheels: tuple[str, ...]
    others: tuple[str, ...]
    requires_python: str
    upload_time: str  # ISO 8601, of the first file
    first_upload: float  # POSIX seconds, of the first file
    yanked: bool

    @property
    def key(self) -> str:
        return release_key(self.name, self.version)

    @property
    def has_files(self) -> bool:
        return bool(self.sdists or self.wheels or self.others)


@dataclasses.dataclass(frozen=True)
class Project:
    name: str
    last_serial: int | None
    maintainers: str
    releases: dict  # version -> Release


def serial_header(value) -> int | None:
    """X-PyPI-Last-Serial: a non-negative integer, else None."""
    try:
        serial = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return serial if serial >= 0 else None


def older_than(answer_serial, journal_serial) -> bool:
    """Is an answer with this serial from before the journal's event? Unknown serials are not."""
    return isinstance(answer_serial, int) and isinstance(journal_serial, int) and answer_serial < journal_serial


def parse_time(value) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def _text(value, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    return "".join(c for c in value if c.isprintable())[:limit].strip()


def maintainers_of(document: dict) -> str:
    """The project's PyPI accounts (`ownership.roles`), else the maintainer or author in the metadata."""
    roles = (document.get("ownership") or {}).get("roles") if isinstance(document.get("ownership"), dict) else None
    users = [_text(r.get("user"), 60) for r in roles or [] if isinstance(r, dict)]
    users = [u for u in dict.fromkeys(users) if u]
    if users:
        return ", ".join(users)[:255]
    info = document.get("info") if isinstance(document.get("info"), dict) else {}
    for person, email in (("maintainer", "maintainer_email"), ("author", "author_email")):
        name, address = _text(info.get(person), 100), _text(info.get(email), 150)
        if name or address:
            return (f"{name} <{address}>" if name and address else name or address)[:255]
    return "unknown"


def parse_project(body: bytes) -> Project:
    """`/pypi/<name>/json`: every release with its files. Truncated or odd answers raise FeedError."""
    try:
        document = json.loads(body)
        info = document["info"]
        raw_name = info["name"]
        raw_releases = document.get("releases")
    except (ValueError, KeyError, TypeError) as error:
        raise FeedError(f"not a JSON API answer ({type(error).__name__}: {str(error)[:100]})") from None
    name = valid_name(raw_name)
    if name is None or not isinstance(info, dict):
        raise FeedError(f"the JSON API names the project {str(raw_name)[:80]!r}, not a project name")
    if not isinstance(raw_releases, dict):
        # Some mirrors drop the deprecated `releases`: the current release's `urls` is all there is.
        raw_releases = {info.get("version"): document.get("urls") or []}
    latest = info.get("version")
    releases = {}
    for raw_version, files in raw_releases.items():
        version = valid_version(raw_version)
        if version is None or not isinstance(files, list):
            continue
        release = _release(name, version, files, info if raw_version == latest else {})
        releases[version] = release
    serial = document.get("last_serial")
    return Project(name, serial if isinstance(serial, int) else None, maintainers_of(document), releases)


def _release(name: str, version: str, files: list, info: dict) -> Release:
    sdists, wheels, others, times, requires, yanked = [], [], [], [], "", []
    for entry in files:
        if not isinstance(entry, dict):
            continue
        filename = _text(entry.get("filename"), 255)
        if not filename or "/" in filename:
            continue
        kind = entry.get("packagetype")
        (sdists if kind == "sdist" else wheels if kind == "bdist_wheel" else others).append(filename)
        when = entry.get("upload_time_iso_8601") or entry.get("upload_time") or entry.get("upload-time")
        seconds = parse_time(when)
        if seconds is not None:
            times.append((seconds, when))
        requires = requires or _text(entry.get("requires_python"), 200)
        yanked.append(bool(entry.get("yanked")))
    requires = requires or _text(info.get("requires_python"), 200)
    first = min(times) if times else (0.0, "")
    return Release(
        name=name,
        version=version,
        sdists=tuple(sdists),
        wheels=tuple(wheels),
        others=tuple(others),
        requires_python=requires,
        upload_time=first[1] if isinstance(first[1], str) else "",
        first_upload=first[0],
        yanked=bool(yanked) and all(yanked) or bool(info.get("yanked")),
    )


# -- Changes ---------------------------------------------------------------------------------------

def change_for(project: Project, release: Release, index_url: str, trigger: str = "new release") -> dict:
    """The keyword arguments of `addChange` for one release (JSON-able, so they can wait in state)."""
    files = (list(release.sdists) + list(release.wheels) + list(release.others))[:MAX_FILES]
    what = "sdist and wheels" if release.sdists and release.wheels else "sdist only" if release.sdists else "wheels only"
    return {
        "author": project.maintainers,
        "revision": release.version,
        "project": release.name,
        "category": "release",
        "revlink": f"{index_url}/project/{release.name}/{release.version}/",
        "repository": index_url,
        "codebase": "",
        "branch": None,
        "comments": f"{release.name} {release.version} ({trigger}; {what})",
        "files": files,
        "when_timestamp": int(release.first_upload) or None,
        "properties": {
            "package": release.name,
            "version": release.version,
            "requires_python": release.requires_python,
            "upload_time": release.upload_time,
            "sdist": list(release.sdists)[:MAX_FILES],
            "wheels": list(release.wheels)[:MAX_FILES],
            "has_sdist": bool(release.sdists),
            "trigger": trigger,
        },
    }


def with_sdist(change: dict, filename: str | None) -> dict:
    """The Change to build a release again now that its sdist has come."""
    properties = dict(change["properties"])
    sdists = list(properties.get("sdist") or [])
    if filename and filename not in sdists:
        sdists.append(filename)
    properties.update(sdist=sdists, has_sdist=True, trigger="sdist added")
    files = list(change.get("files") or [])
    if filename and filename not in files:
        files.insert(0, filename)
    name, version = properties["package"], properties["version"]
    return dict(change, properties=properties, files=files[:MAX_FILES],
                comments=f"{name} {version} (sdist added: built again with the sdist)")


def skipped_change(name: str, version: str, reason: str, index_url: str) -> dict:
    """A Change the release scheduler ignores (category `skipped`), so the UI shows why."""
    return {
        "author": "pypi-poller",
        "revision": version,
        "project": name,
        "category": "skipped",
        "revlink": f"{index_url}/project/{name}/{version}/",
        "repository": index_url,
        "codebase": "",
        "branch": None,
        "comments": f"{name} {version} is not built: {reason}",
        "files": [],
        "when_timestamp": None,
        "properties": {"package": name, "version": version, "skip_reason": reason},
    }


def feed_change(feed: str, why: str, index_url: str) -> dict:
    """A Change (category `feed`, built by no scheduler) that tells the UI which feed is followed."""
    return {
        "author": "pypi-poller",
        "revision": None,
        "project": "pypi-feed",
        "category": "feed",
        "revlink": "",
        "repository": index_url,
        "codebase": "",
        "branch": None,
        "comments": f"following {index_url} through the {feed} feed: {why}",
        "files": [],
        "when_timestamp": None,
        "properties": {"feed": feed, "why": why},
    }
