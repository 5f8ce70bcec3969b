"""The farm's unittest run, in the package's interpreter (any version the farm serves, 2.7 too):
`python -m _farm_unittest OUT [discover] [-s START] [-p PATTERN] [-t TOP] [NAME...]`, from the
folder the project runs its tests in. It runs the tests as `python -m unittest` would and writes
their counts and first failures to OUT as JSON; its exit status is unittest's (0 passed, 1
failed), and 5 when it found no tests, as pytest says it. What it writes is the package's to
forge; the host only shows it."""
import io
import json
import os
import re
import sys
import unittest

MAX_FAILURES = 20


def main(argv):
    out, args = argv[0], argv[1:]
    start, pattern, top, names = ".", "test*.py", None, []
    i = 0
    while i < len(args):
        word = args[i]
        if word in ("-s", "--start-directory") and i + 1 < len(args):
            start, i = args[i + 1], i + 2
        elif word in ("-p", "--pattern") and i + 1 < len(args):
            pattern, i = args[i + 1], i + 2
        elif word in ("-t", "--top-level-directory") and i + 1 < len(args):
            top, i = args[i + 1], i + 2
        else:
            if word != "discover":
                names.append(word)
            i += 1
    sys.path.insert(0, os.getcwd())
    # What the tests reach for (the network, a service, a program), seen as the pytest probe sees it
    import _farm_probe
    _farm_probe._install_network_watch()
    _farm_probe._lend_sdist_tests()  # a test_suite inside the package (`pkg.tests`) the sdist alone holds
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(start, pattern=pattern, top_level_dir=top)
        suite = _without_scripts(suite, os.path.abspath(top or start))
    total = suite.countTestCases()
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=_Watched).run(suite)
    _farm_probe.drain_native()
    failures = [{"test": test.id(), "message": _last_line(text)}
                for test, text in (result.failures + result.errors)[:MAX_FAILURES]]
    # Counted by test, not by entry: a test's subtests each add an entry (pathspec's 197 tests
    # gave 276 skipped subtests); a test counts once, by its worst, and is skipped only when the
    # test itself was (a skipped subtest is part of a test that ran). The total is the suite's:
    # 3.12.1's testsRun leaves out tests skipped by decorator.
    failed = {_owner(t) for t, _ in result.failures} | {_owner(t) for t in getattr(result, "unexpectedSuccesses", [])}
    errors = {_owner(t) for t, _ in result.errors} - failed
    skipped = {t.id() for t, _ in result.skipped + getattr(result, "expectedFailures", [])
               if not hasattr(t, "test_case")} - failed - errors
    counts = {"passed": max(0, total - len(failed) - len(errors) - len(skipped)), "failed": len(failed),
              "errors": len(errors), "skipped": len(skipped), "failures": failures,
              "network": _farm_probe._network, "services": _farm_probe._services, "programs": _farm_probe._programs,
              "unconfigured": _farm_probe._unconfigured, "credentials": _farm_probe._credentials}
    with open(out, "w") as fh:
        json.dump(counts, fh)
    if total == 0:
        return 5
    return 0 if result.wasSuccessful() else 1


class _Watched(unittest.TextTestResult):
    """Names the running test to the probe's watch, so what a test reached for is its own."""

    def startTest(self, test):
        sys.modules["_farm_probe"].switch(test.id())
        unittest.TextTestResult.startTest(self, test)

    def addError(self, test, err):
        sys.modules["_farm_probe"].note_unconfigured(_owner(test), sys.modules["_farm_probe"].raised_in(err[2]))
        sys.modules["_farm_probe"].note_error(_owner(test), err[0])
        unittest.TextTestResult.addError(self, test, err)


# What a module that holds tests says somewhere in it: unittest's classes, a test function, a
# doctest. A module discovery imports by its file name alone (`test.py`, a script that calls a
# live API) and that says none of these holds no test to count.
_DEFINES_TESTS = re.compile(r"TestCase|unittest|doctest|^\s*(async\s+)?def\s+test|^\s*class\s+Test", re.M)


def _without_scripts(suite, top):
    """The suite without the modules discovery could not import that define no test at all: such
    a module's import error is no test's failure (whereas a test module's is)."""
    kept = unittest.TestSuite()
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            kept.addTest(_without_scripts(test, top))
            continue
        if type(test).__name__ in ("_FailedTest", "ModuleImportFailure"):  # (2.7's name for it)
            name = test._testMethodName
            base = os.path.join(top, *name.split("."))
            for path in (base + ".py", os.path.join(base, "__init__.py")):
                if os.path.isfile(path):
                    with io.open(path, encoding="utf-8", errors="replace") as fh:
                        text = fh.read(1 << 20)
                    if not _DEFINES_TESTS.search(text):
                        print("[farm: %s defines no test (no TestCase, no test function): its import error "
                              "is not counted]" % os.path.relpath(path, top))
                        test = None
                    break
        if test is not None:
            kept.addTest(test)
    return kept


def _owner(test):
    """The test a result entry belongs to (a subtest's is its test case)."""
    return getattr(test, "test_case", test).id()


def _last_line(text):
    lines = [l.strip() for l in str(text).splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
