"""The one file the master ships to workers: this package as a zipapp (`python runner.pyz ...`).

The bundle is built byte for byte the same from the same sources (sorted members, fixed times and
modes), so its sha256 names the runner's code: the master sends it with each build, the runner
puts it in its report, and a checkout computes the same hash for the same code.

Run, the bundle unpacks itself once per content and interpreter beside itself
(`runner.pyz.d/<sha256>-<cache tag>/`, in the worker's own build folder, which no sandbox sees),
compiled, and runs from there: importing from the zip would compile every module on every run, in
the supervisor and again in each command the sandbox runs it for.
"""

import hashlib
import io
import os
import zipfile

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
MAIN = b'''"""The shipped runner (farm_runner/bundle.py): unpack once, compiled, then run from there."""
import compileall, hashlib, os, shutil, sys, tempfile, zipfile

archive = os.path.dirname(os.path.abspath(__file__))
with open(archive, "rb") as fh:
    digest = hashlib.sha256(fh.read()).hexdigest()
cache = archive + ".d"
lib = os.path.join(cache, "%s-%s" % (digest, sys.implementation.cache_tag))
if not os.path.isdir(lib):
    os.makedirs(cache, exist_ok=True)
    new = tempfile.mkdtemp(dir=cache, prefix=".new-")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(new, [n for n in zf.namelist() if n.startswith("farm_runner/")])
    compileall.compile_dir(new, quiet=2)
    try:
        os.rename(new, lib)
    except OSError:  # another run made it first
        shutil.rmtree(new, ignore_errors=True)
    for old in os.listdir(cache):
        if old != os.path.basename(lib) and not old.startswith("."):
            shutil.rmtree(os.path.join(cache, old), ignore_errors=True)
sys.path[0] = lib
from farm_runner import bundle
bundle.UNPACKED = {"sha256": digest, "lib": lib}
from farm_runner.host.cli import main
sys.exit(main())
'''
UNPACKED = None  # set by MAIN: the bundle's sha256 and the folder it runs from
_EPOCH = (1980, 1, 1, 0, 0, 0)


def sources():
    """(name in the bundle, path) of every file the bundle is built from."""
    for folder, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(folder, name)
            yield "farm_runner/" + os.path.relpath(path, PACKAGE_DIR).replace(os.sep, "/"), path


def build_bytes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        entries = [("__main__.py", None)] + sorted(sources())
        for arcname, path in entries:
            info = zipfile.ZipInfo(arcname, _EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            if path is None:
                data = MAIN
            else:
                with open(path, "rb") as fh:
                    data = fh.read()
            zf.writestr(info, data)
    return buffer.getvalue()


def fingerprint():
    """What changes when a source changes (names, mtimes, sizes): cheap to take before each build."""
    return tuple((name, os.stat(path).st_mtime_ns, os.stat(path).st_size) for name, path in sources())


def build(dest):
    """Write the bundle to `dest` (when its bytes changed) and return its sha256."""
    data = build_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        with open(dest, "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() == digest:
                return digest
    except OSError:
        pass
    tmp = dest + ".tmp-%d" % os.getpid()
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, dest)
    return digest


def identity():
    """{"sha256", "source", "lib"}: the code that runs, and what the sandbox binds as LIB."""
    if UNPACKED:
        return dict(UNPACKED, source="bundle")
    return {"sha256": hashlib.sha256(build_bytes()).hexdigest(), "source": "checkout",
            "lib": os.path.dirname(PACKAGE_DIR)}
