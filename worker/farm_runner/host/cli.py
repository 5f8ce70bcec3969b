"""Install, self-test and uninstall one release on one interpreter.

    python runner.py SPEC --python PY [--index-url URL] [--phase install|test|uninstall|all]
                     [--workdir DIR] [--report FILE] [--timeout SECONDS] [--uv PATH] [--cache-dir DIR]
    python runner.py --list-pythons

SPEC is `name==version`, a bare `name` (latest final release on the index) or the path of an
sdist or wheel. PY is `X.Y` (an interpreter found on this machine, see --list-pythons) or the
path of an interpreter. The runner itself needs Python 3.9+ and nothing else installed.

The JSON report (--report, default WORKDIR/report.json) is also the state shared by the phases:
`--phase install` starts a fresh workdir and writes it, `--phase test` and `--phase uninstall`
read it, do their part and rewrite it. Outcomes and exit statuses: farm_runner/contract.py
(0 passed / no-tests / not-applicable, 1 install-failed / tests-failed / uninstall-dirty,
2 usage error with no report written, 3 infra-error).
"""

import argparse
import json
import os
import re
import sys

from farm_runner import contract, versions
from farm_runner.host import report as report_
from farm_runner.host.index import file_kind
from farm_runner.host.interpreters import UsageError, find_interpreters, resolve_python
from farm_runner.host.index_cache import MAX_BYTES as INDEX_CACHE_BYTES
from farm_runner.host.limits import MIN_FREE_DISK, format_size, parse_size
from farm_runner.host.platforms import exe_name, user_cache_dir
from farm_runner.host.supervisor import Runner, fresh_workdir

DEFAULT_INDEX = "https://pypi.org/simple"
NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.I)  # PEP 508


def parse_spec(spec):
    """('path', abspath) | ('name', name, version-or-None)."""
    if spec.endswith(".whl") or file_kind(spec) or os.sep in spec or os.path.exists(spec):
        if not os.path.isfile(spec):
            raise UsageError("no such distribution file: %s" % spec)
        if not file_kind(spec):
            raise UsageError("%s is neither a wheel nor an sdist" % spec)
        return ("path", os.path.abspath(spec))
    name, sep, version = spec.partition("==")
    name, version = name.strip(), version.strip()
    if not NAME_RE.match(name):
        raise UsageError("malformed SPEC %r: expected name==version, a bare name or a distribution file" % spec)
    if sep and not versions.valid(version):
        raise UsageError("malformed SPEC %r: %r is not a valid version" % (spec, version))
    return ("name", name, version or None)


def find_uv(explicit=None):
    for cand in (explicit, os.environ.get("UV"),
                 os.path.join(os.path.dirname(sys.executable), exe_name("uv")), _which("uv")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return None


def _which(name):
    import shutil
    return shutil.which(name)


def _phase_list(text):
    phases = tuple(p for p in text.split(",") if p)
    unknown = [p for p in phases if p not in contract.PHASES]
    if unknown:
        raise argparse.ArgumentTypeError("unknown phase %s: the phases are %s" % (
            ", ".join(unknown), ", ".join(contract.PHASES)))
    return phases


def _project_name(text):
    if not re.match(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?$", text):
        raise argparse.ArgumentTypeError("%r is not a project name (letters, digits, '.', '_' and '-')" % text[:100])
    return text


def parser():
    d = contract.DEFAULT_LIMITS
    ap = argparse.ArgumentParser(prog="runner.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", nargs="?", help="name==version, name, or a wheel/sdist path")
    ap.add_argument("--python", help="X.Y or an interpreter path")
    ap.add_argument("--index-url", default=DEFAULT_INDEX)
    ap.add_argument("--phase", choices=contract.PHASES + ("all",), default="all")
    ap.add_argument("--workdir", default="runner-work")
    ap.add_argument("--report")
    ap.add_argument("--timeout", type=float, default=d["timeout"], help="seconds of wall time per phase")
    ap.add_argument("--silence-timeout", type=float, default=d["silence_timeout"],
                    help="seconds a phase may print nothing")
    ap.add_argument("--memory", type=parse_size, default="%dM" % d["memory_mb"],
                    help="memory per phase (e.g. 1536M, 1.5G)")
    ap.add_argument("--processes", type=int, default=d["processes"], help="processes at once")
    ap.add_argument("--disk", type=parse_size, default="%dM" % d["disk_mb"], help="disk the build's folder may use")
    ap.add_argument("--max-log", type=parse_size, default="%dM" % d["max_log_mb"],
                    help="output kept per phase; the rest is cut")
    ap.add_argument("--dist", choices=("auto", "sdist"), default="auto",
                    help="auto: a compatible wheel if there is one, else the sdist; sdist: build from the sdist")
    ap.add_argument("--sandbox", choices=contract.SANDBOX_MODES, default="auto",
                    help="auto: bubblewrap on Linux (refuses to run without it), none elsewhere")
    ap.add_argument("--uv", help="path of the uv binary")
    ap.add_argument("--cache-dir", help="uv cache (default: a per-user cache folder)")
    ap.add_argument("--index-page-ttl", type=float, default=None, metavar="SECONDS",
                    help="how long the worker's cache of the index keeps a project's page (default: 600; "
                         "0 for an index on this machine)")
    ap.add_argument("--index-cache-size", type=parse_size, default=format_size(INDEX_CACHE_BYTES), metavar="SIZE",
                    help="the files the worker's cache of the index keeps, at most, for all its builds "
                         "(default: %(default)s)")
    ap.add_argument("--min-free-disk", type=parse_size, default=format_size(MIN_FREE_DISK), metavar="SIZE",
                    help="free disk below which this worker refuses builds (default: %(default)s)")
    ap.add_argument("--fresh", action="append", default=[], type=_project_name, metavar="NAME",
                    help="a project whose page the worker's cache of the index fetches anew (a dependency "
                         "whose new release asked for this build); the release's own always is")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    ap.add_argument("--echo", type=_phase_list, default=contract.PHASES, metavar="PHASE[,PHASE]",
                    help="the phases whose output is printed as well as kept in WORKDIR/<phase>.log "
                         "(default: all of them)")
    ap.add_argument("--list-pythons", action="store_true")
    return ap


def main(argv=None):
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code
    if args.list_pythons:
        print(json.dumps(find_interpreters(), indent=2))
        return 0
    runner = None
    try:
        if not args.spec or not args.python:
            raise UsageError("SPEC and --python are required (or --list-pythons)")
        runner = Runner(args, parse_spec(args.spec))
        if args.phase in ("install", "all"):
            runner.py_path, runner.py_info = resolve_python(args.python)
            runner.uv_path = find_uv(args.uv)
            runner.cache_dir = os.path.abspath(args.cache_dir or os.path.join(user_cache_dir(), "uv"))
            fresh_workdir(runner.workdir)
            runner.start_report()
            if not runner.uv_path:
                runner.set_phase("install", "error", contract.INFRA_ERROR,
                                 "uv was not found (--uv, $UV, next to the worker's Python, or PATH).", 0.0, None,
                                 "runner-fault")
                runner.save()
            else:
                runner.run_phase("install")
        for phase in contract.PHASES if args.phase == "all" else (args.phase,):
            if phase != "install":
                runner.run_phase(phase)
    except UsageError as exc:
        if runner is not None and args.phase in ("install", "all") and os.path.lexists(runner.report_path):
            os.remove(runner.report_path)  # a refusal leaves no report, not a provisional one
        sys.stderr.write("runner.py: error: %s\n" % exc)
        return contract.EXIT_USAGE
    sys.stdout.write(report_.summary(runner.report))
    return contract.EXIT_CODES[runner.report["outcome"]]
