"""The one function that starts processes: an argument list (never a shell), held to the phase's
limits, its output streamed to the phase's log and cut at the log limit."""

import os
import platform
import queue
import shlex
import signal
import subprocess
import threading
import time

from farm_runner.host import limits as limits_
from farm_runner.host.limits import Cgroup, CgroupUnavailable, InfraError, LimitHit, format_size
from farm_runner.host.platforms import kill_group, popen_group_kwargs
from farm_runner.untrusted import disk_usage

TAIL_BYTES = 256 * 1024  # what callers get back of a command's output, for error messages
DISK_CHECK_SECONDS = 1.0
MAX_WATCHED_ENTRIES = 500000  # files a build's folders may hold; the walk stops there

# Installer and interpreter settings of the worker change results; trusted commands run without them.
_SCRUB_PREFIXES = ("PIP_", "UV_", "VIRTUAL_ENV", "CONDA_", "PYTHON")
_KEEP = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8")
BASE_ENV = {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_PROGRESS": "1",
            "PYTHONIOENCODING": "utf-8"}


def child_env(extra=None):
    """The worker's environment minus installer/interpreter settings that would change results.
    For the runner's own commands (uv making an environment); the sandbox starts from an empty one."""
    env = {k: v for k, v in os.environ.items() if k in _KEEP or not k.upper().startswith(_SCRUB_PREFIXES)}
    env.update(BASE_ENV)
    if extra:
        env.update(extra)
    return env


class AnswerPipe:
    """The channel of the runner's own code in the sandbox back to the supervisor: a pipe whose
    write end only that process holds (passed to it alone, closed before it starts anything of the
    package's), read while the command runs, at most `limit` bytes."""

    def __init__(self, limit):
        self.limit = limit
        self._read_end, self.fd = os.pipe()
        self.data, self.too_big = b"", False
        self._thread = threading.Thread(target=self._read, daemon=True)

    def started(self):
        os.close(self.fd)  # the command has its copy
        self._thread.start()

    def _read(self):
        chunks, size = [], 0
        while True:
            data = os.read(self._read_end, 65536)
            if not data:
                break
            size += len(data)
            if size <= self.limit:
                chunks.append(data)
            else:
                self.too_big = True
        os.close(self._read_end)
        self.data = b"" if self.too_big else b"".join(chunks)

    def finish(self):
        self._thread.join(5)
        return self.data


def run_command(cmd, deadline, limits, cwd, env=None, log=None, watch_dirs=(), shown=None, cgroups=True,
                answer=None, stop=None):
    """Run `cmd` within `limits`; returns (returncode, the output's last 256 KB as text).

    Output (stdout and stderr together) streams to `log`, cut after limits.max_log bytes. The
    command and everything it started are killed when the deadline passes, when it is silent too
    long, when it uses too much memory, when `watch_dirs` grow past the disk limit, or when it hits
    the process limit: LimitHit says which. `shown` is what the log says was run.
    `cgroups`: False where this host has none (the report says so); the rlimits still apply.
    `answer`: an AnswerPipe whose write end the command gets (as the same descriptor number).
    `stop`: a callable giving a LimitHit to stop the command with (or None), asked with the limits.
    """
    if log is not None:
        log.write("$ " + " ".join(shlex.quote(str(c)) for c in (shown or cmd)) + "\n")
    cgroup = None
    if cgroups and platform.system() == "Linux":
        try:
            cgroup = Cgroup.create(limits)
        except CgroupUnavailable as exc:
            raise InfraError("the command's limits could not be set up: %s" % exc, kind="sandbox")
    kwargs = popen_group_kwargs()
    if platform.system() == "Linux":
        kwargs["preexec_fn"] = limits_.child_setup(limits, cgroup)
    try:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env if env is not None else child_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                pass_fds=(answer.fd,) if answer else (), **kwargs)
    except OSError as exc:
        if cgroup:
            cgroup.remove()
        raise InfraError("could not start %s: %s" % (cmd[0], exc))
    if answer is not None:
        answer.started()
    chunks = queue.Queue()

    def read():
        while True:
            data = proc.stdout.read1(65536)
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
            if stop is not None and stop() is not None:
                hit = stop()
            elif cgroup is not None and cgroup.processes_hit():
                hit = LimitHit("processes", "the command hit the limit of %d processes (a fork bomb?)"
                               % limits.processes)
            elif now > deadline:
                hit = LimitHit("timeout", "timeout")
            elif now - last_output > limits.silence:
                hit = LimitHit("silence", "timeout: no output for %g s" % limits.silence)
            elif watch_dirs and now >= next_disk_check:
                next_disk_check = now + DISK_CHECK_SECONDS
                used, too_many = disk_usage(watch_dirs, MAX_WATCHED_ENTRIES)
                if too_many:
                    hit = LimitHit("disk", "disk: the build's folders hold more than %d files" % MAX_WATCHED_ENTRIES)
                elif used > limits.disk:
                    hit = LimitHit("disk", "disk: the build's folders grew past %s" % format_size(limits.disk))
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
