"""The import check of a release with no tests (Debian's autodep8 for Python): each of its
top-level modules imported in a fresh process, in the sandbox, offline. The host decides from each
process's exit status; the exception's line is shown, never read for the verdict.

Which module counts: the release's main module (its import name is the project's name, or it is
the only module it installs besides test helpers and build scripts); without one, the release
fails only when none of its modules imports. The others are shown, not counted.
"""

import re

from farm_runner._vendor.packaging.utils import canonicalize_name
from farm_runner.inside.discover import NOT_THE_PACKAGE

MAX_MODULES = 5  # imported at most, the main module first
# Names that are plainly not a package's API: a build script, a test helper, a private module.
_NOT_API = re.compile(r"^(setup|conftest|build|scripts?|tools|noxfile|fabfile|manage|test_.*|.*_tests?|_.*)$")


def modules_to_check(project, import_names):
    """([(module, counted)], main module or None) for the release's import names."""
    api = [n for n in sorted(import_names) if n not in NOT_THE_PACKAGE and not _NOT_API.match(n)]
    wanted = canonicalize_name(project).replace("-", "_")
    main = next((n for n in api if n.lower() == wanted), None)
    if main is None and len(api) == 1:
        main = api[0]
    ordered = ([main] if main else []) + [n for n in sorted(import_names) if n != main]
    return [(n, n == main or (main is None and n in api)) for n in ordered[:MAX_MODULES]], main


def installs_nothing(record, requires):
    """True when the release installed only its own metadata and requires nothing: its code was
    left out of the wheel or sdist (a metapackage requires what it stands for). An empty RECORD
    says nothing (an egg-info without its file list) and is not taken for an empty release."""
    tops = {p.replace("\\", "/").split("/")[0] for p in record}
    return bool(tops) and all(t.endswith((".dist-info", ".egg-info")) for t in tops) and not requires


def command(python_and_flags, module):
    return list(python_and_flags) + ["-c", "import %s" % module]


def last_line(output):
    lines = [l.strip() for l in (output or "").strip().splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


def verdict(results, main, undeclared):
    """(fails, sentence) from [{"module", "imports", "error", "counted"}]: fails when the main
    module does not import, or, without one, when none of the counted modules does. `undeclared`:
    {module: name it failed to find that nothing installed provides}."""
    counted = [r for r in results if r["counted"]]
    failed = [r for r in counted if not r["imports"]]
    fails = bool(counted) and (bool(failed) if main else len(failed) == len(counted))
    if fails:
        r = failed[0]
        why = r["error"] or "exit status %d" % r["rc"]
        extra = (" (it imports %s, which the release does not declare)" % undeclared[r["module"]]
                 if r["module"] in undeclared else "")
        return True, "importing %s fails: %s%s" % (r["module"], why, extra)
    good = [r["module"] for r in results if r["imports"]]
    bad = [r for r in results if not r["imports"]]
    text = "it imports cleanly (%s)" % ", ".join(good) if good and not bad else (
        "%s imports; %s not (not counted: %s)" % (", ".join(good) or "none", ", ".join(r["module"] for r in bad),
                                                  "; ".join("%s: %s" % (r["module"], r["error"]) for r in bad)[:300])
        if good else "nothing to import")
    return False, text
