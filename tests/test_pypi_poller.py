"""pypi_poller: the settings, the parsing of PyPI's answers, and the change source polling a local
index that speaks PyPI's real protocols (tests/fakepypi.py) over real HTTP, with faults injected."""

from __future__ import annotations

import json
import subprocess
import time
import resource
import warnings
import xmlrpc.client
from pathlib import Path

import pytest

_filters = warnings.filters[:]
import buildbot.test  # noqa: E402,F401  (turns every warning into an error: undone just below)

warnings.filters[:] = _filters
warnings.filterwarnings("ignore", category=DeprecationWarning)

from buildbot.test.fake import fakemaster  # noqa: E402
from buildbot.util.httpclientservice import HTTPClientService  # noqa: E402
from twisted.internet import defer  # noqa: E402
from twisted.trial import unittest  # noqa: E402

from master.settings import SettingsError  # noqa: E402
from pypi_poller import change_sources, pypi, store  # noqa: E402
from pypi_poller import settings as pypi_settings  # noqa: E402
from pypi_poller.releases import Cancel, Releases, Retest  # noqa: E402
from pypi_poller.settings import PypiSettings, SkipEntry  # noqa: E402
from pypi_poller.source import PyPIPoller  # noqa: E402
from tests.fakepypi import FakePyPI  # noqa: E402

SOURCE = Path("/farm/farm.toml")


# -- settings ----------------------------------------------------------------------------------------

def test_defaults_when_the_table_is_absent():
    settings = pypi_settings.parse({}, SOURCE, {})
    assert settings == PypiSettings()
    assert settings.url == "https://pypi.org" and settings.feed == "auto" and not settings.backfill
    assert "boto3" in settings.watch and settings.sdist_wait == 120


def test_the_environment_moves_the_index():
    settings = pypi_settings.parse({"url": "https://pypi.org"}, SOURCE, {"FARM_PYPI_URL": "http://127.0.0.1:9/"})
    assert settings.url == "http://127.0.0.1:9"


def test_every_key_is_read():
    settings = pypi_settings.parse({
        "url": "https://mirror.example/", "feed": "watch", "poll_interval": 30, "contact": "farm@example.org",
        "watch": ["Six", "zope.interface"], "include": ["django-*"], "exclude": ["*-nightly"],
        "skip": [{"name": "TensorFlow", "reason": "needs 4 GB to install"}], "sdist_wait": 60, "backfill": True,
        "watch_recent": 0, "margin": 10, "timeout": 5,
    }, SOURCE, {})
    assert settings.watch == ("six", "zope-interface")
    assert settings.skip == (SkipEntry("tensorflow", "needs 4 GB to install"),)
    assert settings.skip_reason("tensorflow") == "needs 4 GB to install"
    assert settings.wanted("django-foo") and not settings.wanted("flask") and not settings.wanted("django-x-nightly")
    assert "farm@example.org" in settings.user_agent and "pypi-test-farm" in settings.user_agent


@pytest.mark.parametrize("table, message", [
    ({"feed": "rss"}, "'pypi.feed' must be one of auto, changelog, simple, watch, none, not 'rss'"),
    ({"url": "ftp://x"}, "'pypi.url' must be the http(s) address"),
    ({"poll_interval": 1}, "'pypi.poll_interval' must be 10 seconds or more, not 1"),
    ({"poll_interval": "60"}, "'pypi.poll_interval' must be a whole number of seconds, not '60'"),
    ({"skip": [{"name": "x"}]}, "'pypi.skip[0]' must be a table with exactly 'name' and 'reason'"),
    ({"skip": [{"name": "x", "reason": " "}]}, "'pypi.skip[0].reason' must say why"),
    ({"watch": ["ok", "bad name;rm"]}, "'pypi.watch' must list package names"),
    ({"feed": "watch", "watch": []}, "'pypi.watch' must name at least one package"),
    ({"backfill": "yes"}, "'pypi.backfill' must be true or false, not 'yes'"),
    ({"pol_interval": 60}, "'pypi.pol_interval' is not a known setting"),
])
def test_mistakes_name_the_key(table, message):
    with pytest.raises(SettingsError) as error:
        pypi_settings.parse(table, SOURCE, {})
    assert str(error.value).startswith(f"{SOURCE}: ") and message in str(error.value)


def test_feed_none_turns_the_poller_off():
    assert change_sources(pypi_settings.parse({"feed": "none"}, SOURCE, {})) == []
    (source,) = change_sources(pypi_settings.parse({}, SOURCE, {}))
    assert isinstance(source, PyPIPoller) and source.name == "pypi"


# -- parsing -----------------------------------------------------------------------------------------

def test_names_and_versions_from_strangers():
    assert pypi.valid_name("Zope.Interface") == "zope-interface"
    for bad in ("x" * 300, "a;rm -rf /", "$(reboot)", "naïve", "", " six", "six\n", None, 5, "-x"):
        assert pypi.valid_name(bad) is None, bad
    assert pypi.valid_name("x" * 200) == "x" * 200
    for good in ("1.0", "2004d", "1.0-beta-2", "1!2.0.post1+local.7"):
        assert pypi.valid_version(good) == good
    for bad in ("1.0 beta", "`id`", "1;2", "../1", "é", "", "1" * 129, None):
        assert pypi.valid_version(bad) is None, bad


def test_journal_rows_are_checked_ordered_and_classified():
    rows = [
        ["Six", "1.0", 10, "add source file six-1.0.tar.gz", 7],
        ["Six", "1.0", 10, "new release", 5],
        ["six", "1.0", 10, "add py3 file six-1.0-py3-none-any.whl", 6],
        ["six", None, 10, "add Owner alice", 8],
        ["x" * 300, "1.0", 10, "new release", 9],
        ["bad;name", "1.0", 10, "new release", 10],
        ["ok", "1.0 $(id)", 10, "new release", 11],
        ["ok", None, 10, "remove project", 12],
        ["ok", "1.0", 10, "yank release", 13],
        "garbage",
    ]
    events, refused = pypi.parse_changelog(rows)
    assert [(e.serial, e.kind, e.name) for e in events] == [
        (5, "new", "six"), (6, "wheel", "six"), (7, "sdist", "six"), (12, "remove-project", "ok"), (13, "yank", "ok"),
    ]
    assert events[2].filename == "six-1.0.tar.gz"
    assert len(refused) == 4


def test_xmlrpc_answers_faults_and_garbage():
    answer = xmlrpc.client.dumps(([["six", "1.0", 1, "new release", 3]],), methodresponse=True).encode()
    assert pypi.xmlrpc_answer(answer) == [["six", "1.0", 1, "new release", 3]]
    limited = xmlrpc.client.dumps(xmlrpc.client.Fault(-32500, "HTTPTooManyRequests: Limit may reset in 42 seconds."),
                                  methodresponse=True).encode()
    with pytest.raises(pypi.RateLimited) as error:
        pypi.xmlrpc_answer(limited)
    assert error.value.retry_after == 42
    with pytest.raises(pypi.Unavailable):
        pypi.xmlrpc_answer(b"<?xml version='1.0'?><methodResponse><params><para")
    with pytest.raises(pypi.Unavailable):
        pypi.xmlrpc_answer(b"<!DOCTYPE html><html></html>")
    other = xmlrpc.client.dumps(xmlrpc.client.Fault(1, "boom"), methodresponse=True).encode()
    with pytest.raises(pypi.FeedError):
        pypi.xmlrpc_answer(other)


def test_simple_index():
    body = b'{"meta": {"_last-serial": 90}, "projects": [{"name": "Six", "_last-serial": 80}, {"name": "a b", "_last-serial": 85}, {"name": "old", "_last-serial": 10}]}'
    last, projects = pypi.parse_simple_index(body, pypi.SIMPLE_JSON)
    assert last == 90 and projects == [("six", 80), ("old", 10)]
    assert pypi.changed_since(projects, 50) == [("six", 80)]
    with pytest.raises(pypi.Unavailable):
        pypi.parse_simple_index(b"<html>", "text/html")
    with pytest.raises(pypi.Unavailable):
        pypi.parse_simple_index(body[:40], pypi.SIMPLE_JSON)


def test_project_metadata_and_the_change():
    fake = FakePyPI()
    fake.url = "http://index"
    fake.publish("Foo.Bar", "1.0", wheels=2, requires_python=">=3.9")
    fake.publish("Foo.Bar", "2.0rc1", sdist=False)
    import json

    project = pypi.parse_project(json.dumps(fake.project_json("foo-bar")).encode())
    assert project.name == "foo-bar" and project.maintainers == "alice"
    release = project.releases["1.0"]
    assert release.sdists == ("foo_bar-1.0.tar.gz",) and len(release.wheels) == 2
    assert release.requires_python == ">=3.9" and not release.yanked
    change = pypi.change_for(project, release, "http://index")
    assert change["project"] == "foo-bar" and change["revision"] == "1.0" and change["category"] == "release"
    assert change["revlink"] == "http://index/project/foo-bar/1.0/"
    assert change["properties"]["package"] == "foo-bar" and change["properties"]["has_sdist"]
    assert set(change["properties"]) >= {"package", "version", "requires_python", "upload_time", "sdist", "wheels"}
    later = pypi.with_sdist(pypi.change_for(project, project.releases["2.0rc1"], "http://index"), "foo_bar-2.0rc1.tar.gz")
    assert later["properties"]["sdist"] == ["foo_bar-2.0rc1.tar.gz"] and later["properties"]["trigger"] == "sdist added"
    with pytest.raises(pypi.FeedError):
        pypi.parse_project(b'{"info": {"name": "trunc')


def test_release_bookkeeping_waits_for_the_sdist_and_cancels_yanks():
    releases = Releases(sdist_wait=100)
    event = pypi.Event
    assert releases.take(event("a", "1", 0, "new", 1), now=0) == []
    releases.take(event("a", "1", 0, "wheel", 2, "a-1-py3-none-any.whl"), now=0)
    assert releases.ready(now=50, limit=10) == []
    assert releases.ready(now=100, limit=10) == ["a==1"]
    releases.take(event("b", "2", 0, "new", 3), now=10)
    releases.take(event("b", "2", 0, "sdist", 4, "b-2.tar.gz"), now=10)
    assert releases.ready(now=11, limit=10) == ["b==2"]
    releases.built("a==1", {"project": "a", "properties": {"has_sdist": False}}, now=100)
    assert releases.take(event("a", "1", 0, "sdist", 5, "a-1.tar.gz"), now=200) == [Retest("a==1", "a-1.tar.gz")]
    assert releases.take(event("b", "2", 0, "yank", 6), now=12) == [Cancel("b", "2", "release yanked")]
    assert "b==2" not in releases.pending


# -- the change source against a local PyPI ---------------------------------------------------------

class PollerTestCase(unittest.TestCase):
    """A fake Buildbot master (real database, data API) with a real HTTP client, and a real local
    index; each test drives `poll()` itself. `self.now` is the poller's clock."""

    timeout = 300

    @defer.inlineCallbacks
    def setUp(self):
        self.pypi = FakePyPI().start()
        self.addCleanup(self.pypi.stop)
        self.master = yield fakemaster.make_master(self, wantData=True, wantRealReactor=True)
        self.http = HTTPClientService("")
        yield self.http.setServiceParent(self.master)
        yield self.http.startService()
        self.addCleanup(self.http.stopService)
        self.master.httpservice = self.http
        self.now = time.time()
        self.pollers = []

    @defer.inlineCallbacks
    def make_poller(self, **overrides):
        options = dict(url=self.pypi.url, feed="changelog", contact="tests@example.org", sdist_wait=0, timeout=2)
        options.update(overrides)
        poller = PyPIPoller(PypiSettings(**options), name="pypi")
        yield poller.setServiceParent(self.master)
        yield poller.configureService()
        poller._now = lambda: self.now
        return poller

    @defer.inlineCallbacks
    def restart(self, poller, **overrides):
        """A new poller object on the same database: what a master restart gives."""
        yield poller.disownServiceParent()
        return (yield self.make_poller(**overrides))

    @property
    def changes(self):
        return self.master.data.updates.changesAdded

    def releases(self, category="release"):
        return [(c["project"], c["revision"]) for c in self.changes if c["category"] == category]

    @defer.inlineCallbacks
    def poll(self, poller, times=1):
        for _ in range(times):
            poller.backoff_until = 0
            yield poller.poll()


class ChangelogFeedTest(PollerTestCase):
    @defer.inlineCallbacks
    def test_first_start_begins_at_the_current_serial(self):
        self.pypi.publish("old", "1.0")
        poller = yield self.make_poller()
        yield self.poll(poller)
        self.assertEqual(poller.cursor, self.pypi.serial)
        self.pypi.publish("Fresh_Pkg", "2.0", wheels=2)
        yield self.poll(poller)
        self.assertEqual(self.releases(), [("fresh-pkg", "2.0")])
        change = self.changes[-1]
        self.assertEqual(change["author"], "alice")
        self.assertEqual(change["revlink"], f"{self.pypi.url}/project/fresh-pkg/2.0/")
        props = change["properties"]
        self.assertEqual((props["package"], props["version"], props["requires_python"]), ("fresh-pkg", "2.0", ">=3.8"))
        self.assertEqual(props["sdist"], ["fresh_pkg-2.0.tar.gz"])
        self.assertEqual(len(props["wheels"]), 2)
        self.assertTrue(props["upload_time"])
        # One journal call per poll, and the User-Agent names the farm and its contact.
        self.assertEqual(self.pypi.requests["xmlrpc"], 2)
        self.assertEqual(self.pypi.requests["json"], 1)
        self.assertEqual(self.pypi.user_agents, {PypiSettings(contact="tests@example.org").user_agent})

    @defer.inlineCallbacks
    def test_backfill_starts_at_serial_zero(self):
        self.pypi.publish("old", "1.0")
        poller = yield self.make_poller(backfill=True)
        yield self.poll(poller, 2)
        self.assertEqual(self.releases(), [("old", "1.0")])

    @defer.inlineCallbacks
    def test_gaps_disorder_duplicates_and_margin_give_each_release_once(self):
        poller = yield self.make_poller(margin=50)
        yield self.poll(poller)
        self.pypi.publish("a", "1.0")
        self.pypi.gap(7)  # rolled-back serials: never waited for
        late = self.pypi.publish("late", "1.0", hidden=True)  # committed after later serials were visible
        self.pypi.publish("b", "1.0")
        self.pypi.publish("a", "1.0")  # the same release announced twice
        yield self.poll(poller)
        self.assertEqual(sorted(self.releases()), [("a", "1.0"), ("b", "1.0")])
        self.assertGreater(poller.cursor, max(late))
        self.pypi.release_held()
        yield self.poll(poller, 3)  # the margin re-reads the late rows; the rest is de-duplicated
        self.assertEqual(sorted(self.releases()), [("a", "1.0"), ("b", "1.0"), ("late", "1.0")])
        self.assertEqual(self.pypi.requests["json"], 3, "one metadata request per release")

    @defer.inlineCallbacks
    def test_wheels_first_wait_for_the_sdist_and_a_late_sdist_builds_again(self):
        poller = yield self.make_poller(sdist_wait=120)
        yield self.poll(poller)
        self.pypi.publish("wheelfirst", "1.0", sdist=False)
        self.pypi.publish("quick", "1.0", sdist=False)
        yield self.poll(poller)
        self.assertEqual(self.releases(), [], "waiting for the sdist")
        self.pypi.add_sdist("quick", "1.0")
        yield self.poll(poller)
        self.assertEqual(self.releases(), [("quick", "1.0")])
        self.assertTrue(self.changes[-1]["properties"]["has_sdist"])
        self.now += 121
        yield self.poll(poller)
        self.assertEqual(self.releases(), [("quick", "1.0"), ("wheelfirst", "1.0")])
        self.assertFalse(self.changes[-1]["properties"]["has_sdist"])
        self.pypi.add_sdist("wheelfirst", "1.0")
        yield self.poll(poller, 2)
        self.assertEqual(self.releases(), [("quick", "1.0"), ("wheelfirst", "1.0"), ("wheelfirst", "1.0")])
        again = self.changes[-1]["properties"]
        self.assertEqual((again["trigger"], again["sdist"]), ("sdist added", ["wheelfirst-1.0.tar.gz"]))
        self.assertEqual(self.pypi.requests["json"], 2, "the late sdist costs no metadata request")

    @defer.inlineCallbacks
    def test_a_stale_answer_of_the_index_delays_a_release_and_never_drops_it(self):
        """The journal announced 2.0, but the project's JSON comes from a cache made before it
        (2.0 missing, an older X-PyPI-Last-Serial): asked again later, built once it catches up."""
        poller = yield self.make_poller()
        self.pypi.publish("cached", "1.0")
        yield self.poll(poller)
        self.pypi.serve_stale("cached", answers=2)
        self.pypi.publish("cached", "2.0")
        yield self.poll(poller)
        self.assertEqual(self.releases(), [], "the stale answer builds nothing")
        release_key = pypi.release_key("cached", "2.0")
        self.assertIn(release_key, poller.releases.pending, "and forgets nothing")
        yield self.poll(poller)  # still within the poll interval: not asked again yet
        self.assertEqual(self.pypi.requests["json-stale"], 1)
        self.now += poller.settings.poll_interval + 1
        yield self.poll(poller)  # the second stale answer
        self.assertEqual((self.releases(), self.pypi.requests["json-stale"]), ([], 2))
        self.now += poller.settings.poll_interval + 1
        yield self.poll(poller)  # the cache has caught up
        self.assertEqual(self.releases(), [("cached", "2.0")])
        self.assertNotIn(release_key, poller.releases.pending)
        # An answer as new as the journal that lacks the release: gone from the index, not built.
        self.pypi.publish("cached", "3.0")
        with self.pypi.lock:
            del self.pypi.projects["cached"]["releases"]["3.0"]
        self.now += poller.settings.poll_interval + 1
        yield self.poll(poller)
        self.assertEqual(self.releases(), [("cached", "2.0")])
        self.assertEqual(poller.releases.pending, {})

    @defer.inlineCallbacks
    def test_a_release_yanked_before_it_is_built_is_not_built_and_its_requests_are_cancelled(self):
        poller = yield self.make_poller(sdist_wait=120)
        yield self.poll(poller)
        self.pypi.publish("yankme", "1.0", sdist=False)
        yield self.poll(poller)
        self.pypi.yank("yankme", "1.0")
        self.now += 200
        yield self.poll(poller)
        self.assertEqual(self.releases(), [])
        self.assertEqual(self.pypi.requests["json"], 0)

        # A release already queued: its unclaimed requests are cancelled when it is yanked.
        yield self.queue_builds("queued", "2.0", builders=3)
        yield self.queue_builds("other", "1.0", builders=1)
        self.pypi.publish("queued", "2.0")
        yield self.poll(poller)
        self.assertEqual(self.releases(), [("queued", "2.0")])
        self.master.mq.productions[:] = []
        self.pypi.yank("queued", "2.0")
        yield self.poll(poller)
        cancels = [key for key, _ in self.master.mq.productions if key[-1] == "cancel"]
        self.assertEqual(sorted(cancels), [("control", "buildrequests", str(b), "cancel") for b in (1, 2, 3)])

    @defer.inlineCallbacks
    def queue_builds(self, package, version, builders):
        from buildbot.test import fakedb

        rows = [fakedb.Master(id=fakemaster.fakedb.FakeDBConnector.MASTER_ID)] if not getattr(self, "_queued", 0) else []
        base = getattr(self, "_queued", 0)
        bsid = 100 + base
        rows += [fakedb.SourceStamp(id=bsid), fakedb.Buildset(id=bsid, reason="release"),
                 fakedb.BuildsetSourceStamp(buildsetid=bsid, sourcestampid=bsid)]
        rows += [fakedb.BuildsetProperty(buildsetid=bsid, property_name="package", property_value=f'["{package}", "Change"]'),
                 fakedb.BuildsetProperty(buildsetid=bsid, property_name="version", property_value=f'["{version}", "Change"]')]
        for number in range(builders):
            builderid = 10 + base + number
            rows += [fakedb.Builder(id=builderid, name=f"slot-{builderid}"),
                     fakedb.BuildRequest(id=base + number + 1, buildsetid=bsid, builderid=builderid)]
        self._queued = base + builders
        yield self.master.db.insert_test_data(rows)

    @defer.inlineCallbacks
    def test_strangers_strings_are_refused_and_nothing_runs_a_shell(self):
        def no_shell(*args, **kwargs):
            raise AssertionError(f"a process was started: {args}")

        self.patch(subprocess, "Popen", no_shell)
        import os

        self.patch(os, "system", no_shell)
        poller = yield self.make_poller()
        yield self.poll(poller)
        self.pypi.raw_row("x" * 300, "1.0", "new release")
        self.pypi.raw_row("evil;rm -rf ~", "1.0", "new release")
        self.pypi.raw_row("$(reboot)", "1.0", "new release")
        self.pypi.raw_row("naïve", "1.0", "new release")
        self.pypi.raw_row("fine", "1.0 && curl evil", "new release")
        self.pypi.raw_row("fine", "`id`", "new release")
        self.pypi.raw_row(None, None, "new release")
        self.pypi.publish("Legacy-Versions", "2004d")
        self.pypi.publish("fine", "1!2.0.post1+local")
        yield self.poll(poller)
        self.assertEqual(sorted(self.releases()), [("fine", "1!2.0.post1+local"), ("legacy-versions", "2004d")])
        self.assertEqual(self.pypi.requests["json"], 2, "refused rows cost no request")

    @defer.inlineCallbacks
    def test_filters_and_the_skip_list(self):
        poller = yield self.make_poller(
            include=("keep-*", "big"), exclude=("keep-out",), skip=(SkipEntry("big", "needs 4 GB of memory"),)
        )
        yield self.poll(poller)
        for name in ("keep-me", "keep-out", "other", "big"):
            self.pypi.publish(name, "1.0")
        yield self.poll(poller, 2)
        self.assertEqual(self.releases(), [("keep-me", "1.0")])
        self.assertEqual(self.releases("skipped"), [("big", "1.0")])
        skipped = [c for c in self.changes if c["category"] == "skipped"][0]
        self.assertIn("needs 4 GB of memory", skipped["comments"])
        self.assertEqual(skipped["properties"]["skip_reason"], "needs 4 GB of memory")
        self.assertEqual(self.pypi.requests["json"], 1)

    @defer.inlineCallbacks
    def test_rate_limits_errors_and_garbage_back_off_and_lose_nothing(self):
        poller = yield self.make_poller(poll_interval=60)
        yield self.poll(poller)
        self.pypi.publish("first", "1.0")
        self.pypi.fail("xmlrpc", "fault-32500", reset=42)
        yield poller.poll()
        self.assertEqual(poller.backoff_until, self.now + 42)
        calls = self.pypi.requests["xmlrpc"]
        yield poller.poll()  # during the back-off: no request at all
        self.assertEqual(self.pypi.requests["xmlrpc"], calls)
        self.now += 43
        for kind in ("429", "500", "malformed-xml", "timeout"):
            self.pypi.fail("xmlrpc", kind, seconds=3)
            yield poller.poll()
            self.assertEqual(self.releases(), [], kind)
            self.assertGreater(poller.backoff_until, self.now, kind)
            self.now = poller.backoff_until
        self.assertEqual(poller.failures, 3, "429 is a rate limit, not a failure")
        self.pypi.fail("json", "truncated-json")
        yield poller.poll()  # the journal answers; the metadata is truncated: tried again later
        self.assertEqual(self.releases(), [])
        self.now += 61
        self.pypi.fail("json", "500")
        yield poller.poll()
        self.now += 61
        yield poller.poll()
        self.assertEqual(self.releases(), [("first", "1.0")])

    @defer.inlineCallbacks
    def test_a_restart_resumes_where_it_stopped(self):
        poller = yield self.make_poller()
        yield self.poll(poller)
        self.pypi.publish("before", "1.0")
        yield self.poll(poller)
        poller = yield self.restart(poller)
        self.pypi.publish("during", "1.0")
        self.pypi.publish("during", "1.1", sdist=False)
        poller = yield self.restart(poller, sdist_wait=100)
        yield self.poll(poller)
        poller = yield self.restart(poller, sdist_wait=100)  # the pending release survives too
        self.now += 101
        yield self.poll(poller, 2)
        self.assertEqual(self.releases(), [("before", "1.0"), ("during", "1.0"), ("during", "1.1")])

    @pytest.mark.slow
    @defer.inlineCallbacks
    def test_releases_kept_in_the_old_state_blob_move_to_the_table(self):
        poller = yield self.make_poller(sdist_wait=600)
        yield self.poll(poller)
        self.pypi.publish("waiting", "1.0", sdist=False)
        yield self.poll(poller)  # waits for its sdist
        key = pypi.release_key("waiting", "1.0")
        entry = poller.releases.pending[key]
        # An older master kept them as a blob in Buildbot's state.
        yield poller.setState("pending", {key: entry})
        yield self.master.db.pool.do_with_transaction(
            lambda conn: conn.execute(store.releases.delete()) and None)
        poller = yield self.restart(poller, sdist_wait=600)
        yield self.poll(poller)
        self.assertIn(key, poller.releases.pending)
        saved = yield self.master.db.pool.do_with_transaction(store.load, "pypi")
        self.assertEqual(list(saved["pending"]), [key])
        self.assertEqual((yield poller.getState("pending", {})), {})

    @defer.inlineCallbacks
    def test_a_burst_of_50000_journal_events_in_bounded_memory(self):
        poller = yield self.make_poller()
        yield self.poll(poller)
        with self.pypi.lock:  # 5,000 releases of 10 files each: 50,000 events
            for number in range(5000):
                self.pypi.publish(f"burst-{number}", "1.0", wheels=8)
        self.assertEqual(len(self.pypi.journal), 50_000)
        requests_before = self.pypi.requests.copy()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        polls = 0
        while len(self.releases()) < 5000 and polls < 40:
            yield self.poll(poller)
            polls += 1
        seconds = time.monotonic() - started
        growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
        self.assertEqual(len(set(self.releases())), 5000)
        self.assertEqual(len(self.releases()), 5000)
        journal_calls = self.pypi.requests["xmlrpc"] - requests_before["xmlrpc"]
        metadata = self.pypi.requests["json"] - requests_before["json"]
        self.assertEqual(journal_calls, polls)
        self.assertEqual(metadata, 5000)
        # The whole test process (fake index with its 50,000-row journal included) grows by less than this.
        self.assertLess(growth, 300 * 2**20)
        print(f"\nburst: 50000 events, 5000 releases in {seconds:.1f} s, {polls} polls, {journal_calls} journal "
              f"calls + {metadata} metadata requests, peak RSS growth {growth / 2**20:.0f} MiB")


class SimpleAndWatchFeedTest(PollerTestCase):
    @defer.inlineCallbacks
    def test_simple_feed_diffs_last_serial(self):
        self.pypi.publish("old", "1.0")
        poller = yield self.make_poller(feed="simple")
        yield self.poll(poller)
        self.assertEqual(self.releases(), [], "the first poll only records the serial")
        self.pypi.publish("New.One", "1.0")
        self.pypi.publish("wheels-only", "3.0", sdist=False)
        self.now = time.time() + 1
        yield self.poll(poller)
        self.assertEqual(sorted(self.releases()), [("new-one", "1.0"), ("wheels-only", "3.0")])
        self.pypi.add_sdist("wheels-only", "3.0")
        self.now = time.time() + 1
        yield self.poll(poller, 2)
        self.assertEqual(self.releases()[-1], ("wheels-only", "3.0"))
        self.assertEqual(self.changes[-1]["properties"]["trigger"], "sdist added")
        self.assertEqual(len(self.releases()), 3)

    @defer.inlineCallbacks
    def test_watch_feed_uses_etags_and_seeds_with_recent_releases(self):
        self.pypi.publish("watched", "1.0")
        self.pypi.publish("unwatched", "1.0")
        poller = yield self.make_poller(feed="watch", watch=("watched", "missing"))
        yield self.poll(poller)
        self.assertEqual(self.releases(), [("watched", "1.0")], "a recent release seeds a fresh farm")
        yield self.poll(poller)
        self.assertEqual(self.pypi.requests["json-304"], 1, "unchanged: a 304")
        self.pypi.publish("watched", "1.1")
        yield self.poll(poller)
        self.assertEqual(self.releases(), [("watched", "1.0"), ("watched", "1.1")])

    @defer.inlineCallbacks
    def test_auto_falls_back_and_says_why(self):
        self.pypi.xmlrpc_enabled = False
        self.pypi.simple_enabled = False
        self.pypi.publish("watched", "1.0")
        poller = yield self.make_poller(feed="auto", watch=("watched",))
        yield self.poll(poller)
        self.assertEqual(poller.active_feed, "watch")
        self.assertIn("changelog: XML-RPC changelog_last_serial: HTTP 405", poller.feed_why)
        self.assertIn("simple: the simple index answered text/html", poller.feed_why)
        feed = [c for c in self.changes if c["category"] == "feed"]
        self.assertEqual(len(feed), 1)
        self.assertIn("watch feed", feed[0]["comments"])
        self.assertEqual(self.releases(), [("watched", "1.0")])
        self.pypi.xmlrpc_enabled = True
        self.now += 3600  # the journal is tried again later, and preferred
        yield self.poll(poller)
        self.assertEqual(poller.active_feed, "changelog")
        self.pypi.publish("watched", "2.0")
        self.pypi.publish("elsewhere", "1.0")
        yield self.poll(poller)
        self.assertEqual(self.releases(), [("watched", "1.0"), ("watched", "2.0"), ("elsewhere", "1.0")])


@pytest.mark.network
@pytest.mark.slow
class RealIndexTest(PollerTestCase):
    """The watch feed against the real index, as a new user's farm would meet it."""

    @defer.inlineCallbacks
    def test_a_watched_package_s_current_release_is_picked_up(self):
        import json
        import urllib.request

        with urllib.request.urlopen("https://pypi.org/pypi/six/json", timeout=60) as answer:
            current = json.load(answer)
        version = current["info"]["version"]
        uploaded = min(pypi.parse_time(f["upload_time_iso_8601"]) for f in current["releases"][version])
        poller = yield self.make_poller(url="https://pypi.org", feed="watch", watch=("six",), timeout=60)
        poller._now = time.time
        yield poller._load()
        # The state of a farm that last looked at six just before its current release came out.
        poller.watched = {"six": {"etag": None, "serial": 0, "checked": uploaded + 3600 - 60}}
        yield poller.poll()
        self.assertEqual(self.releases(), [("six", version)])
        change = next(c for c in self.changes if c["category"] == "release")
        self.assertEqual(change["revlink"], f"https://pypi.org/project/six/{version}/")
        self.assertTrue(change["properties"]["sdist"] and change["properties"]["wheels"])
        self.assertNotEqual(change["author"], "unknown")
        yield poller.poll()  # nothing new: nothing more
        self.assertEqual(self.releases(), [("six", version)])


def test_the_releases_table_gets_only_the_rows_a_poll_changed():
    import sqlalchemy as sa

    from pypi_poller import store

    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        saved = store.load(conn, "pypi")
        pending = {f"p{n}": {"name": f"p{n}", "version": "1.0", "since": 1.0} for n in range(1200)}
        write, delete = store.changes(saved, {"pending": pending, "awaiting": {}})
        assert len(write["pending"]) == 1200 and delete["pending"] == []
        store.save(conn, "pypi", write, delete)
    with engine.begin() as conn:
        saved = store.load(conn, "pypi")
    assert len(saved["pending"]) == 1200
    # The next poll: one release built (gone), one changed, one new; nothing else is written.
    del pending["p0"]
    pending["p1"]["retry_at"] = 5.0
    pending["new"] = {"name": "new", "version": "2.0", "since": 2.0}
    write, delete = store.changes(saved, {"pending": pending, "awaiting": {"p0": {"name": "p0", "since": 3.0}}})
    assert (sorted(write["pending"]), delete["pending"], list(write["awaiting"])) == (["new", "p1"], ["p0"], ["p0"])
    with engine.begin() as conn:
        store.save(conn, "pypi", write, delete)
        store.save(conn, "other-source", {"pending": {"x": "{}"}}, {})
    with engine.begin() as conn:
        again = store.load(conn, "pypi")
    assert len(again["pending"]) == 1200 and "p0" not in again["pending"] and again["awaiting"].keys() == {"p0"}
    assert json.loads(again["pending"]["p1"])["retry_at"] == 5.0
