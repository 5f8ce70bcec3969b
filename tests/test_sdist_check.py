"""The `sdist` step ([farm] sdist_check): the release built again from its sdist, with Buildbot's
own step test harness. Its outcome is its own: it never changes the build's outcome or retries it."""

import json
import urllib.request
import warnings

import pytest

import buildbot.test  # noqa: F401  (turns warnings into errors; the lines below relax it)

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=PendingDeprecationWarning)

from buildbot.process.remotetransfer import StringFileWriter  # noqa: E402
from buildbot.process.results import FAILURE, SKIPPED, SUCCESS, WARNINGS  # noqa: E402
from buildbot.test.reactor import TestReactorMixin  # noqa: E402
from buildbot.test.steps import ExpectRemoteRef, ExpectShell, ExpectUploadFile, TestBuildStepMixin  # noqa: E402
from twisted.trial import unittest  # noqa: E402

from farm_runner import contract  # noqa: E402
from steps.runner_steps import RUNNER_BUNDLE, SdistCheck, release_steps  # noqa: E402
from tests.farm import Farm  # noqa: E402
from tests.pkgindex import write_package  # noqa: E402

SDIST_COMMAND = [
    "/usr/bin/python3", "runner.pyz", "six==1.17.0", "--python", "3.12", "--phase", "all",
    "--workdir", "case-sdist", "--report", "case-sdist/report.json",
    "--index-url", "http://127.0.0.1:9/simple", "--dist", "sdist", "--timeout", "60", "--sandbox", "auto",
]


SHA256 = RUNNER_BUNDLE.current()[1]


def sdist_report(outcome, package="six"):
    return json.dumps({"schema": contract.SCHEMA, "package": package, "version": "1.17.0", "outcome": outcome,
                       "reason": f"it {outcome}", "infra": "timeout" if outcome == "infra-error" else None,
                       "reproduce": "python runner.py six==1.17.0 --dist sdist", "phases": {},
                       "runner": {"sha256": SHA256, "source": "bundle"}})


class SdistCheckTest(TestBuildStepMixin, TestReactorMixin, unittest.TestCase):
    def setUp(self):
        self.setup_test_reactor()
        return self.setup_test_build_step()

    def given(self, installed_from="wheel", outcome="passed"):
        self.setup_step(SdistCheck())
        props = dict(
            package="six", version="1.17.0", runner_python="/usr/bin/python3", python="3.12",
            index_url="http://127.0.0.1:9/simple", runner_limits=["--timeout", "60", "--sandbox", "auto"],
            outcome=outcome, report={"outcome": outcome, "installed_from": {"kind": installed_from}},
            runner_sha256=SHA256,  # the install step's, which shipped the runner
        )
        for name, value in props.items():
            self.build.setProperty(name, value, "test")

    def expect_sdist_run(self, rc, report_text):
        self.expect_commands(
            ExpectShell(workdir="wkdir", command=SDIST_COMMAND, log_environ=False).exit(rc),
            ExpectUploadFile(workersrc="case-sdist/report.json", workdir="wkdir", blocksize=32 * 1024,
                             maxsize=None, writer=ExpectRemoteRef(StringFileWriter))
            .upload_string(report_text).exit(0),
        )

    def test_a_release_that_builds_from_its_sdist(self):
        self.given()
        self.expect_sdist_run(0, sdist_report("passed"))
        self.expect_outcome(result=SUCCESS, state_string="from the sdist: passed")
        self.expect_property("sdist_outcome", "passed", "runner")
        self.expect_property("outcome", "passed", "test")  # the build's own outcome stays
        return self.run_step()

    def test_a_sdist_that_no_longer_builds_fails_the_step_only(self):
        self.given()
        self.expect_sdist_run(1, sdist_report("install-failed"))
        self.expect_outcome(result=FAILURE, state_string="from the sdist: install-failed")
        self.expect_property("sdist_outcome", "install-failed", "runner")
        self.expect_property("outcome", "passed", "test")
        return self.run_step()

    def test_an_infrastructure_error_warns_and_never_retries_the_build(self):
        self.given()
        self.expect_sdist_run(3, sdist_report("infra-error"))
        self.expect_outcome(result=WARNINGS, state_string="from the sdist: infra-error")
        return self.run_step()

    def test_a_refused_report_warns_and_leaves_the_build_alone(self):
        self.given()
        self.expect_sdist_run(1, sdist_report("install-failed", package="requests"))
        because = "the runner's report names requests 1.17.0, not the requested six 1.17.0"
        self.expect_outcome(result=WARNINGS, state_string=f"from the sdist: {because}")
        self.expect_property("sdist_outcome", "infra-error", "master")
        self.expect_property("sdist_reason", because, "master")
        self.expect_property("outcome", "passed", "test")
        self.expect_no_property("infra")
        return self.run_step()

    def test_an_exit_status_at_odds_with_the_report_is_refused(self):
        self.given()
        self.expect_sdist_run(0, sdist_report("install-failed"))
        self.expect_outcome(
            result=WARNINGS,
            state_string="from the sdist: the runner exited with status 0 but its report says install-failed (status 1)",
        )
        self.expect_property("sdist_outcome", "infra-error", "master")
        return self.run_step()

    def test_no_sdist_is_not_applicable(self):
        self.given()
        self.expect_sdist_run(0, sdist_report("not-applicable"))
        self.expect_outcome(result=SKIPPED, state_string="from the sdist: not-applicable")
        return self.run_step()

    def test_skipped_when_the_test_installed_the_sdist_already(self):
        self.given(installed_from="sdist")
        self.expect_commands()
        self.expect_outcome(result=SKIPPED, state_string="sdist (skipped)")
        return self.run_step()


def test_the_step_is_there_only_when_switched_on():
    assert [s.phase for s in release_steps()] == ["install", "test", "uninstall"]
    steps = release_steps(sdist_check=True)
    assert [(s.name, s.phase, s.dist, s.case) for s in steps][3:] == [("sdist", "all", "sdist", "case-sdist")]
    assert [isinstance(s, SdistCheck) for s in steps] == [False, False, False, True]


@pytest.mark.slow
def test_a_farm_with_sdist_check_builds_wheels_releases_from_the_sdist_too(tmp_path, package_index):
    dists = tmp_path / "dists"
    package_index.add(write_package(dists, "sdist-broken", "1.0",
                                    setup_prelude="raise RuntimeError('this sdist no longer builds')"))
    farm = Farm(tmp_path, package_index.url, pythons=("3.12",), extra_toml="[farm]\nsdist_check = true\n").start()
    try:
        found = {}
        for name in ("farmfix-pass", "sdist-broken"):
            _, [build] = farm.wait_buildset(farm.force(name)[0])
            props = {key: value for key, (value, _source) in build["properties"].items()}
            steps = {s["name"]: s for s in farm.steps(build["buildid"])}
            found[name] = (props["outcome"], props.get("sdist_outcome"), steps["sdist"]["results"], build["results"])
        assert found["farmfix-pass"] == ("passed", "passed", SUCCESS, SUCCESS), farm.log_tail()
        # The wheel passes: the build passes; the sdist's failure is the sdist step's own.
        assert found["sdist-broken"] == ("passed", "install-failed", FAILURE, SUCCESS), farm.log_tail()
        with urllib.request.urlopen(f"{farm.url}plugins/wsgi_dashboards/overview/overview.json", timeout=30) as answer:
            overview = json.load(answer)
        assert overview["sdist_checks"] == {"linux-py3.12": {"passed": 1, "failed": 1}}
    finally:
        assert farm.stop() == 0, farm.log_tail()
