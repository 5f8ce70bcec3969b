"""The worker's pull-through cache of the index (worker/farm_runner/host/index_cache.py), against a
real index served over HTTP, and through the runner's proxy as the sandbox's installer meets it."""
import hashlib
import json
import os
import socket
import tempfile
import time

from farm_runner.host import index_cache
from farm_runner.host.index_cache import IndexCache
from farm_runner.host.proxy import IndexProxy
from tests.pkgindex import PackageIndex, write_package
from tests.test_runner import run_cli


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _one(tmp_path, name="cachefix", version="1.0"):
    dists = tmp_path / ("dists-%s-%s" % (name, version))
    dists.mkdir()
    return [p for p in write_package(dists, name, version, "pass", kind="wheel") if str(p).endswith(".whl")][0]


def test_pages_are_rewritten_to_files_kept_by_their_hash(tmp_path):
    wheel = _one(tmp_path)
    with PackageIndex(wheel) as index:
        cache = IndexCache(str(tmp_path / "cache"), index.url)
        status, ctype, body = cache.answer("/simple/CacheFix/", index_cache.JSON_TYPE)
        assert (status, ctype) == (200, index_cache.JSON_TYPE)
        page = json.loads(body)
        assert page["versions"] == ["1.0"]
        sha = _sha(wheel)
        assert page["files"] == [{"filename": wheel.name, "url": "/files/%s/%s" % (sha, wheel.name),
                                  "hashes": {"sha256": sha}, "yanked": False}]
        # pip 20.3 (Python 2.7) reads the HTML form
        status, ctype, html = cache.answer("/simple/cachefix/", "text/html")
        assert status == 200 and ('href="/files/%s/%s#sha256=%s"' % (sha, wheel.name, sha)).encode() in html

        status, _, path = cache.answer("/files/%s/%s" % (sha, wheel.name), "")
        assert status == 200 and _sha(path) == sha and path.startswith(str(tmp_path / "cache"))
        assert cache.stats["files_fetched"] == 1
        cache.answer("/files/%s/%s" % (sha, wheel.name), "")
        assert cache.stats == {"pages_cached": 0, "pages_fetched": 2, "files_cached": 1, "files_fetched": 1}


def test_the_sandbox_asks_only_for_what_it_was_shown(tmp_path):
    wheel = _one(tmp_path)
    with PackageIndex(wheel) as index:
        cache = IndexCache(str(tmp_path / "cache"), index.url)
        sha = _sha(wheel)
        # a file no page of this build listed, a listed hash with another name, paths and odd names
        assert cache.answer("/files/%s/%s" % (sha, wheel.name), "")[0] == 404
        cache.answer("/simple/cachefix/", "")
        assert cache.answer("/files/%s/other.whl" % sha, "")[0] == 404
        assert cache.answer("/files/%s/%s" % ("0" * 64, wheel.name), "")[0] == 404
        assert cache.answer("/files/../../etc/passwd", "")[0] == 404
        assert cache.answer("/simple/..%2f..%2fetc/", "")[0] == 404
        assert cache.answer("/simple/no-such-project/", "")[0] == 404
        assert cache.answer("/elsewhere", "")[0] == 404


def test_a_file_that_is_not_what_the_index_listed_is_not_kept(tmp_path):
    wheel = _one(tmp_path)
    with PackageIndex(wheel) as index:
        cache = IndexCache(str(tmp_path / "cache"), index.url)
        cache.answer("/simple/cachefix/", "")
        sha = _sha(wheel)
        wheel.write_bytes(b"other bytes than the index listed")
        status, _, body = cache.answer("/files/%s/%s" % (sha, wheel.name), "")
        assert status == 502 and b"sha256 mismatch" in body
        assert [f for _, _, fs in os.walk(tmp_path / "cache" / "files") for f in fs] == []


def test_pages_are_kept_a_while_but_the_release_s_own_is_fetched_anew(tmp_path):
    first = _one(tmp_path, version="1.0")
    dep = _one(tmp_path, name="cachedep", version="1.0")
    with PackageIndex(first, dep) as index:
        root = str(tmp_path / "cache")
        IndexCache(root, index.url, page_ttl=600).answer("/simple/cachedep/", index_cache.JSON_TYPE)
        # both publish a new release; a new build of cachefix (its own page fresh) still sees the
        # cached page of cachedep, unless the build says cachedep's release asked for it
        index.add([_one(tmp_path, version="2.0"), _one(tmp_path, name="cachedep", version="2.0")])
        cache = IndexCache(root, index.url, fresh=["CacheFix"], page_ttl=600)
        versions = lambda n: json.loads(cache.answer("/simple/%s/" % n, index_cache.JSON_TYPE)[2])["versions"]
        assert versions("cachefix") == ["1.0", "2.0"]
        assert versions("cachedep") == ["1.0"]
        assert IndexCache(root, index.url, fresh=["cachedep"], page_ttl=600).answer(
            "/simple/cachedep/", index_cache.JSON_TYPE)[2].count(b'"2.0"') == 1
    # an index on this machine: pages are never kept (a test's index changes at the same address)
    assert IndexCache(root, "http://127.0.0.1:1/simple").page_ttl == 0
    assert IndexCache(root, "https://pypi.org/simple").page_ttl == index_cache.PAGE_TTL


def test_the_oldest_files_go_first_past_the_bound(tmp_path):
    cache = IndexCache(str(tmp_path / "cache"), "https://pypi.org/simple")
    for i, name in enumerate(("old", "newer", "newest")):
        p = tmp_path / "cache" / "files" / "aa" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 100)
        os.utime(p, (time.time() - 1000 + i, time.time() - 1000 + i))
    cache.prune(max_bytes=250)
    assert sorted(os.listdir(tmp_path / "cache" / "files" / "aa")) == ["newer", "newest"]
    (tmp_path / "cache" / "files" / "aa" / "more").write_bytes(b"x" * 100)
    cache.prune(max_bytes=250)  # once an hour at most
    assert len(os.listdir(tmp_path / "cache" / "files" / "aa")) == 3


def test_the_proxy_answers_for_the_cache_s_host_name_only(tmp_path):
    wheel = _one(tmp_path)
    with PackageIndex(wheel) as index:
        cache = IndexCache(str(tmp_path / "cache"), index.url)
        sock = os.path.join(tempfile.mkdtemp(prefix="pypi-farm-"), "p.sock")
        proxy = IndexProxy(sock, [], cache=cache)
        try:
            def get(host, path, method="GET"):
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.sendall(("%s http://%s%s HTTP/1.1\r\nHost: %s\r\nAccept: %s\r\n\r\n" % (
                    method, host, path, host, index_cache.JSON_TYPE)).encode())
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                s.close()
                return data
            answer = get(index_cache.HOST, "/simple/cachefix/")
            assert answer.startswith(b"HTTP/1.1 200") and b'"versions": ["1.0"]' in answer
            wheel_answer = get(index_cache.HOST, "/files/%s/%s" % (_sha(wheel), wheel.name))
            assert wheel_answer.endswith(wheel.read_bytes())
            assert get(index_cache.HOST, "/simple/cachefix/", "POST").startswith(b"HTTP/1.1 405")
            # any other host is still the allow-list's to refuse
            assert get("127.0.0.1:%d" % index.port, "/simple/cachefix/").startswith(b"HTTP/1.1 403")
        finally:
            proxy.close()


def test_a_build_installs_through_the_cache(package_index, tmp_path):
    proc, report = run_cli("farmfix-pass", tmp_path / "w", package_index.url)
    assert report["outcome"] == "passed", proc.stdout[-2000:]
    assert "--index-url %s" % index_cache.URL in report["phases"]["install"]["log_excerpt"]
    kept = {f for _, _, fs in os.walk(os.path.join(os.path.dirname(report["_state"]["cache_dir"]), "index-cache",
                                                   "files")) for f in fs}
    assert report["installed_from"]["sha256"] in kept


def test_a_kept_page_never_makes_a_release_uninstallable(tmp_path):
    # boto3's way: a release needs a dependency released minutes before it; the worker's page of
    # that dependency predates it. The install is tried again with every page fetched anew.
    dists = tmp_path / "d"
    dists.mkdir()
    write_package(dists, "cachedep", "1.0", "notests", kind="wheel")
    with PackageIndex(dists) as index:
        first = run_cli("cachedep", tmp_path / "w1", index.url, extra=("--index-page-ttl", "600"))[1]
        assert first["outcome"] == "no-tests"
        write_package(dists, "cachedep", "2.0", "notests", kind="wheel")
        write_package(dists, "cacheuser", "1.0", "pass", kind="wheel", dependencies=("cachedep>=2",))
        index.add(dists)
        proc, report = run_cli("cacheuser", tmp_path / "w2", index.url, extra=("--index-page-ttl", "600"))
    assert report["phases"]["install"]["status"] == "ok", (report["reason"], proc.stdout[-3000:])
    assert report["dependencies"] == [{"name": "cachedep", "version": "2.0"}]
    assert "trying again with every page fetched anew" in report["phases"]["install"]["log_excerpt"]
