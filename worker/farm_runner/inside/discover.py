"""How the project tests itself, read from its unpacked sdist: the command its CI runs (the tox env
for this interpreter, nox's session, cibuildwheel's test-command, a Makefile's test target, or pytest with the project's own configuration), the folder
it runs from, and the test dependencies it declares, wherever it declares them. Runs inside the
sandbox: every file here is the package's. Only regular files of a sane size are read, no link is
followed, and every path handed on stays inside the tree.

The plan this module returns:
    {"how": a sentence, "tool": "pytest" | "unittest" | "script", "args": [...], "cwd": folder relative to the
     tree ("" for its root), "deps": {"extras": [...], "requirements": [[requirement, source]...],
     "constraints": [[requirement, source]...]}} (dependency groups are expanded into requirements)
"""
import os
import re
import shlex
import stat

TEST_EXTRAS = ("test", "tests", "testing")
DEV_EXTRAS = ("dev", "devel", "develop", "development")  # used when the project names no test extra or group
TEST_DIRS = ("tests", "test", "testing")
# Top-level names some distributions install that are not the package itself: never set aside
# from the tree, nor checked to be imported from the installed copy.
NOT_THE_PACKAGE = TEST_DIRS + ("docs", "doc", "examples", "example", "benchmarks", "bench")
TEST_REQUIREMENT_FILES = ("tests/requirements.txt", "test/requirements.txt", "test-requirements.txt",
                          "test_requirements.txt", "requirements-test.txt", "requirements-tests.txt",
                          "requirements-testing.txt", "requirements/test.txt", "requirements/tests.txt",
                          "requirements/testing.txt", "requirements_test.txt", "requirements_tests.txt")
DEV_REQUIREMENT_FILES = ("requirements-dev.txt", "requirements_dev.txt", "dev-requirements.txt", "dev_requirements.txt",
                         "requirements/dev.txt", "requirements/development.txt")
MAX_CONFIG = 1 << 20  # bytes of a configuration file worth reading
MAX_REQUIREMENTS = 500  # lines kept from all requirement files together
MAX_INCLUDE_DEPTH = 5

# tox env factors that name a task other than the tests (lint, docs, packaging...).
NOT_TEST_FACTORS = frozenset((
    "lint", "linting", "linters", "flake8", "pylint", "ruff", "black", "isort", "style", "format", "fmt",
    "pre-commit", "precommit", "mypy", "pyright", "type", "types", "typing", "typecheck", "docs", "doc",
    "docs-linkcheck", "linkcheck", "spelling", "readme", "build", "pkg", "package", "packaging", "dist",
    "release", "publish", "manifest", "check-manifest", "clean", "coverage", "coverage-report", "cov-report",
    "report", "bench", "benchmark", "benchmarks", "notebook", "notebooks", "nb", "examples", "security",
    "safety", "bandit", "audit", "changelog", "towncrier", "dev", "devenv", "venv", "upload", "codecov",
    "mutmut", "pyupgrade", "cog", "compile", "fix", "autofix", "stubtest", "pyright-verifytypes", "lock", "upgrade", "integration", "e2e",
    "functional", "slow", "network", "online"))
# pytest options that only shape the report or the run's speed: left out of the project's command
# (a plugin the farm does not install would make them usage errors). (option, takes a value)
DROPPED_PYTEST_OPTIONS = {
    "-n": True, "--numprocesses": True, "--dist": True, "--maxprocesses": True, "--junitxml": True,
    "--junit-xml": True, "--tb": True, "--color": True, "--durations": True, "--durations-min": True,
    "--basetemp": True, "--html": True, "-c": True, "--config-file": True, "--rootdir": True,
    "--confcutdir": True, "--cov": False, "--cov-report": True, "--cov-config": True, "--cov-fail-under": True,
    "--cov-context": True, "--cov-append": False, "--cov-branch": False, "--no-cov": False, "-v": False,
    "-vv": False, "-q": False, "--verbose": False, "--quiet": False, "--cache-clear": False, "-s": False,
    "--capture": True, "--timeout": True, "--reruns": True, "--reruns-delay": True, "--benchmark-skip": False,
    "--benchmark-disable": False, "--benchmark-only": False, "--lf": False, "--ff": False, "-x": False,
    "--exitfirst": False, "--maxfail": True, "--setup-show": False, "--showlocals": False, "-l": False,
    "--instafail": False, "--pdb": False, "--looponfail": False, "-f": False, "--result-log": True,
    "--report-log": True, "--alluredir": True, "--json-report": False, "--json-report-file": True,
    "--md-report": False, "--codeblocks": False, "--mypy": False, "--flake8": False, "--pylint": False,
    "--black": False, "--isort": False, "--ruff": False, "--ruff-format": False, "--doctest-cython": False,
}
# pytest options that take a value as the next word (kept with it).
VALUE_OPTIONS = ("-k", "-m", "-p", "-W", "-o", "--ignore", "--ignore-glob", "--deselect", "--doctest-glob",
                 "--import-mode", "--override-ini", "--pythonwarnings", "--log-level", "--strict-markers")


def is_test_name(name):
    """Is an extra or a dependency group named for tests? For these names, all letters,
    lower-casing decides exactly as PEP 503/685 normalisation would (a separator never matches)."""
    return isinstance(name, str) and name.lower() in TEST_EXTRAS


def is_dev_name(name):
    return isinstance(name, str) and name.lower() in DEV_EXTRAS


def _text(path):
    """A file's text, or None: regular files of a sane size only (lstat: a link is not followed)."""
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
        import tomllib
    except ImportError:  # Python < 3.11
        from farm_runner._vendor import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ini_text(text):
    import configparser

    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(text)
    except configparser.Error:
        return None
    return cp


def _ini(path):
    text = _text(path)
    return None if text is None else _ini_text(text)


def inside_tree(root, rel):
    """`rel` as a clean path inside the tree, or None (absolute, `..`, or leaving through a link)."""
    rel = rel.strip().replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    rel = rel.rstrip("/") or "."
    if not rel or os.path.isabs(rel) or ".." in rel.split("/") or "\0" in rel:
        return None
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, rel))
    if real != real_root and not real.startswith(real_root + os.sep):
        return None
    return rel


# -- the pytest configuration -----------------------------------------------------------------------

def pytest_config(root):
    """(config file name or None, its [pytest] options as a dict), in pytest's own order."""
    for name in ("pytest.ini", ".pytest.ini"):
        if os.path.isfile(os.path.join(root, name)):
            cp = _ini(os.path.join(root, name))
            return name, dict(cp.items("pytest")) if cp and cp.has_section("pytest") else {}
    if os.path.isfile(os.path.join(root, "pyproject.toml")):
        opts = load_toml(os.path.join(root, "pyproject.toml")).get("tool", {})
        opts = opts.get("pytest", {}) if isinstance(opts, dict) else {}
        if isinstance(opts, dict) and isinstance(opts.get("ini_options"), dict):
            return "pyproject.toml", opts["ini_options"]
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        if os.path.isfile(os.path.join(root, name)):
            cp = _ini(os.path.join(root, name))
            if cp and cp.has_section(section):
                return name, dict(cp.items(section))
    return None, {}


def maturin_binding(root):
    """The folder of a maturin project's Python binding (`[tool.maturin] manifest-path`'s, as
    tokenizers' `bindings/python/Cargo.toml`) when it holds a pytest configuration or tests of its own:
    the project runs its Python tests there (its fixtures may even check the folder), not from
    the root, which holds another language's tests. Else None."""
    tool = load_toml(os.path.join(root, "pyproject.toml")).get("tool")
    maturin = tool.get("maturin") if isinstance(tool, dict) else None
    manifest = maturin.get("manifest-path") if isinstance(maturin, dict) else None
    if not isinstance(manifest, str):
        return None
    folder = inside_tree(root, os.path.dirname(manifest) or ".")
    if not folder or folder == "." or not os.path.isdir(os.path.join(root, folder)):
        return None
    # its own pytest configuration, or its own tests folder (mrml's packages/mrml-python/tests,
    # which read resources/ beside them by a relative path)
    if pytest_config(os.path.join(root, folder))[0] or any(
            os.path.isdir(os.path.join(root, folder, d)) and not os.path.islink(os.path.join(root, folder, d))
            for d in TEST_DIRS):
        return folder
    return None


def config_words(value):
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return (value if isinstance(value, str) else "").split()


# -- tox ----------------------------------------------------------------------------------------------

def tox_config(root):
    """tox's configuration as {section: {key: text}} (tox.ini, setup.cfg's [tox:tox], pyproject's
    legacy_tox_ini), or as tox 4's TOML tables ("toml": True), or None."""
    cp = _ini(os.path.join(root, "tox.ini"))
    if cp is not None and cp.sections():
        return {s: dict(cp.items(s)) for s in cp.sections()}
    pyproject = load_toml(os.path.join(root, "pyproject.toml"))
    tool = pyproject.get("tool") if isinstance(pyproject.get("tool"), dict) else {}
    tox = tool.get("tox") if isinstance(tool.get("tox"), dict) else None
    if tox is None:
        data = load_toml(os.path.join(root, "tox.toml"))
        tox = data or None
    if isinstance(tox, dict) and isinstance(tox.get("legacy_tox_ini"), str):
        cp = _ini_text(tox["legacy_tox_ini"])
        return {s: dict(cp.items(s)) for s in cp.sections()} if cp else None
    if isinstance(tox, dict):
        return {"toml": True, "tox": tox}
    cp = _ini(os.path.join(root, "setup.cfg"))
    if cp is not None and cp.has_section("tox:tox"):
        return {("tox" if s == "tox:tox" else s): dict(cp.items(s)) for s in cp.sections()
                if s == "tox:tox" or s.startswith("testenv")}
    return None


def expand_envlist(text):
    """tox's env list, with generative names expanded: py{38,39}-django{4,5} gives four envs."""
    out = []
    for item in re.split(r",(?![^{]*\})|\n", text or ""):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        names = [""]
        for part in re.split(r"(\{[^}]*\})", item):
            if part.startswith("{") and part.endswith("}"):
                choices = []
                for choice in part[1:-1].split(","):
                    span = re.match(r"^\s*(\d+)-(\d+)\s*$", choice)  # tox 4's ranges: py3{9-14}
                    if span and int(span.group(2)) - int(span.group(1)) < 50:
                        choices += [str(n) for n in range(int(span.group(1)), int(span.group(2)) + 1)]
                    else:
                        choices.append(choice.strip())
                names = [n + choice for n in names for choice in choices]
            else:
                names = [n + part for n in names]
        out += [n for n in names if n]
    return out


def python_factor(factor):
    """(implementation, (major, minor) or None) when a tox factor names an interpreter, else None."""
    m = re.match(r"^(py|pypy|cpython)(\d)\.?(\d*)t?$", factor) or re.match(r"^()(\d)\.(\d+)t?$", factor)
    if m:
        minor = int(m.group(3)) if m.group(3) else None
        return ("pypy" if m.group(1) == "pypy" else "cpython"), (int(m.group(2)), minor)
    if factor in ("py", "pypy"):
        return ("pypy" if factor == "pypy" else "cpython"), None
    return None


def choose_tox_env(envs, version, implementation="cpython"):
    """The env tox would run the tests in on this interpreter: one whose interpreter factor names
    it (pyXY, pyX.Y, py3, py), or one naming none; never an env for another interpreter or for
    another task (lint, docs, a notebook...)."""
    best, best_rank = None, None
    for env in envs:
        factors = env.lower().split("-")
        if env.lower() in NOT_TEST_FACTORS or any(f in NOT_TEST_FACTORS for f in factors):
            continue
        rank = 2
        for f in factors:
            named = python_factor(f)
            if named is None:
                continue
            impl, (major, minor) = named[0], named[1] or (None, None)
            if impl != implementation or (major is not None and major != version[0]) or (
                    minor is not None and minor != version[1]):
                rank = None
                break
            rank = 0 if minor is not None else 1
        if rank is not None and (best_rank is None or rank < best_rank):
            best, best_rank = env, rank
    return best


def _factor_lines(text, factors):
    """The lines of a tox setting that apply to an env with these factors (`py312,lint: x`, `!pypy: x`)."""
    out = []
    for line in (text or "").replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([\w.!,{}-]+):\s+(.*)$", line)
        if m and not re.match(r"^\w+://", line):
            conditions, rest = m.group(1), m.group(2)
            if not any(all((f[1:] not in factors) if f.startswith("!") else (f in factors)
                           for f in alternative.split("-") if f)
                       for alternative in expand_envlist(conditions.replace(",", "\n"))):
                continue
            line = rest
        out.append(line)
    return out


def _substitute(text, config, section):
    """tox's substitutions the farm can know: {posargs[:default]}, {toxinidir}, {[section]key},
    {env:NAME:default}; other {...} become nothing."""
    def one(m):
        inner = m.group(1)
        if inner.startswith("posargs"):
            return inner.split(":", 1)[1] if ":" in inner else ""
        if inner in ("toxinidir", "tox_root"):
            return "."
        if inner.startswith("["):
            ref = re.match(r"^\[([^\]]*)\]\s*(\S+)$", inner)
            if ref:
                sec = ref.group(1) or section
                return str((config.get(sec) or {}).get(ref.group(2), ""))
        if inner.startswith("env:"):
            parts = inner.split(":", 2)
            return parts[2] if len(parts) == 3 else ""
        if inner in ("envpython", "env_python"):
            return "python"
        return ""
    for _ in range(3):  # references may nest a little
        text = re.sub(r"\{([^{}]*)\}", one, text)
    return text


def tox_env_settings(config, env):
    """{"commands": [[word...]...], "deps": [line...], "extras": [...], "changedir": str} of `env`."""
    if config.get("toml"):
        tox = config["tox"]
        base = tox.get("env_run_base") if isinstance(tox.get("env_run_base"), dict) else {}
        envs = tox.get("env") if isinstance(tox.get("env"), dict) else {}
        own = envs.get(env) if isinstance(envs.get(env), dict) else {}
        merged = dict(base, **own)

        def words(cmd):
            return [w if isinstance(w, str) else "" for w in cmd] if isinstance(cmd, list) else []
        commands = [words(c) for c in merged.get("commands") or [] if isinstance(c, list)]
        commands = [[_substitute(w, {}, "") for w in c] for c in commands]
        return {"commands": commands, "deps": [d for d in merged.get("deps") or [] if isinstance(d, str)],
                "extras": [e for e in merged.get("extras") or [] if isinstance(e, str)],
                "groups": [g for g in merged.get("dependency_groups") or [] if isinstance(g, str)],
                "changedir": merged.get("change_dir") if isinstance(merged.get("change_dir"), str) else ""}
    factors = set(env.lower().split("-"))
    section = env_section(config, env)
    own, base = config.get(section) or {}, config.get("testenv") or {}

    def setting(key, alt=None):
        for source in (own, base):
            for k in (key, alt):
                if k and k in source:
                    return _substitute(source[k], config, section)
        return ""
    import shlex

    commands = []
    for line in _factor_lines(setting("commands"), factors):
        try:
            commands.append(shlex.split(line))
        except ValueError:
            continue
    return {"commands": commands, "deps": _factor_lines(setting("deps"), factors),
            "extras": [e.strip() for line in _factor_lines(setting("extras"), factors)
                       for e in line.split(",") if e.strip()],
            "groups": [g.strip() for line in _factor_lines(setting("dependency_groups"), factors)
                       for g in re.split(r"[,\s]+", line) if g.strip()],
            "changedir": setting("changedir", "change_dir").strip()}


def env_section(config, env):
    """The ini section of tox env `env`: its own, one whose generative name makes it
    ([testenv:py{310,311,312}] for py312), else the base [testenv]."""
    if "testenv:" + env in config:
        return "testenv:" + env
    for section in config:
        if section.startswith("testenv:") and env in expand_envlist(section.split(":", 1)[1]):
            return section
    return "testenv"


def tox_plan(root, version, implementation):
    config = tox_config(root)
    if not config:
        return None
    if config.get("toml"):
        listed = [e for e in config["tox"].get("env_list") or config["tox"].get("envlist") or [] if isinstance(e, str)]
        named = [e for e in config["tox"].get("env") or {} if isinstance(e, str)]
        base = isinstance(config["tox"].get("env_run_base"), dict)
    else:
        tox = config.get("tox") or {}
        listed = expand_envlist(tox.get("envlist") or tox.get("env_list") or "")
        named = [e for s in config if s.startswith("testenv:") for e in expand_envlist(s.split(":", 1)[1])]
        base = "testenv" in config
    # The env list's env for this interpreter; else what plain `tox` runs, the base env for an env
    # named after the interpreter; a named env (zipp's diffcov, docs, release) only when there is
    # no base to run.
    env = choose_tox_env(listed, version, implementation) if listed else None
    if env is None and base:
        env = "py%d%d" % tuple(version[:2])
    if env is None:
        env = choose_tox_env(named, version, implementation) if named else None
    if env is None:
        return None
    settings = tox_env_settings(config, env)
    for words in settings["commands"]:
        found = _test_command(words)
        if found:
            tool, args = found
            return {"how": "tox env %s (%s)" % (env, "tox.ini" if not config.get("toml") else "tox TOML"),
                    "tool": tool, "args": args, "cwd": settings["changedir"], "tox": settings}
    return {"how": None, "tox": settings}


def _test_command(words):
    """("pytest" | "unittest", its arguments) when a command runs the tests, ("script", [path])
    when it runs a test script of the tree with Python (dill's tox: `{envpython}
    dill/tests/__main__.py`), else None."""
    words = [w for w in words if w]
    for i, w in enumerate(words):
        base = w.rsplit("/", 1)[-1]
        if re.match(r"^python[\d.]*$", base) and i + 1 < len(words) and words[i + 1].endswith(".py") and \
                not words[i + 1].startswith("-") and os.path.basename(words[i + 1]) != "setup.py" and \
                "test" in words[i + 1].lower():
            return "script", [words[i + 1]]
        if base in ("pytest", "py.test"):
            return "pytest", words[i + 1:]
        if w == "-m" and i + 1 < len(words) and words[i + 1] in ("pytest", "py.test", "unittest"):
            if i > 0 and words[i - 1].rsplit("/", 1)[-1] not in ("python", "python3") and \
                    not re.match(r"^python[\d.]*$", words[i - 1].rsplit("/", 1)[-1]) and \
                    "coverage" not in words[:i] and words[i - 1] != "run":
                continue
            return ("unittest" if words[i + 1] == "unittest" else "pytest"), words[i + 2:]
        if base in ("trial", "nosetests", "nose2", "green", "ward", "stestr"):
            return None
    return None


# -- nox -----------------------------------------------------------------------------------------------

def nox_plan(root):
    text = _text(os.path.join(root, "noxfile.py"))
    if not text:
        return None
    for m in re.finditer(r"session\.run\(\s*((?:(['\"])[^'\"]*\2\s*,?\s*)+)", text):
        words = re.findall(r"['\"]([^'\"]*)['\"]", m.group(1))
        found = _test_command(words)
        if found:
            installs = []
            for im in re.finditer(r"session\.install\(\s*((?:(['\"])[^'\"]*\2\s*,?\s*)+)", text):
                installs += re.findall(r"['\"]([^'\"]*)['\"]", im.group(1))
            return {"how": "noxfile.py session.run(%r...)" % words[0], "tool": found[0], "args": found[1],
                    "cwd": "", "nox_installs": installs}
    return None


# -- cibuildwheel ---------------------------------------------------------------------------------------

def _words_list(value):
    """A cibuildwheel option that is a string or a list of strings, as a list."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def cibuildwheel_plan(root):
    """cibuildwheel's `test-command` (the Linux table's when it has one), with which compiled
    projects test each wheel they build, installed: librt's `pytest smoke_tests.py`. {project}
    and {package} name the tree's root; the first of its commands that runs the tests is used."""
    tool = load_toml(os.path.join(root, "pyproject.toml")).get("tool")
    cibw = tool.get("cibuildwheel") if isinstance(tool, dict) else None
    if not isinstance(cibw, dict):
        return None
    linux = cibw.get("linux") if isinstance(cibw.get("linux"), dict) else {}

    def option(key):
        return _words_list(linux[key] if key in linux else cibw.get(key))
    for text in option("test-command"):
        text = text.replace("{project}", ".").replace("{package}", ".")
        for part in re.split(r"&&|;|\|\|", text):
            try:
                words = shlex.split(part)
            except ValueError:
                continue
            found = _test_command(words)
            if found:
                value = linux["test-requires"] if "test-requires" in linux else cibw.get("test-requires")
                requires = value.split() if isinstance(value, str) else _words_list(value)  # a string: spaced
                return {"how": "cibuildwheel's test-command (pyproject.toml)", "tool": found[0], "args": found[1],
                        "cwd": "", "cibuildwheel": {"requires": requires, "extras": [
                            e.strip() for line in option("test-extras") for e in line.split(",") if e.strip()]}}
    return None


# -- Makefile ----------------------------------------------------------------------------------------

MAKE_TARGETS = ("test", "tests", "test-py", "test-python", "test_py", "pytest", "test-unit", "unit", "unittest",
                "check")
MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
_MAKE_VAR = re.compile(r"^ *([A-Za-z_][A-Za-z0-9_]*)\s*(?::{1,3}=|\?=|=)\s*(.*)$")
_MAKE_RULE = re.compile(r"^([A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*::?(?!=)\s*([^=]*)$")
_MAKE_REF = re.compile(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]")


def _make_rules(text):
    """({target: (prerequisites, [recipe line...])}, {variable: value}) of a Makefile's text: its
    plain rules and simple variables (the first definition of each), nothing evaluated."""
    lines = text.replace("\\\n", " ").splitlines()
    rules, variables, current = {}, {}, None
    for line in lines[:5000]:
        if line.startswith("\t"):
            if current is not None:
                current[1].append(line.strip())
            continue
        current = None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _MAKE_VAR.match(line)
        if m:
            variables.setdefault(m.group(1), m.group(2).split("#", 1)[0].strip())
            continue
        m = _MAKE_RULE.match(line)
        if m:
            recipe = m.group(2).split(";", 1)
            current = (recipe[0].split(), [recipe[1].strip()] if len(recipe) > 1 else [])
            for target in m.group(1).split():
                rules.setdefault(target, current)
    return rules, variables


def _make_expand(text, variables, depth=0):
    return _MAKE_REF.sub(lambda m: _make_expand(variables.get(m.group(1), ""), variables, depth + 1)
                         if depth < 3 else "", text)


def makefile_plan(root):
    """A Makefile's test target (`test`, `test-py`... followed through its prerequisites) whose
    recipe runs pytest or unittest: tokenizers' binding's `test-py: python -m pytest -s -v tests`,
    with the packages its recipe installs (`$(PIP) install pytest ... datasets`). Looked for at the
    root and in a maturin project's binding folder; variables are expanded, nothing is run."""
    tool = load_toml(os.path.join(root, "pyproject.toml")).get("tool")
    maturin = tool.get("maturin") if isinstance(tool, dict) else None
    manifest = maturin.get("manifest-path") if isinstance(maturin, dict) else None
    binding = inside_tree(root, os.path.dirname(manifest) or ".") if isinstance(manifest, str) else None
    for folder in dict.fromkeys(["", binding if binding and binding != "." else ""]):
        name = next((n for n in MAKEFILES if _text(os.path.join(root, folder, n)) is not None), None)
        if name is None:
            continue
        rules, variables = _make_rules(_text(os.path.join(root, folder, name)))
        for target in MAKE_TARGETS:
            chain, todo = [], [target]
            while todo and len(chain) < 5:
                t = todo.pop(0)
                if t in rules and t not in chain:
                    chain.append(t)
                    todo += [p for p in rules[t][0] if p in rules]
            installs = []
            for t in chain:
                for line in rules[t][1]:
                    for part in re.split(r"&&|;|\|\|", _make_expand(line, variables).lstrip("@-+ ")):
                        try:
                            words = shlex.split(part)
                        except ValueError:
                            continue
                        if "install" in words and (words.index("install") == 0 or "pip" in words[:words.index("install")]):
                            installs += words[words.index("install") + 1:]
                            continue
                        found = _test_command(words)
                        if found:
                            where = (folder + "/" if folder else "") + name
                            return {"how": "the `%s` target of %s" % (t, where), "tool": found[0], "args": found[1],
                                    "cwd": folder, "nox_installs": installs, "installs_from": "%s %s" % (where, t)}
    return None


# -- setup.py's `test` command (setuptools' test_suite and tests_require, the 2010s' way) --------------

_STRING = r"""(?:'([^'\\\n]{1,300})'|"([^"\\\n]{1,300})")"""


def _strings(text):
    return [a or b for a, b in re.findall(_STRING, text)]


def setup_py_tests(root):
    """{"suite": setup()'s test_suite or None, "requires": its tests_require}: read from setup.py's
    text (never run: the farm runs none of the package's code to learn how to test it) and from
    setup.cfg's [options]. A list held in a variable (`tests_require=test_requirements`) is found
    by its assignment."""
    text = _text(os.path.join(root, "setup.py")) or ""
    suite = re.search(r"\btest_suite\s*=\s*" + _STRING, text)
    suite = (suite.group(1) or suite.group(2)) if suite else None
    requires = []
    found = re.search(r"\btests_require\s*=\s*(\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_]*)", text)
    if found:
        value = found.group(1)
        if not value.startswith("["):
            assigned = re.search(r"^\s*%s\s*=\s*(\[[^\]]*\])" % re.escape(value), text, re.M)
            value = assigned.group(1) if assigned else "[]"
        requires = _strings(value)
    cfg = _ini(os.path.join(root, "setup.cfg"))
    if cfg is not None and cfg.has_section("options"):
        suite = suite or (cfg.get("options", "test_suite", fallback="") or "").strip() or None
        requires += [l.strip() for l in (cfg.get("options", "tests_require", fallback="") or "").splitlines()
                     if l.strip()]
    if suite and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", suite):
        suite = None
    return {"suite": suite, "requires": [r for r in requires if plain_requirement(r)][:MAX_REQUIREMENTS]}


# -- Django settings ------------------------------------------------------------------------------------

# Files in which a Django project names the settings its tests run in: runtests.py's
# `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")`, tox's setenv, pytest-django's option.
SETTINGS_NAMED_IN = ("runtests.py", "run_tests.py", "tox.ini", "pytest.ini", "setup.cfg", "pyproject.toml",
                     "conftest.py", "tests/conftest.py", "test/conftest.py", "manage.py", "noxfile.py", "Makefile")
_SETTINGS_NAMED = re.compile(r"""(?:DJANGO_SETTINGS_MODULE['"]?\]?\s*[,:=]\s*|--settings[= ])['"]?"""
                             r"""([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*){0,5})['"]?(?![\w.])""")
# Settings a project ships for its tests, by their names (NEMO-online-training's
# NEMO_online_training/tests/test_settings.py), or a settings.py in a test project's folder.
SETTINGS_FILES = ("test_settings.py", "settings_test.py", "testsettings.py", "settings_tests.py", "tests_settings.py")
SETTINGS_FOLDERS = TEST_DIRS + ("testapp", "test_app", "testproject", "test_project", "tests_project")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_SETTINGS_HERE = ("build", "dist", "node_modules", "venv", "docs", "doc", "site-packages")
_LOOKS_LIKE_SETTINGS = re.compile(r"^\s*(INSTALLED_APPS|DATABASES)\s*=", re.M)


def django_settings(root, cwd, site, names):
    """The Django settings module the project runs its tests in, by its dotted name from the run's
    folder (or the installed package's), or None: the one a file of the project's names, else one
    it ships for its tests. Its file must be there and set settings; nothing of it is run here."""
    base = os.path.join(root, cwd) if cwd else root
    tops = [os.path.realpath(root)] + ([os.path.realpath(site)] if site else [])

    def where(module):
        first, _, below = module.partition(".")
        places = [(base, module), (root, module)]
        if site and below and first in names:  # in the installed package (its tree folder was set aside)
            places.append((os.path.join(site, first), below))
        for folder, dotted in places:
            for candidate in (dotted.replace(".", "/") + ".py", dotted.replace(".", "/") + "/__init__.py"):
                path = os.path.realpath(os.path.join(folder, candidate))
                if any(path.startswith(t + os.sep) for t in tops) and os.path.isfile(path):
                    return path
        return None

    def settings(path):
        return bool(_LOOKS_LIKE_SETTINGS.search(_text(path) or ""))
    for name in SETTINGS_NAMED_IN:
        for m in _SETTINGS_NAMED.finditer(_text(os.path.join(root, name)) or ""):
            path = where(m.group(1))
            if path and settings(path):
                return m.group(1)
    found = []
    walks = [(base, "")] + [(os.path.join(site, n), n) for n in sorted(names) if site and _NAME_RE.match(n)
                             and os.path.isdir(os.path.join(site, n))]
    for top, prefix in walks:
        for folder, dirs, files in os.walk(top):
            rel = os.path.relpath(folder, top).replace(os.sep, "/")
            parts = [] if rel == "." else rel.split("/")
            dirs[:] = sorted(d for d in dirs if _NAME_RE.match(d) and d not in _NO_SETTINGS_HERE) if len(parts) < 3 else []
            for f in files:
                if f in SETTINGS_FILES or (f == "settings.py" and parts and parts[-1] in SETTINGS_FOLDERS):
                    module = ".".join(([prefix] if prefix else []) + parts + [f[:-3]])
                    if settings(os.path.join(folder, f)):
                        found.append((len(parts), module))
    return min(found)[1] if found else None


# -- the plan ----------------------------------------------------------------------------------------------

def pytest_args(root, cwd, words):
    """The project's pytest words, for the farm: paths that exist inside the tree and the options
    that select tests (kept with their values); options that only shape reports or speed (coverage,
    xdist, colours) are left out. An option's value is never taken for a test path."""
    out, i = [], 0
    base = os.path.join(root, cwd) if cwd else root
    while i < len(words):
        w = words[i]
        i += 1
        if w.startswith("-"):
            name = w.split("=", 1)[0]
            if name in DROPPED_PYTEST_OPTIONS or name.startswith(("--cov", "--benchmark", "--hypothesis-show")):
                if DROPPED_PYTEST_OPTIONS.get(name) and "=" not in w and i < len(words):
                    i += 1
                continue
            if re.match(r"^-[vqrs]+\w*$", w) or w.startswith(("-r", "--tb=")):
                continue
            out.append(w)
            if (name in VALUE_OPTIONS or re.match(r"^-[kmpWo]$", name)) and "=" not in w and i < len(words):
                out.append(words[i])
                i += 1
            continue
        path = w.split("::", 1)[0]
        rel = inside_tree(base, path)
        if rel is not None and os.path.lexists(os.path.join(base, rel)):
            out.append(w)
        elif "--pyargs" in out and re.match(r"^[A-Za-z_][\w.]*$", w):
            out.append(w)  # a module name, for --pyargs
    return out


def plan_tests(root, names, version, implementation="cpython", scripts=True):
    """What the project runs, from its tree (see the module docstring), or None without a tree.
    A test script is planned (unless not `scripts`) when the tree has it, or when it is in a folder
    of the package's own (set aside: the stage step runs the installed copy's)."""
    if not root or not os.path.isdir(root):
        return None
    plan = tox_plan(root, version, implementation) or {}
    tox = plan.pop("tox", None)
    if not plan.get("how"):
        plan = nox_plan(root) or {}
    if not plan.get("how"):
        plan = cibuildwheel_plan(root) or {}
    if not plan.get("how"):
        plan = makefile_plan(root) or {}
    if plan.get("tool") == "script":  # a script the tree has (after the package's folder was set aside)
        cwd = inside_tree(root, plan.get("cwd") or ".") or "."
        base = root if cwd == "." else os.path.join(root, cwd)
        rel = inside_tree(base, plan["args"][0])
        if not (scripts and rel and (os.path.isfile(os.path.join(base, rel)) or rel.split("/")[0] in names)):
            plan = {}
    if plan.get("how"):
        cwd = inside_tree(root, plan.get("cwd") or ".") or "."
        cwd = "" if cwd == "." else cwd
        if not os.path.isdir(os.path.join(root, cwd)):
            cwd = ""
        if plan["tool"] == "script":
            args = [inside_tree(os.path.join(root, cwd) if cwd else root, plan["args"][0])]
        else:
            args = pytest_args(root, cwd, plan["args"]) if plan["tool"] == "pytest" else unittest_args(plan["args"])
        plan.update(cwd=cwd, args=args)
    else:
        config, _ = pytest_config(root)
        plan = {"how": "pytest with the project's configuration (%s)" % config if config else
                "pytest from the sdist's root", "tool": "pytest", "args": [], "cwd": ""}
        binding = None if config else maturin_binding(root)
        if binding:
            own = pytest_config(os.path.join(root, binding))[0]
            plan.update(how="pytest with the project's configuration (%s/%s), in the folder of its Python "
                            "binding" % (binding, own) if own else "pytest in the folder of its Python binding "
                            "(%s)" % binding, cwd=binding)
    plan["deps"] = test_dependencies(root, tox, plan.get("nox_installs"), plan.get("cibuildwheel"),
                                     plan.pop("installs_from", None))
    plan.pop("nox_installs", None)
    plan.pop("cibuildwheel", None)
    return plan


def unittest_args(words):
    """`python -m unittest` arguments the farm passes on: discover's -s/-p/-t, or test names."""
    out, i = [], 0
    while i < len(words):
        w = words[i]
        i += 1
        if w in ("-s", "--start-directory", "-p", "--pattern", "-t", "--top-level-directory") and i < len(words):
            out += [w, words[i]]
            i += 1
        elif w == "discover" or re.match(r"^[A-Za-z_][\w.]*$", w):
            out.append(w)
    return out


# -- test dependencies -------------------------------------------------------------------------------

def already_met(text, constraints, provided, markers):
    """Why the test requirement `text` needs no install, or None: its marker excludes this
    interpreter (`markers`, PEP 508 values), or the farm's own test instrument (pytest and what it
    needs: `provided`, {normalised name: version}, already on every test run's path) satisfies it
    and each of `constraints` (texts) on its name. So a project's unpinned `pytest` gets the farm's
    pytest, the newest the release could know. Requirements with extras are left to the installer."""
    from farm_runner._vendor.packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
    from farm_runner._vendor.packaging.requirements import InvalidRequirement, Requirement
    from farm_runner._vendor.packaging.utils import canonicalize_name

    def parse(t):
        try:
            return Requirement(t)
        except InvalidRequirement:
            return None

    req = parse(text)
    if req is None or req.url:
        return None
    if req.marker is not None:
        try:
            if not req.marker.evaluate(dict(markers, extra="")):
                return "not for this interpreter"
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            return None
    name = canonicalize_name(req.name)
    if req.extras or name not in provided:
        return None
    version = provided[name]
    for r in [req] + [c for c in map(parse, constraints) if c is not None and canonicalize_name(c.name) == name]:
        if r.url or not r.specifier.contains(version, prereleases=True):
            return None
    return "the farm's %s %s" % (req.name, version)


def plain_requirement(text):
    """Is this line a requirement the farm installs from its index: not an option, an editable, a
    path or a URL (the release comes from the index, never the tree)?"""
    return not text.startswith(("-", ".")) and "://" not in text and "/" not in text.split(";")[0].split("@")[0]


def requirement_lines(root, rel, source, depth=0, seen=None):
    """([requirement, source]..., [constraint, source]...) of a requirement file inside the tree,
    with its -r and -c includes; options, editables, paths and URLs are left out (the farm
    installs the release from the index, never the tree)."""
    seen = set() if seen is None else seen
    rel = inside_tree(root, rel)
    if rel is None or rel in seen or depth > MAX_INCLUDE_DEPTH:
        return [], []
    seen.add(rel)
    text = _text(os.path.join(root, rel))
    if text is None:
        return [], []
    reqs, cons = [], []
    here = os.path.dirname(rel)
    for line in text.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not line:
            continue
        m = re.match(r"^(-r|--requirement|-c|--constraint)[\s=]\s*(\S+)$", line)
        if m:
            r, c = requirement_lines(root, os.path.join(here, m.group(2)), source, depth + 1, seen)
            if m.group(1) in ("-c", "--constraint"):
                cons += r + c
            else:
                reqs += r
                cons += c
            continue
        if not plain_requirement(line):
            continue
        reqs.append([line.split(" --")[0].strip(), source])
    return reqs[:MAX_REQUIREMENTS], cons[:MAX_REQUIREMENTS]


def test_dependencies(root, tox=None, nox_installs=None, cibuildwheel=None, installs_from=None):
    """What the project installs for its tests: the tox env's deps and extras when a tox env was
    chosen, nox's installs, cibuildwheel's test-requires and test-extras, then the test extras, PEP 735 groups, pdm/hatch/poetry dev
    dependencies and test requirement files (dev ones when none is named for tests); uv.lock's
    versions as constraints (pins win)."""
    deps = {"extras": [], "requirements": [], "constraints": []}
    pyproject = load_toml(os.path.join(root, "pyproject.toml"))
    if tox:
        deps["extras"] += tox["extras"]
        for g in tox["groups"]:
            deps["requirements"] += group_lines(pyproject, g)
        for line in tox["deps"]:
            m = re.match(r"^(-r|-c)\s*(\S+)$", line)
            if m:
                r, c = requirement_lines(root, m.group(2), "tox deps %s %s" % (m.group(1), m.group(2)))
                if m.group(1) == "-r":
                    deps["requirements"] += r
                    deps["constraints"] += c
                else:
                    deps["constraints"] += r + c
            elif plain_requirement(line):
                deps["requirements"].append([line, "tox deps"])
    words = list(nox_installs or [])
    label = installs_from or "noxfile.py session.install"
    for i, word in enumerate(words):
        m = re.match(r"^\.\[([^\]]+)\]$", word)
        if m:
            deps["extras"] += [e.strip() for e in m.group(1).split(",")]
        elif word in ("-r", "--requirement", "-c", "--constraint") and i + 1 < len(words):
            r, c = requirement_lines(root, words[i + 1], "%s %s %s" % (label, word, words[i + 1]))
            deps["requirements" if word in ("-r", "--requirement") else "constraints"] += r
            deps["constraints"] += c
        elif plain_requirement(word) and (i == 0 or words[i - 1] not in ("-r", "--requirement", "-c", "--constraint")):
            deps["requirements"].append([word, label])
    if cibuildwheel:
        deps["extras"] += cibuildwheel["extras"]
        deps["requirements"] += [[r, "pyproject.toml [tool.cibuildwheel] test-requires"]
                                 for r in cibuildwheel["requires"] if plain_requirement(r)]
    if not tox:
        groups = pyproject.get("dependency-groups")
        groups = [g for g in groups if isinstance(g, str)] if isinstance(groups, dict) else []
        chosen = [g for g in groups if is_test_name(g)] or [g for g in groups if is_dev_name(g)]
        for g in chosen:
            deps["requirements"] += group_lines(pyproject, g)
        tool = pyproject.get("tool") if isinstance(pyproject.get("tool"), dict) else {}
        deps["requirements"] += _tool_dev_dependencies(tool)
        deps["requirements"] += [[r, "setup.py tests_require"] for r in setup_py_tests(root)["requires"]]
        files = [f for f in TEST_REQUIREMENT_FILES if _text(os.path.join(root, f)) is not None]
        files = files or [f for f in DEV_REQUIREMENT_FILES if _text(os.path.join(root, f)) is not None]
        for f in files:
            r, c = requirement_lines(root, f, f)
            deps["requirements"] += r
            deps["constraints"] += c
        deps["test_extras_wanted"] = True  # the host adds the release's test (or dev) extras
    deps["constraints"] += uv_lock_pins(root)
    deps["elsewhere"] = uv_sources_elsewhere(pyproject)
    return deps


def uv_sources_elsewhere(pyproject):
    """[[name, where]...] of the packages the project's uv takes from git, a URL or a path
    (`[tool.uv.sources]`): the farm installs the index's release instead, and says so."""
    tool = pyproject.get("tool") if isinstance(pyproject.get("tool"), dict) else {}
    uv = tool.get("uv") if isinstance(tool.get("uv"), dict) else {}
    sources = uv.get("sources") if isinstance(uv.get("sources"), dict) else {}
    out = []
    for name, source in sources.items():
        where = next((source[k] for k in ("git", "url", "path") if isinstance(source, dict)
                      and isinstance(source.get(k), str)), None)
        if isinstance(name, str) and where:
            out.append([name[:100], where[:200]])
    return out[:50]


def group_lines(pyproject, group, depth=0):
    """[[requirement, source]...] of a PEP 735 dependency group, its `include-group`s expanded;
    URLs and paths are left out (a git URL of one test tool must not cost all the others)."""
    groups = pyproject.get("dependency-groups")
    entries = groups.get(group) if isinstance(groups, dict) else None
    if not isinstance(entries, list) or depth > MAX_INCLUDE_DEPTH:
        return []
    out = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            out += group_lines(pyproject, entry["include-group"], depth + 1)
        elif isinstance(entry, str) and plain_requirement(entry):
            out.append([entry, "pyproject.toml [dependency-groups] %s" % group])
    return out[:MAX_REQUIREMENTS]


def _tool_dev_dependencies(tool):
    out = []
    pdm = tool.get("pdm") if isinstance(tool.get("pdm"), dict) else {}
    dev = pdm.get("dev-dependencies") if isinstance(pdm.get("dev-dependencies"), dict) else {}
    for group in [g for g in dev if is_test_name(g)] or [g for g in dev if is_dev_name(g)]:
        out += [[r, "[tool.pdm.dev-dependencies] %s" % group] for r in dev[group] or [] if isinstance(r, str)]
    hatch = tool.get("hatch") if isinstance(tool.get("hatch"), dict) else {}
    envs = hatch.get("envs") if isinstance(hatch.get("envs"), dict) else {}
    for name in [n for n in envs if is_test_name(n)] or [n for n in envs if n in ("default",) + DEV_EXTRAS]:
        env = envs[name] if isinstance(envs[name], dict) else {}
        for key in ("dependencies", "extra-dependencies"):
            out += [[r, "[tool.hatch.envs.%s] %s" % (name, key)] for r in env.get(key) or [] if isinstance(r, str)]
    poetry = tool.get("poetry") if isinstance(tool.get("poetry"), dict) else {}
    groups = poetry.get("group") if isinstance(poetry.get("group"), dict) else {}
    for name in [n for n in groups if is_test_name(n)] or [n for n in groups if is_dev_name(n)]:
        table = groups[name].get("dependencies") if isinstance(groups[name], dict) else None
        if isinstance(table, dict):
            out += [[n, "[tool.poetry.group.%s]" % name] for n in table if isinstance(n, str) and n != "python"]
    return [r for r in out if not r[0].startswith(("-", "."))]


def uv_lock_pins(root):
    """[["name==version", "uv.lock"]...] for the registry packages uv.lock pins."""
    data = load_toml(os.path.join(root, "uv.lock"))
    versions = {}
    for package in data.get("package") or []:
        if not isinstance(package, dict):
            continue
        name, version, source = package.get("name"), package.get("version"), package.get("source")
        if isinstance(name, str) and isinstance(version, str) and isinstance(source, dict) and "registry" in source:
            versions.setdefault(name, set()).add(version)
    # A package locked at several versions (one per Python range) is left to the resolver.
    return [["%s==%s" % (n, next(iter(v))), "uv.lock"] for n, v in sorted(versions.items()) if len(v) == 1][:5000]
