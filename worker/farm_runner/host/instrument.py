"""Which pytest tests a release, when its project pins none: the newest pytest the release could
know. A release is tested with the newest pytest published before it was (on the index's upload
times, PEP 700), but never one older than the interpreter: a pytest must have had the chance to
learn the Python it runs on (its X.Y.0 release, plus SUPPORT_DELAY). Without upload times (an
index that gives none, a local file) it is the newest pytest.

Why: pytest removes deprecated features in its major releases (pytest 8 dropped `nose` support and
`setup`/`teardown` methods of that style, pytest 9 more), so a release from 2023 run under
today's pytest can fail for the farm's choice of pytest, not for its own code."""

import datetime
import json
import os
import time

from farm_runner._vendor.packaging.version import InvalidVersion, Version
from farm_runner.host import index

# The X.Y.0 release of each CPython (python.org); a newer one than listed is taken as "today".
PYTHON_RELEASED = {
    (2, 7): "2010-07-03", (3, 5): "2015-09-13", (3, 6): "2016-12-23", (3, 7): "2018-06-27",
    (3, 8): "2019-10-14", (3, 9): "2020-10-05", (3, 10): "2021-10-04", (3, 11): "2022-10-24",
    (3, 12): "2023-10-02", (3, 13): "2024-10-07", (3, 14): "2025-10-07",
}
SUPPORT_DELAY = datetime.timedelta(days=90)  # the time pytest takes to support a new Python, at most
LIST_MAX_AGE = 86400  # seconds: pytest's releases are looked up again once a day


def parse_time(text):
    """A PEP 700 upload time ("2024-01-27T10:11:12.345678Z") as an aware datetime, or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")[:32])
    except ValueError:
        return None


def cutoff(released, version_info):
    """The latest upload time a pytest may have: the release's, but not before the interpreter was
    supported; None (no cutoff: the newest pytest) when the release's time is unknown."""
    when = parse_time(released)
    if when is None:
        return None
    python = PYTHON_RELEASED.get(tuple(version_info[:2]))
    if python is None:
        return None  # an interpreter newer than this table: only the newest pytest may know it
    learned = datetime.datetime.fromisoformat(python + "T00:00:00+00:00") + SUPPORT_DELAY
    return max(when, learned)


def month_end(when):
    """The start of the month after `when` (RFC 3339, UTC): what the test tools resolve as of."""
    if when is None:
        return None
    when = when.astimezone(datetime.timezone.utc)
    year, month = (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
    return "%04d-%02d-01T00:00:00Z" % (year, month)


def pytest_releases(index_url, cache_file):
    """[(version, upload time of its first wheel, requires_python)] of pytest's releases on the
    index that have a wheel (the test tools are installed from wheels only: nothing of theirs runs on
    the host), cached for a day in a file of the runner's own."""
    try:
        if time.time() - os.stat(cache_file).st_mtime < LIST_MAX_AGE:
            with open(cache_file, encoding="utf-8") as fh:
                return [tuple(r) for r in json.load(fh)]
    except (OSError, ValueError):
        pass
    releases = {}
    for f in index.fetch_project_files(index_url, "pytest"):
        if f["version"] and not f["yanked"] and f.get("upload_time") and index.file_kind(f["filename"]) == "wheel":
            first = releases.get(f["version"])
            if first is None or f["upload_time"] < first[1]:
                releases[f["version"]] = (f["version"], f["upload_time"], f["requires_python"])
    out = sorted(releases.values())
    tmp = "%s.%d.tmp" % (cache_file, os.getpid())
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    os.replace(tmp, cache_file)
    return out


def choose(releases, limit, python_version):
    """The newest final pytest uploaded by `limit` whose Requires-Python admits the interpreter,
    or None (then the newest)."""
    best = None
    for version, uploaded, requires_python in releases:
        try:
            v = Version(version)
        except InvalidVersion:
            continue
        when = parse_time(uploaded)
        if v.is_prerelease or when is None or when > limit:
            continue
        if requires_python and not index.requires_python_allows(requires_python, python_version):
            continue
        if best is None or v > best:
            best = v
    return str(best) if best else None
