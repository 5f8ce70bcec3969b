"""ansible/: the playbooks pass syntax checks and ansible-lint, the example inventory gives a valid
farm.toml, and the Linux worker role, run for real on this machine into a temporary prefix, gives
a worker that connects to a real master and completes a build.

The tools come from their own environment, .venv-ansible (requirements/ansible-lock.txt); `make
test` creates it. Without it these tests are skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from master import settings as farm_settings
from tests.farm import Farm, wait_for

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = ROOT / "ansible"
TOOLS = ROOT / ".venv-ansible" / "bin"
EXAMPLE_INVENTORY = ANSIBLE_DIR / "inventory" / "example" / "hosts.yml"
# The example vault's dummy password, documented in ansible/README.md; a real farm has its own.
EXAMPLE_VAULT_PASSWORD = ANSIBLE_DIR / "inventory" / "example" / "example-vault-password"
PLAYBOOKS = ("site.yml", "cluster.yml", "master.yml", "workers.yml")

pytestmark = pytest.mark.skipif(
    not (TOOLS / "ansible-playbook").exists(),
    reason="no .venv-ansible: create it with `.venv/bin/uv venv .venv-ansible && .venv/bin/uv pip install "
    "--python .venv-ansible/bin/python -r requirements/ansible-lock.txt` (make test does this)",
)


def tool_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{TOOLS}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(ROOT / ".cache" / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        NO_COLOR="1",
        **extra,
    )
    return env


def run_tool(*argv, timeout=600, check=True, **env) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(TOOLS / argv[0]), *map(str, argv[1:])], cwd=ANSIBLE_DIR, env=tool_env(**env),
        capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook):
    run_tool("ansible-playbook", "--syntax-check", "-i", EXAMPLE_INVENTORY,
             "--vault-password-file", EXAMPLE_VAULT_PASSWORD, playbook)


def test_ansible_lint_passes():
    result = run_tool("ansible-lint", "--nocolor", check=False, ANSIBLE_VAULT_PASSWORD_FILE=str(EXAMPLE_VAULT_PASSWORD))
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]


def test_example_vault_is_encrypted_and_opens_with_the_documented_password():
    vault = ANSIBLE_DIR / "inventory" / "example" / "group_vars" / "all" / "vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256"), "the example vault must stay encrypted"
    plain = run_tool("ansible-vault", "view", "--vault-password-file", EXAMPLE_VAULT_PASSWORD, vault).stdout
    assert "vault_farm_worker_secret:" in plain


def test_example_inventory_gives_a_valid_farm_toml(tmp_path):
    """The master role's farm.toml for the example inventory, rendered here, loads in master/settings.py."""
    prefix = tmp_path / "master"
    run_tool(
        "ansible-playbook", "master.yml", "-i", EXAMPLE_INVENTORY, "--vault-password-file", EXAMPLE_VAULT_PASSWORD,
        "--tags", "farm_config", "-e", "ansible_connection=local",
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", json.dumps({"farm_master_prefix": str(prefix), "farm_master_user": "root", "farm_master_group": "root",
                               "farm_master_manage_service": False}),
    )
    loaded = farm_settings.load(prefix / "farm.toml", environ={})
    workers = {w.name: w for w in loaded.workers}
    # The README's example: a macOS worker serving Python 3.12 and 3.13 is one inventory entry.
    mac = workers["mac-1"]
    assert (mac.os, mac.pythons) == ("macos", ("3.12", "3.13"))
    assert {w.os for w in workers.values()} == {"linux", "macos", "windows"}
    assert "retired-linux-9" not in workers, "a worker marked absent is dropped from the master"
    assert loaded.db_url.startswith("postgresql://")
    for worker in workers.values():
        assert worker.password_file.stat().st_mode & 0o077 == 0, "passwords readable by the master's user only"
        assert len(worker.password_file.read_text().strip()) >= 32
    # Each worker's password is its own, derived from the vault's secret unless the vault names one.
    assert len({w.password_file.read_text() for w in workers.values()}) == len(workers)


def _pyenv_python(version: str) -> Path | None:
    pyenv = shutil.which("pyenv")
    root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip() if pyenv else ""
    candidates = sorted(Path(root or os.path.expanduser("~/.pyenv")).glob(f"versions/{version}.*/bin/python{version}"))
    return candidates[-1] if candidates else None


def _recap(output: str) -> dict:
    line = next(line for line in output.splitlines() if line.startswith("localhost") and "ok=" in line)
    return {key: int(value) for key, value in (part.split("=") for part in line.split()[2:])}


@pytest.mark.slow
def test_linux_worker_role_gives_a_worker_that_builds(tmp_path, package_index, monkeypatch):
    python, python27 = _pyenv_python("3.12"), _pyenv_python("2.7")
    if python is None or python27 is None:
        pytest.skip("needs Python 3.12 and 2.7 from pyenv for the worker's slots")
    prefix = tmp_path / "worker"
    password = secrets.token_urlsafe(24)
    monkeypatch.setenv("FARM_TEST_WORKER_PASSWORD", password)
    (tmp_path / "farm").mkdir()
    farm = Farm(
        tmp_path / "farm", package_index.url, pythons=("3.12",), local_worker=False,
        extra_toml=(
            '[[workers]]\nname = "ansible-linux-1"\nos = "linux"\npythons = ["2.7", "3.12"]\n'
            f'password_env = "FARM_TEST_WORKER_PASSWORD"\nrunner_python = "{prefix}/venv/bin/python"\n'
        ),
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"linux_workers": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    variables = {
        "farm_worker_name": "ansible-linux-1",
        # 2.7 and 3.12 from pyenv (named paths); 3.13t from uv, which needs python-build-standalone's
        # downloads: where they cannot be reached, the role says so and the worker serves the others.
        "farm_worker_pythons": ["2.7", "3.12", "3.13t"],
        "farm_worker_password": password,
        "farm_master_address": "127.0.0.1",
        "farm_master_pb_port": farm.pb_port,
        "farm_worker_prefix": str(prefix),
        "farm_worker_user": "root",
        "farm_worker_manage_user": False,
        "farm_worker_manage_service": False,
        "farm_worker_install_packages": False,
        "farm_worker_python_source": "uv",
        "farm_worker_python_paths": {"3.12": str(python), "2.7": str(python27)},
        "farm_worker_bootstrap_python": str(python),
        "farm_worker_systemd_dir": str(prefix / "systemd"),
    }
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(variables))
    playbook = ("ansible-playbook", "workers.yml", "-i", inventory, "-e", f"@{vars_file}")

    first = run_tool(*playbook)
    assert _recap(first.stdout)["failed"] == 0
    second = run_tool(*playbook)
    assert _recap(second.stdout)["changed"] == 0, "a second run changes nothing:\n" + second.stdout[-6000:]

    unit = prefix / "systemd" / "farm-worker.service"
    text = unit.read_text()
    assert f"ExecStart={prefix}/venv/bin/buildbot-worker start --nodaemon {prefix}/worker" in text
    assert "Type=simple" in text and "Restart=on-failure" in text and "User=root" in text
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
    assert (prefix / "bin" / "python3.12").resolve() == python.resolve()
    assert (prefix / "bin" / "python2.7").resolve() == python27.resolve()
    got_313t = (prefix / "bin" / "python3.13t").exists()
    said = "Worker ansible-linux-1 could not get Python 3.13t: "
    assert got_313t != (said in first.stdout), first.stdout[-6000:]
    if not got_313t:  # and says which slots it serves instead
        assert "It serves 2.7, 3.12; install Python 3.13t by hand" in first.stdout
    assert (prefix / "venv" / "bin" / "uv").exists(), "uv next to the runner's interpreter"
    assert (prefix / "worker" / "buildbot.tac").stat().st_mode & 0o077 == 0
    assert password not in first.stdout + second.stdout, "the password stays out of the log"

    # The worker as its unit starts it: the unit's environment file and command line.
    environment = dict(
        line.split("=", 1) for line in (prefix / "worker.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    farm.start(wait_for_worker=False)
    worker = subprocess.Popen(
        [str(prefix / "venv" / "bin" / "buildbot-worker"), "start", "--nodaemon", str(prefix / "worker")],
        cwd=prefix / "worker", env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: any(w["name"] == "ansible-linux-1" and w["connected_to"] for w in farm.get("workers")["workers"]),
            60, "the worker the role created to connect",
        )
        package = next(name for name, outcome in package_index.expected.items() if outcome == "passed")
        buildsetid = farm.force(package)[0]
        requests, builds = farm.wait_buildset(buildsetid, timeout=150)
        assert len(builds) == 2, builds  # linux-py2.7 and linux-py3.12
        for build in builds:
            assert build["results"] == 0 and build["state_string"].endswith(": passed"), (build, farm.log_tail())
            assert build["state_string"].startswith(package)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        assert farm.stop() == 0, farm.log_tail()

    variables["farm_worker_state"] = "absent"
    vars_file.write_text(json.dumps(variables))
    run_tool(*playbook)
    assert not prefix.exists(), "removing the worker removes its files"


def test_a_cluster_inventory_gives_each_master_the_shared_database_and_the_router(tmp_path):
    """Two masters, a database host and a router host: a master's farm.toml says [cluster] and the
    shared database; the router role's Crossbar configuration is the one the tests run."""
    from master.cluster import router_config

    inventory = tmp_path / "inventory.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({
        "farm_master": {"hosts": {"master-1": local, "master-2": local}},
        "farm_database": {"hosts": {"db.internal": local}},
        "farm_router": {"hosts": {"router.internal": dict(local, farm_router_port=8081)}},
        "linux_workers": {"hosts": {"linux-9": {"farm_worker_os": "linux", "farm_worker_pythons": ["3.12"],
                                                "farm_worker_password": secrets.token_urlsafe(24)}}},
    }))
    password = "a password/with:odd characters"
    prefix = tmp_path / "master"
    run_tool("ansible-playbook", "master.yml", "-i", inventory, "--limit", "master-1", "--tags", "farm_config",
             "-e", json.dumps({"farm_master_prefix": str(prefix), "farm_master_user": "root", "farm_master_group": "root",
                               "farm_master_manage_service": False, "farm_database_password": password}))
    loaded = farm_settings.load(prefix / "farm.toml", environ={})
    assert loaded.cluster.router == "ws://router.internal:8081/ws"
    assert loaded.db_url == "postgresql://farm:a%20password/with%3Aodd%20characters@db.internal/farm"
    router = tmp_path / "router"
    run_tool("ansible-playbook", "cluster.yml", "-i", inventory, "--limit", "router.internal",
             "--tags", "farm_router_config",
             "-e", json.dumps({"farm_router_prefix": str(router), "farm_router_user": "root",
                               "farm_router_manage_user": False, "farm_router_manage_service": False}))
    assert json.loads((router / ".crossbar" / "config.json").read_text()) == router_config("farm", 8081, "0.0.0.0")


@pytest.mark.slow
def test_master_role_creates_a_master_that_passes_checkconfig(tmp_path):
    """The master role for real on this machine (SQLite, no systemd): venv from the lock, code,
    farm.toml, create-master, checkconfig; a second run changes nothing."""
    if not shutil.which("rsync"):
        pytest.skip("the master role copies the code with rsync: apt-get install rsync")
    import buildbot

    prefix = tmp_path / "master"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({
        "farm_master": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
        "linux_workers": {"hosts": {"linux-9": {
            "farm_worker_os": "linux", "farm_worker_pythons": ["3.12", "3.13"],
            "farm_worker_password": secrets.token_urlsafe(24)}}},
    }))
    variables = {
        "farm_master_prefix": str(prefix),
        "farm_master_user": "root",
        "farm_master_group": "root",
        "farm_master_manage_user": False,
        "farm_master_manage_service": False,
        "farm_master_install_packages": False,
        "farm_master_database": "sqlite",
        "farm_master_python": sys.executable,
        "farm_master_systemd_dir": str(prefix / "systemd"),
    }
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(variables))
    playbook = ("ansible-playbook", "master.yml", "-i", inventory, "-e", f"@{vars_file}")
    run_tool(*playbook)
    second = run_tool(*playbook)
    assert _recap(second.stdout)["changed"] == 0, "a second run changes nothing:\n" + second.stdout[-6000:]

    assert (prefix / "basedir" / "buildbot.tac").exists() and (prefix / "basedir" / "state.sqlite").exists()
    assert (prefix / "basedir" / ".buildbot-version").read_text().strip() == buildbot.version
    loaded = farm_settings.load(prefix / "farm.toml", environ={})
    assert [(w.name, w.pythons) for w in loaded.workers] == [("linux-9", ("3.12", "3.13"))]
    assert loaded.db_url == "sqlite:///state.sqlite"
    unit = prefix / "systemd" / "farm-master.service"
    assert f"ExecStart={prefix}/venv/bin/buildbot start --nodaemon {prefix}/basedir" in unit.read_text()
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
