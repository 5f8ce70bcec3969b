"""What the installed distributions tell (import names, the dependency closure) and what an
uninstall left behind, computed from the listings inside/environment.py makes in the sandbox.
Those listings are untrusted data: `checked_dists` keeps only well-formed entries.

The audit: the environment is listed right after `uv venv`, before anything is installed. After
uninstalling the package under test (only it: dependencies and test tools stay), a file is left
behind when it is in neither that first listing nor the RECORD of a distribution still
installed, and is not one of the things `leftovers` forgives (bytecode caches, files inside
other distributions' folders, empty folders). The package's import names must no longer be
importable.
"""

import posixpath

from farm_runner._vendor.packaging.requirements import InvalidRequirement, Requirement
from farm_runner._vendor.packaging.utils import canonicalize_name

INSTALLER_FILES = (".lock",)  # uv's lock file at the environment's root


def checked_dists(listing):
    """{canonical name: dist} from a `distributions()` listing, dropping malformed entries."""
    out = {}
    if not isinstance(listing, list):
        return out
    for d in listing:
        if not (isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("dist_info"), str)):
            continue
        clean = {"name": d["name"], "version": d.get("version") if isinstance(d.get("version"), str) else None,
                 "dist_info": d["dist_info"]}
        for key in ("record", "requires", "extras"):
            value = d.get(key)
            clean[key] = [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
        out[canonicalize_name(d["name"])] = clean
    return out


def requirement_closure(dists, root, environment=None):
    """The installed distributions `root` needs, directly or not, without root itself.
    Requirements for an extra are left out; other markers are evaluated for `environment`."""
    seen, todo = set(), [root]
    while todo:
        d = dists.get(todo.pop())
        if d is None:
            continue
        for text in d["requires"]:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None:
                if "extra" in str(req.marker):
                    continue
                try:
                    if environment and not req.marker.evaluate(environment):
                        continue
                except Exception:
                    pass
            name = canonicalize_name(req.name)
            if name in dists and name not in seen and name != root:
                seen.add(name)
                todo.append(name)
    return sorted(seen)


def site_relative(env_dir, site, record_path):
    """A RECORD path (relative to site-packages) as a path relative to the environment."""
    rel_site = posixpath.relpath(site.replace("\\", "/"), env_dir.replace("\\", "/"))
    return posixpath.normpath(posixpath.join(rel_site, record_path.replace("\\", "/")))


def leftovers(after, before, claimed, removed_record, site_prefix=""):
    """Paths in `after` explained neither by `before` nor by a RECORD (see the module docstring).
    Not the release's: bytecode caches (`__pycache__`, pytest's rewritten `*-pytest-*.pyc` among
    them), files inside the folders of other distributions still installed (and their empty
    `*.libs/`), and empty folders that held the release's own files (uv leaves some that pip
    removes, such as `*.libs/`)."""
    before, claimed, removed = set(before), set(claimed), set(removed_record)
    removed_dirs = {p.rsplit("/", i)[0] + "/" for p in removed for i in range(1, p.count("/") + 1)}
    removed_tops = {p[len(site_prefix):].split("/", 1)[0] for p in removed if p.startswith(site_prefix)}
    other_tops = {p[len(site_prefix):].split("/", 1)[0] for p in claimed
                  if p.startswith(site_prefix) and "/" in p[len(site_prefix):]} - removed_tops
    # The names of the other distributions still installed (their dist-info folders are claimed),
    # for their empty `.libs/` only: a name alone never forgives files (a RECORD a test broke
    # leaves its distribution's files unclaimed, and they are left behind).
    other_names = {p[len(site_prefix):].split("-", 1)[0] for p in claimed
                   if p.startswith(site_prefix) and p.rstrip("/").endswith(".dist-info")} - removed_tops
    left = []
    for p in after:
        if p in before or p in claimed or p in INSTALLER_FILES:
            continue
        if "/__pycache__/" in "/" + p and (p.endswith((".pyc", "/")) or p.rstrip("/").endswith("__pycache__")):
            continue
        if p.endswith((".pyc", ".pyo")) and p[:-1] in before:
            continue  # Python 2's bytecode beside a file the environment had before (virtualenv's _virtualenv.py)
        if p.endswith("/") and (p in removed_dirs or any(c.startswith(p) for c in claimed)):
            continue
        if site_prefix and p.startswith(site_prefix) and p[len(site_prefix):].split("/", 1)[0] in other_tops \
                and "/" in p[len(site_prefix):]:
            continue
        # The `<top>.libs/` folder of another distribution still installed, left empty by uv
        # (cffi's wheel has one with nothing in it).
        if site_prefix and p.startswith(site_prefix) and p.endswith(".libs/") and "/" not in p[len(site_prefix):-1] \
                and (p[len(site_prefix):-len(".libs/")] in other_tops | other_names or p[len(site_prefix):-1] in other_tops):
            continue  # (freetype-py's freetype_py.libs/, a test dependency fontTools's tests installed)
        left.append(p)
    return left


def marker_environment(info):
    """PEP 508 marker values for the probed interpreter (for the dependency closure)."""
    version = info["version_info"]
    return {"python_version": "%d.%d" % tuple(version[:2]), "python_full_version": info["full_version"],
            "implementation_name": info["implementation"], "sys_platform": {
                "Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(info.get("system"), ""),
            "platform_system": info.get("system", ""), "os_name": "nt" if info.get("system") == "Windows" else "posix",
            "platform_python_implementation": {"cpython": "CPython", "pypy": "PyPy"}.get(info["implementation"], ""),
            "platform_machine": info["platform"].rsplit("-", 1)[-1], "extra": ""}

