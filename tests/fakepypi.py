"""A local index that speaks PyPI's real protocols, with faults to switch on.

- XML-RPC over HTTP at POST /pypi: `changelog_last_serial`, `changelog_since_serial` (at most
  50,000 rows, ordered by serial, like PyPI's);
- the JSON API at GET /pypi/<name>/json, with an ETag and 304 for If-None-Match, X-PyPI-Last-Serial,
  and on demand a stale answer (`serve_stale`), as from a CDN's cache;
- the JSON simple index (PEP 691) at GET /simple/ and /simple/<name>/ when asked for
  `application/vnd.pypi.simple.v1+json`, with `_last-serial` under `meta` and per project.

Standard library only (http.server in a thread on 127.0.0.1, a free port). Faults: `fail(...)`
queues answers for the next matching requests (429, 500, XML-RPC fault -32500 with a reset time,
timeouts, malformed XML, truncated JSON); `hold(...)` hides journal rows so they appear later
(events out of order); `gap(...)` skips serials; `raw_row(...)` writes any row to the journal.
"""

from __future__ import annotations

import datetime
import http.server
import json
import re
import threading
import time
import urllib.parse
import xmlrpc.client
from collections import Counter

MAX_ROWS = 50_000
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class FakePyPI:
    def __init__(self):
        self.lock = threading.RLock()
        self.serial = 1000
        self.journal: list[list] = []  # [name, version, timestamp, action, serial]
        self.hidden: set[int] = set()
        self.projects: dict[str, dict] = {}
        self.faults: list[tuple[str, str, dict]] = []  # (target, kind, options)
        self.stale: dict[str, list] = {}  # project -> [its JSON document as it was, answers left]
        self.xmlrpc_enabled = True
        self.simple_enabled = True
        self.etags_enabled = True
        self.requests: Counter = Counter()
        self.user_agents: set[str] = set()
        self.server = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "FakePyPI":
        fake = self

        class Handler(_Handler):
            pypi = fake

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # -- the index's contents --------------------------------------------------------------------
    def _log(self, name: str, version: str | None, action: str, hidden: bool = False) -> int:
        with self.lock:
            self.serial += 1
            self.journal.append([name, version, int(time.time()), action, self.serial])
            if hidden:
                self.hidden.add(self.serial)
            project = self.projects.get(normalise(name))
            if project is not None:
                project["last_serial"] = self.serial
            return self.serial

    def _project(self, name: str) -> dict:
        return self.projects.setdefault(
            normalise(name), {"name": name, "releases": {}, "yanked": set(), "last_serial": 0, "owners": ["alice"]}
        )

    def _file(self, project: dict, version: str, filename: str, packagetype: str, requires_python: str | None):
        now = datetime.datetime.now(datetime.timezone.utc)
        project["releases"].setdefault(version, []).append({
            "filename": filename,
            "packagetype": packagetype,
            "requires_python": requires_python,
            "upload_time": now.strftime("%Y-%m-%dT%H:%M:%S"),
            "upload_time_iso_8601": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "url": f"{getattr(self, 'url', '')}/files/{filename}",
            "yanked": False,
            "yanked_reason": None,
            "digests": {"sha256": "0" * 64},
            "size": 1000,
        })

    def publish(self, name: str, version: str, sdist: bool = True, wheels: int = 1,
                requires_python: str | None = ">=3.8", hidden: bool = False) -> list[int]:
        """A release as twine uploads it: `new release`, then its files. Returns the serials."""
        with self.lock:
            project = self._project(name)
            project["releases"].setdefault(version, [])
            serials = [self._log(name, version, "new release", hidden)]
            stem = f"{normalise(name).replace('-', '_')}-{version}"
            for number in range(wheels):
                tag = "py3-none-any" if number == 0 else f"cp3{number}-cp3{number}-manylinux_2_17_x86_64"
                self._file(project, version, f"{stem}-{tag}.whl", "bdist_wheel", requires_python)
                serials.append(self._log(name, version, f"add py3 file {stem}-{tag}.whl", hidden))
            if sdist:
                serials.append(self.add_sdist(name, version, requires_python, hidden))
            return serials

    def add_sdist(self, name: str, version: str, requires_python: str | None = ">=3.8", hidden: bool = False) -> int:
        with self.lock:
            stem = f"{normalise(name).replace('-', '_')}-{version}"
            self._file(self._project(name), version, f"{stem}.tar.gz", "sdist", requires_python)
            return self._log(name, version, f"add source file {stem}.tar.gz", hidden)

    def yank(self, name: str, version: str) -> int:
        with self.lock:
            project = self._project(name)
            for entry in project["releases"].get(version, []):
                entry["yanked"] = True
            return self._log(name, version, "yank release")

    def remove_release(self, name: str, version: str) -> int:
        with self.lock:
            self._project(name)["releases"].pop(version, None)
            return self._log(name, version, "remove release")

    def raw_row(self, name, version, action: str) -> int:
        """Any row, as a broken or hostile client could leave it in the journal."""
        with self.lock:
            self.serial += 1
            self.journal.append([name, version, int(time.time()), action, self.serial])
            return self.serial

    def gap(self, count: int) -> None:
        """Serials taken by transactions that were rolled back: they never appear."""
        with self.lock:
            self.serial += count

    def hold(self, serials) -> None:
        with self.lock:
            self.hidden.update(serials)

    def release_held(self) -> None:
        with self.lock:
            self.hidden.clear()

    def fail(self, target: str, kind: str, times: int = 1, **options) -> None:
        """The next `times` requests to `target` (xmlrpc, json, simple, any) answer with `kind`:
        429, 500, fault-32500, timeout, malformed-xml, truncated-json."""
        with self.lock:
            self.faults.extend([(target, kind, options)] * times)

    def serve_stale(self, name: str, answers: int) -> None:
        """The next `answers` requests for the project's JSON get it as it is now, whatever is
        published after: a CDN's stale cache, with the older `last_serial` and X-PyPI-Last-Serial."""
        with self.lock:
            self.stale[normalise(name)] = [self.project_json(name), answers]

    def _take_fault(self, target: str):
        with self.lock:
            for position, (wanted, kind, options) in enumerate(self.faults):
                if wanted in (target, "any"):
                    del self.faults[position]
                    return kind, options
        return None, None

    # -- answers ---------------------------------------------------------------------------------
    def changelog_since_serial(self, since: int) -> list:
        with self.lock:
            rows = [row for row in self.journal if row[4] > since and row[4] not in self.hidden]
        rows.sort(key=lambda row: row[4])
        return rows[:MAX_ROWS]

    def project_json(self, name: str) -> dict | None:
        with self.lock:
            project = self.projects.get(normalise(name))
            if project is None:
                return None
            releases = {version: [dict(f) for f in files] for version, files in project["releases"].items()}
            latest = list(releases)[-1] if releases else None
            return {
                "info": {
                    "name": project["name"], "version": latest, "requires_python": ">=3.8",
                    "yanked": False, "author": "A. Author", "author_email": "author@example.org",
                    "maintainer": None, "maintainer_email": None,
                },
                "last_serial": project["last_serial"],
                "releases": releases,
                "urls": releases.get(latest, []),
                "ownership": {"roles": [{"role": "Owner", "user": u} for u in project["owners"]], "organization": None},
            }

    def simple_index(self) -> dict:
        with self.lock:
            return {
                "meta": {"api-version": "1.1", "_last-serial": self.serial},
                "projects": [{"name": p["name"], "_last-serial": p["last_serial"]} for p in self.projects.values()],
            }


class _Handler(http.server.BaseHTTPRequestHandler):
    pypi: FakePyPI
    protocol_version = "HTTP/1.1"
    # One write per answer, sent at once: headers and body in separate segments would meet the
    # client's delayed ACK and cost 40 ms a request.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # quiet
        pass

    def _send(self, code: int, body: bytes = b"", content_type: str = "application/json", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _fault(self, target: str) -> bool:
        """Answer with a queued fault, if one is queued for this target."""
        kind, options = self.pypi._take_fault(target)
        if kind is None:
            return False
        if kind == "timeout":
            time.sleep(options.get("seconds", 5))
            kind = None
            return False  # answers, but too late for the client
        if kind == "429":
            self._send(429, b"Too Many Requests", "text/plain", {"Retry-After": str(options.get("retry_after", 2))})
        elif kind == "500":
            self._send(500, b"Internal Server Error", "text/plain")
        elif kind == "fault-32500":
            body = xmlrpc.client.dumps(xmlrpc.client.Fault(
                -32500, f"HTTPTooManyRequests: The action could not be performed because there were too many "
                        f"requests by the client. Limit may reset in {options.get('reset', 3)} seconds."),
                methodresponse=True)
            self._send(200, body.encode(), "text/xml")
        elif kind == "malformed-xml":
            self._send(200, b"<?xml version='1.0'?><methodResponse><params><param><value><array><da", "text/xml")
        elif kind == "truncated-json":
            self._send(200, b'{"info": {"name": "trunc', "application/json")
        return True

    def do_POST(self):
        self.pypi.requests["xmlrpc"] += 1
        self.pypi.user_agents.add(self.headers.get("User-Agent", ""))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/pypi" or not self.pypi.xmlrpc_enabled:
            self._send(405, b"", "text/plain", {"Allow": "GET,HEAD"})
            return
        if self._fault("xmlrpc"):
            return
        try:
            params, method = xmlrpc.client.loads(body)
            if method == "changelog_last_serial":
                with self.pypi.lock:
                    value = self.pypi.serial
            elif method == "changelog_since_serial":
                value = self.pypi.changelog_since_serial(int(params[0]))
            else:
                raise xmlrpc.client.Fault(-32601, f"no such method {method}")
            answer = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True)
        except xmlrpc.client.Fault as fault:
            answer = xmlrpc.client.dumps(fault, methodresponse=True)
        self._send(200, answer.encode("utf-8"), "text/xml")

    def do_GET(self):
        self.pypi.user_agents.add(self.headers.get("User-Agent", ""))
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        match = re.fullmatch(r"/pypi/([^/]+)/json", path)
        if match:
            self.pypi.requests["json"] += 1
            if self._fault("json"):
                return
            document = self.pypi.project_json(match.group(1))
            with self.pypi.lock:
                stale = self.pypi.stale.get(normalise(match.group(1)))
                if stale and stale[1] > 0:
                    document, stale[1] = stale[0], stale[1] - 1
                    self.pypi.requests["json-stale"] += 1
            if document is None:
                self._send(404, b'{"message": "Not Found"}')
                return
            etag = f'"{document["last_serial"]}"'
            headers = {"ETag": etag} if self.pypi.etags_enabled else {}
            headers["X-PyPI-Last-Serial"] = str(document["last_serial"])
            if self.pypi.etags_enabled and self.headers.get("If-None-Match") == etag:
                self.pypi.requests["json-304"] += 1
                self._send(304, b"", headers=headers)
                return
            self._send(200, json.dumps(document).encode(), headers=headers)
            return
        if path.startswith("/simple/"):
            self.pypi.requests["simple"] += 1
            if self._fault("simple"):
                return
            wants_json = SIMPLE_JSON in (self.headers.get("Accept") or "")
            if not self.pypi.simple_enabled or not wants_json:
                self._send(200, b"<!DOCTYPE html><html><body></body></html>", "text/html")
                return
            if path == "/simple/":
                self._send(200, json.dumps(self.pypi.simple_index()).encode(), SIMPLE_JSON)
                return
            document = self.pypi.project_json(path.split("/")[2])
            if document is None:
                self._send(404, b"", "text/plain")
                return
            files = [
                {"filename": f["filename"], "url": f["url"], "hashes": f["digests"], "requires-python": f["requires_python"],
                 "upload-time": f["upload_time_iso_8601"], "yanked": f["yanked"]}
                for files in document["releases"].values() for f in files
            ]
            body = {"meta": {"api-version": "1.1", "_last-serial": document["last_serial"]},
                    "name": normalise(document["info"]["name"]), "files": files, "versions": list(document["releases"])}
            self._send(200, json.dumps(body).encode(), SIMPLE_JSON)
            return
        self._send(404, b"", "text/plain")
