"""The one table from the runner's outcomes to Buildbot results, used everywhere."""

from buildbot.process.results import FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS

RESULTS = {
    "passed": SUCCESS,
    "no-tests": WARNINGS,
    "uninstall-dirty": WARNINGS,
    "not-applicable": SKIPPED,
    "install-failed": FAILURE,
    "tests-failed": FAILURE,
    # Not the package's fault: the request goes back in the queue (a bounded number of times).
    "infra-error": RETRY,
}

# Outcomes the install phase can settle for good: the later phases have nothing to do.
SETTLED_BY_INSTALL = frozenset({"install-failed", "not-applicable", "infra-error"})
