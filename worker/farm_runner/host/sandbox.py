"""The sandbox every command of the package's (and every command that reads its trees) runs in.

bubblewrap, per command: its own PID, IPC, UTS, network and mount namespaces; no capabilities; a
cleared environment; an ordinary user (uid 1000 where the worker is root); everything dies with the
command. What the sandbox sees:

    /usr, /bin, /lib...        the system, read-only
    interpreters, uv, tools    read-only, at their own paths
    BOX (its real path)        read-write: the environment, the unpacked sdist, the staged tests,
                               HOME and the uv cache. The only folder that outlives a command.
    /tmp                       a fresh tmpfs for each command (nothing planted there survives)
    /var/tmp (and TMPDIR)      a fresh folder of the box's for each command, on disk: a suite's
                               temporary files count against the build's disk, not its memory
                               (a tmpfs's pages are charged to the memory cgroup: 700 MB of them
                               ended a build as "oom" at 512M where the same files in the box did not)
    /run/farm/runner           the runner itself, read-only (its inside/ code runs from here)
    /run/farm/out              read-write, for the test run: a folder the runner made for it
                               alone, where pytest writes its JUnit XML (the runner's own tasks
                               answer through a pipe instead: host/commands.py AnswerPipe)
    /run/farm/proxy.sock       during installs: the index proxy (host/proxy.py)

Every bind source is a path the package cannot rename: the box's parent, the runner's own files
and /tmp's contents are not in the sandbox at all, so a link planted in one command is never
followed by the host when it sets up the next one.
"""

import functools
import os
import platform
import shutil
import subprocess

from farm_runner.host.commands import BASE_ENV
from farm_runner.host.limits import InfraError
from farm_runner.host.proxy import MAX_CONNECTIONS

LIB = "/run/farm/runner"
OUT = "/run/farm/out"
PROXY_SOCKET = "/run/farm/proxy.sock"
PROXY_PORT = 3128
TMP = "/var/tmp"
SHM_SIZE = 256 << 20  # /dev/shm, a tmpfs: multiprocessing's semaphores, a data loader's buffers
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_EMPTY_DIRS = ("/var/cache", "/var/lib", "/var/log", "/var/tmp", "/opt", "/srv", "/mnt")
# Files ordinary programs expect of a system (none of them a secret): TLS roots, the dynamic
# linker's cache, MIME types, the protocol and service names that sockets look up, and the
# configuration of programs the system has (man's: pexpect's pager test runs `man`).
SYSTEM_FILES = ("/etc/ssl", "/etc/ca-certificates", "/etc/ld.so.cache", "/etc/alternatives",
                "/etc/mime.types", "/etc/nsswitch.conf", "/etc/protocols", "/etc/services", "/etc/manpath.config")
# The machine a maintainer's CI gives, whatever the worker's own settings: UTC as the local time
# zone (a link into the zone database, as Debian and Ubuntu make it, and /etc/timezone: tzlocal
# reads either), a UTF-8 locale, a writable /dev/shm (multiprocessing's semaphores), USER and LOGNAME.
LOCAL_ZONE = "/usr/share/zoneinfo/Etc/UTC"
# Programs of the worker's system that a clean environment would not give a package: Debian's pip
# refuses every install (PEP 668) where a project's own environment has a pip of its own or none.
HIDDEN_PROGRAMS = ("pip", "pip3", "pip2")
TLS_TRUST_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
# The sandbox's user when the worker runs as root: tests meet an ordinary user, as on a maintainer's
# machine (as root, permission tests pass where they should fail, and tests meant for root only run).
ORDINARY_UID = 1000

# Runs the runner's inside/ code from LIB with the worker's own Python: isolated (-I: no
# environment variables, no user site, no script folder on the path) and without site (-S).
BOOTSTRAP = ("import sys; sys.path.insert(0, sys.argv[1]); del sys.argv[1]; "
             "from farm_runner.inside.main import main; sys.exit(main())")

_BWRAP = {}


def bwrap_problem():
    """None where bubblewrap can make a sandbox here, else why not (one sentence)."""
    if "answer" not in _BWRAP:
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
        _BWRAP["answer"] = answer
    return _BWRAP["answer"]


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
            "farm.toml) to run packages without isolation" % problem, kind="sandbox")
    return "bwrap"


def sandbox_ids(mode):
    """(uid, gid) the commands run as: the worker's own, or an ordinary user's where that is root."""
    if not hasattr(os, "getuid"):
        return 0, 0
    if mode == "bwrap" and os.getuid() == 0:
        return ORDINARY_UID, ORDINARY_UID
    return os.getuid(), os.getgid()


def write_etc(etc_dir, home, mode):
    """The sandbox's /etc/passwd, group and hosts: one user (named farm, see sandbox_ids); and a
    resolv.conf, as every machine has one (dnspython refuses to start without it, where a lookup
    would fail as the network's): it names the server glibc assumes, on loopback, where none runs."""
    uid, gid = sandbox_ids(mode)
    files = {"passwd": "farm:x:%d:%d:farm:%s:/bin/sh\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
                       % (uid, gid, home),
             "group": "farm:x:%d:\nnogroup:x:65534:\n" % gid,
             "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n", "timezone": "Etc/UTC\n",
             "resolv.conf": "nameserver 127.0.0.1\n"}
    os.mkdir(etc_dir)
    for name, text in files.items():
        with open(os.path.join(etc_dir, name), "x") as fh:
            fh.write(text)


@functools.lru_cache(maxsize=1)
def hidden_programs():
    """The paths of the system's programs the sandbox hides (HIDDEN_PROGRAMS and pip3.X), each
    covered by an empty file that cannot run."""
    found = []
    for folder in ("/usr/bin", "/usr/local/bin"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found += [os.path.join(folder, n) for n in sorted(names)
                  if n in HIDDEN_PROGRAMS or (n.startswith("pip3.") and n[5:].isdigit())]
    return tuple(found)


class Sandbox:
    """Builds the argument list that runs one command in the sandbox (or, with mode "none", as a
    plain process with the same environment and the runner's files at their own paths)."""

    def __init__(self, mode, box, read_only, etc_dir, lib, runner_python, tmp_size):
        self.mode, self.box, self.etc_dir, self.lib = mode, box, etc_dir, lib
        self.read_only = sorted(set(read_only))
        self.runner_python, self.tmp_size = runner_python, tmp_size

    @property
    def lib_path(self):
        """Where the command finds the runner."""
        return LIB if self.mode == "bwrap" else self.lib

    def out_path(self, out_dir):
        return OUT if self.mode == "bwrap" else out_dir

    def env(self, extra=None, path_dirs=(), network=False):
        env = dict(BASE_ENV, PATH=os.pathsep.join(list(path_dirs) + ["/usr/local/bin", "/usr/bin", "/bin"]),
                   HOME=os.path.join(self.box, "home"), TMPDIR="/tmp", LANG="C.UTF-8", USER="farm", LOGNAME="farm",
                   UV_PYTHON_DOWNLOADS="never", PYTHONDONTWRITEBYTECODE="1")
        # The worker's own trust settings for TLS (a company proxy's CA) hold for the install's
        # downloads; the test run gets none of the worker's variables (see Runner.phase_test).
        if network:
            env.update({k: os.environ[k] for k in TLS_TRUST_VARIABLES if os.environ.get(k)})
            # The worker's cache of the index answers plain HTTP, a connection per request: uv's
            # 50 downloads at once would pass the proxy's cap and be refused.
            env["UV_CONCURRENT_DOWNLOADS"] = str(MAX_CONNECTIONS // 2)
        if extra:
            env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def inside_command(self, task, *args):
        """A task of farm_runner.inside, run with the worker's own Python."""
        return [self.runner_python, "-I", "-S", "-c", BOOTSTRAP, self.lib_path, task] + [str(a) for a in args]

    def wrap(self, cmd, env, cwd, proxy_socket=None, out_dir=None, extra_ro=(), tmp_dir=None):
        """(argv, env) that run `cmd` in the sandbox. `extra_ro`: (host path, sandbox path) pairs;
        `tmp_dir`: a folder the runner made in the box just now, the command's /var/tmp and TMPDIR."""
        if proxy_socket:
            cmd = self.inside_command("forward", PROXY_SOCKET if self.mode == "bwrap" else proxy_socket,
                                      PROXY_PORT, "--") + list(cmd)
            proxy = "http://127.0.0.1:%d" % PROXY_PORT
            env = dict(env, HTTP_PROXY=proxy, HTTPS_PROXY=proxy, ALL_PROXY=proxy, http_proxy=proxy,
                       https_proxy=proxy, NO_PROXY="", no_proxy="")
        if self.mode == "none":
            return [str(c) for c in cmd], env
        args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--hostname", "sandbox"]
        if os.getuid() == 0:
            # A user namespace mapping the ordinary user onto the worker's root: files the commands
            # write still belong to the worker outside.
            uid, gid = sandbox_ids(self.mode)
            args += ["--unshare-user", "--uid", str(uid), "--gid", str(gid)]
        args += ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(SHM_SIZE), "--tmpfs", "/dev/shm"]
        for path in hidden_programs():
            args += ["--ro-bind", "/dev/null", path]
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += ["--ro-bind", d, d]
        for f in SYSTEM_FILES + tuple(os.environ[k] for k in TLS_TRUST_VARIABLES if os.environ.get(k)):
            args += ["--ro-bind-try", f, f]
        for name in ("passwd", "group", "hosts", "timezone", "resolv.conf"):
            args += ["--ro-bind", os.path.join(self.etc_dir, name), "/etc/" + name]
        if os.path.isfile(LOCAL_ZONE):
            args += ["--symlink", LOCAL_ZONE, "/etc/localtime"]
        # /tmp first: the binds after it may lie below /tmp (a worker whose folder is there), and
        # their mount points are then made in this fresh tmpfs, where nothing was planted.
        args += ["--size", str(self.tmp_size), "--tmpfs", "/tmp"]
        # The folders every system has (empty and read-only here, as to an ordinary user).
        for d in SYSTEM_EMPTY_DIRS:
            args += ["--dir", d]
        for p in self.read_only:
            args += ["--ro-bind", p, p]
        args += ["--bind", self.box, self.box, "--ro-bind", self.lib, LIB]
        for src, dest in extra_ro:
            args += ["--ro-bind", src, dest]
        if out_dir:
            args += ["--bind", out_dir, OUT]
        if tmp_dir:
            args += ["--bind", tmp_dir, TMP]
            env = dict(env, TMPDIR=TMP)
        if proxy_socket:
            args += ["--ro-bind", proxy_socket, PROXY_SOCKET]
        # The sandbox's own root (where the mount points live) is read-only too.
        args += ["--remount-ro", "/", "--chdir", cwd, "--clearenv"]
        for k, v in sorted(env.items()):
            args += ["--setenv", k, v]
        return args + ["--"] + [str(c) for c in cmd], {"PATH": "/usr/bin:/bin"}
