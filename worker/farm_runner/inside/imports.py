"""What the test files import that nothing provides, read before the tests run (inside the sandbox;
every file here is the package's). Only the plain imports at a test module's top level count:
those would stop its collection, so the host installs their distribution before the first run
instead of after it failed (host/missing.py maps the names). An import under `try`, `if` or in a
function is optional to the project, and is left alone.

A name counts as provided when the standard library, the environment's site-packages, the
farm's test tools or the project's tree (any module or folder of that name, anywhere: conftest
files put folders on sys.path) has it."""
import ast
import fnmatch
import os
import re
import sys

from farm_runner.inside.discover import config_words, pytest_config

MAX_FILES = 300  # test files read
MAX_BYTES = 512 * 1024  # of one test file
MAX_WALK = 20000  # entries of the tree looked at
MAX_NAMES = 5
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE_FILE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\..*)?\.(py|pyc|so|pyd)$")
DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
NORECURSE = ("build", "dist", "node_modules", "venv", "CVS", "_darcs", "{arch}")


def top_names(folder):
    """Importable top-level names in a folder: packages (folders), modules, extension modules."""
    names = set()
    try:
        entries = os.listdir(folder)
    except OSError:
        return names
    for entry in entries:
        m = _MODULE_FILE.match(entry)
        if m:
            names.add(m.group(1))
        elif _NAME.match(entry) and os.path.isdir(os.path.join(folder, entry)):
            names.add(entry)
    return names


def _walk(top):
    """(folder, files) of the tree under `top`: bounded, hidden folders skipped, links not followed."""
    seen = 0
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d)))
        seen += len(dirs) + len(files)
        yield folder, dirs, sorted(files)
        if seen > MAX_WALK:
            return


def unmet_imports(root, cwd, args, site, tools_names):
    """[module] imported at the top level of the test files (and conftest.py files) under the
    plan's test paths that nothing provides, at most MAX_NAMES. `cwd` is the run's folder relative
    to the tree, `args` the test command's arguments."""
    run = os.path.join(root, cwd) if cwd else root
    local = set()
    for folder, dirs, files in _walk(root):
        local.update(d for d in dirs if _NAME.match(d))
        local.update(m.group(1) for m in map(_MODULE_FILE.match, files) if m)
    provided = local | top_names(site) | set(tools_names) | set(sys.builtin_module_names) | \
        set(getattr(sys, "stdlib_module_names", ())) | {"__future__"}
    _, options = pytest_config(root)
    patterns = config_words(options.get("python_files")) or list(DEFAULT_PYTHON_FILES)
    paths = [a.split("::")[0] for a in args if not a.startswith("-")] or config_words(options.get("testpaths"))
    tops = [os.path.join(run, p) for p in paths if ".." not in p.split("/") and os.path.lexists(os.path.join(run, p))]
    missing, read = [], 0
    for top in tops or [run]:
        if os.path.islink(top):
            continue
        walked = [(os.path.dirname(top), [], [os.path.basename(top)])] if os.path.isfile(top) else _walk(top)
        for folder, dirs, files in walked:
            dirs[:] = [d for d in dirs if d not in NORECURSE and not d.endswith(".egg")]  # as pytest's default
            for name in files:
                if name != "conftest.py" and not any(fnmatch.fnmatch(name, p) for p in patterns):
                    continue
                read += 1
                if read > MAX_FILES:
                    return missing
                for module in _top_level_imports(os.path.join(folder, name)):
                    if module not in provided and not module.startswith("_") and module not in missing:
                        missing.append(module)
                        if len(missing) >= MAX_NAMES:
                            return missing
    return missing


def _top_level_imports(path):
    try:
        st = os.lstat(path)
        if not os.path.isfile(path) or os.path.islink(path) or st.st_size > MAX_BYTES:
            return []
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    out = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            out += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append(node.module.split(".")[0])
    return out
