"""The build's three visible steps: install, test and uninstall one release on one slot.

Each step runs one phase of worker/runner.py on the worker and reads the JSON report the runner
leaves in the case folder. The runner decides what happened; these steps only carry its verdict
into Buildbot (properties, step results, summaries). The install step also ships runner.py to the
worker, so workers need no checkout of this repository.
"""

from __future__ import annotations

import json
from pathlib import Path

from buildbot.process import buildstep
from buildbot.process.results import EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS
from buildbot.steps.worker import CompositeStepMixin
from twisted.internet import defer

from master.outcomes import RESULTS, SETTLED_BY_INSTALL

RUNNER_SOURCE = Path(__file__).resolve().parent.parent / "worker" / "runner.py"
RUNNER = "runner.py"
CASE_DIR = "case"
REPORT = f"{CASE_DIR}/report.json"
USAGE_ERROR = 2

# Report values copied into build properties, for the UI, reporters and later steps.
REPORTED_PROPERTIES = ("package", "version", "outcome", "reason", "reproduce")


def runner_command(props, phase: str) -> list[str]:
    """The runner's argument list for one phase. Names and versions stay separate arguments."""
    package, version = props.getProperty("package"), props.getProperty("version")
    spec = f"{package}=={version}" if version else package
    return [
        props.getProperty("runner_python"), RUNNER, spec,
        "--python", props.getProperty("python"),
        "--phase", phase,
        "--workdir", CASE_DIR,
        "--report", REPORT,
        "--index-url", props.getProperty("index_url"),
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

    def __init__(self, phase: str, **kwargs):
        self.phase = phase
        kwargs = self.setupShellMixin(kwargs, prohibitArgs=["command"])
        kwargs.setdefault("name", phase)
        kwargs.setdefault("descriptionDone", phase)
        if phase != "install":
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
        cmd = yield self.makeRemoteShellCommand(command=runner_command(props, self.phase), collectStderr=True)
        yield self.runCommand(cmd)
        if cmd.rc == USAGE_ERROR:
            # Bad input (no such release, malformed name): the runner said why in one line.
            self.status_line = (cmd.stderr or "").strip().splitlines()[-1:] or ["the runner refused its input"]
            self.status_line = self.status_line[0]
            return EXCEPTION
        raw = yield self.getFileContentFromWorker(REPORT)
        try:
            report = json.loads(raw)
        except (TypeError, ValueError):
            self.status_line = f"the runner left no readable report (exit status {cmd.rc})"
            return RETRY
        for name in REPORTED_PROPERTIES:
            if report.get(name) is not None:
                self.setProperty(name, report[name], "runner")
        self.setProperty("report", report, "runner")
        status = report.get("phases", {}).get(self.phase, {}).get("status", "not-run")
        self.status_line = f"{self.phase}: {describe(self.phase, status, report)}"
        return phase_result(status, report.get("outcome", ""))

    def getResultSummary(self):
        if self.status_line:
            return {"step": self.status_line}
        return super().getResultSummary()


def release_steps() -> list[RunnerPhase]:
    return [RunnerPhase("install"), RunnerPhase("test"), RunnerPhase("uninstall")]
