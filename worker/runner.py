#!/usr/bin/env python3
"""Install, self-test and uninstall one release on one interpreter.

    python runner.py SPEC --python PY [--index-url URL] [--phase install|test|uninstall|all]
                     [--workdir DIR] [--report FILE] [--timeout SECONDS] [--uv PATH] [--cache-dir DIR]
    python runner.py --list-pythons

Standard library only: the master ships this single file to workers.  It runs
under the worker's own Python (3.9+) and drives the target interpreter from the
outside (uv makes the environment and installs into it; pytest runs inside it).

SPEC is ``name==version``, a bare ``name`` (latest final release on the index)
or the path of an sdist or wheel.  PY is ``X.Y`` (an interpreter found on this
machine, see --list-pythons) or the path of an interpreter.

The JSON report (``--report``, default WORKDIR/report.json) is also the state
shared by the phases: ``--phase install`` starts a fresh workdir and writes it,
``--phase test`` and ``--phase uninstall`` read it, do their part and rewrite
it.  Internal bookkeeping lives under the ``_state`` key (not part of the
schema the master relies on).

Outcomes, by precedence when several apply (the most serious wins):
    infra-error > install-failed > not-applicable > tests-failed
    > uninstall-dirty > no-tests > passed
Exit status: 0 passed / no-tests / not-applicable, 1 install-failed /
tests-failed / uninstall-dirty, 2 usage error (no report written), 3 infra-error.
Each single-phase invocation exits with the status of the outcome so far.

Uninstall audit: the environment prefix is listed right after ``uv venv``
(before anything is installed).  After uninstalling the package under test
(only it: dependencies and test tools stay), a file is left behind when it is
not in that first listing and not claimed by the RECORD of a distribution still
installed.  ``__pycache__/*.pyc`` files are forgiven only when their ``.py``
source is in such a RECORD, the first listing, or the removed package's own
RECORD (the installer removes those itself).  The import names of the package
must no longer be importable (``importlib.util.find_spec``).
"""
from __future__ import annotations

import argparse
import configparser
import email.parser
import fnmatch
import glob
import hashlib
import html.parser
import inspect
import json
import ntpath
import os
import platform
import posixpath
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zipfile

SCHEMA = 1
DEFAULT_INDEX = "https://pypi.org/simple"
DEFAULT_TIMEOUT = 900
LOG_EXCERPT_BYTES = 4096
MIN_SUPPORTED = (3, 6)  # uv 0.13 makes environments for 3.6+; 2.7 fails on `-I`.
PHASES = ("install", "test", "uninstall")
PRECEDENCE = ("infra-error", "install-failed", "not-applicable", "tests-failed",
              "uninstall-dirty", "no-tests", "passed")
EXIT_CODES = {"passed": 0, "no-tests": 0, "not-applicable": 0, "install-failed": 1,
              "tests-failed": 1, "uninstall-dirty": 1, "infra-error": 3}
TERMINAL_AFTER_INSTALL = ("install-failed", "not-applicable", "infra-error")
FAILED_OUTCOME = {"install": "install-failed", "test": "tests-failed", "uninstall": "uninstall-dirty"}
TEST_EXTRAS = ("test", "tests", "testing")
TEST_DIRS = ("tests", "test", "testing")
TEST_REQUIREMENT_FILES = ("tests/requirements.txt", "test/requirements.txt", "test-requirements.txt",
                          "requirements-test.txt", "requirements-tests.txt", "requirements/test.txt",
                          "requirements/tests.txt", "requirements_test.txt")
USER_AGENT = "pypi-test-farm-runner/1"
NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.I)  # PEP 508
VERSION_RE = re.compile(
    r"^\s*v?(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?"
    r"(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?"
    r"(?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$", re.I)
TOOLS_MAX_AGE = 86400  # seconds: the shared test tools are resolved again once a day
TOOLS_PTH = "_farm_test_tools.pth"
INSTALLER_FILES = (".lock",)  # uv's lock file at the environment's root
SDIST_EXTS = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")


class UsageError(Exception):
    """Bad input from the caller: one line on stderr, exit 2, no report."""


class InfraError(Exception):
    """Not the package's fault (index unreachable, timeout, disk...)."""


# --------------------------------------------------------------------------
# Platform differences: everything that depends on the OS is in this section.
# --------------------------------------------------------------------------

def env_layout(env_dir, py_version, system=None, implementation="cpython"):
    """Paths inside an environment made by uv/venv, for `system` (platform.system())."""
    system = system or platform.system()
    if system == "Windows":
        j = ntpath.join
        return {"python": j(env_dir, "Scripts", "python.exe"), "bin": j(env_dir, "Scripts"),
                "site_packages": j(env_dir, "Lib", "site-packages")}
    j = posixpath.join
    lib = ("pypy%d.%d" if implementation == "pypy" else "python%d.%d") % tuple(py_version[:2])
    return {"python": j(env_dir, "bin", "python"), "bin": j(env_dir, "bin"),
            "site_packages": j(env_dir, "lib", lib, "site-packages")}


def prefix_interpreter(prefix, system=None):
    """The interpreter of an installed Python prefix (pyenv / uv-managed)."""
    system = system or platform.system()
    if system == "Windows":
        return ntpath.join(prefix, "python.exe")
    return posixpath.join(prefix, "bin", "python")


def exe_name(name, system=None):
    return name + ".exe" if (system or platform.system()) == "Windows" else name


def user_cache_dir(system=None, environ=None):
    """Per-user cache folder for the runner (the uv cache lives under it)."""
    system = system or platform.system()
    environ = os.environ if environ is None else environ
    home = environ.get("HOME") or os.path.expanduser("~")
    if system == "Windows":
        base = environ.get("LOCALAPPDATA") or ntpath.join(home, "AppData", "Local")
        return ntpath.join(base, "pypi-farm-runner", "Cache")
    if system == "Darwin":
        return posixpath.join(home, "Library", "Caches", "pypi-farm-runner")
    return posixpath.join(environ.get("XDG_CACHE_HOME") or posixpath.join(home, ".cache"), "pypi-farm-runner")


def popen_group_kwargs(system=None):
    """Start a child in its own process group so that a timeout kills all of it."""
    system = system or platform.system()
    if system == "Windows":
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    if system == "Linux" and platform.system() == "Linux":
        return {"start_new_session": True, "preexec_fn": _die_with_runner()}
    return {"start_new_session": True}


PR_SET_PDEATHSIG = 1


def _die_with_runner():
    """A preexec_fn: the child is killed when the runner dies (a killed worker, a stopped build)
    instead of running on as an orphan in a folder the next build reuses. libc is loaded here,
    in the parent, so the child only makes the call."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_group(proc):
    if platform.system() == "Windows":
        subprocess.call(["taskkill", "/F", "/T", "/PID", str(proc.pid)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.kill()
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


# --------------------------------------------------------------------------
# Running commands: the one function that starts processes, with the phase's limits, and the
# sandbox every untrusted command runs in.
# --------------------------------------------------------------------------

_SCRUB_PREFIXES = ("PIP_", "UV_", "VIRTUAL_ENV", "CONDA_", "PYTHON")
_KEEP = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8")
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.I)
TAIL_BYTES = 256 * 1024  # what callers get back of a command's output, for error messages
DISK_CHECK_SECONDS = 1.0


def child_env(extra=None):
    """The worker's environment minus installer/interpreter settings that would change results.
    Used for trusted commands and without a sandbox; the sandbox starts from an empty one."""
    env = {k: v for k, v in os.environ.items()
           if k in _KEEP or not k.upper().startswith(_SCRUB_PREFIXES)}
    env.update(_BASE_ENV)
    if extra:
        env.update(extra)
    return env


_BASE_ENV = {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_PROGRESS": "1",
             "PYTHONIOENCODING": "utf-8"}


def parse_size(text):
    """'1536M', '1.5G', '5242880' -> bytes."""
    m = SIZE_RE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError("%r is not a size; write it like 1536M or 1.5G" % (text,))
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def format_size(n):
    for unit in ("G", "M", "K"):
        if n >= 1024 ** " KMGT".index(unit) and n % 1024 ** " KMGT".index(unit) == 0:
            return "%d%s" % (n // 1024 ** " KMGT".index(unit), unit)
    return str(n)


class Limits:
    """What one phase may use. Crater's figures are the defaults."""

    def __init__(self, timeout=DEFAULT_TIMEOUT, silence=300, memory=1536 << 20, processes=256,
                 disk=4096 << 20, max_log=5 << 20):
        self.timeout, self.silence, self.memory = timeout, silence, memory
        self.processes, self.disk, self.max_log = processes, disk, max_log

    def flags(self):
        return ["--timeout", "%g" % self.timeout, "--silence-timeout", "%g" % self.silence,
                "--memory", format_size(self.memory), "--processes", str(self.processes),
                "--disk", format_size(self.disk), "--max-log", format_size(self.max_log)]

    def as_dict(self):
        return {"timeout_s": self.timeout, "silence_timeout_s": self.silence, "memory_bytes": self.memory,
                "processes": self.processes, "disk_bytes": self.disk, "max_log_bytes": self.max_log}


class LimitHit(InfraError):
    """A phase was stopped at a limit. `kind`: timeout, silence, oom, disk or processes."""

    def __init__(self, kind, message):
        InfraError.__init__(self, message)
        self.kind = kind


class Cgroup:
    """A memory + pids cgroup for one command, where the host lets us make one (v1 or v2).

    Without one, rlimits stand in: RLIMIT_AS for memory; the process count is then bounded only by
    the sandbox's PID namespace dying with the phase."""

    ROOT = "/sys/fs/cgroup"

    def __init__(self, dirs, version):
        self.dirs, self.version = dirs, version  # controller -> folder

    @classmethod
    def create(cls, limits):
        if platform.system() != "Linux":
            return None
        name = "pypi-farm-%d-%d" % (os.getpid(), int(time.monotonic() * 1000))
        own = {}
        try:
            with open("/proc/self/cgroup") as fh:
                for line in fh:
                    _, controllers, path = line.rstrip("\n").split(":", 2)
                    for c in controllers.split(",") if controllers else [""]:
                        own[c] = path
        except OSError:
            return None
        try:
            if os.path.isfile(os.path.join(cls.ROOT, "memory", "cgroup.procs")):
                dirs = {c: os.path.join(cls.ROOT, c, own.get(c, "/").lstrip("/"), name) for c in ("memory", "pids")}
                for d in dirs.values():
                    os.mkdir(d)
                group = cls(dirs, 1)
                group._write("memory", "memory.limit_in_bytes", limits.memory)
                group._write("pids", "pids.max", limits.processes)
                return group
            if os.path.isfile(os.path.join(cls.ROOT, "cgroup.controllers")):
                d = os.path.join(cls.ROOT, own.get("", "/").lstrip("/"), name)
                os.mkdir(d)
                group = cls({"memory": d, "pids": d}, 2)
                group._write("memory", "memory.max", limits.memory)
                group._write("memory", "memory.swap.max", 0)
                group._write("pids", "pids.max", limits.processes)
                return group
        except OSError:
            return None
        return None

    def _write(self, controller, name, value):
        path = os.path.join(self.dirs[controller], name)
        if os.path.exists(path):
            with open(path, "w") as fh:
                fh.write(str(value))

    def _read(self, controller, name):
        try:
            with open(os.path.join(self.dirs[controller], name)) as fh:
                return fh.read()
        except OSError:
            return ""

    def enter(self):
        """In the child, before exec: join the cgroup (the sandbox and all it starts inherit it)."""
        for d in set(self.dirs.values()):
            with open(os.path.join(d, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))

    def _counter(self, controller, name, key):
        for line in self._read(controller, name).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return 0

    def oom_killed(self):
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        return self._counter("memory", name, "oom_kill") > 0

    def processes_hit(self):
        return self._counter("pids", "pids.events", "max") > 0

    def kill_all(self):
        for d in set(self.dirs.values()):
            for _ in range(50):
                pids = [int(p) for p in self._read_procs(d)]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.02)

    @staticmethod
    def _read_procs(d):
        try:
            with open(os.path.join(d, "cgroup.procs")) as fh:
                return fh.read().split()
        except OSError:
            return []

    def remove(self):
        self.kill_all()
        for d in set(self.dirs.values()):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _limit_child(limits, cgroup):
    """A preexec_fn: join the cgroup, set rlimits, die with the runner (all before exec)."""
    import ctypes
    import resource

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def setup():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.disk, limits.disk))
        if cgroup is not None:
            cgroup.enter()
        else:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
    return setup


def disk_usage(path):
    """Bytes allocated under `path`, not following symbolic links."""
    total, stack = 0, [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total


def run_command(cmd, cwd, deadline, env=None, log=None, limits=None, watch_dir=None, shown=None):
    """Run `cmd` (an argument list, never a shell) within the phase's limits.

    Output (stdout and stderr together) streams to `log` as it comes, cut after limits.max_log
    bytes; the command is killed, with its whole process tree, when the deadline passes, when it
    is silent too long, when it uses too much memory or disk (`watch_dir`), or when it hits the
    process limit: then LimitHit says which. Returns (returncode, the output's last 256 KB).
    `shown` is what the log says was run (the command without its sandbox wrapping).
    """
    limits = limits or Limits()
    if log is not None:
        log.write("$ " + " ".join(shlex.quote(str(c)) for c in (shown or cmd)) + "\n")
    cgroup = Cgroup.create(limits)
    kwargs = popen_group_kwargs()
    if "preexec_fn" in kwargs:
        kwargs["preexec_fn"] = _limit_child(limits, cgroup)
    try:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env or child_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                **kwargs)
    except OSError as exc:
        if cgroup:
            cgroup.remove()
        raise InfraError("could not start %s: %s" % (cmd[0], exc))
    chunks = queue.Queue()

    def read():
        while True:
            data = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536)
            chunks.put(data)
            if not data:
                return

    threading.Thread(target=read, daemon=True).start()
    tail, logged, cut, hit = b"", 0, False, None
    last_output = next_disk_check = time.monotonic()
    try:
        while True:
            try:
                data = chunks.get(timeout=0.25)
            except queue.Empty:
                data = None
            now = time.monotonic()
            if data:
                last_output = now
                tail = (tail + data)[-TAIL_BYTES:]
                if log is not None and not cut:
                    room = limits.max_log - logged
                    log.write(data[:room].decode("utf-8", "replace"))
                    logged += min(room, len(data))
                    if len(data) > room:
                        cut = True
                        log.write("\n[farm: output cut here: more than %s; the rest was discarded]\n"
                                  % format_size(limits.max_log))
            elif data == b"":
                proc.wait()
                break
            if cgroup is not None and cgroup.processes_hit():
                hit = LimitHit("processes", "the command hit the limit of %d processes (a fork bomb?)"
                               % limits.processes)
            elif now > deadline:
                hit = LimitHit("timeout", "timeout")
            elif now - last_output > limits.silence:
                hit = LimitHit("silence", "timeout: no output for %g s" % limits.silence)
            elif watch_dir and now >= next_disk_check:
                next_disk_check = now + DISK_CHECK_SECONDS
                used = disk_usage(watch_dir)
                if used > limits.disk:
                    hit = LimitHit("disk", "disk: the build's folder grew past %s" % format_size(limits.disk))
            if hit:
                kill_group(proc)
                proc.wait()
                break
    finally:
        if cgroup is not None:
            if hit is None and proc.returncode != 0 and cgroup.oom_killed():
                hit = LimitHit("oom", "oom: the command used more than %s of memory" % format_size(limits.memory))
            cgroup.remove()
        elif proc.poll() is None:
            kill_group(proc)
            proc.wait()
    if hit is None and proc.returncode == -getattr(signal, "SIGXFSZ", 25):
        hit = LimitHit("disk", "disk: a file grew past %s" % format_size(limits.disk))
    if log is not None and tail and not tail.endswith(b"\n") and not cut:
        log.write("\n")
    if hit is not None:
        raise hit
    return proc.returncode, tail.decode("utf-8", "replace")


# The forwarder runs inside the sandbox, in front of the command: it listens on the sandbox's
# own loopback and passes each connection to the runner's proxy through a Unix socket, the only
# way out of the sandbox's network namespace.
_FORWARDER_MAIN = r'''
import socket, subprocess, sys, threading
path, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(64)
def serve():
    while True:
        client, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
sys.exit(subprocess.call(cmd))
'''
PROXY_PORT = 3128
PROXY_SOCKET = "/run/farm/proxy.sock"


class IndexProxy:
    """An HTTP proxy on a Unix socket that lets the sandbox reach the package index and its file
    hosts, and nothing else (not the worker, not the master, not the rest of the network)."""

    def __init__(self, path, allowed, log=None):
        self.path, self.allowed, self.log = path, set(allowed), log
        self.denied = []
        if os.path.lexists(path):
            os.remove(path)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(64)
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.server.close()
        finally:
            if os.path.lexists(self.path):
                os.remove(self.path)

    def _serve(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client):
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = (lines[0].split(" ") + ["", ""])[:3]
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                path = None
            else:
                url = urllib.parse.urlsplit(target)
                host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
                path = (url.path or "/") + ("?" + url.query if url.query else "")
            host = host.strip("[]").lower()
            try:
                port = int(port)
            except ValueError:
                port = -1
            if (host, port) not in self.allowed:
                self.denied.append("%s:%s" % (host, port))
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection((host, port), timeout=60)
            upstream.settimeout(None)
            if path is None:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                headers = [l for l in lines[1:] if not l.lower().startswith(("proxy-", "connection:"))]
                request = "\r\n".join(["%s %s %s" % (method, path, version)] + headers + ["Connection: close"])
                upstream.sendall(request.encode("latin-1") + b"\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            t = threading.Thread(target=_pump, args=(client, upstream), daemon=True)
            t.start()
            _pump(upstream, client)
            t.join(5)
        except OSError:
            pass
        finally:
            client.close()


def _pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# The forwarder runs in another interpreter (python -c): it gets the same _pump as the proxy.
_FORWARDER = "import socket\n" + inspect.getsource(_pump) + _FORWARDER_MAIN


def allowed_endpoints(urls):
    """(host, port) pairs the install may reach: the index and the hosts its files live on."""
    out = set()
    for u in urls:
        parts = urllib.parse.urlsplit(u)
        if parts.hostname:
            out.add((parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)))
    return out


_BWRAP_WORKS = {}


def bwrap_problem():
    """None where bubblewrap can make a sandbox here, else why not (one sentence)."""
    if "answer" not in _BWRAP_WORKS:
        exe = shutil.which("bwrap")
        if platform.system() != "Linux":
            answer = "bubblewrap exists only on Linux"
        elif not exe:
            answer = "bubblewrap (bwrap) is not installed"
        else:
            try:
                out = subprocess.run([exe, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                                     stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                answer = None if out.returncode == 0 else "bwrap cannot make a sandbox here: %s" % (
                    out.stderr.decode("utf-8", "replace").strip() or "exit status %d" % out.returncode)
            except (OSError, subprocess.TimeoutExpired) as exc:
                answer = "bwrap cannot make a sandbox here: %s" % exc
        _BWRAP_WORKS["answer"] = answer
    return _BWRAP_WORKS["answer"]


def choose_sandbox(requested, system=None):
    """'bwrap' or 'none' for --sandbox auto|bwrap|none; refuses where the sandbox is wanted and
    cannot be had (the runner then runs no package at all)."""
    system = system or platform.system()
    if requested == "none":
        return "none"
    if requested == "auto" and system != "Linux":
        return "none"  # macOS and Windows workers: a dedicated unprivileged user is their isolation
    problem = bwrap_problem()
    if problem:
        raise InfraError(
            "%s, and every package is untrusted code: install bubblewrap (apt-get install bubblewrap, "
            "or dnf install bubblewrap) on this worker, or pass --sandbox none (sandbox = \"none\" in "
            "farm.toml) to run packages without isolation" % problem)
    return "bwrap"


TLS_TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = ("/etc/ssl", "/etc/ca-certificates", "/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives",
                "/etc/mime.types", "/etc/nsswitch.conf")


class Sandbox:
    """Wraps one command in bubblewrap: its own PID, IPC, UTS, network and mount namespaces; the
    system and interpreters read-only; the box folder the only writable place (it is also /tmp
    and HOME); no capabilities; a cleared environment; everything dies with the phase."""

    def __init__(self, mode, box, read_only, etc_dir):
        self.mode, self.box, self.read_only, self.etc_dir = mode, box, sorted(set(read_only)), etc_dir

    def env(self, extra=None, path_dirs=()):
        env = dict(_BASE_ENV, PATH=os.pathsep.join(list(path_dirs) + ["/usr/local/bin", "/usr/bin", "/bin"]),
                   HOME=os.path.join(self.box, "home"), TMPDIR="/tmp", LANG="C.UTF-8", USER="farm",
                   UV_PYTHON_DOWNLOADS="never")
        # The worker's own trust settings for TLS (a company proxy's CA, say) hold inside too.
        env.update({k: os.environ[k] for k in TLS_TRUST_VARIABLES if os.environ.get(k)})
        if extra:
            env.update(extra)
        return env

    def wrap(self, cmd, env, cwd, proxy_socket=None, forwarder_python=None):
        """The argument list that runs `cmd` in the sandbox (with the index proxy, when given)."""
        if proxy_socket:
            cmd = [forwarder_python, "-I", "-S", "-c", _FORWARDER, PROXY_SOCKET, str(PROXY_PORT)] + list(cmd)
            proxy = "http://127.0.0.1:%d" % PROXY_PORT
            env = dict(env, HTTP_PROXY=proxy, HTTPS_PROXY=proxy, ALL_PROXY=proxy, http_proxy=proxy,
                       https_proxy=proxy, NO_PROXY="", no_proxy="")
        if self.mode == "none":
            return [str(c) for c in cmd], env
        args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--hostname", "sandbox", "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"]
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += ["--ro-bind", d, d]
        for f in SYSTEM_FILES + tuple(os.environ[k] for k in TLS_TRUST_VARIABLES if os.environ.get(k)):
            args += ["--ro-bind-try", f, f]
        for name in ("passwd", "group", "hosts"):
            args += ["--ro-bind", os.path.join(self.etc_dir, name), "/etc/" + name]
        # /tmp first: the binds after it may lie below /tmp (a worker whose folder is there).
        args += ["--bind", os.path.join(self.box, "tmp"), "/tmp"]
        for p in self.read_only:
            args += ["--ro-bind", p, p]
        args += ["--bind", self.box, self.box]
        if proxy_socket:
            args += ["--ro-bind", proxy_socket, PROXY_SOCKET]
        # The sandbox's own root (where the mount points live) is read-only too.
        args += ["--remount-ro", "/", "--chdir", cwd, "--clearenv"]
        for k, v in sorted(env.items()):
            args += ["--setenv", k, v]
        return args + ["--"] + [str(c) for c in cmd], {"PATH": "/usr/bin:/bin"}


def write_sandbox_etc(etc_dir, home):
    """The sandbox's /etc/passwd, group and hosts: one user (the worker's uid, named farm)."""
    os.makedirs(etc_dir, exist_ok=True)
    uid, gid = (os.getuid(), os.getgid()) if hasattr(os, "getuid") else (0, 0)
    files = {"passwd": "farm:x:%d:%d:farm:%s:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
                       % (uid, gid, home),
             "group": "farm:x:%d:\nnogroup:x:65534:\n" % gid,
             "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n"}
    for name, text in files.items():
        with open(os.path.join(etc_dir, name), "w") as fh:
            fh.write(text)


class PhaseLog:
    """Accumulates a phase's output: the full text goes to WORKDIR/<phase>.log and stdout."""

    def __init__(self, path, echo=True):
        self.path = path
        self.fh = open(path, "w", encoding="utf-8")
        self.echo = echo

    def write(self, text):
        self.fh.write(text)
        if self.echo:
            sys.stdout.write(text)

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


# --------------------------------------------------------------------------
# Names, versions and specifiers (PEP 503 / 440 subset, enough for Requires-Python).
# --------------------------------------------------------------------------

def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(text):
    m = VERSION_RE.match(text)
    if not m:
        return None
    release = tuple(int(x) for x in m.group("release").split("."))
    trimmed = release
    while len(trimmed) > 1 and trimmed[-1] == 0:
        trimmed = trimmed[:-1]
    pre_l = (m.group("pre_l") or "").lower()
    post = m.group("post_n1") or m.group("post_n2") or ("0" if m.group("post") else None)
    dev = m.group("dev_n") or ("0" if m.group("dev") else None)
    if not pre_l and post is None and dev is not None:
        pre = (-10, 0)
    elif not pre_l:
        pre = (10, 0)
    else:
        rank = {"a": 0, "alpha": 0, "b": 1, "beta": 1}.get(pre_l, 2)
        pre = (rank, int(m.group("pre_n") or 0))
    return (int(m.group("epoch") or 0), trimmed, pre, -1 if post is None else int(post),
            float("inf") if dev is None else int(dev), m.group("local") or "")


def is_prerelease(text):
    m = VERSION_RE.match(text)
    return bool(m and (m.group("pre") or m.group("dev")))


def _release(text):
    m = VERSION_RE.match(text)
    return tuple(int(x) for x in m.group("release").split(".")) if m else None


def _pad(a, n):
    return tuple(a) + (0,) * (n - len(a))


def specifier_allows(spec, version):
    """Does a PEP 440 specifier set (e.g. '>=3.8,!=3.9.*') admit `version` ('3.12.1')?

    An unparseable specifier admits everything (the installer will decide).
    """
    vkey = version_key(version)
    vrel = _release(version)
    for clause in (c.strip() for c in (spec or "").split(",")):
        if not clause:
            continue
        m = re.match(r"^(~=|===|==|!=|<=|>=|<|>)\s*(.+)$", clause)
        if not m:
            return True
        op, target = m.group(1), m.group(2).strip()
        if op == "===":
            if target != version:
                return False
            continue
        if op in ("==", "!=") and target.endswith(".*"):
            trel = _release(target[:-2])
            if trel is None:
                return True
            match = _pad(vrel, len(trel))[:len(trel)] == trel
            if match != (op == "=="):
                return False
            continue
        tkey = version_key(target)
        if tkey is None:
            return True
        if op == "~=":
            trel = _release(target)
            if len(trel) < 2:
                return True
            if not (vkey >= tkey and _pad(vrel, len(trel))[:len(trel) - 1] == trel[:-1]):
                return False
            continue
        n = max(len(vrel), len(_release(target)))
        a = (vkey[0], _pad(vkey[1], n)) + vkey[2:5]
        b = (tkey[0], _pad(tkey[1], n)) + tkey[2:5]
        ok = {"==": a == b, "!=": a != b, "<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b}[op]
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------
# Interpreters.
# --------------------------------------------------------------------------

_PROBE = r"""
import json, os, platform, struct, sys, sysconfig
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except Exception:
    libc = ""
impl = getattr(sys, "implementation", None)
print(json.dumps({
    "implementation": impl.name if impl else platform.python_implementation().lower(),
    "version_info": list(sys.version_info[:3]),
    "full_version": platform.python_version(),
    "executable": sys.executable,
    "prefix": os.path.realpath(getattr(sys, "base_prefix", sys.prefix)),
    "soabi": sysconfig.get_config_var("SOABI") or "",
    "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "debug": hasattr(sys, "gettotalrefcount"),
    "platform": sysconfig.get_platform(),
    "bits": struct.calcsize("P") * 8,
    "libc": libc,
    "mac_ver": platform.mac_ver()[0],
    "system": platform.system(),
}))
"""


def probe_interpreter(path, timeout=60):
    try:
        out = subprocess.run([path, "-c", _PROBE], stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=timeout, env=child_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError("cannot run interpreter %s: %s" % (path, exc))
    if out.returncode != 0:
        raise UsageError("cannot run interpreter %s: %s" % (
            path, (out.stderr.decode("utf-8", "replace").strip().splitlines() or ["exit %d" % out.returncode])[-1]))
    return json.loads(out.stdout.decode("utf-8").strip().splitlines()[-1])


def _support_note(version_tuple):
    if tuple(version_tuple[:2]) < MIN_SUPPORTED:
        return ("Python %d.%d is an unsupported slot: uv 0.13 cannot make environments for it "
                "(it needs the -I flag, Python 3.6+)" % tuple(version_tuple[:2]))
    return ""


def _entry(full_version, path, source):
    parts = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.?(\d*)", full_version).groups() if x)
    note = _support_note(parts)
    return {"version": "%d.%d" % parts[:2], "full_version": full_version, "path": path,
            "supported": not note, "note": note, "source": source}


def find_interpreters(environ=None, system=None):
    """Interpreters on this machine, one per X.Y: pyenv's, then uv-managed, then PATH.

    Returns [{"version": "3.12", "full_version": "3.12.1", "path": ..., "supported": bool,
    "note": why not supported, "source": "pyenv"|"uv"|"path"}] sorted by version.
    """
    environ = os.environ if environ is None else environ
    system = system or platform.system()
    home = environ.get("HOME") or os.path.expanduser("~")
    found = {}

    def add(entry):
        key = entry["version"]
        old = found.get(key)
        if old is None or (old["source"] == entry["source"]
                           and version_key(entry["full_version"]) > version_key(old["full_version"])):
            found[key] = entry

    pyenv_root = environ.get("PYENV_ROOT") or os.path.join(home, ".pyenv")
    versions = os.path.join(pyenv_root, "versions")
    for name in _listdir(versions):
        if re.match(r"^\d+\.\d+\.\d+$", name):
            exe = prefix_interpreter(os.path.join(versions, name), system)
            if os.path.isfile(exe) and os.access(exe, os.X_OK):
                add(_entry(name, exe, "pyenv"))
    uv_dir = environ.get("UV_PYTHON_INSTALL_DIR") or (
        os.path.join(environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "uv", "python")
        if system != "Windows" else os.path.join(environ.get("APPDATA", home), "uv", "python"))
    for name in _listdir(uv_dir):
        m = re.match(r"^cpython-(\d+\.\d+\.\d+)-", name)
        if m and "freethreaded" not in name:
            exe = prefix_interpreter(os.path.join(uv_dir, name), system)
            if os.path.isfile(exe):
                add(_entry(m.group(1), exe, "uv"))
    seen_dirs = set()
    for d in environ.get("PATH", "").split(os.pathsep):
        if not d or "shims" in d.split(os.sep) or d in seen_dirs:
            continue
        seen_dirs.add(d)
        for name in sorted(_listdir(d)):
            m = re.match(r"^python(\d)\.(\d+)(\.exe)?$", name)
            if not m or "%s.%s" % m.group(1, 2) in found:
                continue
            exe = os.path.join(d, name)
            try:
                info = probe_interpreter(exe, timeout=20)
            except UsageError:
                continue
            add(_entry(info["full_version"], exe, "path"))
    return [found[k] for k in sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))]


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def resolve_python(requested):
    """`requested` is 'X.Y' or a path. Returns (path, probe info)."""
    if re.match(r"^\d+\.\d+$", requested):
        interpreters = find_interpreters()
        match = [i for i in interpreters if i["version"] == requested]
        if not match:
            available = ", ".join(i["version"] for i in interpreters if i["supported"]) or "none"
            raise UsageError("no Python %s on this machine; available: %s" % (requested, available))
        if not match[0]["supported"]:
            raise UsageError(match[0]["note"])
        path = match[0]["path"]
    elif os.sep in requested or (os.altsep and os.altsep in requested) or os.path.exists(requested):
        path = os.path.abspath(requested)
        if not os.path.exists(path):
            raise UsageError("no interpreter at %s" % requested)
    else:
        raise UsageError("--python wants X.Y (e.g. 3.12) or an interpreter path, not %r" % requested)
    info = probe_interpreter(path)
    note = _support_note(info["version_info"])
    if note:
        raise UsageError(note)
    return path, info


# --------------------------------------------------------------------------
# Wheel tag compatibility (a stdlib subset of packaging.tags, CPython first).
# --------------------------------------------------------------------------

def platform_tags(info):
    plat = info["platform"].replace("-", "_").replace(".", "_").replace(" ", "_")
    system = info.get("system")
    if plat.startswith("linux"):
        arch = plat[len("linux_"):]
        if info["bits"] == 32 and arch == "x86_64":
            arch = "i686"
        elif info["bits"] == 32 and arch == "aarch64":
            arch = "armv7l"
        tags = []
        m = re.match(r"glibc (\d+)\.(\d+)", info.get("libc") or "")
        if m:
            major, minor = int(m.group(1)), int(m.group(2))
            legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
            for mi in range(minor, -1, -1):
                tags.append("manylinux_%d_%d_%s" % (major, mi, arch))
                if (major, mi) in legacy:
                    tags.append("%s_%s" % (legacy[(major, mi)], arch))
        else:  # musl or unknown libc: musllinux up to 1.2 is the common case
            tags += ["musllinux_1_%d_%s" % (mi, arch) for mi in (2, 1)]
        return tags + ["linux_" + arch]
    if plat.startswith("macosx") or system == "Darwin":
        ver = [int(x) for x in (info.get("mac_ver") or "10.16").split(".")[:2]] + [0]
        arch = plat.split("_")[-1]
        archs = [arch, "universal2"] + (["intel", "fat64", "fat32", "universal"] if arch == "x86_64" else [])
        tags = []
        for major in range(ver[0], 10, -1):
            tags += ["macosx_%d_0_%s" % (major, a) for a in archs]
        for minor in range(ver[1] if ver[0] == 10 else 16, 3, -1):
            tags += ["macosx_10_%d_%s" % (minor, a) for a in archs]
        return tags
    return [plat]


def interpreter_tags(info):
    major, minor = info["version_info"][:2]
    impl = info["implementation"]
    if impl == "cpython":
        interp = "cp%d%d" % (major, minor)
        m = re.match(r"cpython-(\d+[a-z]*)", info.get("soabi") or "")
        if m:
            abi = "cp" + m.group(1)
        else:
            abi = interp + ("t" if info.get("gil_disabled") else "") + ("d" if info.get("debug") else "")
    else:
        interp = "pp%d%d" % (major, minor)
        abi = (info.get("soabi") or "").replace("-", "_").rsplit("_", 3)[0] if info.get("soabi") else "none"
    return interp, abi


def wheel_priority(filename, info):
    """None when the wheel cannot be installed on `info`; else a sort key (lower is better)."""
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    pys, abis, plats = parts[-3].split("."), parts[-2].split("."), parts[-1].split(".")
    interp, own_abi = interpreter_tags(info)
    major, minor = info["version_info"][:2]
    plat_list = platform_tags(info)
    generic_py = {"py%d" % major} | {"py%d%d" % (major, m) for m in range(minor, -1, -1)}
    best = None
    for py in pys:
        for abi in abis:
            for plat in plats:
                if plat == "any":
                    prank = len(plat_list)
                elif plat in plat_list:
                    prank = plat_list.index(plat)
                else:
                    continue
                if abi == own_abi and py == interp:
                    arank = 0
                elif (abi == "abi3" and info["implementation"] == "cpython" and not info.get("gil_disabled")
                      and re.match(r"^cp%d(\d+)$" % major, py) and int(py[3:]) <= minor):
                    arank = 1
                elif abi == "none" and (py == interp or py in generic_py):
                    arank = 2
                else:
                    continue
                key = (prank, arank)
                best = key if best is None or key < best else best
    return best


# --------------------------------------------------------------------------
# The index (PEP 503 HTML or PEP 691 JSON).
# --------------------------------------------------------------------------

class _LinkParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []
        self._cur = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._cur = dict(attrs)
            self._cur["_text"] = ""

    def handle_data(self, data):
        if self._cur is not None:
            self._cur["_text"] += data

    def handle_endtag(self, tag):
        if tag == "a" and self._cur is not None:
            self.links.append(self._cur)
            self._cur = None


def _http_get(url, accept=None, timeout=60):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **({"Accept": accept} if accept else {})})
    return urllib.request.urlopen(req, timeout=timeout)


def fetch_project_files(index_url, name):
    """Files of a project: [{filename, url, sha256, requires_python, yanked}]."""
    url = index_url.rstrip("/") + "/" + normalize(name) + "/"
    try:
        with _http_get(url, "application/vnd.pypi.simple.v1+json, text/html;q=0.1") as resp:
            ctype = resp.headers.get("Content-Type", "")
            body = resp.read()
            final_url = resp.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UsageError("no project named %r on %s" % (name, index_url))
        raise InfraError("the index answered HTTP %d for %s" % (exc.code, url))
    except (urllib.error.URLError, OSError) as exc:
        raise InfraError("the index %s is unreachable (%s)" % (index_url, getattr(exc, "reason", exc)))
    files = []
    if "json" in ctype:
        for f in json.loads(body.decode("utf-8"))["files"]:
            files.append({"filename": f["filename"], "url": urllib.parse.urljoin(final_url, f["url"]),
                          "sha256": (f.get("hashes") or {}).get("sha256"),
                          "requires_python": f.get("requires-python"), "yanked": bool(f.get("yanked"))})
    else:
        parser = _LinkParser()
        parser.feed(body.decode("utf-8", "replace"))
        for a in parser.links:
            href = a.get("href") or ""
            full = urllib.parse.urljoin(final_url, href)
            frag = urllib.parse.urlparse(full).fragment
            sha = frag[len("sha256="):] if frag.startswith("sha256=") else None
            files.append({"filename": urllib.parse.unquote(posixpath.basename(urllib.parse.urlparse(full).path)),
                          "url": full.split("#")[0], "sha256": sha,
                          "requires_python": a.get("data-requires-python"),
                          "yanked": "data-yanked" in a})
    for f in files:
        f["version"] = file_version(f["filename"], name)
    return files


def file_version(filename, name):
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return parts[1] if len(parts) in (5, 6) else None
    for ext in SDIST_EXTS:
        if filename.lower().endswith(ext):
            stem = filename[:-len(ext)]
            for i in range(len(stem) - 1, 0, -1):
                if stem[i] == "-" and normalize(stem[:i]) == normalize(name):
                    return stem[i + 1:]
    return None


def file_kind(filename):
    if filename.endswith(".whl"):
        return "wheel"
    if filename.lower().endswith(SDIST_EXTS):
        return "sdist"
    return None


def download(url, dest, sha256=None):
    try:
        with _http_get(url, timeout=120) as resp, open(dest, "wb") as out:
            h = hashlib.sha256()
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise InfraError("could not download %s (%s)" % (url, getattr(exc, "reason", exc)))
    if sha256 and h.hexdigest() != sha256:
        raise InfraError("sha256 mismatch for %s" % url)


# --------------------------------------------------------------------------
# Distribution files and installed metadata.
# --------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def read_file_metadata(path):
    """Name, Version, Requires-Python of a local wheel or sdist."""
    raw = None
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            for n in zf.namelist():
                if n.count("/") == 1 and n.endswith(".dist-info/METADATA"):
                    raw = zf.read(n)
                    break
    elif path.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for n in zf.namelist():
                if n.count("/") == 1 and n.endswith("/PKG-INFO"):
                    raw = zf.read(n)
                    break
    else:
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"):
                    raw = tf.extractfile(m).read()
                    break
    if raw is None:
        raise UsageError("%s has no metadata (not a wheel or sdist?)" % path)
    msg = email.parser.Parser().parsestr(raw.decode("utf-8", "replace"))
    return {"name": msg.get("Name"), "version": msg.get("Version"), "requires_python": msg.get("Requires-Python")}


def installed_dists(site_packages):
    """{normalized name: {name, version, dist_info, record: [paths relative to site-packages], metadata}}"""
    dists = {}
    for entry in _listdir(site_packages):
        if not entry.endswith(".dist-info"):
            continue
        d = os.path.join(site_packages, entry)
        if os.path.islink(d) or os.path.islink(os.path.join(d, "METADATA")) or os.path.islink(os.path.join(d, "RECORD")):
            continue  # written by the package's code: never follow it out of the environment
        try:
            with open(os.path.join(d, "METADATA"), encoding="utf-8", errors="replace") as fh:
                msg = email.parser.Parser().parse(fh, headersonly=False)
        except OSError:
            continue
        record = []
        try:
            with open(os.path.join(d, "RECORD"), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.strip():
                        record.append(_record_path(line))
        except OSError:
            pass
        dists[normalize(msg.get("Name", entry))] = {"name": msg.get("Name"), "version": msg.get("Version"),
                                                    "dist_info": entry, "record": record, "metadata": msg}
    return dists


def requirement_closure(dists, root):
    """The installed distributions `root` needs, directly or not (from Requires-Dist), without
    root itself. Requirements that apply only to an extra are left out."""
    seen, todo = set(), [root]
    while todo:
        d = dists.get(todo.pop())
        if d is None:
            continue
        for req in d["metadata"].get_all("Requires-Dist") or []:
            if re.search(r"""extra\s*==""", req):
                continue
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
            name = normalize(m.group(1)) if m else None
            if name and name in dists and name not in seen and name != root:
                seen.add(name)
                todo.append(name)
    return sorted(seen)


def _record_path(line):
    line = line.rstrip("\n")
    if line.startswith('"'):
        end = line.index('"', 1)
        return line[1:end]
    return line.rsplit(",", 2)[0]


def import_names(record):
    names = set()
    for p in record:
        parts = p.replace("\\", "/").split("/")
        top = parts[0]
        if top in ("..", "") or top.endswith((".dist-info", ".data", ".pth")) or top == "__pycache__":
            continue
        if len(parts) == 1:
            if top.endswith(".py") or re.search(r"\.(so|pyd)$", top):
                names.add(top.split(".")[0])
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", top):
            names.add(top)
    return sorted(names)


# --------------------------------------------------------------------------
# Environment snapshots and the uninstall audit.
# --------------------------------------------------------------------------

def snapshot(prefix):
    """Files (and empty directories, with a trailing '/') under prefix, '/'-separated and relative."""
    out = []
    for root, dirs, files in os.walk(prefix):
        rel = os.path.relpath(root, prefix).replace(os.sep, "/")
        rel = "" if rel == "." else rel + "/"
        for f in files:
            out.append(rel + f)
        if not dirs and not files and rel:
            out.append(rel)
    return sorted(out)


def leftovers(after, before, claimed, removed_record):
    """Paths in `after` explained neither by `before` nor by a RECORD (see the module docstring)."""
    before, claimed, removed = set(before), set(claimed), set(removed_record)
    left = []
    for p in after:
        if p in before or p in claimed or p in INSTALLER_FILES:
            continue
        if p.endswith("/"):
            if p.rstrip("/").rsplit("/", 1)[-1] == "__pycache__" or any(c.startswith(p) for c in claimed):
                continue
        m = re.match(r"^(.*/)?__pycache__/([^/]+?)\.[^/.]+(\.opt-\d)?\.pyc$", p)
        if m:
            src = (m.group(1) or "") + m.group(2) + ".py"
            if src in before or src in claimed or src in removed:
                continue
        left.append(p)
    return left


# --------------------------------------------------------------------------
# Test discovery.
# --------------------------------------------------------------------------

def load_toml(path):
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return {}
    for mod in ("tomllib", "tomli"):
        try:
            return __import__(mod).loads(data.decode("utf-8", "replace"))
        except ImportError:
            continue
        except Exception:
            return {}
    return _mini_toml(data.decode("utf-8", "replace"))


def _mini_toml(text):
    """Tables, string values and arrays of strings: enough for testpaths and dependency-groups."""
    root, cur = {}, None
    cur = root
    lines = iter(text.splitlines())
    for line in lines:
        s = line.split("#", 1)[0].strip() if '"' not in line and "'" not in line else line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.match(r"^\[([^\[\]]+)\]$", s)
        if m:
            cur = root
            for key in (k.strip().strip('"') for k in m.group(1).split(".")):
                cur = cur.setdefault(key, {})
            continue
        m = re.match(r"^([A-Za-z0-9_\-\"'.]+)\s*=\s*(.*)$", s)
        if not m:
            continue
        key, val = m.group(1).strip("\"'"), m.group(2).strip()
        if val.startswith("["):
            buf = val
            while buf.count("[") > buf.count("]"):
                buf += " " + next(lines, "]")
            cur[key] = re.findall(r"\"([^\"]*)\"|'([^']*)'", buf) and [
                a or b for a, b in re.findall(r"\"([^\"]*)\"|'([^']*)'", buf)]
        elif val[:1] in "\"'":
            cur[key] = val.strip().strip("\"'")
    return root


def _ini(path):
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    return cp


def _split_paths(value):
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return (value or "").split()


def _existing(src, candidates):
    out = []
    for c in candidates:
        c = c.strip().rstrip("/")
        if not c or c.startswith("-") or "{" in c or os.path.isabs(c) or ".." in c.split("/"):
            continue
        c = c.split("::")[0]
        for hit in sorted(glob.glob(os.path.join(src, c))):
            rel = os.path.relpath(hit, src).replace(os.sep, "/")
            if rel not in out:
                out.append(rel)
    return out


def _pytest_args_from_command(line):
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    for i, t in enumerate(tokens):
        base = t.rsplit("/", 1)[-1]
        if base in ("pytest", "py.test"):
            return tokens[i + 1:]
        if t == "-m" and i + 1 < len(tokens) and tokens[i + 1] == "pytest":
            return tokens[i + 2:]
    return None


def pytest_config_testpaths(src):
    """(config file name or None, testpaths list) following pytest's own config order."""
    p = os.path.join(src, "pytest.ini")
    for name in ("pytest.ini", ".pytest.ini"):
        p = os.path.join(src, name)
        if os.path.isfile(p):
            cp = _ini(p)
            return name, _split_paths(cp.get("pytest", "testpaths", fallback="") if cp else "")
    pp = os.path.join(src, "pyproject.toml")
    if os.path.isfile(pp):
        opts = load_toml(pp).get("tool", {}).get("pytest", {})
        if isinstance(opts, dict) and isinstance(opts.get("ini_options"), dict):
            return "pyproject.toml", _split_paths(opts["ini_options"].get("testpaths"))
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        p = os.path.join(src, name)
        if os.path.isfile(p):
            cp = _ini(p)
            if cp and cp.has_section(section):
                return name, _split_paths(cp.get(section, "testpaths", fallback=""))
    return None, []


def discover_tests(src, names, site_packages):
    """Decide what pytest runs.  Returns {"how", "paths", "pyargs", "config"} or None (no tests)."""
    if src and os.path.isdir(src):
        # 1. declared commands: tox, then nox
        tox = os.path.join(src, "tox.ini")
        if os.path.isfile(tox):
            cp = _ini(tox)
            if cp:
                for section in cp.sections():
                    if section == "testenv" or section.startswith("testenv:"):
                        for line in cp.get(section, "commands", fallback="").splitlines():
                            args = _pytest_args_from_command(line)
                            paths = _existing(src, args or [])
                            if paths:
                                return _plan(src, "tox.ini [%s] commands" % section, paths, names)
        nox = os.path.join(src, "noxfile.py")
        if os.path.isfile(nox):
            with open(nox, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            for m in re.finditer(r"session\.run\(\s*(['\"])(?:pytest|py\.test)\1((?:\s*,\s*(['\"])[^'\"]*\3)*)", text):
                paths = _existing(src, re.findall(r"['\"]([^'\"]*)['\"]", m.group(2)))
                if paths:
                    return _plan(src, "noxfile.py session.run('pytest', ...)", paths, names)
        # 2. pytest configuration
        config, testpaths = pytest_config_testpaths(src)
        paths = _existing(src, testpaths)
        if paths:
            return _plan(src, "testpaths in %s" % config, paths, names)
        # 3. conventional places
        paths = [d for d in TEST_DIRS if os.path.isdir(os.path.join(src, d))]
        paths += sorted(f for f in _listdir(src) if fnmatch.fnmatch(f, "test_*.py") or fnmatch.fnmatch(f, "*_test.py"))
        if paths:
            return _plan(src, "test files in the sdist", paths, names)
    # 4. tests shipped inside the installed package
    for name in names:
        pkg = os.path.join(site_packages, name)
        if not os.path.isdir(pkg):
            continue
        for d in TEST_DIRS:
            if os.path.isfile(os.path.join(pkg, d, "__init__.py")):
                return {"how": "tests inside the installed package", "paths": ["%s.%s" % (name, d)],
                        "pyargs": True, "copy": [], "config": None}
        for root, _dirs, files in os.walk(pkg):
            if any(fnmatch.fnmatch(f, "test_*.py") or fnmatch.fnmatch(f, "*_test.py") for f in files):
                return {"how": "tests inside the installed package", "paths": [name], "pyargs": True,
                        "copy": [], "config": None}
    return None


def _plan(src, how, paths, names):
    """Tests inside an import package of the sdist run from the installed copy via --pyargs."""
    pyargs, copy = [], []
    for p in paths:
        parts = p.split("/")
        if parts[0] == "src":
            parts = parts[1:]
        if parts and parts[0] in names and len(parts) > 1:
            mod = ".".join(x[:-3] if x.endswith(".py") else x for x in parts)
            pyargs.append(mod)
        else:
            copy.append(p)
    config, _ = pytest_config_testpaths(src)
    if pyargs and not copy:
        return {"how": how, "paths": pyargs, "pyargs": True, "copy": [], "config": config}
    return {"how": how, "paths": copy, "pyargs": False, "copy": copy, "config": config}


def copy_tests_out(src, plan, dest):
    """Copy test paths, root conftest.py and the pytest config out of the source tree."""
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    extra = ["conftest.py", plan.get("config") or ""]
    for rel in list(plan["copy"]) + extra:
        if not rel:
            continue
        s, d = os.path.join(src, rel), os.path.join(dest, rel)
        if os.path.isdir(s):
            shutil.copytree(s, d, symlinks=True, dirs_exist_ok=True)
        elif os.path.isfile(s):
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copy2(s, d)


def extract_sdist(path, dest):
    """Extract safely; returns the source root (the single top folder)."""
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    real = os.path.realpath(dest)

    def safe(name):
        target = os.path.realpath(os.path.join(dest, name))
        return target == real or target.startswith(real + os.sep)

    if path.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for n in zf.namelist():
                if not safe(n):
                    raise InfraError("unsafe path in sdist: %s" % n)
            zf.extractall(dest)
    else:
        with tarfile.open(path) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:
                members = [m for m in tf.getmembers()
                           if safe(m.name) and (m.isfile() or m.isdir()) and not m.name.startswith("/")]
                tf.extractall(dest, members=members)
    tops = _listdir(dest)
    return os.path.join(dest, tops[0]) if len(tops) == 1 and os.path.isdir(os.path.join(dest, tops[0])) else dest


_PROBE_PLUGIN = '''
"""Loaded by the farm runner: records where the package under test was imported from."""
import importlib, json, os, sys

def pytest_sessionfinish(session):
    out = {}
    for name in json.loads(os.environ.get("FARM_IMPORT_NAMES", "[]")):
        try:
            mod = sys.modules.get(name) or importlib.import_module(name)
            out[name] = getattr(mod, "__file__", None) or list(getattr(mod, "__path__", []) or [None])[0]
        except Exception as exc:
            out[name] = "!" + repr(exc)
    with open(os.environ["FARM_IMPORT_REPORT"], "w") as fh:
        json.dump(out, fh)
'''


def junit_counts(path):
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for s in suites:
        tests = int(s.get("tests", 0))
        failed, errors, skipped = int(s.get("failures", 0)), int(s.get("errors", 0)), int(s.get("skipped", 0))
        counts["failed"] += failed
        counts["errors"] += errors
        counts["skipped"] += skipped
        counts["passed"] += max(0, tests - failed - errors - skipped)
    return counts


# --------------------------------------------------------------------------
# The runner.
# --------------------------------------------------------------------------

def find_uv(explicit=None):
    for cand in (explicit, os.environ.get("UV"),
                 os.path.join(os.path.dirname(sys.executable), exe_name("uv")), shutil.which("uv")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return None


def parse_spec(spec):
    """('path', abspath) | ('name', name, version-or-None)."""
    if spec.endswith(".whl") or spec.lower().endswith(SDIST_EXTS) or os.sep in spec or os.path.exists(spec):
        if not os.path.isfile(spec):
            raise UsageError("no such distribution file: %s" % spec)
        if not file_kind(spec):
            raise UsageError("%s is neither a wheel nor an sdist" % spec)
        return ("path", os.path.abspath(spec))
    name, sep, version = spec.partition("==")
    name, version = name.strip(), version.strip()
    if not NAME_RE.match(name):
        raise UsageError("malformed SPEC %r: expected name==version, a bare name or a distribution file" % spec)
    if sep and (not version or not VERSION_RE.match(version) or "*" in version):
        raise UsageError("malformed SPEC %r: %r is not a valid version" % (spec, version))
    return ("name", name, version or None)


def outcome_of(phase_outcomes):
    present = [o for o in phase_outcomes.values() if o]
    for o in PRECEDENCE:
        if o in present:
            return o
    return "passed"


class Runner:
    def __init__(self, args):
        self.args = args
        self.workdir = os.path.abspath(args.workdir)
        # Everything the package's code may touch lives in `box`, the sandbox's only writable
        # folder; the runner's own files (report, logs, snapshots, downloads) stay outside it.
        self.box = os.path.join(self.workdir, "box")
        self.report_path = os.path.abspath(args.report or os.path.join(self.workdir, "report.json"))
        self.limits = Limits(args.timeout, args.silence_timeout, args.memory, args.processes, args.disk,
                             args.max_log)
        self.t0 = time.monotonic()
        self.report = None
        self.sandbox = None

    # -- state -------------------------------------------------------------
    def new_report(self):
        a = self.args
        return {"schema": SCHEMA, "spec": a.spec, "package": None, "version": None,
                "python": {"requested": a.python, "path": None, "version": None},
                "index_url": a.index_url, "outcome": None, "reason": None,
                "phases": {p: {"status": "not-run", "seconds": 0.0, "log_excerpt": ""} for p in PHASES},
                "installed_from": None, "dependencies": [], "tests": None, "leftovers": [],
                "reproduce": self.reproduce(), "runner_seconds": 0.0,
                "sandbox": {"mode": None, "limits": self.limits.as_dict(),
                            "network": {"allowed": [], "denied": []}},
                "_state": {"phase_outcomes": {}, "phase_reasons": {}}}

    def reproduce(self):
        a = self.args
        return " ".join(shlex.quote(x) for x in
                        ["python", "runner.py", a.spec, "--python", a.python, "--index-url", a.index_url]
                        + (["--dist", a.dist] if a.dist != "auto" else [])
                        + self.limits.flags() + ["--sandbox", a.sandbox])

    def load(self):
        try:
            with open(self.report_path, encoding="utf-8") as fh:
                self.report = json.load(fh)
        except (OSError, ValueError):
            raise UsageError("no install report at %s: run --phase install first" % self.report_path)

    def save(self):
        r = self.report
        st = r["_state"]
        r["outcome"] = outcome_of(st["phase_outcomes"])
        r["reason"] = self.reason()
        r["runner_seconds"] = round(r.get("runner_seconds", 0.0) + time.monotonic() - self.t0, 3)
        self.t0 = time.monotonic()
        os.makedirs(os.path.dirname(self.report_path), exist_ok=True)
        tmp = self.report_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(r, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, self.report_path)

    def reason(self):
        r, st = self.report, self.report["_state"]
        outcome = outcome_of(st["phase_outcomes"])
        for phase in PHASES:
            if st["phase_outcomes"].get(phase) == outcome and st["phase_reasons"].get(phase):
                if outcome != "passed":
                    return st["phase_reasons"][phase]
        t = r.get("tests") or {}
        done = [p for p in PHASES if r["phases"][p]["status"] == "ok"]
        what = "%s %s on Python %s" % (r["package"], r["version"], r["python"]["version"])
        if "uninstall" in done:
            return "%s installed, passed %d tests and uninstalled cleanly." % (what, t.get("passed", 0))
        if "test" in done:
            return "%s installed and passed %d tests (uninstall not run yet)." % (what, t.get("passed", 0))
        return "%s installed (tests not run yet)." % what

    def set_phase(self, phase, status, outcome, reason, seconds, log):
        r = self.report
        r["phases"][phase] = {"status": status, "seconds": round(seconds, 3),
                              "log_excerpt": log.excerpt() if log else ""}
        r["_state"]["phase_outcomes"][phase] = outcome
        r["_state"]["phase_reasons"][phase] = reason

    def uv(self, *args):
        cmd = [self.report["_state"]["uv"]] + list(args)
        return cmd

    def uv_common(self, cache_dir=None):
        st = self.report["_state"]
        return ["--no-config", "--python", st["env_python"], "--cache-dir", cache_dir or st["box_cache"]]

    # -- running commands --------------------------------------------------
    def trusted(self, cmd, deadline, log):
        """A command of the runner's own (uv making the environment, installing the test tools into
        it before any of the package's code is there): outside the sandbox, with the shared cache."""
        return run_command(cmd, self.workdir, deadline, log=log, limits=self.limits)

    def boxed(self, cmd, cwd, deadline, log, env=None, network=False):
        """A command that runs the package's code: in the sandbox; with `network`, the package index
        (and only it) is reachable through the runner's proxy."""
        st, sb = self.report["_state"], self.sandbox
        proxy = None
        if network and sb.mode == "bwrap":  # without a sandbox there is nothing to keep it in
            # A short private folder: a Unix socket's path must stay under about 100 bytes.
            proxy = IndexProxy(os.path.join(tempfile.mkdtemp(prefix="pypi-farm-"), "proxy.sock"),
                               [tuple(e) for e in st["allowed_endpoints"]])
        try:
            argv, run_env = sb.wrap(cmd, sb.env(env, [os.path.dirname(st["env_python"])]), cwd,
                                    proxy_socket=proxy and proxy.path, forwarder_python=st["forwarder_python"])
            if sb.mode == "none":
                run_env = child_env(run_env)
            rc, out = run_command(argv, cwd, deadline, env=run_env, log=log, limits=self.limits,
                                  watch_dir=self.box, shown=["[%s%s]" % (sb.mode, " +index" if network else "")] + list(cmd))
            if sb.mode == "bwrap" and rc > 128:
                rc = 128 - rc  # bwrap reports a command killed by signal N as 128 + N
            return rc, out
        finally:
            if proxy is not None:
                proxy.close()
                shutil.rmtree(os.path.dirname(proxy.path), ignore_errors=True)
                denied = self.report["sandbox"]["network"]["denied"]
                for endpoint in proxy.denied:
                    log.write("[farm: the sandbox refused a connection to %s: only the index is reachable]\n"
                              % endpoint)
                    if endpoint not in denied:
                        denied.append(endpoint)

    def test_tools(self, deadline, log):
        """The folder holding pytest for this interpreter: made once a day and shared by builds.

        Installing pytest into every environment cost about 0.4 s a build, and its first import
        compiled it again each time; this folder is compiled once and the sandbox only reads it.
        Two builds making it at once each make their own and the first rename wins.
        """
        info = self.py_info
        # Per interpreter, not per index: pytest is the same tool from any index the worker is given
        # (the test suite's indexes, on a new port each, would each make a folder).
        key = hashlib.sha256(("%s\0%s" % (os.path.realpath(self.py_path), info["full_version"])).encode()).hexdigest()[:16]
        root = os.path.join(os.path.dirname(self.cache_dir), "test-tools")
        stamp = int(time.time() // TOOLS_MAX_AGE)
        final = os.path.join(root, "%s-%s-%d" % (info["implementation"], key, stamp))
        if os.path.isfile(os.path.join(final, ".complete")):
            return final
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".new-", dir=root)
        rc, out = self.trusted([self.uv_path, "pip", "install", "--no-config", "--python", os.path.realpath(self.py_path),
                                                            "--cache-dir", self.cache_dir, "--target", tmp,
                                                            "--index-url", self.args.index_url, "pytest"], deadline, log)
        if rc != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InfraError("could not install pytest from %s: %s" % (self.args.index_url, _last_line(out)))
        # Compiled by the interpreter itself (uv's --compile-bytecode cannot drive Python 3.6). A
        # file that does not compile only costs its compilation at import: not an error.
        self.trusted([os.path.realpath(self.py_path), "-m", "compileall", "-q", tmp], deadline, log)
        open(os.path.join(tmp, ".complete"), "w").close()
        try:
            os.rename(tmp, final)
        except OSError:  # another build made it first
            shutil.rmtree(tmp, ignore_errors=True)
        # Yesterday's folders may still serve a running build; older ones go.
        for name in os.listdir(root):
            parts = name.rsplit("-", 1)
            if not name.startswith(".") and len(parts) == 2 and parts[1].isdigit() and int(parts[1]) < stamp - 1:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        return final

    def prepare_sandbox(self, log):
        st = self.report["_state"]
        mode = choose_sandbox(self.args.sandbox)
        for name in ("tmp", "home", "uv-cache"):
            os.makedirs(os.path.join(self.box, name), exist_ok=True)
        write_sandbox_etc(os.path.join(self.workdir, "etc"), os.path.join(self.box, "home"))
        self.report["sandbox"]["mode"] = mode
        self.report["sandbox"]["unsandboxed"] = mode == "none"
        if mode == "none":
            warning = ("WARNING: this build runs WITHOUT a sandbox (--sandbox none): the package's code can "
                       "read and change everything this worker can. Use it only for packages you trust.")
            self.report["sandbox"]["warning"] = warning
            log.write("\n%s\n%s\n%s\n\n" % ("!" * 78, warning, "!" * 78))
        self.sandbox = Sandbox(mode, self.box, st["read_only"], os.path.join(self.workdir, "etc"))

    # -- phases ------------------------------------------------------------
    def run_phase(self, phase):
        if phase != "install":
            self.load()
        st = self.report["_state"]
        if phase != "install" and outcome_of(st["phase_outcomes"]) in TERMINAL_AFTER_INSTALL:
            self.report["phases"][phase] = {"status": "skipped", "seconds": 0.0, "log_excerpt": ""}
            self.save()
            return
        start = time.monotonic()
        deadline = start + self.args.timeout
        echo = not self.args.quiet and phase in self.args.echo
        if not echo and not self.args.quiet:
            # Something on stdout, so whoever watches knows where the time goes (and where the log is).
            sys.stdout.write("[%s] running; its output goes to %s\n" % (phase, os.path.join(self.workdir, phase + ".log")))
            sys.stdout.flush()
        log = PhaseLog(os.path.join(self.workdir, phase + ".log"), echo=echo)
        try:
            if phase != "install":
                self.prepare_sandbox(log)
            status, outcome, reason = getattr(self, "phase_" + phase)(deadline, log)
        except LimitHit as exc:
            if exc.kind == "processes":
                # A fork bomb is the package's own doing, not the machine's.
                status, outcome = "failed", FAILED_OUTCOME[phase]
                reason = _sentence("The %s phase %s" % (phase, exc))
            elif exc.kind == "timeout":
                status, outcome = "error", "infra-error"
                reason = "timeout (the %s phase ran longer than %g s)." % (phase, self.limits.timeout)
            else:
                status, outcome = "error", "infra-error"
                reason = _sentence("%s (in the %s phase)" % (exc, phase))
        except InfraError as exc:
            status, outcome, reason = "error", "infra-error", _sentence(str(exc))
        except OSError as exc:  # disk full, permissions...: the machine's problem
            status, outcome, reason = "error", "infra-error", _sentence("%s phase: %s" % (phase, exc))
        finally:
            log.fh.flush()
        log.write("[%s] %s: %s (%.2fs)\n" % (phase, status, reason or outcome, time.monotonic() - start))
        self.set_phase(phase, status, outcome, reason, time.monotonic() - start, log)
        log.close()
        self.save()

    def phase_install(self, deadline, log):
        a, r, st = self.args, self.report, self.report["_state"]
        st.update({"uv": self.uv_path, "cache_dir": self.cache_dir, "interpreter": self.py_info,
                   "box_cache": os.path.join(self.box, "uv-cache"),
                   "forwarder_python": os.path.realpath(sys.executable),
                   # What the sandbox sees, read-only: the interpreter under test, uv, and the
                   # worker's own Python (for the network forwarder).
                   "read_only": sorted({self.py_info["prefix"], os.path.realpath(self.uv_path), self.uv_path,
                                        os.path.realpath(getattr(sys, "base_prefix", sys.prefix))}
                                       | ({self.spec[1]} if self.spec[0] == "path" else set()))})
        st["allowed_endpoints"] = sorted(allowed_endpoints([a.index_url]))
        self.prepare_sandbox(log)
        r["python"].update(path=self.py_path, version=self.py_info["full_version"])
        kind_spec = self.spec
        pyver = self.py_info["full_version"]
        if kind_spec[0] == "path":
            path = kind_spec[1]
            meta = read_file_metadata(path)
            r["package"], r["version"] = meta["name"], meta["version"]
            kind = file_kind(path)
            chosen = {"filename": os.path.basename(path), "url": "file://" + urllib.request.pathname2url(path),
                      "sha256": sha256_file(path), "requires_python": meta["requires_python"], "kind": kind}
            if meta["requires_python"] and not specifier_allows(meta["requires_python"], pyver):
                return "skipped", "not-applicable", "Requires-Python %r excludes Python %s." % (
                    meta["requires_python"], pyver)
            if kind == "wheel" and wheel_priority(chosen["filename"], self.py_info) is None:
                return "skipped", "not-applicable", "The wheel %s does not fit Python %s on %s." % (
                    chosen["filename"], pyver, self.py_info["platform"])
            st["sdist"] = {"path": path} if kind == "sdist" else None
            target = path
        else:
            _, name, version = kind_spec
            files = fetch_project_files(a.index_url, name)
            versions = sorted({f["version"] for f in files if f["version"] and version_key(f["version"])},
                              key=version_key)
            if version is None:
                live = [v for v in versions if not all(f["yanked"] for f in files if f["version"] == v)]
                finals = [v for v in live if not is_prerelease(v)]
                if not (finals or live):
                    raise UsageError("%s has no releases on %s" % (name, a.index_url))
                version = (finals or live)[-1]
            else:
                match = [v for v in versions if version_key(v) == version_key(version)]
                if not match:
                    raise UsageError("%s has no release %s on %s (latest: %s)" % (
                        name, version, a.index_url, versions[-1] if versions else "none"))
                version = match[0]
            rel = [f for f in files if f["version"] == version]
            st["allowed_endpoints"] = sorted(allowed_endpoints([a.index_url] + [f["url"] for f in files]))
            r["sandbox"]["network"]["allowed"] = ["%s:%d" % e for e in st["allowed_endpoints"]]
            r["package"], r["version"] = name, version
            sdists = [f for f in rel if file_kind(f["filename"]) == "sdist"]
            wheels = sorted(((wheel_priority(f["filename"], self.py_info), f) for f in rel
                             if file_kind(f["filename"]) == "wheel"), key=lambda x: x[0] or (1e9,))
            wheels = [f for p, f in wheels if p is not None]
            excluded = [f for f in wheels + sdists
                        if f["requires_python"] and not specifier_allows(f["requires_python"], pyver)]
            # --dist sdist: the classic "does it still build from source" check, even where a wheel fits.
            candidates = sdists if a.dist == "sdist" else wheels + sdists
            usable = [f for f in candidates if f not in excluded]
            st["sdist"] = dict(sdists[0], kind="sdist") if sdists else None
            if a.dist == "sdist" and not sdists:
                return "skipped", "not-applicable", "%s %s has no sdist to build from." % (r["package"], version)
            if not usable:
                if excluded:
                    return "skipped", "not-applicable", "Requires-Python %r excludes Python %s." % (
                        excluded[0]["requires_python"], pyver)
                return "skipped", "not-applicable", (
                    "No distribution of %s %s fits Python %s on %s (no sdist and no compatible wheel)." % (
                        r["package"], version, pyver, self.py_info["platform"]))
            chosen = dict(usable[0], kind=file_kind(usable[0]["filename"]))
            target = "%s==%s" % (name, version)
        # pytest, shared by the builds on this interpreter, read-only in the sandbox
        st["tools"] = self.test_tools(deadline, log)
        st["read_only"] = sorted(set(st["read_only"]) | {st["tools"]})
        self.sandbox.read_only = st["read_only"]
        # fresh environment
        env_dir = os.path.join(self.box, "env")
        layout = env_layout(env_dir, self.py_info["version_info"], implementation=self.py_info["implementation"])
        st.update(env=env_dir, env_python=layout["python"], site_packages=layout["site_packages"])
        # The real interpreter, not a link to it: the sandbox binds the interpreter's prefix only.
        rc, out = self.trusted([self.uv_path, "venv", "--no-config", "-q", "--python", os.path.realpath(self.py_path),
                                "--cache-dir", self.cache_dir, env_dir], deadline, log)
        if rc != 0:
            raise InfraError("uv venv failed for %s: %s" % (self.py_path, _last_line(out)))
        with open(os.path.join(self.workdir, "snapshot-before.json"), "w") as fh:
            json.dump(snapshot(env_dir), fh)
        # The test runner: a shared folder outside the environment, read-only in the sandbox,
        # found through a .pth file (after site-packages, so the release and its dependencies
        # always win over the tools' copies of packaging, pluggy...). The uninstall phase takes
        # the file out again before it compares the environment with the snapshot.
        with open(os.path.join(layout["site_packages"], TOOLS_PTH), "w") as fh:
            fh.write(st["tools"] + "\n")
        cmd = self.uv("pip", "install") + self.uv_common() + ["--link-mode", "copy", "--index-url", a.index_url]
        if kind_spec[0] == "name":
            cmd += ["--only-binary" if chosen["kind"] == "wheel" else "--no-binary", normalize(kind_spec[1])]
        rc, out = self.boxed(cmd + [target], self.box, deadline, log, network=True)
        r["installed_from"] = {"filename": chosen["filename"], "kind": chosen["kind"], "url": chosen["url"],
                               "sha256": chosen.get("sha256")}
        if rc != 0:
            if _network_trouble(out):
                raise InfraError("the index could not be reached during the install: %s" % _last_line(out))
            return "failed", "install-failed", "Installing %s %s from the %s %s failed: %s" % (
                r["package"], r["version"], chosen["kind"], chosen["filename"], _sentence(_error_line(out)))
        dists = installed_dists(layout["site_packages"])
        me = dists.get(normalize(r["package"]))
        if me is None:
            return "failed", "install-failed", "uv reported success but %s has no metadata in the environment." % (
                r["package"])
        r["package"] = me["name"] or r["package"]
        st["import_names"] = import_names(me["record"])
        st["provides_extras"] = me["metadata"].get_all("Provides-Extra") or []
        r["dependencies"] = sorted(({"name": dists[k]["name"], "version": dists[k]["version"]}
                                    for k in requirement_closure(dists, normalize(r["package"]))),
                                   key=lambda d: normalize(d["name"]))
        return "ok", "passed", "Installed %s %s from %s." % (r["package"], r["version"], chosen["filename"])

    def phase_test(self, deadline, log):
        a, r, st = self.args, self.report, self.report["_state"]
        src = None
        sd = st.get("sdist")
        if sd:
            path = sd.get("path")
            if not path:
                os.makedirs(os.path.join(self.workdir, "dl"), exist_ok=True)
                path = os.path.join(self.workdir, "dl", sd["filename"])
                if not (os.path.isfile(path) and sd.get("sha256") and sha256_file(path) == sd["sha256"]):
                    download(sd["url"], path, sd.get("sha256"))
            src = extract_sdist(path, os.path.join(self.box, "src"))
        plan = discover_tests(src, st.get("import_names", []), st["site_packages"])
        if plan is None:
            log.write("no tests found (sdist: %s)\n" % ("yes" if src else "no"))
            r["tests"] = {"command": [], "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
            return "skipped", "no-tests", "No tests found in %s %s (%s)." % (
                r["package"], r["version"], "sdist or installed package" if src else "no sdist; installed package")
        log.write("tests: %s -> %s\n" % (plan["how"], " ".join(plan["paths"])))
        # test dependencies
        reqs = []
        extras = [e for e in st.get("provides_extras", []) if normalize(e) in TEST_EXTRAS]
        if extras:
            if self.spec[0] == "path":
                reqs.append("%s[%s] @ %s" % (r["package"], ",".join(extras), r["installed_from"]["url"]))
            else:
                reqs.append("%s[%s]==%s" % (r["package"], ",".join(extras), r["version"]))
        groups = []
        if src and os.path.isfile(os.path.join(src, "pyproject.toml")):
            dg = load_toml(os.path.join(src, "pyproject.toml")).get("dependency-groups") or {}
            groups = [g for g in dg if normalize(g) in TEST_EXTRAS]
        for g in groups:
            reqs += ["--group", "%s:%s" % (os.path.join(src, "pyproject.toml"), g)]
        for f in TEST_REQUIREMENT_FILES if src else ():
            if os.path.isfile(os.path.join(src, f)):
                reqs += ["-r", os.path.join(src, f)]
        rc, out = 0, ""
        if reqs:  # pytest itself went in with the environment
            cmd = self.uv("pip", "install") + self.uv_common() + ["--link-mode", "copy", "--index-url", a.index_url]
            rc, out = self.boxed(cmd + reqs, self.box, deadline, log, network=True)
        if rc != 0:
            if _network_trouble(out):
                raise InfraError("the index could not be reached for the test dependencies: %s" % _last_line(out))
            r["tests"] = {"command": [], "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
            return "failed", "tests-failed", "Could not install the test dependencies: %s" % _sentence(
                _error_line(out))
        # run pytest against the installed copy, from a folder outside the source tree
        run_dir = os.path.join(self.box, "run")
        if plan["pyargs"]:
            if os.path.isdir(run_dir):
                shutil.rmtree(run_dir)
            os.makedirs(run_dir)
        else:
            copy_tests_out(src, plan, run_dir)
        plugin_dir = os.path.join(self.box, "plugin")
        os.makedirs(plugin_dir, exist_ok=True)
        with open(os.path.join(plugin_dir, "_farm_probe.py"), "w") as fh:
            fh.write(_PROBE_PLUGIN)
        junit = os.path.join(self.box, "junit.xml")
        imports_file = os.path.join(self.box, "imports.json")
        for f in (junit, imports_file):
            if os.path.exists(f):
                os.remove(f)
        pytest_cmd = [st["env_python"], "-m", "pytest", "-p", "_farm_probe", "-p", "no:cacheprovider",
                      "--junitxml", junit, "-o", "junit_family=xunit2"] + (["--pyargs"] if plan["pyargs"] else [])
        pytest_cmd += plan["paths"]
        env = {"PYTHONPATH": plugin_dir, "FARM_IMPORT_REPORT": imports_file,
               "FARM_IMPORT_NAMES": json.dumps(st.get("import_names", []))}
        rc, out = self.boxed(pytest_cmd, run_dir, deadline, log, env=env)
        counts = junit_counts(junit) or {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
        r["tests"] = dict(command=pytest_cmd, how=plan["how"], returncode=rc, **counts)
        try:
            with open(imports_file) as fh:
                imported = json.load(fh)
        except (OSError, ValueError):
            imported = {}
        r["tests"]["imported_from"] = imported
        site = os.path.realpath(st["site_packages"])
        wrong = {n: p for n, p in imported.items()
                 if p and not p.startswith("!") and not os.path.realpath(p).startswith(site + os.sep)}
        if wrong:
            return "error", "infra-error", "The tests imported %s instead of the installed copy." % (
                ", ".join("%s from %s" % kv for kv in sorted(wrong.items())))
        summary = "%(passed)d passed, %(failed)d failed, %(errors)d errors, %(skipped)d skipped" % counts
        if rc == 0:
            if counts["passed"] + counts["skipped"] == 0:
                return "skipped", "no-tests", "pytest ran but collected no tests."
            return "ok", "passed", "Tests passed: %s." % summary
        if rc == 5:
            return "skipped", "no-tests", "pytest collected no tests (exit status 5)."
        if rc < 0:
            return "failed", "tests-failed", "The test run was killed by signal %d (%s)." % (-rc, summary)
        if rc == 1:
            return "failed", "tests-failed", "Tests failed: %s." % summary
        what = {2: "interrupted or hit collection errors", 3: "hit an internal error",
                4: "was called wrongly (usage error)"}.get(rc, "ended with status %d" % rc)
        return "failed", "tests-failed", "pytest %s (exit status %d; %s)." % (what, rc, summary)

    def phase_uninstall(self, deadline, log):
        r, st = self.report, self.report["_state"]
        site = st["site_packages"]
        env_dir = st["env"]
        # The tests are done: the test tools leave the environment, so that a package the tools
        # also hold (packaging, pluggy...) is not found there after its uninstall.
        tools_pth = os.path.join(site, TOOLS_PTH)
        if os.path.lexists(tools_pth):
            os.remove(tools_pth)
        before_dists = installed_dists(site)
        me = before_dists.get(normalize(r["package"]))
        removed_record = [_site_rel(env_dir, site, p) for p in (me["record"] if me else [])]
        rc, out = self.boxed(self.uv("pip", "uninstall") + self.uv_common() + [r["package"]], self.box, deadline, log)
        if rc != 0:
            return "failed", "uninstall-dirty", "Uninstalling %s failed: %s" % (
                r["package"], _sentence(_error_line(out)))
        remaining = installed_dists(site)
        claimed, other_names = set(), set()
        for d in remaining.values():
            claimed.add(_site_rel(env_dir, site, d["dist_info"]) + "/")
            for p in d["record"]:
                claimed.add(_site_rel(env_dir, site, p))
            other_names.update(import_names(d["record"]))
        with open(os.path.join(self.workdir, "snapshot-before.json")) as fh:
            before = json.load(fh)
        after = snapshot(env_dir)
        left = leftovers(after, before, claimed, removed_record)
        names = [n for n in st.get("import_names", []) if n not in other_names]
        still = []
        if names:
            code = ("import importlib.util, json, sys; print(json.dumps([n for n in sys.argv[1:] "
                    "if importlib.util.find_spec(n) is not None]))")
            rc, out = self.boxed([st["env_python"], "-I", "-c", code] + names, self.box, deadline, log)
            try:
                still = json.loads(out.strip().splitlines()[-1]) if rc == 0 else []
            except (ValueError, IndexError):
                still = []
            if rc != 0:
                raise InfraError("the import check could not run: %s" % _last_line(out))
        r["leftovers"] = left
        for p in left:
            log.write("left behind: %s\n" % p)
        if still or left:
            parts = []
            if still:
                parts.append("%s still importable" % ", ".join(still))
            if left:
                parts.append("%d file(s) left behind, e.g. %s" % (len(left), left[0]))
            return "failed", "uninstall-dirty", "Uninstalling %s was not clean: %s." % (
                r["package"], "; ".join(parts))
        return "ok", "passed", "Uninstalled %s cleanly." % r["package"]


def _site_rel(env_dir, site, record_path):
    full = os.path.normpath(os.path.join(site, record_path))
    return os.path.relpath(full, env_dir).replace(os.sep, "/")


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


def _sentence(text):
    text = " ".join(text.split())
    if len(text) > 300:
        text = text[:297] + "..."
    return text if text.endswith((".", "!", "?")) else text + "."


def summary(report):
    r = report
    lines = ["", "%s %s on Python %s: %s" % (r["package"] or r["spec"], r["version"] or "?",
                                             r["python"]["version"] or r["python"]["requested"], r["outcome"])]
    for p in PHASES:
        ph = r["phases"][p]
        extra = ""
        if p == "install" and r.get("installed_from"):
            extra = "%s %s" % (r["installed_from"]["kind"], r["installed_from"]["filename"])
        elif p == "test" and r.get("tests") and ph["status"] not in ("not-run", "skipped") or (
                p == "test" and r.get("tests") and r["tests"].get("command")):
            extra = "%(passed)d passed, %(failed)d failed, %(errors)d errors, %(skipped)d skipped" % r["tests"]
        elif p == "uninstall" and r.get("leftovers"):
            extra = "%d left behind" % len(r["leftovers"])
        lines.append("  %-9s %-8s %6.2fs  %s" % (p, ph["status"], ph["seconds"], extra))
    lines.append("reason: %s" % r["reason"])
    lines.append("reproduce: %s" % r["reproduce"])
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="runner.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", nargs="?", help="name==version, name, or a wheel/sdist path")
    ap.add_argument("--python", help="X.Y or an interpreter path")
    ap.add_argument("--index-url", default=DEFAULT_INDEX)
    ap.add_argument("--phase", choices=("install", "test", "uninstall", "all"), default="all")
    ap.add_argument("--workdir", default="runner-work")
    ap.add_argument("--report")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds of wall time per phase")
    ap.add_argument("--silence-timeout", type=float, default=300, help="seconds a phase may print nothing")
    ap.add_argument("--memory", type=parse_size, default="1536M", help="memory per phase (e.g. 1536M, 1.5G)")
    ap.add_argument("--processes", type=int, default=256, help="processes at once")
    ap.add_argument("--disk", type=parse_size, default="4G", help="disk the build's folder may use")
    ap.add_argument("--max-log", type=parse_size, default="5M", help="output kept per phase; the rest is cut")
    ap.add_argument("--dist", choices=("auto", "sdist"), default="auto",
                    help="auto: a compatible wheel if there is one, else the sdist; sdist: build from the sdist")
    ap.add_argument("--sandbox", choices=("auto", "bwrap", "none"), default="auto",
                    help="auto: bubblewrap on Linux (refuses to run without it), none elsewhere")
    ap.add_argument("--uv", help="path of the uv binary")
    ap.add_argument("--cache-dir", help="uv cache (default: a per-user cache folder)")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    ap.add_argument("--echo", type=_phase_list, default=PHASES, metavar="PHASE[,PHASE]",
                    help="the phases whose output is printed as well as kept in WORKDIR/<phase>.log "
                         "(default: all of them)")
    ap.add_argument("--list-pythons", action="store_true")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return exc.code
    if args.list_pythons:
        print(json.dumps(find_interpreters(), indent=2))
        return 0
    try:
        if not args.spec or not args.python:
            raise UsageError("SPEC and --python are required (or --list-pythons)")
        runner = Runner(args)
        runner.spec = parse_spec(args.spec)
        if args.phase in ("install", "all"):
            runner.py_path, runner.py_info = resolve_python(args.python)
            runner.uv_path = find_uv(args.uv)
            runner.cache_dir = os.path.abspath(args.cache_dir or os.path.join(user_cache_dir(), "uv"))
            _fresh_workdir(runner.workdir)
            runner.report = runner.new_report()
            if not runner.uv_path:
                runner.report["_state"]["phase_outcomes"]["install"] = "infra-error"
                runner.report["_state"]["phase_reasons"]["install"] = (
                    "uv was not found (--uv, $UV, next to the worker's Python, or PATH).")
                runner.report["phases"]["install"]["status"] = "error"
                runner.save()
            else:
                runner.run_phase("install")
        phases = PHASES if args.phase == "all" else (args.phase,)
        for p in phases:
            if p != "install":
                runner.run_phase(p)
    except UsageError as exc:
        sys.stderr.write("runner.py: error: %s\n" % exc)
        return 2
    sys.stdout.write(summary(runner.report))
    return EXIT_CODES[runner.report["outcome"]]


def _phase_list(text):
    phases = tuple(p for p in text.split(",") if p)
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise argparse.ArgumentTypeError("unknown phase %s: the phases are %s" % (", ".join(unknown), ", ".join(PHASES)))
    return phases


def _fresh_workdir(workdir):
    os.makedirs(workdir, exist_ok=True)
    for name in ("box", "etc", "dl", "report.json",
                 "snapshot-before.json", "install.log", "test.log", "uninstall.log"):
        p = os.path.join(workdir, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.remove(p)


if __name__ == "__main__":
    sys.exit(main())
