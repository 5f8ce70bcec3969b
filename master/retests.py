"""Re-tests: the latest release of every package of a set, on every slot, again and again.

A package that passed last month can break today (a new Python, a new release of a dependency).
`RetestService` keeps a few re-test requests pending per slot and tops them up as they run:

- rolling re-tests (`[rolling] enabled`): the packages of the set (`all` of the index, the `watch`
  list, or a `file:` of names) whose last test on the slot is older than `period`, least recently
  tested first. A new slot has tested nothing, so the whole set is due there at once, and
  master/priorities.py gives new slots the idle workers first;
- dependency re-tests (`[rolling] dependants`): when a release of a package appears, the packages
  of the set whose last build resolved it at another version are due on every slot, before rolling
  ones, with `because` = "requests 2.33.0 (was 2.32.5)".

Only `pending_per_slot` requests (default: twice the slot's capacity) wait at a time, so choosing
the next re-test is one indexed query and memory stays flat however large the set. Re-tests run at
priority 0 (master/priorities.py): a new release or a rebuild never waits behind them.

The bookkeeping is in the master's database, in three tables of our own (created if absent; plain
SQLAlchemy Core, so SQLite and PostgreSQL alike):

- farm_rolling_set (name): the set;
- farm_slot_tests (package, slot, tested_at, version, queued_bsid, because): when each package of
  the set was last tested on each slot (0: never), the re-test buildset waiting for it, and the
  dependency release it is due for;
- farm_dependencies (package, dependency, version, slot): what the last builds of the set's
  packages resolved (their report's `dependencies`).

Any finished build of a package of the set counts as its test on that slot, whatever started it.

In a cluster of masters (master/cluster.py) the queue is topped up by the master that holds the
`duties` scheduler, and each build is recorded by the master that ran it.
"""

from __future__ import annotations

import html.parser
import json
import re
import time
from pathlib import Path

import sqlalchemy as sa
from buildbot.process.results import RETRY
from buildbot.util import httpclientservice, service
from buildbot.util.state import StateMixin
from packaging.utils import canonicalize_name
from twisted.internet import defer, reactor, task
from twisted.python import log

from master import cluster, priorities

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
INDEX_REFRESH = 24 * 3600  # seconds between two readings of the index's project list (set = "all")
RATE_WINDOW = 24 * 3600  # the achieved period is measured over the tests of the last day
BATCH = 500  # names inserted or deleted per statement
RECORD_GRACE = 60  # seconds a finished re-test stays pending for its build to be recorded
NAME = re.compile(r"^([a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9])$")

metadata = sa.MetaData()
rolling_set = sa.Table(
    "farm_rolling_set", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
)
slot_tests = sa.Table(
    "farm_slot_tests", metadata,
    sa.Column("package", sa.String(200), primary_key=True),
    sa.Column("slot", sa.String(100), primary_key=True),
    sa.Column("tested_at", sa.Integer, nullable=False, server_default=sa.DefaultClause("0")),
    sa.Column("version", sa.String(100)),
    sa.Column("queued_bsid", sa.Integer),
    sa.Column("because", sa.String(300)),
    sa.Index("farm_slot_tests_lru", "slot", "tested_at"),
    sa.Index("farm_slot_tests_queued", "queued_bsid"),
)
dependencies = sa.Table(
    "farm_dependencies", metadata,
    sa.Column("package", sa.String(200), primary_key=True),
    sa.Column("dependency", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(100), nullable=False),
    sa.Column("slot", sa.String(100), nullable=False),
    sa.Index("farm_dependencies_dependency", "dependency"),
)


# -- plain functions (no I/O) -------------------------------------------------------------------


def names_of_file(text: str) -> list[str]:
    """The package names of a set file: one a line; blank lines and `#` comments ignored."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and NAME.match(canonicalize_name(line)):
            found.append(canonicalize_name(line))
    return list(dict.fromkeys(found))


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []
        self._in_anchor = False

    def handle_starttag(self, tag, attrs):
        self._in_anchor = tag == "a"

    def handle_endtag(self, tag):
        self._in_anchor = False

    def handle_data(self, data):
        if self._in_anchor and data.strip():
            self.names.append(data.strip())


def names_of_simple_index(body: bytes, content_type: str) -> list[str]:
    """The project names of `GET /simple/`: PEP 691 JSON, or the PEP 503 HTML a proxy may answer."""
    if "json" in (content_type or ""):
        document = json.loads(body)
        raw = [p.get("name", "") for p in document.get("projects", []) if isinstance(p, dict)]
    else:
        parser = _Anchors()
        parser.feed(body.decode("utf-8", "replace"))
        raw = parser.names
    return list(dict.fromkeys(n for n in (canonicalize_name(r.strip()) for r in raw) if NAME.match(n)))


def because_text(dependency: str, version: str, previous: str) -> str:
    return f"{dependency} {version} (was {previous})"


def achieved_period(set_size: int, tested_in_window: int, window: float) -> float | None:
    """Seconds one cycle through the set takes at the rate of the window; None without tests."""
    if not set_size or not tested_in_window or window <= 0:
        return None
    return set_size * window / tested_in_window


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "not measured yet"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    amount, unit = (seconds / 3600, "hour") if seconds < 2 * 86400 else (seconds / 86400, "day")
    number = f"{amount:.1f}".removesuffix(".0")
    return f"{number} {unit}" + ("" if number == "1" else "s")


def group_by_package(picks: dict[str, list[tuple[str, str | None]]]) -> list[tuple[str, str | None, list[str]]]:
    """{slot: [(package, because)]} as [(package, because, [slots])]: one buildset per package."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for slot, chosen in picks.items():
        for package, because in chosen:
            groups.setdefault((package, because), []).append(slot)
    return [(package, because, sorted(slots)) for (package, because), slots in groups.items()]


# -- database work (each runs in the database's thread, in one transaction) -----------------------

def create_tables(conn) -> None:
    metadata.create_all(conn, checkfirst=True)


def set_names(conn) -> set[str]:
    return {row[0] for row in conn.execute(sa.select(rolling_set.c.name))}


def sync_set(conn, wanted: list[str], slots: list[str]) -> tuple[int, int]:
    """Make the set `wanted` and give every (package, slot) a row; returns (added, removed)."""
    known = set_names(conn)
    wanted_set = set(wanted)
    added = [n for n in wanted if n not in known]
    removed = sorted(known - wanted_set)
    for start in range(0, len(added), BATCH):
        conn.execute(rolling_set.insert(), [{"name": n} for n in added[start:start + BATCH]])
    for start in range(0, len(removed), BATCH):
        chunk = removed[start:start + BATCH]
        conn.execute(rolling_set.delete().where(rolling_set.c.name.in_(chunk)))
        conn.execute(slot_tests.delete().where(slot_tests.c.package.in_(chunk)))
        conn.execute(dependencies.delete().where(dependencies.c.package.in_(chunk)))
    ensure_slot_rows(conn, slots)
    return len(added), len(removed)


def ensure_slot_rows(conn, slots: list[str]) -> None:
    """A row (never tested) for each package of the set on each slot that has none yet."""
    for slot in slots:
        missing = sa.select(rolling_set.c.name, sa.literal(slot), sa.literal(0)).where(
            ~sa.exists().where(sa.and_(slot_tests.c.package == rolling_set.c.name, slot_tests.c.slot == slot))
        )
        conn.execute(slot_tests.insert().from_select(["package", "slot", "tested_at"], missing))


def forget_finished(conn, buildsets, now: int) -> None:
    """Re-tests whose buildset is complete (built, collapsed, cancelled) are no longer pending, once
    the build's own record has had RECORD_GRACE seconds: a buildset completes a moment before the
    master that ran its build records the test (record_build), and a re-test forgotten in between
    would be chosen again, the package tested twice."""
    done = sa.select(buildsets.c.id).where(buildsets.c.complete != 0, buildsets.c.complete_at <= now - RECORD_GRACE)
    conn.execute(slot_tests.update().where(slot_tests.c.queued_bsid.in_(done)).values(queued_bsid=None))


def pending_counts(conn, buildsets) -> dict[str, int]:
    """Re-tests waiting or building per slot (one that finished is not, though not yet forgotten)."""
    waiting = sa.select(buildsets.c.id).where(buildsets.c.complete == 0)
    query = (sa.select(slot_tests.c.slot, sa.func.count()).where(slot_tests.c.queued_bsid.in_(waiting))
             .group_by(slot_tests.c.slot))
    return {slot: count for slot, count in conn.execute(query)}


def choose(conn, slot: str, count: int, rolling: bool, due_before: int) -> list[tuple[str, str | None]]:
    """The next `count` re-tests of a slot: dependency re-tests first, then the least recently tested.

    Both are indexed reads of at most `count` rows (plus the few pending ones skipped)."""
    if count <= 0:
        return []
    waiting = (slot_tests.c.slot == slot, slot_tests.c.queued_bsid.is_(None))
    chosen = list(conn.execute(
        sa.select(slot_tests.c.package, slot_tests.c.because)
        .where(*waiting, slot_tests.c.because.isnot(None))
        .order_by(slot_tests.c.tested_at, slot_tests.c.package).limit(count)
    ))
    if rolling and len(chosen) < count:
        chosen += list(conn.execute(
            sa.select(slot_tests.c.package, slot_tests.c.because)
            .where(*waiting, slot_tests.c.because.is_(None), slot_tests.c.tested_at <= due_before)
            .order_by(slot_tests.c.tested_at, slot_tests.c.package).limit(count - len(chosen))
        ))
    return [(package, because) for package, because in chosen]


def mark_queued(conn, package: str, slots: list[str], buildsetid: int) -> None:
    conn.execute(
        slot_tests.update().where(slot_tests.c.package == package, slot_tests.c.slot.in_(slots))
        .values(queued_bsid=buildsetid)
    )


def record_build(conn, package: str, slot: str, version: str, buildsetid: int | None, when: int,
                 resolved: list[tuple[str, str]] | None) -> bool:
    """A build of `package` finished on `slot`: its test time, and the dependencies it resolved.

    Returns whether the package is in the set (only the set's packages are recorded)."""
    row = conn.execute(
        sa.select(slot_tests.c.queued_bsid).where(slot_tests.c.package == package, slot_tests.c.slot == slot)
    ).first()
    if row is None:
        return False
    values = {"tested_at": when, "version": version or None, "because": None}
    if row[0] is not None and row[0] == buildsetid:
        values["queued_bsid"] = None
    conn.execute(slot_tests.update().where(slot_tests.c.package == package, slot_tests.c.slot == slot).values(**values))
    if resolved is not None:
        names = {name for name, _ in resolved}
        # What this slot reported before and resolves no more is gone; other slots keep theirs.
        conn.execute(dependencies.delete().where(
            dependencies.c.package == package, dependencies.c.slot == slot,
            dependencies.c.dependency.notin_(names) if names else sa.true(),
        ))
        for name, dep_version in resolved:
            updated = conn.execute(
                dependencies.update().where(dependencies.c.package == package, dependencies.c.dependency == name)
                .values(version=dep_version, slot=slot)
            )
            if not updated.rowcount:
                conn.execute(dependencies.insert().values(package=package, dependency=name, version=dep_version, slot=slot))
    return True


def mark_dependants(conn, dependency: str, version: str) -> list[tuple[str, str]]:
    """The set's packages that resolved `dependency` at another version are due: [(package, because)]."""
    query = (
        sa.select(dependencies.c.package, dependencies.c.version)
        .where(dependencies.c.dependency == dependency, dependencies.c.version != version,
               dependencies.c.package != dependency)
    )
    due = []
    for package, previous in conn.execute(query).fetchall():
        because = because_text(dependency, version, previous)
        conn.execute(slot_tests.update().where(slot_tests.c.package == package).values(because=because))
        due.append((package, because))
    return due


def slot_progress(conn, now: int, window: int) -> dict[str, dict]:
    """Per slot: packages ever tested, tested within the window, pending re-tests, due by a dependency."""
    query = sa.select(
        slot_tests.c.slot,
        sa.func.count(),
        sa.func.sum(sa.case((slot_tests.c.tested_at > 0, 1), else_=0)),
        sa.func.sum(sa.case((slot_tests.c.tested_at > now - window, 1), else_=0)),
        sa.func.sum(sa.case((slot_tests.c.queued_bsid.isnot(None), 1), else_=0)),
        sa.func.sum(sa.case((slot_tests.c.because.isnot(None), 1), else_=0)),
    ).group_by(slot_tests.c.slot)
    return {
        slot: {"set_size": int(total), "tested": int(tested or 0), "in_window": int(recent or 0),
               "pending": int(pending or 0), "due_by_dependency": int(due or 0)}
        for slot, total, tested, recent, pending, due in conn.execute(query)
    }


def new_slots(conn, slots: list[str], now: int) -> set[str]:
    """The slots that have not yet tested the whole set once."""
    progress = slot_progress(conn, now, RATE_WINDOW)
    return {slot for slot in slots if slot in progress and progress[slot]["tested"] < progress[slot]["set_size"]}


# -- the service ------------------------------------------------------------------------------------

class RetestService(service.BuildbotService, StateMixin):
    """Keeps the re-test queue of every slot topped up (see the module's docstring)."""

    name = priorities.SERVICE_NAME

    def checkConfig(self, settings, slot_capacity: dict[str, int]):
        pass

    @defer.inlineCallbacks
    def reconfigService(self, settings, slot_capacity: dict[str, int]):
        self.rolling = settings.rolling
        self.watch = list(settings.pypi.watch)
        self.pypi_url = settings.pypi.url.rstrip("/")
        self.user_agent = settings.pypi.user_agent
        self.http_timeout = settings.pypi.timeout
        self.slot_capacity = dict(slot_capacity)
        self.slots = sorted(slot_capacity)
        self.set_source = None  # what the set was last read from: forces a sync on reconfig
        self.new_slots: set[str] = getattr(self, "new_slots", set())
        self.started_at = getattr(self, "started_at", None) or time.time()
        self.last_choice_seconds: float | None = getattr(self, "last_choice_seconds", None)
        self.tables_ready = getattr(self, "tables_ready", False)
        self.lock = getattr(self, "lock", None) or defer.DeferredLock()
        self.builder_names: dict[int, str] = {}
        if getattr(self, "timer", None) is not None and self.timer.running:
            self.timer.stop()
        self.timer = task.LoopingCall(self.top_up)
        if self.running:
            self._start_timer()
        yield super().reconfigService()

    def target(self, slot: str) -> int:
        return self.rolling.pending_per_slot or 2 * self.slot_capacity.get(slot, 1)

    # -- lifecycle --------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        self.consumers = [
            (yield self.master.mq.startConsuming(self._build_finished, ("builds", None, "finished"))),
            (yield self.master.mq.startConsuming(self._change_added, ("changes", None, "new"))),
        ]
        self._start_timer()

    def _start_timer(self):
        if not self.timer.running:
            # The first top-up waits a moment: the schedulers and builders of this configuration
            # must be in place before re-tests are queued for them.
            self.first_call = reactor.callLater(1, lambda: self.timer.running or self.timer.start(
                self.rolling.top_up_interval, now=True))

    @defer.inlineCallbacks
    def stopService(self):
        for consumer in getattr(self, "consumers", []):
            consumer.stopConsuming()
        self.consumers = []
        call = getattr(self, "first_call", None)
        if call is not None and call.active():
            call.cancel()
        if self.timer.running:
            self.timer.stop()
        yield super().stopService()

    def kick(self):
        """Top up soon (a build finished, a dependency was released); calls close together merge."""
        if getattr(self, "kicked", None) is None or not self.kicked.active():
            self.kicked = reactor.callLater(0.2, self.top_up)

    # -- the set ------------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _ensure_tables(self):
        if not self.tables_ready:
            yield self.master.db.pool.do_with_transaction(create_tables)
            self.tables_ready = True

    @defer.inlineCallbacks
    def _read_set(self):
        """(names, what they came from) of the configured set, or None when they need not be read again."""
        chosen = self.rolling.set
        if chosen == "watch":
            source = ("watch", tuple(self.watch))
            return (self.watch, source) if source != self.set_source else None
        if chosen == "file":
            path: Path = self.rolling.set_file
            try:
                stamp = path.stat().st_mtime_ns
            except OSError as error:
                if self.set_source != ("file", None):
                    log.msg(f"{self.name}: cannot read the rolling set {path}: {error}; keeping the set as it was")
                    self.set_source = ("file", None)
                return None
            source = ("file", str(path), stamp)
            return (names_of_file(path.read_text(encoding="utf-8", errors="replace")), source) if source != self.set_source else None
        # "all": the index's project list, once a day (and when the master starts without one).
        read_at = yield self.getState("index_read_at", 0)
        if self.set_source == ("all",) and time.time() - read_at < INDEX_REFRESH:
            return None
        if time.time() - read_at < INDEX_REFRESH and (yield self.master.db.pool.do(_has_set)):
            self.set_source = ("all",)
            yield self.master.db.pool.do_with_transaction(ensure_slot_rows, self.slots)
            return None
        names = yield self._fetch_index_names()
        if names is None:
            return None
        yield self.setState("index_read_at", time.time())
        return names, ("all",)

    @defer.inlineCallbacks
    def _fetch_index_names(self):
        session = httpclientservice.HTTPSession(
            self.master.httpservice, self.pypi_url, headers={"User-Agent": self.user_agent}
        )
        try:
            response = yield session.get("/simple/", headers={"Accept": f"{SIMPLE_JSON}, text/html;q=0.1"},
                                         timeout=max(self.http_timeout, 300))
            body = yield response.content()
            if response.code != 200:
                raise ValueError(f"HTTP {response.code}")
            content_type = response.headers.getRawHeaders(b"content-type", [b""])[0].decode("latin-1")
            names = names_of_simple_index(body, content_type)
        except Exception as error:
            log.msg(f"{self.name}: the project list of {self.pypi_url}/simple/ could not be read ({error}); "
                    f"trying again at the next top-up")
            return None
        log.msg(f"{self.name}: {len(names)} projects in {self.pypi_url}/simple/")
        return names

    @defer.inlineCallbacks
    def _sync_set(self):
        found = yield self._read_set()
        if found is None:
            return
        names, source = found
        added, removed = yield self.master.db.pool.do_with_transaction(sync_set, names, self.slots)
        self.set_source = source
        if added or removed:
            log.msg(f"{self.name}: the rolling set ({self.rolling.set}) has {len(names)} packages "
                    f"({added} added, {removed} removed)")

    # -- topping up -----------------------------------------------------------------------------------
    def top_up(self):
        return self.lock.run(self._top_up)

    @defer.inlineCallbacks
    def _top_up(self):
        if not self.running:
            return
        try:
            yield self._ensure_tables()
            if not cluster.duties_here(self.master):
                # Another master of the cluster queues the re-tests; this one only learns which
                # slots are new, for the order in which its workers take builds.
                self.new_slots = yield self.master.db.pool.do(new_slots, self.slots, int(time.time()))
                return
            yield self._sync_set()
            started = time.perf_counter()
            picks = yield self.master.db.pool.do_with_transaction(self._choose_all, int(time.time()))
            self.last_choice_seconds = time.perf_counter() - started
            scheduler = self.master.scheduler_manager.namedServices.get("retests")
            if scheduler is None:
                return
            for package, because, slots in group_by_package(picks):
                kind = "dependency" if because else "rolling"
                buildsetid, _ = yield scheduler.retest(package, slots, kind, because or "")
                yield self.master.db.pool.do_with_transaction(mark_queued, package, slots, buildsetid)
            self.new_slots = yield self.master.db.pool.do(new_slots, self.slots, int(time.time()))
        except Exception as error:
            log.err(error, f"{self.name}: topping up the re-test queue")

    def _choose_all(self, conn, now: int) -> dict[str, list[tuple[str, str | None]]]:
        forget_finished(conn, self.master.db.model.buildsets, now)
        pending = pending_counts(conn, self.master.db.model.buildsets)
        # New slots first: they choose before the slots that have seen the set.
        order = sorted(self.slots, key=lambda slot: (slot not in self.new_slots, slot))
        return {
            slot: choose(conn, slot, self.target(slot) - pending.get(slot, 0), self.rolling.enabled,
                         now - self.rolling.period)
            for slot in order
        }

    # -- events -------------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _build_finished(self, key, build):
        try:
            if build.get("results") == RETRY:
                return  # the request goes back in the queue: not a test yet
            if build.get("masterid") not in (None, self.master.masterid):
                return  # in a cluster, each build is recorded by the master that ran it
            if not self.tables_ready:
                return
            slot = yield self._builder_name(build["builderid"])
            properties = yield self.master.data.get(("builds", build["buildid"], "properties"))
            package = (properties.get("package") or (None,))[0]
            if not package or slot not in self.slot_capacity:
                return
            report = (properties.get("report") or (None,))[0]
            resolved = None
            if isinstance(report, dict) and report.get("phases", {}).get("install", {}).get("status") == "ok":
                resolved = [(canonicalize_name(d["name"]), str(d["version"])) for d in report.get("dependencies") or []
                            if isinstance(d, dict) and d.get("name") and d.get("version")
                            and canonicalize_name(d["name"]) != canonicalize_name(package)]
            request = yield self.master.data.get(("buildrequests", build["buildrequestid"]))
            in_set = yield self.master.db.pool.do_with_transaction(
                record_build, canonicalize_name(package), slot, (properties.get("version") or ("",))[0] or "",
                request["buildsetid"] if request else None, int(time.time()), resolved,
            )
            if in_set:
                self.kick()
        except Exception as error:
            log.err(error, f"{self.name}: recording build {build.get('buildid')}")

    @defer.inlineCallbacks
    def _change_added(self, key, change):
        try:
            if not self.rolling.dependants or change.get("category") != "release" or not self.tables_ready:
                return
            dependency, version = canonicalize_name(change.get("project") or ""), change.get("revision") or ""
            if not dependency or not version:
                return
            due = yield self.master.db.pool.do_with_transaction(mark_dependants, dependency, version)
            if due:
                log.msg(f"{self.name}: {dependency} {version}: re-testing {len(due)} dependants "
                        f"({', '.join(p for p, _ in due[:10])}{' ...' if len(due) > 10 else ''})")
                self.kick()
        except Exception as error:
            log.err(error, f"{self.name}: dependants of change {change.get('changeid')}")

    @defer.inlineCallbacks
    def _builder_name(self, builderid: int) -> str:
        if builderid not in self.builder_names:
            builder = yield self.master.data.get(("builders", builderid))
            self.builder_names[builderid] = builder["name"] if builder else ""
        return self.builder_names[builderid]

    # -- the overview ---------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def status(self, now: float | None = None) -> dict:
        """What the overview shows: per slot, how far through the set, and the period achieved."""
        now = now or time.time()
        window = max(60.0, min(RATE_WINDOW, now - self.started_at))
        progress = {}
        if self.tables_ready:
            progress = yield self.master.db.pool.do(slot_progress, int(now), int(window))
        slots = []
        for slot in self.slots:
            row = progress.get(slot, {"set_size": 0, "tested": 0, "in_window": 0, "pending": 0, "due_by_dependency": 0})
            period = achieved_period(row["set_size"], row["in_window"], window)
            slots.append(dict(row, slot=slot, new=slot in self.new_slots, achieved_period_s=period,
                              achieved_period=duration_text(period)))
        return {
            "enabled": self.rolling.enabled,
            "dependants": self.rolling.dependants,
            "set": self.rolling.set if self.rolling.set != "file" else f"file:{self.rolling.set_file}",
            "hoped_period": duration_text(self.rolling.period),
            "hoped_period_s": self.rolling.period,
            "window_s": int(window),
            "window": duration_text(window),
            "last_choice_ms": round(self.last_choice_seconds * 1000, 2) if self.last_choice_seconds is not None else None,
            "slots": slots,
        }


def _has_set(conn) -> bool:
    return conn.execute(sa.select(rolling_set.c.name).limit(1)).first() is not None


def retest_services(settings, slot_capacity: dict[str, int]) -> list:
    """The re-test service for c['services'], when rolling or dependency re-tests are on."""
    return [RetestService(settings, slot_capacity)] if settings.rolling.active else []
