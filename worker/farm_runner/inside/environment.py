"""The environment as the uninstall audit sees it: its files, and the distributions installed in it
(read with importlib.metadata). Runs inside the sandbox, after the package's code has had its
chance to plant links, FIFOs and huge files there: nothing is followed, only regular files of a
bounded size are read, and the walk stops at MAX_ENTRIES."""
import csv
import os
import re
import stat
import sys

from farm_runner.inside import import_check

MAX_ENTRIES = 200000
MAX_METADATA = 4 << 20  # bytes of METADATA or RECORD
MAX_RECORD_LINES = 100000


def list_files(prefix, max_entries=MAX_ENTRIES):
    """(paths, complete): files, links and other non-folders under `prefix` ('/'-separated,
    relative), and empty folders with a trailing '/'. Links are listed, never followed."""
    out, stack = [], [""]
    while stack:
        rel = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(prefix, rel) if rel else prefix), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries or ([None] if rel else []):
            if len(out) >= max_entries:
                return sorted(out), False
            if entry is None:  # an empty folder
                out.append(rel + "/")
                continue
            path = rel + "/" + entry.name if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
            else:
                out.append(path)
    return sorted(out), True


def _regular(path, limit):
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size <= limit


def distributions(site, metadata=True):
    """[{name, version, dist_info, record, requires, extras, problem}] of `site`'s *.dist-info.
    With `metadata`, METADATA is read with importlib.metadata (names, requirements, extras); the
    audit needs only which files each distribution owns (RECORD), and takes the name and version
    from the folder's name (`{name}-{version}.dist-info`, as the spec writes it), which spares it
    importlib.metadata's import (about 60 ms a build here)."""
    if metadata:
        from importlib.metadata import PathDistribution
        import pathlib

    out = []
    try:
        names = sorted(os.listdir(site))
    except OSError:
        return out
    for entry in names:
        if not entry.endswith((".dist-info", ".egg-info")):
            continue
        egg = entry.endswith(".egg-info")
        folder = os.path.join(site, entry)
        item = {"dist_info": entry, "name": None, "version": None, "record": [], "requires": [], "extras": [],
                "problem": None}
        out.append(item)
        if egg and not os.path.islink(folder) and _regular(folder, MAX_METADATA):
            # distutils' single file (PKG-INFO itself): no list of the files it installed
            metadata_file, files = folder, None
        elif os.path.islink(folder) or not os.path.isdir(folder):
            item["problem"] = "not a folder"
            continue
        else:
            metadata_file = os.path.join(folder, "PKG-INFO" if egg else "METADATA")
            files = os.path.join(folder, "installed-files.txt" if egg else "RECORD")
        if not _regular(metadata_file, MAX_METADATA):
            item["problem"] = "%s is not a regular file of at most %d bytes" % (os.path.basename(metadata_file),
                                                                                  MAX_METADATA)
            continue
        if not metadata:
            # {name}-{version}.dist-info, or setuptools' {name}-{version}[-py{X.Y}[-{platform}]].egg-info
            stem = entry[:-len(".dist-info")]
            item["name"], _, item["version"] = stem.partition("-")
            item["version"] = item["version"].split("-py", 1)[0] if egg else item["version"]
        else:
            dist = PathDistribution(pathlib.Path(folder))
            if files is None:  # a single PKG-INFO file: importlib.metadata reads folders only
                dist.read_text = lambda name, _f=folder: _read(_f) if name == "PKG-INFO" else None
            try:
                meta = dist.metadata
                item["name"], item["version"] = meta["Name"], meta["Version"]
                item["requires"] = list(dist.requires or [])
                item["extras"] = list(meta.get_all("Provides-Extra") or [])
            except Exception as exc:  # a stranger's metadata: any failure is a fact to report
                item["problem"] = "unreadable METADATA: %s" % exc
                continue
        if files is None:
            continue
        if _regular(files, MAX_METADATA):
            try:
                text = _read(files)
                item["record"] = egg_paths(entry, text) if egg else record_paths(text)
            except (csv.Error, ValueError, UnicodeDecodeError, OSError) as exc:
                item["problem"] = "malformed %s: %s" % (os.path.basename(files), exc)
        elif os.path.lexists(files):
            item["problem"] = "%s is not a regular file of at most %d bytes" % (os.path.basename(files), MAX_METADATA)
    return out


def egg_paths(entry, text):
    """The paths of an .egg-info's installed-files.txt (pip's legacy `setup.py install`, Python
    2.7's way for an sdist), made relative to site-packages as a RECORD's are."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if len(lines) > MAX_RECORD_LINES:
        raise ValueError("more than %d lines" % MAX_RECORD_LINES)
    return [os.path.normpath(os.path.join(entry, l)).replace(os.sep, "/") for l in lines]


def _read(path):
    """A regular file's text, opened without following a link or blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError("not a regular file")
        return fh.read(MAX_METADATA + 1).decode("utf-8")


def record_paths(text):
    """The paths of a RECORD, read as strictly as installers read it (uv refuses a malformed one):
    a row that is not three CSV fields makes the whole RECORD untrustworthy."""
    rows = [row for row in csv.reader(text.splitlines(), strict=True) if row]
    if len(rows) > MAX_RECORD_LINES:
        raise ValueError("more than %d lines" % MAX_RECORD_LINES)
    for number, row in enumerate(rows, 1):
        if len(row) != 3:
            raise ValueError("line %d has %d fields, not 3" % (number, len(row)))
    return [row[0] for row in rows]


def import_names(record):
    names = set()
    for p in record:
        parts = p.replace("\\", "/").split("/")
        top = parts[0]
        if top in ("..", "") or top.endswith((".dist-info", ".egg-info", ".data", ".pth")) or top == "__pycache__":
            continue
        if len(parts) == 1:
            if top.endswith(".py") or re.search(r"\.(so|pyd)$", top):
                names.add(top.split(".")[0])
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", top):
            names.add(top)
    return sorted(names)


def installed(site, package):
    """The dist-info folder of `package` in `site`, found by importlib.metadata's own name matching
    (PEP 503), or None."""
    from importlib.metadata import distributions

    for dist in distributions(name=package, path=[site]):
        folder = getattr(dist, "_path", None)
        if folder is not None:
            return os.path.basename(str(folder))
    return None


def set_apart_test_writes(site, own_before, python, names):
    """What the tests wrote in the release's own folders: the files there now that the listing
    made before any test ran (`own_before`, a JSON file: site-relative paths) does not hold, less
    bytecode. They are removed, and the package imported afresh: what its import makes again is
    the package's (a cache it writes beside itself, which the uninstall then leaves), the rest
    the tests' (kubernetes's `tmp_file_path_test/`). Returns the tests' (site-relative)."""
    import json
    import subprocess

    with open(own_before, encoding="utf-8") as fh:
        before = set(p for p in json.load(fh) if isinstance(p, str))
    tops = sorted({p.split("/", 1)[0] for p in before})

    def listing():
        out = []
        for top in tops:
            files, complete = list_files(os.path.join(site, top), MAX_ENTRIES - len(out))
            if not complete:
                return None
            out += [top + "/" + f for f in files]
        return [p for p in out if "/__pycache__/" not in "/" + p and not p.rstrip("/").endswith("__pycache__")]

    now = listing()
    new = [p for p in now or [] if p not in before]
    if not new:
        return []
    for p in new:  # files, links and empty folders; then the folders left empty
        path = os.path.join(site, p.rstrip("/"))
        try:
            os.rmdir(path) if p.endswith("/") else os.unlink(path)
        except OSError:
            pass
    kept = {b.rsplit("/", i)[0] for b in before for i in range(1, b.rstrip("/").count("/") + 1)}
    for folder in sorted({p.rstrip("/").rsplit("/", i)[0] for p in new for i in range(1, p.rstrip("/").count("/") + 1)}
                         - kept, key=len, reverse=True):
        try:
            os.rmdir(os.path.join(site, folder))
        except OSError:
            pass  # not empty: a folder of the package's own that held bytecode
    if names:
        code = "".join("import %s\n" % n for n in names if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", n))
        try:
            subprocess.call(python + ["-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=IMPORT_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    again = set(listing() or new)
    return [p for p in new if p not in again]


IMPORT_SECONDS = 120


def audit(env, site, tools_pth, python, names, uninstall, write_answer, own_before=None):
    """The uninstall (`uninstall`: uv's command, which runs none of the package's code, or pip's
    for 2.7), then the
    environment without the test tools, listed and answered; last, this process becomes the
    package's interpreter checking which of its import `names` that no other distribution provides
    can still be found. That check may run code a leftover .pth file names: it comes after the
    answer, and its own output (a JSON list on the last line) is the command's."""
    import subprocess

    written = set_apart_test_writes(site, own_before, python, names) if own_before else []
    sys.stdout.flush()
    returncode = subprocess.call(uninstall)
    if returncode != 0:
        return write_answer({"uninstall_returncode": returncode, "written_by_tests": written})
    pth = os.path.join(site, tools_pth)
    if os.path.lexists(pth) and not os.path.isdir(pth):
        os.unlink(pth)
    files, complete = list_files(env)
    dists = distributions(site, metadata=False)
    provided = set(n for d in dists for n in import_names(d["record"]))
    checked = [n for n in names if n not in provided]
    write_answer({"uninstall_returncode": 0, "files": files, "complete": complete, "dists": dists,
                  "checked": checked, "written_by_tests": written})
    if not checked:
        return 0
    command = python + ["-c", import_check.CODE] + checked
    print("$ %s -c '<import check>' %s" % (" ".join(python), " ".join(checked)))
    sys.stdout.flush()
    os.execv(command[0], command)
