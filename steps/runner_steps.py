"""The build's three visible steps: install, test and uninstall one release on one slot.

Each step runs one phase of worker/runner.py on the worker and reads the JSON report the runner
leaves in the case folder. The runner decides what happened; these steps only carry its verdict
into Buildbot (properties, step results, summaries). The install step also ships runner.py to the
worker, so workers need no checkout of this repository.

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


def runner_command(props, phase: str, case: str = CASE_DIR, dist: str = "auto") -> list[str]:
    """The runner's argument list for one phase. Names and versions stay separate arguments."""
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
    """Run one phase of worker/runner.py and carry its report into the build."""

    case = CASE_DIR
    dist = "auto"

    def __init__(self, phase: str, **kwargs):
        self.phase = phase
        kwargs = self.setupShellMixin(kwargs, prohibitArgs=["command"])
        kwargs.setdefault("name", phase)
        kwargs.setdefault("descriptionDone", phase)
        if phase not in ("install", "all"):
            # Nothing to test or uninstall once the install settled the outcome; skipping
            # the step outright saves a round trip to the worker.
            kwargs.setdefault("doStepIf", lambda step: not install_settled_the_case(step))
            kwargs.setdefault("hideStepIf", False)
        super().__init__(**kwargs)
        self.status_line = ""

    @defer.inlineCallbacks
    def run(self):
        props = self.build.getProperties()
        if self.phase == "install":
            yield self.downloadFileContentToWorker(RUNNER, RUNNER_SOURCE.read_bytes(), mode=0o644)
        cmd = yield self.makeRemoteShellCommand(
            command=runner_command(props, self.phase, self.case, self.dist), collectStderr=True
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


def release_steps(sdist_check: bool = False) -> list[RunnerPhase]:
    steps = [RunnerPhase("install"), RunnerPhase("test"), RunnerPhase("uninstall")]
    return steps + [SdistCheck()] if sdist_check else steps
