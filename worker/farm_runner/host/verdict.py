"""The test phase's verdict, from what the host observed: pytest's exit status.

What the test run wrote (junit.xml, the probe plugin's imports) comes from inside the box, where
the package's code ran: it is shown (counts, where the package was imported from) and may only
make a verdict worse (a run that collected nothing, tests that imported the wrong copy), never
better. A file that cannot be read is a fact for the report, not a crash.
"""

import xml.etree.ElementTree as ET

from farm_runner import contract

ZERO = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}


def junit_counts(data):
    """Counts from JUnit XML bytes; None when they cannot be read."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = dict(ZERO)
    try:
        for s in suites:
            tests = int(s.get("tests", 0))
            failed, errors, skipped = int(s.get("failures", 0)), int(s.get("errors", 0)), int(s.get("skipped", 0))
            if min(tests, failed, errors, skipped) < 0:
                return None
            counts["failed"] += failed
            counts["errors"] += errors
            counts["skipped"] += skipped
            counts["passed"] += max(0, tests - failed - errors - skipped)
    except (TypeError, ValueError):
        return None
    return counts


def pytest_verdict(rc, counts):
    """(status, outcome, reason) for pytest's exit status `rc`; `counts` only describe it."""
    known = counts is not None
    if known and rc == 1 and counts["failed"] + counts["errors"] == 0:
        known = False  # the run's own file says nothing failed while pytest says otherwise: not shown
    counts = counts or ZERO
    summary = ("%(passed)d passed, %(failed)d failed, %(errors)d errors, %(skipped)d skipped" % counts
               if known else "counts unreadable or inconsistent with the exit status")
    if rc == 0:
        if known and counts["passed"] + counts["skipped"] + counts["failed"] + counts["errors"] == 0:
            return "skipped", contract.NO_TESTS, "pytest ran but collected no tests."
        return "ok", contract.PASSED, "Tests passed: %s." % summary
    if rc == 5:
        return "skipped", contract.NO_TESTS, "pytest collected no tests (exit status 5)."
    if rc < 0:
        return "failed", contract.TESTS_FAILED, "The test run was killed by signal %d (%s)." % (-rc, summary)
    if rc == 1:
        return "failed", contract.TESTS_FAILED, "Tests failed: %s." % summary
    what = {2: "interrupted or hit collection errors", 3: "hit an internal error",
            4: "was called wrongly (usage error)"}.get(rc, "ended with status %d" % rc)
    return "failed", contract.TESTS_FAILED, "pytest %s (exit status %d; %s)." % (what, rc, summary)


def imported_elsewhere(imported, site_packages):
    """{name: path} of the package's modules the tests imported from outside the environment."""
    if not isinstance(imported, dict):
        return {}
    prefix = site_packages.rstrip("/") + "/"
    return {str(n)[:200]: str(p)[:500] for n, p in imported.items()
            if isinstance(p, str) and p and not p.startswith("!") and not p.startswith(prefix)}
