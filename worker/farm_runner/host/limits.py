"""What one phase may use, and the means that hold a command to it: a memory + pids cgroup (v1 or
v2) per command, rlimits set in the child before it starts, and the runner's own clocks.

A limit is either applied, and read back from the kernel to prove it, or reported missing: the
report never states a limit that nothing enforces.
"""

import argparse
import os
import platform
import re
import signal
import time

from farm_runner import contract

# Free disk below which a worker refuses builds. A fixed amount, not a share of the disk: what must
# stay free is what the worker itself needs to keep going (its logs, its database, the master's
# transfers, the system), whatever the disk's size; a build's own growth is held by its disk limit.
MIN_FREE_DISK = 2 << 30
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.I)
PR_SET_PDEATHSIG = 1


class InfraError(Exception):
    """Not the package's fault. `kind` is one of contract.INFRA_REASONS."""

    def __init__(self, message, kind="runner-fault"):
        Exception.__init__(self, message)
        self.kind = kind


class LimitHit(InfraError):
    """A command was stopped at a limit. `limit`: timeout, silence, oom, disk or processes."""

    def __init__(self, limit, message):
        InfraError.__init__(self, message, kind={"silence": "timeout"}.get(limit, limit))
        self.limit = limit


def parse_size(text):
    """'1536M', '1.5G', '5242880' -> bytes."""
    m = SIZE_RE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError("%r is not a size; write it like 1536M or 1.5G" % (text,))
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def format_size(n):
    for unit in ("G", "M", "K"):
        scale = 1024 ** " KMGT".index(unit)
        if n >= scale and n % scale == 0:
            return "%d%s" % (n // scale, unit)
    return str(n)


_D = contract.DEFAULT_LIMITS


class Limits:
    """What one phase may use (contract.DEFAULT_LIMITS are the defaults)."""

    def __init__(self, timeout=_D["timeout"], silence=_D["silence_timeout"], memory=_D["memory_mb"] << 20,
                 processes=_D["processes"], disk=_D["disk_mb"] << 20, max_log=_D["max_log_mb"] << 20):
        self.timeout, self.silence, self.memory = timeout, silence, memory
        self.processes, self.disk, self.max_log = processes, disk, max_log

    def flags(self):
        return ["--timeout", "%g" % self.timeout, "--silence-timeout", "%g" % self.silence,
                "--memory", format_size(self.memory), "--processes", str(self.processes),
                "--disk", format_size(self.disk), "--max-log", format_size(self.max_log)]

    def as_dict(self):
        return {"timeout_s": self.timeout, "silence_timeout_s": self.silence, "memory_bytes": self.memory,
                "processes": self.processes, "disk_bytes": self.disk, "max_log_bytes": self.max_log}


class Cgroup:
    """A memory + pids cgroup for one command. `create` makes it and proves each limit by reading
    it back; it raises CgroupUnavailable saying why when it cannot."""

    ROOT = "/sys/fs/cgroup"

    def __init__(self, dirs, version):
        self.dirs, self.version = dirs, version  # controller -> folder

    @classmethod
    def create(cls, limits, root=None, own_cgroups=None):
        root = root or cls.ROOT
        own = own_cgroups if own_cgroups is not None else _own_cgroups()
        name = "pypi-farm-%d-%d" % (os.getpid(), int(time.monotonic() * 1e6))
        if os.path.isfile(os.path.join(root, "memory", "cgroup.procs")) and os.path.isdir(os.path.join(root, "pids")):
            dirs = {c: os.path.join(root, c, own.get(c, "/").lstrip("/"), name) for c in ("memory", "pids")}
            group = cls(dirs, 1)
            group._make()
            group._set("memory", "memory.limit_in_bytes", limits.memory)
            group._set("pids", "pids.max", limits.processes)
            return group
        if os.path.isfile(os.path.join(root, "cgroup.controllers")):
            parent = _v2_parent(root, own.get("", "/"))
            d = os.path.join(parent, name)
            group = cls({"memory": d, "pids": d}, 2)
            group._make()
            group._set("memory", "memory.max", limits.memory)
            group._set("memory", "memory.swap.max", 0, required=False)
            group._set("pids", "pids.max", limits.processes)
            return group
        raise CgroupUnavailable("this host has neither cgroup v1 memory and pids hierarchies nor cgroup v2 at %s"
                                % root)

    def _make(self):
        for parent in set(os.path.dirname(d) for d in self.dirs.values()):
            _sweep(parent)
        made = []
        try:
            for d in sorted(set(self.dirs.values())):
                os.mkdir(d)
                made.append(d)
        except OSError as exc:
            for d in made:
                _rmdir(d)
            raise CgroupUnavailable("cannot make a cgroup at %s: %s" % (d, exc.strerror or exc))

    def _set(self, controller, name, value, required=True):
        path = os.path.join(self.dirs[controller], name)
        try:
            fd = os.open(path, os.O_WRONLY)  # never O_CREAT: a missing file means no such controller
            try:
                os.write(fd, str(value).encode())
            finally:
                os.close(fd)
            with open(path) as fh:
                ok = fh.read().strip() == str(value)
        except OSError as exc:
            ok = False
            why = exc.strerror or str(exc)
        else:
            why = "the kernel kept another value"
        if not ok and required:
            self.remove()
            raise CgroupUnavailable("cannot set %s to %s: %s" % (path, value, why))

    def _read(self, controller, name):
        try:
            with open(os.path.join(self.dirs[controller], name)) as fh:
                return fh.read()
        except OSError:
            return ""

    def enter(self):
        """In the child, before exec: join the cgroup (the sandbox and all it starts inherit it)."""
        for d in sorted(set(self.dirs.values())):
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
                pids = self._read_procs(d)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (OSError, ValueError):
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
            _rmdir(d)


class CgroupUnavailable(Exception):
    pass


def _own_cgroups():
    own = {}
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    own[c] = path
    except (OSError, ValueError):
        pass
    return own


def _v2_parent(root, own_path):
    """A cgroup v2 folder whose children get the memory and pids controllers.

    Our own cgroup, where they are enabled already or can be; else the root (a worker run by root
    outside a delegated unit). Cgroup v2 lets a group enable controllers for its children only while
    it holds no processes itself, the root excepted."""
    candidates = [os.path.join(root, own_path.lstrip("/"))]
    if os.path.normpath(candidates[0]) != os.path.normpath(root):
        candidates.append(root)
    problems = []
    for parent in candidates:
        control = os.path.join(parent, "cgroup.subtree_control")
        try:
            with open(control) as fh:
                enabled = fh.read().split()
            if not {"memory", "pids"} <= set(enabled):
                with open(control, "w") as fh:
                    fh.write("+memory +pids")
                with open(control) as fh:
                    enabled = fh.read().split()
            if {"memory", "pids"} <= set(enabled):
                return parent
            problems.append("%s did not enable memory and pids" % control)
        except OSError as exc:
            problems.append("%s: %s" % (control, exc.strerror or exc))
    raise CgroupUnavailable("cannot enable the memory and pids controllers (%s)" % "; ".join(problems))


def _sweep(parent):
    """Remove the groups runners that are gone left behind (a runner killed outright cannot remove
    its own): a long-running worker must not gather one per killed build. A group that still holds
    processes is not removed (the kernel refuses), nor is one whose runner is alive."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith("pypi-farm-")]
    except OSError:
        return
    for name in names:
        try:
            os.kill(int(name.split("-")[2]), 0)
        except ProcessLookupError:
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                pass
        except (ValueError, IndexError, OSError):
            pass


def _rmdir(d):
    for _ in range(50):
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


_SUPPORT = {}


def enforcement(limits):
    """How this host holds a command to `limits`: {limit: means} and {limit: why it cannot}.

    Found once per runner by making (and removing) a trial cgroup."""
    key = (limits.memory, limits.processes)
    if key not in _SUPPORT:
        applied = {"timeout": "runner clock", "silence_timeout": "runner clock", "max_log": "runner",
                   "disk": "runner watch + RLIMIT_FSIZE"}
        missing = {}
        if platform.system() != "Linux":
            missing["memory"] = missing["processes"] = "cgroups exist only on Linux"
        else:
            try:
                group = Cgroup.create(limits)
            except CgroupUnavailable as exc:
                applied["memory"] = "RLIMIT_AS"
                missing["processes"] = str(exc)
            else:
                how = "cgroup v%d" % group.version
                applied["memory"] = applied["processes"] = how
                group.remove()
        _SUPPORT[key] = (applied, missing)
    return _SUPPORT[key]


def child_setup(limits, cgroup):
    """A preexec_fn: die with the runner, join the cgroup, set rlimits (all before exec).
    libc is loaded here, in the parent, so the child only makes the calls."""
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
