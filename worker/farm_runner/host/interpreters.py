"""The interpreters on this worker: found (pyenv, uv-managed, PATH), probed, chosen for a slot."""

import json
import os
import platform
import re
import subprocess

from farm_runner import contract
from farm_runner._vendor.packaging.version import InvalidVersion, Version
from farm_runner.host.commands import child_env
from farm_runner.host.platforms import prefix_interpreter

# uv 0.13 makes environments for 3.6+ (it needs the -I flag); 2.7 is served by a pinned virtualenv
# and pip (host/legacy.py); 3.0 to 3.5 by neither.
UV_MIN = (3, 6)
LEGACY = ((2, 7),)
SLOT_PYTHON = re.compile(contract.SLOT_PYTHON)
# pyenv's folder names and uv's: 3.12.1, 3.15.0b1, 3.13.0t (pyenv), cpython-3.13.0+freethreaded-... (uv)
_RELEASE = r"(\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)"
_PYENV_NAME = re.compile(r"^%s(t?)$" % _RELEASE)
_UV_NAME = re.compile(r"^cpython-%s(\+freethreaded)?-" % _RELEASE)
_PATH_NAME = re.compile(r"^python(\d)\.(\d+)(t?)(\.exe)?$")


class UsageError(Exception):
    """Bad input from the caller: one line on stderr, exit 2, no report."""


# Runs in the interpreter being probed: any version the farm may meet, so the oldest syntax.
_PROBE = r"""
import json, os, platform, struct, sys, sysconfig
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except Exception:  # Python 2.7 knows no such name: ask glibc itself
    try:
        import ctypes
        get = ctypes.CDLL(None).gnu_get_libc_version
        get.restype = ctypes.c_char_p
        libc = "glibc " + get().decode("ascii")
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
    "pymalloc": bool(sysconfig.get_config_var("WITH_PYMALLOC")),
    "maxunicode": sys.maxunicode,
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


def support_note(version_tuple):
    if tuple(version_tuple[:2]) < UV_MIN and tuple(version_tuple[:2]) not in LEGACY:
        return ("Python %d.%d is an unsupported slot: the runner makes environments for 2.7 (virtualenv) "
                "and 3.6+ (uv) only" % tuple(version_tuple[:2]))
    return ""


def uses_legacy_tools(version_tuple):
    """2.7: virtualenv and pip make and fill its environments, as uv cannot."""
    return tuple(version_tuple[:2]) in LEGACY


def slot_python(version_tuple, gil_disabled):
    """The slot an interpreter serves: "3.13", or "3.13t" for a free-threaded build."""
    return "%d.%d%s" % (version_tuple[0], version_tuple[1], contract.FREE_THREADED if gil_disabled else "")


def _entry(full_version, path, source, free_threaded=False):
    version = Version(full_version)
    note = support_note(version.release)
    return {"version": slot_python(version.release, free_threaded), "full_version": full_version, "path": path,
            "supported": not note, "note": note, "source": source, "free_threaded": free_threaded,
            "prerelease": version.is_prerelease}


def _newer(a, b):
    try:
        return Version(a) > Version(b)
    except InvalidVersion:
        return False


def find_interpreters(environ=None, system=None):
    """Interpreters on this machine, one per X.Y: pyenv's, then uv-managed, then PATH.

    Returns [{"version": the slot's Python ("3.12", "3.13t"), "full_version": "3.12.1" | "3.15.0b1",
    "path": ..., "supported": bool, "note": why not supported, "source": "pyenv"|"uv"|"path",
    "free_threaded": bool, "prerelease": bool}] sorted by version, a free-threaded build after its
    X.Y. Names are trusted for pyenv's and uv's folders; interpreters on PATH are probed.
    """
    environ = os.environ if environ is None else environ
    system = system or platform.system()
    home = environ.get("HOME") or os.path.expanduser("~")
    found = {}

    def add(entry):
        old = found.get(entry["version"])
        if old is None or (old["source"] == entry["source"] and _newer(entry["full_version"], old["full_version"])):
            found[entry["version"]] = entry

    versions = os.path.join(environ.get("PYENV_ROOT") or os.path.join(home, ".pyenv"), "versions")
    for name in _listdir(versions):
        m = _PYENV_NAME.match(name)
        if m:
            exe = prefix_interpreter(os.path.join(versions, name), system)
            if os.path.isfile(exe) and os.access(exe, os.X_OK):
                add(_entry(m.group(1), exe, "pyenv", bool(m.group(2))))
    uv_dir = environ.get("UV_PYTHON_INSTALL_DIR") or (
        os.path.join(environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "uv", "python")
        if system != "Windows" else os.path.join(environ.get("APPDATA", home), "uv", "python"))
    for name in _listdir(uv_dir):
        m = _UV_NAME.match(name)  # debug builds (+debug) are not what users run: left out
        if m:
            exe = prefix_interpreter(os.path.join(uv_dir, name), system)
            if os.path.isfile(exe):
                add(_entry(m.group(1), exe, "uv", bool(m.group(2))))
    seen_dirs = set()
    for d in environ.get("PATH", "").split(os.pathsep):
        if not d or "shims" in d.split(os.sep) or d in seen_dirs:
            continue
        seen_dirs.add(d)
        for name in sorted(_listdir(d)):
            m = _PATH_NAME.match(name)
            if not m or "%s.%s%s" % m.group(1, 2, 3) in found:
                continue
            exe = os.path.join(d, name)
            try:
                info = probe_interpreter(exe, timeout=20)
            except UsageError:
                continue
            add(_entry(info["full_version"], exe, "path", info.get("gil_disabled", False)))
    return [found[k] for k in sorted(found, key=slot_order)]


def slot_order(python):
    """"3.6" before "3.10", "3.13" before "3.13t"."""
    m = SLOT_PYTHON.match(python)
    return (int(m.group("major")), int(m.group("minor")), m.group("threading")) if m else (99, 99, python)


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def resolve_python(requested):
    """`requested` is a slot's Python ('3.12', '3.13t') or a path. Returns (path, probe info)."""
    if SLOT_PYTHON.match(requested):
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
        raise UsageError("--python wants X.Y (e.g. 3.12), X.Yt for a free-threaded build (3.13t) or an "
                         "interpreter path, not %r" % requested)
    info = probe_interpreter(path)
    note = support_note(info["version_info"])
    if note:
        raise UsageError(note)
    return path, info


# The optional parts of CPython, built only where the build machine had their libraries: what an
# interpreter older than 3.10 (no sys.stdlib_module_names) may lack through no fault of a package.
OPTIONAL_STANDARD_MODULES = {
    3: ("_bz2", "_ctypes", "_curses", "_curses_panel", "_dbm", "_gdbm", "_hashlib", "_lzma", "_sqlite3", "_ssl",
        "_tkinter", "_uuid", "_decimal", "_crypt", "nis", "ossaudiodev", "readline", "spwd", "zlib", "pyexpat"),
    2: ("bz2", "_ctypes", "_curses", "_curses_panel", "dbm", "gdbm", "_bsddb", "_hashlib", "_sqlite3", "_ssl",
        "_tkinter", "crypt", "nis", "ossaudiodev", "readline", "spwd", "zlib", "pyexpat"),
}

# Runs in the interpreter under test, on the host, before or after the package's code ran but never
# with any of it on its path (-E -s -S, the working folder taken off sys.path): the oldest syntax.
_LACKS = r"""
import json, sys
sys.path = [p for p in sys.path if p and p != "."]
names, fallback = json.loads(sys.argv[1]), json.loads(sys.argv[2])
own = set(getattr(sys, "stdlib_module_names", fallback))
try:
    from importlib.util import find_spec
except ImportError:
    import imp
    def find_spec(name):
        try:
            imp.find_module(name)
            return True
        except ImportError:
            return None
lacks = []
for name in names:
    if name in own and name not in sys.builtin_module_names:
        try:
            found = find_spec(name) is not None
        except Exception:
            found = False
        if not found:
            lacks.append(name)
print(json.dumps(lacks))
"""


def lacking_standard_modules(python, major, names, timeout=60):
    """Of `names` (top-level modules a failure said were missing), those the interpreter `python`
    lists as its own standard library (its sys.stdlib_module_names; before 3.10, the optional
    parts of CPython) and cannot find: its build's lack, the host's evidence. [] when it cannot say."""
    names = sorted({n for n in names if isinstance(n, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$", n)})
    if not names:
        return []
    try:
        out = subprocess.run([python, "-E", "-s", "-S", "-c", _LACKS, json.dumps(names),
                              json.dumps(OPTIONAL_STANDARD_MODULES.get(major, ()))], stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=timeout, env=child_env(), cwd="/")
        lacks = json.loads(out.stdout.decode("utf-8").strip().splitlines()[-1]) if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return []
    return [n for n in lacks if n in names] if isinstance(lacks, list) else []
