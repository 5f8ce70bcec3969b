"""The change source in a real master: stop it while the feed moves on, start it again, and every
release published meanwhile appears once. Needs pypi_poller.change_sources in master/config.py."""

from __future__ import annotations

import contextlib

import pytest

from tests.fakepypi import FakePyPI
from tests.farm import Farm, wait_for

pytestmark = pytest.mark.slow


def releases(farm) -> list[tuple[str, str]]:
    changes = farm.get("changes")["changes"]
    return sorted((c["project"], c["revision"]) for c in changes if c["category"] == "release")


@contextlib.contextmanager
def following_farm(folder):
    """A farm whose change source follows the fake PyPI's journal, once it has asked it first."""
    index = FakePyPI().start()
    try:
        farm = Farm(
            folder, f"{index.url}/simple", pythons=("3.12",),
            extra_toml=f'[pypi]\nurl = "{index.url}"\nfeed = "changelog"\npoll_interval = 10\nsdist_wait = 0\n'
                       'contact = "tests@example.org"\n',
        )
        farm.start()
        try:
            wait_for(lambda: index.requests["xmlrpc"] >= 1, 60, "the first journal call")
            yield farm, index
        finally:
            farm.stop()
    finally:
        index.stop()


def test_a_restart_loses_and_repeats_no_release(tmp_path):
    with following_farm(tmp_path) as (farm, index):
        index.publish("before-stop", "1.0")
        wait_for(lambda: releases(farm) == [("before-stop", "1.0")], 60, "the first release", interval=1)
        assert farm.stop() == 0, farm.log_tail()

        index.publish("while-down", "1.0")
        index.gap(5)
        index.publish("while-down", "2.0", sdist=False)
        index.publish("Other_Pkg", "0.1")
        farm.start()
        expected = [("before-stop", "1.0"), ("other-pkg", "0.1"), ("while-down", "1.0"), ("while-down", "2.0")]
        wait_for(lambda: releases(farm) == expected, 90, "the releases published while the master was down",
                 interval=1)
        calls = index.requests["xmlrpc"]
        wait_for(lambda: index.requests["xmlrpc"] >= calls + 2, 60, "two more polls", interval=1)
        assert releases(farm) == expected, "nothing twice"


def release_buildsets(farm) -> list[tuple[str, str]]:
    return sorted((s["project"], s["revision"]) for b in farm.get("buildsets", limit=1000)["buildsets"]
                  for s in b["sourcestamps"])


def test_a_release_recorded_but_never_scheduled_is_scheduled_when_the_scheduler_starts(tmp_path):
    """A change the scheduler never heard of (its master killed between recording and scheduling a
    release; here, the scheduler disabled meanwhile) is scheduled once it is active again."""
    with following_farm(tmp_path) as (farm, index):
        (scheduler,) = [s["schedulerid"] for s in farm.get("schedulers")["schedulers"] if s["name"] == "releases"]
        index.publish("first", "1.0")
        wait_for(lambda: release_buildsets(farm) == [("first", "1.0")], 60, "the first release's buildset",
                 interval=1)
        answer = farm.rpc(f"schedulers/{scheduler}", "enable", enabled=False)
        assert "error" not in answer, answer
        index.publish("unheard", "2.0")
        wait_for(lambda: releases(farm) == [("first", "1.0"), ("unheard", "2.0")], 60, "the second change",
                 interval=1)
        calls = index.requests["xmlrpc"]
        wait_for(lambda: index.requests["xmlrpc"] >= calls + 2, 60, "two more polls", interval=1)
        assert release_buildsets(farm) == [("first", "1.0")]

        answer = farm.rpc(f"schedulers/{scheduler}", "enable", enabled=True)
        assert "error" not in answer, answer
        wait_for(lambda: release_buildsets(farm) == [("first", "1.0"), ("unheard", "2.0")], 60,
                 "the unheard release's buildset", interval=1)
        farm.stop()
        farm.start()  # the scheduler starts again: nothing is scheduled twice
        calls = index.requests["xmlrpc"]
        wait_for(lambda: index.requests["xmlrpc"] >= calls + 2, 60, "two more polls", interval=1)
        assert release_buildsets(farm) == [("first", "1.0"), ("unheard", "2.0")]
