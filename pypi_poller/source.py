"""The change source: fetches PyPI's answers, keeps the cursor in Buildbot's state and the releases
between polls in the farm's table (pypi_poller/store.py), adds Changes.

All reading of answers is in pypi_poller/pypi.py and all bookkeeping of releases in
pypi_poller/releases.py; this class only does the I/O around them. Exactly once: before a release
becomes a Change the database is asked whether it already is one (so a restart, a re-read margin or
a release announced twice cannot build it twice), and the cursor is saved only after the Changes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import urllib.parse

from buildbot.changes.base import ReconfigurablePollingChangeSource
from buildbot.data import resultspec
from buildbot.util.httpclientservice import HTTPSession
from buildbot.util.state import StateMixin
from twisted.internet import defer
from twisted.python import log

from pypi_poller import pypi, store
from pypi_poller.releases import Cancel, Releases, Retest
from pypi_poller.settings import PypiSettings

FEED_ORDER = ("changelog", "simple", "watch")
MAX_FETCHES_PER_POLL = 20_000  # releases built per poll; the rest wait for the next poll
MAX_CONCURRENT_FETCHES = 8  # metadata requests in flight at once: polite, yet a burst takes seconds
BATCH = 200  # releases checked against the database in one query, and fetched together
MAX_PROJECTS_PER_POLL = 500  # simple feed: changed projects read per poll
RECHECK_MARGIN = 3600  # simple and watch feeds: releases uploaded this long before the last look count
REPROBE_AFTER = 1800  # auto: seconds before a feed that failed is tried again
MAX_BACKOFF = 3600
MAX_LOGGED_REFUSALS = 20


class PyPIPoller(ReconfigurablePollingChangeSource, StateMixin):
    """Follows a PyPI-like index; one Change (category `release`) per new release.

    The name is part of the key of the saved state: keep it ("pypi"), or the cursor is lost.
    """

    def checkConfig(self, settings: PypiSettings, name: str = "pypi"):
        if not isinstance(settings, PypiSettings):
            from buildbot import config

            config.error(f"PyPIPoller needs PypiSettings, not {type(settings).__name__}")
        super().checkConfig(name=name, pollInterval=settings.poll_interval, pollAtLaunch=True)

    @defer.inlineCallbacks
    def reconfigService(self, settings: PypiSettings, name: str = "pypi"):
        self.settings = settings
        self.session = None
        self.loaded = False
        self.backoff_until = 0.0
        self.failures = 0
        self.requests = 0  # HTTP requests made, for the politeness tests and the burst figures
        self.active_feed: str | None = None
        self.feed_why = ""
        self.reprobe_at = 0.0
        yield super().reconfigService(name=name, pollInterval=settings.poll_interval, pollAtLaunch=True)

    def describe(self) -> str:
        in_use = f"; in use: {self.active_feed} ({self.feed_why})" if getattr(self, "active_feed", None) else ""
        return f"PyPIPoller following {self.settings.url} through the {self.settings.feed} feed{in_use}"

    # -- state -----------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _load(self):
        if self.loaded:
            return
        get = self.getState
        self.cursor = yield get("serial", None)
        self.floor = yield get("floor", 0)
        self.seen = set((yield get("seen", [])))
        self.saved = yield self.master.db.pool.do_with_transaction(store.load, self.name)
        old = {}
        for kind in store.KINDS:  # kept as state blobs before the table
            old[kind] = yield get(kind, {})
        self.releases = Releases(
            {**{k: json.loads(v) for k, v in self.saved["pending"].items()}, **old["pending"]},
            {**{k: json.loads(v) for k, v in self.saved["awaiting"].items()}, **old["awaiting"]},
            self.settings.sdist_wait,
        )
        self.blobs = any(old.values())
        self.watched = yield get("watch", {})
        self.simple_since = yield get("simple_since", None)
        self.saved_feed = yield get("feed", None)
        self.loaded = True

    @defer.inlineCallbacks
    def _save(self):
        yield self.setState("serial", self.cursor)
        yield self.setState("floor", self.floor)
        yield self.setState("seen", sorted(self.seen))
        current = {"pending": self.releases.pending, "awaiting": self.releases.awaiting}
        write, delete = store.changes(self.saved, current)
        if any(write.values()) or any(delete.values()):
            yield self.master.db.pool.do_with_transaction(store.save, self.name, write, delete)
            for kind in store.KINDS:
                self.saved[kind].update(write[kind])
                for key in delete[kind]:
                    self.saved[kind].pop(key, None)
        if self.blobs:  # moved into the table: the old blobs go
            for kind in store.KINDS:
                yield self.setState(kind, {})
            self.blobs = False
        yield self.setState("watch", self.watched)
        yield self.setState("simple_since", self.simple_since)
        yield self.setState("feed", self.saved_feed)

    # -- the poll --------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def poll(self):
        now = self._now()
        if now < self.backoff_until:
            return
        yield self._load()
        if self.session is None:
            self.session = HTTPSession(
                self.master.httpservice, self.settings.url, headers={"User-Agent": self.settings.user_agent}
            )
        try:
            try:
                yield self._poll_feed(now)
                self.failures = 0
            except pypi.RateLimited as error:
                self.backoff_until = now + max(1.0, error.retry_after)
                log.msg(f"{self.name}: rate limited by {self.settings.url} ({error}); next request in "
                        f"{error.retry_after:.0f} s")
            except pypi.FeedError as error:
                self._failed(now, error)
            if now >= self.backoff_until:
                yield self._build_ready(now)
        finally:
            self.releases.expire(now)
            yield self._save()

    def _now(self) -> float:
        return time.time()

    def _failed(self, now: float, error: Exception) -> None:
        self.failures += 1
        delay = min(self.settings.poll_interval * 2 ** (self.failures - 1), MAX_BACKOFF)
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            delay = max(delay, retry_after)
        self.backoff_until = now + delay
        log.msg(f"{self.name}: {self.settings.url} failed ({error}); failure {self.failures}, next try in {delay:.0f} s")

    @defer.inlineCallbacks
    def _poll_feed(self, now: float):
        feed = self.settings.feed
        if feed != "auto":
            yield self._poll_one(feed, now)
            yield self._announce(feed, f"feed = \"{feed}\" in the settings")
            return
        start = 0
        if self.active_feed in FEED_ORDER and now < self.reprobe_at:
            start = FEED_ORDER.index(self.active_feed)
        reasons = []
        for candidate in FEED_ORDER[start:]:
            try:
                yield self._poll_one(candidate, now)
            except pypi.RateLimited:
                raise  # the feed exists and asks us to slow down: falling back would not be polite
            except pypi.FeedError as error:
                reasons.append(f"{candidate}: {error}")
                log.msg(f"{self.name}: auto: the {candidate} feed failed ({error}); trying the next one")
                continue
            if candidate != FEED_ORDER[0] and start == 0:
                self.reprobe_at = now + REPROBE_AFTER  # the better feeds failed just now: try them later
            why = "the journal answers" if candidate == "changelog" else "; ".join(reasons) or self.feed_why
            yield self._announce(candidate, why)
            return
        raise pypi.FeedError("no feed answered: " + "; ".join(reasons))

    def _poll_one(self, feed: str, now: float):
        return {"changelog": self._poll_changelog, "simple": self._poll_simple, "watch": self._poll_watch}[feed](now)

    @defer.inlineCallbacks
    def _announce(self, feed: str, why: str):
        """Say in the log, and in the UI (a Change of category `feed`), when the feed in use changes."""
        changed = feed != self.active_feed
        self.active_feed, self.feed_why = feed, why
        if not changed:
            return
        log.msg(f"{self.name}: following {self.settings.url} through the {feed} feed: {why}")
        if self.saved_feed != feed:
            yield self.master.data.updates.addChange(**pypi.feed_change(feed, why, self.settings.url))
            self.saved_feed = feed

    # -- HTTP ------------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _request(self, method: str, path: str, what: str, **kwargs):
        """(status, body, headers) of one request; network errors, 429 and 5xx become FeedErrors."""
        self.requests += 1
        try:
            response = yield getattr(self.session, method)(path, timeout=self.settings.timeout, **kwargs)
            body = yield response.content()
        except Exception as error:  # refused, reset, timed out: the index is not answering
            raise pypi.Unavailable(f"{what}: {type(error).__name__}: {str(error)[:200]}") from None
        headers = _headers(response)
        if response.code == 429 or response.code >= 500:
            retry_after = _retry_after(headers.get("retry-after"))
            error = (pypi.RateLimited if response.code == 429 else pypi.FeedError)(
                f"{what}: HTTP {response.code}", *([retry_after or 60.0] if response.code == 429 else [])
            )
            if response.code != 429 and retry_after:
                error.retry_after = retry_after
            raise error
        return response.code, body, headers

    @defer.inlineCallbacks
    def _xmlrpc(self, method: str, *params):
        code, body, _ = yield self._request(
            "post", "/pypi", f"XML-RPC {method}", data=pypi.xmlrpc_body(method, *params),
            headers={"Content-Type": "text/xml"},
        )
        if code != 200:
            raise pypi.Unavailable(f"XML-RPC {method}: HTTP {code}")
        return pypi.xmlrpc_answer(body)

    @defer.inlineCallbacks
    def _project(self, name: str, etag: str | None = None):
        """(status, Project or None, headers) of /pypi/<name>/json. The project's serial is the
        answer's X-PyPI-Last-Serial where it has one (PyPI's CDN keeps it with the cached body)."""
        headers = {"Accept": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        code, body, response_headers = yield self._request(
            "get", f"/pypi/{urllib.parse.quote(name, safe='')}/json", f"metadata of {name}", headers=headers
        )
        if code != 200:
            return code, None, response_headers
        project = pypi.parse_project(body)
        serial = pypi.serial_header(response_headers.get("x-pypi-last-serial"))
        if serial is not None:
            project = dataclasses.replace(project, last_serial=serial)
        return code, project, response_headers

    # -- the changelog feed ----------------------------------------------------------------------
    @defer.inlineCallbacks
    def _poll_changelog(self, now: float):
        if self.cursor is None:
            serial = yield self._xmlrpc("changelog_last_serial")
            if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
                raise pypi.Unavailable(f"changelog_last_serial answered {str(serial)[:80]!r}, not a serial")
            self.cursor = 0 if self.settings.backfill else serial
            self.floor = self.cursor
            log.msg(f"{self.name}: first start: following the journal from serial {self.cursor}")
            return
        since = max(self.floor, self.cursor - self.settings.margin)
        rows = yield self._xmlrpc("changelog_since_serial", since)
        events, refused = pypi.parse_changelog(rows)
        del rows
        self._log_refused(refused)
        cursor = self.cursor
        for event in events:
            if event.serial <= since or event.serial in self.seen:
                continue  # read before (the margin), or older than asked for
            if self.releases.full():
                log.msg(f"{self.name}: {len(self.releases.pending)} releases pending; the rest of the journal waits")
                break
            yield self._take_event(event, now)
            self.seen.add(event.serial)
            cursor = max(cursor, event.serial)
        self.cursor = cursor
        self.seen = {serial for serial in self.seen if serial > cursor - self.settings.margin}

    @defer.inlineCallbacks
    def _take_event(self, event: pypi.Event, now: float):
        if not self.settings.wanted(event.name):
            return
        reason = self.settings.skip_reason(event.name)
        if reason is not None:
            if event.kind == "new":
                yield self._skipped(event.name, event.version, reason)
            return
        for action in self.releases.take(event, now):
            yield self._act(action, now)

    @defer.inlineCallbacks
    def _act(self, action, now: float):
        if isinstance(action, Cancel):
            yield self._cancel(action.name, action.version, action.reason)
        elif isinstance(action, Retest):
            entry = self.releases.awaiting.pop(action.key, None)
            if entry is not None:
                yield self._add(pypi.with_sdist(entry["change"], action.filename))

    def _log_refused(self, refused: list[str]) -> None:
        for reason in refused[:MAX_LOGGED_REFUSALS]:
            log.msg(f"{self.name}: refused a journal row: {reason}")
        if len(refused) > MAX_LOGGED_REFUSALS:
            log.msg(f"{self.name}: ... and {len(refused) - MAX_LOGGED_REFUSALS} more rows refused")

    # -- the simple feed -------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _poll_simple(self, now: float):
        code, body, headers = yield self._request(
            "get", "/simple/", "the simple index", headers={"Accept": pypi.SIMPLE_JSON}
        )
        if code != 200:
            raise pypi.Unavailable(f"the simple index: HTTP {code}")
        last, projects = pypi.parse_simple_index(body, headers.get("content-type", ""))
        del body
        if self.cursor is None:
            self.cursor = self.floor = 0 if self.settings.backfill else last
            self.simple_since = 0 if self.settings.backfill else now
            log.msg(f"{self.name}: first start: following the simple index from serial {self.cursor}")
            return
        changed = pypi.changed_since(projects, self.cursor)
        del projects
        since = (self.simple_since - RECHECK_MARGIN) if self.simple_since else 0
        complete = len(changed) <= MAX_PROJECTS_PER_POLL
        for name, serial in changed[:MAX_PROJECTS_PER_POLL]:
            if self.settings.wanted(name):
                code, project, _ = yield self._project(name)
                if project is not None:
                    yield self._take_project(project, since, now)
                elif code != 404:
                    raise pypi.FeedError(f"metadata of {name}: HTTP {code}")
            self.cursor = serial
        if complete:
            self.cursor = max(self.cursor, last)
            self.simple_since = now

    # -- the watch feed --------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _poll_watch(self, now: float):
        answered = False
        for name in self.settings.watch:
            known = self.watched.get(name)
            try:
                code, project, headers = yield self._project(name, known and known.get("etag"))
            except pypi.RateLimited:
                raise
            except pypi.FeedError as error:
                log.msg(f"{self.name}: watch: {name}: {error}")
                continue
            answered = True
            if code == 304 or (code == 200 and known and project.last_serial is not None
                               and project.last_serial == known.get("serial")):
                known["checked"] = now
                continue
            if project is None:
                log.msg(f"{self.name}: watch: {name}: HTTP {code}; is the name right?")
                continue
            if known:
                yield self._take_project(project, known["checked"] - RECHECK_MARGIN, now)
            elif self.settings.backfill:
                yield self._take_project(project, 0, now)
            else:
                yield self._take_project(project, now - self.settings.watch_recent, now, latest_only=True)
            self.watched[name] = {"etag": headers.get("etag"), "serial": project.last_serial, "checked": now}
        if not answered:
            raise pypi.Unavailable("no watched package's metadata could be read")

    # -- releases from a project's metadata (simple and watch feeds) -----------------------------
    @defer.inlineCallbacks
    def _take_project(self, project: pypi.Project, since: float, now: float, latest_only: bool = False):
        if not self.settings.wanted(project.name):
            return
        releases = sorted(project.releases.values(), key=lambda r: r.first_upload)
        if latest_only:
            releases = [r for r in releases if r.has_files and not r.yanked][-1:]
        for release in releases:
            key = release.key
            if release.yanked:
                if key in self.releases.pending or key in self.releases.awaiting or release.first_upload >= since:
                    self.releases.pending.pop(key, None)
                    self.releases.awaiting.pop(key, None)
                    if release.first_upload >= since:
                        yield self._cancel(project.name, release.version, "release yanked")
                continue
            if key in self.releases.awaiting and release.sdists:
                entry = self.releases.awaiting.pop(key)
                yield self._add(pypi.with_sdist(entry["change"], release.sdists[0]))
                continue
            if release.first_upload < since or not release.has_files:
                continue
            reason = self.settings.skip_reason(project.name)
            if reason is not None:
                yield self._skipped(project.name, release.version, reason)
                continue
            if (yield self._known(project.name, release.version)):
                self.releases.pending.pop(key, None)
                continue
            change = pypi.change_for(project, release, self.settings.url)
            if not release.sdists and now - release.first_upload < self.settings.sdist_wait:
                self.releases.wait_for_sdist(key, project.name, release.version, change, release.first_upload)
                continue
            yield self._emit(key, change, now)

    # -- building --------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _build_ready(self, now: float):
        """Pending releases whose time has come: fetch their metadata (once a project) and add Changes.

        In batches: one database query asks which releases of a batch are Changes already, and the
        batch's metadata is fetched at most MAX_CONCURRENT_FETCHES requests at a time; the Changes
        are then added one by one in journal order. A burst of 10,000 releases costs about a minute
        of metadata requests one at a time, a few seconds this way.
        """
        keys = self.releases.ready(now, MAX_FETCHES_PER_POLL)
        for start in range(0, len(keys), BATCH):
            batch = [(key, self.releases.pending.get(key)) for key in keys[start:start + BATCH]]
            batch = [(key, entry) for key, entry in batch if entry is not None]
            known = yield self._known_releases([(entry["name"], entry["version"]) for _, entry in batch])
            for key, entry in batch:
                if (entry["name"], entry["version"]) in known:
                    self.releases.pending.pop(key, None)
            batch = [(key, entry) for key, entry in batch if key in self.releases.pending]
            wanted = list(dict.fromkeys(entry["name"] for _, entry in batch if entry.get("change") is None))
            projects, limited = yield self._fetch_projects(wanted)
            for key, entry in batch:
                yield self._build_one(key, entry, projects, now)
            if limited is not None:
                self.backoff_until = now + max(1.0, limited.retry_after)
                log.msg(f"{self.name}: rate limited while reading metadata ({limited})")
                return

    @defer.inlineCallbacks
    def _build_one(self, key: str, entry: dict, projects: dict, now: float):
        name, version = entry["name"], entry["version"]
        change = entry.get("change")
        if change is None:
            if name not in projects:
                return  # not fetched: the index asked us to slow down; the next poll tries again
            fetched = projects[name]
            if isinstance(fetched, pypi.FeedError):
                log.msg(f"{self.name}: {name} {version}: {fetched}; trying again later")
                self.releases.postpone(key, now, self.settings.poll_interval)
                return
            code, project = fetched
            release = project.releases.get(version) if project else None
            announced = entry.get("last_serial")
            if release is None and project is not None and pypi.older_than(project.last_serial, announced):
                # A cached answer from before the journal's event (bandersnatch's rule): ask again
                # later; only an answer as new as the event can say the release is gone.
                log.msg(f"{self.name}: {name} {version}: the index's answer is older than the journal "
                        f"(serial {project.last_serial} < {announced}); asking again later")
                if not self.releases.postpone(key, now, self.settings.poll_interval):
                    log.msg(f"{self.name}: {name} {version}: the index's answer stayed stale for a day; given up")
                return
            if code == 404 or (project is not None and release is None and project.releases):
                log.msg(f"{self.name}: {name} {version} is no longer on the index; not built")
                self.releases.pending.pop(key, None)
                return
            if release is None or not release.has_files:
                if not self.releases.postpone(key, now, self.settings.poll_interval):
                    log.msg(f"{self.name}: {name} {version}: no files after a day; given up")
                return
            if release.yanked:
                log.msg(f"{self.name}: {name} {version} is yanked; not built")
                self.releases.pending.pop(key, None)
                return
            change = pypi.change_for(project, release, self.settings.url)
        yield self._emit(key, change, now)

    @defer.inlineCallbacks
    def _fetch_projects(self, names: list[str]):
        """({name: (status, Project or None) or the FeedError}, the RateLimited error or None).

        At most MAX_CONCURRENT_FETCHES requests are in flight; after a 429 no new one starts.
        """
        results: dict = {}
        limited: list = []
        semaphore = defer.DeferredSemaphore(MAX_CONCURRENT_FETCHES)

        @defer.inlineCallbacks
        def fetch(name):
            if limited:
                return
            try:
                code, project, _ = yield self._project(name)
            except pypi.RateLimited as error:
                limited.append(error)
            except pypi.FeedError as error:
                results[name] = error
            else:
                results[name] = (code, project)

        yield defer.gatherResults([semaphore.run(fetch, name) for name in names], consumeErrors=True)
        return results, (limited[0] if limited else None)

    @defer.inlineCallbacks
    def _known_releases(self, releases: list[tuple[str, str]]):
        """Which of these (name, version) are Changes already (see _known): one query for them all.

        The query asks for these names crossed with these versions, so a project with a long history
        costs only the rows that could match."""
        if not releases:
            return set()
        found = yield self.master.data.get(
            ("changes",),
            filters=[
                resultspec.Filter("project", "eq", sorted({name for name, _ in releases})),
                resultspec.Filter("revision", "eq", sorted({version for _, version in releases})),
                resultspec.Filter("category", "eq", ["release"]),
            ],
        )
        return {(change["project"], change["revision"]) for change in found} & set(releases)

    @defer.inlineCallbacks
    def _emit(self, key: str, change: dict, now: float):
        yield self._add(change)
        self.releases.built(key, change, now)

    @defer.inlineCallbacks
    def _add(self, change: dict):
        # addChange rewrites the properties in place (to (value, source) pairs): give it a copy,
        # so the Change kept for a later sdist stays as it was.
        yield self.master.data.updates.addChange(**copy.deepcopy(change))
        log.msg(f"{self.name}: {change['comments']}")

    @defer.inlineCallbacks
    def _known(self, name: str, version: str, category: str = "release"):
        """Is there a Change for this release already? The database is the record of what was built."""
        found = yield self.master.data.get(
            ("changes",),
            filters=[
                resultspec.Filter("project", "eq", [name]),
                resultspec.Filter("revision", "eq", [version]),
                resultspec.Filter("category", "eq", [category]),
            ],
            limit=1,
        )
        return bool(found)

    @defer.inlineCallbacks
    def _skipped(self, name: str, version: str, reason: str):
        if not (yield self._known(name, version, "skipped")):
            yield self._add(pypi.skipped_change(name, version, reason, self.settings.url))

    @defer.inlineCallbacks
    def _cancel(self, name: str, version: str | None, reason: str):
        """Cancel the build requests not yet started for a yanked or removed release."""
        requests = yield self.master.data.get(
            ("buildrequests",),
            filters=[resultspec.Filter("claimed", "eq", [False]), resultspec.Filter("complete", "eq", [False])],
        )
        properties_of: dict[int, dict] = {}
        cancelled = 0
        for request in requests:
            buildsetid = request["buildsetid"]
            if buildsetid not in properties_of:
                properties_of[buildsetid] = (yield self.master.data.get(("buildsets", buildsetid, "properties"))) or {}
            properties = properties_of[buildsetid]
            package = (properties.get("package") or (None,))[0]
            if package != name or (version is not None and (properties.get("version") or (None,))[0] != version):
                continue
            yield self.master.data.control(
                "cancel", {"reason": f"{name} {version or ''}: {reason}".replace("  ", " ")},
                ("buildrequests", request["buildrequestid"]),
            )
            cancelled += 1
        if cancelled:
            log.msg(f"{self.name}: {name} {version or '(all releases)'}: {reason}; {cancelled} pending builds cancelled")


def _headers(response) -> dict[str, str]:
    """The few response headers we read. Buildbot's IHttpResponse does not expose headers, so this
    reads them from the wrapped treq (or txrequests) response."""
    raw = getattr(getattr(response, "_res", None), "headers", None)
    found = {}
    for name in ("content-type", "etag", "retry-after", "x-pypi-last-serial"):
        if raw is None:
            break
        if hasattr(raw, "getRawHeaders"):
            values = raw.getRawHeaders(name)
            value = values[0] if values else None
        else:
            value = raw.get(name)
        if value is not None:
            found[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return found


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = pypi.parse_time(value)
        return max(0.0, when - time.time()) if when else None
