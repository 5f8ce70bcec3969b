"""A Build whose result and state string come from the runner's outcome.

Buildbot would call a build "build successful" and merge step results; a farm user wants the
outcome ("six 1.17.0: passed") and the result the outcome table gives it (not-applicable is
SKIPPED, which no step result can make a build). Infrastructure errors, a lost worker among them,
put the request back in the queue, but only `retries` times: a package that always times out must
not occupy the farm forever.
"""

from __future__ import annotations

from buildbot.process.build import Build
from buildbot.process.results import CANCELLED, EXCEPTION, RETRY
from twisted.internet import defer

from master.outcomes import RESULTS


class ReleaseBuild(Build):
    @defer.inlineCallbacks
    def allStepsDone(self):
        package = self.getProperty("package")
        version = self.getProperty("version") or "(latest)"
        outcome = self.getProperty("outcome")
        if self.results == CANCELLED:
            return (yield super().allStepsDone())
        if self.results not in (RETRY, EXCEPTION) and outcome in RESULTS:
            self.results = RESULTS[outcome]
            text = [f"{package} {version}: {outcome}"]
        else:
            # The build did not reach a verdict: say what stopped it (a lost worker, a refusal).
            text = [f"{package} {version}:"] + (self.text or ["exception"])
        if self.results == RETRY and (yield self._tries()) > self.getProperty("retries", 1):
            text.append("(infrastructure error; gave up after retrying)")
            # Buildbot quarantines the worker of an EXCEPTION build, and fails if the worker is
            # gone (a lost connection); such a build ends CANCELLED, which needs no worker.
            self.results = EXCEPTION if self.workerforbuilder.worker is not None else CANCELLED
        return (yield self.buildFinished(text, self.results))

    @defer.inlineCallbacks
    def _tries(self):
        """How many builds (this one included) the request has had."""
        builds = yield self.master.data.get(("buildrequests", self.requests[0].id, "builds"))
        return len(builds)
