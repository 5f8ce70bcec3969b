"""The farm's own pages, as Buildbot wsgi dashboards (menu entries "Packages" and "Farm").

Under /plugins/wsgi_dashboards/packages/:
  index.html               the menu page: a search box and the recently tested packages
  index.html?name=six      the package page: versions x slots, outcome, duration, log link and
                           reproduce command per cell, the sandbox limits, the skip list, Rebuild
  six.json                 the same data as JSON
  six.svg                  a status badge for READMEs
  unsubscribe?...          the signed link in maintainer mail (master/mail.py), one-click too
  confirm?...              the signed link that asks an address from a package's metadata
Under /plugins/wsgi_dashboards/overview/:
  index.html               outcomes per slot over the last day, queues, workers, the feed,
                           re-tests (how far each slot is through the rolling set, the period
                           achieved) and the sdist checks
  overview.json            the same data as JSON

The UI fetches a dashboard's index.html and shows it inside its own page, where scripts do not
run; the package page is a whole page of its own (its Rebuild form needs a script). Data comes
from the master's data API on the reactor (`blockingCallFromThread`): Flask runs in a thread.
Every query is bounded by a limit.
"""

from __future__ import annotations

import datetime
import time
import urllib.parse
from pathlib import Path

import sqlalchemy as sa
from buildbot.data import resultspec
from buildbot.process.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS, statusToString
from buildbot.util import service
from farm_runner import contract, excuses
from flask import Flask, Response, abort, jsonify, render_template, request
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from twisted.internet import defer, reactor
from twisted.internet.threads import blockingCallFromThread
from twisted.web import resource

from master import history, maintainers, priorities
from master.outcomes import RESULTS
from master.settings import ADDRESS, Settings
from master.slots import slot_key

TEMPLATES = Path(__file__).resolve().parent / "templates"
PACKAGES = "packages"
OVERVIEW = "overview"
OUTCOMES = tuple(RESULTS)
# What a cell can say besides the runner's outcomes (contract.MEANING): the legend explains each.
BUILD_STATES = {
    "building": "the build is running now",
    "exception": "the build stopped on an error of the farm, not of the package (see its log); retried",
    "retry": "the worker went away or the build was interrupted; it is queued again",
    "cancelled": "an admin cancelled the build",
}
LEGEND = {**{outcome: contract.MEANING[outcome] for outcome in OUTCOMES}, **BUILD_STATES}
BADGE_COLOURS = {
    "passed": "#4c1", "warnings": "#dfb317", "failing": "#e05d44", "building": "#007ec6",
    "not applicable": "#9f9f9f", "unknown": "#9f9f9f",
}
DEFAULT_VERSIONS = 20
SDIST_STEP = "sdist"  # the step of steps/runner_steps.py that builds a release from its sdist
SDIST_RESULT_NAMES = {SUCCESS: "passed", WARNINGS: "warnings", FAILURE: "failed", SKIPPED: "not applicable"}


def dashboards(settings: Settings, slots: list[str], secret: bytes | None) -> list[dict]:
    """The c['www']['plugins']['wsgi_dashboards'] entries."""
    return [
        {"name": PACKAGES, "caption": "Packages", "app": packages_app(settings, slots, secret), "order": 1,
         "icon": "cube"},
        {"name": OVERVIEW, "caption": "Farm", "app": overview_app(settings, slots), "order": 2,
         "icon": "server"},
    ]


def _on_reactor(app, function, *args):
    """Run a Deferred-returning function of the master on the reactor thread and wait for it."""
    return blockingCallFromThread(reactor, function, app.buildbot_api.master, *args)


def _base_path(settings: Settings) -> str:
    return urllib.parse.urlsplit(settings.buildbot_url).path or "/"


def _time(value) -> str:
    if not value:
        return ""
    if isinstance(value, (int, float)):
        value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _seconds(value) -> float | None:
    if value is None:
        return None
    return value.timestamp() if isinstance(value, datetime.datetime) else float(value)


def outcome_of(build: dict) -> str:
    """The runner's outcome, else what stopped the build (exception, retry, cancelled)."""
    if not build["complete"]:
        return "building"
    outcome = history.property_value(build, "outcome")
    if build["results"] in (RETRY, EXCEPTION, CANCELLED):
        return contract.INFRA_ERROR if outcome == contract.INFRA_ERROR else statusToString(build["results"])
    return outcome or statusToString(build["results"])


def duration(build: dict) -> str:
    start, end = _seconds(build.get("started_at")), _seconds(build.get("complete_at"))
    if start is None:
        return ""
    seconds = int((end or time.time()) - start)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _version_key(version: str):
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, Version("0"))


# -- the package page's data -----------------------------------------------------------------------

@defer.inlineCallbacks
def package_data(master, settings: Settings, slots: list[str], name: str, versions: int = DEFAULT_VERSIONS):
    """Everything the package page, its JSON and its badge show."""
    name = canonicalize_name(name)
    changes = yield history.package_changes(master, name, limit=versions * 2)
    builds = yield history.builds_of_changes(master, changes)
    builders = {b["builderid"]: b["name"] for b in (yield master.data.get(("builders",)))}
    base = settings.buildbot_url
    rows: dict[str, dict] = {}
    for change in changes:
        version = change.get("revision") or ""
        if change.get("category") == "skipped" and version:
            rows.setdefault(version, {"version": version, "slots": {}, "skipped": change.get("comments") or "skipped"})
    for build in builds:  # newest first: the first build of a (version, slot) is the one shown
        version = history.property_value(build, "version") or ""
        slot = builders.get(build["builderid"], str(build["builderid"]))
        row = rows.setdefault(version or "(latest)", {"version": version or "(latest)", "slots": {}, "skipped": None})
        if slot in row["slots"]:
            continue
        row["slots"][slot] = {
            "outcome": outcome_of(build),
            "result": statusToString(build["results"]) if build["complete"] else "building",
            "state": build["state_string"],
            "duration": duration(build),
            "duration_s": (
                round(_seconds(build["complete_at"]) - _seconds(build["started_at"]), 1)
                if build["complete_at"] and build["started_at"] else None
            ),
            "build_url": f"{base}#/builders/{build['builderid']}/builds/{build['number']}",
            "buildid": build["buildid"],
            "reproduce": history.property_value(build, "reproduce") or "",
            "reason": history.property_value(build, "reason") or "",
            "sdist_outcome": history.property_value(build, "sdist_outcome") or "",
            "retest": history.property_value(build, "retest") or "",
            "because": history.property_value(build, "because") or "",
            "finished": _time(build.get("complete_at")),
            "tests": history.property_value(build, "tests") or {},
            "excused": excuses.sentences(history.property_value(build, "tests") or {}),
            "excused_tests": excuses.each_test(history.property_value(build, "tests") or {}),
            "verdict": history.verdict(build["results"]) if build["complete"] else None,
            "interpreter": history.property_value(build, "interpreter") or "",
            "prerelease": history.property_value(build, "interpreter_prerelease") is True,
        }
    ordered = sorted(rows.values(), key=lambda r: _version_key(r["version"]), reverse=True)[:versions]
    all_slots = list(slots) + sorted({s for r in ordered for s in r["slots"]} - set(slots), key=slot_key)
    mark_changes(ordered, all_slots)
    return {
        "package": name,
        "page": f"{base}plugins/wsgi_dashboards/{PACKAGES}/index.html?name={name}",
        "json": f"{base}plugins/wsgi_dashboards/{PACKAGES}/{name}.json",
        "badge": f"{base}plugins/wsgi_dashboards/{PACKAGES}/{name}.svg",
        "pypi": f"{settings.pypi.url.rstrip('/')}/project/{name}/",
        "skip": _skip_status(settings, name),
        "limits": limits_of(settings),
        "slots": all_slots,
        "prerelease": prerelease_slots(ordered),
        "builders": {v: k for k, v in builders.items() if v in all_slots},
        "versions": ordered,
        "status": badge_status(ordered),
    }


def mark_changes(rows: list[dict], slots: list[str]) -> None:
    """Mark each cell that is news: "regression" where it fails and the previous release on its
    slot, or this release on a neighbouring slot (the same OS, the next Python up or down),
    passed; "fixed" where it passes and the previous release on its slot failed. `rows` are the
    releases newest first, `slots` in version order; a cell gets "mark" and "mark_why"."""
    for i, row in enumerate(rows):
        for slot, cell in row["slots"].items():
            if cell["verdict"] is None:
                continue
            before = next(((r["version"], r["slots"][slot]["verdict"]) for r in rows[i + 1:]
                           if r["slots"].get(slot, {}).get("verdict")), (None, None))
            if cell["verdict"] == "failing" and before[1] == "passing":
                cell.update(mark="regression", mark_why=f"{before[0]} passed here")
            elif cell["verdict"] == "passing" and before[1] == "failing":
                cell.update(mark="fixed", mark_why=f"{before[0]} failed here")
            elif cell["verdict"] == "failing":
                passing = [s for s in neighbours(slot, slots)
                           if row["slots"].get(s, {}).get("verdict") == "passing"]
                if passing:
                    cell.update(mark="regression", mark_why=f"passes on {' and '.join(passing)}")


def prerelease_slots(rows: list[dict]) -> dict[str, str]:
    """{slot: interpreter version} of the slots whose newest build ran on a pre-release
    interpreter (3.15.0b1): the page marks them. `rows` are the releases newest first."""
    newest: dict[str, dict] = {}
    for row in rows:
        for slot, cell in row["slots"].items():
            if cell.get("interpreter"):
                newest.setdefault(slot, cell)
    return {slot: cell["interpreter"] for slot, cell in newest.items() if cell.get("prerelease")}


def neighbours(slot: str, slots: list[str]) -> list[str]:
    """The slots next to `slot` in version order with the same OS."""
    i = slots.index(slot) if slot in slots else -1
    os_name = slot_key(slot)[0]
    return [s for s in (slots[i - 1] if i > 0 else None, slots[i + 1] if 0 <= i < len(slots) - 1 else None)
            if s and slot_key(s)[0] == os_name]


def _skip_status(settings: Settings, name: str) -> dict:
    reason = settings.pypi.skip_reason(name)
    if reason:
        return {"skipped": True, "reason": reason}
    if not settings.pypi.wanted(name):
        return {"skipped": True, "reason": "not followed: pypi.include / pypi.exclude in the farm's settings leave it out"}
    return {"skipped": False, "reason": ""}


def limits_of(settings: Settings) -> dict:
    limits = settings.limits
    return {
        "timeout_s": limits.timeout,
        "silence_timeout_s": limits.silence_timeout,
        "memory_mb": limits.memory_mb,
        "processes": limits.processes,
        "disk_mb": limits.disk_mb,
        "max_log_mb": limits.max_log_mb,
        "sandbox": limits.sandbox,
        "retries": settings.retries,
    }


def badge_status(versions: list[dict]) -> dict:
    """The newest version with results: all passing, warnings, failing on some slots, or unknown."""
    for row in versions:
        cells = list(row["slots"].values())
        if not cells:
            continue
        version = row["version"]
        verdicts = [c["outcome"] for c in cells]
        failing = [o for o in verdicts if o in (contract.INSTALL_FAILED, contract.TESTS_FAILED)]
        if failing:
            return {"version": version, "status": "failing", "text": f"{version} failing on {len(failing)}/{len(cells)}"}
        if "building" in verdicts:
            return {"version": version, "status": "building", "text": f"{version} building"}
        if all(o == contract.NOT_APPLICABLE for o in verdicts):
            return {"version": version, "status": "not applicable", "text": f"{version} not applicable"}
        if all(o in (contract.PASSED, contract.NOT_APPLICABLE) for o in verdicts):
            return {"version": version, "status": "passed", "text": f"{version} passed"}
        if all(o in (contract.PASSED, contract.NOT_APPLICABLE, contract.NO_TESTS, contract.UNINSTALL_DIRTY)
               for o in verdicts):
            return {"version": version, "status": "warnings", "text": f"{version} passed with warnings"}
        continue  # only infrastructure errors: look at the release before
    return {"version": "", "status": "unknown", "text": "not tested"}


def badge_svg(label: str, text: str, status: str) -> str:
    """A flat badge; widths are estimated (about 6.5 px a character at 11 px DejaVu Sans/Verdana)."""
    def width(value: str) -> int:
        return int(len(value) * 6.5) + 12

    left, right = width(label), width(text)
    colour = BADGE_COLOURS.get(status, BADGE_COLOURS["unknown"])
    return render_template("badge.svg", label=label, text=text, left=left, right=right, colour=colour)


@defer.inlineCallbacks
def recent_packages(master, limit: int = 60):
    """The packages of the latest release and rebuild Changes, newest first."""
    changes = yield master.data.get(
        ("changes",),
        filters=[resultspec.Filter("category", "eq", ["release", "rebuild", "skipped"])],
        order=["-changeid"],
        limit=limit * 4,
    )
    seen: dict[str, dict] = {}
    for change in changes:
        project = change.get("project")
        if project and project not in seen:
            seen[project] = {"name": project, "version": change.get("revision") or "", "when": _time(change.get("when_timestamp"))}
    return list(seen.values())[:limit]


# -- the overview ----------------------------------------------------------------------------------

@defer.inlineCallbacks
def overview_data(master, settings: Settings, slots: list[str], now: float | None = None):
    now = now or time.time()
    builders = {b["builderid"]: b["name"] for b in (yield master.data.get(("builders",)))}
    # The database keeps complete_at as epoch seconds: the filter compares in SQL.
    recent = yield master.data.get(
        ("builds",), filters=[resultspec.Filter("complete_at", "gt", [int(now - 86400)])], order=["-buildid"], limit=5000
    )
    outcomes = {slot: {} for slot in slots}
    for build in recent:
        if not build["complete"]:
            continue
        slot = builders.get(build["builderid"], str(build["builderid"]))
        # ReleaseBuild's state string ends with the outcome ("six 1.17.0: passed"): no property query.
        last = (build["state_string"] or "").rsplit(" ", 1)[-1]
        outcome = last if last in RESULTS else statusToString(build["results"])
        counts = outcomes.setdefault(slot, {})
        counts[outcome] = counts.get(outcome, 0) + 1
    queue = {slot: 0 for slot in slots}
    for builderid, number in (yield master.db.pool.do(_queued_per_builder, master.db.model)):
        slot = builders.get(builderid, str(builderid))
        queue[slot] = queue.get(slot, 0) + number
    running = yield master.data.get(
        ("builds",), filters=[resultspec.Filter("complete", "eq", [False])], limit=500,
        # the state string names the release; the property query is for builds just starting
    )
    workers = []
    for entry in (yield master.data.get(("workers",))):
        building = [
            {"slot": builders.get(b["builderid"], ""), "state": b["state_string"],
             "url": f"{settings.buildbot_url}#/builders/{b['builderid']}/builds/{b['number']}",
             "since": _time(b["started_at"])}
            for b in running if b["workerid"] == entry["workerid"]
        ]
        workers.append({
            "name": entry["name"],
            "connected": bool(entry["connected_to"]),
            "paused": bool(entry.get("paused")),
            "graceful": bool(entry.get("graceful")),
            "building": building,
        })
    feed = yield feed_status(master, settings, now)
    rolling = yield rolling_status(master, now)
    sdist = yield sdist_checks(master, now) if settings.sdist_check else None
    all_slots = list(slots) + sorted(set(outcomes) - set(slots), key=slot_key)
    return {
        "since": _time(now - 86400),
        "slots": all_slots,
        "outcomes": outcomes,
        "outcome_names": [o for o in OUTCOMES if any(o in c for c in outcomes.values())]
        + sorted({o for c in outcomes.values() for o in c} - set(OUTCOMES)),
        "queue": queue,
        "queued_total": sum(queue.values()),
        "workers": workers,
        "feed": feed,
        "rolling": rolling,
        "sdist_checks": sdist,
    }


def _queued_per_builder(conn, model):
    """[(builderid, requests waiting)]: counted in SQL, the queue may hold tens of thousands."""
    requests, claims = model.buildrequests, model.buildrequest_claims
    query = (
        sa.select(requests.c.builderid, sa.func.count())
        .select_from(requests.outerjoin(claims, claims.c.brid == requests.c.id))
        .where(requests.c.complete == 0, claims.c.brid.is_(None))
        .group_by(requests.c.builderid)
    )
    return [tuple(row) for row in conn.execute(query)]


@defer.inlineCallbacks
def rolling_status(master, now: float):
    """Re-tests (master/retests.py): per slot, how far through the set, and the period achieved."""
    manager = getattr(master, "service_manager", None)
    service = manager.namedServices.get(priorities.SERVICE_NAME) if manager is not None else None
    if service is None:
        return None
    return (yield service.status(now))


@defer.inlineCallbacks
def sdist_checks(master, now: float):
    """{slot: {result: count}} of the `sdist` steps (steps/runner_steps.py) of the last day: one query."""
    model = master.db.model

    def count(conn):
        query = (
            sa.select(model.builders.c.name, model.steps.c.results, sa.func.count())
            .select_from(model.steps.join(model.builds, model.steps.c.buildid == model.builds.c.id)
                         .join(model.builders, model.builds.c.builderid == model.builders.c.id))
            .where(model.steps.c.name == SDIST_STEP, model.builds.c.complete_at > int(now - 86400),
                   model.steps.c.results.isnot(None))
            .group_by(model.builders.c.name, model.steps.c.results)
        )
        return [tuple(row) for row in conn.execute(query)]

    found: dict[str, dict] = {}
    for slot, results, number in (yield master.db.pool.do(count)):
        name = SDIST_RESULT_NAMES.get(results, statusToString(results))
        found.setdefault(slot, {})[name] = found.get(slot, {}).get(name, 0) + number
    return found


@defer.inlineCallbacks
def feed_status(master, settings: Settings, now: float):
    """Which feed is followed, which is in use and why, and how old the newest release taken is."""
    pypi = settings.pypi
    status = {"url": pypi.url, "setting": pypi.feed, "in_use": None, "why": "", "cursor": None,
              "latest": None, "behind": None, "poll_interval_s": pypi.poll_interval}
    if pypi.feed == "none":
        status["why"] = "feed = \"none\" in the settings: releases come only from rebuilds"
    for source in list(getattr(master, "change_svc", None) or []):
        if hasattr(source, "active_feed"):
            status["in_use"] = source.active_feed
            status["why"] = source.feed_why or status["why"]
            status["cursor"] = getattr(source, "cursor", None)
    latest = yield master.data.get(
        ("changes",), filters=[resultspec.Filter("category", "eq", ["release"])], order=["-changeid"], limit=1
    )
    if latest:
        change = latest[0]
        uploaded = _seconds(change.get("when_timestamp"))
        status["latest"] = {"package": change["project"], "version": change["revision"], "uploaded": _time(uploaded)}
        if uploaded:
            behind = max(0, int(now - uploaded))
            status["behind"] = behind
            status["behind_text"] = _ago(behind)
    return status


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# -- the Flask apps --------------------------------------------------------------------------------

def _versions_asked() -> int:
    """?versions=N (at most 100): how many versions a package page or its JSON shows."""
    asked = request.args.get("versions", "")
    return max(1, min(int(asked), 100)) if asked.isdigit() else DEFAULT_VERSIONS


def packages_app(settings: Settings, slots: list[str], secret: bytes | None) -> Flask:
    app = Flask(PACKAGES, template_folder=str(TEMPLATES))
    app.json.sort_keys = False
    base_path = _base_path(settings)
    context = {"title": settings.title, "base": base_path, "prefix": f"{base_path}plugins/wsgi_dashboards/{PACKAGES}/"}

    @app.route("/index.html")
    def index():
        name = (request.args.get("name") or "").strip()
        if not name:
            return render_template("packages.html", packages=_on_reactor(app, recent_packages), **context)
        if not maintainers.PACKAGE_NAME.match(name):
            return render_template("packages.html", packages=[], error=f"{name!r} is not a package name.", **context), 400
        data = _on_reactor(app, package_data, settings, slots, name, _versions_asked())
        return render_template("package.html", data=data, legend=LEGEND, **context)

    @app.route("/<name>.json")
    def package_json(name):
        if not maintainers.PACKAGE_NAME.match(name):
            abort(404)
        return jsonify(_on_reactor(app, package_data, settings, slots, name, _versions_asked()))

    @app.route("/<name>.svg")
    def package_badge(name):
        if not maintainers.PACKAGE_NAME.match(name):
            abort(404)
        data = _on_reactor(app, package_data, settings, slots, name, 5)
        svg = badge_svg(request.args.get("label") or "PyPI test farm", data["status"]["text"], data["status"]["status"])
        return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-cache"})

    @app.route("/unsubscribe", methods=["GET", "POST"], defaults={"action": maintainers.UNSUBSCRIBE})
    @app.route("/confirm", methods=["GET", "POST"], defaults={"action": maintainers.CONFIRM})
    def signed_link(action):
        """The signed links of maintainer mail: unsubscribe, or confirm that an address from a
        package's metadata, asked once by mail, wants its mail. A GET shows a button (a mail
        scanner following links changes nothing); a mail client's one-click unsubscribe (RFC 8058)
        POSTs `List-Unsubscribe=One-Click` to the link itself, its fields in the query."""
        values = request.args if request.method == "GET" or "token" not in request.form else request.form
        package, address, token = values.get("package", ""), values.get("address", ""), values.get("token", "")
        page = dict(context, action=action, package=package, address=address, token=token)
        if secret is None or not maintainers.PACKAGE_NAME.match(package) or not ADDRESS.match(address) or \
                not maintainers.valid_token(secret, package, address, token, action):
            return render_template("mail_link.html", **dict(page, state="invalid")), 403
        if request.method == "GET":
            return render_template("mail_link.html", **dict(page, state="ask"))
        if action == maintainers.CONFIRM:
            maintainers.add(settings.mail.maintainers_file, package, address)
        else:
            maintainers.remove(settings.mail.maintainers_file, package, address, opt_out=True)
        return render_template("mail_link.html", **dict(page, state="done"))

    return app


def overview_app(settings: Settings, slots: list[str]) -> Flask:
    app = Flask(OVERVIEW, template_folder=str(TEMPLATES))
    app.json.sort_keys = False
    base_path = _base_path(settings)
    context = {"title": settings.title, "base": base_path,
               "packages": f"{base_path}plugins/wsgi_dashboards/{PACKAGES}/"}

    @app.route("/index.html")
    def index():
        return render_template("overview.html", data=_on_reactor(app, overview_data, settings, slots), **context)

    @app.route("/overview.json")
    def overview_json():
        return jsonify(_on_reactor(app, overview_data, settings, slots))

    return app


class EmptyStyles(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/css; charset=utf-8")
        return b"/* this Buildbot UI plugin ships no styles */\n"


class PluginStyles(service.BuildbotService):
    """Serve /plugins/<plugin>/styles.css for the UI plugins that ship none.

    Buildbot 4.3's UI asks every configured plugin for styles.css on each page load;
    buildbot-grid-view and buildbot-wsgi-dashboards 4.3.0 have none, so every page logged two
    404s in the browser's console. An empty stylesheet answers them; drop this class once the
    packages ship the file (it then leaves them alone).
    """

    name = "plugin-styles"

    def startService(self):
        www = getattr(self.master, "www", None)
        for name in (self.master.config.www.get("plugins") or {}) if www is not None else ():
            app = www.apps.get(name)
            static_dir = getattr(app, "static_dir", None)
            if static_dir and not (Path(static_dir) / "styles.css").exists():
                app.resource.putChild(b"styles.css", EmptyStyles())
        return super().startService()
