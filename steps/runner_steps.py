"""The build's three visible steps: install, test and uninstall one release on one slot.

The install step ships the runner to the worker as one file, `runner.pyz` (the zipapp of
worker/farm_runner, see farm_runner/bundle.py; workers need no checkout of this repository), and
runs it once for all three phases: one process and one remote command a build instead of three
(the bench measured about 0.2 s of start-up and Buildbot round trips for each). Its own log is the
install's output. The runner keeps each phase's output in `case/<phase>.log` and the verdict in
`case/report.json`; the test and uninstall steps fetch their phase's log from the worker and take
their result from the report. The runner decides what happened; these steps only carry its
verdict into Buildbot (properties, step results, summaries).

The report is untrusted until checked (`report_problem`): the package's code ran on that worker.
A report that is missing, written by another runner than the one sent, at odds with the runner's
exit status, or about another release than the one requested is an infrastructure error (retried,
a bounded number of times: master/release_build.py), never a verdict. Package and version are the
request's; the report only fills in the version of a "latest" build.

With `[farm] sdist_check`, a fourth step `sdist` runs the runner again, all phases, with `--dist
sdist` in its own case folder, when the normal install used a wheel: "does it still build from
source". Its outcome goes to `sdist_outcome` and to the step's own result, never to the build's.
"""

from __future__ import annotations

import hashlib
import json

from buildbot.process import buildstep
from buildbot.process.results import EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS
from buildbot.steps.worker import CompositeStepMixin
from farm_runner import bundle, contract, versions
from packaging.utils import canonicalize_name

from twisted.internet import defer

from master.outcomes import RESULTS, SETTLED_BY_INSTALL

RUNNER = "runner.pyz"
CASE_DIR = "case"
REPORT = f"{CASE_DIR}/report.json"
SDIST_CASE_DIR = "case-sdist"
FAILING_OUTCOMES = frozenset({contract.INSTALL_FAILED, contract.TESTS_FAILED})
REPORT_INFRA = "report"  # the contract's infra reason for a report the master refuses
assert REPORT_INFRA in contract.INFRA_REASONS

# Report values copied into build properties, for the UI, reporters and later steps. Never the
# package nor the version: those are the request's (a "latest" build takes the version it tested).
REPORTED_PROPERTIES = ("outcome", "reason", "infra", "reproduce")
assert set(REPORTED_PROPERTIES) <= set(contract.REPORT_FIELDS)


class RunnerBundle:
    """The runner as the one file shipped to workers: built once per master process, and again
    only when its sources change. Checking costs a stat of each source (under a millisecond a
    build); building costs about 20 ms."""

    def __init__(self):
        self._fingerprint = None
        self.data = b""
        self.sha256 = ""

    def current(self) -> tuple[bytes, str]:
        """The bundle's bytes and sha256, from the sources as they are now."""
        fingerprint = bundle.fingerprint()
        if fingerprint != self._fingerprint:
            self.data = bundle.build_bytes()
            self.sha256 = hashlib.sha256(self.data).hexdigest()
            self._fingerprint = fingerprint
        return self.data, self.sha256


RUNNER_BUNDLE = RunnerBundle()


def runner_command(props, phase: str, case: str = CASE_DIR, dist: str = "auto", echo: str = "") -> list[str]:
    """The runner's argument list. Names and versions stay separate arguments."""
    package, version = props.getProperty("package"), props.getProperty("version")
    spec = f"{package}=={version}" if version else package
    # A re-test after a dependency's release ("requests 2.33.0 (was 2.32.5)"): the worker's cache of
    # the index fetches that dependency's page anew, so the build sees the new release.
    because = props.getProperty("because")
    fresh = ["--fresh", because.split()[0]] if isinstance(because, str) and because.split() else []
    return [
        props.getProperty("runner_python"), RUNNER, spec,
        "--python", props.getProperty("python"),
        "--phase", phase,
        "--workdir", case,
        "--report", f"{case}/report.json",
        "--index-url", props.getProperty("index_url"),
        *fresh,
        *(["--dist", dist] if dist != "auto" else []),
        *(["--echo", echo] if echo else []),
        *props.getProperty("runner_limits", []),
    ]


def parse_report(raw) -> dict | None:
    """The report's JSON object, or None for no report, unreadable bytes or anything but an object."""
    if raw is None:
        return None
    try:
        report = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def report_problem(report: dict | None, rc, package: str, version: str, runner_sha256: str) -> str | None:
    """Why the runner's report cannot be this build's verdict, or None when it can: the runner
    that was sent wrote it, the runner's exit status agrees with it, and it is about the release
    the request named (`version` "" for the latest). Exit status 2, a refusal of the runner's
    input, is the caller's to handle before this."""
    if rc not in contract.EXIT_CODES.values():
        return f"the runner exited with status {rc}, which it never gives (it crashed or was killed)"
    if report is None:
        return f"the runner left no readable report (exit status {rc})"
    if report.get("schema") != contract.SCHEMA:
        return f"the runner's report has schema {_shown(report.get('schema'), repr)}, not {contract.SCHEMA}"
    outcome = report.get("outcome")
    if not isinstance(outcome, str) or outcome not in contract.OUTCOMES:
        return f"the runner's report gives an unknown outcome {_shown(outcome, repr)}"
    if rc != contract.EXIT_CODES[outcome]:
        return (f"the runner exited with status {rc} but its report says {outcome} "
                f"(status {contract.EXIT_CODES[outcome]})")
    if outcome == contract.INFRA_ERROR and report.get("infra") not in contract.INFRA_REASONS:
        return f"the runner's report gives an unknown infrastructure error {_shown(report.get('infra'), repr)}"
    runner = report.get("runner")
    written_by = runner.get("sha256") if isinstance(runner, dict) else None
    if written_by != runner_sha256:
        return (f"the runner's report comes from the runner {_shown(written_by)[:12]}, "
                f"not from the one sent ({runner_sha256[:12]})")
    named, named_version = report.get("package"), report.get("version")
    if named is None and named_version is None and outcome == contract.INFRA_ERROR:
        return None  # the runner failed before it knew the release; it names none
    if not (_same_name(named, package) and _same_version(named_version, version)):
        requested = f"{package} {version}" if version else f"{package} (latest)"
        return f"the runner's report names {_shown(named)} {_shown(named_version)}, not the requested {requested}"
    return None


def _shown(value, form=str, limit: int = 80) -> str:
    """A value of the report in a sentence: the report is untrusted, so its length is capped."""
    text = form(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _same_name(named, package: str) -> bool:
    if not (isinstance(named, str) and isinstance(package, str)):
        return False
    return canonicalize_name(named) == canonicalize_name(package)


def _same_version(named, version: str) -> bool:
    """The report's version is a valid version, and the requested one when the request named one."""
    if not isinstance(named, str) or not versions.valid(named):
        return False
    return not version or versions.same(named, version)


def phase_result(status: str, outcome: str) -> int:
    """A step's own result: how its phase went, in the terms of the outcome table."""
    if status == "ok":
        return SUCCESS
    if status in ("skipped", "not-run"):
        return SKIPPED
    if status == "error":
        return RETRY
    return RESULTS.get(outcome, FAILURE)


def describe(phase: str, status: str, report: dict) -> str:
    """A step's one-line summary: the test counts, the leftovers, or how the phase went, and the
    phase's own time. The runner runs all three phases in the install step, so Buildbot's time of
    that step is the whole run's and the later steps' next to nothing: the line says the phase's."""
    seconds = ((report.get("phases") or {}).get(phase) or {}).get("seconds")
    what = _what_happened(phase, status, report)
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0 and status != "not-run":
        return f"{what} in {seconds:.1f} s"
    return what


def _what_happened(phase: str, status: str, report: dict) -> str:
    outcome = report.get("outcome")
    tests = report.get("tests") or {}
    if phase == "test" and outcome == contract.NO_TESTS:
        return "no tests found"
    if phase == "test" and status in ("ok", "failed") and tests.get("command"):
        return ", ".join(f"{tests.get(kind, 0)} {kind}" for kind in ("passed", "failed", "errors", "skipped"))
    if phase == "uninstall" and outcome == contract.UNINSTALL_DIRTY:
        return f"{len(report.get('leftovers') or [])} files left behind"
    return status


def install_settled_the_case(step) -> bool:
    return step.getProperty("outcome") in SETTLED_BY_INSTALL


class RunnerPhase(buildstep.ShellMixin, CompositeStepMixin, buildstep.BuildStep):
    """One phase of the runner as a step, its verdict carried into the build.

    `install` runs the runner for every phase (see the module's docstring); `test` and `uninstall`
    fetch their log and read their status from the report the install step recorded.
    """

    case = CASE_DIR
    dist = "auto"

    def __init__(self, phase: str, **kwargs):
        self.phase = phase
        kwargs = self.setupShellMixin(kwargs, prohibitArgs=["command"])
        kwargs.setdefault("name", phase)
        kwargs.setdefault("descriptionDone", phase)
        if phase not in ("install", "all"):
            # Nothing to show once the install settled the outcome.
            kwargs.setdefault("doStepIf", lambda step: not install_settled_the_case(step))
            kwargs.setdefault("hideStepIf", False)
        super().__init__(**kwargs)
        self.status_line = ""

    @defer.inlineCallbacks
    def run(self):
        if self.phase in ("test", "uninstall"):
            return (yield self.show_phase())
        props = self.build.getProperties()
        if self.phase == "install":
            runner, sha256 = RUNNER_BUNDLE.current()
            self.setProperty("runner_sha256", sha256, "master")
            yield self.downloadFileContentToWorker(RUNNER, runner, mode=0o644)
        # Every phase in one process; `install` prints only its own output: the later steps show theirs.
        echo = "install" if self.phase == "install" else ""
        cmd = yield self.makeRemoteShellCommand(
            command=runner_command(props, "all", self.case, self.dist, echo), collectStderr=True,
            # The worker would print its whole environment into the log, which anyone may read.
            logEnviron=False,
        )
        yield self.runCommand(cmd)
        if cmd.rc == contract.EXIT_USAGE:
            # Bad input (no such release, malformed name): the runner said why in one line.
            self.status_line = (cmd.stderr or "").strip().splitlines()[-1:] or ["the runner refused its input"]
            self.status_line = self.status_line[0]
            return EXCEPTION
        report = parse_report((yield self.getFileContentFromWorker(f"{self.case}/report.json")))
        problem = report_problem(report, cmd.rc, self.getProperty("package"), self.getProperty("version") or "",
                                 self.getProperty("runner_sha256") or "")
        if problem:
            return self.refuse(problem)
        return self.take_report(report)

    @defer.inlineCallbacks
    def show_phase(self):
        """The test or uninstall step: the phase's log from the worker, its status from the report."""
        report = self.getProperty("report") or {}
        status = report.get("phases", {}).get(self.phase, {}).get("status", "not-run")
        if status not in ("skipped", "not-run"):
            text = yield self.getFileContentFromWorker(f"{self.case}/{self.phase}.log")
            if text is None:
                text = f"(the runner left no {self.phase}.log on the worker)\n"
            yield self.addCompleteLog("stdio", text)
        self.status_line = f"{self.phase}: {describe(self.phase, status, report)}"
        return phase_result(status, report.get("outcome", ""))

    def refuse(self, problem: str) -> int:
        """The report is no verdict: an infrastructure error, retried a bounded number of times."""
        self.setProperty("outcome", contract.INFRA_ERROR, "master")
        self.setProperty("infra", REPORT_INFRA, "master")
        self.setProperty("reason", problem, "master")
        self.status_line = problem
        return RETRY

    def take_report(self, report: dict) -> int:
        """A checked report (report_problem) into the build: properties and the step's result."""
        for name in REPORTED_PROPERTIES:
            if report.get(name) is not None:
                self.setProperty(name, report[name], "runner")
        if not self.getProperty("version") and report.get("version"):
            self.setProperty("version", report["version"], "runner")  # a "latest" build: the one tested
        because = self.getProperty("because")
        if because and report.get("outcome") in FAILING_OUTCOMES and report.get("reason"):
            # A dependency re-test (master/retests.py): say which release it followed.
            self.setProperty("reason", f"{report['reason']} (re-tested after the release of {because})", "runner")
        self.setProperty("report", report, "runner")
        self.setProperty("tests", test_story(report), "runner")
        interpreter = report.get("python") if isinstance(report.get("python"), dict) else {}
        if isinstance(interpreter.get("version"), str):
            # The slot's interpreter as the runner found it: a pre-release (3.15.0b1) is marked on the pages.
            self.setProperty("interpreter", interpreter["version"][:40], "runner")
            self.setProperty("interpreter_prerelease", interpreter.get("prerelease") is True, "runner")
        status = report.get("phases", {}).get(self.phase, {}).get("status", "not-run")
        self.status_line = f"{self.phase}: {describe(self.phase, status, report)}"
        return phase_result(status, report.get("outcome", ""))

    def getResultSummary(self):
        if self.status_line:
            summary = {"step": self.status_line}
            if self.results == RETRY and self.getProperty("reason"):
                # The build's state string says why it is retried (master/release_build.py).
                summary["build"] = f"{contract.INFRA_ERROR}: {self.getProperty('reason')}"
            return summary
        return super().getResultSummary()


MAX_STORY_DEPS = 50  # test dependencies a cell lists


def test_story(report) -> dict:
    """What a package page's cell tells of the test run (the `tests` property, small enough for
    every page to read, unlike the whole report): how the project's tests were run, the test
    dependencies and where each came from, the versions the release's dependencies resolved to,
    the first failing tests with their one-line errors, and the failures that were the
    environment's (the network, flaky tests). The report's fields are
    farm_runner.contract.TEST_FIELDS; empty when the runner ran no tests."""
    tests = report.get("tests") if isinstance(report, dict) else None
    if not isinstance(tests, dict):
        return {}
    story = {key: tests.get(key) for key in contract.TEST_FIELDS if tests.get(key) not in (None, [], "")}
    story.pop("imported_from", None)
    if isinstance(story.get("command"), list):
        story["command"] = " ".join(str(w) for w in story["command"])
    if isinstance(story.get("deps"), list):
        story["deps"] = story["deps"][:MAX_STORY_DEPS]
    resolved = report.get("dependencies")
    if isinstance(resolved, list) and resolved:
        # the versions the release's own dependencies resolved to, as the install left them
        story["resolved"] = [{"name": _shown(d.get("name")), "version": _shown(d.get("version"))}
                             for d in resolved[:MAX_STORY_DEPS] if isinstance(d, dict)]
    return story


def installed_from_a_wheel(step) -> bool:
    report = step.getProperty("report") or {}
    return ((report.get("installed_from") or {}).get("kind") == "wheel"
            and report.get("outcome") != contract.INFRA_ERROR)


# The sdist check's outcome as its step's result: a failure shows, but never stops or retries the build.
SDIST_RESULTS = {**RESULTS, contract.INFRA_ERROR: WARNINGS}


class SdistCheck(RunnerPhase):
    """Build, test and uninstall the same release from its sdist, in a case folder of its own."""

    case = SDIST_CASE_DIR
    dist = "sdist"

    def __init__(self, **kwargs):
        kwargs.setdefault("name", "sdist")
        kwargs.setdefault("descriptionDone", "sdist")
        kwargs.setdefault("doStepIf", installed_from_a_wheel)
        kwargs.setdefault("hideStepIf", False)
        # Its failure is the step's own: the build's result stays the outcome of the wheel.
        kwargs.setdefault("flunkOnFailure", False)
        kwargs.setdefault("warnOnFailure", True)
        super().__init__("all", **kwargs)

    def refuse(self, problem: str) -> int:
        self.setProperty("sdist_outcome", contract.INFRA_ERROR, "master")
        self.setProperty("sdist_reason", problem, "master")
        self.status_line = f"from the sdist: {problem}"
        return WARNINGS

    def take_report(self, report: dict) -> int:
        outcome = report["outcome"]
        self.setProperty("sdist_outcome", outcome, "runner")
        self.setProperty("sdist_reason", report.get("reason") or "", "runner")
        self.setProperty("sdist_reproduce", report.get("reproduce") or "", "runner")
        self.status_line = f"from the sdist: {outcome}"
        return SDIST_RESULTS.get(outcome, WARNINGS)

    @defer.inlineCallbacks
    def run(self):
        result = yield super().run()
        # Not this release's verdict: the runner's refusal of its input must not stop the build.
        if result in (RETRY, EXCEPTION):
            self.setProperty("sdist_outcome", contract.INFRA_ERROR, "runner")
            return WARNINGS
        return result


def release_steps(
    sdist_check: bool = False, phase_timeout: int = contract.DEFAULT_LIMITS["timeout"]
) -> list[RunnerPhase]:
    """The build's steps. The runner enforces its own limits per phase; Buildbot's timeouts are
    only a backstop against a runner that hangs, long enough for four whole phases (the install
    step prints nothing while the tests run, and a long suite's tests may run in two parts)."""
    backstop = {"timeout": 4 * phase_timeout + 600, "maxTime": 4 * phase_timeout + 600}
    steps = [RunnerPhase("install", **backstop), RunnerPhase("test"), RunnerPhase("uninstall")]
    return steps + [SdistCheck(**backstop)] if sdist_check else steps
