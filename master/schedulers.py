"""What starts builds: a release from the feed, or a rebuild someone forced.

Both give one build request per slot whose properties say which release (`package`, `version`).
Requests collapse only when they are for the same release on the same slot: Buildbot's default
would merge requests for different packages, which all look alike to it. Re-tests
(master/retests.py) come through `RetestScheduler`. Priorities (master/priorities.py): rebuilds
100, releases from the feed 50, re-tests 0; a request never collapses into one of lower priority.
"""

from __future__ import annotations

from buildbot.data import resultspec
from buildbot.plugins import schedulers, util
from buildbot.process.properties import Properties
from buildbot.schedulers.base import ReconfigurableBaseScheduler
from packaging.utils import canonicalize_name
from twisted.internet import defer

from master import priorities

# PEP 508 names and PEP 440-ish versions: what the form accepts before a build is queued.
PACKAGE_NAME = r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$"
VERSION = r"^$|^[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}$"
REBUILD_PRIORITY = priorities.REBUILD


def release_scheduler(builder_names: list[str]) -> schedulers.AnyBranchScheduler:
    """One build on every slot for each release Change (project = package, revision = version)."""
    return schedulers.AnyBranchScheduler(
        name="releases",
        builderNames=builder_names,
        change_filter=util.ChangeFilter(category="release"),
        treeStableTimer=None,
        # A new release goes before re-tests, after rebuilds someone is waiting for.
        priority=priorities.RELEASE,
    )


class RebuildScheduler(schedulers.ForceScheduler):
    """Force one release (by name, optional version) on all slots, or on the slots picked.

    The UI's force dialog sends the id of the builder it was opened from; a rebuild is about a
    package, so it goes to every slot unless the form's `slots` field names some.
    """

    @defer.inlineCallbacks
    def force(self, owner, builderNames=None, builderid=None, **kwargs):
        picked = kwargs.get("slots") or []
        picked = [picked] if isinstance(picked, str) else list(picked)
        if builderNames:
            picked = list(builderNames)
        unknown = sorted(set(picked) - set(self.builderNames))
        if unknown:
            raise KeyError(f"no such slot: {', '.join(unknown)}; the slots are {', '.join(self.builderNames)}")
        return (yield super().force(owner, builderNames=picked or list(self.builderNames), **kwargs))

    @defer.inlineCallbacks
    def gatherPropertiesAndChanges(self, collector, **kwargs):
        properties, changeids, sourcestamps = yield super().gatherPropertiesAndChanges(collector, **kwargs)
        if properties.getProperty("package"):
            properties.setProperty("package", canonicalize_name(properties.getProperty("package")), "Force Build Form")
        return properties, changeids, sourcestamps

    @defer.inlineCallbacks
    def addBuildsetForSourceStampsWithDefaults(self, reason, sourcestamps=None, properties=None, builderNames=None, **kw):
        # Tie the rebuild to the release's Change, so the console shows it in the release's row.
        package = properties.getProperty("package")
        version = properties.getProperty("version") or None
        changeid = yield self._release_change(package, version, properties.getProperty("owner"))
        return (
            yield self.addBuildsetForChanges(
                reason=reason, changeids=[changeid], builderNames=builderNames, properties=properties, **kw
            )
        )

    def _release_change(self, package: str, version: str | None, owner: str):
        # A version: the release's own Change, if the feed made one. None (the latest release): a new one.
        filters = [resultspec.Filter("project", "eq", [package]), resultspec.Filter("revision", "eq", [version])]
        return latest_or_new_change(
            self.master, filters if version else None,
            author=owner or "rebuild",
            project=package,
            revision=version,
            category="rebuild",
            comments=f"rebuild of {package} {version or '(latest release)'}",
            properties={"package": package, "version": version or ""},
        )


def rebuild_scheduler(builder_names: list[str]) -> RebuildScheduler:
    no_source = util.FixedParameter
    return RebuildScheduler(
        name="rebuild",
        label="Rebuild a release",
        buttonName="Rebuild",
        builderNames=builder_names,
        codebases=[
            util.CodebaseParameter(
                codebase="",
                branch=no_source(name="branch", default=""),
                revision=no_source(name="revision", default=""),
                repository=no_source(name="repository", default=""),
                project=no_source(name="project", default=""),
            )
        ],
        reason=util.StringParameter(name="reason", label="Reason", default="rebuild", size=40),
        # Someone is waiting for a rebuild: it goes before releases from the feed and re-tests.
        priority=util.IntParameter(name="priority", label="Priority (higher goes first)", default=REBUILD_PRIORITY),
        properties=[
            util.StringParameter(
                name="package", label="Package", required=True, regex=PACKAGE_NAME, size=40,
            ),
            util.StringParameter(
                name="version", label="Version (empty: the latest release)", regex=VERSION, default="", size=20,
            ),
            util.ChoiceStringParameter(
                name="slots", label="Slots (none picked: all)", choices=builder_names, multiple=True,
                default=[], strict=True,
            ),
        ],
    )


# Buildset properties never change: remember (package, version) of the latest buildsets, so that
# comparing a new request with every pending one (Buildbot does, on each new buildset) costs no query.
_RELEASE_OF_BUILDSET: dict[int, tuple] = {}
_RELEASE_CACHE_SIZE = 20_000


@defer.inlineCallbacks
def _release_of(master, buildsetid: int):
    if buildsetid not in _RELEASE_OF_BUILDSET:
        props = yield master.data.get(("buildsets", buildsetid, "properties"))
        if len(_RELEASE_OF_BUILDSET) >= _RELEASE_CACHE_SIZE:
            del _RELEASE_OF_BUILDSET[next(iter(_RELEASE_OF_BUILDSET))]
        _RELEASE_OF_BUILDSET[buildsetid] = (props.get("package", (None,))[0], props.get("version", ("",))[0] or "")
    return _RELEASE_OF_BUILDSET[buildsetid]


@defer.inlineCallbacks
def same_release(master, builder, request, other):
    """collapseRequests: merge two requests only if they are for one release on one slot.

    `request` is the newer one (Buildbot completes `other` as SKIPPED in its favour): a re-test
    must not swallow a waiting rebuild or release of the same release, so `other` collapses only
    into a request of the same or a higher priority.
    """
    if request["buildsetid"] == other["buildsetid"]:
        return True
    if (other.get("priority") or 0) > (request.get("priority") or 0):
        return False
    mine = yield _release_of(master, request["buildsetid"])
    theirs = yield _release_of(master, other["buildsetid"])
    return mine == theirs and mine[0] is not None


class RetestScheduler(ReconfigurableBaseScheduler):
    """Queues re-tests of the latest release of a package (master/retests.py decides which and where).

    A re-test build carries `package`, `version` = "" (the runner resolves the latest release),
    `retest` = rolling | dependency and, for a dependency re-test, `because` ("requests 2.33.0
    (was 2.32.5)"). It is tied to one Change per package (category `retest`, made on its first
    re-test), so the package page, the console and the mail find it with the package's releases.
    """

    @defer.inlineCallbacks
    def retest(self, package: str, slots: list[str], kind: str, because: str = ""):
        """One buildset for `package` on `slots`; returns (buildsetid, {builderid: brid})."""
        changeid = yield self._retest_change(package)
        properties = Properties()
        properties.setProperty("package", package, self.name)
        properties.setProperty("version", "", self.name)
        properties.setProperty("retest", kind, self.name)
        if because:
            properties.setProperty("because", because, self.name)
        reason = f"re-test ({kind}" + (f": {because})" if because else ")")
        return (
            yield self.addBuildsetForChanges(
                reason=reason, changeids=[changeid], builderNames=slots, properties=properties,
                priority=priorities.RETEST,
            )
        )

    def _retest_change(self, package: str):
        filters = [resultspec.Filter("project", "eq", [package]), resultspec.Filter("category", "eq", ["retest"])]
        return latest_or_new_change(
            self.master, filters,
            author="retests",
            project=package,
            revision=None,
            category="retest",
            comments=f"re-tests of {package} (the latest release)",
            properties={"package": package, "version": ""},
        )


@defer.inlineCallbacks
def latest_or_new_change(master, filters, **change):
    """The id of the latest Change matching `filters` (None: never reuse one), else of a new one."""
    if filters:
        known = yield master.data.get(("changes",), filters=filters, order=["-changeid"], limit=1)
        if known:
            return known[0]["changeid"]
    return (yield master.data.updates.addChange(repository="", codebase="", files=[], **change))


def retest_scheduler(builder_names: list[str]) -> RetestScheduler:
    return RetestScheduler(name="retests", builderNames=builder_names, priority=priorities.RETEST)
