"""`make bench`: the farm measured against the physical limit, every figure from one run.

Sections (each writes its figures into bench/results.json as soon as it has them):
  overhead    one release at a time on one slot: farm build vs raw uv script vs naive pip script
  throughput  the corpus on every bench slot, the local worker running 2 builds at a time
  intake      a burst of 10,000 releases on a local journal server, until 10,000 build requests exist
  ui          REST latency with those 10,000 requests pending
  latency     a release on the journal to its first finished build, default poll interval

Only 127.0.0.1 is used after the corpus is downloaded once (bench/corpus.py).
Usage: python -m bench.run [--sections overhead,throughput,intake,ui,latency] [--pythons 3.11,3.12]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procedures, stats  # noqa: E402
from bench.corpus import INDEX_DIR, ensure_index, read_corpus  # noqa: E402
from tests.fakepypi import FakePyPI  # noqa: E402
from tests.farm import Farm, wait_for  # noqa: E402
from tests.pkgindex import PackageIndex  # noqa: E402

RESULTS_JSON = ROOT / "bench" / "results.json"
RESULTS_MD = ROOT / "bench" / "results.md"
WORK = ROOT / ".cache" / "bench-work"
UV = str(ROOT / ".venv" / "bin" / "uv")
DEFAULT_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
OVERHEAD_PYTHON = "3.12"
BURST = 10_000
INTAKE_CAP = int(os.environ.get("BENCH_INTAKE_CAP", "240"))  # seconds; past it the rest is extrapolated
UI_SAMPLES = 40
SECTIONS = ("overhead", "throughput", "intake", "ui", "latency")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def host() -> dict:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    uv = subprocess.run([UV, "--version"], capture_output=True, text=True).stdout.strip()
    return {"cores": os.cpu_count(), "memory_gb": round(total_kb / 2**20, 1), "python": platform.python_version(),
            "platform": platform.platform(), "uv": uv, "bwrap": bool(shutil.which("bwrap"))}


class Results:
    """bench/results.json, kept up to date as sections finish (a crash keeps what was measured)."""

    def __init__(self, sections, merge: bool = False):
        self.data = json.loads(RESULTS_JSON.read_text()) if merge and RESULTS_JSON.exists() else {}
        self.data.update(host=host(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
                         sections=sorted(set(self.data.get("sections", [])) | set(sections)))

    def update(self, **figures) -> None:
        self.data.update(figures)
        # Other work on the machine slows the farm more than a shell script: keep the load beside the figures.
        self.data.setdefault("load_average", []).append([time.strftime("%H:%M:%S"), *os.getloadavg()])
        RESULTS_JSON.write_text(stats.dump(self.data))

    def write_markdown(self, before: dict | None) -> None:
        d = self.data
        text = [f"# Bench results ({d['started']})", "",
                f"Host: {d['host']['cores']} cores, {d['host']['memory_gb']} GB, Python {d['host']['python']}, "
                f"{d['host']['uv']}, bubblewrap {'yes' if d['host']['bwrap'] else 'no'}.", "",
                stats.markdown_table(d, before)]
        for key in ("overhead_detail", "throughput_detail", "capacity_detail", "intake_detail", "ui_detail",
                    "latency_detail"):
            if key in d:
                text += [f"## {key.replace('_detail', '')}", "", "```json", json.dumps(d[key], indent=1), "```", ""]
        RESULTS_MD.write_text("\n".join(text))


# -- timing a farm build -----------------------------------------------------------------------------

def rest(farm: Farm, path: str, **params):
    """farm.get, tried again on a transient failure (a connection reset under load is not a result)."""
    for attempt in range(5):
        try:
            return farm.get(path, **params)
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
            if attempt == 4:
                raise
            time.sleep(0.2)


def timed_build(farm: Farm, name: str, version: str, slots) -> tuple[float, int]:
    """Wall seconds from the force request (REST) to the buildset's completion in the database."""
    started = time.monotonic()
    buildsetid, _ = farm.force(name, version, slots=slots)
    while _incomplete(farm, [buildsetid]):
        time.sleep(0.02)
    return time.monotonic() - started, buildsetid


def _incomplete(farm: Farm, buildsetids) -> int:
    """How many of these buildsets are not complete, read from the master's database: polling the
    REST API as often would load the master being measured (30 buildsets polled five times a
    second took a third of its CPU)."""
    marks = ",".join("?" * len(buildsetids))
    return _count(farm, f"select count(*) from buildsets where complete = 0 and id in ({marks})", buildsetids)


def build_report(farm: Farm, buildsetid: int) -> list[dict]:
    _, builds = farm.builds_of(buildsetid)
    out = []
    for build in builds:
        properties = build.get("properties") or {}
        report = (properties.get("report") or [{}])[0] or {}
        out.append({"outcome": (properties.get("outcome") or [None])[0], "results": build["results"],
                    "phases": {k: v.get("seconds") for k, v in (report.get("phases") or {}).items()},
                    "runner_seconds": report.get("runner_seconds"), "state": build.get("state_string"),
                    "inferred": [i.get("requirement") for i in (report.get("tests") or {}).get("inferred") or []
                                 if isinstance(i, dict) and isinstance(i.get("requirement"), str)]})
    return out


def memory_mb(pid: int | None) -> dict:
    if pid is None:
        return {}
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS", "VmHWM")):
                found[line.split(":")[0]] = int(line.split()[1]) / 1024
    return found


# -- sections ------------------------------------------------------------------------------------------

def prepare_corpus(pythons, index: PackageIndex):
    corpus = read_corpus()
    if os.environ.get("BENCH_LIMIT"):  # a quick look at the bench itself: the first N releases only
        corpus = corpus[: int(os.environ["BENCH_LIMIT"])]
    scratch = WORK / "plans"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    plans = {(name, version): procedures.make_plan(INDEX_DIR, name, version, scratch) for name, version in corpus}
    interpreters = procedures.interpreters()
    missing = [p for p in pythons if p not in interpreters]
    if missing:
        raise SystemExit(f"bench: no interpreter for Python {', '.join(missing)} on this machine")
    # Warm the shared caches the raw and naive procedures use (the farm's runner warms its own on
    # its first build): one untimed run of each procedure per release and slot would double the
    # bench, so one install of the whole corpus per interpreter does it.
    for python in pythons:
        for kind in ("raw", "naive"):
            plan = plans[corpus[0]]
            text = procedures.script(plan, kind, interpreters[python], WORK / f"warm-{kind}", index.url, UV,
                                     WORK / f"cache-{kind}")
            everything = " ".join(f"{n}=={v}" for n, v in corpus)
            text = text.replace(f"{plan.name}=={plan.version}", everything, 1)
            procedures.run_script(text)
    return corpus, plans, interpreters


def run_procedure(plan, kind, python, index) -> tuple[float, int, str]:
    version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip() if "/" in python else python
    work = WORK / f"{kind}-{version}-{procedures.normalise(plan.name)}"
    text = procedures.script(plan, kind, python, work, index.url, UV, WORK / f"cache-{kind}")
    try:
        return procedures.run_script(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # after the timing: 120 environments would fill the disk


def section_overhead(farm, corpus, plans, interpreters, index, results, repeat=1):
    python = interpreters[OVERHEAD_PYTHON]
    slot = f"linux-py{OVERHEAD_PYTHON}"
    rows = []
    raw_by_slot = {}
    for name, version in corpus:
        plan = plans[(name, version)]
        farm_runs, raw_runs, naive_runs = [], [], []
        for _ in range(repeat):  # interleaved, so that a slow minute of the machine hits all three
            farm_s, buildsetid = timed_build(farm, name, version, [slot])
            farm_runs.append(farm_s)
            report = build_report(farm, buildsetid)
            if report and report[0]["inferred"]:  # what the runner found missing, the scripts install too
                plan = dataclasses.replace(plan, requirements=plans[(name, version)].requirements
                                           + report[0]["inferred"])
            raw_s, raw_rc, raw_out = run_procedure(plan, "raw", python, index)
            raw_runs.append(raw_s)
            naive_s, naive_rc, naive_out = run_procedure(plan, "naive", python, index)
            naive_runs.append(naive_s)
        farm_s, raw_s, naive_s = stats.median(farm_runs), stats.median(raw_runs), stats.median(naive_runs)
        row = {"release": f"{name}=={version}", "farm_s": round(farm_s, 3), "raw_s": round(raw_s, 3),
               "naive_s": round(naive_s, 3), "outcome": report[0]["outcome"] if report else None,
               "raw_rc": raw_rc, "naive_rc": naive_rc, "runner_phases_s": report[0]["phases"] if report else None}
        if raw_rc not in (0,) or naive_rc not in (0,):
            row["raw_tail"], row["naive_tail"] = raw_out[-300:], naive_out[-300:]
        rows.append(row)
        raw_by_slot[(name, version, OVERHEAD_PYTHON)] = raw_s
        log(f"overhead: {name} {version}: farm {farm_s:.2f} s, raw {raw_s:.2f} s, naive {naive_s:.2f} s "
            f"({row['outcome']}; raw rc {raw_rc}, naive rc {naive_rc})")
    figures = stats.overhead_figures(rows)
    results.update(**{k: round(v, 3) for k, v in figures.items()}, overhead_detail={"slot": slot, "builds": rows})
    return raw_by_slot


def section_throughput(farm, corpus, plans, interpreters, pythons, index, raw_by_slot, results):
    # The raw time of every release on every slot (sequential, idle machine): the work itself.
    for python in pythons:
        for name, version in corpus:
            if (name, version, python) not in raw_by_slot:
                raw_s, rc, _ = run_procedure(plans[(name, version)], "raw", interpreters[python], index)
                raw_by_slot[(name, version, python)] = raw_s
        log(f"throughput: raw times on Python {python} done")
    slots = [f"linux-py{p}" for p in pythons]
    cpu_before, db_before = farm.master_cpu_seconds(), _database_bytes(farm)
    started = time.monotonic()
    buildsets = [farm.force(name, version, slots=slots)[0] for name, version in corpus]
    while _incomplete(farm, buildsets):
        time.sleep(0.1)
    wall = time.monotonic() - started
    builds = len(corpus) * len(pythons)
    results.update(**capacity_figures(farm.master_cpu_seconds() - cpu_before, _database_bytes(farm) - db_before,
                                      builds))
    raw = [raw_by_slot[(n, v, p)] for n, v in corpus for p in pythons]
    outcomes = {}
    for buildsetid in buildsets:
        for build in build_report(farm, buildsetid):
            outcomes[build["outcome"]] = outcomes.get(build["outcome"], 0) + 1
    figures = {"efficiency": round(stats.efficiency(raw, wall, 2), 3),
               "builds_per_hour": round(stats.builds_per_hour(builds, wall), 1)}
    results.update(**figures, throughput_detail={
        "slots": slots, "builds": builds, "parallel": 2, "wall_s": round(wall, 2), "sum_raw_s": round(sum(raw), 2),
        "raw_releases_per_hour_per_core": round(stats.builds_per_hour(builds, sum(raw)), 1), "outcomes": outcomes})
    log(f"throughput: {builds} builds in {wall:.1f} s, efficiency {figures['efficiency']:.0%}")


def capacity_figures(master_cpu_s: float, database_bytes: int, builds: int) -> dict:
    """What plans a farm (README: "Growing past one master"): the buildmaster's CPU per build
    (it is one Python process: one core), the builds a second one master sustains on that core,
    and the database's growth per 10,000 builds (SQLite here; logs are most of it)."""
    cpu = master_cpu_s / builds
    return {"master_cpu_per_build_s": round(cpu, 3), "master_builds_per_s": round(1 / cpu, 1) if cpu else None,
            "db_mb_per_10k_builds": round(database_bytes / builds * 10_000 / 2**20, 1),
            "capacity_detail": {"builds": builds, "master_cpu_s": round(master_cpu_s, 2), "database_bytes": database_bytes}}


def _database_bytes(farm: Farm) -> int:
    """The master's SQLite database, its write-ahead log first copied into it (a checkpoint), so
    that pages the log holds twice do not count twice."""
    folder = farm.folder / "master"
    connection = sqlite3.connect(folder / "state.sqlite", timeout=30)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return sum((folder / name).stat().st_size for name in ("state.sqlite", "state.sqlite-wal")
               if (folder / name).exists())


def _pending_requests(farm: Farm) -> int:
    """Build requests not yet complete, counted in the master's SQLite database (read-only; WAL lets
    a reader in beside the master). The REST API's `meta.total` counts only the rows it returns."""
    return _count(farm, "select count(*) from buildrequests where complete = 0")


def _count(farm: Farm, query: str, parameters=()) -> int:
    database = farm.folder / "master" / "state.sqlite"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(query, tuple(parameters)).fetchone()[0]
    finally:
        connection.close()


class Journal(FakePyPI):
    """The fake PyPI, remembering when the journal was read (the poller's polls)."""

    def __init__(self):
        super().__init__()
        self.reads: list[float] = []

    def changelog_since_serial(self, serial):
        self.reads.append(time.monotonic())
        return super().changelog_since_serial(serial)


def section_intake_and_ui(folder, index, sections, results):
    journal = Journal().start()
    extra = (f'[pypi]\nurl = "{journal.url}"\nfeed = "changelog"\npoll_interval = 10\nsdist_wait = 0\n'
             'contact = "bench@example.org"\n\n'
             '[[workers]]\nname = "absent"\nos = "linux"\npythons = ["3.12"]\npassword_env = "BENCH_ABSENT_PASSWORD"\n')
    farm = Farm(folder, index.url, local_worker=False, extra_toml=extra, env={"BENCH_ABSENT_PASSWORD": "never-used"})
    farm.start(wait_for_worker=False)
    try:
        wait_for(lambda: journal.requests["xmlrpc"] >= 1, 60, "the poller's first journal call")
        before_burst = len(journal.reads)
        profiler = start_profiler(farm.master_pid(), "intake")
        with journal.lock:
            for number in range(BURST):
                journal.publish(f"burst-{number:05d}", "1.0", wheels=1)
        published = time.monotonic()
        wait_for(lambda: len(journal.reads) > before_burst, 60, "the poll that sees the burst", interval=0.05)
        seen = journal.reads[before_burst]
        pid = farm.master_pid()
        peak_rss = 0.0
        progress = []
        while True:
            count = _pending_requests(farm)
            peak_rss = max(peak_rss, memory_mb(pid).get("VmRSS", 0))
            progress.append((round(time.monotonic() - seen, 1), count))
            if count >= BURST:
                break
            if time.monotonic() - seen > INTAKE_CAP:
                break
            time.sleep(0.5)
        done = time.monotonic()
        stop_profiler(profiler)
        memory = memory_mb(pid)
        changes = _count(farm, "select count(*) from changes where category = 'release'")
        complete = count >= BURST
        # Past the cap the figure is an extrapolation at the last minute's rate (the queue slows as it
        # grows: an underestimate), and says so.
        recent = [p for p in progress if p[0] >= progress[-1][0] - 60]
        rate = (recent[-1][1] - recent[0][1]) / max(1e-9, recent[-1][0] - recent[0][0])
        intake_s = done - seen if complete else (done - seen) + (BURST - count) / max(rate, 1e-9)
        intake = {"intake_10k_s": round(intake_s, 1), "intake_complete": complete,
                  "master_rss_mb": round(memory.get("VmHWM", peak_rss), 1)}
        results.update(**intake, intake_detail={
            "releases": BURST, "journal_rows": BURST * 3, "slots": 1, "poll_interval_s": 10,
            "build_requests_at_end": count, "changes_at_end": changes, "seconds_measured": round(done - seen, 1),
            "last_minute_rate_per_s": round(rate, 1),
            "from_publication_s": round(done - published, 2), "from_first_sight_s": intake["intake_10k_s"],
            "metadata_requests": journal.requests["json"], "journal_calls": journal.requests["xmlrpc"],
            "master_rss_now_mb": round(memory.get("VmRSS", 0), 1), "progress": progress[:: max(1, len(progress) // 20)]})
        log(f"intake: {count} build requests, {changes} changes {done - seen:.1f} s after the poll that saw them "
            f"(10,000 {'reached' if complete else f'extrapolated at {intake_s:.0f} s'}); "
            f"master RSS peak {intake['master_rss_mb']:.0f} MB")
        if "ui" in sections:
            section_ui(farm, results)
    finally:
        farm.stop()
        journal.stop()


def start_profiler(pid, label):
    """py-spy on the master while a section runs, when BENCH_PYSPY names the py-spy binary."""
    if not os.environ.get("BENCH_PYSPY") or pid is None:
        return None
    output = WORK / f"profile-{label}.txt"
    return subprocess.Popen([os.environ["BENCH_PYSPY"], "record", "--pid", str(pid), "--format", "raw",
                             "--rate", "50", "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler):
    if profiler is not None:
        profiler.send_signal(2)
        profiler.wait(60)


def _time_get(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
    return time.monotonic() - started


def section_ui(farm: Farm, results, label: str = "ui"):
    base = farm.url
    endpoints = {
        "builds": f"{base}api/v2/builds?limit=50&order=-buildid&property=*",
        "builders": f"{base}api/v2/builders",
        "pending requests": f"{base}api/v2/buildrequests?complete=false&limit=50&order=-priority&order=submitted_at",
        "workers": f"{base}api/v2/workers",
        "package page JSON": f"{base}plugins/wsgi_dashboards/packages/burst-09999.json",
        "farm overview JSON": f"{base}plugins/wsgi_dashboards/overview/overview.json",
    }
    detail = {"pending": _pending_requests(farm), "endpoints": {}}
    every = []
    for what, url in endpoints.items():
        try:
            _time_get(url)  # the first answer may fill caches: not counted
        except (urllib.error.URLError, OSError) as error:
            # A page that fails is not fast: no figure for the section, and the error beside it.
            detail["endpoints"][what] = {"failed": f"{type(error).__name__}: {error}"}
            log(f"{label}: {what}: FAILED ({error})")
            continue
        samples = [_time_get(url) * 1000 for _ in range(UI_SAMPLES)]
        every += samples
        detail["endpoints"][what] = {"p50_ms": round(stats.median(samples), 1),
                                     "p95_ms": round(stats.percentile(samples, 0.95), 1), "url": url[len(base):]}
        log(f"{label}: {what}: p95 {stats.percentile(samples, 0.95):.0f} ms")
    failed = any("failed" in e for e in detail["endpoints"].values())
    worst = None if failed else max((e["p95_ms"] for e in detail["endpoints"].values()), default=None)
    results.update(**{f"{label}_p95_ms": worst, f"{label}_detail": detail})


def section_latency(folder, index, results):
    journal = Journal().start()
    extra = f'[pypi]\nurl = "{journal.url}"\nfeed = "changelog"\ncontact = "bench@example.org"\n'
    farm = Farm(folder, index.url, pythons=(OVERHEAD_PYTHON,), extra_toml=extra)
    farm.start()
    try:
        samples = []
        for name, version in (("six", "1.17.0"), ("iniconfig", "2.3.1")):
            reads = len(journal.reads)
            wait_for(lambda: len(journal.reads) > reads, 200, "a poll", interval=0.05)
            # Published just after a poll: the worst case, a whole poll interval before it is seen.
            time.sleep(0.5)
            published = time.monotonic()
            journal.publish(name, version, wheels=1)

            def finished():
                builds = rest(farm, "builds", complete="true", property="package")["builds"]
                return any((b.get("properties", {}).get("package") or [None])[0] == name for b in builds)

            wait_for(finished, 300, f"the first build of {name}", interval=0.1)
            seen = next(t for t in journal.reads if t > published)
            samples.append({"release": f"{name}=={version}", "latency_s": round(time.monotonic() - published, 2),
                            "waiting_for_the_poll_s": round(seen - published, 2),
                            "poll_to_result_s": round(time.monotonic() - seen, 2)})
            log(f"latency: {name} {version}: {samples[-1]}")
        poll_interval = farm_poll_interval()
        results.update(latency_s=max(s["latency_s"] for s in samples), latency_detail={
            "poll_interval_s": poll_interval, "published": "just after a poll (the worst case)", "samples": samples,
            "expected_mean_s": round(poll_interval / 2 + sum(s["poll_to_result_s"] for s in samples) / len(samples), 1)})
    finally:
        farm.stop()
        journal.stop()


def farm_poll_interval() -> int:
    from pypi_poller.settings import PypiSettings

    return PypiSettings().poll_interval


# -- main ------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--pythons", default=os.environ.get("BENCH_PYTHONS", ",".join(DEFAULT_PYTHONS)))
    parser.add_argument("--repeat", type=int, default=1, help="time each release's build and scripts this many "
                        "times (the overhead section) and keep the median of each")
    parser.add_argument("--before", help="results.json of an earlier run, shown beside these figures")
    parser.add_argument("--merge", action="store_true", help="keep the figures of bench/results.json that these "
                        "sections do not measure again")
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    pythons = tuple(p for p in args.pythons.split(",") if p)
    if OVERHEAD_PYTHON not in pythons:
        parser.error(f"the overhead is measured on Python {OVERHEAD_PYTHON}: include it in --pythons")
    before = json.loads(Path(args.before).read_text()) if args.before else None
    if not sections:  # --sections "": write results.md again from results.json
        results = Results([], merge=True)
        results.write_markdown(before)
        print(stats.markdown_table(results.data, before))
        return 0
    results = Results(sections, merge=args.merge)
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    ensure_index(pythons, log=log)
    with PackageIndex(INDEX_DIR) as index, tempfile.TemporaryDirectory(prefix="bench-", dir=WORK) as temporary:
        temporary = Path(temporary)
        if "overhead" in sections or "throughput" in sections:
            corpus, plans, interpreters = prepare_corpus(pythons, index)
            log(f"corpus: {len(corpus)} releases, slots {', '.join(pythons)}")
            (temporary / "a").mkdir()
            farm = Farm(temporary / "a", index.url, pythons=pythons, max_builds=2)
            farm.start()
            try:
                raw_by_slot = {}
                if "overhead" in sections:
                    raw_by_slot = section_overhead(farm, corpus, plans, interpreters, index, results, args.repeat)
                if "throughput" in sections:
                    section_throughput(farm, corpus, plans, interpreters, pythons, index, raw_by_slot, results)
            finally:
                farm.stop()
        if "intake" in sections or "ui" in sections:
            (temporary / "b").mkdir()
            section_intake_and_ui(temporary / "b", index, sections, results)
        if "latency" in sections:
            (temporary / "c").mkdir()
            section_latency(temporary / "c", index, results)
    results.update(bench_seconds=round(time.monotonic() - started, 1))
    results.write_markdown(before)
    print(stats.markdown_table(results.data, before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
