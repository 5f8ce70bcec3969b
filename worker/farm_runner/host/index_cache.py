"""The worker's pull-through cache of the package index, which the sandbox's installers use in place
of the index itself (through the runner's proxy, at http://farm-index.invalid/simple/).

Every build installs its release, the release's dependencies and its test dependencies into a new
environment, with a new, empty installer cache (a cache the package's code could write would let it
poison the next build's). Asked of the index directly, each build resolved everything again over
the network: 0.3 to 0.9 s of round trips per install, and the same wheels downloaded once per slot.

What the cache holds was written by the runner alone, never by a sandboxed process:
- a project's file list, fetched by the runner from the index (host/index.py parses it), kept
  PAGE_TTL seconds; the release under test and the names the build says changed (`fresh`) are
  fetched anew once per build, so a new release is never hidden by a cached page;
- the files, fetched by the runner from the URLs those lists give and checked against the index's
  sha256 before they are kept; they are named by that hash, so a file is the same bytes for every
  build. A file the index gives no hash for is passed through, not kept.

The sandbox asks by project name and by hash only; it cannot name a URL, a path or a file the
runner has not listed for it in this build.

Two budgets hold at every write. The files kept stay within `max_bytes` (MAX_BYTES unless the
runner's --index-cache-size says otherwise), shared by every build on the worker: a fetched file
is kept only once the oldest used have made room for it, counted in a small file under a lock
(fcntl) that every runner of the worker takes; a file that does not fit is served to the build and
not kept. And what one build fetches counts against its disk limit (`fetch_limit`): past it, the
build stops at the disk limit and nothing more is fetched for it."""

import contextlib
import errno
import hashlib
import html
import json
import os
import re
import threading
import time
import urllib.parse

try:
    import fcntl
except ImportError:  # Windows: its builds run unsandboxed and never fetch files through the cache
    fcntl = None

from farm_runner._vendor.packaging.utils import canonicalize_name
from farm_runner.host import index
from farm_runner.host.interpreters import UsageError
from farm_runner.host.limits import InfraError, LimitHit, format_size

HOST = "farm-index.invalid"  # a name that resolves nowhere: only the runner's proxy answers it
URL = "http://%s/simple/" % HOST
PAGE_TTL = 600  # seconds a project's file list is used again (PyPI's own CDN keeps its pages as long)
MAX_BYTES = 4 << 30  # the files kept, at most (--index-cache-size); the oldest used go first
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,198}[a-z0-9])?$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class IndexCache:
    def __init__(self, root, upstream, fresh=(), max_bytes=MAX_BYTES, fetch_limit=None, fetched=0, staging=None,
                 page_ttl=None):
        """`max_bytes`: the files kept, at most; `fetch_limit`: the bytes this build may fetch (its disk
        limit; None: no limit), of which it fetched `fetched` in earlier phases; `staging`: where files
        are fetched to before they are kept (the build's own folder)."""
        self.root, self.upstream, self.max_bytes = root, upstream, max_bytes
        self.fetch_limit, self.fetched_bytes, self.limit_hit = fetch_limit, fetched, None
        self.staging = staging or os.path.join(root, "incoming")
        # An index on this machine answers at once: its pages are fetched every time (and a test's
        # index may change at the same address), only its files are kept.
        host = (urllib.parse.urlsplit(upstream).hostname or "").lower()
        self.page_ttl = page_ttl if page_ttl is not None else 0 if host in ("localhost", "::1") or \
            host.startswith("127.") else PAGE_TTL
        key = hashlib.sha256(upstream.encode()).hexdigest()[:16]
        self.pages_dir = os.path.join(root, "pages", key)
        self.files_dir = os.path.join(root, "files")
        os.makedirs(self.pages_dir, exist_ok=True)
        os.makedirs(self.files_dir, exist_ok=True)
        self.fresh = {canonicalize_name(n) for n in fresh}
        self.fetched = set()  # names fetched anew in this build
        self.fresh_all = False  # every page fetched anew from now on (once each)
        self.listed = {}  # sha256 -> the file's entry, for what this build was shown
        self.lock = threading.Lock()
        self.count_lock = threading.Lock()
        self.stats = {"pages_cached": 0, "pages_fetched": 0, "files_cached": 0, "files_fetched": 0,
                      "files_passed": 0}

    # -- what the proxy calls ----------------------------------------------------------------------
    def answer(self, path, accept):
        """(status, content type, body bytes or a file path) for a GET of `path` on HOST."""
        parts = urllib.parse.unquote(path.split("?")[0]).strip("/").split("/")
        try:
            if len(parts) == 2 and parts[0] == "simple":
                return self._page(parts[1], accept)
            if len(parts) == 3 and parts[0] == "files" and _SHA.match(parts[1]):
                return self._file(parts[1], parts[2])
        except UsageError:
            return 404, "text/plain", b"no such project on the index\n"
        except InfraError as exc:
            return 502, "text/plain", ("%s\n" % exc).encode()
        return 404, "text/plain", b"not found\n"

    # -- pages -------------------------------------------------------------------------------------
    def _page(self, name, accept):
        name = canonicalize_name(name)
        if not _NAME.match(name):
            return 404, "text/plain", b"not a project name\n"
        files = self._files_of(name)
        with self.lock:
            for f in files:
                if f.get("sha256") and _SHA.match(f["sha256"]):
                    self.listed[f["sha256"]] = f
        if JSON_TYPE in (accept or ""):
            return 200, JSON_TYPE, self._json(name, files)
        return 200, "text/html", self._html(name, files)

    def files_of(self, name):
        """A project's files as the proxy would list them (raises UsageError for no such project)."""
        name = canonicalize_name(name)
        if not _NAME.match(name):
            raise UsageError("not a project name: %r" % name[:100])
        with self.lock:
            return self._files_of(name)

    def _files_of(self, name):
        cached = os.path.join(self.pages_dir, name + ".json")
        must_fetch = (self.fresh_all or name in self.fresh) and name not in self.fetched
        if not must_fetch:
            try:
                if time.time() - os.stat(cached).st_mtime < self.page_ttl:
                    with open(cached, encoding="utf-8") as fh:
                        files = json.load(fh)
                    self.stats["pages_cached"] += 1
                    return files
            except (OSError, ValueError):
                pass
        files = index.fetch_project_files(self.upstream, name)
        self.fetched.add(name)
        self.stats["pages_fetched"] += 1
        if self.page_ttl > 0:
            self._keep_page(cached, json.dumps(files).encode())
        return files

    def _keep_page(self, path, data):
        """Keep a project's page within the same budget as the files, its bytes counted against
        this build's fetch limit: a build asking for the pages of many large projects neither fills
        the disk nor pushes everyone's files out."""
        self._count(len(data))
        size = _on_disk(len(data))
        if size > self.max_bytes:
            return
        with self._locked():
            if self._room_for(size):
                _write_atomic(path, data)

    def _room_for(self, size):
        """With the lock held: make room for `size` more bytes (the oldest used go first) and count
        them as kept; False when they do not fit. Counted before the bytes are written: a runner
        killed in between leaves too much counted (until the next prune counts again), never too
        little."""
        used = self._used()
        if used + size > self.max_bytes:
            # A tenth of the budget freed beyond the need spares the next files a walk of the folder.
            used = self._evict(max(self.max_bytes - size - self.max_bytes // 10, 0))
            if used + size > self.max_bytes:
                return False
        self._set_used(used + size)
        return True

    def _json(self, name, files):
        out = []
        for f in files:
            entry = {"filename": f["filename"], "url": self._url(f), "hashes": {"sha256": f["sha256"]} if f.get("sha256") else {},
                     "yanked": bool(f.get("yanked"))}
            if f.get("requires_python"):
                entry["requires-python"] = f["requires_python"]
            if f.get("upload_time"):
                entry["upload-time"] = f["upload_time"]
            if f.get("metadata_sha256") and f.get("sha256"):
                entry["core-metadata"] = {"sha256": f["metadata_sha256"]}
            out.append(entry)
        versions = sorted({f["version"] for f in files if f.get("version")})
        return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "versions": versions, "files": out}).encode()

    def _html(self, name, files):
        links = []
        for f in files:
            attrs = ' href="%s%s"' % (html.escape(self._url(f)), "#sha256=" + f["sha256"] if f.get("sha256") else "")
            if f.get("requires_python"):
                attrs += ' data-requires-python="%s"' % html.escape(f["requires_python"])
            if f.get("yanked"):
                attrs += ' data-yanked=""'
            links.append("<a%s>%s</a><br/>" % (attrs, html.escape(f["filename"])))
        return ("<!DOCTYPE html><html><body><h1>%s</h1>\n%s\n</body></html>\n" % (
            html.escape(name), "\n".join(links))).encode()

    def _url(self, f):
        if f.get("sha256") and _SHA.match(f["sha256"]):
            return "/files/%s/%s" % (f["sha256"], urllib.parse.quote(f["filename"]))
        return f["url"]  # no hash to keep it by: the installer fetches it from the index itself

    # -- files -------------------------------------------------------------------------------------
    def _file(self, sha, filename):
        metadata = filename.endswith(".metadata")
        entry = self.listed.get(sha)
        if entry is None or filename != entry["filename"] + (".metadata" if metadata else ""):
            return 404, "text/plain", b"not a file this build was shown\n"
        want = entry.get("metadata_sha256") if metadata else sha
        if not (isinstance(want, str) and _SHA.match(want)):
            return 404, "text/plain", b"the index gives no metadata file for it\n"
        path = os.path.join(self.files_dir, want[:2], want + (".metadata" if metadata else ""))
        kept = _open_kept(path)
        if kept is not None:
            self.stats["files_cached"] += 1
            return 200, "application/octet-stream", kept
        if self.limit_hit is not None:
            return 507, "text/plain", ("%s\n" % self.limit_hit).encode()
        os.makedirs(self.staging, exist_ok=True)
        tmp = os.path.join(self.staging, "%s.%d.%d.new" % (want, os.getpid(), threading.get_ident()))
        try:
            index.download(entry["url"] + (".metadata" if metadata else ""), tmp, want,
                           MAX_BYTES if self.fetch_limit is None else self.fetch_limit, count=self._count)
            body = self._keep(tmp, path)
            if body is None:  # no room: served from the download, which goes once it is sent
                body = open(tmp, "rb")
                self.stats["files_passed"] += 1
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        self.stats["files_fetched"] += 1
        return 200, "application/octet-stream", body

    def _count(self, size):
        """Count `size` more bytes fetched for this build; past its limit, stop it (LimitHit)."""
        with self.count_lock:
            self.fetched_bytes += size
            if self.limit_hit is None and self.fetch_limit is not None and self.fetched_bytes > self.fetch_limit:
                self.limit_hit = LimitHit("disk", "disk: the build fetched more than %s from the package index, its "
                                          "disk limit; nothing more was fetched for it" % format_size(self.fetch_limit))
            if self.limit_hit is not None:
                raise self.limit_hit

    def _keep(self, tmp, path):
        """Keep the fetched file `tmp` at `path` if the budget has room once the oldest used have
        gone; the kept file, open, or None when it does not fit."""
        size = _on_disk(os.path.getsize(tmp))
        if size > self.max_bytes:
            return None
        with self._locked():
            kept = _open_kept(path)  # another build kept it meanwhile
            if kept is not None:
                return kept
            if not self._room_for(size):
                return None
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                try:
                    os.replace(tmp, path)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    # The build's folder is on another file system: the runner's own download,
                    # copied by hand (never a file of the box, which only untrusted.py reads).
                    with open(tmp, "rb") as src, open(path + ".new", "wb") as dst:
                        for chunk in iter(lambda: src.read(1 << 20), b""):
                            dst.write(chunk)
                    os.replace(path + ".new", path)
            except OSError:
                self._evict(self.max_bytes)  # counted anew
                raise
            return open(path, "rb")

    @contextlib.contextmanager
    def _locked(self):
        """The worker's lock on the files kept and their count (every runner of the worker takes it)."""
        if fcntl is None:
            with _PROCESS_LOCK:
                yield
            return
        with open(os.path.join(self.root, "lock"), "ab") as fh:  # a new open file: threads exclude each other too
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            yield

    def _used(self):
        """The bytes kept, from their count (counted anew when it is missing or unreadable)."""
        try:
            with open(os.path.join(self.root, "used")) as fh:
                return int(fh.read())
        except (OSError, ValueError):
            return self._evict(self.max_bytes)

    def _set_used(self, total):
        _write_atomic(os.path.join(self.root, "used"), str(total).encode())

    def _evict(self, target):
        """With the lock held: remove the files and pages used longest ago (pages past their time
        first: they are fetched anew anyway) until at most `target` bytes are kept; the bytes kept,
        counted anew from the folders, each file as the blocks it takes."""
        found = []
        stale = time.time() - max(self.page_ttl, PAGE_TTL)
        for top in (self.files_dir, os.path.join(self.root, "pages")):
            for folder, _, names in os.walk(top):
                for n in names:
                    p = os.path.join(folder, n)
                    try:
                        st = os.lstat(p)
                    except OSError:
                        continue
                    old = top != self.files_dir and st.st_mtime < stale
                    found.append((not old, st.st_mtime, max(st.st_blocks * 512, _on_disk(st.st_size)), p))
        found = [(size, p) for _, _, size, p in sorted(found)]
        total = sum(s for s, _ in found)
        for size, p in found:
            if total <= target:
                break
            try:
                os.remove(p)
                total -= size
            except OSError:
                pass
        self._set_used(total)
        return total

    def prune(self, max_bytes=None, every=3600):
        """Remove the files used longest ago until the cache holds at most `max_bytes` (its
        budget), and count what it holds anew; at most once in `every` seconds on this worker (a
        stamp file says when it last ran)."""
        stamp = os.path.join(self.root, "pruned")
        try:
            if time.time() - os.stat(stamp).st_mtime < every:
                return
        except OSError:
            pass
        _write_atomic(stamp, b"")
        with self._locked():
            self._evict(self.max_bytes if max_bytes is None else max_bytes)


_PROCESS_LOCK = threading.Lock()
BLOCK = 4096


def _on_disk(size):
    """What a file of `size` bytes takes on disk, at least (whole blocks: a thousand files of two
    bytes take four megabytes, not two kilobytes)."""
    return -(-size // BLOCK) * BLOCK


def _open_kept(path):
    """The kept file at `path`, open (it stays readable if another build removes it), marked as
    just used; None if it is not kept."""
    try:
        fh = open(path, "rb")
    except OSError:
        return None
    try:
        os.utime(path)  # the oldest used go first
    except OSError:
        pass
    return fh


def _write_atomic(path, data):
    tmp = "%s.%d.%d.tmp" % (path, os.getpid(), threading.get_ident())
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
