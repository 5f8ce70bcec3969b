"""Two masters on one PostgreSQL database with a Crossbar router between them (Buildbot's
multi-master, master/cluster.py), a worker on each, the fake PyPI feeding releases: builds spread
over both workers, either UI shows them all, and the master running the change source is killed
mid-burst without a release lost or built twice."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from master.cluster import router_config
from tests.fakepypi import FakePyPI
from tests.farm import Farm, free_port, wait_for
from tests.pkgindex import ROOT, PackageIndex, ensure_wheelhouse, write_package

pytestmark = pytest.mark.slow

CROSSBAR = ROOT / ".venv-crossbar" / "bin" / "crossbar"
RELEASES = 40
SLOT = "3.12"
MASTER_TIMEOUT = 90  # seconds: the least the settings allow (masters beat once a minute)


def crossbar_missing() -> str | None:
    if not CROSSBAR.exists():
        return ("Crossbar is not installed (.venv-crossbar): `make crossbar-venv` installs it from "
                "requirements/crossbar-lock.txt, as .ci/run does")
    return None


class Router:
    """A Crossbar router on loopback, as ansible/ runs it for a cluster."""

    def __init__(self, folder: Path, realm: str = "farm"):
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.cbdir = folder / ".crossbar"
        self.cbdir.mkdir(parents=True)
        (self.cbdir / "config.json").write_text(json.dumps(router_config(realm, self.port)))
        self.log = folder / "crossbar.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen([str(CROSSBAR), "start", "--cbdir", str(self.cbdir)],
                                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._listening, 180, "the Crossbar router to listen")

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("crossbar exited:\n" + self.log.read_text(errors="replace")[-3000:])
        import socket

        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def burst_index(tmp_path_factory):
    """RELEASES small passing releases (a wheel to install, an sdist with its tests), and the tools."""
    dists = tmp_path_factory.mktemp("clusterdists")
    for number in range(RELEASES):
        write_package(dists, f"clu-{number:02d}", "1.0", "pass")
    with PackageIndex(dists, ensure_wheelhouse()) as index:
        yield index


def cluster_toml(router: str, feed: str, me: str, other: str, rolling_file: Path) -> str:
    return f"""
[cluster]
router = "{router}"
master_timeout = {MASTER_TIMEOUT}
claim_interval = 5

[pypi]
url = "{feed}"
feed = "changelog"
poll_interval = 10
sdist_wait = 0
contact = "tests@example.org"

[rolling]
enabled = true
set = "file:{rolling_file}"
period = "30d"
top_up_interval = 2

[[workers]]
name = "{other}"
os = "linux"
pythons = ["{SLOT}"]
password_env = "{password_variable(other)}"
max_builds = 2
"""


PASSWORDS = {"FARM_TEST_PASSWORD_WORKER_A": "password-of-worker-a", "FARM_TEST_PASSWORD_WORKER_B": "password-of-worker-b"}


@contextlib.contextmanager
def cluster(folder: Path, postgres_server, index_url: str, rolling_set: str):
    """(farms by worker name, the fake feed): two masters on one new PostgreSQL database with a
    router between them, each with its local worker and knowing the other's; stopped after."""
    missing = crossbar_missing()
    if missing:
        pytest.skip(missing)
    db_url = postgres_server()
    router = Router(folder / "router")
    feed = FakePyPI().start()
    rolling_file = folder / "rolling.txt"
    rolling_file.write_text(rolling_set)
    farms = {}
    try:
        for me, other in (("worker-a", "worker-b"), ("worker-b", "worker-a")):
            (folder / me).mkdir()
            farm = farms[me] = Farm(
                folder / me, index_url, pythons=(SLOT,), db_url=db_url, worker_name=me, env=PASSWORDS,
                extra_toml=cluster_toml(router.url, feed.url, me, other, rolling_file),
            )
            # The local worker takes its password from the environment too, so both masters know both.
            farm.config.write_text(farm.config.read_text().replace(
                f'password_file = "secrets/worker-{me}.pass"', f'password_env = "{password_variable(me)}"'))
        yield farms, feed
    finally:
        for farm in farms.values():
            if farm.process is not None:
                farm.stop()
        feed.stop()
        router.stop()


def password_variable(worker: str) -> str:
    return "FARM_TEST_PASSWORD_" + worker.upper().replace("-", "_")


def builds_by_release(farm: Farm) -> dict:
    """{(package, version): [build, ...]} of the release builds (not re-tests), complete or not."""
    found: dict = {}
    for build in farm.get("builds", property="*", limit=1000)["builds"]:
        props = {key: value for key, (value, _) in (build.get("properties") or {}).items()}
        if props.get("retest"):
            continue
        found.setdefault((props.get("package"), props.get("version")), []).append(build)
    return found


def release_changes(farm: Farm) -> list:
    return sorted((c["project"], c["revision"]) for c in farm.get("changes", limit=1000)["changes"]
                  if c["category"] == "release")


def test_two_masters_share_the_work_and_survive_the_loss_of_one(tmp_path, postgres_server, burst_index):
    with cluster(tmp_path, postgres_server, burst_index.url, "clu-00\nclu-01\nclu-02\n") as (farms, feed):
        a, b = farms["worker-a"], farms["worker-b"]
        a.start()
        wait_for(lambda: feed.requests["xmlrpc"] >= 1, 60, "the change source's first journal call")
        b.start()

        # The burst: half now, half once builds run; the master that polls the journal is killed
        # in between, before it has read the second half.
        for number in range(RELEASES // 2):
            feed.publish(f"clu-{number:02d}", "1.0")
        wait_for(lambda: len(release_changes(a)) == RELEASES // 2, 120, "the first half of the burst as changes",
                 interval=1)
        polling = a  # the change source started on the master that came up first

        def both_workers_building():
            names = {w["workerid"]: w["name"] for w in b.get("workers")["workers"]}
            return {names.get(x["workerid"]) for found in builds_by_release(b).values() for x in found} >= set(farms)

        wait_for(both_workers_building, 180, "builds on both workers", interval=1)
        os.kill(polling.master_pid(), signal.SIGKILL)
        for number in range(RELEASES // 2, RELEASES):
            feed.publish(f"clu-{number:02d}", "1.0")
        survivor = b

        expected = [(f"clu-{n:02d}", "1.0") for n in range(RELEASES)]
        wait_for(lambda: release_changes(survivor) == expected, MASTER_TIMEOUT + 180,
                 "the survivor's change source to take over from the stored cursor", interval=2)

        missing = set(expected)

        def all_built():
            found = builds_by_release(survivor)
            done = {key for key, builds in found.items() if any(b["complete"] and b["results"] == 0 for b in builds)}
            missing.intersection_update(set(expected) - done)
            return not missing

        try:
            wait_for(all_built, 400, "a passing build of every release", interval=2)
        except AssertionError:
            found = builds_by_release(survivor)
            pending = [(r["buildrequestid"], r["buildsetid"], r["claimed"], r["claimed_by_masterid"])
                       for r in survivor.get("buildrequests", complete="false", limit=100)["buildrequests"]]
            raise AssertionError((sorted(missing), {k: [(b["buildid"], b["complete"], b["results"]) for b in v]
                                                    for k, v in found.items()}, pending, survivor.get("masters"),
                                  survivor.log_tail()))
        found = builds_by_release(survivor)
        assert release_changes(survivor) == expected, "each release is one change: none lost, none twice"
        for key in expected:
            passed = [b for b in found[key] if b["complete"] and b["results"] == 0]
            # A build the killed master was running ends as RETRY and is built again: never twice passed.
            assert len(passed) == 1, (key, [(b["buildid"], b["results"]) for b in found[key]])
        workers = {w["workerid"]: w["name"] for w in survivor.get("workers")["workers"]}
        used = {workers[b["workerid"]] for builds in found.values() for b in builds}
        assert used == {"worker-a", "worker-b"}, f"the builds went to {used}"
        # The rolling set was re-tested once per package and slot, by whichever master held the duties.
        wait_for(lambda: len([b for b in survivor.get("buildsets", limit=1000)["buildsets"]
                              if "re-test" in (b.get("reason") or "")]) >= 3, 120, "the re-tests", interval=2)
        time.sleep(6)  # three more top-ups of the survivor: nothing more may be queued
        retests = [b for b in survivor.get("buildsets", limit=1000)["buildsets"] if "re-test" in (b.get("reason") or "")]
        assert len(retests) == 3, [(b["bsid"], b["reason"]) for b in retests]


def test_either_master_s_ui_shows_every_build(tmp_path, postgres_server, burst_index):
    with cluster(tmp_path, postgres_server, burst_index.url, "") as (farms, _):
        for farm in farms.values():
            farm.start()
        a, b = farms["worker-a"], farms["worker-b"]
        bsid = a.force("clu-05", "1.0")[0]
        _, builds = b.wait_buildset(bsid)  # forced on A, watched finishing through B's API
        assert len(builds) == 1 and builds[0]["results"] == 0, b.log_tail()
        assert [x["buildid"] for x in a.builds()] == [x["buildid"] for x in b.builds()]
        # B's UI heard of the build through the message queue, as it happened, not from a reload.
        masters = {m["name"] for m in a.get("masters")["masters"] if m["active"]}
        assert len(masters) == 2, masters
