"""Run the verdict corpus through the runner and score the farm's verdicts against the truth.

    python -m bench.verdicts.run [--ids 1-24,30] [--jobs 2] [--all] [--score]

Each checked case (a `truth` whose outcome is decided) runs as the farm runs it: the runner
(worker/runner.py) on the case's slot, against PyPI, in its sandbox, with the farm's default
limits. A case that ends in infra-error runs once more, as the farm retries it. The verdicts go to
`verdicts.json` (kept between runs: `--score` scores them again without running anything), the
figures to `results.json`, and every disagreement is printed. README.md beside this file says how
the truth is found and what each figure means.
"""

import argparse
import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "worker"))
from farm_runner import excuses  # noqa: E402  (the runner's package, as the master imports it)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS, VERDICTS, RESULTS = HERE / "corpus.json", HERE / "verdicts.json", HERE / "results.json"
WORK = ROOT / ".cache" / "verdicts-work"
INDEX = "https://pypi.org/simple"

# The farm's outcome each true outcome agrees with.
AGREES = {"passed": {"passed"}, "tests-failed": {"tests-failed"}, "no-tests": {"no-tests"},
          "could-not-test": {"no-tests"}, "install-failed": {"install-failed"},
          "not-applicable": {"not-applicable"}}
DECIDED = frozenset(AGREES)


def agrees(case, verdict):
    """Does the farm's outcome agree with the truth? An uninstall the farm found not clean agrees
    where the hand check found the same (the truth's "uninstall": "dirty", with its evidence): the
    procedure judges the tests, and the uninstall only where the farm says it was not clean."""
    truth = case["truth"]
    if verdict["outcome"] == "uninstall-dirty" and truth.get("uninstall") == "dirty":
        return True
    return verdict["outcome"] in AGREES[truth["outcome"]]


def parse_ids(text):
    ids = set()
    for part in filter(None, (text or "").split(",")):
        low, _, high = part.partition("-")
        ids.update(range(int(low), int(high or low) + 1))
    return ids


def kept_report(case):
    """The report a finished run of this case left in its work folder, or None."""
    try:
        report = json.loads((WORK / str(case["id"]) / "report.json").read_text())
    except (OSError, ValueError):
        return None
    done = report.get("outcome") and all(p["status"] != "not-run" for p in report["phases"].values()) \
        and report.get("infra") != "runner-fault"
    return report if done and report.get("spec") == "%s==%s" % (case["name"], case["version"]) else None


def trimmed(report, seconds):
    tests = report.get("tests") or {}
    return {"outcome": report["outcome"], "reason": report["reason"], "infra": report.get("infra"),
            "seconds": seconds, "counts": {k: tests.get(k) for k in ("passed", "failed", "errors", "skipped")},
            "how": tests.get("how"), "failures": [f["test"] for f in tests.get("failures") or []][:5],
            "excused": {k: len(tests.get(k) or []) for k in excuses.FIELDS}}


def run_case(case, reuse=False):
    """The runner's report of one case (run again once after an infra-error), trimmed. With
    `reuse`, a finished run's report in the case's work folder is taken instead."""
    work = WORK / str(case["id"])
    if reuse and kept_report(case):
        report = kept_report(case)
        return dict(trimmed(report, report.get("runner_seconds")), tries=0)
    tries = []
    for attempt in (1, 2):
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(ROOT / "worker" / "runner.py"),
                               "%s==%s" % (case["name"], case["version"]), "--python", case["slot"],
                               "--index-url", INDEX, "--workdir", str(work), "--quiet"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=str(ROOT))
        seconds = round(time.monotonic() - started, 1)
        try:
            report = json.loads((work / "report.json").read_text())
        except (OSError, ValueError):
            report = None
        if proc.returncode == 2 or report is None:
            tries.append({"outcome": "refused", "reason": (proc.stderr.strip().splitlines() or ["no report"])[-1][:500],
                          "seconds": seconds})
            break
        tries.append(trimmed(report, seconds))
        if report["outcome"] != "infra-error":
            break
    return dict(tries[-1], tries=len(tries))


def score(cases, verdicts):
    """The figures over the decided cases that have a verdict, in all and per stratum."""
    def figures(group):
        decided = [(c, verdicts[str(c["id"])]) for c in group if str(c["id"]) in verdicts]
        agree = [c for c, v in decided if agrees(c, v)]
        said_failed = [c for c, v in decided if v["outcome"] == "tests-failed"]
        false_passes = [c["id"] for c, v in decided if v["outcome"] == "passed"
                        and c["truth"]["outcome"] in ("tests-failed", "install-failed")]
        return {"cases": len(decided), "agreement": round(len(agree) / len(decided), 3) if decided else None,
                "said_failed": len(said_failed),
                "failure_precision": round(sum(1 for c in said_failed if c["truth"]["outcome"] == "tests-failed")
                                           / len(said_failed), 3) if said_failed else None,
                "false_passes": false_passes}

    checked = [c for c in cases if (c.get("truth") or {}).get("outcome") in DECIDED]
    out = figures(checked)
    out["strata"] = {s: figures([c for c in checked if c["stratum"] == s]) for s in ("tail", "mid", "top", "era")}
    out["disagreements"] = [
        {"id": c["id"], "release": "%s %s" % (c["name"], c["version"]), "slot": c["slot"],
         "stratum": c["stratum"], "truth": c["truth"]["outcome"], "farm": verdicts[str(c["id"])]["outcome"],
         "farm_reason": verdicts[str(c["id"])]["reason"], "truth_causes": c["truth"].get("causes")}
        for c in checked if str(c["id"]) in verdicts
        and not agrees(c, verdicts[str(c["id"])])]
    out["undecided"] = [c["id"] for c in cases if (c.get("truth") or {}).get("outcome") == "undecided"]
    return out


def take(corpus, files):
    """Put checked truths into corpus.json; a truth for another release or slot than its id's is refused."""
    by_id = {c["id"]: c for c in corpus["cases"]}
    taken = 0
    for path in files:
        for entry in json.loads(Path(path).read_text()):
            case = by_id.get(entry.get("id"))
            truth = entry.get("truth") or {}
            if case is None or (entry.get("name"), entry.get("version"), entry.get("slot")) != (
                    case["name"], case["version"], case["slot"]):
                print("%s: case %r is not the corpus's (%s); left out" % (path, entry.get("id"), entry.get("name")))
                continue
            if truth.get("outcome") not in DECIDED | {"undecided"}:
                print("%s: case %d has no outcome the procedure knows (%r); left out" % (path, case["id"],
                                                                                       truth.get("outcome")))
                continue
            case["truth"] = truth
            taken += 1
    CORPUS.write_text(json.dumps(corpus, indent=1) + "\n")
    print("%d truths taken; %d cases checked in all" % (taken, sum(1 for c in corpus["cases"] if c.get("truth"))))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ids", help="case ids to run, e.g. 1-24,30 (default: every checked case)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--score", action="store_true", help="score the kept verdicts; run nothing")
    ap.add_argument("--reuse", action="store_true", help="take a finished run's report from a case's work folder "
                    "(.cache/verdicts-work/ID) instead of running it again")
    ap.add_argument("--collect", action="store_true", help="only take the finished runs' reports (as --reuse); "
                    "run nothing")
    ap.add_argument("--take", nargs="+", metavar="FILE", help="put the truths checked by hand in FILEs (lists of "
                    "{id, name, version, slot, truth}) into the corpus, and stop")
    a = ap.parse_args(argv)
    corpus = json.loads(CORPUS.read_text())
    cases = corpus["cases"]
    if a.take:
        return take(corpus, a.take)
    verdicts = json.loads(VERDICTS.read_text()) if VERDICTS.exists() else {}
    if not a.score:
        wanted = parse_ids(a.ids)
        todo = [c for c in cases if (c["id"] in wanted if wanted else (c.get("truth") or {}).get("outcome") in DECIDED)]
        if a.collect:
            todo, a.reuse = [c for c in todo if kept_report(c)], True
        print("running %d cases, %d at a time" % (len(todo), a.jobs), flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
            running = {pool.submit(run_case, case, a.reuse): case for case in todo}
            for done in concurrent.futures.as_completed(running):  # kept as each ends: a long one holds none back
                case, verdict = running[done], done.result()
                verdicts[str(case["id"])] = verdict
                truth = (case.get("truth") or {}).get("outcome", "unchecked")
                print("%4d %-40s %-5s truth %-15s farm %-15s %6.1fs" % (
                    case["id"], ("%s %s" % (case["name"], case["version"]))[:40], case["slot"], truth,
                    verdict["outcome"], verdict["seconds"]), flush=True)
                VERDICTS.write_text(json.dumps(verdicts, indent=1, sort_keys=True) + "\n")
    results = dict(score(cases, verdicts), seed=corpus["seed"], corpus_cases=len(cases))
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print("\n%-6s %6s %10s %12s %10s %s" % ("", "cases", "agreement", "said failed", "precision", "false passes"))
    for name, f in [("all", results)] + list(results["strata"].items()):
        print("%-6s %6d %10s %12d %10s %s" % (name, f["cases"], f["agreement"], f["said_failed"],
                                              f["failure_precision"], f["false_passes"] or "none"))
    for d in results["disagreements"]:
        print("\n#%d %s on %s (%s): truth %s, farm %s\n  farm: %s\n  truth: %s" % (
            d["id"], d["release"], d["slot"], d["stratum"], d["truth"], d["farm"], d["farm_reason"],
            "; ".join(d["truth_causes"] or [])[:600]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
