"""The farm's unittest run, in the package's interpreter (any version the farm serves, 2.7 too):
`python -m _farm_unittest OUT [discover] [-s START] [-p PATTERN] [-t TOP] [NAME...]`, from the
folder the project runs its tests in. It runs the tests as `python -m unittest` would and writes
their counts and first failures to OUT as JSON; its exit status is unittest's (0 passed, 1
failed), and 5 when it found no tests, as pytest says it. What it writes is the package's to
forge; the host only shows it."""
import json
import os
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
    loader = unittest.TestLoader()
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(start, pattern=pattern, top_level_dir=top)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failures = [{"test": test.id(), "message": _last_line(text)}
                for test, text in (result.failures + result.errors)[:MAX_FAILURES]]
    failed, errors = len(result.failures) + len(getattr(result, "unexpectedSuccesses", [])), len(result.errors)
    skipped = len(result.skipped) + len(getattr(result, "expectedFailures", []))
    counts = {"passed": result.testsRun - failed - errors - skipped, "failed": failed,
              "errors": errors, "skipped": skipped, "failures": failures}
    with open(out, "w") as fh:
        json.dump(counts, fh)
    if result.testsRun == 0:
        return 5
    return 0 if result.wasSuccessful() else 1


def _last_line(text):
    lines = [l.strip() for l in str(text).splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
