"""The one file the master ships to workers: this package as a zipapp (`python runner.pyz ...`).

The bundle is built byte for byte the same from the same sources (sorted members, fixed times and
modes), so its sha256 names the runner's code: the master sends it with each build, the runner
puts it in its report, and a checkout computes the same hash for the same code.
"""

import hashlib
import io
import os
import sys
import zipfile

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
MAIN = b"import sys\nfrom farm_runner.host.cli import main\nsys.exit(main())\n"
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


def running_from_bundle():
    """The bundle this code was imported from, or None in a checkout."""
    archive = getattr(sys.modules["farm_runner"].__loader__, "archive", None)
    return archive if archive and os.path.isfile(archive) else None


def identity():
    """{"sha256", "source", "lib"}: the code that runs, and what the sandbox binds as LIB."""
    archive = running_from_bundle()
    if archive:
        with open(archive, "rb") as fh:
            return {"sha256": hashlib.sha256(fh.read()).hexdigest(), "source": "bundle", "lib": archive}
    return {"sha256": hashlib.sha256(build_bytes()).hexdigest(), "source": "checkout",
            "lib": os.path.dirname(PACKAGE_DIR)}
