"""The supervisor: runs one release through its three phases and decides the outcome.

The build's folder (WORKDIR) is the runner's own; the package never sees it:

    report.json, <phase>.log     written here, by the supervisor only
    snapshot-before.json         the environment's files before anything was installed
    etc/                         the sandbox's passwd, group and hosts
    dl/                          the sdist, downloaded and hash-checked before it is unpacked
    out/<n>/                     the test run's junit.xml and imports (read as untrusted data)
    box/                         the sandbox's only lasting writable folder: env/, src/, run/, home/

Everything that touches what the package's code could have written (box/, out/) happens inside
the sandbox (farm_runner.inside), or happens before any package code ran, or is read here through
farm_runner.untrusted. The outcome comes from exit statuses the supervisor saw and its own checks.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import urllib.request

from farm_runner import bundle, contract, excuses, untrusted, versions
from farm_runner._vendor.packaging.utils import canonicalize_name
from farm_runner._vendor.packaging.version import Version
from farm_runner._vendor.packaging.requirements import InvalidRequirement, Requirement
from farm_runner.host import (audit, django_check, import_check, index, index_cache, installers, instrument,
                              limits as limits_, missing, netwatch, report as report_, sandbox as sandbox_,
                              verdict)
from farm_runner.host.commands import AnswerPipe, child_env, run_command
from farm_runner.host.interpreters import UsageError, lacking_standard_modules, uses_legacy_tools
from farm_runner.host.limits import InfraError, LimitHit
from farm_runner.host.platforms import env_layout
from farm_runner.host.proxy import MAX_CONNECTIONS, IndexProxy, allowed_endpoints
from farm_runner.inside import discover, environment, imports
from farm_runner.inside.discover import NOT_THE_PACKAGE, is_dev_name, is_test_name
from farm_runner.inside.stage import test_command

LOG_EXCERPT_BYTES = 4096
TOOLS_MAX_AGE = 86400  # seconds: the shared test tools are resolved again once a day
TOOLS_RECIPE = 3  # how a tools folder is made: a runner that makes them otherwise never takes an older one
TOOLS_PTH = "_farm_test_tools.pth"
MAX_RESULT = 64 << 20  # bytes of one inside task's answer
MAX_JUNIT = 64 << 20
MAX_PROBE = 4 << 20
MAX_PROGRESS = 200000  # lines of a progress file read
SDIST_IN_SANDBOX = "/run/farm/sdist"


class PhaseLog:
    """A phase's output: the whole text goes to WORKDIR/<phase>.log, and to stdout when echoed."""

    def __init__(self, path, echo=True):
        self.path = path
        self.fh = open(path, "w", encoding="utf-8", errors="replace")
        self.echo = echo

    def write(self, text):
        self.fh.write(text)
        if self.echo:
            sys.stdout.write(text.encode("utf-8", "replace").decode("utf-8"))

    def close(self):
        self.fh.close()

    def excerpt(self, limit=LOG_EXCERPT_BYTES):
        self.fh.flush()
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
        text = data.decode("utf-8", "replace")
        return ("...\n" + text) if size > limit else text


class Runner:
    def __init__(self, args, spec):
        self.args, self.spec = args, spec
        self.workdir = os.path.realpath(args.workdir)
        self.box = os.path.join(self.workdir, "box")
        self.report_path = os.path.abspath(args.report or os.path.join(self.workdir, "report.json"))
        self.limits = limits_.Limits(args.timeout, args.silence_timeout, args.memory, args.processes, args.disk,
                                     args.max_log)
        self.identity = bundle.identity()
        self.t0 = time.monotonic()
        self.report = None
        self.sandbox = None
        self.py_path = self.py_info = self.uv_path = self.cache_dir = None
        self._index_cache = None
        self.test_deadline = 0  # a second part's own deadline (second_part)
        self.first_parts = {}  # {out folder of a second part: the first part's finished tests}
        self.first_evidence = {}  # {out folder of a second part: what the probe saw the first part's failures do}
        self.exit_status = {}  # {out folder of a test run: its exit status, as the host saw it}
        self.cut_by = None  # the time limit a suite's second part was cut at (second_part)

    # -- the report --------------------------------------------------------------------------------
    def start_report(self):
        self.report = report_.new_report(self.args, self.limits,
                                         {k: self.identity[k] for k in ("sha256", "source")})

    def load(self):
        try:
            self.report = report_.load(self.report_path)
        except (OSError, ValueError):
            raise UsageError("no install report at %s: run --phase install first" % self.report_path)

    def save(self):
        report_.settle(self.report, self.t0)
        self.report["reproduce"] = report_.reproduce(self.args, self.limits, self.report["package"],
                                                     self.report["version"])
        self.t0 = time.monotonic()
        os.makedirs(os.path.dirname(self.report_path), exist_ok=True)
        report_.save(self.report, self.report_path)

    def set_phase(self, phase, status, outcome, reason, seconds, log, infra=None):
        st = self.report["_state"]
        self.report["phases"][phase] = {"status": status, "seconds": round(seconds, 3),
                                        "log_excerpt": log.excerpt() if log else ""}
        st["phase_outcomes"][phase], st["phase_reasons"][phase], st["phase_infra"][phase] = outcome, reason, infra

    # -- phases ------------------------------------------------------------------------------------
    def run_phase(self, phase):
        if phase != "install":
            self.load()
        st = self.report["_state"]
        if phase != "install" and contract.outcome_of(st["phase_outcomes"]) in contract.SETTLED_BY_INSTALL:
            self.report["phases"][phase] = {"status": "skipped", "seconds": 0.0, "log_excerpt": ""}
            self.save()
            return
        # Until the phase decides, the report blames the farm: a runner killed here passes nothing.
        self.set_phase(phase, "error", contract.INFRA_ERROR, "The runner stopped during the %s phase before it "
                       "decided anything (it was killed, or failed)." % phase, 0.0, None, "runner-fault")
        self.save()
        start = time.monotonic()
        deadline = start + self.args.timeout
        echo = not self.args.quiet and phase in self.args.echo
        if not echo and not self.args.quiet:
            # Something on stdout, so whoever watches knows where the time goes (and where the log is).
            sys.stdout.write("[%s] running; its output goes to %s\n" % (phase, os.path.join(self.workdir, phase + ".log")))
            sys.stdout.flush()
        log = PhaseLog(os.path.join(self.workdir, phase + ".log"), echo=echo)
        infra = None
        try:
            self.prepare_sandbox(phase, log)
            status, outcome, reason = getattr(self, "phase_" + phase)(deadline, log)
        except UsageError:
            log.close()
            raise
        except LimitHit as exc:
            if exc.limit == "processes":  # a fork bomb is the package's own doing
                status, outcome = "failed", contract.FAILED_OUTCOME[phase]
                reason = report_.sentence("The %s phase %s" % (phase, exc))
            else:
                status, outcome, infra = "error", contract.INFRA_ERROR, exc.kind
                reason = ("timeout (the %s phase ran longer than %g s)." % (phase, self.limits.timeout)
                          if exc.limit == "timeout" else report_.sentence("%s (in the %s phase)" % (exc, phase)))
        except InfraError as exc:
            status, outcome, reason, infra = "error", contract.INFRA_ERROR, report_.sentence(str(exc)), exc.kind
        except Exception as exc:  # the runner's own failure: the farm's fault, never a pass
            log.write("[farm: the runner failed]\n" + traceback.format_exc())
            status, outcome, infra = "error", contract.INFRA_ERROR, "runner-fault"
            reason = report_.sentence("The runner failed in the %s phase (%s: %s); the farm is to blame, not the "
                                      "package" % (phase, type(exc).__name__, exc))
        log.write("[%s] %s: %s (%.2fs)\n" % (phase, status, reason or outcome, time.monotonic() - start))
        self.set_phase(phase, status, outcome, reason, time.monotonic() - start, log, infra)
        log.close()
        self.save()

    def prepare_sandbox(self, phase, log):
        st = self.report["_state"]
        mode = sandbox_.choose_sandbox(self.args.sandbox)
        enforced, missing = limits_.enforcement(self.limits)
        self.report["sandbox"].update(mode=mode, unsandboxed=mode == "none", enforced=enforced, missing=missing)
        if mode == "bwrap" and missing:
            raise InfraError("this worker cannot enforce the %s limit (%s); every package is untrusted code, so "
                             "nothing runs here until it can: run the worker as root or in a cgroup it may "
                             "write (systemd: Delegate=yes), or pass --sandbox none to run packages unconfined"
                             % (" and ".join(sorted(missing)), "; ".join(sorted(set(missing.values())))),
                             kind="sandbox")
        if phase == "install":
            self.check_free_disk()
            st["runner_python"] = os.path.realpath(sys.executable)
            for name in ("home", "uv-cache"):
                os.makedirs(os.path.join(self.box, name))
            sandbox_.write_etc(os.path.join(self.workdir, "etc"), os.path.join(self.box, "home"), mode)
        if mode == "none":
            warning = ("WARNING: this build runs WITHOUT a sandbox (--sandbox none): the package's code can "
                       "read and change everything this worker can. Use it only for packages you trust.")
            self.report["sandbox"]["warning"] = warning
            log.write("\n%s\n%s\n%s\n\n" % ("!" * 78, warning, "!" * 78))
        self.sandbox = sandbox_.Sandbox(mode, self.box, st.get("read_only", []), os.path.join(self.workdir, "etc"),
                                        self.identity["lib"], st["runner_python"], self.limits.disk)

    def check_free_disk(self):
        """Refuse to start a build on a worker whose free disk is below its floor (--min-free-disk):
        a full disk breaks the worker itself, not just this build. Asked before the first phase
        only: later, what the build wrote is its own, held by its disk limit, and no fault of the
        worker's."""
        cache_dir = self.cache_dir or self.report["_state"].get("cache_dir")
        for path in [self.workdir] + ([os.path.dirname(cache_dir)] if cache_dir else []):
            try:
                free = shutil.disk_usage(path).free
            except OSError:
                continue  # not made yet: the workdir's file system was checked
            if free < self.args.min_free_disk:
                raise InfraError("this worker builds nothing while its free disk is below its floor (%.1f GiB, the "
                                 "runner's --min-free-disk): %.1f GiB free at %s; free some (old build folders, its "
                                 "caches) or lower the floor" % (self.args.min_free_disk / 2 ** 30, free / 2 ** 30, path),
                                 kind="worker-disk")

    # -- running commands --------------------------------------------------------------------------
    def trusted(self, cmd, deadline, log):
        """A command of the runner's own (uv making the environment, installing the test tools)
        before any of the package's code is there: outside the sandbox, with the shared cache."""
        return run_command(cmd, deadline, self.limits, cwd=self.workdir, log=log,
                           cgroups="processes" not in self.report["sandbox"]["missing"])

    def installer(self):
        """What makes and fills this build's environment (host/installers.py): uv, or pip for 2.7.
        In the sandbox it installs from the worker's cache of the index, through the proxy."""
        st = self.report["_state"]
        box_index = index_cache.URL if self.sandbox is not None and self.sandbox.mode == "bwrap" else None
        if st["installer"] == installers.Pip.name:
            return installers.Pip(st["uv"], self.args.index_url, st["runner_python"],
                                  os.path.join(os.path.dirname(st["cache_dir"]), "test-tools"), box_index)
        return installers.Uv(st["uv"], self.args.index_url, box_index)

    def index_cache(self):
        """The worker's pull-through cache of the index (host/index_cache.py); the release's own
        page, and the dependency whose release asked for this build, are fetched anew."""
        if self._index_cache is None:
            st, r = self.report["_state"], self.report
            fresh = ([r["package"]] if r.get("package") and self.spec[0] != "path" else []) + list(self.args.fresh)
            # What the build fetches counts against its disk limit, over all its phases.
            self._index_cache = index_cache.IndexCache(
                os.path.join(os.path.dirname(st["cache_dir"]), "index-cache"), self.args.index_url, fresh,
                max_bytes=self.args.index_cache_size, fetch_limit=self.limits.disk,
                fetched=st.get("index_fetched_bytes", 0), staging=os.path.join(self.workdir, "index-dl"),
                page_ttl=self.args.index_page_ttl)
            self._index_cache.prune()
        return self._index_cache

    def new_out_dir(self):
        """A folder made now, for what one command writes back (bound at /run/farm/out)."""
        root = os.path.join(self.workdir, "out")
        os.makedirs(root, exist_ok=True)
        return tempfile.mkdtemp(dir=root)

    def boxed(self, cmd, cwd, deadline, log, env=None, network=False, out_dir=None, extra_ro=(), shown=None,
              answer=None):
        """A command that runs the package's code or reads its trees: in the sandbox. With
        `network`, the package index (and only it) is reachable through the runner's proxy."""
        st, sb = self.report["_state"], self.sandbox
        proxy = stop = None
        if network and sb.mode == "bwrap":  # without a sandbox there is nothing to keep it in
            # A short private folder: a Unix socket's path must stay under about 100 bytes.
            cache = self.index_cache()
            proxy = IndexProxy(os.path.join(tempfile.mkdtemp(prefix="pypi-farm-"), "proxy.sock"),
                               [tuple(e) for e in st["allowed_endpoints"]], cache=cache)
            stop = lambda: cache.limit_hit  # set once the build fetched past its disk limit
        # The command's temporary folder, on disk in the box (made now: no code of the package runs
        # between this and the sandbox's start, so nothing can be planted in its place).
        tmp_dir = tempfile.mkdtemp(prefix=".tmp-", dir=self.box) if sb.mode == "bwrap" else None
        try:
            path_dirs = [os.path.dirname(st["env_python"])] if st.get("env_python") else []
            argv, run_env = sb.wrap(cmd, sb.env(env, path_dirs, network), cwd, proxy_socket=proxy and proxy.path,
                                    out_dir=out_dir, extra_ro=extra_ro, tmp_dir=tmp_dir)
            if sb.mode == "none":
                run_env = child_env(run_env)
            rc, out = run_command(argv, deadline, self.limits, cwd=cwd if sb.mode == "none" else self.workdir,
                                  env=run_env, log=log, watch_dirs=[self.box],
                                  shown=["[%s%s]" % (sb.mode, " +index" if network else "")] + list(shown or cmd),
                                  cgroups="processes" not in self.report["sandbox"]["missing"], answer=answer,
                                  stop=stop)
            if stop is not None and stop() is not None:  # the command ended before the runner saw it
                raise stop()
            if sb.mode == "bwrap" and rc > 128:
                rc = 128 - rc  # bwrap reports a command killed by signal N as 128 + N
            return rc, out
        finally:
            if tmp_dir is not None:
                shutil.rmtree(tmp_dir, ignore_errors=True)
            if proxy is not None:
                proxy.close()
                st["index_fetched_bytes"] = proxy.cache.fetched_bytes
                shutil.rmtree(os.path.dirname(proxy.path), ignore_errors=True)
                network_report = self.report["sandbox"]["network"]
                for endpoint in proxy.denied:
                    log.write("[farm: the sandbox refused a connection to %s: only the index is reachable]\n"
                              % endpoint)
                    if endpoint not in network_report["denied"] and len(network_report["denied"]) < 100:
                        network_report["denied"].append(endpoint)
                if proxy.refused_over_cap:
                    log.write("[farm: %d connections to the index proxy were refused: more than %d at once]\n"
                              % (proxy.refused_over_cap, MAX_CONNECTIONS))
                    network_report["refused_over_cap"] += proxy.refused_over_cap

    def inside(self, task, args, deadline, log, out_dir=None, extra_ro=()):
        """Run a task of farm_runner.inside in the sandbox: (its answer, read from the pipe only
        the runner's code held, untrusted data all the same; the command's exit status; the end
        of its output). `out_dir`: a folder made for this command, bound at /run/farm/out."""
        pipe = AnswerPipe(MAX_RESULT)
        cmd = self.sandbox.inside_command(task, pipe.fd, *args)
        try:
            rc, output = self.boxed(cmd, self.box, deadline, log, out_dir=out_dir, extra_ro=extra_ro, answer=pipe,
                                    shown=["farm-runner-inside", task] + list(args))
        except LimitHit as exc:
            exc.answer = _answer(pipe)  # the stage step answered before its test run hit the limit
            raise
        answer = _answer(pipe)
        if not isinstance(answer, dict):
            raise InfraError("the runner's %s step in the sandbox gave no answer (exit status %d%s): %s" % (
                task, rc, ", too long" if pipe.too_big else "", _last_line(output)), kind="runner-fault")
        return answer, rc, output

    def sandbox_path(self, host_path, inside_path):
        return inside_path if self.sandbox.mode == "bwrap" else host_path

    def install(self, args, deadline, log, out_dir=None):
        """Install ARGS into the environment, in the sandbox, from the worker's cache of the index:
        (exit status, output). When the installer finds no solution and a page it read was the
        cache's, it tries once more with every page fetched anew: a page kept a few minutes must
        never make a release look uninstallable (a dependency released with it, boto3's botocore)."""
        cache = self.index_cache() if self.sandbox.mode == "bwrap" else None
        used = cache.stats["pages_cached"] if cache else 0
        rc, out = self.boxed(self.install_command(*args), self.box, deadline, log, network=True, out_dir=out_dir)
        if rc != 0 and cache is not None and cache.stats["pages_cached"] > used and _UNRESOLVED.search(out or ""):
            log.write("[farm: no solution with the index's pages the worker keeps; trying again with every page fetched anew]\n")
            cache.fresh_all = True
            rc, out = self.boxed(self.install_command(*args), self.box, deadline, log, network=True, out_dir=out_dir)
        return rc, out

    def install_command(self, *args):
        """The command that installs ARGS into the environment, in the sandbox (uv, or pip for 2.7)."""
        st = self.report["_state"]
        return self.installer().install(st["env_python"], st["box_cache"], args)

    # -- install -----------------------------------------------------------------------------------
    def phase_install(self, deadline, log):
        a, r, st = self.args, self.report, self.report["_state"]
        st.update({"uv": self.uv_path, "cache_dir": self.cache_dir, "interpreter": self.py_info,
                   "installer": (installers.Pip if uses_legacy_tools(self.py_info["version_info"]) else installers.Uv).name,
                   "box_cache": os.path.join(self.box, "uv-cache"),
                   # What the sandbox sees, read-only: the interpreter under test, uv, the worker's
                   # own Python (it runs the inside/ tasks) and a distribution file given by path.
                   "read_only": sorted({self.py_info["prefix"], os.path.realpath(self.uv_path), self.uv_path,
                                        os.path.realpath(getattr(sys, "base_prefix", sys.prefix))}
                                       | ({self.spec[1]} if self.spec[0] == "path" else set()))})
        st["allowed_endpoints"] = sorted(allowed_endpoints([a.index_url]))
        self.sandbox.read_only = st["read_only"]
        r["python"].update(path=self.py_path, version=self.py_info["full_version"],
                           free_threaded=bool(self.py_info.get("gil_disabled")),
                           prerelease=Version(self.py_info["full_version"]).is_prerelease,
                           installer=self.installer().description)
        pyver = self.py_info["full_version"]
        ranks = index.supported_tags(self.py_info)
        if self.spec[0] == "path":
            path = self.spec[1]
            meta = index.local_file_metadata(path)
            r["package"], r["version"] = meta["name"], meta["version"]
            kind = index.file_kind(path)
            chosen = {"filename": os.path.basename(path), "url": "file://" + urllib.request.pathname2url(path),
                      "sha256": index.sha256_file(path), "kind": kind}
            if meta["requires_python"] and not index.requires_python_allows(meta["requires_python"], pyver):
                return "skipped", contract.NOT_APPLICABLE, "Requires-Python %r excludes Python %s." % (
                    meta["requires_python"], pyver)
            if kind == "wheel" and index.wheel_priority(chosen["filename"], ranks) is None:
                return "skipped", contract.NOT_APPLICABLE, "The wheel %s does not fit Python %s on %s." % (
                    chosen["filename"], pyver, self.py_info["platform"])
            st["sdist"] = {"path": path, "filename": chosen["filename"]} if kind == "sdist" else None
            target = path
        else:
            chosen, st["sdist"], refusal = self.choose_distribution(ranks, pyver)
            if refusal:
                return refusal
            target = "%s==%s" % (self.spec[1], r["version"])
        # A fresh environment, made and listed before any of the package's code runs.
        env_dir = os.path.join(self.box, "env")
        layout = env_layout(env_dir, self.py_info["version_info"], implementation=self.py_info["implementation"],
                            free_threaded=self.py_info.get("gil_disabled", False))
        st.update(env=env_dir, env_python=layout["python"], site_packages=layout["site_packages"])
        rc, out = self.installer().make_env(os.path.realpath(self.py_path), env_dir, self.cache_dir,
                                            lambda cmd: self.trusted(cmd, deadline, log))
        if rc != 0:
            raise InfraError("%s could not make an environment for %s: %s" % (
                st["installer"], self.py_path, _last_line(out)))
        # pytest, shared by the builds on this interpreter, read-only in the sandbox (after the
        # environment: its pip builds in the sandbox what of the tools has no wheel)
        st["tools"] = self.test_tools(deadline, log)
        # what native code looks up and connects to, noted for the probe (host/netwatch.py)
        st["netwatch"] = netwatch.build(os.path.dirname(self.cache_dir))
        st["read_only"] = self.sandbox.read_only = sorted(set(st["read_only"]) | {st["tools"]} | (
            {st["netwatch"]} if st["netwatch"] else set()))
        before, _ = environment.list_files(env_dir)
        untrusted.write_new(os.path.join(self.workdir, "snapshot-before.json"), json.dumps(before))
        # The test runner: a shared folder outside the environment, read-only in the sandbox,
        # found through a .pth file (after site-packages, so the release and its dependencies
        # always win over the tools' copies of packaging, pluggy...). The uninstall's audit takes
        # the file out again before it lists the environment.
        untrusted.write_new(os.path.join(layout["site_packages"], TOOLS_PTH), self.installer().tools_pth(st["tools"]))
        args = []
        if self.spec[0] == "name":
            args = ["--only-binary" if chosen["kind"] == "wheel" else "--no-binary", canonicalize_name(self.spec[1])]
        rc, out = self.install(args + [target], deadline, log)
        r["installed_from"] = {"filename": chosen["filename"], "kind": chosen["kind"], "url": chosen["url"],
                               "sha256": chosen.get("sha256")}
        if rc != 0:
            if _network_trouble(out):
                raise InfraError("the index could not be reached during the install: %s" % _last_line(out), kind="index")
            return "failed", contract.INSTALL_FAILED, "Installing %s %s from the %s %s failed: %s" % (
                r["package"], r["version"], chosen["kind"], chosen["filename"], report_.sentence(_error_line(out)))
        return "ok", contract.PASSED, "Installed %s %s from %s." % (r["package"], r["version"], chosen["filename"])

    def choose_distribution(self, ranks, pyver):
        """(chosen file, the sdist or None, a refusal or None) for a release named on the index."""
        a, r, st = self.args, self.report, self.report["_state"]
        _, name, version = self.spec
        files = index.fetch_project_files(a.index_url, name)
        known = sorted({f["version"] for f in files if f["version"]}, key=versions.key)
        if version is None:
            live = [v for v in known if not all(f["yanked"] for f in files if f["version"] == v)]
            finals = [v for v in live if not versions.is_prerelease(v)]
            if not (finals or live):
                raise UsageError("%s has no releases on %s" % (name, a.index_url))
            version = (finals or live)[-1]
        else:
            match = [v for v in known if versions.same(v, version)]
            if not match:
                raise UsageError("%s has no release %s on %s (latest: %s)" % (
                    name, version, a.index_url, known[-1] if known else "none"))
            version = match[0]
        rel = [f for f in files if f["version"] == version]
        uploaded = sorted(f["upload_time"] for f in rel if f.get("upload_time"))
        st["released"] = uploaded[0] if uploaded else None
        st["allowed_endpoints"] = sorted(allowed_endpoints([a.index_url] + [f["url"] for f in files]))
        r["sandbox"]["network"]["allowed"] = ["%s:%d" % e for e in st["allowed_endpoints"]]
        r["package"], r["version"] = name, version
        sdists = [f for f in rel if index.file_kind(f["filename"]) == "sdist"]
        wheels = sorted((p, f["filename"], f) for f in rel if index.file_kind(f["filename"]) == "wheel"
                        for p in [index.wheel_priority(f["filename"], ranks)] if p is not None)
        wheels = [f for _, _, f in wheels]
        excluded = [f for f in wheels + sdists
                    if f["requires_python"] and not index.requires_python_allows(f["requires_python"], pyver)]
        # --dist sdist: the classic "does it still build from source" check, even where a wheel fits.
        usable = [f for f in (sdists if a.dist == "sdist" else wheels + sdists) if f not in excluded]
        sdist = dict(sdists[0], kind="sdist") if sdists else None
        if a.dist == "sdist" and not sdists:
            return None, sdist, ("skipped", contract.NOT_APPLICABLE, "%s %s has no sdist to build from." % (name, version))
        if not usable:
            if excluded:
                return None, sdist, ("skipped", contract.NOT_APPLICABLE, "Requires-Python %r excludes Python %s." % (
                    excluded[0]["requires_python"], pyver))
            return None, sdist, ("skipped", contract.NOT_APPLICABLE, (
                "No distribution of %s %s fits Python %s on %s (no sdist and no compatible wheel)." % (
                    name, version, pyver, self.py_info["platform"])))
        return dict(usable[0], kind=index.file_kind(usable[0]["filename"])), sdist, None

    def test_tools(self, deadline, log):
        """The folder holding pytest for this interpreter and this release: made once a day and
        shared by builds. The pytest is the newest the release could know (host/instrument.py).

        Installing pytest into every environment cost about 0.4 s a build, and its first import
        compiled it again each time; this folder is compiled once and the sandbox only reads it.
        Two builds making it at once each make their own and the first rename wins.
        """
        info, st = self.py_info, self.report["_state"]
        root = os.path.join(os.path.dirname(self.cache_dir), "test-tools")
        os.makedirs(root, exist_ok=True)
        wanted, rule = None, "the newest pytest"
        limit = instrument.cutoff(st.get("released"), info["version_info"])
        if limit is not None:
            listing = os.path.join(root, "pytest-wheels-%s.json" % hashlib.sha256(
                self.args.index_url.encode()).hexdigest()[:16])
            try:
                releases = instrument.pytest_releases(self.args.index_url, listing)
            except (InfraError, UsageError) as exc:
                log.write("[farm: pytest's releases could not be listed (%s); the newest pytest is used]\n" % exc)
                releases = []
            first = [t for t in (instrument.parse_time(uploaded) for _, uploaded, _ in releases) if t is not None]
            if first:  # only pytest's wheels are listed: a release older than the first (2.7.1, 2015) has that one
                limit = max(limit, min(first))
            wanted = instrument.choose(releases, limit, info["full_version"])
            newest = instrument.choose(releases, instrument.parse_time("9999-01-01T00:00:00Z"), info["full_version"])
            if wanted is not None and wanted != newest:
                rule = ("the newest pytest released before %s (the release's upload, the interpreter's support, or "
                        "pytest's first wheel)" % limit.date().isoformat())
            else:
                wanted = None
        # Per interpreter and pytest, not per index: pytest is the same tool from any index the worker is given.
        key = hashlib.sha256(("%s\0%s" % (os.path.realpath(self.py_path), info["full_version"])).encode()).hexdigest()[:16]
        stamp = int(time.time() // TOOLS_MAX_AGE)
        # An older pytest comes with its dependencies of the release's month, not today's (pytest 2.4
        # with today's `py` refuses to start): one folder a month.
        month = instrument.month_end(limit) if wanted else None
        final = os.path.join(root, "%s-%s-%s%s-r%d-%d" % (info["implementation"], key, wanted or "newest",
                                                           "-" + month[:7] if month else "", TOOLS_RECIPE, stamp))
        if not os.path.isfile(os.path.join(final, ".complete")):
            self.make_test_tools(final, "pytest==%s" % wanted if wanted else "pytest", deadline, log, month)
        # What the folder holds ({name: version}, from its dist-info names: the runner's own folder)
        # is not installed again for the tests (discover.already_met).
        # (pip on 2.7 leaves `pytest-2.4.2-py2.7.egg-info` where uv leaves `pytest-9.0.2.dist-info`)
        st["tools_provide"] = {canonicalize_name(n[:-len(".dist-info")].split("-")[0]):
                               n[:-len(".dist-info")].split("-")[1]
                               for n in os.listdir(final) if n.endswith((".dist-info", ".egg-info")) and "-" in n}
        st["pytest"] = {"version": st["tools_provide"].get("pytest"), "chosen": rule}
        return final

    def make_test_tools(self, final, requirement, deadline, log, as_of=None, wheels=None):
        root = os.path.dirname(final)
        installer = self.installer()
        if wheels is None and installer.sandbox_built:
            wheels = self.build_tool_wheels(installer, deadline, log)
        tmp = tempfile.mkdtemp(prefix=".new-", dir=root)
        rc, out = installer.tools(os.path.realpath(self.py_path), self.cache_dir, tmp, requirement,
                                  lambda cmd: self.trusted(cmd, deadline, log), as_of, wheels)
        if rc != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            if as_of and _UNRESOLVED.search(out or ""):  # nothing of that month fits this interpreter
                return self.make_test_tools(final, requirement, deadline, log, wheels=wheels)
            raise InfraError("could not install %s from %s: %s" % (requirement, self.args.index_url, _last_line(out)),
                             kind="index")
        # Compiled by the interpreter itself (uv's --compile-bytecode cannot drive Python 3.6). A
        # file that does not compile only costs its compilation at import: not an error.
        self.trusted([os.path.realpath(self.py_path), "-m", "compileall", "-q", tmp], deadline, log)
        open(os.path.join(tmp, ".complete"), "w").close()
        try:
            os.rename(tmp, final)
        except OSError:  # another build made it first
            shutil.rmtree(tmp, ignore_errors=True)
        # Yesterday's folders may still serve a running build; older ones go.
        stamp = int(final.rsplit("-", 1)[1])
        for name in os.listdir(root):
            parts = name.rsplit("-", 1)
            if not name.startswith(".") and len(parts) == 2 and parts[1].isdigit() and int(parts[1]) < stamp - 1:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)

    def build_tool_wheels(self, installer, deadline, log):
        """A folder of wheels of the installer's `sandbox_built` sdists, each downloaded here and
        checked against the sha256 the farm pins, built in the sandbox, offline, by the build's
        fresh environment: no code of a test tool runs on the host."""
        dl, wheels = os.path.join(self.workdir, "dl"), self.new_out_dir()
        os.makedirs(dl, exist_ok=True)
        for name, (version, filename, sha256) in sorted(installer.sandbox_built.items()):
            listed = [f for f in index.fetch_project_files(self.args.index_url, name) if f["filename"] == filename]
            if not listed:
                raise InfraError("the index %s has no %s, which the farm builds a test tool of Python 2.7 from: "
                                 "serve that file (sha256 %s)" % (self.args.index_url, filename, sha256), kind="index")
            if listed[0]["sha256"] not in (None, sha256):
                raise InfraError("the index's %s has sha256 %s, not the %s the farm pins (installers.SANDBOX_BUILT): "
                                 "the file was replaced, and nothing of it is run; serve the original, or pin the new "
                                 "one once read" % (filename, listed[0]["sha256"], sha256), kind="index")
            path = os.path.join(dl, filename)
            if os.path.lexists(path):
                os.remove(path)
            index.download(listed[0]["url"], path, sha256, self.limits.disk)
            inside, out_dir = self.sandbox_path(path, SDIST_IN_SANDBOX + "/" + filename), self.new_out_dir()
            rc, out = self.boxed(installer.build_wheel(self.report["_state"]["env_python"], inside,
                                                       self.sandbox.out_path(out_dir)),
                                 self.box, deadline, log, out_dir=out_dir, extra_ro=[(path, inside)])
            built = [n for n in os.listdir(out_dir) if n.startswith("%s-%s-" % (name, version)) and n.endswith(".whl")
                     and os.path.isfile(os.path.join(out_dir, n)) and not os.path.islink(os.path.join(out_dir, n))]
            if rc != 0 or len(built) != 1:
                raise InfraError("%s %s (a test tool of Python 2.7 with no wheel) could not be built into one in "
                                 "the sandbox (exit status %d): %s" % (name, version, rc, _last_line(out)),
                                 kind="runner-fault")
            # Only the wheel asked for reaches the host's install.
            os.rename(os.path.join(out_dir, built[0]), os.path.join(wheels, built[0]))
        return wheels

    # -- test --------------------------------------------------------------------------------------
    def phase_test(self, deadline, log):
        status, outcome, reason = self._test_phase(deadline, log)
        hung = (self.report.get("tests") or {}).get("hung")
        if hung and outcome == contract.PASSED:
            # What the hung test would have said is unknown: the others passing is no pass.
            raise LimitHit("silence", "timeout: %s gave no output for %g s and was stopped%s; the %d other tests "
                           "passed" % (hung[0], self.limits.silence, " (and %d more after it)" % (len(hung) - 1)
                                       if len(hung) > 1 else "", self.report["tests"].get("passed", 0)))
        return status, outcome, reason

    def _test_phase(self, deadline, log):
        r, st = self.report, self.report["_state"]
        sdist, extra_ro = None, []
        if st.get("sdist"):
            host_path = st["sdist"].get("path") or self.download_sdist(st["sdist"])
            name = "sdist.zip" if host_path.lower().endswith(".zip") else "sdist.tar"
            sdist = self.sandbox_path(host_path, SDIST_IN_SANDBOX + "/" + name)
            extra_ro = [(host_path, SDIST_IN_SANDBOX + "/" + name)]
        src_dir, run_dir = os.path.join(self.box, "src"), os.path.join(self.box, "run")
        # One command stages the tests and, when nothing is to install first, runs them (its exit
        # status is then the test command's): a sandbox start less for most releases.
        out_dir = self.new_out_dir()
        out = self.sandbox.out_path(out_dir)
        info = st["interpreter"]
        untrusted.write_new(os.path.join(out_dir, "request.json"), json.dumps({
            "package": r["package"], "sdist": sdist, "src": src_dir, "run": run_dir,
            "site_packages": st["site_packages"], "max_bytes": self.limits.disk,
            "python_version": list(info["version_info"][:2]), "implementation": info["implementation"],
            "provided": st["tools_provide"], "markers": audit.marker_environment(info),
            "tools_names": sorted(imports.top_names(st["tools"])),
            "test": {"python": st["env_python"], "out": out, "env": self.test_env(out)}}))
        try:
            staged, rc, output = self.inside("stage", [out], deadline, log, out_dir=out_dir, extra_ro=extra_ro)
            stopped = None
        except LimitHit as exc:
            # The tests the stage step ran hit the time limit: a second part may finish them.
            staged, rc, output, stopped = exc.answer, None, "", exc
            if not (isinstance(staged, dict) and staged.get("ran_tests") is True):
                raise
        ran = staged.get("ran_tests") is True
        self.exit_status[out_dir] = rc
        if rc != 0 and not ran:
            raise InfraError("the runner's stage step in the sandbox failed (exit status %d): %s" % (
                rc, _last_line(output)), kind="runner-fault")
        own = staged.get("own_files")
        st["own_files"] = [p for p in own if isinstance(p, str)] if isinstance(own, list) else None
        if not self.take_installed(staged):
            # uv said yes, but nothing of the release is in the environment: the install failed.
            r["phases"]["install"]["status"] = "failed"
            st["phase_outcomes"]["install"] = contract.INSTALL_FAILED
            st["phase_reasons"]["install"] = "uv reported success but %s has no metadata in the environment." % (
                r["package"])
            return "skipped", None, "Not tested: the install left no metadata."
        if isinstance(staged.get("refused"), str):
            r["tests"] = dict(verdict.ZERO, command=[])
            return "failed", contract.TESTS_FAILED, report_.sentence("The tests could not be prepared: %s" % staged["refused"])
        plan = _checked_plan(staged.get("plan"), staged.get("src"), src_dir, run_dir, st["site_packages"])
        if plan is None:
            log.write("no tests found (sdist: %s); importing its modules instead\n" % ("yes" if sdist else "no"))
            r["tests"] = dict(verdict.ZERO, command=[])
            where = "sdist or installed package" if sdist else "no sdist; installed package"
            if import_check.installs_nothing(st.get("record", []), st.get("requires")):
                return "failed", contract.TESTS_FAILED, report_.sentence(
                    "%s %s installs nothing but its own metadata: no module, no script, no data, and it requires "
                    "no other distribution: its code was left out of what it uploaded" % (r["package"], r["version"]))
            fails, said = self.check_imports(deadline, log)
            if fails:
                return "failed", contract.TESTS_FAILED, report_.sentence("No tests found in %s %s (%s), and %s" % (
                    r["package"], r["version"], where, said))
            return "skipped", contract.NO_TESTS, report_.sentence("No tests found in %s %s (%s); %s" % (
                r["package"], r["version"], where, said))
        tests = r["tests"] = dict(verdict.ZERO, how=plan["how"], tool=plan["tool"], set_aside=plan["set_aside"],
                                  deps=[], inferred=[], failures=[], pytest=st.get("pytest"),
                                  **{field: [] for field in excuses.FIELDS})
        if ran:  # nothing was to install (what the project asks for is met): said all the same
            tests["command"] = test_command(st["env_python"], plan, out, run_dir, st["tools_provide"].get("pytest"))[0]
            tests["deps"] = self.test_requirements(plan["deps"], self.new_out_dir())[1]
            if stopped is not None and self.more_memory(stopped, log):
                rc, output, out_dir = self.run_tests(plan, deadline, log)
            elif stopped is not None:
                rc, output, out_dir = self.second_part(plan, out_dir, stopped, log)
            deadline = max(deadline, self.test_deadline)
        else:
            log.write("tests: %s\n" % plan["how"])
            tests["deps"], installed = self.install_test_dependencies(plan["deps"], deadline, log)
            if not installed:
                # What the test files import and nothing provides, before the first run rather than
                # after it failed. (After an install, the stage step's reading is out of date: a
                # module may have come with a dependency; the first run tells.)
                unmet = missing.distributions_for(plan.get("unmet_imports"), st.get("import_names", []),
                                                  set(st.get("installed_import_names", [])))
                if unmet and not self.other_extras(deadline, log):
                    self.infer(unmet, deadline, log)
            rc, output, out_dir = self.run_tests(plan, deadline, log)
            deadline = max(deadline, self.test_deadline)
        counts, probe = self.read_run(out_dir, plan["tool"])
        collected_nothing = rc == 5 or (rc == 0 and counts is not None and not any(counts.values()))
        if plan["tool"] == "pytest" and collected_nothing and plan["fallback"]:  # (pytest before 3.0 said 0)
            log.write("pytest collected nothing; the tests are run with unittest discovery\n")
            plan = dict(plan, tool="unittest", args=plan["fallback"], how=plan["how"] + "; then unittest discovery, "
                        "as pytest collected nothing")
            tests.update(how=plan["how"], tool="unittest")
            rc, output, out_dir = self.run_tests(plan, deadline, log)
            deadline = max(deadline, self.test_deadline)
            counts, probe = self.read_run(out_dir, plan["tool"])
            collected_nothing = rc == 5 or (rc == 0 and counts is not None and not any(counts.values()))
        if collected_nothing and plan["installed"]:
            # the tree's own runs found nothing; the package's installed test module (django-recommend's
            # django_recommend/tests.py, which neither pytest's names nor unittest's discovery reach)
            plan, rc, output, out_dir, counts, probe = self.run_installed(plan, run_dir, "found no tests", deadline, log)
            deadline = max(deadline, self.test_deadline)
        for _ in range(MAX_INFER_ROUNDS):  # a module plainly missing: install what provides it, run again
            if rc not in (1, 2, 4):
                break
            known = set(st.get("import_names", [])) | set(st.get("installed_import_names", [])) | set(
                st.get("infer_tried", []))
            wanted = missing.missing_modules([output] + [f["message"] for f in probe["failures"]],
                                             st.get("import_names", []), known)
            # The release's own extras first: its CI installs them (`uv sync --all-extras`), and
            # what it declares beats a distribution guessed from a module's name (unidas's tests
            # import daspy, which its `dev` extra gets from daspy-toolbox; hdx's `extract_table`
            # exists only with its `html` extra's bs4). Read to install what the release
            # declares into its own sandbox, never to excuse. Not when the release's own module
            # does not import as installed: what it lacks, its users lack (perceptra-storage's
            # __init__ imports boto3, which only its s3 extra declares).
            asked = wanted or any(_IMPORT_ERROR.search(f["message"]) for f in probe["failures"])
            if asked and self.release_import_fails(deadline, log):
                break
            installed = asked and self.other_extras(deadline, log)
            if not installed:
                wanted += missing.async_plugin_missing([f["message"] for f in probe["failures"]], known)
                installed = self.infer(wanted, deadline, log)
            if not installed:
                break
            rc, output, out_dir = self.run_tests(plan, deadline, log)
            deadline = max(deadline, self.test_deadline)
            counts, probe = self.read_run(out_dir, plan["tool"])
        if plan["tool"] == "pytest" and probe["credentials"].get(verdict.AT_START) and \
                verdict.could_not_start(rc, counts, started=bool(self.read_progress(out_dir))):
            ran = self.start_with_placeholders(plan, probe, deadline, log)
            if ran:
                plan, rc, output, out_dir, counts, probe = ran
                deadline = max(deadline, self.test_deadline)
        failures, excused_by = self.environment_s(probe, plan, staged)
        network = _excused_tests(excused_by)
        if rc == 2 and plan["tool"] == "pytest" and failures and \
                all(f["when"] == "collect" and f["test"] in network for f in failures):
            # pytest stops at a collection error: one test module that clones its data (chardet)
            # must not keep the others from running.
            log.write("[farm: collecting %d test module(s) needed what the sandbox lacks; running the others]\n"
                      % len(failures))
            plan = dict(plan, args=list(plan["args"]) + ["--continue-on-collection-errors"])
            rc, output, out_dir = self.run_tests(plan, deadline, log)
            deadline = max(deadline, self.test_deadline)
            counts, probe = self.read_run(out_dir, plan["tool"])
            failures, excused_by = self.environment_s(probe, plan, staged)
            network = _excused_tests(excused_by)
        if plan["installed"] and plan["tool"] == "pytest" and not (counts or {}).get("passed") and failures and \
                all(f["test"] in excused_by["sdist_lacks"] for f in failures):
            plan, rc, output, out_dir, counts, probe = self.run_installed(
                plan, run_dir, "could not run as the sdist ships them", deadline, log)
            deadline = max(deadline, self.test_deadline)
            failures, excused_by = self.environment_s(probe, plan, staged)
            network = _excused_tests(excused_by)
        if plan.get("django_settings") and plan["tool"] == "pytest" and not (counts or {}).get("passed") and \
                failures and excused_by["needs_configuration"] and all(f["test"] in network for f in failures):
            ran = self.run_in_django_settings(plan, deadline, log)
            if ran:
                plan, rc, output, out_dir, counts, probe = ran
                deadline = max(deadline, self.test_deadline)
                failures, excused_by = self.environment_s(probe, plan, staged)
                network = _excused_tests(excused_by)
        if probe["credentials"] and plan["tool"] == "pytest":
            self.confirm_credentials(plan, probe, failures, excused_by, deadline, log)
            network = _excused_tests(excused_by)
        flaky = []
        again = [f["test"] for f in failures if f["test"] not in network and f["when"] != "collect"]
        if rc == 1 and plan["tool"] == "pytest" and again and len(again) <= verdict.MAX_RERUN and \
                all(verdict.rerunnable(t) for t in again) and len(again) == len(failures) - sum(
                    1 for f in failures if f["test"] in network):
            log.write("[farm: running the %d failed test(s) again, each once, in a fresh process]\n" % len(again))
            rerun_rc, _, rerun_dir = self.run_tests(dict(plan, args=again), deadline, log, main=False)
            if rerun_rc == 0:  # observed by the host: all of them passed the second time
                flaky = again
            else:
                seen = self.read_run(rerun_dir, "pytest")[1]
                failed_again = {f["test"] for f in seen["failures"]}
                reached = self.reached_again(plan, again, failed_again, seen, deadline, log)
                excused_by["needs_network"].update(reached)
                network |= set(reached)
            if rerun_rc != 0 and len(again) > 1:
                # One broken test must not hide a flaky one: each alone, its exit status the host's.
                # Those the re-run's report says failed again are not tried (the report only
                # narrows what is tried; it never makes a test flaky).
                alone = [t for t in again if t not in failed_again]
                if 0 < len(alone) <= verdict.MAX_RERUN_ALONE:
                    log.write("[farm: running %d of them again one at a time]\n" % len(alone))
                    flaky = [t for t in alone
                             if self.run_tests(dict(plan, args=[t]), deadline, log, main=False)[0] == 0]
        failed_tests = [f for f in failures if f["test"] not in network and f["test"] not in flaky]
        tests.update(counts or {}, returncode=rc, counts_known=counts is not None,
                     imported_from=probe["imports"], failures=failed_tests[:verdict.MAX_SHOWN], flaky=flaky,
                     excused_counts={f: len(excused_by[f]) for f in excuses.FIELDS if f != "flaky" and excused_by[f]},
                     **{e.field: [{"test": untrusted.line(t, 500), e.detail: untrusted.lines(d, 300)}
                                  for t, d in excused_by[e.field].items()][:verdict.MAX_SHOWN]
                        for e in excuses.EXCUSES if e.field != "flaky"})
        tests.setdefault("command", [])
        if probe.get("pytest") and probe["pytest"] != (st.get("pytest") or {}).get("version"):
            tests["pytest"] = {"version": probe["pytest"], "chosen": "the project's own (its test dependencies ask for it)"}
        if st["interpreter"].get("gil_disabled"):
            tests["gil"] = verdict.gil_story(output, probe)
        wrong = verdict.imported_elsewhere(probe["imports"], st["site_packages"])
        if wrong:
            return "error", contract.INFRA_ERROR, "The tests imported %s instead of the installed copy." % (
                ", ".join("%s from %s" % kv for kv in sorted(wrong.items())))
        if verdict.excused(rc, counts, failures, network, flaky):
            return "ok", contract.PASSED, "Tests passed: %d passed; the failures were the environment's." % (
                counts["passed"])
        if rc in (1, 2, 5) and failures and not (counts or {}).get("passed") and \
                all(f["test"] in network for f in failures):
            # Nothing of the package's passed, and every failure was the environment's: not tested.
            # A Django app without its settings is set up in minimal ones: its own module failing
            # to import against the Django installed fails with any settings.
            broken = self.django_check(deadline, log) if excused_by["needs_configuration"] else None
            if broken:
                return "failed", contract.TESTS_FAILED, report_.sentence(
                    "The tests need Django settings, which the release does not ship; set up in minimal ones of "
                    "the farm's, the release's own module does not import: %s" % broken)
            return "skipped", contract.NO_TESTS, "The tests could not run here: none passed, and every failure " \
                "was the environment's.%s" % excuses.not_counted(tests)
        if plan["tool"] == "script":  # a script speaks no pytest codes: it passed, or it failed
            script = plan["args"][0]
            script = untrusted.line(os.path.relpath(script, st["site_packages"]) + " of the installed package"
                                    if script.startswith(st["site_packages"] + "/") else script, 300)
            if rc == 0:
                return "ok", contract.PASSED, "The project's test script (%s) ended well (exit status 0)." % script
            return "failed", contract.TESTS_FAILED, report_.sentence(
                "The project's test script (%s) failed (exit status %d): %s" % (
                    script, rc, untrusted.line(_error_line(output), 300)))
        status, outcome, reason = verdict.pytest_verdict(rc, counts, plan["tool"])
        if outcome == contract.TESTS_FAILED and self.cut_by is not None:
            # A suite this long mostly waits on what the sandbox lacks; with the rest not run, its
            # failures are not mailed: the timeout stands (a cut suite gets a result when it passed).
            log.write("[farm: the cut suite has failures that count; with the rest not run, the timeout stands]\n")
            raise self.cut_by
        if outcome == contract.TESTS_FAILED and plan.get("placeholders"):
            # with placeholders for what it could not start without, a failure says nothing: not
            # tested, and the release's own modules imported instead, as for any run that could not start
            fails, said = self.check_imports(deadline, log)
            why = "the tests could not start without credentials this run does not set (%s); with a placeholder " \
                  "in each they started, and what failed then says nothing of the package" % ", ".join(
                      plan["placeholders"])
            if fails:
                return "failed", contract.TESTS_FAILED, report_.sentence("%s; and %s" % (why[0].upper() + why[1:], said))
            return "skipped", contract.NO_TESTS, report_.sentence("Not tested: %s; %s" % (why, said))
        if verdict.could_not_start(rc, counts, started=bool(self.read_progress(out_dir))):
            # pytest stopped before any test ran (a plugin that only works in the project's monorepo,
            # a configuration naming what the sdist lacks): nothing was tested. The release's own
            # modules are imported instead; only their failing to import is the package's.
            log.write("[farm: %s before any test ran; importing the release's modules instead]\n" % plan["tool"])
            fails, said = self.check_imports(deadline, log)
            why = "the tests could not start (%s stopped before any test ran, exit status %d: %s)" % (
                plan["tool"], rc, untrusted.line(_error_line(output), 200))
            if fails:
                return "failed", contract.TESTS_FAILED, report_.sentence("%s; and %s" % (why[0].upper() + why[1:], said))
            return "skipped", contract.NO_TESTS, report_.sentence("Not tested: %s; %s" % (why, said))
        if outcome == contract.TESTS_FAILED:
            # the count is pytest's: what of it was the environment's, and what the sdist lacks
            reason += excuses.not_counted(tests) + report_.parts_note(tests)
        if outcome == contract.TESTS_FAILED and st.get("elsewhere"):
            reason += " The project takes %s from elsewhere than the index (git, a URL); the farm used the " \
                      "index's release, which may be why." % ", ".join(sorted(set(st["elsewhere"]))[:5])
        return status, outcome, reason

    def check_imports(self, deadline, log):
        """Import each of the release's top-level modules in a fresh sandboxed process, offline
        (host/import_check.py): (fails, the sentence said). The exit statuses decide."""
        r, st = self.report, self.report["_state"]
        checks, main = import_check.modules_to_check(r["package"], st.get("import_names", []))
        python = [st["env_python"]] + installers.isolated_flags(st["interpreter"]["version_info"])
        empty = tempfile.mkdtemp(prefix="import-check-", dir=self.box)  # a working folder with nothing to import
        results = []
        for module, counted in checks:
            rc, output = self.boxed(import_check.command(python, module), empty, deadline, log)
            results.append({"module": module, "imports": rc == 0, "rc": rc, "counted": counted,
                            "error": "" if rc == 0 else untrusted.line(import_check.last_line(output))})
        # A module the import could not find that nothing installed provides: not declared.
        named = {x["module"]: missing.named_missing(x["error"]) for x in results if not x["imports"]}
        provided = set(st.get("installed_import_names", []))
        lacks = set(lacking_standard_modules(st["interpreter"]["executable"], st["interpreter"]["version_info"][0],
                                             [n for n in named.values() if n])) if any(named.values()) else set()
        undeclared = {m: n for m, n in named.items() if n and n not in provided and n not in lacks
                      and n not in missing.STANDARD}
        for x in results:
            if not x["imports"] and named.get(x["module"]) in lacks:
                x["counted"] = False  # a standard module this interpreter was built without
        r["tests"]["imports"] = results
        return import_check.verdict(results, main, undeclared)

    def run_installed(self, plan, run_dir, why, deadline, log):
        """The tests inside the installed package, when the tree's `why`: (the plan, rc, output,
        out folder, counts, probe)."""
        log.write("[farm: the tree's tests %s; running the tests inside the installed package]\n" % why)
        plan = dict(plan, tool="pytest", args=["--pyargs"] + plan["installed"], cwd=None, root=run_dir, installed=[],
                    how=plan["how"] + "; then the tests inside the installed package, as the tree's %s" % why)
        self.report["tests"].update(how=plan["how"], tool="pytest")
        rc, output, out_dir = self.run_tests(plan, deadline, log)
        return (plan, rc, output, out_dir) + self.read_run(out_dir, "pytest")

    def django_check(self, deadline, log):
        """host/django_check.py: the sentence saying which module of the release's does not import
        against the Django installed, or None."""
        st = self.report["_state"]
        names = django_check.apps(st.get("import_names", []), NOT_THE_PACKAGE)
        if not names:
            return None
        log.write("[farm: the tests need Django settings the release does not ship; setting %s up in minimal "
                  "ones]\n" % ", ".join(names))
        python = [st["env_python"]] + installers.isolated_flags(st["interpreter"]["version_info"])
        empty = tempfile.mkdtemp(prefix="django-check-", dir=self.box)
        rc, output = self.boxed(django_check.command(python, names), empty, deadline, log,
                                shown=python + ["-c", "<django check>"] + names)
        return django_check.verdict(rc, output, st["site_packages"], names)

    def infer(self, wanted, deadline, log):
        """Install [(module, distribution)] the tests need and the project does not declare, once;
        the report says they were inferred. True when they were installed."""
        if not wanted:
            return False
        st, tests = self.report["_state"], self.report["tests"]
        reqs = [dist for _, dist in wanted]
        st["infer_tried"] = st.get("infer_tried", []) + [m for m, _ in wanted]
        log.write("[farm: the tests need %s, which the project does not declare: installing %s]\n" % (
            ", ".join(m for m, _ in wanted), ", ".join(reqs)))
        rc, output = self.install(reqs, deadline, log)
        if rc != 0 and len(wanted) > 1 and _UNRESOLVED.search(output) and not _network_trouble(output):
            # one name the index does not have must not keep the others out: each alone
            log.write("[farm: could not install them together (%s); each alone]\n" % _error_line(output))
            wanted = [(m, d) for m, d in wanted if self.install([d], deadline, log)[0] == 0]
        elif rc != 0:
            log.write("[farm: could not install %s: %s]\n" % (", ".join(reqs), _error_line(output)))
            return False
        tests["inferred"] = tests["inferred"] + [{"module": m, "requirement": d} for m, d in wanted]
        return bool(wanted)

    def reached_again(self, plan, again, failed_again, seen, deadline, log):
        """{test: what it tried} of the failed tests that, run again in a fresh process, failed
        again reaching for the network. A library that tries once a process (PROJ's grid download)
        fails a first run's later tests without a try of their own: when some of them reach for it
        run again, the others that failed again are run each alone, where each would try."""
        # (a try the code handled, then an assertion that failed: the network says nothing of why)
        reached = {t: seen["network"][t] for t in again
                   if t in failed_again and seen["network"].get(t) and t not in seen["asserted"]}
        rest = [t for t in again if t in failed_again and t not in reached]
        if reached and 0 < len(rest) <= verdict.MAX_RERUN_ALONE_NETWORK:
            log.write("[farm: %d of them reached for the network when run again; running the %d others that "
                      "failed again one at a time]\n" % (len(reached), len(rest)))
            for test in rest:
                one = self.read_run(self.run_tests(dict(plan, args=[test]), deadline, log, main=False)[2], "pytest")[1]
                if one["network"].get(test) and test in {f["test"] for f in one["failures"]} and \
                        test not in one["asserted"]:
                    reached[test] = one["network"][test]
        return reached

    def release_import_fails(self, deadline, log):
        """Does the release's main module fail to import, as installed, for a module it cannot
        find (import_check, in the sandbox, offline)? Asked once."""
        st = self.report["_state"]
        if "own_import_fails" not in st:
            fails, said = self.check_imports(deadline, log)
            first = next((x for x in self.report["tests"].get("imports") or [] if x["counted"] and not x["imports"]), None)
            st["own_import_fails"] = bool(fails and first and re.match(r"^(ModuleNotFound|Import)Error\b", first["error"]))
            if st["own_import_fails"]:
                log.write("[farm: the release's own module does not import as installed (%s): nothing is installed "
                          "for what the tests miss]\n" % first["error"])
        return st["own_import_fails"]

    def start_with_placeholders(self, plan, probe, deadline, log):
        """The tests could not start, and before they did the probe saw credentials read that this
        run does not set (a conftest that refuses to start without its CI's secrets: astrapy's):
        run again with a placeholder in each. (the plan, rc, output, out folder, counts, probe) of
        that run when its tests started; else None, and the first run stands. What fails in it
        counts for nothing: the run is a pass or says nothing (see phase_test)."""
        given = self.test_env("", plan)
        names = [v for v in probe["credentials"][verdict.AT_START] if v not in given][:20]
        if not names:
            return None
        log.write("[farm: the tests could not start, and read credentials this run does not set (%s); running "
                  "them again with a placeholder in each]\n" % ", ".join(names))
        first_command = self.report["tests"].get("command")
        again = dict(plan, placeholders=names, env=dict(plan.get("env") or {},
                                                         **{v: PLACEHOLDER_CREDENTIAL for v in names}))
        rc, output, out_dir = self.run_tests(again, deadline, log)
        counts, seen = self.read_run(out_dir, "pytest")
        if verdict.could_not_start(rc, counts, started=bool(self.read_progress(out_dir))):
            log.write("[farm: they could not start with them either; the first run stands]\n")
            self.report["tests"]["command"] = first_command
            return None
        return again, rc, output, out_dir, counts, seen

    def confirm_credentials(self, plan, probe, failures, excused_by, deadline, log):
        """Failed tests the probe saw read a credential the run does not set (an API key, a token)
        and then fail with an error raised run again, once, with a placeholder in each: those that
        then go on to reach for the network (the service the credential is for) needed the
        project's CI secrets (excused_by["needs_credentials"]). Any other (one that fails as
        before, or passes: it depends on the variable, no more) counts."""
        excused, given = _excused_tests(excused_by), self.test_env("", plan)
        wanted = {f["test"]: probe["credentials"][f["test"]] for f in failures
                  if probe["credentials"].get(f["test"]) and f["test"] not in excused and verdict.rerunnable(f["test"])
                  and not any(v in given for v in probe["credentials"][f["test"]])}
        if not wanted or len(wanted) > verdict.MAX_RERUN:
            return
        names = sorted({v for found in wanted.values() for v in found})[:20]
        log.write("[farm: %d failed test(s) read credentials this run does not set (%s); running them again "
                  "once with a placeholder in each]\n" % (len(wanted), ", ".join(names)))
        env = dict(plan.get("env") or {}, **{v: PLACEHOLDER_CREDENTIAL for v in names})
        rc, _, out_dir = self.run_tests(dict(plan, args=list(wanted), env=env), deadline, log, main=False)
        if rc not in (0, 1):  # the run again did not run its tests: it says nothing
            return
        again = self.read_run(out_dir, "pytest")[1]
        for test, found in wanted.items():
            # (passing with a placeholder shows only that the test depends on the variable)
            if again["network"].get(test):
                excused_by["needs_credentials"][test] = ", ".join(found)

    def run_in_django_settings(self, plan, deadline, log):
        """The tests stopped for want of Django's settings, and the release ships settings for them
        (the module its runtests.py or tox names, or its test_settings.py): run again in them, as
        its own runner would, with pytest-django to set Django up (inferred when not installed).
        (the plan, rc, output, out folder, counts, probe) of that run when a test of the package's
        passed in it; else None, and the first run stands."""
        st, tests = self.report["_state"], self.report["tests"]
        module = plan["django_settings"]
        log.write("[farm: the tests need Django's settings; the release ships %s: running them again in them, "
                  "with pytest-django]\n" % module)
        have = set(st.get("installed_import_names", [])) | {i["module"] for i in tests.get("inferred") or []}
        if "pytest_django" not in have:
            # as of the release, as the project's other test tools; its pytest is the farm's
            when = self.as_of()
            rc, output = self.install((["--exclude-newer", when] if when else []) + ["--no-deps", "pytest-django"],
                                      deadline, log)
            if rc != 0:
                log.write("[farm: could not install pytest-django: %s]\n" % _error_line(output))
                return None
            tests["inferred"] = tests["inferred"] + [{"module": "pytest_django", "requirement": "pytest-django"}]
        again = dict(plan, env={"DJANGO_SETTINGS_MODULE": module},
                     how=plan["how"] + "; in the Django settings the release ships (%s), with pytest-django" % module)
        first_command = tests.get("command")
        rc, output, out_dir = self.run_tests(again, deadline, log)
        counts, probe = self.read_run(out_dir, "pytest")
        if not (counts or {}).get("passed"):
            log.write("[farm: no test passed in them either; the first run stands]\n")
            tests["command"] = first_command
            return None
        tests["how"] = again["how"]
        return again, rc, output, out_dir, counts, probe

    def other_extras(self, deadline, log):
        """Install, once, the release's extras its test run did not have (each requirement alone
        when together they have no solution: one extra's package without a wheel for this Python
        must not keep the others out); what the release installed stays as it is. The report lists
        them among the test dependencies. True when any was installed."""
        r, st, tests = self.report, self.report["_state"], self.report["tests"]
        if st.get("extras_tried"):
            return False
        st["extras_tried"] = True
        had = {canonicalize_name(e) for e in st.get("extras_installed") or []}
        others = [e for e in st.get("provides_extras") or [] if isinstance(e, str) and canonicalize_name(e) not in had]
        markers = audit.marker_environment(st["interpreter"])
        me = canonicalize_name(r["package"])
        wanted = {}
        for text in st.get("requires") or []:
            req = _requirement(text) if isinstance(text, str) else None
            if req is None or req.marker is None or canonicalize_name(req.name) == me:
                continue
            for extra in others:
                if req.marker.evaluate(dict(markers, extra=extra)) and not req.marker.evaluate(dict(markers, extra="")):
                    wanted.setdefault(_bare(req), extra)
        if not wanted:
            return False
        log.write("[farm: the tests miss a module; installing the release's other extras (%s), which its "
                  "CI may install]\n" % ", ".join(sorted(set(wanted.values()))))
        out_dir = self.new_out_dir()
        pin = (st.get("tools_provide") or {}).get("pytest")
        pins = self.runtime_pins() + (["pytest==%s" % pin] if pin and me != "pytest" else [])
        untrusted.write_new(os.path.join(out_dir, "constraints.txt"), "".join(p + "\n" for p in pins))
        constraint = ["-c", self.sandbox_path(os.path.join(out_dir, "constraints.txt"), sandbox_.OUT + "/constraints.txt")]
        reqs = list(wanted)[:MAX_EACH]
        rc, output = self.install(constraint + reqs, deadline, log, out_dir=out_dir)
        if rc == 0:
            done = reqs
        elif _network_trouble(output):
            return False
        else:
            log.write("[farm: they have no solution together (%s); each alone]\n" % _error_line(output))
            done = [q for q in reqs if self.install(constraint + [q], deadline, log, out_dir=out_dir)[0] == 0]
        tests["deps"] = tests.get("deps", []) + [
            {"requirement": q, "source": "the release's extra %s (its tests import what it provides)" % wanted[q]}
            for q in done]
        return bool(done)

    def environment_s(self, probe, plan, staged):
        """The run's failures, and those the environment is to blame for, by class
        (farm_runner/excuses.py): {field: {test: detail}}, each on the runner's own evidence."""
        st = self.report["_state"]
        failures = probe["failures"]
        excused_by = {e.field: {} for e in excuses.EXCUSES}
        # What the probe saw the test do: reach for the network, start a program. A program counts
        # only where the runner finds it on none of the sandbox's PATH folders.
        tested = {f["test"] for f in failures}
        excused_by["needs_network"] = {t: w for t, w in probe["network"].items() if t in tested}
        excused_by["needs_service"] = {t: ", ".join(excuses.service_name(s) for s in w) for t, w in probe["services"].items()
                                       if t in tested and w and t not in excused_by["needs_network"]}
        path_dirs = [os.path.dirname(st["env_python"]), "/usr/local/bin", "/usr/bin", "/bin"]
        for test, programs in probe["programs"].items():
            lacked = [p for p in programs if not any(os.path.lexists(os.path.join(d, p)) for d in path_dirs)]
            if test in tested and lacked and test not in excused_by["needs_network"] and \
                    test not in excused_by["needs_service"]:
                excused_by["lacks_program"][test] = ", ".join(lacked)
        # Django's settings never made: the runner gives no DJANGO_SETTINGS_MODULE, and Django is a
        # distribution of its own here, not the release.
        installed = set(st.get("installed_import_names", [])) | {
            i["module"] for i in self.report["tests"].get("inferred") or []}  # (django_ru_fields's tests named it)
        if "DJANGO_SETTINGS_MODULE" not in self.test_env("", plan) and "django" in installed \
                and "django" not in st.get("import_names", []):
            excused_by["needs_configuration"] = {t: w for t, w in probe["unconfigured"].items() if t in tested
                                                 and not any(t in excused_by[k] for k in ("needs_network", "lacks_program"))}
        # A standard module the interpreter under test lists and cannot find (asked of it here).
        named = {missing.named_missing(f["message"]) for f in failures} - {None}
        lacks = set(lacking_standard_modules(st["interpreter"]["executable"], st["interpreter"]["version_info"][0],
                                             named)) if named else set()
        # A file or folder of the project's tree that the sdist, as the runner listed it, lacks.
        root = staged.get("src") if isinstance(staged.get("src"), str) else None
        listing = staged.get("shipped")
        listing = set(p for p in listing if isinstance(p, str)) if isinstance(listing, list) and root else None
        site, own = st["site_packages"], set(st.get("import_names", []))

        def in_site(path):  # the installed copy has it (a folder of its own, or a file)
            return os.path.lexists(os.path.join(site, path))
        cwd = plan.get("cwd") if plan.get("cwd") is not None and plan["root"] == root else None
        for f in failures:
            t = f["test"]
            if any(t in excused_by[k] for k in ("needs_network", "needs_service", "lacks_program", "needs_configuration",
                                                "needs_credentials")):
                continue
            module = missing.standard_module_missing(f["message"], lacks)
            if module:
                excused_by["interpreter_lacks"][t] = module
                continue
            path = missing.tree_file_missing(f["message"], root, cwd) if root and cwd is not None else None
            if path is None and root and cwd is not None and listing is not None:
                # its FileNotFoundError named no path; the paths the raising code held that are not there
                path = next((p for p in (missing.tree_path(w, root, cwd) for w in probe["not_found"].get(t, [])
                                          if w.startswith(root.rstrip("/") + "/") and "://" not in w)
                              if p and not missing.shipped(p, listing)), None)
            if path and listing is not None and not missing.shipped(path, listing):
                excused_by["sdist_lacks"][t] = path
                continue
            if root and plan.get("cwd") is None and listing is not None:
                # tests inside the installed package, run from an empty folder of the farm's: a
                # path of the project's tree (kubernetes's `kubernetes/aio/utils/nginx-deployment.yaml`)
                # whose top folder the sdist ships and whose file it does not
                path = missing.tree_file_missing(f["message"], os.path.join(self.box, "run"), "")
                if path and "/" in path and path.split("/")[0] in listing and not missing.shipped(path, listing):
                    excused_by["sdist_lacks"][t] = path
                    continue
            module = missing.module_file_missing(f["message"])
            path = missing.release_lacks(module, listing, in_site, own) if module else None
            path = path or missing.helper_beside_missing(t, f["message"], listing) \
                or missing.package_init_missing(t, f["message"], listing) \
                or (missing.conftest_missing(t, f["message"], listing, plan.get("cwd"))
                    if plan.get("cwd") is not None and plan.get("root") == root else None)
            if path:
                excused_by["sdist_lacks"][t] = path
        return failures, excused_by

    def test_env(self, out, plan=None):
        """The test run's environment: the probe's files, and the plan's own settings (the Django
        settings module the release ships, for the run again in them)."""
        st = self.report["_state"]
        native = {"LD_PRELOAD": st["netwatch"], "FARM_NATIVE_NET": out + "/native-net.log"} if st.get("netwatch") else {}
        return dict(native, PYTHONPATH=self.sandbox.lib_path + "/farm_runner/inside/pytest_plugin",
                    FARM_PROBE_REPORT=out + "/probe.json", FARM_PROGRESS=out + "/progress.jsonl",
                    FARM_IMPORT_NAMES=json.dumps([n for n in st.get("import_names", []) if n not in NOT_THE_PACKAGE]),
                    **dict({installers.TOOLS_VARIABLE: st["tools"]}, **(plan or {}).get("env", {})))

    def run_tests(self, plan, deadline, log, main=True):
        """Run the plan's test command in the sandbox: (exit status, output, its out folder). The
        report's command is the `main` run's (not a re-run of failed tests)."""
        st = self.report["_state"]
        out_dir = self.new_out_dir()
        out = self.sandbox.out_path(out_dir)
        command, cwd = test_command(st["env_python"], plan, out, os.path.join(self.box, "run"),
                                    st["tools_provide"].get("pytest"))
        os.makedirs(os.path.join(self.box, "run"), exist_ok=True)
        if main:
            self.report["tests"]["command"] = command
        try:
            rc, output = self.boxed(command, cwd, deadline, log, env=self.test_env(out, plan), out_dir=out_dir)
        except LimitHit as exc:
            if not main:
                raise
            if self.more_memory(exc, log):
                return self.run_tests(plan, deadline, log, main)
            return self.second_part(plan, out_dir, exc, log)
        self.exit_status[out_dir] = rc
        return rc, output, out_dir

    def more_memory(self, stopped, log):
        """After a test run ran out of memory, once: the phase's memory limit grows by
        contract.OOM_RETRY_FACTOR for the run again. False when it has grown already."""
        st = self.report["_state"]
        if stopped.limit != "oom" or st.get("more_memory"):
            return False
        st["more_memory"] = True
        self.limits.memory *= contract.OOM_RETRY_FACTOR
        self.report["tests"]["memory_bytes"] = self.limits.memory
        log.write("\n[farm: the tests ran out of memory; running them again once with %s]\n"
                  % limits_.format_size(self.limits.memory))
        return True

    def second_part(self, plan, first_out, stopped, log):
        """A suite that ran past the phase's time limit while it kept finishing tests, or one whose
        test gave no output for the silence limit (gs-quant's three, each waiting for ever on a
        recorded answer the sdist leaves out): the tests it did not finish run on in another part,
        with a time limit of its own, each hung test left out and named. Once for the time limit,
        up to MAX_HUNG hung tests, each after the first given HUNG_SILENCE s; past that, the
        stop is the timeout it was. (exit status, output, out folder) as of one run; read_run()
        adds the earlier parts' results. `stopped`: the LimitHit of the first part."""
        st, tests = self.report["_state"], self.report["tests"]
        if plan["tool"] != "pytest" or st.get("second_part") or stopped.limit not in ("timeout", "silence"):
            raise stopped
        st["second_part"] = True
        done, hung, out_dir, silence, evidence, cut = {}, [], first_out, self.limits.silence, {}, False
        try:
            while True:
                finished = self.read_progress(out_dir, evidence)
                done.update(finished)
                if stopped.limit == "silence":
                    test = self.hung_test(out_dir, done)
                    if test is None or len(hung) >= MAX_HUNG:
                        raise stopped
                    hung.append(test)
                    tests["hung"] = list(hung)
                    log.write("\n[farm: %s gave no output for %g s and was stopped, with %d finished: the others run "
                              "on, with a limit of their own]\n" % (test, self.limits.silence, len(done)))
                    self.limits.silence = min(silence, HUNG_SILENCE)
                elif finished and out_dir == first_out:  # the time limit: once, and only after the first part
                    log.write("\n[farm: the tests ran past the %g s limit with %d finished and going on: the others "
                              "run in a second part, with a limit of its own]\n" % (self.limits.timeout, len(done)))
                else:
                    raise stopped
                self.test_deadline = time.monotonic() + self.limits.timeout
                out_dir = self.new_out_dir()
                out = self.sandbox.out_path(out_dir)
                untrusted.write_new(os.path.join(out_dir, "done.txt"), "".join(t + "\n" for t in list(done) + hung))
                command, cwd = test_command(st["env_python"], plan, out, os.path.join(self.box, "run"),
                                            st["tools_provide"].get("pytest"))
                try:
                    rc, output = self.boxed(command, cwd, self.test_deadline, log, out_dir=out_dir,
                                            env=dict(self.test_env(out, plan), FARM_DONE=out + "/done.txt"))
                    break
                except LimitHit as exc:
                    more = self.read_progress(out_dir, evidence) if exc.limit == "timeout" else {}
                    if more:
                        # past its own limit too, still finishing tests: cut here, judged on what
                        # finished (a suite that waits on a service at each test: redis's)
                        done.update(more)
                        log.write("\n[farm: the second part ran past its limit too, with %d finished in all and "
                                  "going on: the suite is cut here; the rest did not run]\n" % len(done))
                        cut, rc, output = True, 0, ""
                        self.cut_by = exc
                        break
                    if exc.limit != "silence":
                        raise
                    stopped = exc
        finally:
            self.limits.silence = silence
        self.first_parts[out_dir], self.first_evidence[out_dir] = done, evidence
        tests["parts"] = {"first": len(done), "limit_s": self.limits.timeout,
                          "stopped": "silence" if hung else "timeout"}
        if cut:
            tests["parts"]["cut"] = True
        failed_first = any(o in ("failed", "error") for o, _, _ in done.values())
        if rc == 5 or (rc == 0 and failed_first):  # nothing left to run, or the first part's failures
            rc = 1 if failed_first else 0
        return rc, output, out_dir

    def hung_test(self, out_dir, done):
        """The test that had started and not finished when its run stopped (the probe's progress
        lines: untrusted, bounded), or None."""
        try:
            data = untrusted.read_bytes(out_dir, "progress.jsonl", MAX_JUNIT)
        except untrusted.Untrusted:
            return None
        last = None
        for line in data.decode("utf-8", "replace").splitlines()[:MAX_PROGRESS]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("outcome") == "started" and verdict.rerunnable(entry.get("test")):
                last = entry["test"]
        return untrusted.line(last, 500) if last and last not in done else None

    def read_progress(self, out_dir, evidence=None):
        """{test: (outcome, when, message)} of the tests a run finished, from its progress file
        (written by the probe as the suite went: untrusted, bounded). `evidence`, a dict: filled
        with what the probe saw each failed test do ({"network": {test: [...]}, ...}), as its
        probe.json would say it, for a run stopped before it wrote one."""
        try:
            data = untrusted.read_bytes(out_dir, "progress.jsonl", MAX_JUNIT)
        except untrusted.Untrusted:
            return {}
        done = {}
        for line in data.decode("utf-8", "replace").splitlines()[:MAX_PROGRESS]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not (isinstance(entry, dict) and verdict.rerunnable(entry.get("test"))
                    and entry.get("outcome") in ("passed", "failed", "skipped")):
                continue
            outcome = "error" if entry["outcome"] == "failed" and entry.get("when") != "call" else entry["outcome"]
            if evidence is not None and isinstance(entry.get("evidence"), dict):
                for field, seen in list(entry["evidence"].items())[:len(verdict.EVIDENCE_FIELDS)]:
                    if field in verdict.EVIDENCE_FIELDS and len(evidence.get(field, ())) < 200:
                        evidence.setdefault(field, {})[entry["test"]] = seen
            before = done.get(entry["test"])
            if before is None or before[0] in ("passed", "skipped") and outcome in ("failed", "error"):
                done[entry["test"]] = (outcome, untrusted.line(entry.get("when"), 10),
                                       untrusted.line(entry.get("message") or "", 300))
        return done

    def read_run(self, out_dir, tool):
        """(counts or None, the probe's answer) of one test run, read as untrusted data; a second
        part's with its first part's added."""
        counts, probe = self._read_run(out_dir, tool)
        first = self.first_parts.get(out_dir)
        if first:
            counts = dict(counts or verdict.ZERO)
            for outcome, when, message in first.values():
                counts[{"passed": "passed", "skipped": "skipped", "failed": "failed", "error": "errors"}[outcome]] += 1
            probe["failures"] = [{"test": t, "when": w, "message": m} for t, (o, w, m) in first.items()
                                 if o in ("failed", "error")][:200] + probe["failures"]
            seen = verdict.probe_answer(self.first_evidence.get(out_dir) or {})  # checked as probe.json is
            for field in verdict.EVIDENCE_FIELDS:
                probe[field] = dict(seen[field], **probe[field])
        return counts, probe

    def _read_run(self, out_dir, tool):
        if tool == "script":  # one test, the script, judged by the exit status the host saw
            rc = self.exit_status.get(out_dir)
            counts = None if rc is None else dict(verdict.ZERO, passed=int(rc == 0), failed=int(rc != 0))
            failures = [] if rc in (0, None) else [{"test": "the test script", "message": "exit status %d" % rc}]
            return counts, verdict.probe_answer({"failures": failures})
        try:
            if tool == "unittest":
                data = untrusted.read_json(out_dir, "unittest.json", MAX_JUNIT)
                counts = verdict.unittest_counts(data)
                probe = verdict.probe_answer({k: data.get(k) for k in ("failures",) + verdict.EVIDENCE_FIELDS}
                                             if isinstance(data, dict) else {})
                return counts, probe
            counts = verdict.junit_counts(untrusted.read_bytes(out_dir, "junit.xml", MAX_JUNIT))
        except untrusted.Untrusted:
            counts = None
        try:
            probe = verdict.probe_answer(untrusted.read_json(out_dir, "probe.json", MAX_PROBE))
        except untrusted.Untrusted:
            probe = verdict.probe_answer({})
        return counts, probe

    def take_installed(self, staged):
        """What the environment says of the release (from the stage step's listing, as the install
        left it): its import names, extras and RECORD, and the dependencies it resolved."""
        r, st = self.report, self.report["_state"]
        dists = audit.checked_dists(staged.get("dists"))
        me = next((d for d in dists.values() if d["dist_info"] == staged.get("me")), None)
        if me is None:
            return False
        st["import_names"] = environment.import_names(me["record"])
        st["installed_import_names"] = sorted({n for d in dists.values() for n in environment.import_names(d["record"])})
        st["provides_extras"] = me["extras"]
        st["requires"] = me["requires"]
        st["record"] = me["record"]
        closure = audit.requirement_closure(dists, canonicalize_name(me["name"]), audit.marker_environment(st["interpreter"]))
        r["dependencies"] = sorted(({"name": dists[k]["name"], "version": dists[k]["version"]} for k in closure),
                                   key=lambda d: canonicalize_name(d["name"]))
        st["installed_names"] = sorted(dists)
        return True

    def download_sdist(self, sdist):
        """The release's sdist, fetched into a folder the runner made and checked against the index's hash."""
        dl = os.path.join(self.workdir, "dl")
        os.makedirs(dl, exist_ok=True)
        path = os.path.join(dl, "sdist.zip" if sdist["filename"].lower().endswith(".zip") else "sdist.tar")
        if os.path.lexists(path):
            os.remove(path)
        index.download(sdist["url"], path, sdist.get("sha256"), self.limits.disk)
        return path

    def install_test_dependencies(self, deps, deadline, log):
        """Install what the project declares for its tests (the stage step's findings, each checked
        here): ([{"requirement", "source"}] of what was asked for, whether an install ran). A failed
        install is said in the log and the report; the tests run all the same (a missing one shows
        as their error)."""
        out_dir = self.new_out_dir()
        args, shown, instrument_pin = self.test_requirements(deps, out_dir)
        if not args:
            return shown, False
        # The test tools as the project had them when it released (its runtime dependencies stay
        # as users get them today): a plugin of today on a pytest of then crashes at start.
        when = self.as_of()
        dated = ["--exclude-newer", when] if when else []
        if not when:
            when, dated = self.legacy_dated(out_dir)
        rc, output = self.install(dated + args, deadline, log, out_dir=out_dir)
        if rc != 0 and dated and _UNRESOLVED.search(output) and not _network_trouble(output):
            log.write("[farm: the test dependencies have no solution as of %s; resolving them as of today]\n" % when)
            dated = []
            rc, output = self.install(args, deadline, log, out_dir=out_dir)
        if rc != 0 and instrument_pin and "pytest" in output and not _network_trouble(output):
            log.write("[farm: the test dependencies could not be installed with the farm's pytest %s; "
                      "installing them again with the pytest they ask for]\n" % instrument_pin)
            out_dir = self.new_out_dir()
            args, shown, _ = self.test_requirements(deps, out_dir, pin_instrument=False)
            if dated[:1] == ["-c"]:  # 2.7's caps, written again into this run's folder
                when, dated = self.legacy_dated(out_dir)
            rc, output = self.install(dated + args, deadline, log, out_dir=out_dir)
        self.report["tests"]["as_of"] = when if dated else None
        if rc == 0:
            self.put_back(output, deadline, log)
        if rc != 0:
            if _network_trouble(output):
                raise InfraError("the index could not be reached for the test dependencies: %s"
                                 % _last_line(output), kind="index")
            self.report["tests"]["deps_error"] = report_.sentence(_error_line(output))[:500]
            # One requirement the index cannot serve (a lock file's pin of a release it no longer
            # has, a dependency's broken pin) must not take the others with it: each alone.
            wanted = _requirement_words(args, out_dir)[:MAX_EACH]
            log.write("[farm: the test dependencies could not be installed together; installing the %d of them "
                      "one at a time]\n" % len(wanted))
            alone = []
            # what the release installed stays as users get it (aiobotocore's pinned botocore: moto
            # alone would upgrade it), and so does the farm's pytest
            kept = self.runtime_pins()
            for requirement in wanted:
                answer = self.index_answers(requirement)
                if answer is not None:  # the index settles it; no installer started (0.07 s each)
                    if not answer:
                        alone.append(requirement)
                    continue
                each_dir = self.new_out_dir()
                pins = kept + (["pytest==%s" % instrument_pin] if instrument_pin else [])
                if pins:
                    untrusted.write_new(os.path.join(each_dir, "constraints.txt"), "\n".join(pins) + "\n")
                    pins = ["-c", self.sandbox_path(os.path.join(each_dir, "constraints.txt"),
                                                    sandbox_.OUT + "/constraints.txt")]
                if self.install(dated + pins + [requirement], deadline, log, out_dir=each_dir)[0] != 0:
                    alone.append(requirement)
            if alone:
                log.write("[farm: could not install %s; the tests run without them]\n" % ", ".join(alone))
            self.report["tests"]["deps_error"] += " Not installed: %s." % ", ".join(alone) if alone else \
                " Installed one at a time instead."
        return shown, True

    def index_answers(self, text):
        """Whether one test requirement, alone, needs no installer to say: True when there is
        nothing to install (its marker leaves it out, or the farm's pytest tools meet it without
        the project's constraints: iniconfig's `pytest`, pinned to a release the index lacks);
        False when the index has no such project, or no release of it that the specifier and the
        interpreter admit; None otherwise, for the installer to find out. Lenient: dates, extras,
        yanked files and pre-releases count as there."""
        st = self.report["_state"]
        if discover.already_met(text, [], st.get("tools_provide") or {}, audit.marker_environment(st["interpreter"])):
            return True
        try:
            req = Requirement(text)
        except InvalidRequirement:
            return None
        if req.url:
            return None
        try:
            files = self.index_cache().files_of(req.name)
        except UsageError:
            return False  # no such project
        except (InfraError, OSError):
            return None
        pyver = self.py_info["full_version"]
        for f in files:
            v = versions.parse(f.get("version") or "")
            if v is None and f.get("version"):
                return None  # a legacy version string: the installer's own rules
            if v is not None and req.specifier.contains(v, prereleases=True) and (
                    not f.get("requires_python") or index.requires_python_allows(f["requires_python"], pyver)):
                return None
        return False

    def put_back(self, output, deadline, log):
        """The release's runtime dependencies the test dependencies' install replaced (the
        installer's own "- name==version" lines), put back as users get them, alone: the tests run
        with what users run (tamarind-cli's dev extra took typer below what its users get, and
        that hid a failure). Resolving with them pinned instead made the resolver reach for test
        tools old enough not to ask for them (tokenizers' datasets 1.1.1)."""
        kept = {canonicalize_name(p.split("==")[0]): p for p in self.runtime_pins()}
        taken = [canonicalize_name(m.group(1) or m.group(3)) for m in _REPLACED.finditer(output or "")]
        replaced = list(dict.fromkeys(kept[n] for n in taken if n in kept))[:MAX_EACH]
        if not replaced:
            return
        log.write("[farm: the test dependencies replaced %s; putting back what users get]\n" % ", ".join(replaced))
        rc, out = self.install(["--no-deps"] + replaced, deadline, log)
        if rc == 0:
            self.report["tests"]["put_back"] = replaced
        else:
            log.write("[farm: could not put them back: %s]\n" % _error_line(out))

    def runtime_pins(self):
        """["name==version"] of the release's dependencies as the install resolved them (pytest is
        the instrument's, pinned by its own rules)."""
        return ["%s==%s" % (d["name"], d["version"]) for d in self.report["dependencies"]
                if isinstance(d.get("version"), str) and versions.parse(d["version"]) is not None
                and canonicalize_name(d["name"]) != "pytest"]

    def legacy_dated(self, out_dir):
        """(when, pip arguments): 2.7's pip cannot resolve as of a date, so the test tools' own
        dependencies (py, pluggy...) are capped at their newest release before the upload, from
        the index's upload times (katabankocr pins pytest 2.5.2, which refuses today's py:
        "1.11.0 is too old"); the project's other test dependencies resolve as they did. (None, [])
        where the upload time is unknown or the installer is uv."""
        st = self.report["_state"]
        limit = instrument.cutoff(st.get("released"), st["interpreter"]["version_info"])
        if limit is None or st["installer"] != installers.Pip.name:
            return None, []
        when = limit.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        caps = installers.dated_caps(self.args.index_url, installers.PYTEST_DEPENDENCIES, when, "2.7")
        if not caps:
            return None, []
        untrusted.write_new(os.path.join(out_dir, "dated.txt"), "".join(c + "\n" for c in caps))
        return when, ["-c", self.sandbox_path(os.path.join(out_dir, "dated.txt"), sandbox_.OUT + "/dated.txt")]

    def as_of(self):
        """The time the test dependencies resolve as of (uv's --exclude-newer, RFC 3339): the
        release's upload, never before its interpreter was supported (instrument.cutoff); None
        where it is unknown, or for 2.7's pip, which cannot."""
        st = self.report["_state"]
        limit = instrument.cutoff(st.get("released"), st["interpreter"]["version_info"])
        if limit is None or st["installer"] != installers.Uv.name:
            return None
        return limit.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def test_requirements(self, deps, out_dir, pin_instrument=True):
        """(uv arguments, [{"requirement", "source"}], the pytest version pinned or None) for the
        test dependencies: the release's extras and requirement lines (its dependency groups among
        them), each parsed as a PEP 508 requirement, never passed as an option. What the farm's
        pytest tools satisfy is not installed; what is installed keeps to the farm's pytest
        unless the project asks for another (`pin_instrument`)."""
        r, st = self.report, self.report["_state"]
        if not isinstance(deps, dict):
            return [], [], None
        tools, markers = st.get("tools_provide") or {}, audit.marker_environment(st["interpreter"])
        project_constraints = [text for text, _ in _pairs(deps.get("constraints"))]
        other_pytest = False  # the project asks for a pytest the farm's is not
        me = canonicalize_name(r["package"])
        provided = [e for e in st.get("provides_extras", []) if isinstance(e, str)]
        wanted = [e for e in deps.get("extras") or [] if isinstance(e, str)]
        requirements, constraints, shown = [], [], []
        elsewhere = {canonicalize_name(n): w for n, w in _pairs(deps.get("elsewhere"))}
        for text, source in _pairs(deps.get("requirements")):
            req = _requirement(text)
            if req is None:
                continue
            name = canonicalize_name(req.name)
            if name == me:  # the release itself, perhaps with extras
                wanted += sorted(req.extras)
                continue
            met = discover.already_met(str(req), project_constraints, tools, markers)
            if met:
                shown.append({"requirement": str(req), "source": "%s; %s" % (source, met)})
                continue
            other_pytest = other_pytest or name == "pytest"
            requirements.append(str(req))
            if name in elsewhere:
                # The project's uv takes it from git or a URL; the farm has the index only.
                source += "; the project takes it from %s, the farm from the index" % elsewhere[name]
                st["elsewhere"] = st.get("elsewhere", []) + [req.name]
            shown.append({"requirement": str(req), "source": source})
        if deps.get("test_extras_wanted"):
            wanted += [e for e in provided if is_test_name(e)] or [e for e in provided if is_dev_name(e)]
        extras = [e for e in dict.fromkeys(wanted) if canonicalize_name(e) in {canonicalize_name(p) for p in provided}]
        st["extras_installed"] = extras
        args = []
        if extras:
            if self.spec[0] == "path":
                spec = "%s[%s] @ %s" % (r["package"], ",".join(extras), r["installed_from"]["url"])
            else:
                spec = "%s[%s]==%s" % (r["package"], ",".join(extras), r["version"])
            args.append(spec)
            shown.insert(0, {"requirement": spec, "source": "the release's extras"})
        installed = set(st.get("installed_names", []))
        for text, source in _pairs(deps.get("constraints")):
            req = _requirement(text)
            # Pins for what the tests add; what the install resolved stays as it is.
            if req is not None and canonicalize_name(req.name) not in installed | {me}:
                constraints.append(str(req))
                other_pytest = other_pytest or (canonicalize_name(req.name) == "pytest" and not discover.already_met(
                    "pytest", [str(req)], tools, markers))
        if not (args or requirements):
            return [], shown, None
        pin = tools.get("pytest") if pin_instrument and not other_pytest and me != "pytest" else None
        if pin:  # a plugin asking for pytest gets the farm's, not the newest
            constraints.append("pytest==%s" % pin)
        if requirements:
            untrusted.write_new(os.path.join(out_dir, "requirements.txt"), "\n".join(requirements) + "\n")
            args += ["-r", self.sandbox_path(os.path.join(out_dir, "requirements.txt"), sandbox_.OUT + "/requirements.txt")]
        if constraints:
            untrusted.write_new(os.path.join(out_dir, "constraints.txt"), "\n".join(constraints) + "\n")
            args += ["-c", self.sandbox_path(os.path.join(out_dir, "constraints.txt"), sandbox_.OUT + "/constraints.txt")]
        return args, shown, pin

    # -- uninstall ---------------------------------------------------------------------------------
    def phase_uninstall(self, deadline, log):
        r, st = self.report, self.report["_state"]
        site, env_dir = st["site_packages"], st["env"]
        # One command: the uninstall (uv's runs none of the package's code; 2.7's pip starts the
        # environment's interpreter), then the listing, made by the runner's own code after it;
        # the import check comes last.
        uninstall = self.installer().uninstall(st["env_python"], st["box_cache"], r["package"])
        python = [st["env_python"]] + installers.isolated_flags(st["interpreter"]["version_info"])
        own, out_dir = "-", None
        if st.get("own_files") is not None:  # the release's own folders as the install left them
            out_dir = self.new_out_dir()
            untrusted.write_new(os.path.join(out_dir, "own-files.json"), json.dumps(st["own_files"]))
            own = self.sandbox_path(os.path.join(out_dir, "own-files.json"), sandbox_.OUT + "/own-files.json")
        listing, rc, out = self.inside("audit", [env_dir, site, TOOLS_PTH, json.dumps(python),
                                                 json.dumps(st.get("import_names", [])), own, "--"] + uninstall,
                                       deadline, log, out_dir=out_dir)
        written = listing.get("written_by_tests")
        written = [p for p in written if isinstance(p, str)] if isinstance(written, list) else []
        if written and isinstance(r.get("tests"), dict):
            r["tests"]["wrote_in_package"] = written[:100]
            log.write("the tests wrote %d file(s) in %s's own folders, which its import does not make: "
                      "set apart, not counted (e.g. %s)\n" % (len(written), r["package"], written[0]))
        if listing.get("uninstall_returncode") != 0:
            return "failed", contract.UNINSTALL_DIRTY, "Uninstalling %s failed: %s" % (
                r["package"], report_.sentence(_error_line(out)))
        after = [p for p in listing.get("files") or [] if isinstance(p, str)]
        if listing.get("complete") is not True:
            r["leftovers"] = after[:100]
            return "failed", contract.UNINSTALL_DIRTY, "After uninstalling %s the environment holds more than %d files." % (
                r["package"], environment.MAX_ENTRIES)
        claimed, other_names = set(), set()
        for d in audit.checked_dists(listing.get("dists")).values():
            claimed.add(audit.site_relative(env_dir, site, d["dist_info"]) + "/")
            claimed.update(audit.site_relative(env_dir, site, p) for p in d["record"])
            other_names.update(environment.import_names(d["record"]))
        with open(os.path.join(self.workdir, "snapshot-before.json")) as fh:
            before = json.load(fh)
        removed = [audit.site_relative(env_dir, site, p) for p in st.get("record", [])]
        left = audit.leftovers(after, before, claimed, removed, audit.site_relative(env_dir, site, "x")[:-1])
        names = [n for n in st.get("import_names", []) if n not in other_names]
        still = []
        if names:  # the command ended as the import check (inside/environment.py): its status and output
            if rc != 0 or not set(names) <= set(listing.get("checked") or []):
                raise InfraError("the import check could not run: %s" % _last_line(out))
            try:
                still = [n for n in json.loads(out.strip().splitlines()[-1]) if n in names]
            except (ValueError, IndexError, TypeError):
                raise InfraError("the import check printed no answer: %s" % _last_line(out))
        r["leftovers"] = left
        for p in left:
            log.write("left behind: %s\n" % p)
        if still or left:
            parts = []
            if still:
                parts.append("%s still importable" % ", ".join(still))
            if left:
                parts.append("%d file(s) left behind, e.g. %s" % (len(left), left[0]))
            return "failed", contract.UNINSTALL_DIRTY, "Uninstalling %s was not clean: %s." % (
                r["package"], "; ".join(parts))
        return "ok", contract.PASSED, "Uninstalled %s cleanly." % r["package"]


# What an install took out: uv's " - name==version", pip's "Successfully uninstalled name-version".
_REPLACED = re.compile(r"(?m)^ - ([A-Za-z0-9][A-Za-z0-9._-]{0,100})==(\S{1,60})$|"
                       r"Successfully uninstalled ([A-Za-z0-9][A-Za-z0-9._]{0,100})-(\S{1,60})$")
_IMPORT_ERROR = re.compile(r"\b(ImportError|ModuleNotFoundError)\b|cannot import name|No module named")
# An installer's "no version fits" (uv, pip 20.3), as opposed to a build or a network failure.
_UNRESOLVED = re.compile(r"No solution found when resolving|not found in the package registry|"
                         r"no version of|Could not find a version that satisfies|ResolutionImpossible")


def _checked_plan(plan, src, src_dir, run_dir, site):
    """The stage step's plan, if it is well-formed; else None (no tests the host can run). Its
    words go to the test command as arguments inside the sandbox, never to a shell."""
    if not isinstance(plan, dict) or plan.get("tool") not in ("pytest", "unittest", "script"):
        return None

    def words(value, limit=200):
        if not isinstance(value, list) or len(value) > limit or not all(isinstance(w, str) and len(w) <= 1000
                                                                          and "\0" not in w for w in value):
            return None
        return list(value)

    args, fallback = words(plan.get("args")), words(plan.get("fallback") or [])
    installed = [w for w in words(plan.get("installed") or [], 5) or []
                 if re.match(r"^[A-Za-z_][A-Za-z0-9_.]{0,200}$", w) or (
                     w.startswith(site + "/") and ".." not in w.split("/"))]
    cwd = plan.get("cwd")
    if args is None or fallback is None:
        return None
    if plan["tool"] == "script" and not (len(args) == 1 and args[0].endswith(".py") and not args[0].startswith("-")
                                         and ".." not in args[0].split("/") and cwd is not None
                                         and (not args[0].startswith("/") or args[0].startswith(site + "/"))):
        return None  # a script of the tree, by its path there, or of the installed package
    if cwd is not None:
        inside = isinstance(src, str) and src.startswith(src_dir + "/") and ".." not in src.split("/")
        if not (inside and isinstance(cwd, str) and ".." not in cwd.split("/") and not cwd.startswith("/")):
            return None
    return {"how": str(plan.get("how"))[:300], "tool": plan["tool"], "args": args, "fallback": fallback,
            "cwd": cwd, "root": src if cwd is not None else run_dir, "deps": plan.get("deps"),
            "set_aside": [str(p)[:200] for p in (plan.get("set_aside") or [])[:50]]
            if isinstance(plan.get("set_aside"), list) else [],
            "unmet_imports": plan.get("unmet_imports") if isinstance(plan.get("unmet_imports"), list) else [],
            "installed": installed if cwd is not None else [],
            "django_settings": plan["django_settings"] if isinstance(plan.get("django_settings"), str) and re.fullmatch(
                r"[A-Za-z_][A-Za-z0-9_]{0,60}(\.[A-Za-z_][A-Za-z0-9_]{0,60}){0,5}", plan["django_settings"]) else None}


MAX_HUNG = 3  # tests that gave no output for the silence limit, each left out, before the stop is a timeout
HUNG_SILENCE = 120  # seconds without output allowed to a test after one hung (a suite's first hang has the whole limit)
PLACEHOLDER_CREDENTIAL = "farm-placeholder-credential"  # what a credential the tests read unset is, run again
MAX_INFER_ROUNDS = 3  # runs after the first one, each after installing what the tests missed
MAX_EACH = 15  # test requirements installed one at a time when together they have no solution


def _requirement_words(args, out_dir):
    """The requirements an install's arguments name: the release with its extras, and the lines of
    the runner's own requirements file (never an option or a path)."""
    words = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] not in ("-r", "-c"))]
    try:
        with open(os.path.join(out_dir, "requirements.txt"), encoding="utf-8") as fh:
            words += [l.strip() for l in fh if l.strip()]
    except OSError:
        pass
    return words


def _answer(pipe):
    try:
        return json.loads(pipe.finish().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _excused_tests(excused_by):
    """{test} of the failures the environment is to blame for (flaky ones are found later)."""
    return {t for field, tests in excused_by.items() if field != "flaky" for t in tests}


def _pairs(value):
    """[(text, source)] from the stage step's [[text, source]...], malformed entries dropped."""
    if not isinstance(value, list):
        return []
    return [(v[0], str(v[1])[:200]) for v in value[:2000]
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and len(v[0]) <= 500]


def _bare(req):
    """A requirement without its marker (already evaluated): name[extras]specifier."""
    return req.name + ("[%s]" % ",".join(sorted(req.extras)) if req.extras else "") + str(req.specifier)


def _requirement(text):
    """A PEP 508 requirement from the project's files, or None (options, paths and URLs are not)."""
    text = text.strip()
    if not text or text.startswith("-"):
        return None
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    return None if req.url else req


def fresh_workdir(workdir):
    """Clear what an earlier build left in WORKDIR (rmtree never follows links)."""
    os.makedirs(workdir, exist_ok=True)
    for name in ("box", "etc", "dl", "out", "report.json", "snapshot-before.json", "install.log", "test.log",
                 "uninstall.log"):
        p = os.path.join(workdir, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.remove(p)
    os.mkdir(os.path.join(workdir, "box"))


_NET_PATTERNS = ("error sending request", "connection refused", "dns error", "failed to lookup address",
                 "tcp connect error", "timed out", "connection reset", "network is unreachable",
                 "temporary failure in name resolution", "no space left on device",
                 "request failed after", "http status server error")


def _network_trouble(out):
    low = out.lower()
    return any(p in low for p in _NET_PATTERNS)


def _last_line(out):
    lines = [l.strip() for l in out.strip().splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


def _error_line(out):
    """uv's `error:` line plus its last `cause:`, else the last line that mentions an error."""
    lines = [l.strip() for l in out.strip().splitlines() if l.strip()]
    for i, l in enumerate(lines):
        if l.startswith(("error:", "\u00d7")):
            text = re.sub(r"^(error:|\u00d7)\s*", "", l).rstrip(".")
            causes = [c[len("cause:"):].strip() for c in lines[i + 1:] if c.startswith("cause:")]
            return text + (": " + causes[-1] if causes else "")
    for l in reversed(lines):
        if "Error" in l or "error" in l:
            return l
    return lines[-1] if lines else "no output"

