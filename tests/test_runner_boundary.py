"""The pieces that hold the runner's trust boundary, each against real files, sockets and
processes: the untrusted-file reader, the bounded unpacker, the index proxy's caps, cgroup set-up
on v1 and v2 layouts, and the one-file bundle the master ships."""
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile

import pytest

from farm_runner import bundle, untrusted
from farm_runner.host import limits, proxy
from farm_runner.inside import environment, unpack
from tests.pkgindex import ROOT


# -- untrusted files ----------------------------------------------------------------------------

def test_untrusted_reader_takes_regular_files_only(tmp_path):
    box = tmp_path / "box"
    (box / "out").mkdir(parents=True)
    (box / "out" / "ok.json").write_text('{"a": 1}')
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (box / "out" / "link.json").symlink_to(secret)
    (box / "linkdir").symlink_to(tmp_path)
    os.mkfifo(box / "out" / "fifo")
    (box / "out" / "big").write_bytes(b"x" * 2048)

    assert untrusted.read_json(str(box), "out/ok.json", 100) == {"a": 1}
    for relative, words in (("out/link.json", "symbolic link"), ("linkdir/secret", "not a folder"),
                            ("out/fifo", "not a regular file"), ("out/big", "larger than"),
                            ("out/missing", "missing"), ("../secret", "not a path below")):
        started = time.monotonic()
        with pytest.raises(untrusted.Untrusted, match=words):
            untrusted.read_bytes(str(box), relative, 1024)
        assert time.monotonic() - started < 1, "a FIFO must not block the reader"
    with pytest.raises(untrusted.Untrusted, match="not JSON"):
        (box / "out" / "bad.json").write_text("[1,")
        untrusted.read_json(str(box), "out/bad.json", 100)


def test_disk_usage_never_follows_links_and_stops_at_its_cap(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 100000)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "root").symlink_to("/")
    used, stopped = untrusted.disk_usage([str(tmp_path / "b")], 1000)
    assert used < 10000 and not stopped
    for i in range(20):
        (tmp_path / "b" / str(i)).touch()
    assert untrusted.disk_usage([str(tmp_path)], 10)[1] is True
    assert untrusted.disk_usage([str(tmp_path / "a")], 10)[0] >= 100000


def test_disk_usage_counts_a_hard_linked_file_once(tmp_path):
    # the install's files are hard links into the build's own cache: one copy on disk
    (tmp_path / "cache").mkdir()
    (tmp_path / "env").mkdir()
    (tmp_path / "cache" / "torch.so").write_bytes(os.urandom(1 << 20))
    for i in range(5):
        os.link(tmp_path / "cache" / "torch.so", tmp_path / "env" / ("copy%d.so" % i))
    used, _ = untrusted.disk_usage([str(tmp_path)], 1000)
    assert (1 << 20) <= used < (1 << 20) + 100000
    (tmp_path / "env" / "own.bin").write_bytes(os.urandom(1 << 20))  # a file of its own counts
    assert untrusted.disk_usage([str(tmp_path)], 1000)[0] >= 2 << 20


def test_environment_listing_lists_links_and_fifos_without_following(tmp_path):
    env = tmp_path / "env"
    (env / "lib" / "empty").mkdir(parents=True)
    (env / "lib" / "to-root").symlink_to("/")
    os.mkfifo(env / "lib" / "pipe")
    files, complete = environment.list_files(str(env))
    assert complete and files == ["lib/empty/", "lib/pipe", "lib/to-root"]
    assert environment.list_files(str(env), max_entries=2) == (["lib/pipe", "lib/to-root"], False)


def test_distributions_skip_a_fifo_metadata_and_survive_a_broken_record(tmp_path):
    site = tmp_path / "site"
    good = site / "good-1.0.dist-info"
    good.mkdir(parents=True)
    (good / "METADATA").write_text("Metadata-Version: 2.1\nName: good\nVersion: 1.0\nRequires-Dist: dep>=1\n")
    (good / "RECORD").write_text('good/__init__.py,,\n"good/unterminated.py,,\n')
    fifo = site / "fifo-1.0.dist-info"
    fifo.mkdir()
    os.mkfifo(fifo / "METADATA")
    started = time.monotonic()
    found = {d["dist_info"]: d for d in environment.distributions(str(site))}
    assert time.monotonic() - started < 2
    assert found["good-1.0.dist-info"]["name"] == "good" and found["good-1.0.dist-info"]["requires"] == ["dep>=1"]
    # A RECORD is read as strictly as installers read it: one bad row and none of it is trusted.
    assert found["good-1.0.dist-info"]["record"] == [] and "malformed RECORD" in found["good-1.0.dist-info"]["problem"]
    assert environment.record_paths('a.py,sha256=x,1\n"b c.py",,\n') == ["a.py", "b c.py"]
    assert "not a regular file" in found["fifo-1.0.dist-info"]["problem"]


# -- the bounded unpacker -----------------------------------------------------------------------

def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


class Zeros:
    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def test_unpack_refuses_bombs_escapes_and_garbage(tmp_path):
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tf:  # 50 MB of zeros: a few tens of KB compressed
        info = tarfile.TarInfo("bomb-1.0/zeros")
        info.size = 50 << 20
        tf.addfile(info, Zeros(info.size))
    with pytest.raises(unpack.Refused, match="past the build's disk limit"):
        unpack.unpack(str(bomb), str(tmp_path / "u1"), max_bytes=10 << 20)
    assert sum(f.stat().st_size for f in (tmp_path / "u1").rglob("*") if f.is_file()) == 0, "nothing written"

    link = tarfile.TarInfo("evil-1.0/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    escape = tmp_path / "escape.tar.gz"
    _tar(escape, [_file("evil-1.0/setup.py"), (link, None)])
    with pytest.raises(unpack.Refused):
        unpack.unpack(str(escape), str(tmp_path / "u2"), max_bytes=1 << 20)

    dotdot = tmp_path / "dotdot.zip"
    with zipfile.ZipFile(dotdot, "w") as zf:
        zf.writestr("x-1.0/../../outside", "x")
    with pytest.raises(unpack.Refused, match="outside"):
        unpack.unpack(str(dotdot), str(tmp_path / "u3"), max_bytes=1 << 20)
    assert not (tmp_path / "outside").exists()

    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(unpack.Refused):
        unpack.unpack(str(garbage), str(tmp_path / "u4"), max_bytes=1 << 20)

    many = tmp_path / "many.tar.gz"
    _tar(many, [_file("m-1.0/f%d" % i) for i in range(50)])
    with pytest.raises(unpack.Refused, match="more than 10 members"):
        unpack.unpack(str(many), str(tmp_path / "u5"), max_bytes=1 << 20, max_members=10)

    good = tmp_path / "good.tar.gz"
    _tar(good, [_file("good-1.0/setup.py", b"print(1)"), _file("good-1.0/tests/test_a.py", b"")])
    assert unpack.unpack(str(good), str(tmp_path / "u6"), max_bytes=1 << 20) == str(tmp_path / "u6" / "good-1.0")


# -- the index proxy ----------------------------------------------------------------------------

def _threads():
    return threading.active_count()


def test_proxy_caps_connections_and_closes_idle_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(proxy, "IDLE_SECONDS", 1)
    server = proxy.IndexProxy(str(tmp_path / "p.sock"), {("127.0.0.1", 9)})
    before = _threads()
    clients = []
    try:
        for _ in range(proxy.MAX_CONNECTIONS + 40):
            c = socket.socket(socket.AF_UNIX)
            c.connect(server.path)
            clients.append(c)
        time.sleep(0.5)
        assert _threads() - before <= proxy.MAX_CONNECTIONS
        assert server.refused_over_cap >= 30
        time.sleep(1.5)  # idle connections are closed, their threads end
        assert _threads() - before <= 2
        # a denied destination gets 403, and the proxy serves again once the flood is gone
        c = socket.socket(socket.AF_UNIX)
        c.connect(server.path)
        c.sendall(b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 403")
        c.close()
        assert server.denied == ["10.0.0.1:443"]
    finally:
        for c in clients:
            c.close()
        server.close()


# -- cgroups ------------------------------------------------------------------------------------

def _fake_v2(root, own, enabled):
    """A cgroup v2 tree as the kernel shows it: the controllers files, and what a mkdir makes."""
    (root / own.lstrip("/")).mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    for folder in (root, root / own.lstrip("/")):
        (folder / "cgroup.subtree_control").write_text(enabled + "\n")


def test_cgroup_v2_makes_a_child_where_the_controllers_are_on_and_reads_each_limit_back(tmp_path):
    root = tmp_path / "cg"
    _fake_v2(root, "/worker.service", "cpu memory pids")
    made = []
    original_mkdir = os.mkdir

    def kernel_mkdir(path, *args):
        original_mkdir(path, *args)
        made.append(path)
        parent = os.path.dirname(path)
        if {"memory", "pids"} <= set(open(os.path.join(parent, "cgroup.subtree_control")).read().split()):
            for name in ("memory.max", "memory.swap.max", "pids.max", "cgroup.procs"):
                open(os.path.join(path, name), "w").close()

    os.mkdir = kernel_mkdir
    try:
        group = limits.Cgroup.create(limits.Limits(memory=256 << 20, processes=64), root=str(root),
                                     own_cgroups={"": "/worker.service"})
    finally:
        os.mkdir = original_mkdir
    assert group.version == 2
    folder = group.dirs["memory"]
    assert os.path.dirname(folder) == str(root / "worker.service")
    assert open(os.path.join(folder, "memory.max")).read() == str(256 << 20)
    assert open(os.path.join(folder, "pids.max")).read() == "64"


def test_cgroup_v2_asks_for_the_controllers_and_refuses_when_they_stay_off(tmp_path):
    root = tmp_path / "cg"
    _fake_v2(root, "/worker.service", "")
    # A kernel that keeps them off (our group holds processes, the root is not ours to change).
    with pytest.raises(limits.CgroupUnavailable, match="cannot enable the memory and pids controllers"):
        limits.Cgroup.create(limits.Limits(), root=str(root), own_cgroups={"": "/worker.service"})
    for folder in (root / "worker.service", root):
        assert (folder / "cgroup.subtree_control").read_text() == "+memory +pids", "it asked"
    assert [p.name for p in (root / "worker.service").iterdir() if p.is_dir()] == [], "no cgroup left behind"


def test_cgroup_v2_child_without_a_limit_file_is_refused(tmp_path):
    root = tmp_path / "cg"
    _fake_v2(root, "/", "memory pids")
    # The controllers look enabled but the new group has no memory.max: never pretend to limit.
    with pytest.raises(limits.CgroupUnavailable, match="memory.max"):
        limits.Cgroup.create(limits.Limits(), root=str(root), own_cgroups={"": "/"})
    assert [p for p in root.iterdir() if p.is_dir()] == [], "no cgroup left behind"


def test_cgroup_v1_here_applies_both_limits():
    if not os.path.isfile("/sys/fs/cgroup/memory/cgroup.procs"):
        pytest.skip("this host has no cgroup v1 memory hierarchy")
    group = limits.Cgroup.create(limits.Limits(memory=300 << 20, processes=77))
    try:
        assert group.version == 1
        assert group._read("memory", "memory.limit_in_bytes").strip() == str(300 << 20)
        assert group._read("pids", "pids.max").strip() == "77"
    finally:
        group.remove()
    applied, missing = limits.enforcement(limits.Limits())
    assert missing == {} and applied["memory"] == applied["processes"] == "cgroup v1"


def test_cgroup_v1_groups_of_runners_that_are_gone_are_removed():
    if not os.path.isfile("/sys/fs/cgroup/memory/cgroup.procs"):
        pytest.skip("this host has no cgroup v1 memory hierarchy")
    gone = subprocess.Popen(["true"])
    gone.wait()
    first = limits.Cgroup.create(limits.Limits())
    first.remove()
    parent = os.path.dirname(first.dirs["pids"])  # where runners' groups are
    left = os.path.join(parent, "pypi-farm-%d-1" % gone.pid)  # a runner killed before it removed its group
    alive = os.path.join(parent, "pypi-farm-%d-1" % os.getpid())  # this runner's: never touched
    for d in (left, alive):
        os.mkdir(d)
    try:
        group = limits.Cgroup.create(limits.Limits())
        group.remove()
        assert not os.path.exists(left) and os.path.isdir(alive)
    finally:
        for d in (left, alive):
            if os.path.isdir(d):
                os.rmdir(d)


# -- the bundle ---------------------------------------------------------------------------------

def test_bundle_is_reproducible_and_runs_as_one_file(tmp_path):
    first = bundle.build(str(tmp_path / "runner.pyz"))
    assert bundle.build(str(tmp_path / "again.pyz")) == first == hashlib.sha256(bundle.build_bytes()).hexdigest()
    names = zipfile.ZipFile(tmp_path / "runner.pyz").namelist()
    assert names[0] == "__main__.py" and "farm_runner/_vendor/packaging/version.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    proc = subprocess.run([sys.executable, "-I", str(tmp_path / "runner.pyz"), "--list-pythons"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)
    # The checkout reports the same hash the master's bundle has.
    assert bundle.identity()["sha256"] == first and bundle.identity()["source"] == "checkout"


def test_bundled_libraries_are_the_pinned_ones():
    lock = (ROOT / "requirements" / "lock.txt").read_text()
    from farm_runner._vendor import packaging as vendored_packaging
    pinned = re.search(r"^packaging==(\S+)", lock, re.M).group(1)
    assert vendored_packaging.__version__ == pinned, "copy packaging %s into worker/farm_runner/_vendor" % pinned
    assert (ROOT / "worker" / "farm_runner" / "_vendor" / ("packaging-%s.licenses" % pinned) / "LICENSE").exists()
    from farm_runner._vendor import tomli
    assert tomli.loads('a = "b"') == {"a": "b"}


def test_the_layout_shows_the_boundary():
    """inside/ never imports the supervisor; the host reads the box only through untrusted.py."""
    package = ROOT / "worker" / "farm_runner"
    for path in (package / "inside").rglob("*.py"):
        assert "farm_runner.host" not in path.read_text(), path
    for path in (package / "host").glob("*.py"):
        text = path.read_text()
        assert "shutil.copy" not in text and "extractall" not in text, path
