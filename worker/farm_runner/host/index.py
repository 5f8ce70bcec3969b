"""The package index (PEP 503 HTML or PEP 691 JSON): a release's files, the one the installer would
choose for an interpreter, Requires-Python as pip decides it, and bounded, hash-checked downloads.
Answers from the index are data: parsed, size-capped, never executed."""

import hashlib
import html.parser
import json
import posixpath
import re
import urllib.error
import urllib.parse
import urllib.request

from farm_runner import versions
from farm_runner._vendor.packaging import tags
from farm_runner._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
from farm_runner._vendor.packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name,
                                                 parse_sdist_filename, parse_wheel_filename)
from farm_runner._vendor.packaging.version import InvalidVersion, Version
from farm_runner.host.interpreters import UsageError
from farm_runner.host.limits import InfraError

USER_AGENT = "pypi-test-farm-runner/2"
SDIST_EXTS = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")
MAX_PAGE = 64 << 20  # bytes of one project page (the largest on PyPI are a few MB)


# -- Requires-Python and wheel tags -------------------------------------------------------------

def requires_python_allows(spec, python_version):
    """Does Requires-Python `spec` admit the interpreter `python_version` ("3.12.1", "3.13.0rc2")?

    As pip decides it: the interpreter's release numbers only (3.13.0rc2 counts as 3.13.0), and
    pre-releases allowed. A specifier that does not parse admits everything, as pip does."""
    try:
        specifier = SpecifierSet(spec or "")
    except InvalidSpecifier:
        return True
    release = Version(python_version).release
    return specifier.contains(Version(".".join(str(p) for p in release[:3])), prereleases=True)


def platform_tags(info):
    """The platform tags the probed interpreter accepts, best first."""
    plat = info["platform"].replace("-", "_").replace(".", "_").replace(" ", "_")
    if plat.startswith("linux"):
        arch = plat[len("linux_"):]
        if info["bits"] == 32 and arch == "x86_64":
            arch = "i686"
        elif info["bits"] == 32 and arch == "aarch64":
            arch = "armv7l"
        out = []
        m = re.match(r"glibc (\d+)\.(\d+)", info.get("libc") or "")
        if m:
            major, minor = int(m.group(1)), int(m.group(2))
            legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
            for mi in range(minor, -1, -1):
                out.append("manylinux_%d_%d_%s" % (major, mi, arch))
                if (major, mi) in legacy:
                    out.append("%s_%s" % (legacy[(major, mi)], arch))
        else:  # musl or unknown libc: musllinux up to 1.2 is the common case
            out += ["musllinux_1_%d_%s" % (mi, arch) for mi in (2, 1)]
        return out + ["linux_" + arch]
    if plat.startswith("macosx") or info.get("system") == "Darwin":
        arch = plat.split("_")[-1]
        ver = [int(x) for x in (info.get("mac_ver") or "10.16").split(".")[:2]] + [0]
        return list(tags.mac_platforms((ver[0], ver[1]), arch))
    return [plat]


def abi_tag(info):
    """The interpreter's own ABI tag ("cp312", "cp313t", "cp37m")."""
    major, minor = info["version_info"][:2]
    if info["implementation"] == "cpython":
        m = re.match(r"cpython-(\d+[a-z]*)", info.get("soabi") or "")
        if m:
            return "cp" + m.group(1)
        abi = "cp%d%d" % (major, minor) + ("t" if info.get("gil_disabled") else "") + ("d" if info.get("debug") else "")
        if (major, minor) < (3, 8):  # no SOABI on 2.7: pymalloc's m and a wide build's u, as pip names them
            abi += ("m" if info.get("pymalloc") else "") + ("u" if (major, info.get("maxunicode")) == (2, 0x10FFFF) else "")
        return abi
    soabi = info.get("soabi") or ""
    return soabi.replace("-", "_").replace(".", "_").rsplit("_", 3)[0] if soabi else "none"


def supported_tags(info):
    """Every wheel tag the interpreter accepts, best first (pip's order), by packaging.tags."""
    version = tuple(info["version_info"][:2])
    platforms = platform_tags(info)
    if info["implementation"] == "cpython":
        ordered = list(tags.cpython_tags(version, [abi_tag(info)], platforms))
        interpreter = "cp%d%d" % version
    else:
        interpreter = "pp%d%d" % version
        ordered = list(tags.generic_tags(interpreter, [abi_tag(info), "none"], platforms))
    ordered += list(tags.compatible_tags(version, interpreter, platforms))
    return {tag: rank for rank, tag in reversed(list(enumerate(ordered)))}


def wheel_priority(filename, ranks):
    """None when the wheel does not fit; else its rank (lower is better). `ranks`: supported_tags()."""
    try:
        _, _, _, wheel_tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        return None
    found = [ranks[t] for t in wheel_tags if t in ranks]
    return min(found) if found else None


# -- Files -------------------------------------------------------------------------------------

def file_kind(filename):
    if filename.endswith(".whl"):
        return "wheel"
    if filename.lower().endswith(SDIST_EXTS):
        return "sdist"
    return None


def file_version(filename, name):
    """The version a distribution file is of, or None where its name does not say (or is not `name`'s)."""
    try:
        if filename.endswith(".whl"):
            dist, version, _, _ = parse_wheel_filename(filename)
        elif filename.lower().endswith((".tar.gz", ".zip")):
            dist, version = parse_sdist_filename(filename)
        else:
            return _old_sdist_version(filename, name)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return _old_sdist_version(filename, name)
    if canonicalize_name(dist) == canonicalize_name(name):
        return str(version)
    # an sdist whose version has a dash (pkg-3.2.3-2.tar.gz: packaging splits at the last one)
    return _old_sdist_version(filename, name) if file_kind(filename) == "sdist" else None


def _old_sdist_version(filename, name):
    """Old sdists (.tar.bz2, names with dashes): the name is the longest prefix that matches."""
    for ext in SDIST_EXTS:
        if filename.lower().endswith(ext):
            stem = filename[:-len(ext)]
            for i in range(len(stem) - 1, 0, -1):
                if stem[i] == "-" and canonicalize_name(stem[:i]) == canonicalize_name(name):
                    version = stem[i + 1:]
                    parsed = versions.parse(version)
                    # a legacy version (3.2.3-2) is kept as written: the index still serves it
                    return str(parsed) if parsed is not None else version if versions.valid(version) else None
    return None


class _LinkParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []
        self._cur = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._cur = dict(attrs)

    def handle_endtag(self, tag):
        if tag == "a" and self._cur is not None:
            self.links.append(self._cur)
            self._cur = None


def _http_get(url, accept=None, timeout=60):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **({"Accept": accept} if accept else {})})
    return urllib.request.urlopen(req, timeout=timeout)


def fetch_project_files(index_url, name, timeout=60):
    """Files of a project: [{filename, url, sha256, requires_python, yanked, upload_time, version}]
    (upload_time: PEP 700's, from a JSON index; None from an HTML one)."""
    url = index_url.rstrip("/") + "/" + canonicalize_name(name) + "/"
    try:
        with _http_get(url, "application/vnd.pypi.simple.v1+json, text/html;q=0.1", timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
            body = resp.read(MAX_PAGE + 1)
            final_url = resp.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UsageError("no project named %r on %s" % (name, index_url))
        raise InfraError("the index answered HTTP %d for %s" % (exc.code, url), kind="index")
    except (urllib.error.URLError, OSError) as exc:
        raise InfraError("the index %s is unreachable (%s)" % (index_url, getattr(exc, "reason", exc)), kind="index")
    if len(body) > MAX_PAGE:
        raise InfraError("the index's page for %s is larger than %d bytes" % (name, MAX_PAGE), kind="index")
    files = []
    if "json" in ctype:
        try:
            listed = json.loads(body.decode("utf-8"))["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InfraError("the index's JSON for %s is malformed (%s)" % (name, exc), kind="index")
        for f in listed:
            files.append({"filename": str(f["filename"]), "url": urllib.parse.urljoin(final_url, f["url"]),
                          "sha256": (f.get("hashes") or {}).get("sha256"),
                          "requires_python": f.get("requires-python"), "yanked": bool(f.get("yanked")),
                          "upload_time": f.get("upload-time") if isinstance(f.get("upload-time"), str) else None,
                          "metadata_sha256": _metadata_sha256(f.get("core-metadata", f.get("dist-info-metadata")))})
    else:
        parser = _LinkParser()
        parser.feed(body.decode("utf-8", "replace"))
        for a in parser.links:
            full = urllib.parse.urljoin(final_url, a.get("href") or "")
            frag = urllib.parse.urlparse(full).fragment
            files.append({"filename": urllib.parse.unquote(posixpath.basename(urllib.parse.urlparse(full).path)),
                          "url": full.split("#")[0], "sha256": frag[len("sha256="):] if frag.startswith("sha256=") else None,
                          "requires_python": a.get("data-requires-python"), "yanked": "data-yanked" in a,
                          "upload_time": None, "metadata_sha256": _metadata_sha256(
                              a.get("data-core-metadata", a.get("data-dist-info-metadata")))})
    for f in files:
        f["version"] = file_version(f["filename"], name)
    return files


def _metadata_sha256(value):
    """The sha256 of a file's PEP 658 metadata file, from PEP 691's `core-metadata` ({"sha256": ...})
    or PEP 714's `data-core-metadata` ("sha256=..."); None when the index gives none to check it by."""
    if isinstance(value, dict):
        value = value.get("sha256")
    elif isinstance(value, str) and value.startswith("sha256="):
        value = value[len("sha256="):]
    else:
        return None
    return value.lower() if isinstance(value, str) and re.match(r"^[0-9a-fA-F]{64}$", value) else None


def download(url, dest, sha256, max_bytes, count=None):
    """Fetch `url` into `dest` (a new file in a folder the runner made), at most `max_bytes`,
    and check its hash where the index gave one. `count`: called with each chunk's size before it
    is written (it raises to stop the download)."""
    h = hashlib.sha256()
    size = 0
    try:
        with _http_get(url, timeout=120) as resp, open(dest, "xb") as out:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if count is not None:
                    count(len(chunk))
                if size > max_bytes:
                    raise InfraError("%s is larger than the disk limit (%d bytes)" % (url, max_bytes), kind="disk")
                h.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise InfraError("could not download %s (%s)" % (url, getattr(exc, "reason", exc)), kind="index")
    if sha256 and h.hexdigest() != sha256:
        raise InfraError("sha256 mismatch for %s" % url, kind="index")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


MAX_METADATA = 1 << 20


def local_file_metadata(path):
    """Name, Version, Requires-Python of a wheel or sdist the caller named by its path, reading one
    bounded member and nothing else (the file is still a stranger's archive)."""
    import email.parser
    import tarfile
    import zipfile

    raw = None
    try:
        if path.endswith(".whl") or path.lower().endswith(".zip"):
            wanted = ".dist-info/METADATA" if path.endswith(".whl") else "/PKG-INFO"
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist()[:100000]:
                    if info.filename.count("/") == 1 and info.filename.endswith(wanted) and info.file_size <= MAX_METADATA:
                        raw = zf.read(info)
                        break
        else:
            with tarfile.open(path) as tf:
                for n, member in enumerate(tf):
                    if n > 100000:
                        break
                    if (member.isfile() and member.name.count("/") == 1 and member.name.endswith("/PKG-INFO")
                            and member.size <= MAX_METADATA):
                        raw = tf.extractfile(member).read()
                        break
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError("%s cannot be read as a wheel or sdist: %s" % (path, exc))
    if raw is None:
        raise UsageError("%s has no metadata (not a wheel or sdist?)" % path)
    msg = email.parser.Parser().parsestr(raw.decode("utf-8", "replace"))
    return {"name": msg.get("Name"), "version": msg.get("Version"), "requires_python": msg.get("Requires-Python")}
