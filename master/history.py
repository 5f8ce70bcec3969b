"""What the farm has recorded about one package: its Changes (releases, rebuilds, skipped
releases) and the builds of each, newest first. Shared by the package page and the mail.

Every query is bounded: the package's latest Changes (by `project`, which the poller and the
rebuild scheduler set to the package's normalised name), then the builds of each of those.
"""

from __future__ import annotations

from buildbot.data import resultspec
from buildbot.process.results import FAILURE, SUCCESS, WARNINGS
from twisted.internet import defer

# The build properties the pages and mails read; `report` stays out (it can be large), `tests` is
# its bounded story of the test run (steps/runner_steps.py).
PROPERTIES = ("package", "version", "outcome", "reason", "reproduce", "runner_limits",
              "sdist_outcome", "retest", "because", "tests")
MAX_CHANGES = 100


def verdict(results) -> str | None:
    """A build's result as a maintainer sees it: failing, passing, or no verdict (None).

    Not applicable (SKIPPED), infrastructure errors (RETRY, EXCEPTION) and cancelled builds say
    nothing about the package, so they neither start nor end a failure.
    """
    if results == FAILURE:
        return "failing"
    if results in (SUCCESS, WARNINGS):
        return "passing"
    return None


def property_value(build: dict, name: str, default=None):
    value = (build.get("properties") or {}).get(name)
    return value[0] if value else default


@defer.inlineCallbacks
def package_changes(master, package: str, limit: int = 30):
    """The package's latest Changes, newest first."""
    return (
        yield master.data.get(
            ("changes",),
            filters=[resultspec.Filter("project", "eq", [package])],
            order=["-changeid"],
            limit=min(limit, MAX_CHANGES),
        )
    )


@defer.inlineCallbacks
def builds_of_changes(master, changes: list[dict], properties=PROPERTIES) -> list[dict]:
    """The builds of these Changes with the named properties, each once, newest first."""
    builds: dict[int, dict] = {}
    for change in changes:
        spec = resultspec.ResultSpec(properties=[resultspec.Property(b"property", "eq", list(properties))])
        for build in (yield master.data.get_with_resultspec(("changes", change["changeid"], "builds"), spec)):
            builds[build["buildid"]] = build
    return sorted(builds.values(), key=lambda b: b["buildid"], reverse=True)


@defer.inlineCallbacks
def previous_verdicts(master, package: str, current: dict[int, int], limit: int = 30) -> dict[int, dict]:
    """{builderid: the package's latest build with a verdict before `current[builderid]` (a buildid)}.

    `current` maps each builder to the build just finished there; builds of the same release
    count too, so a rebuild that fails again is no news.
    """
    changes = yield package_changes(master, package, limit)
    builds = yield builds_of_changes(master, changes, properties=("outcome", "version"))
    found: dict[int, dict] = {}
    for build in builds:  # newest first
        builderid = build["builderid"]
        if builderid not in current or builderid in found or build["buildid"] >= current[builderid]:
            continue
        if build["complete"] and verdict(build["results"]) is not None:
            found[builderid] = build
    return found
