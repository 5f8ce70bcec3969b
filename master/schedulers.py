"""What starts builds: a release from the feed, or a rebuild someone forced.

Both give one build request per slot whose properties say which release (`package`, `version`).
Requests collapse only when they are for the same release on the same slot: Buildbot's default
would merge requests for different packages, which all look alike to it. Re-tests
(master/retests.py) come through `RetestScheduler`. Priorities (master/priorities.py): rebuilds
100, releases from the feed 50, re-tests 0; a request never collapses into one of lower priority.
"""

from __future__ import annotations

import sqlalchemy as sa
from buildbot.changes import changes
from buildbot.data import resultspec
from buildbot.plugins import schedulers, util
from buildbot.process.properties import Properties
from buildbot.schedulers.base import ReconfigurableBaseScheduler
from buildbot.schedulers.forcesched import CollectedValidationError, ValidationError
from farm_runner.host import index
from farm_runner.host.interpreters import UsageError
from farm_runner.host.limits import InfraError
from packaging.utils import canonicalize_name
from farm_runner import versions
from twisted.internet import defer, threads
from twisted.python import log

from master import priorities
from master.maintainers import PACKAGE_NAME  # a PEP 508 name

REBUILD_PRIORITY = priorities.REBUILD


# How far back, in changes, a scheduler that becomes active looks for releases never scheduled.
UNSCHEDULED_LOOKBACK = 5000


def unscheduled_releases(conn, model, last: int, lookback: int = UNSCHEDULED_LOOKBACK) -> list[int]:
    """The ids of release changes up to `last` (the newest `lookback` of them) that no buildset
    was made for."""
    changes, stamps = model.changes, model.buildset_sourcestamps
    built = sa.select(stamps.c.buildsetid).where(stamps.c.sourcestampid == changes.c.sourcestampid)
    query = (sa.select(changes.c.changeid)
             .where(changes.c.category == "release", changes.c.changeid <= last,
                    changes.c.changeid > last - lookback, ~built.exists())
             .order_by(changes.c.changeid))
    return [row.changeid for row in conn.execute(query)]


class ReleaseScheduler(schedulers.AnyBranchScheduler):
    """Buildbot's AnyBranchScheduler that, when it becomes active, first schedules the releases
    recorded as changes but never scheduled. Without a tree-stable timer Buildbot schedules a
    change only as its message arrives: a master killed between recording a release and
    scheduling it (the change source and this scheduler run on the same master) lost the release
    for good, and neither a restart nor the master taking over its duties found it again."""

    @defer.inlineCallbacks
    def activate(self):
        # The newest change before this scheduler listens: later ones reach it as messages.
        last = yield self.master.db.pool.do(
            lambda conn: conn.execute(sa.select(sa.func.max(self.master.db.model.changes.c.changeid))).scalar())
        yield super().activate()
        if not self.enabled or not last:
            return
        missed = yield self.master.db.pool.do(unscheduled_releases, self.master.db.model, last)
        for changeid in missed:
            chdict = yield self.master.db.changes.getChange(changeid)
            change = yield changes.Change.fromChdict(self.master, chdict)
            if self.change_filter.filter_change(change):
                log.msg(f"farm: {change.project} {change.revision} was recorded but never scheduled; scheduling it now")
                yield self.gotChange(change, True)


def release_scheduler(builder_names: list[str]) -> schedulers.AnyBranchScheduler:
    """One build on every slot for each release Change (project = package, revision = version)."""
    return ReleaseScheduler(
        name="releases",
        builderNames=builder_names,
        change_filter=util.ChangeFilter(category="release"),
        treeStableTimer=None,
        # A new release goes before re-tests, after rebuilds someone is waiting for.
        priority=priorities.RELEASE,
    )


LOOKUP_TIMEOUT = 15  # seconds the form waits for the index's answer


class PackageParameter(util.StringParameter):
    """The form's package name, refused with a sentence (not a pattern) when it cannot be one."""

    def parse_from_args(self, values):
        name = values[0].strip()
        if not PACKAGE_NAME.match(name) or len(name) > 200:
            raise ValidationError(f"{name[:80]!r} is not a package name: a name has letters, digits, '.', '-' "
                                  "and '_' only, and starts and ends with a letter or digit (like requests).")
        return name


class VersionParameter(util.StringParameter):
    def parse_from_args(self, values):
        text = values[0].strip()
        if text and not versions.valid(text):
            raise ValidationError(f"{text[:40]!r} is not a version like 1.17.0; leave it empty for the latest "
                                  "release.")
        return text


class FixedPriority(util.IntParameter):
    """The rebuild's priority: shown to nobody, the same for everyone (master/priorities.py)."""

    type = "fixed"
    hide = True

    def getFromKwargs(self, kwargs):
        return self.default


def look_up(index_url: str, package: str, version: str) -> dict[str, str]:
    """{field: sentence} of what the index says against this rebuild; empty when it has the release.
    Blocking (run in a thread)."""
    try:
        files = index.fetch_project_files(index_url, package, timeout=LOOKUP_TIMEOUT)
    except UsageError:
        return {"package": f"There is no project named {package} on {index_url}: check the name's spelling."}
    except InfraError as error:
        return {"package": f"The package index could not be asked ({error}); nothing was queued, try again later."}
    known = sorted({f["version"] for f in files if versions.valid(f["version"])}, key=versions.key)
    if not known:
        return {"package": f"{package} has no release files on {index_url}; nothing to build."}
    if version and not any(versions.same(v, version) for v in known):
        latest = ", ".join(known[::-1][:3])
        return {"version": f"{package} has no release {version} on the index; its latest are {latest}."}
    return {}


class RebuildScheduler(schedulers.ForceScheduler):
    """Force one release (by name, optional version) on all slots, or on the slots picked.

    The UI's force dialog sends the id of the builder it was opened from; a rebuild is about a
    package, so it goes to every slot unless the form's `slots` field names some. The release is
    looked up on the index first: a name or version it does not have is refused with a sentence,
    and nothing is queued.
    """

    def __init__(self, *args, index_url: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.index_url = index_url

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
        collector.maybeRaiseCollectedErrors()  # a malformed name is refused before the index is asked
        if properties.getProperty("package"):
            package = canonicalize_name(properties.getProperty("package"))
            properties.setProperty("package", package, "Force Build Form")
            problems = yield threads.deferToThread(look_up, self.index_url, package,
                                                   properties.getProperty("version") or "")
            if problems:
                raise CollectedValidationError(problems)
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


def rebuild_scheduler(builder_names: list[str], index_url: str) -> RebuildScheduler:
    no_source = util.FixedParameter
    return RebuildScheduler(
        index_url=index_url,
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
        priority=FixedPriority(name="priority", default=REBUILD_PRIORITY),
        properties=[
            PackageParameter(name="package", label="Package", required=True, size=40),
            VersionParameter(name="version", label="Version (empty: the latest release)", default="", size=20),
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
