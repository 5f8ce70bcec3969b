"""Re-tests in a real farm (master/retests.py, master/priorities.py): rolling re-tests fill idle
workers, a new release and a rebuild go before 200 pending re-tests, a dependency release queues
its dependants and their failure names it."""

from __future__ import annotations

import datetime
import json
import time
import urllib.request

import pytest

from tests.fakepypi import FakePyPI
from tests.farm import Farm, wait_for
from tests.pkgindex import write_package

pytestmark = pytest.mark.slow


def page(farm, path: str, raw: bool = False):
    with urllib.request.urlopen(f"{farm.url}{path}", timeout=30) as response:
        body = response.read()
    return body.decode() if raw else json.loads(body)


def props(build) -> dict:
    return {key: value for key, (value, _source) in build["properties"].items()}


def seconds(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.datetime.fromisoformat(value).timestamp()


def finished_builds(farm) -> list[dict]:
    return sorted((b for b in farm.builds() if b["complete"]), key=lambda b: b["buildid"])


def rolling_toml(set_file, pending: int, period: str = "1s", interval: int = 2, extra: str = "") -> str:
    return (
        f'[rolling]\nenabled = true\nset = "file:{set_file}"\nperiod = "{period}"\n'
        f"pending_per_slot = {pending}\ntop_up_interval = {interval}\n{extra}"
    )


def test_rolling_retests_keep_the_worker_busy_when_the_feed_is_quiet(tmp_path, package_index):
    names = ["farmfix-pass", "farmfix-notests", "farmfix-testfail"]
    set_file = tmp_path / "rolling.txt"
    set_file.write_text("# the rolling set\n" + "\n".join(names) + "\n")
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",), max_builds=1,
                extra_toml=rolling_toml(set_file, pending=2)).start()
    try:
        # No release, no rebuild: every build is a re-test, and the set goes round. Test times are
        # whole seconds and the period is one: a package finished in the second of a top-up is not
        # due yet at that top-up, so a round may take a fourth build; nine builds see each twice.
        wait_for(lambda: len(finished_builds(farm)) >= 9, 150, "nine re-tests", interval=1)
        builds = finished_builds(farm)[:9]
        for build in builds:
            assert props(build)["retest"] == "rolling", build
            assert props(build)["package"] in names
            assert props(build)["outcome"] == package_index.expected[props(build)["package"]]
        tested = [props(b)["package"] for b in builds]
        assert all(tested.count(name) >= 2 for name in names), tested
        # Least recently tested first: the first round tests each package once.
        assert sorted(tested[:3]) == sorted(names), tested
        # Busy: the next re-test starts within moments of the one before (no idle top-up interval).
        gaps = [seconds(b["started_at"]) - seconds(a["complete_at"]) for a, b in zip(builds, builds[1:])]
        assert max(gaps) < 2.5, gaps
        # At most `pending_per_slot` re-tests wait at a time.
        queued = farm.get("buildrequests", complete="false", claimed="false")["buildrequests"]
        assert len(queued) <= 2
        overview = page(farm, "plugins/wsgi_dashboards/overview/overview.json")
        slot = overview["rolling"]["slots"][0]
        assert slot["slot"] == "linux-py3.12" and slot["set_size"] == 3 and slot["tested"] == 3, overview["rolling"]
        assert slot["achieved_period_s"] and slot["achieved_period_s"] < 3600
        html_page = page(farm, "plugins/wsgi_dashboards/overview/index.html", raw=True)
        assert "3 of 3 packages tested on linux-py3.12" in html_page
    finally:
        assert farm.stop() == 0, farm.log_tail()


def feed_toml(pypi) -> str:
    return (f'[pypi]\nurl = "{pypi.url}"\nfeed = "changelog"\npoll_interval = 10\nsdist_wait = 0\n'
            'contact = "tests@example.org"\n')


def requests_of(farm, **filters) -> list[dict]:
    return farm.get("buildrequests", **filters)["buildrequests"]


def test_a_release_and_a_rebuild_start_before_200_pending_retests(tmp_path, package_index):
    """The worker is paused while 200 re-tests, then a feed release, then a rebuild are queued;
    once it is back, the rebuild starts first, the release second, the re-tests after them."""
    dists = tmp_path / "dists"
    names = [f"rt-{number:03d}" for number in range(205)]
    for name in names:
        package_index.add(write_package(dists, name, "1.0", kind="wheel"))
    package_index.add(write_package(dists, "prio-release", "1.0", kind="wheel"))
    set_file = tmp_path / "rolling.txt"
    set_file.write_text("\n".join(names) + "\n")
    pypi = FakePyPI().start()
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",), max_builds=1,
                extra_toml=rolling_toml(set_file, pending=200, period="7d", interval=5) + feed_toml(pypi))
    try:
        farm.start()
        worker = farm.get("workers")["workers"][0]
        answer = farm.rpc(f"workers/{worker['workerid']}", "pause", reason="the test queues builds first")
        assert "error" not in answer, answer
        wait_for(lambda: farm.get("workers")["workers"][0]["paused"], 30, "the worker to pause")
        wait_for(lambda: len(requests_of(farm, claimed="false", complete="false")) >= 200, 90,
                 "200 pending re-tests", interval=1)
        wait_for(lambda: pypi.requests["xmlrpc"] >= 1, 60, "the first journal call")
        pypi.publish("prio-release", "1.0")
        wait_for(lambda: len(requests_of(farm, claimed="false", complete="false", priority=50)) == 1, 60,
                 "the release's request", interval=1)
        [release_request] = requests_of(farm, priority=50)
        behind = [r for r in requests_of(farm, claimed="false", complete="false", priority=0)
                  if r["buildrequestid"] < release_request["buildrequestid"]]
        assert len(behind) >= 200, "the release is queued behind 200 re-tests"
        rebuild_set, _ = farm.force("farmfix-pass")
        started_before = {b["buildid"] for b in farm.builds()}
        # The overview counts the queue (in SQL) as the REST API lists it.
        waiting = len(requests_of(farm, claimed="false", complete="false"))
        assert page(farm, "plugins/wsgi_dashboards/overview/overview.json")["queue"] == {"linux-py3.12": waiting}

        answer = farm.rpc(f"workers/{worker['workerid']}", "unpause", reason="go")
        assert "error" not in answer, answer
        wait_for(lambda: len([b for b in farm.builds() if b["buildid"] not in started_before]) >= 3, 120,
                 "three builds after the pause", interval=1)
        new = sorted((b for b in farm.builds() if b["buildid"] not in started_before), key=lambda b: b["buildid"])
        first, second, third = new[:3]
        by_id = {r["buildrequestid"]: r for r in requests_of(farm)}
        assert [by_id[b["buildrequestid"]]["priority"] for b in (first, second, third)] == [100, 50, 0]
        assert by_id[first["buildrequestid"]]["buildsetid"] == rebuild_set
        assert props(second)["package"] == "prio-release" and props(second).get("retest") is None
        assert props(third)["retest"] == "rolling"
        assert seconds(first["started_at"]) <= seconds(second["started_at"]) <= seconds(third["started_at"])
    finally:
        farm.stop()
        pypi.stop()


def test_a_dependency_release_retests_its_dependants_and_names_it(tmp_path, package_index):
    dists = tmp_path / "dists"
    package_index.add(write_package(dists, "deplib", "1.0", kind="wheel"))
    checks_version = {
        "tests/test_depuser.py": "import deplib\n\n\ndef test_works_with_deplib_1():\n"
                                 "    assert deplib.__version__.startswith('1.'), deplib.__version__\n",
    }
    package_index.add(write_package(dists, "depuser", "1.0", dependencies=["deplib"],
                                    extra_files=checks_version))
    set_file = tmp_path / "rolling.txt"
    set_file.write_text("depuser\n")
    pypi = FakePyPI().start()
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",), max_builds=1, extra_toml=(
        f'[rolling]\nenabled = false\ndependants = true\nset = "file:{set_file}"\ntop_up_interval = 2\n'
        + feed_toml(pypi)))
    try:
        farm.start()
        requests, [build] = farm.wait_buildset(farm.force("depuser")[0])
        assert props(build)["outcome"] == "passed", farm.log_tail()
        assert {"name": "deplib", "version": "1.0"} in props(build)["report"]["dependencies"]

        wait_for(lambda: pypi.requests["xmlrpc"] >= 1, 60, "the first journal call")
        package_index.add(write_package(dists, "deplib", "2.0", kind="wheel"))
        pypi.publish("deplib", "2.0")

        def retested():
            return [b for b in farm.builds() if props(b).get("retest") == "dependency" and b["complete"]]

        [retest] = wait_for(retested, 120, "the dependency re-test of depuser", interval=1)
        p = props(retest)
        assert p["package"] == "depuser" and p["because"] == "deplib 2.0 (was 1.0)"
        assert p["outcome"] == "tests-failed"
        assert "deplib 2.0 (was 1.0)" in p["reason"], p["reason"]
        assert by_request_priority(farm, retest) == 0
        # No rolling re-tests: only the dependency release queued one.
        time.sleep(3)
        assert [props(b).get("retest") for b in farm.builds()].count("rolling") == 0
    finally:
        farm.stop()
        pypi.stop()


def by_request_priority(farm, build) -> int:
    return farm.get(f"buildrequests/{build['buildrequestid']}")["buildrequests"][0]["priority"]
