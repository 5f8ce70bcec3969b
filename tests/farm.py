"""A real farm for end-to-end tests: `python -m master.run` on free loopback ports in a temporary
folder, driven through the real REST API."""

from __future__ import annotations

import base64
import http.cookiejar
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _pid_of(matches, missing: str) -> int:
    """The process whose command line (argv as bytes) `matches`; AssertionError(missing) if none."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if matches(argv):
            return int(entry.name)
    raise AssertionError(missing)


class Farm:
    """One master and its local worker, as `make run` starts them."""

    def __init__(
        self, folder: Path, index_url: str, pythons=("3.11", "3.12"), max_builds: int = 2, retries: int = 1,
        extra_toml: str = "",
        local_worker: bool = True,
        env: dict | None = None,
        timeout: int = 300,
        db_url: str = "sqlite:///state.sqlite",
        worker_name: str = "local",
    ):
        self.folder = folder
        # The master reads admin's password from FARM_ADMIN_PASSWORD (master/access.py); force()
        # and rpc() log in with it, as a script would.
        self.admin_password = secrets.token_urlsafe(12)
        self.env = dict(env or {})
        self._admin = None  # an opener holding the admin's session cookie
        self.http_port, self.pb_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}/"
        self.config = folder / "farm.toml"
        # Tests add releases by forcing them; the poller runs only where a test asks for it.
        pypi_table = "" if "[pypi]" in extra_toml else '[pypi]\nfeed = "none"\n'
        self.config.write_text(
            f"""
[master]
url = "{self.url}"
http_port = {self.http_port}
pb_port = {self.pb_port}
basedir = "master"
db_url = "{db_url}"
secrets_dir = "secrets"

[index]
url = "{index_url}"

[limits]
timeout = {timeout}
retries = {retries}
{pypi_table}
"""
            + (
                f"""
[[workers]]
name = "{worker_name}"
local = true
pythons = {json.dumps(list(pythons))}
password_file = "secrets/worker-{worker_name}.pass"
max_builds = {max_builds}
"""
                if local_worker
                else ""
            )
            + extra_toml
        )
        self.slots = [f"linux-py{p}" for p in pythons]
        self.worker_name = worker_name
        self.process = None
        self.output = folder / "run.log"

    # -- processes -------------------------------------------------------------------------------
    def start(self, timeout: float = 90, wait_for_worker: bool = True) -> "Farm":
        env = dict(os.environ, FARM_CONFIG=str(self.config), FARM_ADMIN_PASSWORD=self.admin_password)
        for name in ("FARM_HTTP_PORT", "FARM_PB_PORT", "FARM_INDEX_URL"):
            env.pop(name, None)
        env.update(self.env)
        self.environment = env  # what master.run starts with; the worker gets only a part of it
        self._admin = None
        with self.output.open("ab") as output:  # the farm writes to its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "master.run"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            )
        if wait_for_worker:
            wait_for(self._worker_connected, timeout, "the master to answer and a worker to connect")
        else:
            wait_for(self._answers, timeout, "the master to answer")
        return self

    def _answers(self):
        if self.process.poll() is not None:
            raise AssertionError(f"the farm exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return self.get("builders") is not None
        except (urllib.error.URLError, ConnectionError):
            return False

    def _worker_connected(self):
        if self.process.poll() is not None:
            raise AssertionError(f"the farm exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            workers = self.get("workers")["workers"]
        except (urllib.error.URLError, ConnectionError):
            return False
        return any(w["connected_to"] for w in workers)

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def worker_pid(self) -> int:
        """The local worker's process, found by its command line (it runs in the foreground)."""
        workdir = str(self.folder / f"worker-{self.worker_name}").encode()
        return _pid_of(lambda argv: b"buildbot-worker" in b" ".join(argv) and workdir in argv,
                       f"no worker process runs from {workdir.decode()}")

    def master_pid(self) -> int:
        """The buildmaster process (`buildbot start`) master.run started for this farm."""
        basedir = str(self.folder / "master").encode()
        return _pid_of(lambda argv: b"start" in argv and basedir in argv and any(a.endswith(b"buildbot") for a in argv),
                       f"no buildbot master runs from {basedir.decode()}")

    def master_cpu_seconds(self) -> float:
        """User and system CPU the buildmaster has used so far (/proc/PID/stat)."""
        fields = (Path("/proc") / str(self.master_pid()) / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def worker_environment(self) -> dict[str, str]:
        """The local worker's environment as its process has it (master/run.py chose it)."""
        raw = (Path("/proc") / str(self.worker_pid()) / "environ").read_bytes().decode("utf-8", "replace")
        return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for path in (self.output, self.folder / "master" / "twistd.log",
                     self.folder / f"worker-{self.worker_name}" / "twistd.log"):
            if path.exists():
                parts.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    # -- REST API --------------------------------------------------------------------------------
    def get(self, path: str, **params):
        query = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"{self.url}api/v2/{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)

    def login(self, user: str = "admin", password: str | None = None):
        """An opener with a session of `user` (Buildbot's UserPasswordAuth: basic auth on /auth/login)."""
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        credentials = base64.b64encode(f"{user}:{password or self.admin_password}".encode()).decode()
        request = urllib.request.Request(f"{self.url}auth/login", headers={"Authorization": f"Basic {credentials}"})
        with opener.open(request, timeout=30):
            pass
        return opener

    def rpc(self, path: str, method: str, anonymous: bool = False, **params):
        """A JSON-RPC call on the REST API, as the admin unless `anonymous`."""
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
        request = urllib.request.Request(
            f"{self.url}api/v2/{path}", data=body, headers={"Content-Type": "application/json"}
        )
        if anonymous:
            opener = urllib.request.build_opener()
        else:
            self._admin = self._admin or self.login()
            opener = self._admin
        try:
            with opener.open(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def force(self, package: str, version: str = "", slots=None, **extra):
        params = dict(package=package, version=version, reason="test", **extra)
        if slots is not None:
            params["slots"] = list(slots)
        answer = self.rpc("forceschedulers/rebuild", "force", **params)
        assert "error" not in answer, answer
        return answer["result"]  # [buildsetid, {builderid: brid}]

    def builds(self, **params):
        return self.get("builds", property="*", **params)["builds"]

    def builds_of(self, buildsetid: int):
        requests = self.get("buildrequests", buildsetid=buildsetid)["buildrequests"]
        builds = []
        for request in requests:
            builds.extend(self.get(f"buildrequests/{request['buildrequestid']}/builds", property="*")["builds"])
        return requests, builds

    def wait_buildset(self, buildsetid: int, timeout: float = 240):
        def complete():
            if self.process.poll() is not None:
                raise AssertionError(f"the farm exited:\n{self.log_tail()}")
            return self.get(f"buildsets/{buildsetid}")["buildsets"][0]["complete"]

        wait_for(complete, timeout, f"buildset {buildsetid} to complete", interval=0.5)
        return self.builds_of(buildsetid)

    def raw_log(self, logid: int) -> str:
        with urllib.request.urlopen(f"{self.url}api/v2/logs/{logid}/raw", timeout=30) as response:
            return response.read().decode("utf-8", "replace")

    def steps(self, buildid: int):
        return self.get(f"builds/{buildid}/steps")["steps"]

    def builder_names(self) -> dict[int, str]:
        return {b["builderid"]: b["name"] for b in self.get("builders")["builders"]}
