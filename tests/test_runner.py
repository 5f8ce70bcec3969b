"""worker/runner.py through its real CLI, against a real local index and real interpreters."""
import json
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pkgindex import ROOT, write_package

from farm_runner import contract
from farm_runner.host import audit, cli, index, interpreters, platforms, report, supervisor, verdict

RUNNER = ROOT / "worker" / "runner.py"
CACHE = ROOT / ".cache" / "uv-runner-tests"
INTERPRETERS = {i["version"]: i for i in interpreters.find_interpreters()}
MAIN_PY = "3.12" if "3.12" in INTERPRETERS else sorted(v for v, i in INTERPRETERS.items() if i["supported"])[-1]
REPORT_KEYS = set(contract.REPORT_FIELDS)
EXIT = contract.EXIT_CODES


def run_cli(spec, workdir, index_url, python=MAIN_PY, phase=None, extra=()):
    cmd = [sys.executable, str(RUNNER), spec, "--python", python, "--index-url", index_url,
           "--workdir", str(workdir), "--cache-dir", str(CACHE), "--quiet", *extra]
    if phase:
        cmd += ["--phase", phase]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    report_file = Path(workdir) / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    return proc, report


def comparable(report):
    return {
        "outcome": report["outcome"],
        "statuses": {p: v["status"] for p, v in report["phases"].items()},
        "installed_from": report["installed_from"],
        "dependencies": report["dependencies"],
        "tests": {k: (report["tests"] or {}).get(k) for k in ("passed", "failed", "errors", "skipped")},
        "leftovers": report["leftovers"],
    }


@pytest.fixture(scope="module")
def all_reports(package_index, tmp_path_factory):
    """One `--phase all` run per standard package (the outcome tests share them)."""
    out = {}
    for name in package_index.expected:
        if name == "farmfix-dep":
            continue
        wd = tmp_path_factory.mktemp(name)
        proc, report = run_cli(name, wd, package_index.url)
        out[name] = (proc, report, wd)
    return out


# ---------------------------------------------------------------------------
# Fast unit tests of the pieces (no interpreters started)
# ---------------------------------------------------------------------------

def test_env_layout_for_each_platform():
    lin = platforms.env_layout("/w/env", (3, 12, 1), system="Linux")
    assert lin == {"python": "/w/env/bin/python", "bin": "/w/env/bin",
                   "site_packages": "/w/env/lib/python3.12/site-packages"}
    mac = platforms.env_layout("/w/env", (3, 9, 0), system="Darwin")
    assert mac["python"] == "/w/env/bin/python" and mac["site_packages"].endswith("lib/python3.9/site-packages")
    win = platforms.env_layout("C:\\w\\env", (3, 12, 1), system="Windows")
    assert win == {"python": "C:\\w\\env\\Scripts\\python.exe", "bin": "C:\\w\\env\\Scripts",
                   "site_packages": "C:\\w\\env\\Lib\\site-packages"}
    pypy = platforms.env_layout("/e", (3, 10, 0), system="Linux", implementation="pypy")
    assert pypy["site_packages"] == "/e/lib/pypy3.10/site-packages"


def test_platform_helpers():
    assert platforms.prefix_interpreter("/p/3.12.1", "Linux") == "/p/3.12.1/bin/python"
    assert platforms.prefix_interpreter("C:\\py\\3.12.1", "Windows") == "C:\\py\\3.12.1\\python.exe"
    assert platforms.exe_name("uv", "Windows") == "uv.exe" and platforms.exe_name("uv", "Linux") == "uv"
    assert platforms.popen_group_kwargs("Darwin") == {"start_new_session": True}
    assert platforms.popen_group_kwargs("Linux")["start_new_session"] is True
    assert "creationflags" in platforms.popen_group_kwargs("Windows")
    assert platforms.user_cache_dir("Linux", {"HOME": "/h"}) == "/h/.cache/pypi-farm-runner"
    assert platforms.user_cache_dir("Linux", {"HOME": "/h", "XDG_CACHE_HOME": "/x"}) == "/x/pypi-farm-runner"
    assert platforms.user_cache_dir("Darwin", {"HOME": "/h"}) == "/h/Library/Caches/pypi-farm-runner"
    assert platforms.user_cache_dir("Windows", {"LOCALAPPDATA": "C:\\L"}) == "C:\\L\\pypi-farm-runner\\Cache"


@pytest.mark.parametrize("spec, expected", [
    ("six==1.17.0", ("name", "six", "1.17.0")),
    ("zope.interface", ("name", "zope.interface", None)),
    ("Foo_Bar==2.0rc1", ("name", "Foo_Bar", "2.0rc1")),
])
def test_parse_spec(spec, expected):
    assert cli.parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["six==", "-rf", "six==1.0; rm -rf /", "six>=1", "a b", "six==1.*", "$(id)"])
def test_parse_spec_rejects(spec):
    with pytest.raises(interpreters.UsageError):
        cli.parse_spec(spec)


@pytest.mark.parametrize("spec, version, ok", [
    ("<3", "3.12.1", False), (">=3.8", "3.12.1", True), (">=3.13", "3.12.1", False),
    (">=2.7, !=3.0.*, !=3.1.*", "3.1.4", False), (">=2.7, !=3.0.*, !=3.1.*", "3.8.0", True),
    ("~=3.6", "3.12.1", True), ("~=3.6.1", "3.7.0", False), ("==3.*", "3.9.18", True),
    (">3.8", "3.8.18", True), ("<3.12", "3.12.1", False), ("<=3.12", "3.12.1", False), ("<=3.12", "3.12.0", True),
    (">=3.10,<4", "3.13.0", True), ("", "3.12.1", True), ("garbage", "3.12.1", True),
])
def test_requires_python(spec, version, ok):
    assert index.requires_python_allows(spec, version) is ok


@pytest.mark.parametrize("spec, version, ok", [
    # pip compares the interpreter's release numbers only: 3.12.0rc2 counts as 3.12.0
    ("<3.12", "3.12.0rc2", False), (">=3.7,<3.13", "3.13.0rc1", False), (">=3.12", "3.12.0b1", True),
    (">=3.13", "3.13.0a2", True), ("<3.15", "3.15.0b1", False), ("!=3.14.*", "3.14.0rc1", False),
])
def test_requires_python_on_prerelease_interpreters(spec, version, ok):
    assert index.requires_python_allows(spec, version) is ok


def test_wheel_compatibility():
    info = {"implementation": "cpython", "version_info": [3, 12, 1], "platform": "linux-x86_64", "bits": 64,
            "libc": "glibc 2.36", "soabi": "cpython-312-x86_64-linux-gnu", "system": "Linux"}
    ranks = index.supported_tags(info)

    def ok(filename, target=info):
        return index.wheel_priority(filename, ranks if target is info else index.supported_tags(target))

    assert ok("six-1.17.0-py2.py3-none-any.whl", info) is not None
    assert ok("x-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", info) is not None
    assert ok("x-1-cp38-abi3-manylinux2014_x86_64.whl", info) is not None
    assert ok("x-1-cp313-cp313-manylinux_2_17_x86_64.whl", info) is None
    assert ok("x-1-cp312-cp312-manylinux_2_39_x86_64.whl", info) is None  # glibc too old
    assert ok("x-1-cp312-cp312-win_amd64.whl", info) is None
    assert ok("x-1-cp312-cp312-musllinux_1_1_x86_64.whl", info) is None
    assert ok("x-1-py2-none-any.whl", info) is None
    # a platform wheel ranks before a pure one
    assert ok("x-1-cp312-cp312-manylinux2014_x86_64.whl", info) < ok("x-1-py3-none-any.whl", info)
    win = dict(info, platform="win-amd64", system="Windows", libc="", soabi="")
    assert ok("x-1-cp312-cp312-win_amd64.whl", win) is not None
    assert ok("x-1-cp312-cp312-manylinux2014_x86_64.whl", win) is None


def test_leftover_rules():
    site = "lib/python3.12/site-packages/"
    before = ["bin/python", site + "_virtualenv.py"]
    claimed = {site + "dep/__init__.py", site + "pytest_cov/plugin.py"}
    removed = [site + "pkg/__init__.py", site + "pkg.libs/libfoo.so"]
    after = before + sorted(claimed) + [
        ".lock",
        site + "__pycache__/_virtualenv.cpython-312.pyc",
        site + "dep/__pycache__/__init__.cpython-312.pyc",
        site + "pkg/__pycache__/__init__.cpython-312.pyc",
        site + "pkg/cache.dat",
        site + "pkg/__pycache__/generated.cpython-312.pyc",
        # pytest's rewritten bytecode of a test tool: another distribution's, and a cache
        site + "pytest_cov/__pycache__/plugin.cpython-312-pytest-9.2.0.pyc",
        # written at run time inside another distribution's folder
        site + "dep/data.json",
        # an empty folder that held the release's own files (uv leaves it, pip removes it)
        site + "pkg.libs/",
        # an empty folder of nobody's
        site + "stray/",
        # the empty `*.libs/` of another distribution still installed (cffi's, uv makes it)
        site + "dep.libs/",
        # and one of a distribution that is not installed
        site + "gone.libs/",
        # a file the package wrote beside the environment's own
        site + "pkg_extra.py",
    ]
    # Bytecode caches, other distributions' folders and the release's emptied folders are not its leftovers.
    assert audit.leftovers(after, before, claimed, removed, site) == [
        site + "pkg/cache.dat", site + "stray/", site + "gone.libs/", site + "pkg_extra.py"]


def test_junit_counts():
    xml = b'<testsuites><testsuite tests="7" failures="1" errors="2" skipped="1"/></testsuites>'
    assert verdict.junit_counts(xml) == {"passed": 3, "failed": 1, "errors": 2, "skipped": 1}
    # What the package's code wrote is data: unreadable counts are None, never an exception.
    for forged in (b'<testsuite tests="x"/>', b"<testsuite", b'<testsuite tests="-5"/>', b"\xff\xfe"):
        assert verdict.junit_counts(forged) is None


@pytest.mark.parametrize("rc, counts, outcome", [
    (0, {"passed": 3, "failed": 0, "errors": 0, "skipped": 0}, "passed"),
    (0, None, "no-tests"),  # a pass needs a test known to have passed
    (0, {"passed": 0, "failed": 0, "errors": 0, "skipped": 4}, "no-tests"),  # all skipped: none passed
    (0, {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}, "no-tests"),
    (1, {"passed": 9, "failed": 0, "errors": 0, "skipped": 0}, "tests-failed"),  # forged counts cannot pass it
    (2, None, "tests-failed"), (5, None, "no-tests"), (-11, None, "tests-failed"),
])
def test_the_exit_status_decides_and_counts_only_describe(rc, counts, outcome):
    assert verdict.pytest_verdict(rc, counts)[1] == outcome


# What the runner's probe (host/interpreters.py) printed for this machine's pyenv 2.7.18 and 3.13.0;
# the free-threaded 3.13 is the 3.13.0 with what differs in such a build (its SOABI, Py_GIL_DISABLED),
# as CPython documents them: no free-threaded interpreter is on these machines to record.
PROBED_27 = {"implementation": "cpython", "version_info": [2, 7, 18], "full_version": "2.7.18", "soabi": "",
             "pymalloc": True, "maxunicode": 1114111, "gil_disabled": False, "debug": False,
             "platform": "linux-x86_64", "bits": 64, "libc": "glibc 2.36", "mac_ver": "", "system": "Linux"}
PROBED_313 = {"implementation": "cpython", "version_info": [3, 13, 0], "full_version": "3.13.0",
              "soabi": "cpython-313-x86_64-linux-gnu", "pymalloc": True, "maxunicode": 1114111, "gil_disabled": False,
              "debug": False, "platform": "linux-x86_64", "bits": 64, "libc": "glibc 2.36", "mac_ver": "",
              "system": "Linux"}
FREE_THREADED_313 = dict(PROBED_313, soabi="cpython-313t-x86_64-linux-gnu", gil_disabled=True)


@pytest.mark.parametrize("info, fits, does_not_fit", [
    (PROBED_27, ["x-1-cp27-cp27mu-manylinux1_x86_64.whl", "six-1.17.0-py2.py3-none-any.whl", "x-1-py2-none-any.whl"],
     ["x-1-cp27-cp27m-manylinux1_x86_64.whl", "x-1-py3-none-any.whl", "x-1-cp36-abi3-manylinux2014_x86_64.whl"]),
    (PROBED_313, ["x-1-cp313-cp313-manylinux_2_17_x86_64.whl", "x-1-cp38-abi3-manylinux2014_x86_64.whl"],
     ["x-1-cp313-cp313t-manylinux_2_17_x86_64.whl"]),
    # a free-threaded build takes only its own `t` wheels: neither the GIL build's nor the stable ABI
    (FREE_THREADED_313, ["x-1-cp313-cp313t-manylinux_2_17_x86_64.whl", "x-1-py3-none-any.whl"],
     ["x-1-cp313-cp313-manylinux_2_17_x86_64.whl", "x-1-cp38-abi3-manylinux2014_x86_64.whl"]),
])
def test_wheels_by_the_interpreter_s_own_tags(info, fits, does_not_fit):
    ranks = index.supported_tags(info)
    assert all(index.wheel_priority(f, ranks) is not None for f in fits), fits
    assert all(index.wheel_priority(f, ranks) is None for f in does_not_fit), does_not_fit


def test_a_free_threaded_slot_s_name_environment_and_gil_warning():
    assert interpreters.slot_python(FREE_THREADED_313["version_info"], True) == "3.13t"
    assert interpreters.slot_python(PROBED_313["version_info"], False) == "3.13"
    layout = platforms.env_layout("/e", [3, 13, 0], system="Linux", free_threaded=True)
    assert layout["site_packages"] == "/e/lib/python3.13t/site-packages"
    # CPython's own words (Python/import.c) when an extension without Py_mod_gil is imported
    output = ("<frozen importlib._bootstrap>:488: RuntimeWarning: The global interpreter lock (GIL) has been "
              "enabled to load module 'fastext._speedups', which has not declared that it can run safely without "
              "the GIL. To override this behavior and keep the GIL disabled (at your own risk), run with "
              "PYTHON_GIL=0 or -Xgil=0.\n")
    story = verdict.gil_story(output, {"gil_enabled": True})
    assert story == {"enabled": True, "enabled_by": ["fastext._speedups"]}
    assert verdict.gil_story("", {"gil_enabled": False}) == {"enabled": False, "enabled_by": []}
    assert "importing fastext._speedups turned the GIL back on" in report.gil_warning(story)
    assert report.gil_warning({"enabled": False, "enabled_by": []}) == ""


def test_a_free_threaded_slot_that_is_not_here_is_a_usage_error(tmp_path):
    proc, _ = run_cli("six==1.17.0", tmp_path, "http://127.0.0.1:9/simple", python="3.13t")
    assert proc.returncode == 2 and "no Python 3.13t on this machine" in proc.stderr


def test_find_interpreters_in_pyenv_and_uv_trees(tmp_path):
    """The folder names pyenv and uv give (uv's as `uv python install 3.13t 3.15` makes them)."""
    def exe(folder, name="python"):
        path = folder / "bin" / name
        path.parent.mkdir(parents=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return str(path)

    pyenv, uv = tmp_path / "pyenv" / "versions", tmp_path / "uv"
    for v in ("2.7.18", "3.5.10", "3.12.0", "3.12.1", "3.13.0", "3.14-dev"):
        exe(pyenv / v)
    free = exe(uv / "cpython-3.13.0+freethreaded-linux-x86_64-gnu", "python3.13t")  # no bin/python
    exe(uv / "cpython-3.13.1+debug-linux-x86_64-gnu")
    exe(uv / "cpython-3.15.0b1-linux-x86_64-gnu")
    exe(uv / "cpython-3.15.0b1+freethreaded-linux-x86_64-gnu", "python3")
    exe(uv / "cpython-3.14.0rc1-linux-x86_64-gnu")
    exe(uv / "cpython-3.14.0-linux-x86_64-gnu")
    exe(pyenv / "3.14.1t", "python")
    found = interpreters.find_interpreters(environ={"PYENV_ROOT": str(tmp_path / "pyenv"), "HOME": str(tmp_path),
                                                    "UV_PYTHON_INSTALL_DIR": str(uv), "PATH": ""}, system="Linux")
    assert [(i["version"], i["full_version"], i["supported"], i["source"]) for i in found] == [
        ("2.7", "2.7.18", True, "pyenv"), ("3.5", "3.5.10", False, "pyenv"), ("3.12", "3.12.1", True, "pyenv"),
        ("3.13", "3.13.0", True, "pyenv"), ("3.13t", "3.13.0", True, "uv"), ("3.14", "3.14.0", True, "uv"),
        ("3.14t", "3.14.1", True, "pyenv"), ("3.15", "3.15.0b1", True, "uv"), ("3.15t", "3.15.0b1", True, "uv")]
    by_slot = {i["version"]: i for i in found}
    assert by_slot["3.12"]["path"] == str(pyenv / "3.12.1" / "bin" / "python")
    assert by_slot["3.13t"]["path"] == free and by_slot["3.13t"]["free_threaded"]
    assert by_slot["3.15"]["prerelease"] and not by_slot["3.14"]["prerelease"] and not by_slot["3.15"]["free_threaded"]
    assert "2.7 (virtualenv) and 3.6+ (uv) only" in by_slot["3.5"]["note"]


def test_list_pythons_cli():
    proc = subprocess.run([sys.executable, str(RUNNER), "--list-pythons"], capture_output=True, text=True)
    assert proc.returncode == 0
    listed = json.loads(proc.stdout)
    assert listed and all({"version", "full_version", "path", "supported"} <= set(i) for i in listed)
    assert len({i["version"] for i in listed}) == len(listed)


def test_malformed_spec_is_a_usage_error(tmp_path):
    proc, report = run_cli("six==1.0;rm", tmp_path, "http://127.0.0.1:9/simple")
    assert proc.returncode == 2 and report is None
    assert len(proc.stderr.strip().splitlines()) == 1 and "malformed SPEC" in proc.stderr


def test_unknown_interpreter_is_a_usage_error(tmp_path):
    proc, _ = run_cli("six==1.17.0", tmp_path, "http://127.0.0.1:9/simple", python="3.99")
    assert proc.returncode == 2
    line, = proc.stderr.strip().splitlines()
    assert "no Python 3.99" in line and "available:" in line and MAIN_PY in line


# ---------------------------------------------------------------------------
# The whole CLI against the fixture index
# ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("behaviour", ["pass", "testfail", "setupfail", "notests", "leftover", "oldpython"])
def test_outcome(all_reports, package_index, behaviour):
    name = "farmfix-" + behaviour
    proc, report, _ = all_reports[name]
    expected = package_index.expected[name]
    assert report["outcome"] == expected, (report["reason"], proc.stdout[-3000:])
    assert proc.returncode == EXIT[expected]
    assert set(report) - {"_state"} == REPORT_KEYS
    assert report["reason"] and "\n" not in report["reason"] and report["reason"].endswith(".")
    assert expected in proc.stdout and "reproduce:" in proc.stdout  # the readable summary
    statuses = {p: v["status"] for p, v in report["phases"].items()}
    if expected in ("install-failed", "not-applicable"):
        assert statuses["test"] == statuses["uninstall"] == "skipped"
    else:
        assert statuses["install"] == "ok"
    if behaviour == "oldpython":
        assert report["reason"] == "Requires-Python '<3' excludes Python %s." % report["python"]["version"]
        assert statuses["install"] == "skipped"
    if behaviour == "setupfail":
        assert report["installed_from"]["kind"] == "sdist" and "setup" in report["phases"]["install"]["log_excerpt"]
    if behaviour == "testfail":
        assert (report["tests"]["passed"], report["tests"]["failed"]) == (2, 1)
    if behaviour == "leftover":
        assert any(p.endswith("farmfix_leftover/cache.dat") for p in report["leftovers"])
        assert report["tests"]["passed"] == 2


@pytest.mark.slow
def test_report_of_a_passing_release(all_reports, package_index):
    proc, r, wd = all_reports["farmfix-pass"]
    assert r["schema"] == contract.SCHEMA and r["spec"] == "farmfix-pass" and r["package"] == "farmfix-pass"
    assert r["version"] == "1.0" and r["index_url"] == package_index.url
    py = INTERPRETERS[MAIN_PY]
    assert r["python"] == {"requested": MAIN_PY, "path": py["path"], "version": py["full_version"],
                           "free_threaded": False, "prerelease": False, "installer": "uv"}
    wheel = package_index.dists / "farmfix_pass-1.0-py3-none-any.whl"
    assert r["installed_from"]["filename"] == wheel.name and r["installed_from"]["kind"] == "wheel"
    assert r["installed_from"]["sha256"] == index.sha256_file(str(wheel))
    assert r["installed_from"]["url"].startswith(package_index.url.rsplit("/", 1)[0])
    assert r["dependencies"] == [{"name": "farmfix-dep", "version": "1.0"}]
    t = r["tests"]
    assert (t["passed"], t["failed"], t["errors"], t["skipped"]) == (2, 0, 0, 0)
    assert t["command"][1:3] == ["-m", "pytest"] and "--junitxml" in t["command"]
    assert r["leftovers"] == []
    for phase in r["phases"].values():
        assert phase["status"] == "ok" and phase["seconds"] >= 0 and len(phase["log_excerpt"]) <= 4100
    assert 0 < r["runner_seconds"] < 60


@pytest.mark.slow
def test_tests_ran_against_the_installed_copy(all_reports):
    _, r, wd = all_reports["farmfix-pass"]
    site = Path(r["_state"]["site_packages"]).resolve()
    imported = Path(r["tests"]["imported_from"]["farmfix_pass"]).resolve()
    assert site in imported.parents, imported
    assert (wd / "box" / "src").is_dir()  # the unpacked sdist was there, and was not what got imported
    # the fixture's own test asserts the same from inside (test_imports_installed_copy passed)


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", ["pass", "leftover", "oldpython"])
def test_phases_one_by_one_match_all(all_reports, package_index, behaviour, tmp_path):
    name = "farmfix-" + behaviour
    _, whole, _ = all_reports[name]
    codes = []
    for phase in ("install", "test", "uninstall"):
        proc, report = run_cli(name, tmp_path, package_index.url, phase=phase)
        codes.append(proc.returncode)
        if phase == "install":
            assert report["outcome"] == ("not-applicable" if behaviour == "oldpython" else "passed")
            assert report["phases"]["test"]["status"] == "not-run"
    assert comparable(report) == comparable(whole)
    assert codes[-1] == EXIT[whole["outcome"]]
    if behaviour == "leftover":
        assert codes == [0, 0, 1]


@pytest.mark.slow
def test_echo_prints_the_chosen_phases_and_keeps_every_log(package_index, tmp_path):
    """What the farm's install step runs: all phases, only the install's output on stdout."""
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "farmfix-pass", "--python", MAIN_PY, "--index-url", package_index.url,
         "--workdir", str(tmp_path), "--cache-dir", str(CACHE), "--echo", "install"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    test_log = (tmp_path / "test.log").read_text()
    assert "test session starts" in test_log and "test session starts" not in proc.stdout
    assert "[bwrap +index]" in proc.stdout  # the install's own commands
    assert f"[test] running; its output goes to {tmp_path / 'test.log'}" in proc.stdout
    refused = subprocess.run([sys.executable, str(RUNNER), "x", "--python", MAIN_PY, "--echo", "tests"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "unknown phase tests" in refused.stderr


@pytest.mark.slow
def test_pytest_comes_from_the_shared_tools_not_the_environment(all_reports):
    _, r, wd = all_reports["farmfix-pass"]
    tools = Path(r["_state"]["tools"])
    assert (tools / "pytest").is_dir() and (tools / ".complete").exists()
    assert list((tools / "_pytest" / "__pycache__").glob("*.pyc")), "compiled once, when the folder was made"
    site = Path(r["_state"]["site_packages"])
    assert not (site / "pytest").exists(), "pytest is not installed into the environment under test"
    assert not (site / supervisor.TOOLS_PTH).exists(), "the uninstall took the tools out of the environment"


@pytest.mark.slow
def test_release_that_does_not_exist(package_index, tmp_path):
    for spec, text in (("farmfix-pass==9.9", "no release 9.9"), ("farmfix-nothing", "no project")):
        proc, report = run_cli(spec, tmp_path, package_index.url)
        assert proc.returncode == 2, proc.stderr
        line, = proc.stderr.strip().splitlines()
        assert text in line
        assert report is None


@pytest.mark.slow
def test_unreachable_index_is_an_infra_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, report = run_cli("farmfix-pass==1.0", tmp_path, "http://127.0.0.1:%d/simple" % port)
    assert proc.returncode == 3
    assert report["outcome"] == "infra-error" and "unreachable" in report["reason"]
    assert report["phases"]["install"]["status"] == "error"


@pytest.mark.slow
def test_timeout_kills_the_tests_and_is_an_infra_error(package_index, tmp_path):
    package_index.add(write_package(tmp_path / "dists", "farmfix-hang", "1.0", "hang", kind="wheel"))
    package_index.add(write_package(tmp_path / "dists2", "farmfix-hang", "1.0", "hang", kind="sdist"))
    wd = tmp_path / "w"
    proc, report = run_cli("farmfix-hang==1.0", wd, package_index.url, phase="install")
    assert proc.returncode == 0
    start = time.monotonic()
    proc, report = run_cli("farmfix-hang==1.0", wd, package_index.url, phase="test", extra=("--timeout", "6"))
    assert time.monotonic() - start < 30
    assert proc.returncode == 3 and report["outcome"] == "infra-error"
    assert report["reason"].startswith("timeout") and report["phases"]["test"]["status"] == "error"
    pgrep = subprocess.run(["pgrep", "-f", str(wd / "box" / "env")], capture_output=True, text=True)
    assert pgrep.stdout.strip() == ""  # the whole process group is gone
    proc, report = run_cli("farmfix-hang==1.0", wd, package_index.url, phase="uninstall")
    assert proc.returncode == 3 and report["phases"]["uninstall"]["status"] == "skipped"


@pytest.mark.slow
def test_a_killed_runner_takes_its_tests_with_it(package_index, tmp_path):
    """A killed worker or a stopped build kills the runner: its tests must not run on."""
    package_index.add(write_package(tmp_path / "dists", "farmfix-hang2", "1.0", "hang"))
    wd = tmp_path / "w"
    assert run_cli("farmfix-hang2==1.0", wd, package_index.url, phase="install")[0].returncode == 0
    cmd = [sys.executable, str(RUNNER), "farmfix-hang2==1.0", "--python", MAIN_PY, "--index-url", package_index.url,
           "--workdir", str(wd), "--cache-dir", str(CACHE), "--quiet", "--phase", "test"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def tests_running():
        found = subprocess.run(["pgrep", "-f", str(wd / "box" / "env" / "bin" / "python") + " -m pytest"], capture_output=True, text=True)
        return found.stdout.split()

    deadline = time.monotonic() + 60
    while not tests_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tests_running(), "the hanging tests never started"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while tests_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tests_running() == []


@pytest.mark.slow
def test_sdist_only_release_and_local_file_spec(package_index, tmp_path):
    files = write_package(tmp_path / "d", "farmfix-sdistonly", "2.0", "pass", kind="sdist")
    package_index.add(files)
    proc, r = run_cli("farmfix-sdistonly==2.0", tmp_path / "a", package_index.url)
    assert r["outcome"] == "passed", r["reason"]
    assert r["installed_from"]["kind"] == "sdist" and r["tests"]["passed"] == 2
    # the same sdist given as a path
    proc, r = run_cli(str(files[0]), tmp_path / "b", package_index.url)
    assert r["outcome"] == "passed", r["reason"]
    assert r["package"] == "farmfix-sdistonly" and r["installed_from"]["filename"] == files[0].name


@pytest.mark.slow
def test_dist_sdist_builds_from_source_where_a_wheel_fits(package_index, tmp_path):
    proc, r = run_cli("farmfix-pass==1.0", tmp_path / "a", package_index.url, extra=("--dist", "sdist"))
    assert r["outcome"] == "passed", r["reason"]
    assert r["installed_from"]["kind"] == "sdist" and "--dist sdist" in r["reproduce"]
    package_index.add(write_package(tmp_path / "d", "farmfix-wheelonly", "1.0", "pass", kind="wheel"))
    proc, r = run_cli("farmfix-wheelonly==1.0", tmp_path / "b", package_index.url, extra=("--dist", "sdist"))
    assert r["outcome"] == "not-applicable" and "no sdist" in r["reason"]


@pytest.mark.slow
def test_reproduce_line_reruns_the_case(all_reports, tmp_path):
    _, r, _ = all_reports["farmfix-testfail"]
    argv = shlex.split(r["reproduce"])
    assert argv[:3] == ["python", "worker/runner.py", "farmfix-testfail==1.0"]  # the exact version it built
    # pasted in the checkout's root, with this venv's python (uv beside it)
    cmd = [sys.executable] + argv[1:] + ["--workdir", str(tmp_path), "--cache-dir", str(CACHE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    again = json.loads((tmp_path / "report.json").read_text())
    assert proc.returncode == 1 and comparable(again) == comparable(r)


@pytest.mark.slow
@pytest.mark.parametrize("python", [v for v in ("3.8", "3.13") if v in INTERPRETERS and v != MAIN_PY])
def test_other_interpreters_with_the_fixture_index(package_index, python, tmp_path):
    proc, r = run_cli("farmfix-pass==1.0", tmp_path, package_index.url, python=python)
    assert r["outcome"] == "passed", (r["reason"], proc.stdout[-3000:])
    assert r["python"]["version"].startswith(python + ".")


# ---------------------------------------------------------------------------
# Real releases from the public index
# ---------------------------------------------------------------------------

PUBLIC = "https://pypi.org/simple"
PUBLIC_PYTHONS = [v for v in ("2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13") if v in INTERPRETERS]


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("python", PUBLIC_PYTHONS)
def test_six_from_pypi(python, tmp_path):
    proc, r = run_cli("six==1.17.0", tmp_path, PUBLIC, python=python)
    assert r["outcome"] == "passed", (r["reason"], proc.stdout[-3000:])
    assert r["installed_from"]["filename"] == "six-1.17.0-py2.py3-none-any.whl"
    # six's own configuration (setup.cfg) decides what pytest collects, with six.py taken out of the tree
    assert r["tests"]["passed"] > 100 and r["tests"]["how"] == "pytest with the project's configuration (setup.cfg)"
    assert r["tests"]["set_aside"] == ["six.py"]


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("python", [v for v in PUBLIC_PYTHONS if v not in ("2.7", "3.6", "3.7")])
def test_latest_iniconfig_from_pypi(python, tmp_path):
    proc, r = run_cli("iniconfig", tmp_path, PUBLIC, python=python)
    if r["outcome"] == "not-applicable":  # the latest release may have left this Python behind
        assert "Requires-Python" in r["reason"] and proc.returncode == 0
        return
    assert r["outcome"] == "passed", (r["reason"], proc.stdout[-3000:])
    assert r["tests"]["passed"] > 10
    assert r["dependencies"] == []


def test_the_pytest_a_release_could_know():
    from farm_runner.host import instrument

    # pytest's releases as PyPI's JSON index lists them (upload-time, requires-python)
    releases = [("7.4.4", "2023-12-31T11:35:56Z", ">=3.7"), ("8.0.0", "2024-01-27T10:11:12Z", ">=3.8"),
                ("8.3.5", "2025-03-02T12:00:00Z", ">=3.8"), ("9.0.0rc1", "2025-11-01T00:00:00Z", ">=3.10"),
                ("9.0.0", "2025-11-08T00:00:00Z", ">=3.10"), ("9.2.0", "2026-06-01T00:00:00Z", ">=3.10")]
    # A release of mid-2024 on 3.11: the newest pytest before it.
    limit = instrument.cutoff("2024-06-01T00:00:00Z", (3, 11, 7))
    assert instrument.choose(releases, limit, "3.11.7") == "8.0.0"
    # The same release on 3.13: never a pytest from before that Python was supported (3.13.0 + 90 days).
    limit = instrument.cutoff("2024-06-01T00:00:00Z", (3, 13, 0))
    assert limit.date().isoformat() == "2025-01-05"
    assert instrument.choose(releases, limit, "3.13.0") == "8.0.0"
    # A release of 2026: the newest final pytest; pre-releases never; Requires-Python as pip decides.
    assert instrument.choose(releases, instrument.cutoff("2026-07-01T00:00:00Z", (3, 12)), "3.12.1") == "9.2.0"
    assert instrument.choose(releases, instrument.cutoff("2026-07-01T00:00:00Z", (3, 9)), "3.9.18") == "8.3.5"
    # No upload time (an HTML index, a local file), or an interpreter newer than the table: no cutoff.
    assert instrument.cutoff(None, (3, 12)) is None and instrument.cutoff("2024-06-01T00:00:00Z", (3, 15)) is None
    assert instrument.parse_time("not a time") is None
