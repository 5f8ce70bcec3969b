"""The farm's pages: the package page, its JSON and badge, the overview, and Buildbot's own views,
loaded in a real headless Chromium (Debian's `chromium`, driven by Playwright) against a real farm.

Screenshots are kept under .cache/screenshots/ (git-ignored) as test artefacts.
"""

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from master import pages
from tests.farm import ROOT, Farm

SLOTS = ("3.9", "3.10")  # as text, 3.10 sorts before 3.9: the views must not
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / ".cache" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SKIPPED_PACKAGE = "farmfix-skipme"
SKIP_REASON = "needs a GPU the workers lack"


# -- without a farm ------------------------------------------------------------------------------

def cells(*outcomes, version="1.0"):
    return [{"version": version, "slots": {f"s{i}": {"outcome": o} for i, o in enumerate(outcomes)}}]


@pytest.mark.parametrize(
    "versions, status, text",
    [
        (cells("passed", "passed"), "passed", "1.0 passed"),
        (cells("passed", "not-applicable"), "passed", "1.0 passed"),
        (cells("passed", "no-tests"), "warnings", "1.0 passed with warnings"),
        (cells("passed", "tests-failed"), "failing", "1.0 failing on 1/2"),
        (cells("not-applicable"), "not applicable", "1.0 not applicable"),
        # Only infrastructure errors on the newest release: the badge tells the release before.
        (cells("exception", version="2.0") + cells("tests-failed"), "failing", "1.0 failing on 1/1"),
        ([], "unknown", "not tested"),
    ],
)
def test_badge_status(versions, status, text):
    found = pages.badge_status(versions)
    assert (found["status"], found["text"]) == (status, text)


def row(version, **verdicts):
    return {"version": version, "slots": {slot.replace("_", "."): {"verdict": v} for slot, v in verdicts.items()}}


def test_regressions_and_fixes_are_marked():
    slots = ["linux-py3.9", "linux-py3.10", "linux-py3.11", "mac-py3.12"]
    rows = [
        row("2.0", **{"linux-py3_9": "failing", "linux-py3_10": "failing", "linux-py3_11": "passing"}),
        row("1.1", **{"linux-py3_9": "passing", "linux-py3_10": "failing", "linux-py3_11": "failing",
                      "mac-py3_12": "failing"}),
        row("1.0", **{"linux-py3_9": "passing", "mac-py3_12": "passing"}),
    ]
    pages.mark_changes(rows, slots)
    marks = {(r["version"], s): (c.get("mark"), c.get("mark_why")) for r in rows for s, c in r["slots"].items()}
    assert marks[("2.0", "linux-py3.9")] == ("regression", "1.1 passed here")
    # failed before too, but the next Python up passes this release
    assert marks[("2.0", "linux-py3.10")] == ("regression", "passes on linux-py3.11")
    assert marks[("2.0", "linux-py3.11")] == ("fixed", "1.1 failed here")
    assert marks[("1.1", "linux-py3.10")] == ("regression", "passes on linux-py3.9")
    # the neighbours failed too and there is no earlier release here: no news
    assert marks[("1.1", "linux-py3.11")] == (None, None)
    # another OS is no neighbour; the release before on the same slot is
    assert marks[("1.1", "mac-py3.12")] == ("regression", "1.0 passed here")
    assert marks[("1.0", "linux-py3.9")] == (None, None)


def test_slots_sort_by_version():
    from master.slots import slot_key

    names = ["linux-py3.10", "linux-py3.9", "linux-py2.7", "linux-py3.13t", "linux-py3.13", "mac-py3.6", "odd"]
    assert sorted(names, key=slot_key) == ["linux-py2.7", "linux-py3.9", "linux-py3.10", "linux-py3.13",
                                           "linux-py3.13t", "mac-py3.6", "odd"]


def test_a_slot_whose_newest_build_ran_on_a_pre_release_is_marked():
    def cell(interpreter, prerelease):
        return {"interpreter": interpreter, "prerelease": prerelease}

    rows = [  # newest release first
        {"version": "2.0", "slots": {"linux-py3.15": cell("3.15.0b2", True), "linux-py3.14": cell("3.14.1", False)}},
        {"version": "1.0", "slots": {"linux-py3.15": cell("3.15.0a7", True), "linux-py3.14": cell("3.14.0rc3", True),
                                     "linux-py3.13t": cell("", False)}},
    ]
    # 3.14 was a release candidate when 1.0 was built; its newest build is on the final release
    assert pages.prerelease_slots(rows) == {"linux-py3.15": "3.15.0b2"}


def test_the_legend_explains_every_outcome_a_cell_can_show():
    shown = set(pages.OUTCOMES) | {"building", "exception", "retry", "cancelled"}
    assert shown <= set(pages.LEGEND) and all(pages.LEGEND[o] for o in shown)


def test_outcome_of_a_build_without_a_verdict():
    build = {"complete": True, "results": 4, "properties": {"outcome": ("passed", "runner")}}
    assert pages.outcome_of(build) == "exception", "a lost worker's build is no pass, whatever the install phase said"
    assert pages.outcome_of({"complete": False, "results": None}) == "building"
    assert pages.outcome_of({"complete": True, "results": 2, "properties": {"outcome": ("tests-failed", "r")}}) == "tests-failed"


# -- a real farm in a real browser ---------------------------------------------------------------

@pytest.fixture(scope="module")
def farm(tmp_path_factory, package_index):
    extra = f'[pypi]\nfeed = "none"\nskip = [{{ name = "{SKIPPED_PACKAGE}", reason = "{SKIP_REASON}" }}]\n'
    farm = Farm(tmp_path_factory.mktemp("pages"), package_index.url, pythons=SLOTS, extra_toml=extra).start()
    for name in ("farmfix-pass", "farmfix-testfail", "farmfix-notests"):
        farm.wait_buildset(farm.force(name)[0])
    yield farm
    assert farm.stop() == 0, farm.log_tail()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A browser tab that records console errors, failed requests and HTTP errors."""

    def __init__(self, browser, name):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.name = name
        self.errors = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        # ERR_ABORTED is a request cancelled on purpose: the login's fetch(redirect: "manual") shows
        # up in Chromium as its redirect target, aborted. Console errors and HTTP errors all count.
        self.page.on("requestfailed", lambda r: "ERR_ABORTED" not in (r.failure or "")
                     and self.errors.append(f"request failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status}: {r.url}"))

    def shot(self, suffix=""):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}{suffix}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def close(self):
        self.context.close()


@pytest.fixture
def tab(browser, request):
    page = Page(browser, request.node.name)
    yield page
    page.close()


@pytest.mark.slow
@pytest.mark.parametrize("view, shows", [
    ("waterfall", "linux-py3.10"),  # the builds, a column per slot
    ("console", "rebuild of farmfix-testfail"),  # a row per release
])
def test_buildbots_views_show_the_farm(farm, tab, view, shows):
    tab.page.goto(farm.url + f"#/{view}")
    tab.page.get_by_text(shows).first.wait_for(timeout=20000)
    tab.page.wait_for_load_state("networkidle")
    tab.shot()
    assert tab.errors == []


# The slot names in the page, in the order they appear.
SLOT_NAMES_IN_ORDER = """slots => Array.from(document.querySelectorAll("body *"))
    .filter(e => e.children.length === 0 && slots.includes(e.textContent.trim()))
    .map(e => e.textContent.trim())"""


@pytest.mark.slow
@pytest.mark.parametrize("view", ["waterfall", "console", "grid", "builders", ""])
def test_slots_in_version_order(farm, tab, view):
    page = tab.page
    page.goto(farm.url + f"#/{view}")
    page.get_by_text(farm.slots[0], exact=True).first.wait_for(timeout=20000)
    page.wait_for_load_state("networkidle")
    shown = page.evaluate(SLOT_NAMES_IN_ORDER, list(farm.slots))
    # each name first where the view lists the slots: 3.9 before 3.10 (as text, 3.10 comes first)
    assert list(dict.fromkeys(shown)) == list(farm.slots), shown
    assert tab.errors == []


def login_in_browser(farm, page):
    page.goto(farm.url + "plugins/wsgi_dashboards/packages/index.html?name=farmfix-pass")
    page.fill("#login input[name=password]", farm.admin_password)
    page.click("#login button")
    page.wait_for_function("!document.querySelector('#rebuild-button').disabled", timeout=15000)


@pytest.mark.slow
def test_a_visitor_sees_no_control_only_an_admin_may_use(farm, tab):
    page = tab.page
    builderid = {name: i for i, name in farm.builder_names().items()}[farm.slots[0]]
    build = f"{farm.url}#/builders/{builderid}/builds/1"
    page.goto(build)
    page.get_by_text("uninstall", exact=False).first.wait_for(timeout=20000)
    page.wait_for_load_state("networkidle")
    for caption in ("Rebuild", "Stop"):
        assert not page.get_by_role("button", name=caption, exact=True).is_visible(), caption
    page.goto(f"{farm.url}#/builders/{builderid}")
    page.get_by_text(farm.slots[0]).first.wait_for(timeout=20000)
    page.wait_for_load_state("networkidle")
    assert not page.get_by_role("button", name="Rebuild", exact=True).is_visible(), "the force scheduler's button"
    tab.shot("-visitor")
    # An admin has them: the same pages, logged in.
    login_in_browser(farm, page)
    page.goto(build)
    page.get_by_role("button", name="Rebuild", exact=True).wait_for(timeout=20000)
    page.goto(f"{farm.url}#/builders/{builderid}")
    page.get_by_role("button", name="Rebuild", exact=True).wait_for(timeout=20000)
    assert [e for e in tab.errors if not BUILD_PAGE_FAVICON_BUG(e)] == [], tab.errors


def BUILD_PAGE_FAVICON_BUG(error):
    """Buildbot 4.3's build page colours its icon from buildbotURL + "/icon.svg" (a double slash, a
    404) and leaves the failed request's error uncaught, with or without the farm's plugin."""
    return "//icon." in error or error in ("page error: Kt", "console: Failed to load resource: the server "
                                           "responded with a status of 404 (Not Found)")


@pytest.mark.slow
def test_a_refused_rebuild_adds_no_row(farm, tab):
    page = tab.page
    login_in_browser(farm, page)
    # a version the index does not have, as a stale page or a hand-made request would ask
    page.evaluate("""() => { const o = document.createElement("option"); o.value = o.textContent = "99.0";
                             document.querySelector("#rebuild select[name=version]").append(o); }""")
    page.select_option("#rebuild select[name=version]", "99.0")
    page.click("#rebuild-button")
    page.get_by_text("Refused:").wait_for(timeout=15000)
    assert "99.0" in page.inner_text("#rebuild-status")
    tab.shot("-refused")
    page.reload()
    page.locator("#results").wait_for()
    assert page.locator('#results tr[data-version="99.0"]').count() == 0
    with urllib.request.urlopen(farm.url + "plugins/wsgi_dashboards/packages/farmfix-pass.json") as response:
        assert "99.0" not in [row["version"] for row in json.load(response)["versions"]]
    # the refusal is the JSON-RPC call's answer, an HTTP 400 (Chromium logs it too); nothing else went wrong
    assert [e for e in tab.errors if "forceschedulers/rebuild" not in e and "status of 400" not in e] == []


@pytest.mark.slow
def test_the_package_page(farm, tab):
    page = tab.page
    page.goto(farm.url + "plugins/wsgi_dashboards/packages/index.html?name=farmfix-testfail")
    page.locator("#results").wait_for()
    assert page.inner_text("#package-name") == "farmfix-testfail"
    for slot in farm.slots:
        cell = page.locator(f'#results td[data-slot="{slot}"]')
        assert cell.get_attribute("data-outcome") == "tests-failed"
        assert "outcome-tests-failed" in cell.get_attribute("class")
        assert cell.locator("a.log").get_attribute("href").startswith(farm.url + "#/builders/")
        assert " s" in cell.inner_text(), "the duration"
        assert "runner.py farmfix-testfail" in cell.locator("code.reproduce").text_content()
        # the failing cell says which test failed and why, in one line
        failing = cell.locator(".failures").inner_text()
        assert "test_fails" in failing and "this fixture fails on purpose" in failing, failing
    assert "auto" in page.inner_text("#limits"), "the sandbox mode"
    assert "1536 MB" in page.inner_text("#limits")
    assert "Not on the skip list" in page.inner_text("#skip-status")
    # A visitor sees the Rebuild button disabled and a login form.
    page.get_by_text("Log in as an admin to rebuild.").wait_for()
    assert page.locator("#rebuild-button").is_disabled()
    tab.shot()
    assert tab.errors == []


@pytest.mark.slow
def test_a_release_without_tests_says_whether_it_imports(farm, tab):
    page = tab.page
    page.goto(farm.url + "plugins/wsgi_dashboards/packages/index.html?name=farmfix-notests")
    page.locator("#results").wait_for()
    for slot in farm.slots:
        cell = page.locator(f'#results td[data-slot="{slot}"]')
        assert cell.get_attribute("data-outcome") == "no-tests"
        assert "it imports cleanly (farmfix_notests)" in cell.inner_text(), cell.inner_text()
    tab.shot()
    assert tab.errors == []


@pytest.mark.slow
def test_an_admin_rebuilds_one_package_from_its_page(farm, tab):
    page = tab.page
    page.goto(farm.url + "plugins/wsgi_dashboards/packages/index.html?name=farmfix-pass")
    page.fill("#login input[name=password]", farm.admin_password)
    page.click("#login button")
    page.wait_for_function("!document.querySelector('#rebuild-button').disabled", timeout=15000)
    assert "logged in as admin" in page.inner_text("#farm-user")
    page.check(f'#rebuild input[value="{farm.slots[-1]}"]')
    page.click("#rebuild-button")
    page.get_by_text("Queued (buildset").wait_for(timeout=15000)
    buildsetid = int(page.inner_text("#rebuild-status").split("buildset ")[1].split(")")[0])
    tab.shot()
    _, builds = farm.wait_buildset(buildsetid)
    assert [farm.builder_names()[b["builderid"]] for b in builds] == [farm.slots[-1]]
    assert builds[0]["properties"]["package"][0] == "farmfix-pass"
    assert tab.errors == []


@pytest.mark.slow
def test_the_skip_list_is_shown_with_its_reason(farm, tab):
    tab.page.goto(farm.url + f"plugins/wsgi_dashboards/packages/index.html?name={SKIPPED_PACKAGE}")
    assert SKIP_REASON in tab.page.inner_text("#skip-status")
    assert "On the skip list" in tab.page.inner_text("#skip-status")
    assert tab.errors == []


@pytest.mark.slow
def test_the_overview(farm, tab):
    page = tab.page
    page.goto(farm.url + "#/overview")
    page.locator("#farm-overview").wait_for(timeout=20000)
    outcomes = page.inner_text("#outcomes")
    for slot in farm.slots:
        assert slot in outcomes
    assert "tests-failed" in outcomes and "passed" in outcomes
    assert "local" in page.inner_text("#workers")
    feed = page.inner_text("#feed")
    assert "none" in feed and "pypi.org" in feed
    page.wait_for_load_state("networkidle")
    tab.shot()
    assert tab.errors == []


@pytest.mark.slow
def test_a_new_user_finds_a_package_within_two_clicks(farm, tab):
    """Someone who knows only the name: the menu's "Packages" (1), then the package's link (2)."""
    page = tab.page
    page.goto(farm.url)
    page.get_by_role("link", name="Packages").first.click()  # click 1
    for name in ("farmfix-pass", "farmfix-testfail", "farmfix-notests"):  # every package built, not one
        page.get_by_role("link", name=name, exact=True).wait_for(timeout=20000)
    page.get_by_role("link", name="farmfix-notests", exact=True).click()  # click 2
    page.locator("#package-name").wait_for(timeout=20000)
    assert page.inner_text("#package-name") == "farmfix-notests"
    assert page.locator('#results td[data-outcome="no-tests"]').count() == len(farm.slots)
    tab.shot("-found")
    # The search box works as well: type the name, press Enter (no click at all).
    page.goto(farm.url + "#/packages")
    page.fill("#farm-package-name", "FarmFix_Pass")
    page.press("#farm-package-name", "Enter")
    page.locator("#package-name").wait_for(timeout=20000)
    assert page.inner_text("#package-name") == "farmfix-pass"
    assert tab.errors == []


@pytest.mark.slow
def test_json_and_badge_at_stable_urls(farm):
    base = farm.url + "plugins/wsgi_dashboards/packages/"
    with urllib.request.urlopen(base + "farmfix-testfail.json") as response:
        data = json.load(response)
    assert data["package"] == "farmfix-testfail"
    assert data["slots"] == list(farm.slots)
    (row,) = data["versions"]
    assert row["version"] == "1.0"
    assert {slot: cell["outcome"] for slot, cell in row["slots"].items()} == {s: "tests-failed" for s in farm.slots}
    assert all(cell["build_url"] and cell["reproduce"] and cell["duration_s"] is not None for cell in row["slots"].values())
    assert data["limits"]["memory_mb"] == 1536
    assert data["status"]["status"] == "failing"
    with urllib.request.urlopen(base + "farmfix-notests.svg") as response:
        assert response.headers["Content-Type"].startswith("image/svg+xml")
        svg = response.read().decode()
    assert "1.0 passed with warnings" in svg and svg.startswith("<svg")
    with urllib.request.urlopen(base + "never-tested.svg") as response:
        assert "not tested" in response.read().decode()
