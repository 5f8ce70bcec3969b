"""Which tests to run and which test dependencies the project declares, read from the unpacked
sdist and the installed package. Runs inside the sandbox: every file here is the package's."""
import configparser
import fnmatch
import glob
import os
import re
import shlex
import stat

try:
    import tomllib
except ImportError:  # Python < 3.11
    from farm_runner._vendor import tomli as tomllib

TEST_EXTRAS = ("test", "tests", "testing")


def is_test_name(name):
    """Is an extra or a dependency group named for tests? For these names, all letters,
    lower-casing decides exactly as PEP 503/685 normalisation would (a separator never matches)."""
    return isinstance(name, str) and name.lower() in TEST_EXTRAS
TEST_DIRS = ("tests", "test", "testing")
TEST_REQUIREMENT_FILES = ("tests/requirements.txt", "test/requirements.txt", "test-requirements.txt",
                          "requirements-test.txt", "requirements-tests.txt", "requirements/test.txt",
                          "requirements/tests.txt", "requirements_test.txt")
MAX_CONFIG = 1 << 20  # bytes of a configuration file worth reading


def _text(path):
    """A configuration file's text, or None: regular files of a sane size only."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CONFIG:
        return None
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "replace")


def load_toml(path):
    text = _text(path)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return {}


def _ini(path):
    text = _text(path)
    if text is None:
        return None
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(text)
    except configparser.Error:
        return None
    return cp


def _split_paths(value):
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return (value if isinstance(value, str) else "").split()


def _existing(src, candidates):
    out = []
    for c in candidates:
        c = c.strip().rstrip("/")
        if not c or c.startswith("-") or "{" in c or os.path.isabs(c) or ".." in c.split("/"):
            continue
        c = c.split("::")[0]
        for hit in sorted(glob.glob(os.path.join(glob.escape(src), c))):
            rel = os.path.relpath(hit, src).replace(os.sep, "/")
            if rel not in out:
                out.append(rel)
    return out


def _pytest_args_from_command(line):
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    for i, t in enumerate(tokens):
        base = t.rsplit("/", 1)[-1]
        if base in ("pytest", "py.test"):
            return tokens[i + 1:]
        if t == "-m" and i + 1 < len(tokens) and tokens[i + 1] == "pytest":
            return tokens[i + 2:]
    return None


def pytest_config_testpaths(src):
    """(config file name or None, testpaths list) following pytest's own config order."""
    for name in ("pytest.ini", ".pytest.ini"):
        p = os.path.join(src, name)
        if os.path.isfile(p):
            cp = _ini(p)
            return name, _split_paths(cp.get("pytest", "testpaths", fallback="") if cp else "")
    pp = os.path.join(src, "pyproject.toml")
    if os.path.isfile(pp):
        opts = load_toml(pp).get("tool", {}).get("pytest", {})
        if isinstance(opts, dict) and isinstance(opts.get("ini_options"), dict):
            return "pyproject.toml", _split_paths(opts["ini_options"].get("testpaths"))
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        p = os.path.join(src, name)
        if os.path.isfile(p):
            cp = _ini(p)
            if cp and cp.has_section(section):
                return name, _split_paths(cp.get(section, "testpaths", fallback=""))
    return None, []


def discover_tests(src, names, site_packages):
    """Decide what pytest runs: {"how", "paths", "pyargs", "copy", "config"} or None (no tests)."""
    if src and os.path.isdir(src):
        # 1. declared commands: tox, then nox
        cp = _ini(os.path.join(src, "tox.ini"))
        if cp:
            for section in cp.sections():
                if section == "testenv" or section.startswith("testenv:"):
                    for line in cp.get(section, "commands", fallback="").splitlines():
                        paths = _existing(src, _pytest_args_from_command(line) or [])
                        if paths:
                            return _plan(src, "tox.ini [%s] commands" % section, paths, names)
        text = _text(os.path.join(src, "noxfile.py"))
        if text:
            for m in re.finditer(r"session\.run\(\s*(['\"])(?:pytest|py\.test)\1((?:\s*,\s*(['\"])[^'\"]*\3)*)", text):
                paths = _existing(src, re.findall(r"['\"]([^'\"]*)['\"]", m.group(2)))
                if paths:
                    return _plan(src, "noxfile.py session.run('pytest', ...)", paths, names)
        # 2. pytest configuration
        config, testpaths = pytest_config_testpaths(src)
        paths = _existing(src, testpaths)
        if paths:
            return _plan(src, "testpaths in %s" % config, paths, names)
        # 3. conventional places
        paths = [d for d in TEST_DIRS if os.path.isdir(os.path.join(src, d))]
        paths += sorted(f for f in os.listdir(src) if fnmatch.fnmatch(f, "test_*.py") or fnmatch.fnmatch(f, "*_test.py"))
        if paths:
            return _plan(src, "test files in the sdist", paths, names)
    # 4. tests shipped inside the installed package
    for name in names:
        pkg = os.path.join(site_packages, name)
        if not os.path.isdir(pkg) or os.path.islink(pkg):
            continue
        for d in TEST_DIRS:
            if os.path.isfile(os.path.join(pkg, d, "__init__.py")):
                return {"how": "tests inside the installed package", "paths": ["%s.%s" % (name, d)],
                        "pyargs": True, "copy": [], "config": None}
        for _root, _dirs, files in os.walk(pkg):
            if any(fnmatch.fnmatch(f, "test_*.py") or fnmatch.fnmatch(f, "*_test.py") for f in files):
                return {"how": "tests inside the installed package", "paths": [name], "pyargs": True,
                        "copy": [], "config": None}
    return None


def _plan(src, how, paths, names):
    """Tests inside an import package of the sdist run from the installed copy via --pyargs."""
    pyargs, copy = [], []
    for p in paths:
        parts = p.split("/")
        if parts[0] == "src":
            parts = parts[1:]
        if parts and parts[0] in names and len(parts) > 1:
            pyargs.append(".".join(x[:-3] if x.endswith(".py") else x for x in parts))
        else:
            copy.append(p)
    config, _ = pytest_config_testpaths(src)
    if pyargs and not copy:
        return {"how": how, "paths": pyargs, "pyargs": True, "copy": [], "config": config}
    return {"how": how, "paths": copy, "pyargs": False, "copy": copy, "config": config}


def test_dependencies(src):
    """What the sdist declares for its tests: {"groups": [[pyproject, name]...], "requirement_files"}
    (every dependency group: the host picks the test ones, as it picks the release's test extras,
    and checks each path before it passes it to the installer)."""
    groups, files = [], []
    if src:
        pyproject = os.path.join(src, "pyproject.toml")
        declared = load_toml(pyproject).get("dependency-groups") or {}
        if isinstance(declared, dict):
            groups = [[pyproject, g] for g in declared if isinstance(g, str)]
        files = [os.path.join(src, f) for f in TEST_REQUIREMENT_FILES if _text(os.path.join(src, f)) is not None]
    return {"groups": groups, "requirement_files": files}
