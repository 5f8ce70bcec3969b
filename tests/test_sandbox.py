"""Hostile packages through the runner: each is contained, classified, and leaves the worker able
to run the next build normally.

Every hostile action is bounded (so many processes, so many bytes, so many seconds) so that even a
sandbox that failed open could not take the machine down; the assertions say whether it held.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.pkgindex import ROOT, write_package

pytestmark = pytest.mark.slow

RUNNER = ROOT / "worker" / "runner.py"
CACHE = ROOT / ".cache" / "uv-runner-tests"
PY = "3.12"
LIMITS = ["--timeout", "90", "--silence-timeout", "8", "--memory", "256M", "--processes", "64",
          "--disk", "200M", "--max-log", "1M"]
MARK = "farmhostile" + uuid.uuid4().hex[:8]  # in every hostile process's command line


def hostile_tests(body):
    """A test module for the hostile package: `body` is the code of one test function."""
    return {"tests/test_hostile.py": "import os, socket, subprocess, sys, time\n\n\ndef test_hostile():\n"
            + "".join("    " + line + "\n" for line in body.strip().splitlines())}


class Host:
    """What the hostile code aims at on the host: secrets, a loopback server, places to write."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.home = folder / "home"
        (self.home / ".ssh").mkdir(parents=True)
        self.secret = "SECRET-" + uuid.uuid4().hex
        (self.home / ".ssh" / "id_rsa").write_text(self.secret + "-ssh\n")
        self.tac = folder / "worker" / "buildbot.tac"
        self.tac.parent.mkdir()
        self.tac.write_text("passwd = %r\n" % (self.secret + "-tac"))
        self.targets = [self.home / "pwned", Path("/tmp") / ("pwned-" + MARK), ROOT / ("pwned-" + MARK)]
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.listening = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.listening:
            try:
                conn, _ = self.server.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self):
        self.listening = False
        self.server.close()
        for target in self.targets:
            if target.exists():
                target.unlink()


@pytest.fixture
def host(tmp_path):
    host = Host(tmp_path / "host")
    yield host
    host.close()


def run(spec, workdir, index_url, host, extra=()):
    env = dict(os.environ, HOME=str(host.home), FARM_WORKER_SECRET=host.secret + "-env")
    proc = subprocess.run(
        [sys.executable, str(RUNNER), spec, "--python", PY, "--index-url", index_url, "--workdir", str(workdir),
         "--cache-dir", str(CACHE), *LIMITS, *extra],
        capture_output=True, text=True, timeout=300, env=env,
    )
    report = json.loads((workdir / "report.json").read_text()) if (workdir / "report.json").exists() else None
    return proc, report


def leftover_processes():
    found = subprocess.run(["pgrep", "-f", MARK], capture_output=True, text=True).stdout.split()
    return [pid for pid in found if int(pid) != os.getpid()]


HOSTILE = {
    # name: (source changes, expected outcome, words the reason must contain)
    "loopback": (
        lambda h: hostile_tests(f"socket.create_connection(('127.0.0.1', {h.port}), timeout=3)"),
        "tests-failed", "",
    ),
    "outside": (
        lambda h: hostile_tests("socket.create_connection(('pypi.org', 443), timeout=3)"),
        "tests-failed", "",
    ),
    "secrets": (
        lambda h: {"setup.py.prelude": (
            "import os, sys\n"
            f"for p in [{str(h.tac)!r}, {str(h.home / '.ssh' / 'id_rsa')!r}, '/proc/1/environ']:\n"
            "    try:\n        print('STOLEN', open(p).read())\n    except Exception as e:\n        print('denied', p, e)\n"
            "print('ENV', dict(os.environ))\n"
            "print('STDIN', sys.stdin.read())\n"
            "raise SystemExit('hostile: done looking around')\n"  # a failed build shows its output
        )},
        "install-failed", "",
    ),
    "writes": (
        lambda h: hostile_tests("\n".join(
            f"open({str(t)!r}, 'w').write('pwned')" for t in h.targets)),
        "tests-failed", "",
    ),
    "tools": (  # the shared test tools (pytest, outside the environment) are read-only
        lambda h: hostile_tests("""
import _pytest.python
with open(_pytest.python.__file__, 'a') as fh:
    fh.write('raise SystemExit("pytest poisoned by an earlier build")')
"""),
        "tests-failed", "",
    ),
    "forkbomb": (
        lambda h: hostile_tests(f"""
children = []
for i in range(1000):
    children.append(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{MARK}']))
"""),
        "tests-failed", "processes",
    ),
    "memory": (
        lambda h: hostile_tests("""
hog = []
for i in range(64):
    hog.append(bytearray(32 * 1024 * 1024))
    print(len(hog), flush=True)
"""),
        "infra-error", "oom",
    ),
    "silent": (
        lambda h: hostile_tests("end = time.time() + 60\nwhile time.time() < end:\n    pass"),
        "infra-error", "no output",
    ),
    "setsid": (
        lambda h: hostile_tests(f"""
code = 'import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    if os.fork() == 0:\\n        time.sleep(120)\\n'
subprocess.run([sys.executable, '-c', code, '{MARK}'])
"""),
        "passed", "",
    ),
    "flood": (
        lambda h: {**hostile_tests("chunk = b'x' * (1 << 20)\nfor i in range(1024):\n    os.write(1, chunk)"),
                   "pytest.ini": "[pytest]\naddopts = -s\n"},
        "passed", "",
    ),
    "disk": (
        lambda h: hostile_tests("""
chunk = b'x' * (1 << 20)
for n in range(100):
    with open('fill-%d' % n, 'wb') as fh:
        for i in range(10):
            fh.write(chunk)
        fh.flush()
    time.sleep(0.05)
"""),
        "infra-error", "disk",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_package_is_contained(case, host, package_index, tmp_path):
    changes, outcome, words = HOSTILE[case]
    files = changes(host)
    prelude = files.pop("setup.py.prelude", "")
    name = f"farmhostile-{case}"
    package_index.add(write_package(tmp_path / "dists", name, "1.0", kind="sdist", extra_files=files,
                                    setup_prelude=prelude))
    started = time.monotonic()
    proc, report = run(f"{name}==1.0", tmp_path / "w", package_index.url, host)
    assert report is not None, proc.stderr
    context = (report["reason"], proc.stdout[-2000:])
    assert report["sandbox"]["mode"] == "bwrap"
    assert report["outcome"] == outcome, context
    assert words in report["reason"], context
    assert time.monotonic() - started < 120

    # Contained: nothing reached the host's loopback, no secret came out, no file was written
    # outside the build, no process is left.
    assert host.connections == 0
    output = proc.stdout + proc.stderr + json.dumps(report)
    for log in (tmp_path / "w").glob("*.log"):
        output += log.read_text(errors="replace")
    assert host.secret not in output
    assert not [t for t in host.targets if t.exists()]
    deadline = time.monotonic() + 5
    while leftover_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftover_processes() == []
    if case == "flood":
        test_log = (tmp_path / "w" / "test.log").read_text(errors="replace")
        assert "[farm: output cut here" in test_log and len(test_log) < 2 << 20
    if case == "secrets":
        install_log = (tmp_path / "w" / "install.log").read_text(errors="replace")
        assert install_log.count("denied") >= 2 and "STDIN" in install_log, install_log[-3000:]

    # And the worker runs the next build normally, in the same folder.
    proc, report = run("farmfix-pass==1.0", tmp_path / "w", package_index.url, host)
    assert report["outcome"] == "passed", (report["reason"], proc.stdout[-2000:])


def test_without_bubblewrap_the_runner_refuses(package_index, tmp_path):
    env = dict(os.environ, PATH="/nonexistent")
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "farmfix-pass==1.0", "--python", PY, "--index-url", package_index.url,
         "--workdir", str(tmp_path / "w"), "--cache-dir", str(CACHE), "--uv", str(ROOT / ".venv" / "bin" / "uv")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    report = json.loads((tmp_path / "w" / "report.json").read_text())
    assert proc.returncode == 3 and report["outcome"] == "infra-error"
    assert "apt-get install bubblewrap" in report["reason"] and "--sandbox none" in report["reason"]


def test_sandbox_none_warns_loudly(package_index, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "farmfix-pass==1.0", "--python", PY, "--index-url", package_index.url,
         "--workdir", str(tmp_path / "w"), "--cache-dir", str(CACHE), "--sandbox", "none"],
        capture_output=True, text=True, timeout=120,
    )
    report = json.loads((tmp_path / "w" / "report.json").read_text())
    assert report["outcome"] == "passed" and report["sandbox"]["unsandboxed"] is True
    assert proc.stdout.count("WITHOUT a sandbox") >= 3, "a warning in every phase's log"
    assert "--sandbox none" in report["reproduce"]


def test_hostile_packages_through_the_farm(package_index, tmp_path):
    """The worker's password (in its buildbot.tac) stays out of every log; a fork storm is a
    failure of the package; the next build passes."""
    from tests.farm import Farm

    (tmp_path / "farm").mkdir()
    farm = Farm(tmp_path / "farm", package_index.url, pythons=(PY,)).start()
    try:
        tac = farm.folder / "worker-local" / "buildbot.tac"
        password = (farm.folder / "secrets" / "worker-local.pass").read_text().strip()
        assert password in tac.read_text()
        prelude = (
            "import os\n"
            f"for p in [{str(tac)!r}, os.path.expanduser('~/.ssh/id_rsa')]:\n"
            "    try:\n        print('STOLEN', open(p).read())\n    except Exception as e:\n        print('denied', p, e)\n"
            "print('ENV', dict(os.environ))\n"
            "raise SystemExit('hostile: done looking around')\n"
        )
        package_index.add(write_package(tmp_path / "d", "farmhostile-thief", "1.0", kind="sdist",
                                        setup_prelude=prelude))
        package_index.add(write_package(tmp_path / "d", "farmhostile-storm", "1.0", kind="sdist",
                                        extra_files=HOSTILE["forkbomb"][0](None)))
        expected = {"farmhostile-thief": "install-failed", "farmhostile-storm": "tests-failed",
                    "farmfix-pass": "passed"}
        for name, outcome in expected.items():
            _, builds = farm.wait_buildset(farm.force(name)[0])
            (build,) = builds
            assert build["properties"]["outcome"][0] == outcome, build["state_string"]
            for step in farm.steps(build["buildid"]):
                for log in farm.get(f"steps/{step['stepid']}/logs")["logs"]:
                    text = farm.raw_log(log["logid"])
                    assert password not in text
                    if name == "farmhostile-thief" and step["name"] == "install":
                        assert "denied" in text and "done looking around" in text
        assert leftover_processes() == []
    finally:
        farm.stop()
