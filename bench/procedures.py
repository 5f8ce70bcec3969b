"""The two procedures the farm is measured against, as shell scripts run on the same slot:

- raw: what a maintainer does by hand with uv (the physical limit): `uv venv`, `uv pip install`
  pytest, the release and its test dependencies, run its tests the way the runner does (the project's
  own command from the unpacked sdist with the package's source taken out, or `--pyargs` against the
  installed copy), `uv pip uninstall`. Warm shared cache, no sandbox.
- naive: the same with `python -m venv` and pip.

The test plan (the command, its folder, test extras and requirements, dependency groups among them) is worked out once before the
timing, with the runner's own functions, so both scripts run the very tests the farm runs.
"""

from __future__ import annotations

import email.parser
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import master  # noqa: F401  (puts the runner's package, farm_runner, on the path)
from bench.corpus import pip_environment
from farm_runner._vendor.packaging.requirements import InvalidRequirement, Requirement
from farm_runner._vendor.packaging.utils import canonicalize_name
from farm_runner.inside.environment import import_names
from farm_runner.host.interpreters import find_interpreters
from farm_runner.inside import discover, stage
from farm_runner.inside.unpack import unpack

# The runner's own test discovery is the reference.


def normalise(name: str) -> str:
    return canonicalize_name(name)


@dataclass
class Plan:
    name: str
    version: str
    sdist: Path
    top: str  # the sdist's top folder
    args: list[str]  # the test command's arguments; empty with `tool` None: no tests
    tool: str | None = "pytest"  # pytest | unittest | None
    cwd: str | None = ""  # relative to the top folder; None: an empty folder (tests run with --pyargs)
    set_aside: list[str] = field(default_factory=list)  # the package's own import packages, taken out
    extras: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)  # dependency groups' and requirement files' lines
    fallback: list[str] = field(default_factory=list)  # unittest's arguments when pytest collects nothing
    linked: list[str] = field(default_factory=list)  # set-aside places that link to the installed copy


def _files_of(index_dir: Path, name: str, version: str):
    key = normalise(name).replace("-", "_")
    sdists, wheels = [], []
    for path in index_dir.iterdir():
        stem = path.name.lower().replace("-", "_")
        if not stem.startswith(f"{key}_{version.lower()}".replace("-", "_")):
            continue
        rest = stem[len(f"{key}_{version.lower()}"):]
        if path.name.endswith(".whl") and rest.startswith("_"):
            wheels.append(path)
        elif path.name.endswith((".tar.gz", ".zip")) and rest in (".tar.gz", ".zip"):
            sdists.append(path)
    return sdists, wheels


def make_plan(index_dir: Path, name: str, version: str, scratch: Path) -> Plan:
    """What the runner would run for this release (see farm_runner.inside.stage)."""
    sdists, wheels = _files_of(index_dir, name, version)
    if not sdists or not wheels:
        raise RuntimeError(f"{name} {version}: the bench index lacks its sdist or wheel")
    sdist, wheel = sdists[0], wheels[0]
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(info).decode("utf-8", "replace"))
        record = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD"))
        names = import_names([line.split(",")[0] for line in archive.read(record).decode().splitlines()])
    target = scratch / f"{normalise(name)}-{version}"
    if target.exists():
        shutil.rmtree(target)
    src = unpack(str(sdist), str(target), max_bytes=4 << 30)
    site = scratch / f"site-{normalise(name)}"  # the wheel unpacked: what the runner sees installed
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    plan = stage.plan_run(src, names, str(site), sys.version_info[:2], "cpython")
    if plan is None:  # the runner installs and uninstalls, and runs no tests: so do the scripts
        return Plan(name, version, sdist, os.path.basename(src), [], None)
    deps = plan.get("deps") or {}
    provided = metadata.get_all("Provides-Extra") or []
    extras = list(deps.get("extras") or [])
    if deps.get("test_extras_wanted"):
        extras += [e for e in provided if discover.is_test_name(e)] or [e for e in provided if discover.is_dev_name(e)]
    extras = [e for e in dict.fromkeys(extras) if normalise(e) in {normalise(p) for p in provided}]
    requirements = [r for r, _ in deps.get("requirements") or [] if _requirement_name(r) not in (None, normalise(name))]
    return Plan(name, version, sdist, os.path.basename(src), list(plan["args"]), plan["tool"], plan["cwd"],
                list(plan.get("set_aside") or []), extras, requirements, list(plan.get("fallback") or []),
                list(plan.get("linked") or []))


def _requirement_name(text: str) -> str | None:
    try:
        return normalise(Requirement(text).name)
    except InvalidRequirement:
        return None


def _q(value) -> str:
    return shlex.quote(str(value))


def script(plan: Plan, kind: str, python: str, work: Path, index_url: str, uv: str, cache: Path) -> str:
    """The shell script of one procedure ("raw" or "naive") for one release on one interpreter."""
    env_python = work / "env" / "bin" / "python"
    spec = f"{plan.name}=={plan.version}"
    with_extras = f"{plan.name}[{','.join(plan.extras)}]=={plan.version}" if plan.extras else ""
    # The test dependencies after the release, allowed to fail as the runner allows it (it says so
    # and runs the tests all the same).
    deps = " ".join(_q(p) for p in [with_extras, *plan.requirements] if p)
    if kind == "raw":
        uv_pip = f"{_q(uv)} pip %s -q --no-config --python {_q(env_python)} --cache-dir {_q(cache)}"
        make_env = f"{_q(uv)} venv -q --no-config --python {_q(python)} --cache-dir {_q(cache)} {_q(work / 'env')}"
        install_tools = (uv_pip % "install") + f" --index-url {_q(index_url)} pytest"
        install = (uv_pip % "install") + f" --index-url {_q(index_url)} {_q(spec)}"
        install_deps = ((uv_pip % "install") + f" --index-url {_q(index_url)} {deps} || true") if deps else ":"
        uninstall = (uv_pip % "uninstall") + f" {_q(plan.name)}"
    elif kind == "naive":
        pip = f"{_q(env_python)} -m pip %s -q --disable-pip-version-check --cache-dir {_q(cache)}"
        make_env = f"{_q(python)} -m venv {_q(work / 'env')}"
        install_tools = ":"
        install = (pip % "install") + f" --index-url {_q(index_url)} pytest {_q(spec)}"
        install_deps = ((pip % "install") + f" --index-url {_q(index_url)} {deps} || true") if deps else ":"
        uninstall = (pip % "uninstall") + f" -y {_q(plan.name)}"
    else:
        raise ValueError(kind)
    top = work / "src" / plan.top
    set_aside = " ".join(_q(top / p) for p in plan.set_aside)
    run_dir = top / plan.cwd if plan.cwd is not None else work / "run"
    if plan.tool is None:
        test = ":"
    elif plan.tool == "unittest":
        test = f"{_q(env_python)} -m unittest {' '.join(_q(a) for a in plan.args)}"
    else:
        test = f"{_q(env_python)} -m pytest -q -p no:cacheprovider {' '.join(_q(a) for a in plan.args)}"
        if plan.fallback:  # pytest collected nothing (exit 5): unittest discovery, as the runner does
            unittest = f"{_q(env_python)} -m unittest {' '.join(_q(a) for a in plan.fallback)}"
            test = f"( {test}; s=$?; if [ $s = 5 ]; then {unittest}; else exit $s; fi )"
    return "\n".join([
        "set -e",
        f"rm -rf {_q(work)} && mkdir -p {_q(work / 'src')} {_q(work / 'run')}",
        make_env,
        install_tools,
        install,
        install_deps,
        f"tar xzf {_q(plan.sdist)} -C {_q(work / 'src')}" if str(plan.sdist).endswith(".tar.gz")
        else f"cd {_q(work / 'src')} && {_q(sys.executable)} -m zipfile -e {_q(plan.sdist)} .",
        # The package's own source taken out of the tree, so that the installed copy is tested.
        f"rm -rf {set_aside}" if set_aside else ":",
        *(f"ln -s \"$({_q(env_python)} -c 'import sysconfig; print(sysconfig.get_path(\"purelib\"))')\"/"
          f"{_q(os.path.basename(rel.rstrip('/')))} {_q(top / rel.rstrip('/'))}" for rel in plan.linked),
        "status=0",
        f"cd {_q(run_dir)} && {test} >{_q(work / 'tests.log')} 2>&1 || status=$?",
        uninstall,
        "exit $status",
    ]) + "\n"


def run_script(text: str, timeout: float = 600) -> tuple[float, int, str]:
    """(wall seconds, exit status, output tail) of one script, with pip's and uv's configuration ignored."""
    env = pip_environment()
    env.update(UV_NO_CONFIG="1", PYTHONDONTWRITEBYTECODE="")
    env.pop("PYTHONDONTWRITEBYTECODE")
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True, timeout=timeout)
    return time.monotonic() - started, done.returncode, (done.stdout + done.stderr)[-2000:]


def interpreters() -> dict[str, str]:
    """{X.Y: path} of this machine's interpreters, as the local worker finds them."""
    return {entry["version"]: entry["path"] for entry in find_interpreters() if entry.get("supported", True)}


def tar_top(path: Path) -> str:
    with tarfile.open(path) as archive:
        return archive.getnames()[0].split("/")[0]
