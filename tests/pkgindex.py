"""Real fixture packages and a real PEP 503 index for the runner and end-to-end tests.

- write_package(): a small source tree (setup.py + setuptools, the shape users publish) turned
  into a real sdist and wheel with zipfile/tarfile (deterministic bytes: same input, same sha256).
- PackageIndex: a PEP 503 simple index over HTTP on 127.0.0.1 (data-requires-python, sha256
  fragments), serving a folder of distribution files from a background thread.
- ensure_wheelhouse(): pinned tool wheels (tests/wheelhouse.txt: pytest + deps for 3.8-3.13,
  setuptools, wheel) downloaded once with pip into .cache/wheelhouse/, offline afterwards.
- EXPECTED_OUTCOMES / write_standard_packages(): one fixture package per runner outcome.
"""
from __future__ import annotations

import base64
import email.parser
import gzip
import hashlib
import html
import http.server
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE_LIST = Path(__file__).resolve().parent / "wheelhouse.txt"
WHEELHOUSE_DIR = ROOT / ".cache" / "wheelhouse"
WHEELHOUSE_PYTHONS = ("2.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
PUBLIC_INDEX = "https://pypi.org/simple"
EPOCH = (2020, 1, 1, 0, 0, 0)
EPOCH_TS = 1577836800

EXPECTED_OUTCOMES = {
    "pass": "passed",
    "testfail": "tests-failed",
    "setupfail": "install-failed",
    "notests": "no-tests",
    "leftover": "uninstall-dirty",
    "oldpython": "not-applicable",
}
STANDARD_VERSION = "1.0"


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_name(name):
    return normalize(name).replace("-", "_")


# ---------------------------------------------------------------------------
# Fixture packages
# ---------------------------------------------------------------------------

def _sources(name, version, behaviour, requires_python, dependencies, kind):
    """{relative path: text} of the project's source tree."""
    mod = _module_name(name)
    init = '"""Fixture package %s (%s)."""\n__version__ = %r\n' % (name, behaviour, version)
    if behaviour == "leftover":
        init += (
            "import os\n"
            "# Like a package writing a cache next to itself: the installer does not know this file.\n"
            "with open(os.path.join(os.path.dirname(__file__), 'cache.dat'), 'w') as _fh:\n"
            "    _fh.write('cached')\n"
        )
    files = {mod + "/__init__.py": init}
    test = (
        "import os\n\nimport %(mod)s\n\n\n"
        "def test_version():\n    assert %(mod)s.__version__ == %(version)r\n\n\n"
        "def test_imports_installed_copy():\n"
        "    # the runner must test the installed package, never the unpacked sdist (whose place of\n"
        "    # the package the runner makes a link to the installed copy)\n"
        "    assert 'site-packages' in os.path.realpath(%(mod)s.__file__).replace(os.sep, '/'), %(mod)s.__file__\n"
    ) % {"mod": mod, "version": version}
    if behaviour == "hang":
        test += "\n\ndef test_hangs():\n    import time\n    time.sleep(600)\n"
    if behaviour == "slow":
        test += "\n\ndef test_takes_a_while():\n    import time\n    time.sleep(10)\n"
    if behaviour == "testfail":
        test += "\n\ndef test_fails():\n    assert 1 + 1 == 3, 'this fixture fails on purpose'\n"
    if behaviour != "notests":
        files["tests/test_%s.py" % mod] = test
    setup_args = "name=%r, version=%r, packages=[%r]" % (name, version, mod)
    if requires_python:
        setup_args += ", python_requires=%r" % requires_python
    plain, extras = _split_extras(dependencies)
    if plain:
        setup_args += ", install_requires=%r" % (plain,)
    if extras:
        setup_args += ", extras_require=%r" % (extras,)
    setup = "from setuptools import setup\n\n"
    if behaviour == "setupfail":
        setup += "raise RuntimeError('farmfix: this setup.py refuses to build on purpose')\n\n"
    setup += "setup(%s)\n" % setup_args
    files["setup.py"] = setup
    files["pyproject.toml"] = ('[build-system]\nrequires = ["setuptools"]\n'
                               'build-backend = "setuptools.build_meta"\n')
    return files


def _split_extras(dependencies):
    """(plain requirements, {extra: [requirement]}) of DEPENDENCIES, where `x; extra == "e"` is e's."""
    plain, extras = [], {}
    for d in dependencies:
        m = re.match(r"""^(.*?)\s*;\s*extra\s*==\s*['"]([^'"]+)['"]$""", d)
        if m:
            extras.setdefault(m.group(2), []).append(m.group(1))
        else:
            plain.append(d)
    return plain, extras


def _metadata(name, version, requires_python, dependencies):
    lines = ["Metadata-Version: 2.1", "Name: %s" % name, "Version: %s" % version,
             "Summary: farm fixture"]
    if requires_python:
        lines.append("Requires-Python: %s" % requires_python)
    lines += ["Provides-Extra: %s" % e for e in _split_extras(dependencies)[1]]
    lines += ["Requires-Dist: %s" % d for d in dependencies]
    return "\n".join(lines) + "\n\n"


def _zipinfo(path):
    zi = zipfile.ZipInfo(path, EPOCH)
    zi.external_attr = 0o644 << 16
    zi.compress_type = zipfile.ZIP_DEFLATED
    return zi


def _build_wheel(dest, name, version, files, metadata, mod):
    dist = "%s-%s" % (_module_name(name), version)
    info = dist + ".dist-info"
    content = {p: t.encode() for p, t in sorted(files.items()) if p.startswith(mod + "/")}
    content[info + "/METADATA"] = metadata.encode()
    content[info + "/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: farmfix\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    content[info + "/top_level.txt"] = (mod + "\n").encode()
    record = []
    for p, data in content.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (p, digest, len(data)))
    record.append(info + "/RECORD,,")
    content[info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    path = Path(dest) / (dist + "-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as zf:
        for p, data in content.items():
            zf.writestr(_zipinfo(p), data)
    return path


def _build_sdist(dest, name, version, files, metadata):
    base = "%s-%s" % (_module_name(name), version)
    content = dict(files)
    content["PKG-INFO"] = metadata
    path = Path(dest) / (base + ".tar.gz")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = sorted({"/".join(p.split("/")[:i]) for p in content for i in range(1, p.count("/") + 1)})
        for d in [""] + dirs:
            ti = tarfile.TarInfo((base + "/" + d).rstrip("/"))
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, EPOCH_TS
            tf.addfile(ti)
        for p in sorted(content):
            data = content[p].encode()
            ti = tarfile.TarInfo(base + "/" + p)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, EPOCH_TS
            tf.addfile(ti, io.BytesIO(data))
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(raw.getvalue())
    return path


def write_package(dest_dir, name, version, behaviour="pass", requires_python=None, kind="both",
                  dependencies=(), extra_files=None, setup_prelude="", sdist_only=(), wheel_only=()):
    """Write the project's source tree under dest_dir/src/ and build its distributions into dest_dir.

    behaviour: pass | testfail | setupfail (sdist only) | notests | leftover | oldpython
    (oldpython = pass with Requires-Python '<3' unless requires_python is given) | hang (a test
    sleeps for 10 minutes: for timeouts) | slow (a test sleeps 10 s, then passes); these two are
    not among the standard packages.
    kind: both | sdist | wheel.  extra_files ({path: text}) adds or replaces files of the source
    tree (text None: leaves the file out; `sdist_only` and `wheel_only` paths go in one of them);
    setup_prelude is code setup.py runs before setup() (at install time, from the sdist).
    Returns the built files.
    """
    if behaviour not in EXPECTED_OUTCOMES and behaviour not in ("hang", "slow"):
        raise ValueError("unknown behaviour %r" % behaviour)
    if behaviour == "oldpython" and requires_python is None:
        requires_python = "<3"
    if behaviour == "setupfail":
        kind = "sdist"
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    files = _sources(name, version, behaviour, requires_python, dependencies, kind)
    files.update(extra_files or {})
    files = {p: t for p, t in files.items() if t is not None}  # None leaves a file out (a namespace package)
    if setup_prelude:
        files["setup.py"] = files["setup.py"].replace(
            "from setuptools import setup\n", "from setuptools import setup\n\n" + setup_prelude + "\n", 1)
    tree = dest / "src" / ("%s-%s" % (_module_name(name), version))
    for p, text in files.items():
        (tree / p).parent.mkdir(parents=True, exist_ok=True)
        (tree / p).write_text(text)
    metadata = _metadata(name, version, requires_python, dependencies)
    out = []
    if kind in ("both", "sdist"):
        out.append(_build_sdist(dest, name, version, {p: t for p, t in files.items() if p not in wheel_only}, metadata))
    if kind in ("both", "wheel"):
        wheel_files = {p: t for p, t in files.items() if p not in sdist_only}  # as a backend's excludes
        out.append(_build_wheel(dest, name, version, wheel_files, metadata, _module_name(name)))
    return out


def write_standard_packages(dest):
    """One package per outcome, named farmfix-<behaviour>; farmfix-pass depends on farmfix-dep.

    Returns {package name: expected outcome}.
    """
    expected = {}
    write_package(dest, "farmfix-dep", STANDARD_VERSION, "pass")
    expected["farmfix-dep"] = "passed"
    for behaviour, outcome in EXPECTED_OUTCOMES.items():
        name = "farmfix-" + behaviour
        deps = ("farmfix-dep>=1",) if behaviour == "pass" else ()
        write_package(dest, name, STANDARD_VERSION, behaviour, dependencies=deps)
        expected[name] = outcome
    return expected


# ---------------------------------------------------------------------------
# Wheelhouse
# ---------------------------------------------------------------------------

def _wheelhouse_lines():
    """[(requirement, marker, sdist only)] of tests/wheelhouse.txt."""
    out = []
    for line in WHEELHOUSE_LIST.read_text().splitlines():
        line, _, comment = line.partition("#")
        if line.strip():
            req, _, marker = line.partition(";")
            out.append((req.strip(), marker.strip(), comment.strip() == "sdist"))
    return out


def _marker_ok(marker, pyver):
    if not marker:
        return True
    from packaging.markers import Marker  # pytest depends on packaging: present where tests run
    return Marker(marker).evaluate({"python_version": pyver, "python_full_version": pyver + ".0"})


def _have(directory, req):
    name, _, version = req.partition("==")
    for f in directory.iterdir():
        stem = f.name[:-len(".tar.gz")] if f.name.endswith(".tar.gz") else f.name
        parts = stem.split("-") if f.name.endswith((".whl", ".tar.gz")) else []
        if len(parts) >= 2 and normalize(parts[0]) == normalize(name) and parts[1] == version:
            return True
    return False


def ensure_wheelhouse(directory=WHEELHOUSE_DIR):
    """Download the pinned tool wheels once (needs pypi.org the first time); return the folder."""
    directory = Path(directory)
    digest = hashlib.sha256(WHEELHOUSE_LIST.read_bytes()).hexdigest()[:16]
    stamp = directory / (".complete-" + digest)
    if stamp.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    lines = _wheelhouse_lines()
    for pyver in WHEELHOUSE_PYTHONS:
        for sdist in (False, True):
            missing = [req for req, marker, only_sdist in lines
                       if only_sdist == sdist and _marker_ok(marker, pyver) and not _have(directory, req)]
            if not missing:
                continue
            # pip needs wheels only to download for another Python; an sdist is the same for every one
            kind = ["--no-binary=:all:"] if sdist else ["--only-binary=:all:", "--python-version", pyver]
            cmd = [sys.executable, "-m", "pip", "download", "--isolated", "--no-deps", "--no-build-isolation", *kind,
                   "--index-url", PUBLIC_INDEX, "-d", str(directory), *missing]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError("could not download the wheelhouse for Python %s:\n%s%s"
                                   % (pyver, proc.stdout, proc.stderr))
    for old in directory.glob(".complete-*"):
        old.unlink()
    stamp.touch()
    return directory


# ---------------------------------------------------------------------------
# The index
# ---------------------------------------------------------------------------

DIST_RE = re.compile(r"\.(whl|tar\.gz|zip)$")


def _dist_metadata(path):
    """(project name, Requires-Python) read from the file itself."""
    path = str(path)
    raw = None
    if path.endswith((".whl", ".zip")):
        with zipfile.ZipFile(path) as zf:
            for n in zf.namelist():
                if n.count("/") == 1 and n.endswith((".dist-info/METADATA", "/PKG-INFO")):
                    raw = zf.read(n)
                    break
    else:
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"):
                    raw = tf.extractfile(m).read()
                    break
    if raw is None:
        raise ValueError("no metadata in %s" % path)
    msg = email.parser.Parser().parsestr(raw.decode("utf-8", "replace"), headersonly=True)
    return msg["Name"], msg.get("Requires-Python")


JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class PackageIndex:
    """A PEP 503 simple index on http://127.0.0.1:PORT/simple serving distribution files.

    PackageIndex(*folders_or_files); .add(paths); .url; .close() or use as a context manager.
    """

    def __init__(self, *sources):
        self._files = {}  # filename -> (path, project, requires_python, sha256)
        self._uploaded = {}  # filename -> PEP 700 upload time, for the files given one
        self._lock = threading.Lock()
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                index._handle(self)

            def do_HEAD(self):
                index._handle(self, head=True)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = "http://127.0.0.1:%d/simple" % self.port
        self._thread = threading.Thread(target=self._server.serve_forever, name="pkgindex", daemon=True)
        self._thread.start()
        for s in sources:
            self.add(s)

    def add(self, paths):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        for p in paths:
            p = Path(p)
            if p.is_dir():
                self.add(sorted(f for f in p.iterdir() if DIST_RE.search(f.name)))
                continue
            project, requires_python = _dist_metadata(p)
            sha = hashlib.sha256(p.read_bytes()).hexdigest()
            with self._lock:
                self._files[p.name] = (p, normalize(project), requires_python, sha)

    def add_raw(self, path, project, requires_python=None):
        """Serve `path` as a file of `project` without reading it as a distribution: for files
        that are not one (garbage bytes named like an sdist) or are too costly to open (a bomb).
        The index lists its real sha256, as PyPI would for whatever was uploaded."""
        p = Path(path)
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        with self._lock:
            self._files[p.name] = (p, normalize(project), requires_python, h.hexdigest())

    def set_upload_times(self, times):
        """{filename: "2024-06-01T00:00:00Z"}: the project pages of those files are then served as
        PEP 691 JSON (to a client that asks for it) with PEP 700 upload times, as PyPI serves them."""
        with self._lock:
            self._uploaded.update(times)

    def projects(self):
        with self._lock:
            return sorted({v[1] for v in self._files.values()})

    def _handle(self, req, head=False):
        path = req.path.split("?")[0]
        with self._lock:
            files = dict(self._files)
        if path in ("/simple", "/simple/"):
            body = "".join('<a href="%s/">%s</a>\n' % (p, p) for p in self.projects())
            return self._send(req, 200, "<!DOCTYPE html><html><body>\n%s</body></html>\n" % body, head=head)
        m = re.match(r"^/simple/([^/]+)/?$", path)
        if m:
            if not path.endswith("/"):
                req.send_response(301)
                req.send_header("Location", path + "/")
                req.end_headers()
                return
            project = normalize(m.group(1))
            with self._lock:
                uploaded = dict(self._uploaded)
            mine = sorted((f, v) for f, v in files.items() if v[1] == project)
            if JSON_TYPE in (req.headers.get("Accept") or "") and any(f in uploaded for f, _ in mine):
                entries = [dict({"filename": f, "url": "../../files/%s" % f, "hashes": {"sha256": sha}},
                                **({"requires-python": rp} if rp else {}),
                                **({"upload-time": uploaded[f]} if f in uploaded else {}))
                           for f, (_p, _proj, rp, sha) in mine]
                return self._send(req, 200, json.dumps({"meta": {"api-version": "1.1"}, "name": project,
                                                        "files": entries}), JSON_TYPE, head=head)
            links = []
            for fname, (_p, proj, rp, sha) in sorted(files.items()):
                if proj == project:
                    attr = ' data-requires-python="%s"' % html.escape(rp, quote=True) if rp else ""
                    links.append('<a href="../../files/%s#sha256=%s"%s>%s</a><br/>\n' % (fname, sha, attr, fname))
            if not links:
                return self._send(req, 404, "not found\n", "text/plain")
            return self._send(req, 200, "<!DOCTYPE html><html><body>\n%s</body></html>\n" % "".join(links),
                              head=head)
        m = re.match(r"^/files/([^/]+)$", path)
        if m and m.group(1) in files:
            data = files[m.group(1)][0].read_bytes()
            req.send_response(200)
            req.send_header("Content-Type", "application/octet-stream")
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            if not head:
                req.wfile.write(data)
            return
        return self._send(req, 404, "not found\n", "text/plain")

    @staticmethod
    def _send(req, code, text, ctype="text/html", head=False):
        data = text.encode()
        req.send_response(code)
        req.send_header("Content-Type", ctype + "; charset=utf-8")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if not head:
            req.wfile.write(data)

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
