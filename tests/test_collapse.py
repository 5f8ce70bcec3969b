"""master/collapse.py with Buildbot's own test master and a real (in-memory SQLite) database:
only requests for the same release on the same slot collapse, and a new request reads only those."""

import warnings

import buildbot.test  # noqa: F401  (turns warnings into errors; the lines below relax it)

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=PendingDeprecationWarning)

from buildbot.process.results import SKIPPED  # noqa: E402
from buildbot.test import fakedb  # noqa: E402
from buildbot.test.fake import fakemaster  # noqa: E402
from buildbot.test.reactor import TestReactorMixin  # noqa: E402
from twisted.internet import defer  # noqa: E402
from twisted.trial import unittest  # noqa: E402

from master import collapse, priorities, schedulers  # noqa: E402

SLOTS = {1: "linux-py3.12", 2: "linux-py3.13"}
QUEUE = 500  # other releases waiting on each slot


class Slot:
    """The part of a Buildbot Builder the collapser uses."""

    def __init__(self, name):
        self.name = name

    def getCollapseRequestsFn(self):
        return schedulers.same_release


class SameSourceCollapserTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True)
        self.master.botmaster.builders = {name: Slot(name) for name in SLOTS.values()}
        rows = [fakedb.Master(id=fakedb.FakeDBConnector.MASTER_ID)]
        rows += [fakedb.Builder(id=builderid, name=name) for builderid, name in SLOTS.items()]
        self.next_id = 1
        self.stamps = {}  # (package, version): source stamp id; Buildbot keeps one stamp per release
        for n in range(QUEUE):
            rows += self.release(f"other-{n}", "1.0", slots=SLOTS)
        yield self.master.db.insert_test_data(rows)
        schedulers._RELEASE_OF_BUILDSET.clear()

    def release(self, package, version, slots, priority=priorities.RELEASE):
        """The rows of one buildset for `package` `version` on `slots`, as the schedulers make them."""
        bsid, self.next_id = self.next_id, self.next_id + 1
        new_stamp = (package, version) not in self.stamps
        ssid = self.stamps.setdefault((package, version), 10_000 + len(self.stamps))
        rows = [
            *([fakedb.SourceStamp(id=ssid, project=package, revision=version or None, codebase="", repository="")]
              if new_stamp else []),
            fakedb.Buildset(id=bsid, reason="release", results=-1),
            fakedb.BuildsetSourceStamp(buildsetid=bsid, sourcestampid=ssid),
            fakedb.BuildsetProperty(buildsetid=bsid, property_name="package", property_value=f'["{package}", "t"]'),
            fakedb.BuildsetProperty(buildsetid=bsid, property_name="version", property_value=f'["{version}", "t"]'),
        ]
        rows += [fakedb.BuildRequest(id=bsid * 10 + b, buildsetid=bsid, builderid=b, priority=priority)
                 for b in slots]
        return rows

    @defer.inlineCallbacks
    def add(self, package, version, slots, priority=priorities.RELEASE):
        rows = self.release(package, version, slots, priority)
        yield self.master.db.insert_test_data(rows)
        return [r.values["id"] for r in rows if isinstance(r, fakedb.BuildRequest)]

    @defer.inlineCallbacks
    def results(self, brids):
        found = {}
        for brid in brids:
            found[brid] = (yield self.master.data.get(("buildrequests", brid)))["results"]
        return found

    @defer.inlineCallbacks
    def test_a_second_request_for_a_waiting_release_collapses_it_and_nothing_else(self):
        first = yield self.add("six", "1.17.0", [1, 2])
        other_version = yield self.add("six", "1.16.0", [1])
        second = yield self.add("six", "1.17.0", [1])
        reads = []
        get = self.master.data.get
        self.master.data.get = lambda path, *a, **k: (reads.append(path), get(path, *a, **k))[1]

        collapsed = yield collapse.SameSourceCollapser(self.master, second).collapse()
        self.master.data.get = get

        assert collapsed == [first[0]], "only six 1.17.0 on linux-py3.12"
        results = yield self.results(first + other_version)
        assert results == {first[0]: SKIPPED, first[1]: -1, other_version[0]: -1}
        # The 1,000 waiting requests of other releases were never read, one by one or as a list.
        read = {int(p[1]) for p in reads if p[0] == "buildrequests" and len(p) == 2}
        assert read <= set(first + second), reads
        assert not [p for p in reads if p[0] == "builders" or (p[0] == "buildrequests" and len(p) == 1)], reads

    @defer.inlineCallbacks
    def test_a_retest_never_swallows_a_waiting_rebuild(self):
        rebuild = yield self.add("six", "", [1], priority=priorities.REBUILD)
        retest = yield self.add("six", "", [1], priority=priorities.RETEST)
        assert (yield collapse.SameSourceCollapser(self.master, retest).collapse()) == []
        newer_rebuild = yield self.add("six", "", [1], priority=priorities.REBUILD)
        collapsed = yield collapse.SameSourceCollapser(self.master, newer_rebuild).collapse()
        assert sorted(collapsed) == sorted(rebuild + retest)

    @defer.inlineCallbacks
    def test_claimed_requests_stay(self):
        first = yield self.add("six", "1.17.0", [1])
        yield self.master.db.insert_test_data(
            [fakedb.BuildRequestClaim(brid=first[0], masterid=fakedb.FakeDBConnector.MASTER_ID, claimed_at=1)])
        second = yield self.add("six", "1.17.0", [1])
        assert (yield collapse.SameSourceCollapser(self.master, second).collapse()) == []

    def test_install_replaces_buildbots_collapser(self):
        from buildbot.data import buildsets

        collapse.install()
        assert buildsets.BuildRequestCollapser is collapse.SameSourceCollapser
