"""Hostile packages through the runner: each is contained, classified, and leaves the worker able
to run the next build normally.

Every hostile action is bounded (so many processes, so many bytes, so many seconds) so that even a
sandbox that failed open could not take the machine down; the assertions say whether it held.
"""

import gzip
import io
import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.pkgindex import ROOT, write_package

from farm_runner import contract

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

    # For the attacks on the runner: was a host file read, or anything under the host's folder changed?
    @property
    def worker(self):
        return self.tac.parent

    @property
    def secret_files(self):
        return [self.tac, self.home / ".ssh" / "id_rsa"]

    def arm(self):
        """Mark the secrets unread (an access time before their modification time, which any read
        replaces under relatime or strictatime); self.atime_works says whether this filesystem
        stamps reads at all (a probe file is read to find out)."""
        probe = self.folder / "atime-probe"
        probe.write_text("probe")
        for path in [probe] + self.secret_files:
            os.utime(path, ns=(0, os.stat(path).st_mtime_ns))
        with open(probe) as fh:
            fh.read()
        self.atime_works = os.stat(probe).st_atime_ns != 0
        probe.unlink()

    def secrets_read(self):
        return [str(p) for p in self.secret_files if os.stat(p).st_atime_ns != 0]

    def snapshot(self):
        """Every entry under the host's folder by lstat alone (reading would stamp the secrets): a
        write, a new file, a rename or a new link anywhere there changes it."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.folder):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                out[os.path.relpath(path, self.folder)] = (
                    st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                    os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
        return out


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
    # The connection fails (no network in the sandbox): the test needed the network, which is the
    # farm's environment, not the package's failure.
    "outside": (
        lambda h: hostile_tests("socket.create_connection(('pypi.org', 443), timeout=3)"),
        "passed", "needed the network",
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


# ---------------------------------------------------------------------------------------------------
# Attacks on the runner itself (issue 13). Each is a real package (or two) served by the local index
# and run through the real runner. The hostile code is told where the host's secrets are (an attacker
# who guessed the worker's layout), so only the sandbox stands in its way; where it can tell whether
# its attack worked, its test asserts that it did, so a contained attack is the package's own test
# failure and never a pass. Every loop has a count and a deadline.
# ---------------------------------------------------------------------------------------------------

HOSTILE_HELPERS = r'''
import glob, os, socket, sys, time
NAMES = ("tmp", "home", "run", "src", "plugin", "out", "uv-cache", "env", "dl", "etc", "cache", "tests")


def sandboxed():
    """Whether this runs in the farm's sandbox (its hostname, bwrap as its PID 1). Outside it the
    hostile code touches nothing beyond the build's own box and the test's host folder: a test must
    not damage the machine it runs on even when the sandbox fails open (the checks see that anyway:
    the host's files are then read and written directly)."""
    try:
        with open("/proc/1/comm") as fh:
            return socket.gethostname() == "sandbox" and fh.read().strip() == "bwrap"
    except OSError:
        return False


def boxes():
    """The build's writable folders, found as a package would: $HOME's parent, the sandbox's
    read-write mounts (/proc/self/mountinfo), a folder named box above the working folder."""
    found, candidates = [], [os.path.dirname(os.environ.get("HOME") or "/")]
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh.read().splitlines()[:300] if sandboxed() else []:
                f = line.split()
                if (len(f) > 5 and "rw" in f[5].split(",") and f[4] not in ("/", "/tmp", "/proc", "/dev")
                        and not f[4].startswith(("/proc/", "/dev/", "/sys"))):
                    candidates.append(f[4].replace("\\040", " "))
    except OSError as exc:
        print("hostile: no mountinfo:", exc)
    d = os.getcwd()
    for _ in range(40):
        if os.path.basename(d) == "box":
            candidates.append(d)
        if d == "/":
            break
        d = os.path.dirname(d)
    for c in candidates:
        if c and c != "/" and os.path.isdir(c) and c not in found:
            found.append(c)
    return found[:10]


def swap(path, target):
    """Put a link to `target` where `path` is (moving a real folder aside first)."""
    try:
        if os.path.islink(path):
            os.unlink(path)
        elif os.path.lexists(path):
            os.rename(path, "%s.moved-%d" % (path, time.time() * 1e6))
        os.symlink(target, path)
        print("hostile: %s -> %s" % (path, target), flush=True)
        return True
    except OSError as exc:
        print("hostile: could not swap %s: %s" % (path, exc), flush=True)
        return False


def swap_everything(targets, skip=(), spare_box_path=False):
    """Every folder of every box, and every /tmp path, replaced by links to the host's folders
    (with `spare_box_path`, not the /tmp folders the boxes themselves lie in: the tests' boxes do)."""
    deadline, n, found = time.time() + 20, 0, boxes()
    for box in found:
        try:
            names = sorted(set(NAMES) | set(os.listdir(box)[:100]))
        except OSError:
            names = list(NAMES)
        for name in names:
            if time.time() > deadline:
                return
            if name not in skip and ".moved-" not in name:
                swap(os.path.join(box, name), targets[n % len(targets)])
                n += 1
    try:
        tmp = sorted(os.listdir("/tmp"))[:100] if sandboxed() else []
    except OSError:
        tmp = []
    for name in sorted(set(tmp) | {"farm", "box", "build", "run"}) if sandboxed() else []:
        if time.time() > deadline:
            return
        if spare_box_path and any(box.startswith("/tmp/%s/" % name) for box in found):
            continue
        swap(os.path.join("/tmp", name), targets[n % len(targets)])
        n += 1
'''


def hostile_code(host, body=""):
    """The helpers above, with the host's paths an attacker would aim at, then `body`."""
    consts = "WORKER, HOME, TAC, ID_RSA, MARK = %r, %r, %r, %r, %r\n" % (
        str(host.worker), str(host.home), str(host.tac), str(host.home / ".ssh" / "id_rsa"), MARK)
    return consts + HOSTILE_HELPERS + "\n" + textwrap.dedent(body)


def hostile_test_module(body, imports="import glob, json, os, sys, time"):
    """A test module whose one test is `body` (source code, dedented)."""
    return imports + "\n\n\ndef test_hostile():\n" + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")


class Build:
    """What an attack's `build` gets: the host, the index and a folder for its distributions."""

    def __init__(self, name, host, index, folder):
        self.name, self.host, self.index, self.folder = name, host, index, folder
        self.module = name.replace("-", "_")

    def package(self, name=None, **kw):
        paths = write_package(self.folder, name or self.name, "1.0", **kw)
        self.index.add(paths)
        return paths

    def raw_sdist(self, data_or_writer):
        """A file served as NAME-1.0.tar.gz whatever it holds (the index lists its real hash)."""
        path = self.folder / ("%s-1.0.tar.gz" % self.module)
        if callable(data_or_writer):
            data_or_writer(path)
        else:
            path.write_bytes(data_or_writer)
        self.index.add_raw(path, self.name)
        return path


class Attack:
    """build(Build) makes the packages; `outcome` and `words` (in the reason) are what the report must
    say; check(Run, Build) what else it must show, the box still as the package left it; `xfail`:
    why the runner does not hold yet (strict: the case must fail until it does)."""

    def __init__(self, build, outcome, words="", limits=LIMITS, check=None, disk_every=None, seconds=120,
                 xfail=None):
        self.build, self.outcome, self.words, self.limits = build, outcome, words, limits
        self.check, self.disk_every, self.seconds = check, disk_every, seconds
        self.marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []


# -- 1. A sandbox escape through a renamed bind source ----------------------------------------------

def build_escape(everything):
    """everything: the install swaps every folder of the box (and of /tmp) for a link to a host folder,
    except those the install itself still needs (env, uv-cache, and here the /tmp folders the test's
    box lies in), and the test run's conftest swaps those too, for the uninstall. Otherwise only the
    two the first runner bound elsewhere (box/tmp at /tmp, box/home as HOME)."""
    def build(b):
        if everything:
            prelude = "swap_everything([WORKER, HOME], skip=('env', 'uv-cache'), spare_box_path=True)\n"
            conftest = "def pytest_unconfigure(config):\n    swap_everything([HOME, WORKER])\n"
        else:
            prelude = ("for box in boxes():\n    swap(os.path.join(box, 'tmp'), WORKER)\n"
                       "    swap(os.path.join(box, 'home'), HOME)\n")
            conftest = ""
        b.package(kind="sdist", setup_prelude=hostile_code(b.host, prelude),
                  extra_files={"tests/conftest.py": hostile_code(b.host, conftest), "tests/test_escape.py": STEAL})
    return build


STEAL = hostile_test_module("""
        stolen, spots = [], []
        for box in boxes():
            try:
                names = sorted(set(NAMES) | set(os.listdir(box)[:100]))
            except OSError:
                names = list(NAMES)
            spots += [os.path.join(box, n) for n in names]
        if sandboxed():
            spots += ["/tmp/" + n for n in sorted(os.listdir("/tmp"))[:100]] + ["/tmp"]
        spots += [os.path.expanduser("~"), WORKER, HOME]
        for spot in spots[:500]:
            for rel in ("buildbot.tac", ".ssh/id_rsa", "worker/buildbot.tac", "home/.ssh/id_rsa"):
                try:
                    with open(os.path.join(spot, rel)) as fh:
                        stolen.append((spot, rel, fh.read(300)))
                except OSError:
                    pass
            try:
                with open(os.path.join(spot, "pwned-" + MARK), "w") as fh:
                    fh.write("pwned")
            except OSError:
                pass
        print("STOLEN", stolen)
        assert stolen, "hostile: the host's files were out of reach"
        """, imports="from conftest import *")


# -- 2. Host-side work following planted links --------------------------------------------------------

def build_planted_links(plant=("probe", "folders"), swap_tests=True):
    """plant: the package's setup.py plants links where the first runner wrote from the host (its probe
    plugin) and where it copied from (the staged tests' and the unpacked sdist's folders).
    swap_tests: a test dependency of the package swaps the staged tests for links."""
    def build(b):
        h = b.host
        swapper = b.name + "-swapper"
        prelude = hostile_code(h, "".join(PLANT[p] for p in plant)) if plant else ""
        setup = ("from setuptools import setup\n\n"
                 "setup(name=%r, version='1.0', packages=[%r]%s)\n"
                 % (b.name, b.module, ", extras_require={'test': ['%s==1.0']}" % swapper if swap_tests else ""))
        # The package fails its tests on purpose: its tests still run from the tree after the swaps
        # (moved aside, not lost), and no attack may turn into a pass.
        files = {"setup.py": setup,
                 "tests/test_planted.py": hostile_test_module("assert False, 'hostile: fails on purpose'")}
        b.package(kind="sdist", setup_prelude=prelude, extra_files=files)
        if swap_tests:
            b.package(name=swapper, kind="sdist", setup_prelude=hostile_code(h, SWAP_TESTS))
    return build


PLANT = {"probe": """
for box in boxes():
    os.makedirs(os.path.join(box, "plugin"), exist_ok=True)
    swap(os.path.join(box, "plugin", "_farm_probe.py"), TAC)
    swap(os.path.join(box, "plugin", "conftest.py"), ID_RSA)
""", "folders": """
for box in boxes():
    swap(os.path.join(box, "run"), WORKER)
    swap(os.path.join(box, "src"), HOME)
"""}

# Built from source while the runner installs the test extra, i.e. after the tests were staged.
SWAP_TESTS = """
        targets, n = [WORKER, HOME], 0
        for box in boxes():
            spots = [os.path.join(box, "run", "tests"), os.path.join(box, "src", "tests"),
                     os.path.join(box, "run", "conftest.py"), os.path.join(box, "plugin", "_farm_probe.py")]
            spots += sorted(glob.glob(os.path.join(box, "src", "*", "tests")))[:10]
            spots += sorted(glob.glob(os.path.join(box, "src", "*", "conftest.py")))[:10]
            for spot in spots:
                swap(spot, targets[n % 2])
                n += 1
        """


# -- 3. Crashes that used to read as a pass ------------------------------------------------------------

def build_garbage_sdist(b):
    b.package(kind="wheel")
    b.raw_sdist(b"\x1f\x8b this is no archive, only bytes named like one\n" * 100)


def build_absolute_link_sdist(b):
    (sdist,) = b.package(kind="sdist")
    b.package(kind="wheel")
    # The same sdist with one more member: tests/id_rsa, a link to the host's key.
    with tarfile.open(sdist) as tf:
        members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for member, data in members:
            tf.addfile(member, io.BytesIO(data) if data is not None else None)
        link = tarfile.TarInfo("%s-1.0/tests/id_rsa" % b.module)
        link.type, link.linkname, link.mode = tarfile.SYMTYPE, str(b.host.home / ".ssh" / "id_rsa"), 0o777
        tf.addfile(link)
    with open(sdist, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(raw.getvalue())
    b.index.add(sdist)


def forging_conftest(write):
    """A conftest that, after pytest wrote its files, overwrites one of them: `write` is the code of
    a function body given `path`, the file's path, found the way a package would find it."""
    return textwrap.dedent("""
        import atexit, os, sys


        def junit_path():
            for i, arg in enumerate(sys.argv[:200]):
                if arg == "--junitxml" and i + 1 < len(sys.argv):
                    return sys.argv[i + 1]
                if arg.startswith("--junitxml="):
                    return arg.split("=", 1)[1]


        def forge():
            for path in (junit_path(), os.environ.get("FARM_PROBE_REPORT")):
                if path and os.path.exists(os.path.dirname(path)):
                    try:
        """) + textwrap.indent(textwrap.dedent(write).strip() + "\n", " " * 16) + textwrap.dedent("""
                    except OSError as exc:
                        print("hostile: could not forge", path, exc)


        def pytest_unconfigure(config):
            forge()


        atexit.register(forge)
        """)


FORGED_PASS = ('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" '
               'failures="0" skipped="0" tests="3" time="0.1"><testcase classname="t" name="a"/>'
               '<testcase classname="t" name="b"/><testcase classname="t" name="c"/></testsuite></testsuites>')


def build_junit_forged(write):
    def build(b):
        # The fixture's testfail tests fail (pytest exits 1); the conftest rewrites what the run
        # wrote, junit.xml and the probe's imports file alike, once pytest is done with them.
        b.package(kind="sdist", behaviour="testfail", extra_files={"tests/conftest.py": forging_conftest(write)})
    return build


def build_broken_record(where):
    def build(b):
        line = '"%s/never-closed.py,sha256=AAAA,4\n' % b.module
        record_of = {"own": b.module, "dep": "farmfix_dep"}[where]
        test = hostile_test_module("""
            import farmfix_dep
            site = os.path.dirname(os.path.dirname(farmfix_dep.__file__))
            (record,) = glob.glob(os.path.join(site, %r + "-*.dist-info", "RECORD"))
            with open(record, "a") as fh:
                fh.write(%r)
            """ % (record_of, line))
        b.package(kind="wheel", dependencies=("farmfix-dep>=1",),
                  extra_files={"tests/test_record.py": test})
        b.package(kind="sdist", dependencies=("farmfix-dep>=1",), extra_files={"tests/test_record.py": test})
    return build


def build_shipped_broken_record(b):
    (wheel,) = b.package(kind="wheel")
    b.package(kind="sdist")
    # The wheel's own RECORD gets a last line that opens a quote and never closes it.
    with zipfile.ZipFile(wheel) as zf:
        content = {i: zf.read(i) for i in zf.infolist()}
    with zipfile.ZipFile(wheel, "w") as zf:
        for info, data in content.items():
            if info.filename.endswith(".dist-info/RECORD"):
                data += ('"%s/never-closed.py,sha256=AAAA,4\n' % b.module).encode()
            zf.writestr(info, data)
    b.index.add(wheel)


def build_fifo_metadata(whose):
    def build(b):
        dist = {"own": b.module, "dep": "farmfix_dep"}[whose]
        test = hostile_test_module("""
            import farmfix_dep
            site = os.path.dirname(os.path.dirname(farmfix_dep.__file__))
            (info,) = glob.glob(os.path.join(site, %r + "-*.dist-info"))
            os.unlink(os.path.join(info, "METADATA"))
            os.mkfifo(os.path.join(info, "METADATA"))
            print("hostile: planted a FIFO at", os.path.join(info, "METADATA"))
            assert %r == "dep", "hostile: this package's own METADATA is a FIFO now"
            """ % (dist, whose))
        b.package(kind="sdist", dependencies=("farmfix-dep>=1",), extra_files={"tests/test_fifo.py": test})
    return build


# -- 4. A forged report ---------------------------------------------------------------------------------

FORGED_REPORT = {"schema": contract.SCHEMA, "spec": "requests==2.32.3", "package": "requests",
                 "version": "2.32.3", "outcome": "passed", "reason": "FORGED-" + MARK, "infra": None}


def build_forged_report(b):
    test = hostile_test_module("""
        forged = json.dumps(%r)
        written = []
        folders = [os.path.dirname(box) for box in boxes()] + boxes() + [os.path.expanduser("~")]
        folders += ["/run/farm", "/run/farm/out/..", "/tmp"] if sandboxed() else []
        for folder in folders[:20]:
            for name in ("report.json", "report.json.tmp", "test.log", "../report.json"):
                path = os.path.normpath(os.path.join(folder, name))
                try:
                    if os.path.islink(path) or os.path.isfile(path):
                        os.unlink(path)
                    with open(path, "w") as fh:
                        fh.write(forged)
                    written.append(path)
                except OSError as exc:
                    print("hostile: could not write", path, exc)
        # The attack worked if a forged report landed beside the runner's own files (a folder of the
        # sandbox's own that only looks like the runner's, e.g. in its /tmp, does not count).
        print("WRITTEN", written)
        beside = [p for p in written if os.path.exists(os.path.join(os.path.dirname(p), "install.log"))]
        assert beside, "hostile: the runner's folder was out of reach"
        """ % FORGED_REPORT, imports="import json, os\nfrom conftest import boxes, sandboxed")
    # The install first aims the box's tmp and home folders at the runner's folder (the box's parent),
    # the way the first runner's escape let tests write the report.
    prelude = hostile_code(b.host, """
        for box in boxes():
            swap(os.path.join(box, "tmp"), os.path.dirname(box))
            swap(os.path.join(box, "home"), os.path.dirname(box))
        """)
    b.package(kind="sdist", setup_prelude=prelude,
              extra_files={"tests/conftest.py": hostile_code(b.host), "tests/test_forge.py": test})


# -- 5. Hangs and floods ---------------------------------------------------------------------------------

class _Zeros(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


BOMB_BYTES = 1 << 30


def build_bomb(b):
    b.package(kind="wheel")

    def write(path):
        # 1 GB of zeros behind 1 MB of gzip, written as a stream (never 1 GB in memory or on disk)
        base = "%s-1.0" % b.module
        with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name, text in (("PKG-INFO", "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n\n" % b.name),
                               ("tests/test_it.py", "def test_it():\n    pass\n")):
                info = tarfile.TarInfo(base + "/" + name)
                info.size = len(text)
                tf.addfile(info, io.BytesIO(text.encode()))
            info = tarfile.TarInfo(base + "/zeros.bin")
            info.size = BOMB_BYTES
            tf.addfile(info, io.BufferedReader(_Zeros(BOMB_BYTES), 1 << 20))

    path = b.raw_sdist(write)
    assert os.path.getsize(path) < 2 << 20


def build_connection_flood(b):
    b.package(kind="sdist", setup_prelude=textwrap.dedent("""
        import os, socket, time, resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4500), hard))
        except (ValueError, OSError):
            pass
        proxy = (os.environ.get("HTTP_PROXY") or "http://127.0.0.1:3128").rsplit("/", 1)[-1]
        host, port = proxy.rsplit(":", 1)
        held, failed, deadline = [], {}, time.time() + 15
        for i in range(2000):
            if time.time() > deadline:
                break
            try:
                held.append(socket.create_connection((host, int(port)), timeout=0.25))
            except OSError as exc:
                failed[type(exc).__name__] = failed.get(type(exc).__name__, 0) + 1
        print("hostile: holding %d connections (%r failed)" % (len(held), failed), flush=True)
        time.sleep(15)
        raise SystemExit("hostile: held %d idle connections to the proxy for 15 s" % len(held))
        """))


# -- the cases, and what each must show besides containment -------------------------------------------

def _junit_write(text):
    return "if path.endswith('.xml'):\n    with open(path, 'w') as fh:\n        fh.write(%r)\n" % text


def _imports_write(text):
    return "if path.endswith('.json'):\n    with open(path, 'w') as fh:\n        fh.write(%r)\n" % text


def check_pytest_failed(counts_known, imported_from=None):
    def check(run, b):
        tests = run.report["tests"]
        assert tests["returncode"] == 1 and tests["counts_known"] is counts_known, tests
        if imported_from is not None:
            assert tests["imported_from"] == imported_from, tests
    return check


def check_escape(run, b):
    box = run.workdir / "box"
    # The install swapped the box's folders for links (home), the test run the rest (env, uv-cache);
    # the tests found nothing of the host through them.
    assert (box / "home").is_symlink() and (box / "env").is_symlink() and (box / "uv-cache").is_symlink()
    assert "STOLEN []" in (run.workdir / "test.log").read_text(errors="replace")


def check_planted_links(planted=True, swapped=True):
    def check(run, b):
        box = run.workdir / "box"
        if planted:  # by the install
            assert (box / "plugin" / "_farm_probe.py").is_symlink()
        if swapped:  # the tests in the unpacked sdist, by the test dependency
            assert [p for p in (box / "src").glob("*/tests") if p.is_symlink()]
            assert "hostile: fails on purpose" in (run.workdir / "test.log").read_text(errors="replace")
    return check


def check_unpack_refused(run, b):
    assert "cannot be unpacked" in run.report["reason"], run.report["reason"]


def check_bomb(run, b):
    check_unpack_refused(run, b)
    assert max(run.disk) < 100 << 20, "the workdir grew to %d bytes" % max(run.disk)


def check_flood(run, b):
    assert run.threads and max(run.threads) < 80, "the runner had up to %d threads" % max(run.threads)
    install_log = (run.workdir / "install.log").read_text(errors="replace")
    assert "hostile: holding" in install_log and "connections to the index proxy were refused" in install_log, \
        install_log[-3000:]
    assert run.report["sandbox"]["network"]["refused_over_cap"] > 1000


def check_fifo(whose):
    def check(run, b):
        uninstall = run.report["phases"]["uninstall"]
        assert uninstall["status"] in ("ok", "failed") and uninstall["seconds"] < 8, uninstall
        if whose == "own":  # its test failed, so pytest showed what it printed
            assert "hostile: planted a FIFO" in (run.workdir / "test.log").read_text(errors="replace")
        else:  # still there after the uninstall, and its distribution's files are left over
            site = run.workdir / "box" / "env"
            (metadata,) = site.glob("lib/python*/site-packages/farmfix_dep-*.dist-info/METADATA")
            assert stat.S_ISFIFO(os.lstat(metadata).st_mode)
            assert [p for p in run.report["leftovers"] if "farmfix_dep" in p], run.report["leftovers"]
    return check


def check_forged_report(run, b):
    assert (run.report["package"], run.report["version"]) == (b.name, "1.0")
    # Outside the box only the runner's own files, none of them forged. (out/N/ is the test run's own
    # answer folder, bound read-write for its junit.xml: whatever lands there is read as untrusted data.)
    names = {p.name for p in run.workdir.iterdir()}
    assert names <= {"box", "etc", "dl", "index-dl", "out", "report.json", "snapshot-before.json", "install.log",
                     "test.log", "uninstall.log"}, names
    # (The logs, and the report's excerpts of them, show the hostile test's source, forged text and all.)
    assert run.report["spec"] == b.name + "==1.0" and "FORGED" not in run.report["reason"]
    outside = [p for p in run.workdir.rglob("*") if p.is_file() and not p.is_symlink()
               and p.relative_to(run.workdir).parts[0] not in ("box", "out")
               and p.name != "report.json" and p.suffix != ".log"]
    assert not [p for p in outside if ("FORGED-" + MARK) in p.read_text(errors="replace")], outside
    assert "hostile: the runner's folder was out of reach" in (run.workdir / "test.log").read_text(errors="replace")


# The flood's setup.py is silent while it holds its connections (uv shows a build's output only when
# it ends), and its sandbox may start more threads than the fork-bomb limit of the other cases: the
# proxy's own cap is what this case is about.
FLOOD_LIMITS = ["--timeout", "90", "--silence-timeout", "60", "--memory", "512M", "--processes", "1024",
                "--disk", "200M", "--max-log", "1M"]

ATTACKS = {
    # name: Attack(build, the outcome it must have, words its reason must hold, ...)
    # 1. Escape: the tests find nothing of the host through the box's folders, which the install swapped
    #    for links; their own assertion that they stole something fails (tests-failed).
    "escape": Attack(build_escape(everything=True), "tests-failed", "Tests failed", check=check_escape),
    #    Only box/tmp and box/home swapped (a runner that gives up at the first odd folder could hide
    #    the escape from the case above: the first one did).
    "escape-tmp": Attack(build_escape(everything=False), "tests-failed", "Tests failed"),
    # 2. Planted links: the staged tests were swapped for links by the test dependency, and pytest finds
    #    no tests where it was told to look: the package's own failure (tests-failed).
    "planted-links": Attack(build_planted_links(), "tests-failed", check=check_planted_links()),
    #    The same, one at a time (for the same reason): the probe plugin's links planted by the install
    #    alone (the package then fails its tests on purpose), the tests swapped by the dependency alone.
    "planted-probe": Attack(build_planted_links(plant=("probe",), swap_tests=False), "tests-failed",
                            "Tests failed", check=check_planted_links(swapped=False)),
    "planted-tests": Attack(build_planted_links(plant=()), "tests-failed", check=check_planted_links(planted=False)),
    # 3. Crashes that read as a pass.
    #    The release's own sdist cannot be unpacked, so its tests cannot run: the package's failure
    #    (tests-failed), neither a pass nor the farm's fault.
    "garbage-sdist": Attack(build_garbage_sdist, "tests-failed", check=check_unpack_refused),
    "absolute-link-sdist": Attack(build_absolute_link_sdist, "tests-failed", check=check_unpack_refused),
    #    The tests fail (pytest exits 1), then rewrite junit.xml or the probe's imports file: the host
    #    decides from the exit status it saw (tests-failed); the forged counts are only shown.
    "junit-garbage": Attack(build_junit_forged(_junit_write('<testsuites><testsuite tests="x" failures="x"/>'
                                                            '</testsuites>')),
                            "tests-failed", "Tests failed", check=check_pytest_failed(False)),
    "junit-passed": Attack(build_junit_forged(_junit_write(FORGED_PASS)), "tests-failed", "Tests failed",
                           check=check_pytest_failed(True)),
    "imports-list": Attack(build_junit_forged(_imports_write("[1, 2, 3]")), "tests-failed", "Tests failed",
                           check=check_pytest_failed(True, {})),
    "imports-garbage": Attack(build_junit_forged(_imports_write("\x00{not json")), "tests-failed",
                              "Tests failed", check=check_pytest_failed(True, {})),
    #    A RECORD line whose quote never closes. In the package's own RECORD (its tests append it): no
    #    installer can uninstall it (uv refuses the RECORD), uninstall-dirty.
    "record-own": Attack(build_broken_record("own"), "uninstall-dirty", "Uninstalling"),
    #    Shipped in the wheel: uv refuses to install it, install-failed.
    "record-shipped": Attack(build_shipped_broken_record, "install-failed", "from the wheel"),
    #    In its dependency's RECORD: the environment it leaves holds a distribution no installer can
    #    uninstall any more (uv: "RECORD file is invalid"), uninstall-dirty.
    #    The audit reads RECORD as strictly as uv does: the dependency's files belong to no readable
    #    distribution any more, and are left over.
    "record-dep": Attack(build_broken_record("dep"), "uninstall-dirty"),
    # 4. A forged report: the runner's folder is out of the tests' reach (their assertion that they
    #    wrote there fails: tests-failed) and the report names the package.
    "forged-report": Attack(build_forged_report, "tests-failed", "Tests failed", check=check_forged_report),
    # 5. Hangs and floods.
    #    A FIFO as METADATA: of the package itself (the uninstall removes it with the rest of its RECORD,
    #    unopened; the outcome is that of its test, which fails on purpose: tests-failed), or of its
    #    dependency (whose files then belong to no readable distribution: uninstall-dirty). Either way
    #    the uninstall returns at once.
    "fifo-own": Attack(build_fifo_metadata("own"), "tests-failed", check=check_fifo("own")),
    "fifo-dep": Attack(build_fifo_metadata("dep"), "uninstall-dirty", check=check_fifo("dep")),
    #    1 GB behind 1 MB: refused before anything is written, as an sdist that cannot be unpacked
    #    (tests-failed), while the workdir stays small.
    "bomb": Attack(build_bomb, "tests-failed", check=check_bomb, disk_every=0.1),
    #    2,000 idle connections to the install's proxy: at most 32 are served, the rest refused, and the
    #    runner's threads stay few. Its setup.py then fails on purpose: install-failed.
    "connection-flood": Attack(build_connection_flood, "install-failed", limits=FLOOD_LIMITS, check=check_flood),
}


class Run:
    """The runner's process, watched while it runs: its thread count and the workdir's disk use."""

    def __init__(self, spec, workdir, index_url, host, limits=LIMITS, disk_every=None, seconds=300):
        self.workdir = workdir
        env = dict(os.environ, HOME=str(host.home), FARM_WORKER_SECRET=host.secret + "-env")
        cmd = [sys.executable, str(RUNNER), spec, "--python", PY, "--index-url", index_url, "--workdir",
               str(workdir), "--cache-dir", str(CACHE), *limits]
        self.threads, self.disk, out = [], [], {}
        started = next_disk = time.monotonic()
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
            readers = [threading.Thread(target=lambda k, f: out.__setitem__(k, f.read()), args=(k, f), daemon=True)
                       for k, f in (("stdout", proc.stdout), ("stderr", proc.stderr))]
            for r in readers:
                r.start()
            while proc.poll() is None:
                now = time.monotonic()
                if now - started > seconds:
                    proc.kill()
                    proc.wait()
                    pytest.fail("the runner did not return within %d s" % seconds)
                self.threads.append(_thread_count(proc.pid))
                if disk_every is not None and now >= next_disk:
                    self.disk.append(_disk_use(workdir))
                    next_disk = now + disk_every
                time.sleep(0.1)
            for r in readers:
                r.join(30)
        self.seconds = time.monotonic() - started
        self.threads = [t for t in self.threads if t]
        self.returncode = proc.returncode
        self.stdout = out.get("stdout", b"").decode("utf-8", "replace")
        self.stderr = out.get("stderr", b"").decode("utf-8", "replace")
        path = workdir / "report.json"
        self.report = json.loads(path.read_text()) if path.exists() else None


def _thread_count(pid):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _disk_use(root):
    total, stack = 0, [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
    return total


def files_holding(root, needle, limit=64 << 20):
    """Regular files under `root` holding `needle`: no link followed, no FIFO or device opened."""
    hits, stack, seen = [], [str(root)], 0
    while stack and seen < 300000:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as fh:
                if stat.S_ISREG(os.fstat(fh.fileno()).st_mode) and needle in fh.read(limit):
                    hits.append(entry.path)
    return hits


@pytest.mark.parametrize("case", [pytest.param(c, marks=ATTACKS[c].marks) for c in sorted(ATTACKS)])
def test_attack_on_the_runner_is_contained(case, host, package_index, tmp_path):
    attack = ATTACKS[case]
    b = Build("farmhostile-" + case, host, package_index, tmp_path / "dists")
    attack.build(b)
    host.arm()
    before = host.snapshot()
    result = Run("%s==1.0" % b.name, tmp_path / "w", package_index.url, host, attack.limits, attack.disk_every,
                 seconds=attack.seconds + 30)
    report = result.report
    evidence = tmp_path / "evidence"  # the hostile build's logs and report, kept for a failure's reader
    evidence.mkdir()
    for path in (tmp_path / "w").glob("*.*"):
        if path.is_file() and not path.is_symlink():
            (evidence / path.name).write_bytes(path.read_bytes())
    (evidence / "watch.json").write_text(json.dumps({"seconds": result.seconds, "threads": max(result.threads or [0]),
                                                     "disk": max(result.disk or [0])}))
    assert report is not None, result.stderr[-3000:]
    context = (report["outcome"], report["reason"], report.get("infra"), result.stdout[-4000:], result.stderr[-2000:])

    # The runner did not crash, returned within its limits, and its report names the package.
    assert result.returncode in set(contract.EXIT_CODES.values()), context
    assert report.get("infra") != "runner-fault", context
    assert "[farm: the runner failed]" not in result.stdout, context
    assert result.seconds < attack.seconds, context
    assert report["sandbox"]["mode"] == "bwrap"
    assert (report["package"], report["version"]) == (b.name, "1.0"), context

    # Contained: no host file read (none of its secrets in the output, the report, the logs or anywhere
    # in the build's folder; the secrets' access times untouched), nothing written or linked on the host.
    assert host.secrets_read() == [] or not host.atime_works
    assert host.secret not in result.stdout + result.stderr + json.dumps(report)
    assert files_holding(result.workdir, host.secret.encode()) == []
    after = host.snapshot()
    assert {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)} == {}
    assert not [t for t in host.targets if os.path.lexists(t)]
    assert host.connections == 0
    deadline = time.monotonic() + 5
    while leftover_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftover_processes() == []

    # The outcome the package earned (never passed), and what the case shows besides; a wrong outcome
    # is reported after the next build, so that a case marked xfail still shows that build passes.
    try:
        assert report["outcome"] != "passed", context
        assert report["outcome"] == attack.outcome, context
        assert attack.words in report["reason"], context
        if attack.check:
            attack.check(result, b)
        wrong = None
    except AssertionError as exc:
        wrong = exc

    # And the worker runs the next build normally, in the same folder.
    proc, report = run("farmfix-pass==1.0", tmp_path / "w", package_index.url, host)
    assert report["outcome"] == "passed", (report["reason"], proc.stdout[-2000:])
    if wrong is not None:
        raise wrong


def test_the_containment_checks_see_a_breach(host, tmp_path):
    """The checks of the attacks above, shown a breach: a secret read, a file written beside it, a
    secret copied into the build's folder (beside a FIFO and a link to it, neither of them opened)."""
    host.arm()
    before = host.snapshot()
    assert host.secrets_read() == []
    host.tac.read_text()
    assert host.secrets_read() == [str(host.tac)] or not host.atime_works
    (host.worker / "pwned").write_text("pwned")
    assert host.snapshot() != before
    box = tmp_path / "w" / "box"
    box.mkdir(parents=True)
    os.mkfifo(box / "METADATA")
    os.symlink(host.home / ".ssh" / "id_rsa", box / "id_rsa")
    assert files_holding(tmp_path / "w", host.secret.encode()) == []
    (box / "stolen").write_text(host.tac.read_text())
    assert files_holding(tmp_path / "w", host.secret.encode()) == [str(box / "stolen")]


def test_a_new_sdist_of_a_test_tool_is_never_built_on_the_host(host, tmp_path):
    """uv installs pytest and its dependencies on the host (issue 27): a newer sdist of one of them
    (iniconfig, which pytest needs) whose setup.py writes a file there is never built."""
    from tests.pkgindex import PackageIndex, ensure_wheelhouse, write_standard_packages

    marker = tmp_path / "marker"
    write_standard_packages(tmp_path / "dists")
    hostile = write_package(tmp_path / "hostile", "iniconfig", "99.0", "notests", kind="sdist",
                            setup_prelude="open(%r, 'w').write('setup.py ran outside the sandbox')\n" % str(marker))
    with PackageIndex(tmp_path / "dists", ensure_wheelhouse(), *hostile) as index:
        # a cache of its own: the day's shared tools folder would hide the install
        proc, report = run("farmfix-pass==1.0", tmp_path / "w", index.url, host,
                           extra=("--cache-dir", str(tmp_path / "cache")))
    assert not marker.exists(), "a test tool's sdist was built on the host"
    assert report["outcome"] == "passed", (report["reason"], proc.stdout[-3000:])
