"""The test phase's preparation, inside the sandbox: unpack the sdist, find the tests and the test
dependencies, and stage the tests in a folder of their own so that they run against the
installed copy, not the source tree."""
import os
import shutil

from farm_runner.inside import discover
from farm_runner.inside.unpack import Refused, unpack


def stage(request):
    """request: {"sdist", "src", "run", "names", "site_packages", "extras", "max_bytes"} (paths
    as the sandbox sees them). Returns {"plan", "deps", "src"} or {"refused": sentence}."""
    for folder in (request["src"], request["run"]):
        clear(folder)  # the install's code may have put something there first
    src = None
    if request.get("sdist"):
        try:
            src = unpack(request["sdist"], request["src"], request["max_bytes"])
        except Refused as exc:
            return {"refused": "the sdist %s cannot be unpacked: %s" % (os.path.basename(request["sdist"]), exc)}
    plan = discover.discover_tests(src, request["names"], request["site_packages"])
    deps = discover.test_dependencies(src, request["extras"])
    run = request["run"]
    os.makedirs(run)
    if plan is not None and not plan["pyargs"]:
        copy_tests_out(src, plan, run)
    return {"plan": plan, "deps": deps, "src": src}


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
