"""`make run`: the farm on this machine, master and local worker in the foreground.

Creates what is missing (the master's base directory and database, the local worker, its
generated password), keeps what is there (a second run keeps the history), starts both, and stops
both on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import buildbot

from master import settings as farm_settings
from master.secrets import worker_password
from master.settings import ROOT

BIN = Path(sys.executable).parent
STOP_GRACE_SECONDS = 30

# What the local worker inherits from `make run`: enough to find interpreters, caches, locale and
# CA certificates, nothing else. A worker's environment can reach a build's log (which anyone may
# read) and every command of every package it builds; `make run`'s may hold the farm's secrets
# (FARM_ADMIN_PASSWORD, an SMTP password, ...), and no FARM_* variable is ever passed on.
WORKER_ENVIRONMENT = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "PYENV_ROOT", "XDG_CACHE_HOME", "XDG_DATA_HOME", "UV_PYTHON_INSTALL_DIR",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
)

RUN_VARIABLES = {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}  # what both processes get from make run


def master_environment(environ=os.environ) -> dict[str, str]:
    """The master's: its own, which holds the secrets it reads (master/secrets.py, master/access.py)."""
    return dict(environ, **RUN_VARIABLES)


def worker_environment(environ=os.environ) -> dict[str, str]:
    """The local worker's: the allowed variables of `environ`, never a FARM_* one."""
    kept = {name: environ[name] for name in WORKER_ENVIRONMENT if name in environ}
    return dict(kept, **RUN_VARIABLES)


def prepare_master(settings: farm_settings.Settings) -> None:
    basedir = settings.basedir
    stamp = basedir / ".buildbot-version"
    if not (basedir / "buildbot.tac").exists():
        basedir.mkdir(parents=True, exist_ok=True)
        _check_call(
            [BIN / "buildbot", "create-master", "--quiet", "--relocatable",
             f"--db={settings.db_url}", f"--config={ROOT / 'master.cfg'}", basedir]
        )
    elif not stamp.exists() or stamp.read_text().strip() != buildbot.version:
        # A newer Buildbot from the lock file: migrate the database before starting.
        _check_call([BIN / "buildbot", "upgrade-master", "--quiet", basedir])
    stamp.write_text(buildbot.version)


def worker_dir(settings: farm_settings.Settings, name: str) -> Path:
    return settings.basedir.parent / f"worker-{name}"


def prepare_local_worker(settings: farm_settings.Settings) -> Path | None:
    local = settings.local_worker
    if local is None:
        return None
    basedir = worker_dir(settings, local.name)
    # Written anew each run, so a changed port or password is picked up.
    _check_call(
        [BIN / "buildbot-worker", "create-worker", "--quiet", "--force", "--relocatable", "--umask=0o022",
         basedir, f"127.0.0.1:{settings.pb_port}", local.name, worker_password(local)]
    )
    return basedir


def _check_call(command: list) -> None:
    subprocess.run([str(part) for part in command], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    try:
        settings = farm_settings.load()
        prepare_master(settings)
        workdir = prepare_local_worker(settings)
    except farm_settings.SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    worker_env = worker_environment()
    processes = [subprocess.Popen([str(BIN / "buildbot"), "start", "--nodaemon", str(settings.basedir)],
                                  env=master_environment())]
    if workdir is not None:
        processes.append(subprocess.Popen([str(BIN / "buildbot-worker"), "start", "--nodaemon", str(workdir)],
                                          env=worker_env))
    print(f"The farm is starting: web UI on {settings.buildbot_url} (Ctrl-C stops it).", flush=True)

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    master = processes[0]
    while not stopping and master.poll() is None:
        time.sleep(0.2)
        if workdir is not None and processes[1].poll() is not None and not stopping:
            # The local worker died (killed, or out of memory): bring it back, as a service
            # manager would; its lost build is retried.
            print("The local worker stopped; starting it again.", file=sys.stderr, flush=True)
            time.sleep(1)
            processes[1] = subprocess.Popen([str(BIN / "buildbot-worker"), "start", "--nodaemon", str(workdir)],
                                            env=worker_env)
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
    if not stopping:
        print(f"error: the master stopped on its own; see {settings.basedir / 'twistd.log'}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
