"""The test phase's preparation, inside the sandbox: unpack the sdist, find the tests and the test
dependencies, and stage the tests in a folder of their own so that they run against the
installed copy, not the source tree."""
import json
import os
import shutil
import sys

from farm_runner.inside import discover, environment
from farm_runner.inside.unpack import Refused, unpack


def stage(request):
    """request: {"package", "sdist", "src", "run", "site_packages", "max_bytes"} (paths as the
    sandbox sees them). Returns {"dists", "me", "plan", "deps", "src"}, with "refused" (a sentence)
    in place of the plan when the sdist cannot be unpacked, and none when the package is not
    installed. The install's code has ended: the environment is listed as the install left it."""
    site = request["site_packages"]
    dists = environment.distributions(site)
    me = environment.installed(site, request["package"])
    names = next((environment.import_names(d["record"]) for d in dists if d["dist_info"] == me), [])
    result = {"dists": dists, "me": me}
    if me is None:
        return result
    for folder in (request["src"], request["run"]):
        clear(folder)  # the install's code may have put something there first
    src = None
    if request.get("sdist"):
        try:
            src = unpack(request["sdist"], request["src"], request["max_bytes"])
        except Refused as exc:
            return dict(result, refused="the sdist %s cannot be unpacked: %s" % (
                os.path.basename(request["sdist"]), exc))
    plan = discover.discover_tests(src, names, site)
    run = request["run"]
    os.makedirs(run)
    if plan is not None and not plan["pyargs"]:
        copy_tests_out(src, plan, run)
    return dict(result, plan=plan, deps=discover.test_dependencies(src), src=src)


def pytest_command(python, plan, out):
    """The test run: the package's interpreter, the shared pytest, the probe plugin, JUnit XML in
    OUT. One definition for the supervisor and for `run_tests` below."""
    return ([python, "-m", "pytest", "-p", "_farm_probe", "-p", "no:cacheprovider", "--junitxml", out + "/junit.xml",
             "-o", "junit_family=xunit2"] + (["--pyargs"] if plan["pyargs"] else []) + list(plan["paths"]))


def needs_dependencies(result):
    """Does the release declare test dependencies (test extras, groups or requirement files)?"""
    me = next((d for d in result["dists"] if d["dist_info"] == result["me"]), None)
    deps = result.get("deps") or {}
    return bool((me and any(discover.is_test_name(e) for e in me["extras"]))
                or any(discover.is_test_name(g) for _, g in deps.get("groups") or [])
                or deps.get("requirement_files"))


def run_tests(request, result, write_answer):
    """When the tests are staged and nothing is to install first, become the test run (exec): the
    supervisor then sees pytest's own exit status as this command's. The answer goes first, saying
    so, and the pipe is closed: nothing of the package's can speak for the runner."""
    test, plan = request.get("test"), result.get("plan")
    if not test or not plan or needs_dependencies(result) or not os.access(test["python"], os.X_OK):
        return write_answer(result)
    command = pytest_command(test["python"], plan, test["out"])
    me = next(d for d in result["dists"] if d["dist_info"] == result["me"])
    env = dict(os.environ, FARM_IMPORT_NAMES=json.dumps(environment.import_names(me["record"])), **test["env"])
    write_answer(dict(result, ran_tests=True))
    sys.stdout.write("tests: %s -> %s\n$ %s\n" % (plan["how"], " ".join(plan["paths"]), " ".join(command)))
    sys.stdout.flush()
    os.chdir(request["run"])
    os.execve(command[0], command, env)


def clear(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def copy_tests_out(src, plan, dest):
    """Copy the test paths, the root conftest.py and the pytest configuration out of the source tree."""
    for rel in list(plan["copy"]) + ["conftest.py", plan.get("config") or ""]:
        if not rel:
            continue
        s, d = os.path.join(src, rel), os.path.join(dest, rel)
        if os.path.isdir(s) and not os.path.islink(s):
            shutil.copytree(s, d, symlinks=True, dirs_exist_ok=True)
        elif os.path.isfile(s) and not os.path.islink(s):
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copy2(s, d)
