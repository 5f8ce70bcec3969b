"""The install/test/uninstall steps, with Buildbot's own step test harness."""

import json
import warnings

import buildbot.test  # noqa: F401  (turns warnings into errors; the lines below relax it)

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=PendingDeprecationWarning)

from buildbot.process.results import EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS  # noqa: E402
from buildbot.test.reactor import TestReactorMixin  # noqa: E402
from buildbot.process.remotetransfer import StringFileReader, StringFileWriter  # noqa: E402
from buildbot.test.steps import (  # noqa: E402
    ExpectDownloadFile, ExpectRemoteRef, ExpectShell, ExpectUploadFile, TestBuildStepMixin,
)
from twisted.internet import defer  # noqa: E402
from twisted.trial import unittest  # noqa: E402

from farm_runner import bundle, contract  # noqa: E402
from master.outcomes import RESULTS  # noqa: E402
from steps import runner_steps  # noqa: E402
from steps.runner_steps import RUNNER_BUNDLE, RunnerPhase, phase_result, report_problem  # noqa: E402

SHA256 = RUNNER_BUNDLE.current()[1]


def report_dict(outcome="passed", package="six", version="1.17.0", **statuses):
    return {
        "schema": contract.SCHEMA,
        "package": package,
        "version": version,
        "outcome": outcome,
        "reason": f"it {outcome}",
        "infra": "timeout" if outcome == "infra-error" else None,
        "reproduce": "python runner.py six==1.17.0 --python 3.12",
        "phases": {phase: {"status": status} for phase, status in statuses.items()},
        "runner": {"sha256": SHA256, "source": "bundle"},
    }


def report(outcome="passed", **statuses):
    return json.dumps(report_dict(outcome, **statuses))


def command(version="1.17.0", package="six"):
    """The install step's command: every phase in one runner process, printing the install's output."""
    spec = f"{package}=={version}" if version else package
    return [
        "/usr/bin/python3", "runner.pyz", spec, "--python", "3.12", "--phase", "all",
        "--workdir", "case", "--report", "case/report.json",
        "--index-url", "http://127.0.0.1:9/simple", "--echo", "install", "--timeout", "60", "--sandbox", "auto",
    ]


class RunnerPhaseTest(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    def setUp(self):
        self.setup_test_reactor()
        return self.setup_test_build_step()

    def given(self, step, version="1.17.0", **extra):
        self.setup_step(step)
        props = dict(
            package="six", version=version, runner_python="/usr/bin/python3", python="3.12",
            index_url="http://127.0.0.1:9/simple", runner_limits=["--timeout", "60", "--sandbox", "auto"], **extra,
        )
        for name, value in props.items():
            self.build.setProperty(name, value, "test")

    def expect_runner(self, rc=0, report_text=None, stderr="", version="1.17.0"):
        # log_environ=False: the worker's environment never reaches the (public) log.
        shell = ExpectShell(workdir="wkdir", command=command(version), log_environ=False)
        if stderr:
            shell = shell.stderr(stderr)
        expectations = [shell.exit(rc)]
        if report_text is not None:
            expectations.append(self.fetch("case/report.json", report_text))
        return expectations

    def fetch(self, path, text, rc=0):
        expectation = ExpectUploadFile(
            workersrc=path, workdir="wkdir", blocksize=32 * 1024, maxsize=None, writer=ExpectRemoteRef(StringFileWriter),
        )
        return (expectation.upload_string(text) if text is not None else expectation).exit(rc)

    def ship_runner(self, shipped=None):
        return ExpectDownloadFile(
            workerdest="runner.pyz", workdir="wkdir", blocksize=32 * 1024, maxsize=None, mode=0o644,
            reader=ExpectRemoteRef(StringFileReader),
        ).download_string((shipped if shipped is not None else []).append, size=10**7).exit(0)

    @defer.inlineCallbacks
    def test_install_ships_the_runner_runs_every_phase_and_records_the_report(self):
        self.given(RunnerPhase("install"))
        shipped = []
        self.expect_commands(
            self.ship_runner(shipped),
            *self.expect_runner(0, report("passed", install="ok", test="ok", uninstall="ok")),
        )
        self.expect_outcome(result=SUCCESS, state_string="install: ok")
        self.expect_property("outcome", "passed", "runner")
        self.expect_property("version", "1.17.0", "test")  # the request's, not the report's
        self.expect_property("package", "six", "test")
        self.expect_property("runner_sha256", SHA256, "master")
        self.expect_property("reproduce", "python runner.py six==1.17.0 --python 3.12", "runner")
        yield self.run_step()
        # The bundle of worker/farm_runner, byte for byte.
        assert shipped == [bundle.build_bytes()]

    @defer.inlineCallbacks
    def test_the_cell_s_story_of_the_tests_is_a_small_property_of_its_own(self):
        self.given(RunnerPhase("install"))
        failed = dict(report_dict("tests-failed", install="ok", test="failed", uninstall="ok"), tests={
            "passed": 3, "failed": 1, "how": "tox env py312 (tox.ini)", "command": ["python", "-m", "pytest", "tests"],
            "failures": [{"test": "tests/test_x.py::test_y", "message": "AssertionError: a real bug", "when": "call"}],
            "deps": [{"requirement": f"dep{i}", "source": "tox deps"} for i in range(60)],
            "imported_from": {"six": "/env/lib/python3.12/site-packages/six.py"}, "not-a-test-field": "x"},
                      dependencies=[{"name": "idna", "version": "3.10"}, {"name": "x" * 200, "version": "1"}, "junk"])
        self.expect_commands(self.ship_runner([]), *self.expect_runner(1, json.dumps(failed)))
        self.expect_outcome(result=SUCCESS, state_string="install: ok")
        self.expect_property("tests", {
            "passed": 3, "failed": 1, "how": "tox env py312 (tox.ini)", "command": "python -m pytest tests",
            "failures": [{"test": "tests/test_x.py::test_y", "message": "AssertionError: a real bug", "when": "call"}],
            "deps": [{"requirement": f"dep{i}", "source": "tox deps"} for i in range(50)],
            "resolved": [{"name": "idna", "version": "3.10"}, {"name": "x" * 77 + "...", "version": "1"}]}, "runner")
        yield self.run_step()

    def test_bare_name_means_latest(self):
        self.given(RunnerPhase("install"), version="")
        self.expect_commands(self.ship_runner(), *self.expect_runner(0, report("passed", install="ok"), version=""))
        self.expect_outcome(result=SUCCESS, state_string="install: ok")
        self.expect_property("version", "1.17.0", "runner")
        return self.run_step()

    def test_the_test_step_shows_its_log_and_fails_with_the_tests(self):
        self.given(RunnerPhase("test"), outcome="tests-failed",
                   report=json.loads(report("tests-failed", install="ok", test="failed")))
        self.expect_commands(self.fetch("case/test.log", "FAILED test_six.py::test_x\n"))
        self.expect_outcome(result=FAILURE, state_string="test: failed")
        self.expect_log_file("stdio", "FAILED test_six.py::test_x\n")
        return self.run_step()

    def test_a_step_says_its_phase_s_own_time(self):
        # the runner ran every phase in the install step: Buildbot's step times are not the phases'
        story = json.loads(report("tests-failed", install="ok", test="failed", uninstall="ok"))
        story["phases"]["test"]["seconds"] = 29.64
        story["tests"] = {"passed": 369, "failed": 2, "errors": 0, "skipped": 1, "command": ["pytest"]}
        self.given(RunnerPhase("test"), outcome="tests-failed", report=story)
        self.expect_commands(self.fetch("case/test.log", "..F\n"))
        self.expect_outcome(result=FAILURE, state_string="test: 369 passed, 2 failed, 0 errors, 1 skipped in 29.6 s")
        return self.run_step()

    def test_a_missing_phase_log_is_said_in_the_step_log(self):
        self.given(RunnerPhase("uninstall"), outcome="passed",
                   report=json.loads(report("passed", install="ok", test="ok", uninstall="ok")))
        self.expect_commands(self.fetch("case/uninstall.log", None, rc=1))
        self.expect_outcome(result=SUCCESS, state_string="uninstall: ok")
        self.expect_log_file("stdio", "(the runner left no uninstall.log on the worker)\n")
        return self.run_step()

    def test_a_settled_install_skips_the_later_phases_without_a_round_trip(self):
        self.given(RunnerPhase("test"), outcome="install-failed")
        self.expect_commands()
        self.expect_outcome(result=SKIPPED, state_string="test (skipped)")
        return self.run_step()

    def test_infra_error_is_a_retry(self):
        self.given(RunnerPhase("install"))
        self.expect_commands(self.ship_runner(), *self.expect_runner(3, report("infra-error", install="error")))
        self.expect_outcome(result=RETRY, state_string="install: error")
        self.expect_property("infra", "timeout", "runner")
        return self.run_step()

    def test_usage_error_is_an_exception_with_the_runners_sentence(self):
        self.given(RunnerPhase("install"))
        self.expect_commands(
            self.ship_runner(),
            *self.expect_runner(2, stderr="error: six 1.17.0 is not on the index; check the version.\n"),
        )
        self.expect_outcome(result=EXCEPTION, state_string="error: six 1.17.0 is not on the index; check the version.")
        return self.run_step()

    # -- the report is untrusted until checked ----------------------------------------------------
    def refused(self, rc, report_text, because, version="1.17.0"):
        """The install step refuses the report: infra-error, RETRY, the request's package and version kept."""
        self.given(RunnerPhase("install"), version=version)
        fetch_report = self.fetch("case/report.json", report_text, rc=0 if report_text is not None else 1)
        self.expect_commands(self.ship_runner(), *self.expect_runner(rc, version=version), fetch_report)
        self.expect_outcome(result=RETRY, state_string=because)
        # The build's state string says why (master/release_build.py puts "six 1.17.0:" before it).
        self.expect_build_result_summary({"step": because, "build": f"infra-error: {because}"})
        self.expect_property("outcome", "infra-error", "master")
        self.expect_property("infra", "report", "master")
        self.expect_property("reason", because, "master")
        self.expect_property("package", "six", "test")
        self.expect_property("version", version, "test")
        self.expect_no_property("report")
        return self.run_step()

    def test_a_unreadable_report_is_an_infrastructure_problem(self):
        return self.refused(1, "not json", "the runner left no readable report (exit status 1)")

    def test_a_missing_report_is_an_infrastructure_problem(self):
        return self.refused(1, None, "the runner left no readable report (exit status 1)")

    def test_a_report_naming_another_package_is_refused(self):
        forged = report_dict("tests-failed", package="requests", version="2.32.3", install="ok", test="failed")
        return self.refused(1, json.dumps(forged),
                            "the runner's report names requests 2.32.3, not the requested six 1.17.0")

    def test_a_report_naming_another_version_is_refused(self):
        forged = report_dict("passed", version="1.16.0", install="ok")
        return self.refused(0, json.dumps(forged), "the runner's report names six 1.16.0, not the requested six 1.17.0")

    def test_a_latest_build_refuses_an_invalid_version(self):
        forged = report_dict("passed", version="not a version", install="ok")
        return self.refused(0, json.dumps(forged),
                            "the runner's report names six not a version, not the requested six (latest)", version="")

    def test_an_exit_status_at_odds_with_the_report_is_refused(self):
        return self.refused(0, report("tests-failed", install="ok", test="failed"),
                            "the runner exited with status 0 but its report says tests-failed (status 1)")

    def test_an_exit_status_the_runner_never_gives_is_refused(self):
        return self.refused(-9, report("passed", install="ok"),
                            "the runner exited with status -9, which it never gives (it crashed or was killed)")

    def test_an_unknown_outcome_is_refused(self):
        return self.refused(0, report("passed-with-honours", install="ok"),
                            "the runner's report gives an unknown outcome 'passed-with-honours'")

    def test_another_schema_is_refused(self):
        old = dict(report_dict("passed", install="ok"), schema=1)
        return self.refused(0, json.dumps(old), "the runner's report has schema 1, not 2")

    def test_a_report_from_another_runner_is_refused(self):
        other = dict(report_dict("passed", install="ok"), runner={"sha256": "0" * 64, "source": "checkout"})
        return self.refused(0, json.dumps(other),
                            f"the runner's report comes from the runner 000000000000, not from the one sent ({SHA256[:12]})")

    def test_same_package_under_another_spelling_is_accepted(self):
        self.given(RunnerPhase("install"))
        self.expect_commands(
            self.ship_runner(), *self.expect_runner(0, json.dumps(report_dict("passed", package="Six", install="ok")))
        )
        self.expect_outcome(result=SUCCESS, state_string="install: ok")
        self.expect_property("package", "six", "test")
        return self.run_step()


def test_report_problem_accepts_an_infra_error_that_names_no_release():
    early = dict(report_dict("infra-error", install="error"), package=None, version=None)
    assert report_problem(early, 3, "six", "1.17.0", SHA256) is None
    assert report_problem(dict(early, outcome="passed"), 0, "six", "1.17.0", SHA256) == (
        "the runner's report names None None, not the requested six 1.17.0")
    assert report_problem(dict(early, infra="gremlins"), 3, "six", "", SHA256) == (
        "the runner's report gives an unknown infrastructure error 'gremlins'")
    # What the report says is shown, but never at any length.
    flood = report_problem(report_dict("passed", package="x" * 10_000), 0, "six", "1.17.0", SHA256)
    assert flood.startswith("the runner's report names xxx") and len(flood) < 200
    # Versions compare as versions: 1.17 is 1.17.0.
    assert report_problem(report_dict("passed", version="1.17"), 0, "six", "1.17.0", SHA256) is None


def test_the_bundle_is_built_once_and_again_when_a_source_changes(monkeypatch):
    built = []
    monkeypatch.setattr(bundle, "build_bytes", lambda: built.append(1) or b"bundle %d" % len(built))
    cache = runner_steps.RunnerBundle()
    first = cache.current()
    assert cache.current() == first and len(built) == 1
    members = list(bundle.sources())
    monkeypatch.setattr(bundle, "sources", lambda: members[1:])  # as if a source went away
    assert cache.current() != first and len(built) == 2


def test_phase_results_follow_the_outcome_table():
    assert phase_result("ok", "tests-failed") == SUCCESS
    assert phase_result("skipped", "install-failed") == SKIPPED
    assert phase_result("error", "infra-error") == RETRY
    assert phase_result("failed", "uninstall-dirty") == WARNINGS
    assert phase_result("failed", "no-tests") == WARNINGS
    assert phase_result("failed", "install-failed") == FAILURE


def test_outcome_table_covers_every_outcome_once():
    assert set(RESULTS) == {
        "passed", "install-failed", "tests-failed", "no-tests", "not-applicable", "uninstall-dirty", "infra-error"
    }
    assert RESULTS["infra-error"] == RETRY and RESULTS["not-applicable"] == SKIPPED


def test_names_and_versions_stay_single_arguments():
    class Props:
        values = dict(
            package="evil; rm -rf /", version="1.0 && echo", runner_python="python3", python="3.12",
            index_url="http://x/simple", runner_limits=["--timeout", "5"],
        )

        def getProperty(self, name, default=None):
            return self.values.get(name, default)

    argv = runner_steps.runner_command(Props(), "all", echo="install")
    assert argv[2] == "evil; rm -rf /==1.0 && echo"
    assert all(isinstance(part, str) for part in argv)


def test_a_dependency_s_re_test_asks_for_its_page_anew():
    class Props:
        values = dict(package="flask", version="3.1.0", runner_python="python3", python="3.12",
                      index_url="http://x/simple", because="werkzeug 3.2.0 (was 3.1.3)")

        def getProperty(self, name, default=None):
            return self.values.get(name, default)

    argv = runner_steps.runner_command(Props(), "all")
    assert argv[argv.index("--fresh") + 1] == "werkzeug"
    Props.values["because"] = None
    assert "--fresh" not in runner_steps.runner_command(Props(), "all")
