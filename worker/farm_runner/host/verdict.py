"""The test phase's verdict, from what the host observed: pytest's exit status.

What the test run wrote (junit.xml, the probe plugin's imports) comes from inside the box, where
the package's code ran: it is shown (counts, where the package was imported from) and may only
make a verdict worse (a run that collected nothing, tests that imported the wrong copy), never
better. A file that cannot be read is a fact for the report, not a crash.
"""

import re
import xml.etree.ElementTree as ET

from farm_runner import contract, excuses, untrusted

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
            # Tests that passed are test cases with no failure, error or skip: pytest 9 counts each
            # subtest in the suite's `tests` too (cachetools: 500 for 476 tests), which would
            # overstate them. Failures, errors and skips stay the suite's own figures.
            cases = s.findall("testcase")
            counts["passed"] += sum(1 for c in cases if not any(
                child.tag in ("failure", "error", "skipped") for child in c)) if cases else max(
                0, tests - failed - errors - skipped)
    except (TypeError, ValueError):
        return None
    return counts


def unittest_counts(data):
    """Counts from the farm's unittest runner's answer; None when they cannot be read."""
    if not isinstance(data, dict):
        return None
    counts = {}
    for key in ZERO:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return None
        counts[key] = value
    return counts


def pytest_verdict(rc, counts, tool="pytest"):
    """(status, outcome, reason) for the test command's exit status `rc` (pytest's, or the farm's
    unittest runner's, which speaks pytest's codes 0, 1 and 5); `counts` only describe it."""
    known = counts is not None
    if known and rc == 1 and counts["failed"] + counts["errors"] == 0:
        known = False  # the run's own file says nothing failed while pytest says otherwise: not shown
    counts = counts or ZERO
    summary = ("%(passed)d passed, %(failed)d failed, %(errors)d errors, %(skipped)d skipped" % counts
               if known else "counts unreadable or inconsistent with the exit status")
    if rc == 0:
        # A pass needs a test of the package's own that passed: none known is no pass.
        if not known:
            return "skipped", contract.NO_TESTS, ("%s ended well but its results could not be read: no test is "
                                                  "known to have passed." % tool)
        if counts["passed"] == 0 and counts["skipped"]:
            return "skipped", contract.NO_TESTS, "%s ran %d tests and skipped every one: none passed." % (
                tool, counts["skipped"])
        if counts["passed"] == 0:
            return "skipped", contract.NO_TESTS, "%s ran but collected no tests." % tool
        return "ok", contract.PASSED, "Tests passed: %s." % summary
    if rc == 5:
        return "skipped", contract.NO_TESTS, "%s collected no tests (exit status 5)." % tool
    if rc < 0:
        return "failed", contract.TESTS_FAILED, "The test run was killed by signal %d (%s)." % (-rc, summary)
    if rc == 1:
        return "failed", contract.TESTS_FAILED, "Tests failed: %s." % summary
    what = {2: "interrupted or hit collection errors", 3: "hit an internal error",
            4: "was called wrongly (usage error)"}.get(rc, "ended with status %d" % rc)
    return "failed", contract.TESTS_FAILED, "%s %s (exit status %d; %s)." % (tool, what, rc, summary)


def could_not_start(rc, counts, started=False):
    """Did the test command stop before any test ran, for want of what it needs to start rather
    than for a test's failure? pytest's internal and usage errors (3, 4), or an error status with
    no results written at all (the test tool itself failed to import), when no test had started
    (`started`: the probe's progress file names one). Collection errors (2) are not: a test module
    that cannot import the package is the package's failure."""
    ran = started or counts is not None and any(counts[k] for k in ("passed", "failed", "errors", "skipped"))
    # (status 1 without results stays a failure: a package's test that removes the run's own
    # files must not turn its failures into "not tested")
    return rc > 0 and not ran and (rc in (3, 4) or (counts is None and rc not in (1, 2, 5)))


def imported_elsewhere(imported, site_packages):
    """{name: path} of the package's modules the tests imported from outside the environment."""
    if not isinstance(imported, dict):
        return {}
    prefix = site_packages.rstrip("/") + "/"
    return {str(n)[:200]: str(p)[:500] for n, p in imported.items()
            if isinstance(p, str) and p and not p.startswith("!") and not p.startswith(prefix)}


MAX_SHOWN = 20  # failing tests the report lists
MAX_RERUN = 20  # failed tests run again to tell a flaky test from a broken one
MAX_RERUN_ALONE = 5  # when they do not all pass together, run again one at a time
MAX_RERUN_ALONE_NETWORK = 12  # failed again beside tests that reached for the network: each alone


_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]{0,40}$")
_PROGRAM = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,99}$")
_SERVICE = re.compile(r"^[A-Za-z0-9.:_-]{1,80}:[0-9]{1,5}$")


# What the probe saw tests do, by test: in its probe.json, and in a stopped run's progress lines.
EVIDENCE_FIELDS = ("network", "programs", "services", "unconfigured", "credentials")
AT_START = "(start)"  # the probe's name for what was read before any test was collected
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def probe_answer(data):
    """The probe plugin's (or the unittest runner's) answer, kept to well-formed, bounded parts:
    {"imports": {name: path}, "network": {test: [what...]}, "programs": {test: [program not found...]},
    "failures": [{"test", "message", "when"}]}."""
    data = data if isinstance(data, dict) else {}
    imports = data.get("imports") if isinstance(data.get("imports"), dict) else {}
    network = data.get("network") if isinstance(data.get("network"), dict) else {}
    programs = data.get("programs") if isinstance(data.get("programs"), dict) else {}
    services = data.get("services") if isinstance(data.get("services"), dict) else {}
    unconfigured = data.get("unconfigured") if isinstance(data.get("unconfigured"), dict) else {}
    credentials = data.get("credentials") if isinstance(data.get("credentials"), dict) else {}
    not_found = data.get("not_found") if isinstance(data.get("not_found"), dict) else {}
    asserted = data.get("asserted") if isinstance(data.get("asserted"), list) else []
    failures = data.get("failures") if isinstance(data.get("failures"), list) else []
    return {
        "imports": {untrusted.line(k, 200): untrusted.line(v, 500) for k, v in list(imports.items())[:50]},
        "network": {untrusted.line(k, 500): [untrusted.line(w, 200) for w in v[:5]] if isinstance(v, list) else []
                    for k, v in list(network.items())[:200]},
        "programs": {str(k)[:500]: [w for w in v[:5] if isinstance(w, str) and _PROGRAM.match(w)]
                     for k, v in list(programs.items())[:200] if isinstance(v, list)},
        "services": {str(k)[:500]: [w for w in v[:5] if isinstance(w, str) and (
                         excuses.service_name(w) if w.startswith(excuses.UNIX) else _SERVICE.match(w))]
                     for k, v in list(services.items())[:200] if isinstance(v, list)},
        # the one framework whose settings the probe knows to look for
        "unconfigured": {str(k)[:500]: v for k, v in list(unconfigured.items())[:200]
                         if v == "Django settings (DJANGO_SETTINGS_MODULE)"},
        "credentials": {str(k)[:500]: [w for w in v[:5] if isinstance(w, str) and _VARIABLE.match(w)]
                        for k, v in list(credentials.items())[:200] if isinstance(v, list)},
        "asserted": {str(t)[:500] for t in asserted[:200] if isinstance(t, str)},
        "not_found": {str(k)[:500]: [w for w in v[:3] if isinstance(w, str) and 0 < len(w) <= 300 and "\0" not in w]
                      for k, v in list(not_found.items())[:200] if isinstance(v, list)},
        "failures": [{"test": untrusted.line(f["test"], 500), "message": untrusted.line(f.get("message") or "", 300),
                      "when": untrusted.line(f.get("when") or "call", 10)}
                     for f in failures[:200] if isinstance(f, dict) and isinstance(f.get("test"), str)],
        "gil_enabled": data.get("gil_enabled") is True,
        "pytest": data["pytest"] if isinstance(data.get("pytest"), str) and _VERSION.match(data["pytest"]) else None,
    }


# CPython's warning when a free-threaded build imports an extension that has not declared it can
# run without the GIL (Python/import.c, 3.13+); the GIL then stays on for the rest of the process.
GIL_WARNING = re.compile(r"global interpreter lock \(GIL\) has been enabled to load module '([A-Za-z0-9_.]{1,200})'")


def gil_story(output, probe):
    """On a free-threaded interpreter: did an import turn the GIL back on during the tests, and
    which modules (named in CPython's warnings in the output). A warning for the maintainer, never
    a failure: {"enabled": bool, "enabled_by": [module, ...]}."""
    names = sorted(set(GIL_WARNING.findall(output or "")))[:MAX_SHOWN]
    return {"enabled": bool(names) or probe.get("gil_enabled") is True, "enabled_by": names}


def rerunnable(test):
    """A test id the host may pass to pytest as an argument: a path-like node id, never an option."""
    return bool(test) and not test.startswith("-") and "\0" not in test and len(test) <= 500 and "::" in test


def excused(rc, counts, failures, network, flaky):
    """Are all of a failed run's failures the environment's (the network) or flaky, beside at least
    one test that passed? Only for a run that pytest itself ended with "tests failed" (1), whose
    counts agree with the failures listed."""
    if rc != 1 or counts is None or not failures or counts["passed"] == 0:
        return False
    if counts["failed"] + counts["errors"] != len(failures):
        return False
    return all(f["test"] in network or f["test"] in flaky for f in failures)
