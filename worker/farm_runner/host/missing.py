"""A module plainly missing from a test run: named in a "No module named 'x'" error, no part of the
package, not in the standard library. The farm installs the distribution that provides it, once,
and says so in the report (inferred, never declared). The text it reads is the package's output:
at worst a package makes the farm install something from the index into its own sandbox."""

import re
import sys

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
    "importlib_resources": "importlib-resources",
}
MAX_INFERRED = 5
_MISSING = re.compile(r"No module named '?([A-Za-z_][A-Za-z0-9_]*)")
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def missing_modules(texts, own_names, known):
    """[(module, distribution)] named as missing in `texts`, excluding the package's own import
    names, `known` ones (already tried or installed) and the standard library."""
    return distributions_for([m for text in texts for m in _MISSING.findall(text or "")], own_names, known)


def distributions_for(modules, own_names, known):
    """[(module, distribution)] for top-level module names said to be missing (by a failed run, or
    by the stage step's reading of the test files: untrusted either way), at most MAX_INFERRED."""
    out = []
    for module in modules if isinstance(modules, list) else []:
        if not isinstance(module, str) or not _NAME.match(module) or module in own_names or module in known \
                or module in _STDLIB or module.startswith("_farm"):
            continue
        if module not in [m for m, _ in out]:
            out.append((module, IMPORT_TO_DIST.get(module, module.replace("_", "-"))))
    return out[:MAX_INFERRED]


# A file the test opened by a path in the project's tree: "[Errno 2] No such file or directory: 'x'".
_NO_FILE = re.compile(r"""(?:FileNotFoundError|No such file or directory).*?['"]([^'"]{1,300})['"]""")


def tree_file_missing(message, tree):
    """The path of the project's tree a failure's one-line error says is missing (test data the
    sdist does not ship: a git submodule, a folder left out of the manifest), or None. Only a
    relative path (the tests run from the tree) or one below `tree`, never `..`: a file missing
    elsewhere (the system's, the installed package's) stays the package's failure."""
    found = _NO_FILE.search(message or "")
    if not found:
        return None
    path = found.group(1)
    if path.startswith(tree.rstrip("/") + "/"):
        path = path[len(tree.rstrip("/")) + 1:]
    if not path or path.startswith(("/", "~")) or ".." in path.split("/"):
        return None
    if "/" not in path and "." not in path:
        return None  # a program's name ('git'): a tool the system lacks, not a file of the tree
    return path


# A folder of the tree imported as a package without its __init__.py: "(unknown location)".
_NO_INIT = re.compile(r"cannot import name '[A-Za-z_][A-Za-z0-9_]*' from '([A-Za-z_][A-Za-z0-9_.]{0,200})' "
                      r"\(unknown location\)")


def package_init_missing(message, installed_names):
    """The __init__.py of the tree's folder that a failure imports names from, when the sdist
    does not ship it (jmespath's `from tests import unittest`: tests/__init__.py is not in its
    sdist), or None. A package of the release or another installed distribution (a namespace
    package of its own) is never the tree's."""
    found = _NO_INIT.search(message or "")
    if not found or found.group(1).split(".")[0] in installed_names:
        return None
    return found.group(1).replace(".", "/") + "/__init__.py"


def standard_module_missing(message):
    """The standard-library module a failure's one-line error says is missing (`_dbm`, `_tkinter`:
    optional parts of CPython that this worker's interpreter was built without), or None."""
    found = _MISSING.search(message or "")
    if found and found.group(1) in _STDLIB and not found.group(1).startswith("_farm"):
        return found.group(1)
    return None
