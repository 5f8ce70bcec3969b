"""Everything that depends on the worker's OS: paths inside environments, the cache folder,
process groups. Each function takes the system as a parameter so every platform's answer can be
tested anywhere."""

import ntpath
import os
import platform
import posixpath
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def env_layout(env_dir, py_version, system=None, implementation="cpython", free_threaded=False):
    """Paths inside an environment made by uv/venv/virtualenv, for `system` (platform.system()).
    A free-threaded build keeps its packages apart (lib/python3.13t)."""
    system = system or platform.system()
    if system == "Windows":
        j = ntpath.join
        return {"python": j(env_dir, "Scripts", "python.exe"), "bin": j(env_dir, "Scripts"),
                "site_packages": j(env_dir, "Lib", "site-packages")}
    j = posixpath.join
    lib = ("pypy%d.%d" if implementation == "pypy" else "python%d.%d") % tuple(py_version[:2]) + (
        "t" if free_threaded else "")
    return {"python": j(env_dir, "bin", "python"), "bin": j(env_dir, "bin"),
            "site_packages": j(env_dir, "lib", lib, "site-packages")}


def prefix_interpreter(prefix, system=None):
    """The interpreter of an installed Python prefix (pyenv / uv-managed). A free-threaded build
    may have only python3.13t (and python3): the first that exists, else bin/python."""
    system = system or platform.system()
    if system == "Windows":
        names = ["python.exe"] + sorted(n for n in _listdir(prefix) if n.endswith("t.exe") and n.startswith("python"))
        return next((ntpath.join(prefix, n) for n in names if os.path.isfile(ntpath.join(prefix, n))),
                    ntpath.join(prefix, "python.exe"))
    bin_dir = posixpath.join(prefix, "bin")
    names = ["python", "python3"] + sorted(n for n in _listdir(bin_dir) if n.startswith("python") and n.endswith("t"))
    return next((posixpath.join(bin_dir, n) for n in names if os.path.isfile(posixpath.join(bin_dir, n))),
                posixpath.join(bin_dir, "python"))


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


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
    return {"start_new_session": True}


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
