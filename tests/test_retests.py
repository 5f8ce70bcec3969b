"""Re-tests without a master: the set's sources, the choice of the next re-tests in a real SQLite
database, dependants, priorities, the collapse rule, the settings and the mail's cause line.
(tests/test_retests_farm.py runs them in a real farm.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from twisted.internet import defer

from master import mail, priorities, retests, schedulers, settings
from master.mail import SlotChange


# -- the set ------------------------------------------------------------------------------------

def test_a_set_file_has_one_name_a_line_with_comments():
    text = "# rolling set\nRequests\n\nzope.interface  # the dot is normalised\nrequests\nnot a name!\n"
    assert retests.names_of_file(text) == ["requests", "zope-interface"]


def test_the_simple_index_as_json_or_html():
    body = b'{"meta": {"_last-serial": 5}, "projects": [{"name": "Six"}, {"name": "zope.interface"}, {"x": 1}]}'
    assert retests.names_of_simple_index(body, retests.SIMPLE_JSON) == ["six", "zope-interface"]
    page = b'<html><body><a href="/simple/six/">six</a>\n<a href="/simple/Foo-Bar/">Foo_Bar</a></body></html>'
    assert retests.names_of_simple_index(page, "text/html") == ["six", "foo-bar"]


def test_achieved_period_and_its_text():
    assert retests.achieved_period(1000, 100, 86400) == 864000
    assert retests.achieved_period(1000, 0, 86400) is None
    assert retests.duration_text(None) == "not measured yet"
    assert retests.duration_text(864000) == "10 days"
    assert retests.duration_text(7 * 86400 + 43200) == "7.5 days"
    assert (retests.duration_text(3600), retests.duration_text(5400)) == ("1 hour", "1.5 hours")
    assert retests.duration_text(1800) == "30 min"
    assert retests.duration_text(5) == "1 min"  # never "0.0 h"


def test_picks_of_several_slots_make_one_buildset_per_package():
    picks = {"linux-py3.12": [("six", None), ("attrs", "idna 3.11 (was 3.10)")], "linux-py3.13": [("six", None)]}
    assert sorted(retests.group_by_package(picks)) == [
        ("attrs", "idna 3.11 (was 3.10)", ["linux-py3.12"]),
        ("six", None, ["linux-py3.12", "linux-py3.13"]),
    ]


# -- the database -------------------------------------------------------------------------------

BUILDSETS = sa.Table("buildsets", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("complete", sa.SmallInteger, nullable=False), sa.Column("complete_at", sa.Integer))
SLOTS = ["linux-py3.12", "linux-py3.13"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """The service's tables on SQLite (as `make run`) and on PostgreSQL (as a production master)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server")().replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        BUILDSETS.create(conn)
        retests.create_tables(conn)
        retests.create_tables(conn)  # created only if absent
    yield engine
    engine.dispose()


def test_least_recently_tested_first_and_pending_ones_skipped(db):
    with db.begin() as conn:
        assert retests.sync_set(conn, ["a", "b", "c", "d"], SLOTS) == (4, 0)
        retests.record_build(conn, "a", "linux-py3.12", "1.0", None, 300, None)
        retests.record_build(conn, "b", "linux-py3.12", "1.0", None, 100, None)
        # Never tested first (by name), then the oldest test.
        assert retests.choose(conn, "linux-py3.12", 3, True, due_before=1000) == [("c", None), ("d", None), ("b", None)]
        conn.execute(BUILDSETS.insert().values(id=7, complete=0))
        retests.mark_queued(conn, "c", ["linux-py3.12"], 7)
        assert retests.pending_counts(conn, BUILDSETS) == {"linux-py3.12": 1}
        assert [p for p, _ in retests.choose(conn, "linux-py3.12", 2, True, 1000)] == ["d", "b"]
        # Tested within the period: not due.
        assert [p for p, _ in retests.choose(conn, "linux-py3.12", 9, True, due_before=200)] == ["d", "b"]
        # Rolling off: nothing but dependency re-tests.
        assert retests.choose(conn, "linux-py3.12", 9, False, 1000) == []
        # The buildset completes (built, or collapsed into a rebuild): no longer pending.
        conn.execute(BUILDSETS.update().values(complete=1, complete_at=5000))
        # ... but only once its build has had time to be recorded (before that, choosing it again
        # would test it twice: the cluster test saw a fourth re-test of three packages)
        retests.forget_finished(conn, BUILDSETS, 5000 + retests.RECORD_GRACE - 1)
        assert retests.pending_counts(conn, BUILDSETS) == {}  # it takes no room in the queue
        assert "c" not in [p for p, _ in retests.choose(conn, "linux-py3.12", 9, True, 1000)]  # nor is chosen again
        retests.forget_finished(conn, BUILDSETS, 5000 + retests.RECORD_GRACE)
        assert "c" in [p for p, _ in retests.choose(conn, "linux-py3.12", 9, True, 1000)]  # its build was never recorded
        # The other slot has seen nothing: every package is due there.
        assert len(retests.choose(conn, "linux-py3.13", 9, True, 1000)) == 4


def test_the_set_follows_its_source(db):
    with db.begin() as conn:
        retests.sync_set(conn, ["a", "b"], SLOTS)
        retests.record_build(conn, "a", "linux-py3.12", "1.0", None, 50, [("dep", "1.0")])
        assert retests.sync_set(conn, ["b", "c"], SLOTS) == (1, 1)
        assert retests.set_names(conn) == {"b", "c"}
        rows = conn.execute(sa.select(retests.slot_tests.c.package, retests.slot_tests.c.slot)).fetchall()
        assert sorted(rows) == sorted((p, s) for p in "bc" for s in SLOTS)
        assert conn.execute(sa.select(retests.dependencies)).fetchall() == []
        # A package outside the set is not recorded.
        assert retests.record_build(conn, "zzz", "linux-py3.12", "1.0", None, 50, None) is False


def test_a_dependency_release_makes_its_dependants_due_first(db):
    with db.begin() as conn:
        retests.sync_set(conn, ["app", "other", "old-user"], SLOTS)
        retests.record_build(conn, "app", "linux-py3.12", "2.0", None, 500, [("requests", "2.32.5"), ("idna", "3.10")])
        retests.record_build(conn, "other", "linux-py3.12", "1.0", None, 400, [("idna", "3.10")])
        retests.record_build(conn, "old-user", "linux-py3.12", "1.0", None, 450, [("requests", "2.33.0")])
        due = retests.mark_dependants(conn, "requests", "2.33.0")
        assert due == [("app", "requests 2.33.0 (was 2.32.5)")]
        # Due first, on every slot, even though tested more recently than the rest.
        assert retests.choose(conn, "linux-py3.12", 1, True, 1000) == [("app", "requests 2.33.0 (was 2.32.5)")]
        assert retests.choose(conn, "linux-py3.13", 1, False, 1000) == [("app", "requests 2.33.0 (was 2.32.5)")]
        # Its next build clears the cause and records what it resolved now.
        retests.record_build(conn, "app", "linux-py3.12", "2.0", None, 600, [("requests", "2.33.0")])
        assert retests.choose(conn, "linux-py3.12", 5, False, 1000) == []
        deps = conn.execute(sa.select(retests.dependencies.c.dependency, retests.dependencies.c.version)
                            .where(retests.dependencies.c.package == "app")).fetchall()
        assert deps == [("requests", "2.33.0")]  # idna, no longer resolved on this slot, is gone


def test_progress_per_slot(db):
    with db.begin() as conn:
        retests.sync_set(conn, ["a", "b", "c"], SLOTS)
        retests.record_build(conn, "a", "linux-py3.12", "1.0", None, 990, None)
        retests.record_build(conn, "b", "linux-py3.12", "1.0", None, 10, None)
        progress = retests.slot_progress(conn, now=1000, window=100)
    assert progress["linux-py3.12"] == {"set_size": 3, "tested": 2, "in_window": 1, "pending": 0, "due_by_dependency": 0}
    assert progress["linux-py3.13"]["tested"] == 0


def test_choosing_among_1000_names_is_fast(db):
    names = [f"package-{number:04d}" for number in range(1000)]
    with db.begin() as conn:
        retests.sync_set(conn, names, SLOTS)
    started = time.perf_counter()
    for round_number in range(50):
        with db.begin() as conn:
            retests.forget_finished(conn, BUILDSETS, 10**9)
            chosen = retests.choose(conn, "linux-py3.12", 4, True, due_before=10**9)
            for package, _ in chosen:
                retests.record_build(conn, package, "linux-py3.12", "1.0", None, 1000 + round_number, None)
    per_choice = (time.perf_counter() - started) / 50
    assert per_choice < 0.1, per_choice


# -- priorities and collapsing ---------------------------------------------------------------------

class FakeBuilder:
    def __init__(self, name, priority, oldest):
        self.name, self.priority, self.oldest = name, priority, oldest

    def get_highest_priority(self):
        return defer.succeed(self.priority)

    def getOldestRequestTime(self):
        return defer.succeed(self.oldest)


class FakeMaster:
    def __init__(self, new_slots=()):
        service = type("Service", (), {"new_slots": set(new_slots)})()
        self.service_manager = type("Manager", (), {"namedServices": {priorities.SERVICE_NAME: service}})()


def sort(master, builders):
    result = []
    priorities.prioritize_builders(master, builders).addCallback(result.append)
    return [b.name for b in result[0]]


def test_builders_go_by_priority_then_new_slots_then_age():
    builders = [
        FakeBuilder("linux-py3.11", priorities.RETEST, 10),
        FakeBuilder("linux-py3.14t", priorities.RETEST, 50),
        FakeBuilder("linux-py3.12", priorities.RELEASE, 90),
        FakeBuilder("linux-py3.13", None, None),
        FakeBuilder("linux-py3.10", priorities.REBUILD, 99),
    ]
    assert sort(FakeMaster(new_slots={"linux-py3.14t"}), list(builders)) == [
        "linux-py3.10", "linux-py3.12", "linux-py3.14t", "linux-py3.11", "linux-py3.13",
    ]
    assert sort(FakeMaster(), list(builders))[2:4] == ["linux-py3.11", "linux-py3.14t"]
    assert priorities.REBUILD > priorities.RELEASE > priorities.RETEST


class PropertiesMaster:
    def __init__(self, releases):
        self.releases, self.queries = releases, 0
        self.data = self

    def get(self, path):
        self.queries += 1
        package, version = self.releases[path[1]]
        return defer.succeed({"package": (package, "x"), "version": (version, "x")})


def collapses(master, request, other):
    result = []
    schedulers.same_release(master, None, request, other).addCallback(result.append)
    return result[0]


def test_requests_collapse_only_into_the_same_release_of_no_lower_priority():
    schedulers._RELEASE_OF_BUILDSET.clear()
    master = PropertiesMaster({1: ("six", "1.17.0"), 2: ("six", "1.17.0"), 3: ("six", ""), 4: ("six", "")})
    rebuild = {"buildsetid": 1, "priority": priorities.REBUILD}
    release = {"buildsetid": 2, "priority": priorities.RELEASE}
    retest = {"buildsetid": 3, "priority": priorities.RETEST}
    other_retest = {"buildsetid": 4, "priority": priorities.RETEST}
    assert collapses(master, rebuild, release) is True  # a rebuild takes a waiting release along
    assert collapses(master, retest, release) is False  # a re-test never swallows a release
    assert collapses(master, release, retest) is False  # "" (latest) is not 1.17.0
    assert collapses(master, other_retest, retest) is True
    queries = master.queries
    assert collapses(master, other_retest, retest) is True
    assert master.queries == queries, "buildset properties are remembered"


# -- settings ---------------------------------------------------------------------------------------

def load(tmp_path, text):
    path = tmp_path / "farm.toml"
    path.write_text('[[workers]]\nname = "w"\nos = "linux"\npythons = ["3.12"]\npassword_env = "P"\n' + text)
    return settings.load(path, environ={})


def test_rolling_settings(tmp_path):
    loaded = load(tmp_path, '[rolling]\nenabled = true\nset = "file:names.txt"\nperiod = "2w"\n'
                            'dependants = true\npending_per_slot = 8\n[farm]\nsdist_check = true\n')
    rolling = loaded.rolling
    assert rolling.enabled and rolling.dependants and rolling.active
    assert rolling.set == "file" and rolling.set_file == tmp_path / "names.txt"
    assert rolling.period == 14 * 86400 and rolling.period_text == "2w"
    assert rolling.pending_per_slot == 8 and loaded.sdist_check is True
    defaults = load(tmp_path, "").rolling
    assert not defaults.active and defaults.set == "watch" and defaults.period == 7 * 86400
    assert [settings.parse_duration(t) for t in ("90s", "30m", "12h", "7d", "3600", "soon")] == [
        90, 1800, 43200, 604800, 3600, None]


@pytest.mark.parametrize("text, key", [
    ('[rolling]\nset = "everything"\n', "'rolling.set'"),
    ('[rolling]\nset = "file:"\n', "'rolling.set'"),
    ('[rolling]\nperiod = "weekly"\n', "'rolling.period'"),
    ('[rolling]\nperiod = 7\n', "'rolling.period'"),
    ('[rolling]\npending_per_slot = -1\n', "'rolling.pending_per_slot'"),
    ('[rolling]\ntop_up_interval = 0\n', "'rolling.top_up_interval'"),
    ('[rolling]\nenable = true\n', "'rolling.enable'"),
    ('[farm]\nsdist_check = "yes"\n', "'farm.sdist_check'"),
    ('[farm]\nsdist = true\n', "'farm.sdist'"),
])
def test_rolling_settings_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(settings.SettingsError, match=key):
        load(tmp_path, text)


def test_the_checked_in_settings_load():
    loaded = settings.load(Path(__file__).resolve().parent.parent / "farm.toml", environ={})
    assert loaded.rolling.set in ("all", "watch", "file")


# -- mail -------------------------------------------------------------------------------------------

def test_a_regression_after_a_dependency_release_names_it():
    change = SlotChange(slot="linux-py3.12", kind="regression", outcome="tests-failed", previous="passed",
                        previous_version="2.0", reason="1 test failed", reproduce="python runner.py app==2.0",
                        url="http://farm/#/builders/1/builds/2", because="requests 2.33.0 (was 2.32.5)")
    lines = _mail_lines(change)
    slot = lines.index("linux-py3.12: REGRESSION: tests-failed (was passed in 2.0)")
    assert lines[slot + 1] == "  cause:     the new release of a dependency: requests 2.33.0 (was 2.32.5)"
    assert "cause:" not in "\n".join(_mail_lines(SlotChange(**{**change.__dict__, "because": ""})))


def _mail_lines(change):
    """The release mail's body for one change, as master/templates/mail/release.txt makes it."""
    rendered = []
    mail.mail_formatter("release").render_message_dict(None, dict(
        title="T", package="app", version="2.0", summary="s", changes=[change],
        packages=[{"name": "app", "page": "http://farm/p", "unsubscribe": "http://farm/u"}])).addCallback(rendered.append)
    return rendered[0]["body"].splitlines()
