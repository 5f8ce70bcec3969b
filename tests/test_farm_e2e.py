"""The whole farm on one machine: a real master and worker as processes, fixture releases served
over HTTP, builds forced and inspected through the REST API."""

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from buildbot.process.results import EXCEPTION

from master import run
from master.outcomes import RESULTS
from tests.farm import Farm, wait_for
from tests.pkgindex import write_package

pytestmark = pytest.mark.slow

SLOTS = ("3.11", "3.12")
STEP_NAMES = ["install", "test", "uninstall"]
# Each outcome's step results (install, test, uninstall): 0 success, 1 warnings, 2 failure, 3 skipped.
STEP_RESULTS = {
    "passed": [0, 0, 0],
    "tests-failed": [0, 2, 0],
    "no-tests": [0, 3, 0],
    "uninstall-dirty": [0, 0, 1],
    "install-failed": [2, 3, 3],
    "not-applicable": [3, 3, 3],
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def farm(request, tmp_path_factory, package_index):
    """The same farm on SQLite (as `make run`) and on PostgreSQL (as a production master)."""
    db_url = request.getfixturevalue("postgres_server")() if request.param == "postgresql" else "sqlite:///state.sqlite"
    farm = Farm(tmp_path_factory.mktemp("farm"), package_index.url, pythons=SLOTS, db_url=db_url).start()
    yield farm
    assert farm.stop() == 0, farm.log_tail()


def test_builders_are_generated_one_per_slot(farm):
    assert sorted(farm.builder_names().values()) == [f"linux-py{p}" for p in SLOTS]
    schedulers = {s["name"] for s in farm.get("schedulers")["schedulers"]}
    assert {"releases", "rebuild"} <= schedulers


def test_each_outcome_on_every_slot(farm, package_index):
    forced = {name: farm.force(name)[0] for name in package_index.expected}
    for name, outcome in package_index.expected.items():
        requests, builds = farm.wait_buildset(forced[name])
        assert len(requests) == len(SLOTS) and len(builds) == len(SLOTS), (name, builds)
        for build in builds:
            props = {key: value for key, (value, _source) in build["properties"].items()}
            version = props["version"]
            context = (name, outcome, build["state_string"], farm.log_tail())
            assert props["outcome"] == outcome, context
            assert build["results"] == RESULTS[outcome], context
            assert build["state_string"] == f"{props['package']} {version}: {outcome}", context
            assert props["package"] == name and version
            assert props["reproduce"].startswith(f"python worker/runner.py {name}=={version} "), props["reproduce"]
            steps = [s for s in farm.steps(build["buildid"]) if s["name"] in STEP_NAMES]
            assert [s["name"] for s in steps] == STEP_NAMES
            assert [s["results"] for s in steps] == STEP_RESULTS[outcome], (name, steps)


def test_a_build_s_reproduce_line_pasted_in_a_checkout_gives_its_outcome(farm, package_index, tmp_path, request):
    if request.node.callspec.params["farm"] != "sqlite":
        pytest.skip("the line does not depend on the master's database: pasted once, from the SQLite farm")
    name = next(n for n, o in package_index.expected.items() if o == "tests-failed")
    _, builds = farm.wait_buildset(farm.force(name, slots=["linux-py3.12"])[0])  # "the latest release"
    props = {key: value for key, (value, _source) in builds[0]["properties"].items()}
    checkout = Path(__file__).resolve().parent.parent
    venv_bin = str(Path(sys.executable).parent)  # `python` and uv as `make venv` leaves them
    line = props["reproduce"] + " --workdir " + str(tmp_path / "again")
    done = subprocess.run(["bash", "-c", line], cwd=checkout, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PATH=venv_bin + os.pathsep + os.environ["PATH"]))
    assert (tmp_path / "again" / "report.json").is_file(), line + "\n" + done.stdout[-2000:] + done.stderr[-2000:]
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert (again["package"], again["version"], again["outcome"]) == (name, props["version"], props["outcome"]), \
        done.stdout[-2000:] + done.stderr[-2000:]


def test_rebuild_picks_slots_and_rejects_bad_names(farm, package_index):
    name = next(n for n, o in package_index.expected.items() if o == "passed")
    requests, builds = farm.wait_buildset(farm.force(name, slots=["linux-py3.12"])[0])
    assert [farm.builder_names()[b["builderid"]] for b in builds] == ["linux-py3.12"]
    assert [r["priority"] for r in requests] == [100], "a rebuild goes before releases from the feed"

    refused = farm.rpc("forceschedulers/rebuild", "force", package="six; rm -rf /", reason="x")
    assert "is not a package name" in refused["error"]["message"]["package"]  # a sentence, not a pattern


def test_a_rebuild_the_index_cannot_serve_is_refused_before_anything_is_queued(farm, package_index):
    before = len(farm.get("buildrequests")["buildrequests"])
    unknown = farm.rpc("forceschedulers/rebuild", "force", package="no-such-package-xyz-123", reason="typo")
    assert unknown["error"]["message"] == {
        "package": f"There is no project named no-such-package-xyz-123 on {package_index.url}: check the name's "
                   "spelling."}
    name = next(n for n, o in package_index.expected.items() if o == "passed")
    no_version = farm.rpc("forceschedulers/rebuild", "force", package=name, version="99.0", reason="typo")
    assert no_version["error"]["message"]["version"].startswith(f"{name} has no release 99.0 on the index; its latest")
    bad_version = farm.rpc("forceschedulers/rebuild", "force", package=name, version="1.0; ls", reason="typo")
    assert "is not a version like 1.17.0" in bad_version["error"]["message"]["version"]
    assert len(farm.get("buildrequests")["buildrequests"]) == before, "nothing was queued"
    # The worker takes the next real request at once: no build of a mistake ended as EXCEPTION
    # and put it in quarantine.
    requests, builds = farm.wait_buildset(farm.force(name, slots=["linux-py3.12"])[0], timeout=60)
    assert [b["results"] for b in builds] == [RESULTS["passed"]]
    assert EXCEPTION not in [b["results"] for b in farm.builds()]


def test_a_burst_of_packages_gives_a_build_each_and_duplicates_collapse(farm, package_index, tmp_path, request):
    # Forty on SQLite (as `make run`); ten on PostgreSQL, which the other tests here cover as well:
    # the same scheduling and collapsing, a minute less of the suite.
    burst = 40 if request.node.callspec.params["farm"] == "sqlite" else 10
    names = [f"farmfix-many-{i:02d}" for i in range(burst)]
    package_index.add([dist for name in names for dist in write_package(tmp_path, name, "1.0", kind="wheel")])
    buildsets = [farm.force(name, slots=["linux-py3.12"])[0] for name in names]
    # The last release is still queued behind the others: a second request for it collapses.
    duplicate = farm.force(names[-1], slots=["linux-py3.12"])[0]
    builds = {}
    for buildsetid in buildsets + [duplicate]:
        _, found = farm.wait_buildset(buildsetid, timeout=400)
        for build in found:
            builds[build["buildid"]] = build
    packages = sorted(b["properties"]["package"][0] for b in builds.values())
    assert packages == names, ("one build for each package, none merged, the duplicate collapsed",
                               sorted(b["state_string"] for b in builds.values() if b["results"] != 0))
    # Wheels carry no tests of their own here: each build installs, finds no tests, uninstalls.
    assert {b["properties"]["outcome"][0] for b in builds.values()} == {"no-tests"}


def test_a_killed_worker_gives_retry_and_the_request_is_built_again(farm, package_index, tmp_path):
    package_index.add(write_package(tmp_path, "farmfix-slow", "1.0", behaviour="slow"))
    buildsetid, _ = farm.force("farmfix-slow", slots=["linux-py3.12"])

    wait_for(lambda: _running_test_step(farm, buildsetid), 120, "the slow package's tests to start")
    os.kill(farm.worker_pid(), signal.SIGKILL)
    requests, builds = farm.wait_buildset(buildsetid, timeout=300)
    builds.sort(key=lambda b: b["buildid"])
    assert [b["results"] for b in builds] == [RESULTS["infra-error"], 0], [b["state_string"] for b in builds]
    assert "lost" in builds[0]["state_string"], builds[0]["state_string"]
    assert builds[1]["state_string"] == "farmfix-slow 1.0: passed"


def test_a_worker_lost_on_the_last_try_gives_up_cleanly(package_index, tmp_path):
    """With no retries left, a lost worker ends the build (CANCELLED, saying why) instead of
    queueing it forever; the master still stops cleanly."""
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",), retries=0).start()
    try:
        package_index.add(write_package(tmp_path / "dists", "farmfix-slow2", "1.0", behaviour="slow"))
        buildsetid, _ = farm.force("farmfix-slow2")

        wait_for(lambda: _running_test_step(farm, buildsetid), 120, "the slow package's tests to start")
        os.kill(farm.worker_pid(), signal.SIGKILL)
        _, builds = farm.wait_buildset(buildsetid, timeout=120)
        assert [b["results"] for b in builds] == [6], [b["state_string"] for b in builds]
        assert "gave up" in builds[0]["state_string"]
    finally:
        assert farm.stop() == 0, farm.log_tail()


def _running_test_step(farm, buildsetid):
    """The build's tests are running: its pytest process is there, under this farm's folder (the
    runner runs every phase in the install step, so no step says it)."""
    builds = farm.get("builds", buildrequestid=_request_id(farm, buildsetid), property="*")["builds"]
    if builds and builds[0]["complete"]:
        raise AssertionError(f"the build ended before its tests ran: {builds[0]['properties'].get('reason')}")
    # The runner's pytest loads its probe plugin; the folder alone would match the master too
    # (pytest's own temporary folders are named pytest-of-<user>).
    return builds and any(b"_farm_probe" in argv and str(farm.folder).encode() in argv for argv in _command_lines())


def _command_lines():
    for entry in Path("/proc").iterdir():
        try:
            yield (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue


def _request_id(farm, buildsetid):
    return farm.get("buildrequests", buildsetid=buildsetid)["buildrequests"][0]["buildrequestid"]


def test_history_survives_a_restart(farm):
    before = len(farm.get("builds")["builds"])
    assert farm.stop() == 0, farm.log_tail()
    started = time.monotonic()
    farm.start()
    after = len(farm.get("builds")["builds"])
    assert after >= before > 0
    assert time.monotonic() - started < 60


def test_no_secret_of_the_farm_reaches_a_builds_logs(package_index, tmp_path):
    """Whoever starts the farm may hold secrets in their environment: none reaches the worker, and
    no build log (public: anyone reads /api/v2/logs/N/raw) shows the worker's environment."""
    farm_canary = f"FARM_CANARY_{secrets.token_hex(4).upper()}"
    other_canary = f"SOME_TOKEN_{secrets.token_hex(4).upper()}"
    canaries = {farm_canary: secrets.token_urlsafe(16), other_canary: secrets.token_urlsafe(16)}
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",), env=canaries).start()
    try:
        assert farm.environment["FARM_ADMIN_PASSWORD"] == farm.admin_password
        worker_env = farm.worker_environment()
        assert worker_env == run.worker_environment(farm.environment), "the worker gets only the allowed variables"
        assert not [name for name in worker_env if name.startswith("FARM_") or name in canaries]

        _, [build] = farm.wait_buildset(farm.force("farmfix-pass")[0])
        assert build["state_string"] == "farmfix-pass 1.0: passed", farm.log_tail()
        logs = [log for step in farm.steps(build["buildid"]) for log in farm.get(f"steps/{step['stepid']}/logs")["logs"]]
        texts = {f"{log['slug']} (log {log['logid']})": farm.raw_log(log["logid"]) for log in logs}  # anonymously
        assert any("runner.pyz" in text for text in texts.values()), texts
        secret_words = [farm.admin_password, "FARM_ADMIN_PASSWORD", *canaries, *canaries.values()]
        # buildbot-worker prints "environment:" and then a "  NAME=value" line for each variable.
        worker_lines = [f"{name}={value}" for name, value in worker_env.items()]
        for where, text in texts.items():
            assert "environment:" not in text, where
            assert not [word for word in secret_words if word in text], where
            assert not [line for line in worker_lines if line in text], where
        properties = json.dumps(build["properties"])
        assert not [word for word in secret_words if word in properties]
        # The runner that ran is the bundle the master sent.
        assert build["properties"]["report"][0]["runner"]["sha256"] == build["properties"]["runner_sha256"][0]
    finally:
        assert farm.stop() == 0, farm.log_tail()
