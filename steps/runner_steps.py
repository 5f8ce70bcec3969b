"""The build's three visible steps: install, test and uninstall one release on one slot.

The install step ships worker/runner.py to the worker (workers need no checkout of this
repository) and runs it once for all three phases: one process and one remote command a build
instead of three (the bench measured about 0.2 s of start-up and Buildbot round trips for each).
Its own log is the install's output. The runner keeps each phase's output in `case/<phase>.log`
and the verdict in `case/report.json`; the test and uninstall steps fetch their phase's log from
the worker and take their result from the report. The runner decides what happened; these steps
only carry its verdict into Buildbot (properties, step results, summaries).

With `[farm] sdist_check`, a fourth step `sdist` runs the runner again, all phases, with `--dist
sdist` in its own case folder, when the normal install used a wheel: "does it still build from
source". Its outcome goes to `sdist_outcome` and to the step's own result, never to the build's.
"""

from __future__ import annotations

import json
from pathlib import Path

from buildbot.process import buildstep
from buildbot.process.results import EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS
from buildbot.steps.worker import CompositeStepMixin
from twisted.internet import defer

from master.outcomes import RESULTS, SETTLED_BY_INSTALL

RUNNER_SOURCE = Path(__file__).resolve().parent.parent / "worker" / "runner.py"
RUNNER = "runner.py"
CASE_DIR = "case"
REPORT = f"{CASE_DIR}/report.json"
SDIST_CASE_DIR = "case-sdist"
USAGE_ERROR = 2
FAILING_OUTCOMES = frozenset({"install-failed", "tests-failed"})

# Report values copied into build properties, for the UI, reporters and later steps.
REPORTED_PROPERTIES = ("package", "version", "outcome", "reason", "reproduce")


def runner_command(props, phase: str, case: str = CASE_DIR, dist: str = "auto", echo: str = "") -> list[str]:
    """The runner's argument list. Names and versions stay separate arguments."""
    package, version = props.getProperty("package"), props.getProperty("version")
    spec = f"{package}=={version}" if version else package
    return [
        props.getProperty("runner_python"), RUNNER, spec,
        "--python", props.getProperty("python"),
        "--phase", phase,
        "--workdir", case,
        "--report", f"{case}/report.json",
        "--index-url", props.getProperty("index_url"),
        *(["--dist", dist] if dist != "auto" else []),
        *(["--echo", echo] if echo else []),
        *props.getProperty("runner_limits", []),
    ]


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
    """A step's one-line summary: the test counts, the leftovers, or how the phase went."""
    outcome = report.get("outcome")
    tests = report.get("tests") or {}
    if phase == "test" and outcome == "no-tests":
        return "no tests found"
    if phase == "test" and status in ("ok", "failed") and tests.get("command"):
        return ", ".join(f"{tests.get(kind, 0)} {kind}" for kind in ("passed", "failed", "errors", "skipped"))
    if phase == "uninstall" and outcome == "uninstall-dirty":
        return f"{len(report.get('leftovers') or [])} files left behind"
    return status


def install_settled_the_case(step) -> bool:
    return step.getProperty("outcome") in SETTLED_BY_INSTALL


class RunnerPhase(buildstep.ShellMixin, CompositeStepMixin, buildstep.BuildStep):
    """One phase of worker/runner.py as a step, its verdict carried into the build.

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
            yield self.downloadFileContentToWorker(RUNNER, RUNNER_SOURCE.read_bytes(), mode=0o644)
        # Every phase in one process; `install` prints only its own output: the later steps show theirs.
        echo = "install" if self.phase == "install" else ""
        cmd = yield self.makeRemoteShellCommand(
            command=runner_command(props, "all", self.case, self.dist, echo), collectStderr=True
        )
        yield self.runCommand(cmd)
        if cmd.rc == USAGE_ERROR:
            # Bad input (no such release, malformed name): the runner said why in one line.
            self.status_line = (cmd.stderr or "").strip().splitlines()[-1:] or ["the runner refused its input"]
            self.status_line = self.status_line[0]
            return EXCEPTION
        raw = yield self.getFileContentFromWorker(f"{self.case}/report.json")
        try:
            report = json.loads(raw)
        except (TypeError, ValueError):
            self.status_line = f"the runner left no readable report (exit status {cmd.rc})"
            return RETRY
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

    def take_report(self, report: dict) -> int:
        for name in REPORTED_PROPERTIES:
            if report.get(name) is not None:
                self.setProperty(name, report[name], "runner")
        because = self.getProperty("because")
        if because and report.get("outcome") in FAILING_OUTCOMES and report.get("reason"):
            # A dependency re-test (master/retests.py): say which release it followed.
            self.setProperty("reason", f"{report['reason']} (re-tested after the release of {because})", "runner")
        self.setProperty("report", report, "runner")
        status = report.get("phases", {}).get(self.phase, {}).get("status", "not-run")
        self.status_line = f"{self.phase}: {describe(self.phase, status, report)}"
        return phase_result(status, report.get("outcome", ""))

    def getResultSummary(self):
        if self.status_line:
            return {"step": self.status_line}
        return super().getResultSummary()


def installed_from_a_wheel(step) -> bool:
    report = step.getProperty("report") or {}
    return (report.get("installed_from") or {}).get("kind") == "wheel" and report.get("outcome") != "infra-error"


# The sdist check's outcome as its step's result: a failure shows, but never stops or retries the build.
SDIST_RESULTS = {**RESULTS, "infra-error": WARNINGS}


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

    def take_report(self, report: dict) -> int:
        outcome = report.get("outcome") or "infra-error"
        self.setProperty("sdist_outcome", outcome, "runner")
        self.setProperty("sdist_reason", report.get("reason") or "", "runner")
        self.setProperty("sdist_reproduce", report.get("reproduce") or "", "runner")
        self.status_line = f"from the sdist: {outcome}"
        return SDIST_RESULTS.get(outcome, WARNINGS)

    @defer.inlineCallbacks
    def run(self):
        result = yield super().run()
        # Not this release's verdict: an unreadable report or a refusal must not retry the build.
        if result in (RETRY, EXCEPTION):
            self.setProperty("sdist_outcome", "infra-error", "runner")
            return WARNINGS
        return result


def release_steps(sdist_check: bool = False, phase_timeout: int = 900) -> list[RunnerPhase]:
    """The build's steps. The runner enforces its own limits per phase; Buildbot's timeouts are
    only a backstop against a runner that hangs, long enough for three whole phases (the install
    step prints nothing while the tests run)."""
    backstop = {"timeout": 3 * phase_timeout + 600, "maxTime": 3 * phase_timeout + 600}
    steps = [RunnerPhase("install", **backstop), RunnerPhase("test"), RunnerPhase("uninstall")]
    return steps + [SdistCheck(**backstop)] if sdist_check else steps
