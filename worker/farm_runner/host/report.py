"""The JSON report: made and written only by the supervisor, in the runner's own folder (never in
the box), replaced atomically. Before each phase starts, the report already says `infra-error`
for it: a runner that dies or is killed mid-phase leaves a report that blames the farm, not the
package, and certainly does not pass it."""

import json
import os
import shlex
import time

from farm_runner import contract, excuses, untrusted


def new_report(args, limits, runner_identity):
    return {"schema": contract.SCHEMA, "spec": args.spec, "package": None, "version": None,
            "python": {"requested": args.python, "path": None, "version": None},
            "index_url": args.index_url, "outcome": None, "reason": None, "infra": None,
            "phases": {p: {"status": "not-run", "seconds": 0.0, "log_excerpt": ""} for p in contract.PHASES},
            "installed_from": None, "dependencies": [], "tests": None, "leftovers": [],
            "reproduce": reproduce(args, limits), "runner_seconds": 0.0, "runner": runner_identity,
            "sandbox": {"mode": None, "limits": limits.as_dict(), "enforced": {}, "missing": {},
                        "network": {"allowed": [], "denied": [], "refused_over_cap": 0}},
            "_state": {"phase_outcomes": {}, "phase_reasons": {}, "phase_infra": {}}}


def reproduce(args, limits, package=None, version=None):
    """The command that runs this case again from a checkout of the farm, with the exact version
    once it is known (a build of "the latest release" names the one it tested)."""
    spec = "%s==%s" % (package, version) if package and version else args.spec
    return " ".join(shlex.quote(x) for x in
                    ["python", "worker/runner.py", spec, "--python", args.python, "--index-url", args.index_url]
                    + (["--dist", args.dist] if args.dist != "auto" else [])
                    + limits.flags() + ["--sandbox", args.sandbox])


def load(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def settle(report, started):
    """Fill the outcome, its reason and the time from the phases' results."""
    st = report["_state"]
    report["outcome"] = contract.outcome_of(st["phase_outcomes"])
    report["reason"] = _reason(report)
    report["infra"] = None
    if report["outcome"] == contract.INFRA_ERROR:
        report["infra"] = next((st["phase_infra"][p] for p in contract.PHASES
                                if st["phase_outcomes"].get(p) == contract.INFRA_ERROR and st["phase_infra"].get(p)),
                               "runner-fault")
    report["runner_seconds"] = round(report.get("runner_seconds", 0.0) + time.monotonic() - started, 3)


def save(report, path):
    tmp = path + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    with open(tmp, "x", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def _reason(r):
    return _outcome_reason(r) + gil_warning((r.get("tests") or {}).get("gil"))


def _outcome_reason(r):
    st = r["_state"]
    outcome = contract.outcome_of(st["phase_outcomes"])
    if outcome != contract.PASSED:
        for phase in contract.PHASES:
            if st["phase_outcomes"].get(phase) == outcome and st["phase_reasons"].get(phase):
                return st["phase_reasons"][phase]
    t = r.get("tests") or {}
    done = [p for p in contract.PHASES if r["phases"][p]["status"] == "ok"]
    what = "%s %s on Python %s" % (r["package"], r["version"], r["python"]["version"])
    note = excuses.not_counted(t) + parts_note(t)
    if "uninstall" in done:
        return "%s installed, passed %d tests and uninstalled cleanly.%s" % (what, t.get("passed", 0), note)
    if "test" in done:
        return "%s installed and passed %d tests (uninstall not run yet).%s" % (what, t.get("passed", 0), note)
    return "%s installed (tests not run yet)." % what


def parts_note(t):
    """A suite that ran in two parts, or again with more memory, said ("" otherwise)."""
    note = ""
    if isinstance(t.get("memory_bytes"), int):
        note += " The tests ran out of memory once and ran again with %d MB." % (t["memory_bytes"] >> 20)
    parts = t.get("parts") if isinstance(t.get("parts"), dict) else None
    hung = t.get("hung") if isinstance(t.get("hung"), list) else None
    if parts and hung:
        note += " %s gave no output for the silence limit and %s stopped (not counted); the others ran on." % (
            ", ".join(untrusted.line(h, 300) for h in hung[:3]), "were" if len(hung) > 1 else "was")
    elif parts and parts.get("cut"):
        note += " The tests ran past the %g s limit in two parts, still finishing tests: cut with %d finished; " \
                "the rest did not run." % (parts.get("limit_s", 0), parts.get("first", 0))
    elif parts:
        note += " The tests ran past the %g s limit with %d finished; the others ran in a second part." % (
            parts.get("limit_s", 0), parts.get("first", 0))
    return note


def gil_warning(gil):
    """A free-threaded slot's warning, said with every outcome: the tests ran with the GIL on."""
    if not isinstance(gil, dict) or not gil.get("enabled"):
        return ""
    by = gil.get("enabled_by") or []
    return (" Warning: importing %s turned the GIL back on, so the tests ran with it; the extension "
            "does not declare that it can run without it." % ", ".join(by[:5]) if by else
            " Warning: an import turned the GIL back on, so the tests ran with it.")


def summary(report):
    r = report
    lines = ["", "%s %s on Python %s: %s" % (r["package"] or r["spec"], r["version"] or "?",
                                             r["python"]["version"] or r["python"]["requested"], r["outcome"])]
    for p in contract.PHASES:
        ph = r["phases"][p]
        extra = ""
        tests = r.get("tests") or {}
        if p == "install" and r.get("installed_from"):
            extra = "%s %s" % (r["installed_from"]["kind"], r["installed_from"]["filename"])
        elif p == "test" and tests.get("command"):
            extra = "%(passed)d passed, %(failed)d failed, %(errors)d errors, %(skipped)d skipped" % tests
        elif p == "uninstall" and r.get("leftovers"):
            extra = "%d left behind" % len(r["leftovers"])
        lines.append("  %-9s %-8s %6.2fs  %s" % (p, ph["status"], ph["seconds"], extra))
    lines.append("reason: %s" % r["reason"])
    lines.append("reproduce: %s" % r["reproduce"])
    return "\n".join(lines) + "\n"


def sentence(text):
    """The farm's sentence, one bounded line whatever of the package's text it quotes."""
    text = untrusted.line(" ".join(str(text).split()), 300)
    return text if text.endswith((".", "!", "?")) else text + "."
