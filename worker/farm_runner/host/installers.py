"""What makes and fills a build's environment: uv for Python 3.6+, and for 2.7, which uv cannot
serve, a pinned virtualenv with the pip it embeds for 2.7. Both give the supervisor the same four
commands; only the uv or pip words differ.

    make_env      trusted, before any of the package's code: a fresh environment
    install       in the sandbox: pip/uv install ARGS into the environment, from the index only
    tools         trusted: the test tools into a shared --target folder for this interpreter, from
                  wheels only: nothing of theirs runs on the host (an sdist's build would)
    uninstall     in the sandbox: remove the release (the audit lists the environment after it)

Every command ignores the worker's configuration (uv --no-config, pip --isolated) and names the
index itself.
"""

import os
import shutil
import tempfile
import urllib.parse

from farm_runner import versions
from farm_runner.host import index

# The last virtualenv that makes 2.7 environments (20.22 dropped them), and what it needs, pinned:
# it embeds pip 20.3.4, setuptools 44.1.1 and wheel 0.37.1 for 2.7 and seeds them with no download.
VIRTUALENV = ("virtualenv==20.21.1", "distlib==0.4.4", "filelock==3.16.1", "platformdirs==3.11.0")
LEGACY_PIP_WHEEL = "pip-20.3.4-py2.py3-none-any.whl"  # the last pip for 2.7, as virtualenv embeds it


# The test runs name the test tools' folder in this variable (see Pip.tools_pth).
TOOLS_VARIABLE = "FARM_TEST_TOOLS"

# The worker's Python runs virtualenv from its own folder, isolated from the worker's environment.
_RUN_VIRTUALENV = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
                   "from virtualenv.__main__ import run_with_catch; run_with_catch()")


class Uv:
    name = description = "uv"

    def __init__(self, uv, index_url, box_index=None):
        """`box_index`: the index the sandbox's installs use (the worker's cache of `index_url`)."""
        self.uv, self.index_url, self.box_index = uv, index_url, box_index

    def make_env(self, python, env_dir, cache_dir, trusted):
        # The real interpreter, not a link to it: the sandbox binds the interpreter's prefix only.
        return trusted([self.uv, "venv", "--no-config", "-q", "--python", python, "--cache-dir", cache_dir, env_dir])

    def install(self, env_python, box_cache, args):
        # Hard links from the build's own cache (in its box, gone with it): one copy of each file
        # on disk, not two (torch with its CUDA libraries is some 5 GB installed).
        return [self.uv, "pip", "install", "--no-config", "--python", env_python, "--cache-dir", box_cache,
                "--link-mode", "hardlink", "--index-url", self.box_index or self.index_url] + list(args)

    # Tools built in the sandbox from pinned sdists: none (with --no-build, uv takes an older
    # release that has a wheel over a newer one that has not).
    sandbox_built = {}

    def tools(self, python, cache_dir, target, requirement, trusted, as_of=None, wheels=None):
        dated = ["--exclude-newer", as_of] if as_of else []
        return trusted([self.uv, "pip", "install", "--no-config", "--no-build", "--python", python, "--cache-dir",
                        cache_dir, "--target", target, "--index-url", self.index_url] + dated + [requirement])

    def tools_pth(self, tools):
        """The .pth line that puts the test tools on the environment's path (after site-packages)."""
        return tools + "\n"

    def uninstall(self, env_python, box_cache, package):
        # uv's uninstall runs none of the package's code.
        return [self.uv, "pip", "uninstall", "--no-config", "--python", env_python, "--cache-dir", box_cache, package]


# What pytest has needed on Python 2.7, at one time or another.
PYTEST_DEPENDENCIES = ("py", "pluggy", "six", "attrs", "more-itertools", "atomicwrites", "funcsigs", "pathlib2",
                       "scandir", "wcwidth", "packaging", "pyparsing", "colorama", "importlib-metadata", "zipp",
                       "contextlib2", "configparser")


# The test tools of 2.7 with no wheel for Linux, built into one in the sandbox from these sdists,
# pinned by sha256 so that no new upload changes them (name: (version, filename, sha256)). scandir
# never had one, and pathlib2 (pytest's, on 2.7) requires and imports it: it cannot be left out, and
# a wheel of the farm's own making would redo its setup.py. The build's fresh environment runs that
# setup.py, offline, before any of the package's code. (atomicwrites needs no entry: only its 1.4.1
# lacks a wheel, and pip takes 1.4.0's.)
SANDBOX_BUILT = {"scandir": ("1.10.0", "scandir-1.10.0.tar.gz",
                             "4d4631f6062e658e9007ab3149a9b914f3548cb38bfb021c64f39a025ce578ae")}


def dated_caps(index_url, names, as_of, python_version, wheels_only=False):
    """["name<=version"]: each project's newest release uploaded before `as_of` (RFC 3339) that
    admits `python_version` (and has a wheel, with `wheels_only`), from the index's upload times;
    a project the index cannot tell of is left out."""
    caps = []
    for name in names:
        try:
            files = index.fetch_project_files(index_url, name)
        except Exception:  # an index that cannot say: that project goes uncapped
            continue
        fit = [f["version"] for f in files if f["version"] and not f["yanked"] and f.get("upload_time")
               and (not wheels_only or index.file_kind(f["filename"]) == "wheel")
               and f["upload_time"] < as_of and (not f["requires_python"]
                                                  or index.requires_python_allows(f["requires_python"], python_version))]
        if fit:
            caps.append("%s<=%s" % (name, max(fit, key=versions.key)))
    return caps


class Pip:
    """Python 2.7: virtualenv makes the environment, its pip installs and uninstalls. pip runs in
    the environment's interpreter, so the package's own .pth hooks run in the sandbox at its
    uninstall too; the audit's listing is still the runner's, made after pip has exited."""
    name = "pip"
    description = "pip 20.3.4 in an environment made by %s" % VIRTUALENV[0].replace("==", " ")
    PIP = ["-m", "pip"]
    QUIET = ["--isolated", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]

    def __init__(self, uv, index_url, worker_python, tools_root, box_index=None):
        self.uv, self.index_url, self.worker_python = uv, index_url, worker_python
        self.tools_root, self.box_index = tools_root, box_index

    def virtualenv(self, cache_dir, trusted):
        """The pinned virtualenv, installed once for the worker's own Python (by uv, from the index)."""
        final = os.path.join(self.tools_root, "virtualenv-" + "-".join(v.split("==")[1] for v in VIRTUALENV[:1]))
        if os.path.isfile(os.path.join(final, ".complete")):
            return final
        os.makedirs(self.tools_root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".new-", dir=self.tools_root)
        rc, out = trusted([self.uv, "pip", "install", "--no-config", "--no-build", "--python", self.worker_python,
                           "--cache-dir", cache_dir, "--target", tmp, "--index-url", self.index_url] + list(VIRTUALENV))
        if rc != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        open(os.path.join(tmp, ".complete"), "w").close()
        try:
            os.rename(tmp, final)
        except OSError:  # another build made it first
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def make_env(self, python, env_dir, cache_dir, trusted):
        tool = self.virtualenv(cache_dir, trusted)
        if tool is None:
            return 1, "the pinned virtualenv (%s) could not be installed from %s" % (VIRTUALENV[0], self.index_url)
        return trusted([self.worker_python, "-I", "-c", _RUN_VIRTUALENV, tool, "--no-download", "--no-periodic-update",
                        "--activators", "", "--app-data", os.path.join(cache_dir, "virtualenv"), "--python", python,
                        env_dir])

    def install(self, env_python, box_cache, args):
        # (pip 20.3 speaks to a plain-HTTP index only when told to trust its host)
        index = ["--index-url", self.box_index, "--trusted-host", urllib.parse.urlsplit(self.box_index).hostname] \
            if self.box_index else ["--index-url", self.index_url]
        return [env_python] + self.PIP + ["install"] + self.QUIET + ["--cache-dir", box_cache] + index + list(args)

    sandbox_built = SANDBOX_BUILT

    def tools(self, python, cache_dir, target, requirement, trusted, as_of=None, wheels=None):
        """`wheels`: the folder of the SANDBOX_BUILT wheels, which are pinned to their version."""
        tool = self.virtualenv(cache_dir, trusted)
        if tool is None:
            return 1, "the pinned virtualenv (%s) could not be installed from %s" % (VIRTUALENV[0], self.index_url)
        # pip 20.3 cannot resolve as of a date: an older pytest's dependencies are capped at their
        # newest release of that month with a wheel, read from the index's upload times (pytest
        # 2.4 refuses today's `py`: "1.11.0 is too old").
        pins = ["%s==%s" % (name, pin[0]) for name, pin in sorted(SANDBOX_BUILT.items())]
        if as_of:
            pins += dated_caps(self.index_url, [n for n in PYTEST_DEPENDENCIES if n not in SANDBOX_BUILT], as_of,
                               "2.7", wheels_only=True)
        path = os.path.join(target, "farm-constraints.txt")  # (the folder is the runner's own)
        with open(path, "w") as fh:
            fh.write("".join(c + "\n" for c in pins))
        # pip runs from its wheel, as its documentation allows, with the interpreter being served.
        pip = os.path.join(tool, "virtualenv", "seed", "wheels", "embed", LEGACY_PIP_WHEEL, "pip")
        return trusted([python, "-E", "-s", pip, "install"] + self.QUIET + [
            "--only-binary", ":all:", "--cache-dir", os.path.join(cache_dir, "pip"), "--target", target,
            "--index-url", self.index_url, "-c", path] + (["--find-links", wheels] if wheels else []) + [requirement])

    def build_wheel(self, env_python, sdist, wheel_dir):
        """In the sandbox: a wheel of `sdist` (a SANDBOX_BUILT file) by the environment's own pip,
        setuptools and wheel (virtualenv's, embedded), offline."""
        return [env_python] + self.PIP + ["wheel"] + self.QUIET + [
            "--no-deps", "--no-index", "--no-build-isolation", "--no-cache-dir", "--wheel-dir", wheel_dir, sdist]

    def tools_pth(self, tools):
        """pip counts whatever is on the path as installed: with the tools always there, it took
        their six for the release's own and installed nothing. So they join the path only in the
        test runs, which name their folder in TOOLS_VARIABLE."""
        return "import os, sys; t = os.environ.get(%r); t and t not in sys.path and sys.path.append(t)\n" % (
            TOOLS_VARIABLE)

    def uninstall(self, env_python, box_cache, package):
        return [env_python] + self.PIP + ["uninstall", "--yes"] + self.QUIET[:-2] + [package]


def isolated_flags(version_tuple):
    """The interpreter's flags that ignore the caller's environment and user site: -I from 3.4."""
    return ["-I"] if tuple(version_tuple[:2]) >= (3, 4) else ["-E", "-s"]
