"""The native network watch (inside/netwatch.c), built once per source and machine with the worker's
C compiler into the worker's cache, and preloaded into each test run: what native code looks up
and connects to is noted beside what the probe plugin sees of Python's sockets. Without a
compiler the tests run without it, and the report says so.
"""

import hashlib
import os
import platform
import shutil
import subprocess

SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "inside", "netwatch.c")
COMPILE_SECONDS = 60


def build(cache_root):
    """The path of the built library, or None (no compiler, or it failed to build)."""
    try:
        with open(SOURCE, "rb") as fh:
            source = fh.read()
    except OSError:
        return None
    key = hashlib.sha256(source + platform.machine().encode()).hexdigest()[:16]
    folder = os.path.join(cache_root, "netwatch")
    path = os.path.join(folder, "netwatch-%s.so" % key)
    if os.path.isfile(path):
        return path
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    os.makedirs(folder, exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        done = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", tmp, SOURCE, "-ldl"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=COMPILE_SECONDS)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not os.path.isfile(tmp):
        return None
    os.replace(tmp, path)  # two builds making it at once: the last rename wins, both the same
    return path
