"""A module plainly missing from a test run: named in a "No module named 'x'" error, no part of the
package, not in the standard library. The farm installs the distribution that provides it, once,
and says so in the report (inferred, never declared). The text it reads is the package's output:
at worst a package makes the farm install something from the index into its own sandbox."""

import posixpath
import re
import sys

from farm_runner.inside.discover import TEST_DIRS

# Import names whose distribution is named otherwise (the common ones; any other name is tried as is).
IMPORT_TO_DIST = {
    "yaml": "PyYAML", "PIL": "pillow", "cv2": "opencv-python-headless", "sklearn": "scikit-learn",
    "skimage": "scikit-image", "bs4": "beautifulsoup4", "dateutil": "python-dateutil", "attr": "attrs",
    "google": "protobuf", "OpenSSL": "pyOpenSSL", "Crypto": "pycryptodome", "jwt": "PyJWT", "magic": "python-magic",
    "serial": "pyserial", "usb": "pyusb", "zmq": "pyzmq", "git": "GitPython", "dotenv": "python-dotenv",
    "docx": "python-docx", "pptx": "python-pptx", "multipart": "python-multipart", "jose": "python-jose",
    "slugify": "python-slugify", "socks": "PySocks", "nacl": "PyNaCl", "gi": "PyGObject", "wx": "wxPython",
    "Levenshtein": "python-Levenshtein", "fitz": "PyMuPDF", "win32api": "pywin32", "kafka": "kafka-python",
    "ldap": "python-ldap", "mpl_toolkits": "matplotlib", "pkg_resources": "setuptools", "_pytest": "pytest",
    "typing_extensions": "typing-extensions", "importlib_metadata": "importlib-metadata",
    "importlib_resources": "importlib-resources", "opentelemetry": "opentelemetry-api",
}
MAX_INFERRED = 5
# Names a test module gives the helper module beside it (`import utils` from tests/test_x.py, found
# on the path pytest gives the test's folder): never a distribution to infer (the index's `utils`
# is a stranger's project, not the helper the sdist left out; ihm's tests import test/utils.py).
TEST_HELPER_NAMES = frozenset((
    "utils", "util", "helpers", "helper", "common", "testutils", "test_utils", "testing_utils", "testlib",
    "test_helpers", "support", "fixtures", "base", "conftest", "mocks", "settings", "config", "constants",
    "tools", "shared", "lib", "data", "compat", "context", "runtests"))
_MISSING = re.compile(r"No module named '?([A-Za-z_][A-Za-z0-9_]*)")
# The runner's own standard library: names never inferred as a distribution to install.
STANDARD = frozenset(getattr(sys, "stdlib_module_names", ()))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_DIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a project's name: never an installer's option


def private(name):
    """A private module's name (`_common`): the tree's helper, never a project on the index is
    imported as (and, made a name, an installer's option: "-common" is uv's `-c ommon`)."""
    return name.startswith("_") and name not in IMPORT_TO_DIST


def missing_modules(texts, own_names, known):
    """[(module, distribution)] named as missing in `texts`, excluding the package's own import
    names, `known` ones (already tried or installed) and the standard library."""
    return distributions_for([m for text in texts for m in _MISSING.findall(text or "")], own_names, known)


# pytest's own words for an async test no plugin runs (pytest >= 8.4): the project's CI has one.
ASYNC_UNSUPPORTED = "async def functions are not natively supported"


def async_plugin_missing(messages, known):
    """[("pytest_asyncio", "pytest-asyncio")] when a failure is an async test that no plugin ran
    (google-cloud-batch's tests use the asyncio marker and declare no plugin), else []. Read to
    install a plugin into the package's own sandbox, never to excuse a failure."""
    if "pytest_asyncio" in known or not any(ASYNC_UNSUPPORTED in (m or "") for m in messages):
        return []
    return [("pytest_asyncio", "pytest-asyncio")]


def distributions_for(modules, own_names, known):
    """[(module, distribution)] for top-level module names said to be missing (by a failed run, or
    by the stage step's reading of the test files: untrusted either way), at most MAX_INFERRED."""
    out = []
    for module in modules if isinstance(modules, list) else []:
        if not isinstance(module, str) or not _NAME.match(module) or module in own_names or module in known \
                or module in STANDARD or module.startswith("_farm") or module in TEST_HELPER_NAMES:
            continue
        if private(module):
            continue
        dist = IMPORT_TO_DIST.get(module, module.replace("_", "-"))
        if module not in [m for m, _ in out] and _DIST.match(dist):
            out.append((module, dist))
    return out[:MAX_INFERRED]


# A file the test opened by a path in the project's tree: "[Errno 2] No such file or directory: 'x'",
# or, unquoted, an absolute one ("FileNotFoundError: File specified not Found: /…/tests/data/x.tif",
# GDAL's "/…/x.tif: No such file or directory"), which tree_file_missing then takes only below the sdist.
_NO_FILE = re.compile(r"""(?:FileNotFoundError|No such file or directory).*?['"]([^'"]{1,300})['"]""")
_NO_FILE_BARE = re.compile(r"""(?<![\w.:/])(/[^\s'"]{1,300}?)[.,;:)]?(?:\s|$)""")


def tree_file_missing(message, root, cwd=""):
    """The path, relative to the sdist's top folder `root`, of the file or folder of the project's
    tree that a failure's one-line error says is missing (test data the sdist does not ship: a git
    submodule, an empty folder kept by a .gitkeep), or None. A relative path is taken from the
    test command's folder `cwd` (relative to `root`); an absolute one must lie below `root`; never
    `..`: a file missing elsewhere (the system's, the installed package's) stays the package's
    failure. Whether the sdist ships it is the caller's to check (shipped())."""
    message = message or ""
    found = _NO_FILE.search(message)
    if found:
        path = found.group(1)
    elif "FileNotFoundError" in message or "No such file or directory" in message:
        bare = [m.group(1) for m in _NO_FILE_BARE.finditer(message) if m.group(1).startswith(root.rstrip("/") + "/")]
        if not bare:
            return None
        path = bare[0]
    else:
        return None
    return tree_path(path, root, cwd)


def tree_path(path, root, cwd=""):
    """`path` (absolute, or relative to the test command's folder `cwd`) as a path relative to the
    sdist's top folder `root`, or None when it is not below it."""
    root = root.rstrip("/")
    if path.startswith(root + "/"):
        path = path[len(root) + 1:]
    elif path.startswith(("/", "~")):
        return None
    else:
        if "/" not in path and "." not in path:
            return None  # a program's name ('git'): a tool the system lacks, not a file of the tree
        path = posixpath.join(cwd or "", path)
    path = posixpath.normpath(path)
    if not path or path == "." or path.startswith("/") or path.split("/")[0] == "..":
        return None
    return path


def shipped(path, listing):
    """Does the sdist (its runner-made `listing`, a set) hold `path`? Unknown (no listing): yes."""
    return listing is None or path.rstrip("/") in listing


# A folder of the tree imported as a package without its __init__.py: "(unknown location)".
_NO_INIT = re.compile(r"cannot import name '[A-Za-z_][A-Za-z0-9_]*' from '([A-Za-z_][A-Za-z0-9_.]{0,200})' "
                      r"\(unknown location\)")


_NO_SUBMODULE = re.compile(r"No module named '([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*){1,10})'")


def module_file_missing(message):
    """(the package folder, [the files one of which is missing]) when a failure's one-line error
    says a module of a package could not be found: jmespath's `from tests import unittest`
    ("(unknown location)": tests/__init__.py is not in its sdist), optimizely's `from tests import
    base` (tests/base.py is in neither its sdist nor its wheel), "No module named 'tests.base'";
    else None. Whether the release ships the package but not the files is the caller's to check,
    against the sdist's listing and the installed copy."""
    found = _NO_INIT.search(message or "")
    if found:
        folder = found.group(1).replace(".", "/")
        return folder, [folder + "/__init__.py"]
    found = _NO_SUBMODULE.search(message or "")
    if found:
        path = found.group(1).replace(".", "/")
        return path.rsplit("/", 1)[0], [path + ".py", path + "/__init__.py"]
    return None


def release_lacks(module, listing, installed_has, own):
    """The file of `module` (module_file_missing's answer) that the release does not ship while it
    ships the module's folder, in its sdist (`listing`, the runner's, or None) or its installed
    copy (`installed_has(path)`); else None. Never a module of the release's own packages (`own`:
    a wheel without its own module is broken), unless inside a test folder."""
    folder, files = module
    parts = folder.split("/") + [posixpath.basename(files[0]).split(".")[0]]  # and the module's own name
    if parts[0] in own and parts[0] not in TEST_DIRS and not any(
            p in TEST_DIRS or p.startswith("test") or p.endswith(("_test", "_tests")) for p in parts[1:]):
        return None  # (kubernetes's tests import kubernetes.e2e_test, which it leaves out of both)

    def ships(path):
        return (listing is not None and path in listing) or installed_has(path)
    return files[0] if ships(folder) and not any(ships(f) for f in files) else None


def helper_beside_missing(test, message, listing):
    """The helper module a test module could not import from beside it (`tests/utils.py`, for
    `tests/test_x.py` failing on "No module named 'utils'", a TEST_HELPER_NAMES name or a private
    one, `_common`, which no project on the index is imported as) when the sdist (`listing`) ships
    the test's folder but neither `utils.py` nor `utils/` in it; else None."""
    name = named_missing(message)
    if not name or not (name in TEST_HELPER_NAMES or private(name)) or \
            listing is None or not isinstance(test, str):
        return None
    folder = posixpath.dirname(test.split("::", 1)[0])
    if folder.startswith(("/", "..")) or (folder and folder not in listing):
        return None
    module = posixpath.join(folder, name)
    return None if module + ".py" in listing or module in listing else module + ".py"


# Python's words for a relative import in a module imported as top-level (its folder no package).
_NO_PARENT = ("attempted relative import with no known parent package", "Attempted relative import in non-package")


def package_init_missing(test, message, listing):
    """`tests/__init__.py` when a test module `tests/test_x.py` fails on its relative import
    (`from .helpers import x`) because its folder is no package, and the sdist (`listing`) ships the
    folder without its `__init__.py` (raclib's tests); else None."""
    if listing is None or not isinstance(test, str) or not any(w in (message or "") for w in _NO_PARENT):
        return None
    folder = posixpath.dirname(test.split("::", 1)[0])
    if not folder or folder.startswith(("/", "..")) or folder not in listing:
        return None
    init = posixpath.join(folder, "__init__.py")
    return None if init in listing else init


_NO_FIXTURE = re.compile(r"^fixture '([A-Za-z_][A-Za-z0-9_]{0,100})' not found")


def conftest_missing(test, message, listing, cwd=""):
    """The `conftest.py` a test's fixture would come from, when the test asked for a fixture that
    nothing defines ("fixture 'x' not found", as the probe words pytest's lookup error) and the
    sdist (`listing`) ships no conftest.py in the test's folder or any above it (unidas's
    test/conftest.py defines its 89 tests' fixtures); else None. One shipped is no excuse."""
    if listing is None or not isinstance(test, str) or not _NO_FIXTURE.match(message or ""):
        return None
    folder = posixpath.normpath(posixpath.join(cwd or "", posixpath.dirname(test.split("::", 1)[0])))
    folder = "" if folder == "." else folder
    if folder.startswith(("/", "..")) or (folder and folder not in listing):
        return None
    parts = folder.split("/") if folder else []
    if any(posixpath.join(*(parts[:i] + ["conftest.py"])) in listing for i in range(len(parts) + 1)):
        return None
    return posixpath.join(folder, "conftest.py")


def named_missing(message):
    """The top-level module a failure's one-line error says is missing, or None."""
    found = _MISSING.search(message or "")
    return found.group(1) if found else None


def standard_module_missing(message, lacks):
    """The standard module a failure's one-line error says is missing, when the interpreter under
    test lacks it (`lacks`: what it lists as its own and cannot find, asked of it by the host,
    host/interpreters.py), or None. A module the language removed in that version (cgi in 3.13),
    or never had there (tomllib before 3.11, enum on 2.7), is not listed: the package's failure."""
    name = named_missing(message)
    return name if name in lacks else None
