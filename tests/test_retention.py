"""[retention]: Buildbot's janitor, in a real farm, deletes the logs older than the retention and
keeps the newer ones."""

import sqlite3
import time

import pytest

from master.janitor import FORCE_SCHEDULER
from tests.farm import Farm, wait_for

pytestmark = pytest.mark.slow

DAY = 86400


def log_texts(farm: Farm, buildid: int) -> dict[str, str]:
    texts = {}
    for step in farm.steps(buildid):
        for log in farm.get(f"steps/{step['stepid']}/logs")["logs"]:
            texts[f"{step['name']}/{log['name']}"] = farm.raw_log(log["logid"])
    return texts


def test_the_janitor_removes_logs_older_than_the_retention_and_keeps_newer_ones(tmp_path, package_index):
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",), extra_toml="[retention]\nlog_days = 7\n").start()
    try:
        package = next(name for name, outcome in package_index.expected.items() if outcome == "passed")
        (old,) = farm.wait_buildset(farm.force(package)[0])[1]
        (new,) = farm.wait_buildset(farm.force(package)[0])[1]
        assert log_texts(farm, old["buildid"])["install/stdio"], "the build logged its install"
        # The first build's steps as if they ran ten days ago (the janitor goes by the steps' start).
        with sqlite3.connect(tmp_path / "master" / "state.sqlite", timeout=30) as db:
            db.execute("UPDATE steps SET started_at = ? WHERE buildid = ?", (int(time.time()) - 10 * DAY, old["buildid"]))
        answer = farm.rpc(f"forceschedulers/{FORCE_SCHEDULER}", "force")
        assert "error" not in answer, answer
        _, (janitor,) = farm.wait_buildset(answer["result"][0])
        assert janitor["results"] == 0, farm.log_tail()
        assert not any(log_texts(farm, old["buildid"]).values()), "the old build's logs are gone"
        kept = log_texts(farm, new["buildid"])
        assert kept["install/stdio"] and "passed" in kept["install/stdio"] + kept.get("uninstall/stdio", ""), kept.keys()
        # The build itself, its properties and its page stay: only the logs went.
        assert farm.get(f"builds/{old['buildid']}")["builds"][0]["results"] == 0
    finally:
        assert farm.stop() == 0, farm.log_tail()


def test_without_retention_there_is_no_janitor(tmp_path, package_index):
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",)).start(wait_for_worker=False)
    try:
        wait_for(lambda: farm.builder_names(), 30, "the builders")
        assert "janitor" not in farm.builder_names().values()
    finally:
        assert farm.stop() == 0, farm.log_tail()
