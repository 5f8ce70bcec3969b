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
from twisted.trial import unittest  # noqa: E402

from master.outcomes import RESULTS  # noqa: E402
from steps import runner_steps  # noqa: E402
from steps.runner_steps import RunnerPhase, phase_result  # noqa: E402


def report(outcome="passed", **statuses):
    return json.dumps(
        {
            "package": "six",
            "version": "1.17.0",
            "outcome": outcome,
            "reason": f"it {outcome}",
            "reproduce": "python runner.py six==1.17.0 --python 3.12",
            "phases": {phase: {"status": status} for phase, status in statuses.items()},
        }
    )


def command(version="1.17.0", package="six"):
    """The install step's command: every phase in one runner process, printing the install's output."""
    spec = f"{package}=={version}" if version else package
    return [
        "/usr/bin/python3", "runner.py", spec, "--python", "3.12", "--phase", "all",
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
        shell = ExpectShell(workdir="wkdir", command=command(version))
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

    def ship_runner(self):
        shipped = []
        return ExpectDownloadFile(
            workerdest="runner.py", workdir="wkdir", blocksize=32 * 1024, maxsize=None, mode=0o644,
            reader=ExpectRemoteRef(StringFileReader),
        ).download_string(shipped.append, size=10**7).exit(0)

    def test_install_ships_the_runner_runs_every_phase_and_records_the_report(self):
        self.given(RunnerPhase("install"))
        self.expect_commands(
            self.ship_runner(), *self.expect_runner(0, report("passed", install="ok", test="ok", uninstall="ok"))
        )
        self.expect_outcome(result=SUCCESS, state_string="install: ok")
        self.expect_property("outcome", "passed", "runner")
        self.expect_property("version", "1.17.0", "runner")
        self.expect_property("reproduce", "python runner.py six==1.17.0 --python 3.12", "runner")
        return self.run_step()

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
        return self.run_step()

    def test_usage_error_is_an_exception_with_the_runners_sentence(self):
        self.given(RunnerPhase("install"))
        self.expect_commands(
            self.ship_runner(),
            *self.expect_runner(2, stderr="error: six 1.17.0 is not on the index; check the version.\n"),
        )
        self.expect_outcome(result=EXCEPTION, state_string="error: six 1.17.0 is not on the index; check the version.")
        return self.run_step()

    def test_no_report_is_an_infrastructure_problem(self):
        self.given(RunnerPhase("install"))
        self.expect_commands(self.ship_runner(), *self.expect_runner(1, "not json"))
        self.expect_outcome(result=RETRY, state_string="the runner left no readable report (exit status 1)")
        return self.run_step()


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
