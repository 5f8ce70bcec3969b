"""What the installed distributions tell (import names, the dependency closure) and what an
uninstall left behind, computed from the listings inside/environment.py makes in the sandbox.
Those listings are untrusted data: `checked_dists` keeps only well-formed entries.

The audit: the environment is listed right after `uv venv`, before anything is installed. After
uninstalling the package under test (only it: dependencies and test tools stay), a file is left
behind when it is in neither that first listing nor the RECORD of a distribution still
installed. `__pycache__/*.pyc` files are forgiven only when their `.py` source is in such a
RECORD, the first listing, or the removed package's own RECORD (the installer removes those). The
package's import names must no longer be importable.
"""

import posixpath
import re

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


def leftovers(after, before, claimed, removed_record):
    """Paths in `after` explained neither by `before` nor by a RECORD (see the module docstring)."""
    before, claimed, removed = set(before), set(claimed), set(removed_record)
    left = []
    for p in after:
        if p in before or p in claimed or p in INSTALLER_FILES:
            continue
        if p.endswith("/"):
            if p.rstrip("/").rsplit("/", 1)[-1] == "__pycache__" or any(c.startswith(p) for c in claimed):
                continue
        m = re.match(r"^(.*/)?__pycache__/([^/]+?)\.[^/.]+(\.opt-\d)?\.pyc$", p)
        if m:
            src = (m.group(1) or "") + m.group(2) + ".py"
            if src in before or src in claimed or src in removed:
                continue
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

