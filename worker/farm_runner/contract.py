"""The one contract between the runner and the master: outcomes, exit statuses, report fields and
limits. Both import it (the master as `farm_runner.contract`, the shipped runner from its bundle),
so a word or a number here is never spelled out anywhere else. Standard library only.

Modelled on crater's results: one list of outcomes, one string form each, and for the
infrastructure's failures a reason that says why the package is not to blame.
"""

from farm_runner import excuses

SCHEMA = 2  # the report's layout; the master refuses any other

PHASES = ("install", "test", "uninstall")

# Outcomes, most serious first: when phases disagree, the first in this list wins.
INFRA_ERROR = "infra-error"
INSTALL_FAILED = "install-failed"
NOT_APPLICABLE = "not-applicable"
TESTS_FAILED = "tests-failed"
UNINSTALL_DIRTY = "uninstall-dirty"
NO_TESTS = "no-tests"
PASSED = "passed"
PRECEDENCE = (INFRA_ERROR, INSTALL_FAILED, NOT_APPLICABLE, TESTS_FAILED, UNINSTALL_DIRTY, NO_TESTS, PASSED)
OUTCOMES = frozenset(PRECEDENCE)

# What each outcome means to a reader of the package page (its legend).
MEANING = {
    PASSED: "installed, its own tests passed, and it uninstalled cleanly",
    NO_TESTS: "installed and uninstalled cleanly, but no tests were found to run",
    UNINSTALL_DIRTY: "the uninstall left files behind or left the package importable",
    TESTS_FAILED: "its own tests failed against the installed copy",
    NOT_APPLICABLE: "this Python or platform is excluded by the release itself (Requires-Python, wheels only)",
    INSTALL_FAILED: "it could not be installed",
    INFRA_ERROR: "the farm failed, not the package (a timeout, memory, disk, a lost worker); retried",
}

# Outcomes the install phase settles for good: the later phases have nothing to do.
SETTLED_BY_INSTALL = frozenset({INSTALL_FAILED, NOT_APPLICABLE, INFRA_ERROR})

# The phase's own failure, when the package is to blame.
FAILED_OUTCOME = {"install": INSTALL_FAILED, "test": TESTS_FAILED, "uninstall": UNINSTALL_DIRTY}

# Exit statuses of the runner. 2 is a refusal of its input (no report is written); any status
# not listed here means the runner itself failed, whatever its report says.
EXIT_CODES = {PASSED: 0, NO_TESTS: 0, NOT_APPLICABLE: 0, INSTALL_FAILED: 1, TESTS_FAILED: 1,
              UNINSTALL_DIRTY: 1, INFRA_ERROR: 3}
EXIT_USAGE = 2

# Buildbot's result for each outcome, by Buildbot's own names (buildbot.process.results.Results);
# the master turns the names into its constants. An infrastructure error puts the request back
# in the queue, a bounded number of times.
BUILDBOT_RESULT = {PASSED: "success", NO_TESTS: "warnings", UNINSTALL_DIRTY: "warnings",
                   NOT_APPLICABLE: "skipped", INSTALL_FAILED: "failure", TESTS_FAILED: "failure",
                   INFRA_ERROR: "retry"}

# Why an infra-error is not the package's fault: report["infra"] holds one of these.
INFRA_REASONS = {
    "timeout": "a phase ran past its wall-time limit or printed nothing for too long",
    "oom": "a command used more memory than the limit",
    "disk": "the build's folders grew past the disk limit",
    "index": "the package index could not be reached",
    "sandbox": "the sandbox or its limits could not be set up on this worker",
    "worker-disk": "the worker's free disk was below its floor, so it refused to build",
    "runner-fault": "the runner itself failed (a bug, or it was killed)",
    "lost-worker": "the worker went away during the build",
    "report": "the runner's report was missing, unreadable or inconsistent",
}

# The report's top-level fields (report.json). "_state" is the runner's own bookkeeping between
# phases, no part of the contract.
REPORT_FIELDS = ("schema", "spec", "package", "version", "python", "index_url", "outcome", "reason", "infra",
                 "phases", "installed_from", "dependencies", "tests", "leftovers", "reproduce",
                 "runner_seconds", "runner", "sandbox")

# The report's "tests" fields: the counts, how the project's tests were run (its own command, the
# folder it runs from), the test dependencies installed and where each came from, the farm's pytest
# and why that one (host/instrument.py), and what the
# package page shows of a failure: the first failing tests (up to 20, with their one-line errors),
# and the failures that were the environment's, not counted against the package (one field per
# class of farm_runner/excuses.py). On a free-threaded
# interpreter, "gil" says whether an import turned the GIL back on ({"enabled", "enabled_by"}). For a
# release with no tests, "imports" holds the import check of its modules ([{"module", "imports", "rc",
# "counted", "error"}], host/import_check.py). "as_of": the time its test dependencies were resolved
# as of (the release's upload; None: as of today). "parts": a suite longer than its time limit that
# ran on in a second part ({"first": tests the first part finished, "limit_s"}). "memory_bytes": the
# memory limit of a test run that ran out of memory once and ran again with more.
# "wrote_in_package": files the tests made in the installed package's own folders, which the
# uninstall leaves (site-packages-relative; not counted as the uninstall's). "excused_counts":
# {class: how many tests it excused}, where the class's own list shows the first 20. "put_back":
# the release's runtime dependencies the test dependencies replaced, put back as users get them.
TEST_FIELDS = ("passed", "failed", "errors", "skipped", "how", "tool", "command", "deps", "deps_error",
               "inferred", "failures") + excuses.FIELDS + (
               "set_aside", "pytest", "returncode", "counts_known",
               "imported_from", "gil", "imports", "as_of", "parts", "hung", "memory_bytes", "wrote_in_package",
               "excused_counts", "put_back")

# Limits of one phase; crater's figures. The runner's flags and farm.toml's [limits] default to these.
DEFAULT_LIMITS = {
    "timeout": 900,  # seconds of wall time
    "silence_timeout": 300,  # seconds without output
    "memory_mb": 1536,
    "processes": 256,
    "disk_mb": 10240,  # the build's own folders (its box and its /tmp): torch's CUDA wheels are ~5 GB installed
    "max_log_mb": 5,
}
SANDBOX_MODES = ("auto", "bwrap", "none")
# A test run that ran out of memory runs once more with this many times the memory limit (a
# scientific suite that peaks at 4 GB); out of memory again, it is the infra-error it was.
OOM_RETRY_FACTOR = 3


def outcome_of(phase_outcomes):
    """The build's outcome from its phases' outcomes: the most serious one."""
    present = set(o for o in phase_outcomes.values() if o)
    for outcome in PRECEDENCE:
        if outcome in present:
            return outcome
    return PASSED


def is_infra(outcome):
    return outcome == INFRA_ERROR

# A slot's Python: "X.Y", or "X.Yt" for a free-threaded build (no GIL). A pre-release interpreter
# (3.15.0b1) serves the slot of its X.Y. The master names builders `<os>-py<slot python>`.
SLOT_PYTHON = r"^(?P<major>[23])\.(?P<minor>\d{1,2})(?P<threading>t?)$"
FREE_THREADED = "t"
