"""Python 2.7 slots: environments made by the pinned virtualenv and filled by pip 20.3.4 (uv cannot
serve 2.7), through the real runner and the real farm, with the three releases of issue 16:
an sdist-only Python 2 package that passes there, one whose setup.py refuses Python 3, and one
whose Requires-Python excludes 2.7; and the test tools of 2.7, which no sdist of theirs builds on the
host (issue 27)."""

import pytest

from farm_runner.host import interpreters
from master.outcomes import RESULTS
from tests.farm import Farm
from tests.pkgindex import PackageIndex, ensure_wheelhouse, write_package
from tests.test_runner import MAIN_PY, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    "2.7" not in {i["version"] for i in interpreters.find_interpreters()},
    reason="no Python 2.7 on this machine (pyenv, uv or PATH): `pyenv install 2.7.18` gives one")]

VERSION = "1.0"
PY2_ONLY_TEST = '''
def test_text_types():
    # Python 2's names: a NameError on Python 3
    assert isinstance(u"x", basestring) and long(1) == 1
'''
REFUSES_PY3 = '''import sys
if sys.version_info[0] >= 3:
    sys.exit("py2fix-refuses3 supports Python 2 only")
'''
# name: (write_package's arguments, outcome on 2.7, outcome on MAIN_PY)
PACKAGES = {
    "py2fix-classic": (dict(kind="sdist", extra_files={"tests/test_py2.py": PY2_ONLY_TEST}), "passed", "tests-failed"),
    "py2fix-refuses3": (dict(kind="sdist", setup_prelude=REFUSES_PY3), "passed", "install-failed"),
    "py2fix-py3only": (dict(requires_python=">=3.6"), "not-applicable", "passed"),
}


@pytest.fixture(scope="module")
def py2_index(tmp_path_factory):
    dists = tmp_path_factory.mktemp("py2dists")
    for name, (kwargs, _, _) in PACKAGES.items():
        write_package(dists, name, VERSION, "pass", **kwargs)
    with PackageIndex(dists, ensure_wheelhouse()) as index:
        yield index


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_the_runner_on_python_27(py2_index, tmp_path, name):
    proc, report = run_cli(f"{name}=={VERSION}", tmp_path, py2_index.url, python="2.7")
    assert report["outcome"] == PACKAGES[name][1], (report["reason"], proc.stdout[-3000:])
    assert report["python"]["version"].startswith("2.7.")
    if report["outcome"] == "passed":
        assert report["python"]["installer"] == "pip 20.3.4 in an environment made by virtualenv 20.21.1"
        assert report["tests"]["passed"] >= 2 and report["tests"]["pytest"]["version"] == "4.6.11"
        assert "2.7/site-packages" in report["tests"]["imported_from"][name.replace("-", "_")]
    else:
        assert report["reason"] == "Requires-Python '>=3.6' excludes Python %s." % report["python"]["version"]


def test_setup_py_refusing_python_3_is_install_failed_there(py2_index, tmp_path):
    proc, report = run_cli(f"py2fix-refuses3=={VERSION}", tmp_path, py2_index.url, python=MAIN_PY)
    assert report["outcome"] == "install-failed", report["reason"]
    assert "supports Python 2 only" in (tmp_path / "install.log").read_text()


def test_the_farm_serves_a_python_27_slot(py2_index, tmp_path):
    farm = Farm(tmp_path, py2_index.url, pythons=("2.7", MAIN_PY)).start()
    try:
        assert sorted(farm.builder_names().values()) == ["linux-py2.7", f"linux-py{MAIN_PY}"]
        forced = {name: farm.force(name, VERSION)[0] for name in PACKAGES}
        for name, (_, on_27, on_main) in PACKAGES.items():
            _, builds = farm.wait_buildset(forced[name])
            got = {farm.builder_names()[b["builderid"]]: b for b in builds}
            for slot, outcome in (("linux-py2.7", on_27), (f"linux-py{MAIN_PY}", on_main)):
                props = {key: value for key, (value, _) in got[slot]["properties"].items()}
                assert props["outcome"] == outcome, (name, slot, props.get("reason"), farm.log_tail())
                assert got[slot]["results"] == RESULTS[outcome]
    finally:
        assert farm.stop() == 0, farm.log_tail()


# Issue 27: the test tools are installed on the host, outside the sandbox, so no sdist of theirs
# may be built there. A new sdist of a tool's dependency (scandir and atomicwrites had none but
# sdists for Linux) whose setup.py writes a file on the host, and the pinned scandir replaced by one.
HOSTILE_SETUP = "open(%r, 'w').write('setup.py ran outside the sandbox')\n"


def _hostile_tools_index(tmp_path, tools):
    """An index of the wheelhouse and py2fix-classic, with `tools` ([(name, version)]) as hostile
    sdists whose setup.py writes tmp_path/marker (in the wheelhouse's place, where it has that file)."""
    marker, dists, house = tmp_path / "marker", tmp_path / "dists", tmp_path / "house"
    kwargs = PACKAGES["py2fix-classic"][0]
    write_package(dists, "py2fix-classic", VERSION, "pass", **kwargs)
    hostile = []
    for name, version in tools:
        # setup.py alone, as scandir's and atomicwrites' own sdists (pip runs it without PEP 517)
        hostile += write_package(tmp_path / "hostile", name, version, "notests", kind="sdist",
                                 extra_files={"pyproject.toml": None}, setup_prelude=HOSTILE_SETUP % str(marker))
    house.mkdir()
    for path in ensure_wheelhouse().iterdir():
        if path.is_file() and not path.name.startswith(".") and path.name not in {h.name for h in hostile}:
            (house / path.name).symlink_to(path)
    return marker, PackageIndex(dists, house, *hostile)


def test_a_new_sdist_of_a_test_tool_never_runs_on_the_host(tmp_path):
    marker, index = _hostile_tools_index(tmp_path, [("scandir", "1.10.1"), ("atomicwrites", "1.4.2")])
    with index:
        # a cache of its own: the day's shared tools folder would hide the install
        proc, report = run_cli(f"py2fix-classic=={VERSION}", tmp_path / "w", index.url, python="2.7",
                               extra=("--cache-dir", str(tmp_path / "cache")))
    assert not marker.exists(), "a test tool's sdist was built on the host"
    assert report["outcome"] == "passed", (report["reason"], proc.stdout[-3000:])
    assert report["tests"]["pytest"]["version"] == "4.6.11" and report["tests"]["passed"] >= 2
    # the pinned scandir, which has no wheel, was built in the sandbox
    log = (tmp_path / "w" / "install.log").read_text()
    assert "Created wheel for scandir" in log and "[bwrap]" in log.split("Created wheel for scandir")[0]


def test_the_pinned_sdist_replaced_on_the_index_is_refused(tmp_path):
    marker, index = _hostile_tools_index(tmp_path, [("scandir", "1.10.0")])
    with index:
        proc, report = run_cli(f"py2fix-classic=={VERSION}", tmp_path / "w", index.url, python="2.7",
                               extra=("--cache-dir", str(tmp_path / "cache")))
    assert not marker.exists(), "a test tool's sdist was built on the host"
    assert report["outcome"] == "infra-error", (report["reason"], proc.stdout[-3000:])
    assert "scandir-1.10.0.tar.gz" in report["reason"] and "sha256" in report["reason"], report["reason"]
