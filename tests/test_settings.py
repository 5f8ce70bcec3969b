"""farm.toml: defaults load, overrides apply, and every mistake names its key."""

import subprocess
import sys
from pathlib import Path

import pytest

from master import settings
from master.settings import SettingsError

ROOT = Path(__file__).resolve().parent.parent

LOCAL = """
[[workers]]
name = "local"
local = true
password_file = "secrets/local.pass"
"""


def load_text(tmp_path, text, environ=None):
    path = tmp_path / "farm.toml"
    path.write_text(text)
    return settings.load(path, environ or {})


def test_the_shipped_settings_load():
    loaded = settings.load(ROOT / "farm.toml", {})
    assert loaded.http_port == 8010
    assert loaded.local_worker.name == "local"
    assert loaded.local_worker.pythons == "auto"
    assert loaded.basedir == ROOT / "var" / "master"
    assert loaded.index_url.endswith("/simple")
    assert loaded.limits.runner_flags()[:2] == ["--timeout", "900"]
    assert "--sandbox" in loaded.limits.runner_flags()


def test_limits_default_to_the_runners_own(tmp_path):
    """farm.toml's [limits] and the runner's flags have one set of defaults: the contract's."""
    from farm_runner import contract

    limits = load_text(tmp_path, LOCAL).limits
    assert {name: getattr(limits, name) for name in contract.DEFAULT_LIMITS} == contract.DEFAULT_LIMITS
    assert limits.sandbox in contract.SANDBOX_MODES


def test_environment_moves_the_ports_and_the_index(tmp_path):
    loaded = load_text(
        tmp_path, LOCAL, {"FARM_HTTP_PORT": "18010", "FARM_PB_PORT": "19989", "FARM_INDEX_URL": "http://127.0.0.1:1/simple"}
    )
    assert (loaded.http_port, loaded.pb_port) == (18010, 19989)
    assert loaded.buildbot_url == "http://localhost:18010/"
    assert loaded.index_url == "http://127.0.0.1:1/simple"
    assert loaded.local_worker.password_file == tmp_path / "secrets" / "local.pass"


# The variables the README documents, each with the shipped farm.toml (which sets every key they
# override): (variable, value, what it changes).
DOCUMENTED = [
    ("FARM_HTTP_PORT", "18110", lambda s: (s.http_port, s.buildbot_url) == (18110, "http://localhost:18110/")),
    ("FARM_PB_PORT", "19989", lambda s: s.pb_port == 19989),
    ("FARM_INDEX_URL", "http://127.0.0.1:1/simple", lambda s: s.index_url == "http://127.0.0.1:1/simple"),
    ("FARM_PYPI_URL", "http://127.0.0.1:2", lambda s: s.pypi.url == "http://127.0.0.1:2"),
]


@pytest.mark.parametrize("variable, value, changed", DOCUMENTED, ids=[d[0] for d in DOCUMENTED])
def test_each_documented_variable_works_with_the_shipped_settings(variable, value, changed):
    assert changed(settings.load(ROOT / "farm.toml", {variable: value}))
    assert not changed(settings.load(ROOT / "farm.toml", {}))


def test_the_readme_documents_the_variables_the_farm_reads():
    readme = (ROOT / "README.md").read_text()
    for variable in [d[0] for d in DOCUMENTED] + ["FARM_CONFIG", "FARM_ADMIN_PASSWORD"]:
        assert f"`{variable}" in readme, variable


def test_farm_config_names_another_file(tmp_path):
    (tmp_path / "other.toml").write_text("[master]\nhttp_port = 8123\n" + LOCAL)
    assert settings.load(environ={"FARM_CONFIG": str(tmp_path / "other.toml")}).http_port == 8123


@pytest.mark.parametrize(
    "text, message",
    [
        ("[master]\nhttp_port = 'x'\n" + LOCAL, "'master.http_port' must be a whole number, not 'x'."),
        ("[master]\nhttp_port = 70000\n" + LOCAL, "'master.http_port' must be a port number"),
        ("[master]\nhtpp_port = 8010\n" + LOCAL, "'master.htpp_port' is not a known setting"),
        ("[index]\nurl = 'ftp://x'\n" + LOCAL, "'index.url' must be an http(s) URL"),
        ("", "'workers' must list at least one worker"),
        ("[[workers]]\nname = 'w'\npassword_env = 'X'\n", "'workers[0].os' is required."),
        ("[[workers]]\nname = 'w'\nos = 'beos'\npythons=['3.12']\npassword_env = 'X'\n", "'workers[0].os' must be one of"),
        ("[[workers]]\nname = 'w'\nos = 'linux'\npythons=['3.x']\npassword_env = 'X'\n", "'workers[0].pythons' must list versions"),
        ("[[workers]]\nname = 'w'\nos = 'linux'\npythons=['3.12']\n", "'workers[0].password_file' or 'password_env'"),
        (LOCAL + LOCAL, "names the worker 'local' twice"),
        ("[limits]\ntimeout = 0\n" + LOCAL, "'limits.timeout' must be a positive number"),
        ("[limits]\nmemory_mb = -1\n" + LOCAL, "'limits.memory_mb' must be a positive number"),
        ("[limits]\nsandbox = 'docker'\n" + LOCAL, "'limits.sandbox' must be one of auto, bwrap, none"),
        ("[cluster]\nrouter = 'ws://127.0.0.1:8080/ws'\n" + LOCAL, "'cluster.router' needs a database the masters share"),
        ("[master]\ndb_url = 'postgresql://@/farm'\n[cluster]\nrouter = 'http://x'\n" + LOCAL, "'cluster.router' must be the router's WebSocket URL"),
        ("[master]\ndb_url = 'postgresql://@/farm'\n[cluster]\nrouter = 'ws://x:1/ws'\nmaster_timeout = 30\n" + LOCAL,
         "'cluster.master_timeout' must be 90 seconds or more"),
        ("[retention]\nlog_days = -1\n" + LOCAL, "'retention.log_days' must be 0 (keep for ever)"),
        ("[retention]\nhour = 24\n" + LOCAL, "'retention.hour' must be an hour from 0 to 23"),
        ("[retention]\nlogs = 7\n" + LOCAL, "'retention.logs' is not a known setting"),
        ("[mail]\nworker_missing_after = 0\n" + LOCAL, "'mail.worker_missing_after' must be a positive number"),
        ("[mail]\nmax_recipients = 0\n" + LOCAL, "'mail.max_recipients' must be a positive number, not 0"),
        ("[master\n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_key(tmp_path, text, message):
    with pytest.raises(SettingsError) as error:
        load_text(tmp_path, text)
    assert message in str(error.value)
    assert str(tmp_path / "farm.toml") in str(error.value)


def test_bad_port_in_environment(tmp_path):
    with pytest.raises(SettingsError, match=r"\$FARM_HTTP_PORT must be a port number"):
        load_text(tmp_path, LOCAL, {"FARM_HTTP_PORT": "eighty"})


@pytest.mark.slow
def test_checkconfig_passes_on_the_shipped_configuration(tmp_path):
    result = subprocess.run(
        [Path(sys.executable).parent / "buildbot", "checkconfig", ROOT / "master.cfg"],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config file is good!" in result.stdout


@pytest.mark.slow
def test_checkconfig_passes_with_every_documented_variable(tmp_path):
    """As `FARM_HTTP_PORT=18110 make run` starts it: the shipped farm.toml and every variable set."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FARM_CONFIG": str(ROOT / "farm.toml"),
           "FARM_ADMIN_PASSWORD": "s3cret", **{d[0]: d[1] for d in DOCUMENTED}}
    result = subprocess.run([Path(sys.executable).parent / "buildbot", "checkconfig", ROOT / "master.cfg"],
                            cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config file is good!" in result.stdout


@pytest.mark.slow
def test_checkconfig_names_the_bad_key(tmp_path):
    bad = tmp_path / "farm.toml"
    bad.write_text("[limits]\ntimeout = 'soon'\n" + LOCAL)
    result = subprocess.run(
        [Path(sys.executable).parent / "buildbot", "checkconfig", ROOT / "master.cfg"],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "FARM_CONFIG": str(bad)},
    )
    assert result.returncode != 0
    assert "'limits.timeout' must be a whole number, not 'soon'." in result.stdout + result.stderr


def test_a_worker_lists_every_kind_of_slot(tmp_path):
    """2.7, free-threaded builds (3.13t) and the newest X.Y, a pre-release there, are slots like any other."""
    loaded = load_text(tmp_path, "[[workers]]\nname = 'w'\nos = 'linux'\n"
                                 "pythons = ['2.7', '3.13', '3.13t', '3.15']\npassword_env = 'X'\n", {"X": "secret"})
    assert loaded.workers[-1].pythons == ("2.7", "3.13", "3.13t", "3.15")
    with pytest.raises(SettingsError, match=r"must list versions like \"3.12\" \(or \"3.13t\""):
        load_text(tmp_path, "[[workers]]\nname = 'w'\nos = 'linux'\npythons = ['3.13d']\npassword_env = 'X'\n")


def test_a_master_of_a_cluster_for_builds_only_takes_no_service_over(tmp_path):
    from master import cluster, config

    cluster_table = "[master]\ndb_url = 'postgresql://@/farm'\n[cluster]\nrouter = 'ws://router:8080/ws'\n"
    for services, expected in ((True, True), (False, False)):
        text = cluster_table + f"services = {'true' if services else 'false'}\n[pypi]\nfeed = 'changelog'\n" + LOCAL
        built = config.build_config(load_text(tmp_path, text))
        assert built["multiMaster"] is True and built["mq"]["router_url"] == "ws://router:8080/ws"
        assert bool(built["change_source"]) is expected
        assert (cluster.DUTIES in [s.name for s in built["schedulers"]]) is expected
        assert "rebuild" in [s.name for s in built["schedulers"]], "its UI still queues rebuilds"
