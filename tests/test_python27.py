"""Python 2.7 slots: environments made by the pinned virtualenv and filled by pip 20.3.4 (uv cannot
serve 2.7), through the real runner and the real farm, with the three releases of issue 16:
an sdist-only Python 2 package that passes there, one whose setup.py refuses Python 3, and one
whose Requires-Python excludes 2.7."""

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
