"""The test phase's preparation, inside the sandbox: unpack the sdist, set the package's own import
packages aside in it (so `import pkg` finds the installed copy while conftest.py, data files and
requirement files stay where the tests expect them), and work out the project's own test command
and test dependencies (discover.py)."""
import fnmatch
import json
import os
import posixpath
import re
import sys

from farm_runner.inside import discover, environment, imports
from farm_runner.inside.unpack import Refused, unpack

MAX_WALK = 20000  # entries looked at when asking "does this tree hold tests at all?"


def stage(request):
    """request: {"package", "sdist", "src", "site_packages", "max_bytes", "python_version",
    "implementation"} (paths as the sandbox sees them). Returns {"dists", "me", "plan", "src"}, with
    "refused" (a sentence) in place of the plan when the sdist cannot be unpacked, and no plan when
    the package is not installed. The environment is listed as the install left it."""
    site = request["site_packages"]
    dists = environment.distributions(site)
    me = environment.installed(site, request["package"])
    names = next((environment.import_names(d["record"]) for d in dists if d["dist_info"] == me), [])
    result = {"dists": dists, "me": me}
    if me is None:
        return result
    clear(request["src"])  # the install's code may have put something there first
    root = None
    if request.get("sdist"):
        try:
            root = unpack(request["sdist"], request["src"], request["max_bytes"])
        except Refused as exc:
            return dict(result, refused="the sdist %s cannot be unpacked: %s" % (
                os.path.basename(request["sdist"]), exc))
    own = next(d for d in dists if d["dist_info"] == me)
    result["own_files"] = own_files(site, own["record"])
    if root:
        result["shipped"] = shipped_paths(root)
    version = tuple(request.get("python_version") or sys.version_info[:2])
    plan = plan_run(root, names, site, version, request.get("implementation") or "cpython")
    if plan and root and plan.get("cwd") is not None and version >= (3, 0):
        # (Python 2's standard library has other names than this Python's: left to the first run.)
        plan["unmet_imports"] = imports.unmet_imports(root, plan["cwd"], plan["args"], site,
                                                      request.get("tools_names") or [])
    return dict(result, plan=plan, src=root)


def own_files(site, record):
    """The files in the release's own folders of site-packages (those its RECORD puts files in) as
    the install left them, before any test ran: what the uninstall audit tells from what the tests
    wrote there (kubernetes's tests make `kubernetes/tmp_file_path_test/` in the installed copy).
    Site-relative; None past MAX_WALK entries."""
    tops = sorted({p.split("/", 1)[0] for p in record if "/" in p and not p.startswith("..")
                   and not p.split("/", 1)[0].endswith((".dist-info", ".egg-info", ".data"))})
    out = []
    for top in tops:
        files, complete = environment.list_files(os.path.join(site, top), MAX_WALK - len(out))
        if not complete:
            return None
        out += [top + "/" + f for f in files]
    return out


def shipped_paths(root):
    """The sdist's files and folders as unpacked, relative to its top folder, listed before anything
    of the package's runs in this command (the runner's evidence of what the sdist does not ship);
    None past MAX_WALK entries."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        rel = os.path.relpath(folder, root)
        out += [n if rel == "." else rel + "/" + n for n in dirs + files]
        if len(out) > MAX_WALK:
            return None
    return out


def plan_run(root, names, site, version, implementation):
    """The plan (discover.py) with the tree made ready, or None when there are no tests at all."""
    pyargs = []
    if root:
        set_aside, pyargs, linked = set_aside_packages(root, names, site)
        plan = discover.plan_tests(root, names, version, implementation)
        if plan["tool"] == "script":
            plan["args"] = installed_script(plan["args"], root, plan["cwd"], names, site)
            if not plan["args"]:
                plan = discover.plan_tests(root, names, version, implementation, scripts=False)
        plan["set_aside"], plan["linked"] = set_aside, linked
        if plan["tool"] == "pytest":
            plan["args"] = translate_paths(plan["args"], root, plan["cwd"], names, site)
            if not plan["args"] and pyargs and not configured_testpaths(root):
                plan["args"] = ["--pyargs"] + pyargs + ["."]
            elif not plan["args"] and plan.get("cwd") == "":
                plan["args"] = set_aside_testpaths(root, names, site)
            plan["args"] = plan["args"] + nose_style_modules(plan["args"], root, plan["cwd"], site)
        plan["fallback"] = unittest_fallback(root, plan["cwd"], names) if plan["tool"] == "pytest" else []
        if plan["tool"] == "pytest":  # for when its tests stop for want of Django's settings
            plan["django_settings"] = discover.django_settings(root, plan["cwd"], site, names)
        if has_tests(root) or "--pyargs" in plan["args"] or plan["tool"] == "script":
            # for when none of the tree's tests can run as the sdist ships them (ihm's test/ lacks
            # its utils.py; the installed ihm/test.py runs)
            plan["installed"] = installed_tests(names, site) if "--pyargs" not in plan["args"] else []
            return plan
    installed = installed_tests(names, site)
    if installed:
        return {"how": "tests inside the installed package", "tool": "pytest", "args": ["--pyargs"] + installed,
                "cwd": None, "deps": discover.test_dependencies(root) if root else {}, "set_aside": []}
    doctests = doctests_configured(root, names, site) if root else []
    if doctests:
        # the project's tests are its modules' doctests (addopts --doctest-modules): the installed
        # copy's, with the project's configuration (pytest-alembic's 28)
        config = discover.pytest_config(root)[0]
        return {"how": "pytest with the project's configuration (%s): the installed package's doctests"
                % config, "tool": "pytest", "args": ["-c", config, "--rootdir", "."] + doctests, "cwd": "",
                "deps": discover.test_dependencies(root), "set_aside": [], "fallback": [], "installed": []}
    return None


def doctests_configured(root, names, site):
    """The installed package's folders (or modules), when the project's pytest configuration
    collects doctests (`--doctest-modules` in its addopts); else []."""
    _, options = discover.pytest_config(root)
    if "--doctest-modules" not in discover.config_words(options.get("addopts")):
        return []
    out = []
    for name in names:
        if name in discover.NOT_THE_PACKAGE:
            continue
        for path in (os.path.join(site, name), os.path.join(site, name + ".py")):
            if os.path.exists(path) and not os.path.islink(path):
                out.append(path)
    return out[:10]


def set_aside_packages(root, names, site):
    """Take the package's own import packages out of the tree (at its root and under src/). A test
    folder inside one is kept only when the installed copy lacks it (tests the sdist alone holds);
    those the installed copy has run from it (--pyargs). Otherwise the place is taken by a link to
    the installed copy, for tests that use the package by path (`python pkg/__init__.py`, a data file
    read as `pkg/data.json`): they get the installed files, as `import pkg` does; files no import
    reaches that the installed copy lacks (a Cython .pxd, C sources) stay beside links to the
    installed entries. Returns (what was set aside, modules to run with --pyargs, what was linked)."""
    removed, pyargs, linked = [], [], []
    names = [n for n in names if n not in discover.NOT_THE_PACKAGE]
    _, options = discover.pytest_config(root)
    extra = [b.strip("./") for b in discover.config_words(options.get("pythonpath")) if b.strip("./")]
    for base in dict.fromkeys(["", "src"] + [b for b in extra if discover.inside_tree(root, b)]):
        folder = os.path.join(root, base) if base else root
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            rel = (base + "/" + entry) if base else entry
            stem = entry.split(".", 1)[0]
            if stem not in names:
                continue
            if os.path.islink(path) or os.path.isfile(path):
                if entry.endswith((".py", ".so", ".pyd")) or os.path.islink(path):
                    os.unlink(path)
                    removed.append(rel)
                    if _link_installed(site, entry, path):
                        linked.append(rel)
                continue
            if entry != stem or not os.path.isdir(path):
                continue
            keep = []
            own_pyargs = []
            for sub in sorted(os.listdir(path)):
                if sub in discover.TEST_DIRS and os.path.isdir(os.path.join(path, sub)) and \
                        not os.path.islink(os.path.join(path, sub)) and holds_test_files(os.path.join(path, sub)):
                    if os.path.isdir(os.path.join(site, entry, sub)):
                        own_pyargs.append("%s.%s" % (entry, sub))
                    else:
                        keep.append(sub)
            pyargs += [pyargs_or_path(site, m) for m in own_pyargs]
            installed = os.path.join(site, entry)
            if not keep and not own_pyargs and os.path.isdir(installed) and not os.path.islink(installed) \
                    and _tree_only_files(path, installed):
                # Files no import reaches that the wheel leaves out (chardet's test reads its Cython
                # .pxd beside the module): the folder becomes the installed copy plus those files.
                _overlay(path, installed)
                removed.append(rel + "/")
                linked.append(rel)
                continue
            for sub in os.listdir(path):
                if sub not in keep:
                    clear(os.path.join(path, sub))
            if keep:
                # The tests the sdist alone holds import the package relatively (`from .. import x`):
                # an empty __init__.py keeps them a subpackage, and the probe plugin imports the
                # installed package first and lends it this folder, so `pkg.tests` is found here.
                from farm_runner.inside.pytest_plugin._farm_probe import TREE_STUB  # (rare: imported here)

                with open(os.path.join(path, "__init__.py"), "w") as fh:
                    fh.write(TREE_STUB)
            elif not own_pyargs and base == "src" and "src" not in extra and os.path.isdir(installed) \
                    and not os.path.islink(installed):
                # Under src/, which no import goes through: a folder of links to the installed
                # entries, not one link to the installed folder, so that a path the tests build
                # through it (`src/cffi/../c/parse_c_type.c`, cffi's) goes on in the tree. (Where
                # imports go through the place, one link: what the package writes beside itself
                # lands in the installed copy, where the uninstall audit sees it.)
                _overlay(path, installed)
                linked.append(rel)
            else:
                os.rmdir(path)
                # (not when tests run with --pyargs: through a link they would be collected twice)
                if not own_pyargs and _link_installed(site, entry, path):
                    linked.append(rel)
            removed.append(rel + "/")
    return removed, sorted(set(pyargs)), linked


IMPORTABLE = (".py", ".pyc", ".pyo", ".so", ".pyd")


def _tree_only_files(path, installed):
    """Does the tree's package folder hold a file (not a link) that no import reaches and the
    installed copy lacks? Looked at up to MAX_WALK entries."""
    seen = 0
    for here, dirs, files in os.walk(path):
        rel = os.path.relpath(here, path)
        for name in files:
            seen += 1
            if seen > MAX_WALK:
                return False
            if not name.endswith(IMPORTABLE) and not os.path.islink(os.path.join(here, name)) and \
                    not os.path.lexists(os.path.join(installed, rel, name)):
                return True
    return False


def _overlay(path, installed):
    """PATH keeps its files that no import reaches and INSTALLED lacks; every other entry is a link
    to the installed one (a module, so `python pkg/__init__.py` runs the installed copy). INSTALLED
    None: a folder the installed copy lacks, whose importable files go."""
    for name in os.listdir(path):
        mine = os.path.join(path, name)
        theirs = os.path.join(installed, name) if installed else None
        if os.path.islink(mine):
            os.unlink(mine)
        elif os.path.isdir(mine):
            both = theirs and os.path.isdir(theirs) and not os.path.islink(theirs)
            _overlay(mine, theirs if both else None)
            if not os.listdir(mine):
                os.rmdir(mine)
        elif name.endswith(IMPORTABLE) or (theirs and os.path.lexists(theirs)):
            os.unlink(mine)
    if installed:
        for name in os.listdir(installed):
            if not os.path.lexists(os.path.join(path, name)):
                os.symlink(os.path.join(installed, name), os.path.join(path, name))


def translate_paths(args, root, cwd, names, site):
    """Test paths inside a package set aside become its installed modules (--pyargs)."""
    out, modules = [], []
    for word in args:
        aside, module = _set_aside_module(word, root, cwd, names, site)
        if module:
            modules.append(module)
        elif not aside:
            out.append(word)
    if modules:
        return ["--pyargs"] + modules + out
    return out


def _set_aside_module(word, root, cwd, names, site):
    """A test path (run from CWD): is it in a package set aside, gone from the tree? And its
    installed module, for --pyargs (None when the installed copy lacks it)."""
    path = word.split("::", 1)[0]
    parts = [p for p in ((cwd + "/" if cwd else "") + path).split("/") if p not in ("", ".")]
    if parts and parts[0] == "src":
        parts = parts[1:]
    if word.startswith("-") or not parts or parts[0] not in names or ".." in parts or \
            os.path.lexists(os.path.join(root, cwd or "", path)):
        return False, None
    if not os.path.exists(os.path.join(site, *parts)):
        return True, None
    if parts[-1].endswith(".py") or os.path.isfile(os.path.join(site, *parts)):
        return True, ".".join(p[:-3] if p.endswith(".py") else p for p in parts)
    # a folder: by name where it is a regular package all the way down, else by its installed path
    # (dau-core's testpaths `dau_core/tests` has no __init__.py: `--pyargs dau_core.tests` finds nothing)
    return True, pyargs_or_path(site, ".".join(parts))


def unittest_fallback(root, cwd, names=()):
    """unittest's arguments for a tree where pytest collects nothing (tests named `test*.py`,
    `tests/test.py`): setup.py's test_suite when the tree has its top module (what `setup.py
    test` ran), else discovery in its test folder, or in the run's folder."""
    base = os.path.join(root, cwd) if cwd else root
    suite = discover.setup_py_tests(root)["suite"]
    top = suite.split(".")[0] if suite else None
    if top and not cwd and (top in names or os.path.isdir(os.path.join(root, top))
                            or os.path.isfile(os.path.join(root, top + ".py"))):  # (the release's own: installed)
        return [suite]
    for name in discover.TEST_DIRS:
        folder = os.path.join(base, name)
        if os.path.isdir(folder) and not os.path.islink(folder):
            if os.path.isfile(os.path.join(folder, "__init__.py")):
                return ["discover", "-s", name, "-t", "."]
            return ["discover", "-s", name]
    return ["discover"]


def _link_installed(site, entry, path):
    """PATH (emptied) becomes a link to the installed ENTRY, when the install has one."""
    target = os.path.join(site, entry)
    if os.path.lexists(target) and not os.path.islink(target):
        os.symlink(target, path)
        return True
    return False


def set_aside_testpaths(root, names, site):
    """The pytest configuration's `testpaths` when they name a package set aside (toolz's
    `testpaths = ["toolz"]`): its installed modules (--pyargs) and the paths the tree still has,
    to run from the configuration's folder so that its options apply; [] when none was set aside."""
    _, options = discover.pytest_config(root)
    modules, paths = [], []
    for word in discover.config_words(options.get("testpaths")):
        module = _set_aside_module(word, root, "", names, site)[1]
        if module:
            modules.append(module)
        else:
            paths.append(word)
    return ["--pyargs"] + modules + paths if modules else []


_NOSE = re.compile(r"^\s*(?:import nose\b|from nose\b)", re.M)


def _nose_files(folder, limit=200):
    """The files of `folder` (not below) that nose collects and pytest does not (`testbasetypes.py`:
    nose takes any `test*` module, pytest only `test_*.py` and `*_test.py`), when one imports nose."""
    try:
        names = sorted(n for n in os.listdir(folder) if fnmatch.fnmatch(n, "test*.py")
                       and not fnmatch.fnmatch(n, "test_*.py") and not fnmatch.fnmatch(n, "*_test.py"))[:limit]
    except OSError:
        return []
    texts = [discover._text(os.path.join(folder, n)) or "" for n in names]
    return names if any(_NOSE.search(t) for t in texts) else []


def nose_style_modules(args, root, cwd, site):
    """What to add to the pytest run of a nose-era suite (hdf5able's `hdf5able/test/testbasetypes.py`
    and the like, `from nose.tools import raises`): those modules, named (--pyargs) or by path. pytest
    collects a module it is given whatever its name. The run's own places stay (".", when it had none)."""
    extra = []
    if "--pyargs" in args:
        for module in args[args.index("--pyargs") + 1:]:
            if re.match(r"^[A-Za-z_][\w.]*$", module):
                folder = os.path.join(site, *module.split("."))
                extra += ["%s.%s" % (module, n[:-3]) for n in _nose_files(folder)]
        return extra
    base = os.path.join(root, cwd) if cwd else root
    folders = [a for a in args if not a.startswith("-") and os.path.isdir(os.path.join(base, a))] or \
        [d for d in discover.TEST_DIRS if os.path.isdir(os.path.join(base, d))]
    for folder in folders:
        if not os.path.islink(os.path.join(base, folder)):
            extra += [posixpath.join(folder, n) for n in _nose_files(os.path.join(base, folder))]
    return extra + (["."] if extra and not [a for a in args if not a.startswith("-")] else [])


def configured_testpaths(root):
    _, options = discover.pytest_config(root)
    return bool(discover.config_words(options.get("testpaths")))


def is_test_file(name):
    return fnmatch.fnmatch(name, "test*.py") or fnmatch.fnmatch(name, "*_test.py") or \
        fnmatch.fnmatch(name, "*_tests.py")


def has_tests(root):
    """Does the tree hold a test file anywhere (bounded walk, links not followed)?"""
    seen = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d))]
        seen += len(dirs) + len(files)
        if any(is_test_file(f) for f in files):
            return True
        if seen > MAX_WALK:
            return False
    return False


def installed_script(args, root, cwd, names, site):
    """[path] of the project's test script: the tree's, or the installed copy's where it lies in
    the package's own folder, set aside (dill's `dill/tests/__main__.py`); [] when neither has it."""
    rel = args[0]
    if os.path.isfile(os.path.join(root, cwd, rel)) and not os.path.islink(os.path.join(root, cwd, rel)):
        return [rel]
    installed = os.path.join(site, rel)
    if rel.split("/")[0] in names and os.path.isfile(installed) and not os.path.islink(installed):
        return [installed]
    return []


def installed_tests(names, site):
    """Modules of the installed package that hold tests, for --pyargs."""
    for name in names:
        pkg = os.path.join(site, name)
        if not os.path.isdir(pkg) or os.path.islink(pkg):
            continue
        for d in discover.TEST_DIRS:
            # a package of tests, not one of testing helpers offered to users (headroom.testing)
            if os.path.isfile(os.path.join(pkg, d, "__init__.py")) and holds_test_files(os.path.join(pkg, d)):
                return [pyargs_or_path(site, "%s.%s" % (name, d))]
        # a module of unittest tests beside the package's own (radar's radar/test.py, run as
        # `python -m unittest radar.test`): pytest collects a module it is given by name
        for module in ("test", "tests"):
            if os.path.isfile(os.path.join(pkg, module + ".py")) and os.path.isfile(os.path.join(pkg, "__init__.py")):
                return ["%s.%s" % (name, module)]
        for _root, _dirs, files in os.walk(pkg):
            if any(fnmatch.fnmatch(f, "test_*.py") or fnmatch.fnmatch(f, "*_test.py") for f in files):
                return [pyargs_or_path(site, name)]
    return []


def holds_test_files(folder):
    """Does `folder` hold a test module anywhere (is_test_file's names: test_*.py, acceptance_tests.py;
    not a `testing*` helper)?"""
    seen = 0
    for _root, dirs, files in os.walk(folder):
        seen += len(files) + len(dirs)
        if seen > MAX_WALK:
            return True
        if any(is_test_file(f) and not f.startswith("testing") for f in files):
            return True
    return False


def pyargs_or_path(site, module):
    """What --pyargs is given for an installed module: its name when it is a regular package all
    the way down; else its installed folder. pytest cannot find a namespace package (no
    __init__.py) by name: `--pyargs chip` was a usage error, the farm's, not the package's."""
    parts = module.split(".")
    if all(os.path.isfile(os.path.join(site, *parts[:i + 1], "__init__.py")) for i in range(len(parts))):
        return module
    return os.path.join(site, *parts)


def test_command(python, plan, out, run_dir, pytest_version=None):
    """The test run: the package's interpreter and the project's own command, with the farm's
    probe plugin and JUnit XML in OUT. (argv, cwd). One definition for the supervisor and for
    `run_tests` below. `pytest_version`: the farm's pytest, whose options the command keeps to
    (pytest 2.4, a 2013 release's, knows neither `-p no:cacheprovider` nor `-o`)."""
    cwd = run_dir if plan.get("cwd") is None else plan["root"] + ("/" + plan["cwd"] if plan["cwd"] else "")
    if plan["tool"] == "unittest":
        return [python, "-m", "_farm_unittest", out + "/unittest.json"] + list(plan["args"]), cwd
    if plan["tool"] == "script":  # the project's own test script: its exit status is the verdict
        return [python] + list(plan["args"]), cwd
    version = tuple(int(p) for p in re.findall(r"\d+", str(pytest_version or "99"))[:2])
    # The cache in the run's own folder, never the tree; the plugin stays for the options it
    # brings (pytest-alembic's addopts `--ff`: "unrecognized arguments" without it).
    cache = ["-o", "cache_dir=" + out + "/pytest-cache"] if version >= (3, 2) else \
        ["-p", "no:cacheprovider"] if version >= (2, 8) else []
    return ([python, "-m", "pytest", "-p", "_farm_probe"] + cache
            + ["--junitxml", out + "/junit.xml"] + (["-o", "junit_family=xunit2"] if version >= (4, 2) else [])
            + list(plan["args"])), cwd


def needs_dependencies(result, request):
    """Are test dependencies to install before the tests run? Not those already met
    (discover.already_met: the farm's pytest tools, a marker for another interpreter)."""
    plan = result.get("plan") or {}
    deps = plan.get("deps") or {}
    me = next((d for d in result["dists"] if d["dist_info"] == result["me"]), None)
    extras = (me or {}).get("extras") or []
    constraints = [c for c, _ in deps.get("constraints") or []]
    provided, markers = request.get("provided") or {}, request.get("markers") or {}
    wanted = [r for r, _ in deps.get("requirements") or [] if not discover.already_met(r, constraints, provided, markers)]
    return bool(deps.get("extras") or wanted or plan.get("unmet_imports")
                or (deps.get("test_extras_wanted") and any(
                    discover.is_test_name(e) or discover.is_dev_name(e) for e in extras)))


def run_tests(request, result, write_answer):
    """When the tests are planned and nothing is to install first, become the test run (exec): the
    supervisor then sees the test command's own exit status as this command's. The answer goes
    first, saying so, and the pipe is closed: nothing of the package's can speak for the runner."""
    test, plan = request.get("test"), result.get("plan")
    if not test or not plan or needs_dependencies(result, request) or not os.access(test["python"], os.X_OK):
        return write_answer(result)
    plan = dict(plan, root=result.get("src"))
    command, cwd = test_command(test["python"], plan, test["out"], request["run"],
                                (request.get("provided") or {}).get("pytest"))
    me = next(d for d in result["dists"] if d["dist_info"] == result["me"])
    env = dict(os.environ, **test["env"])
    env["FARM_IMPORT_NAMES"] = json.dumps([n for n in environment.import_names(me["record"])
                                           if n not in discover.NOT_THE_PACKAGE])
    write_answer(dict(result, ran_tests=True))
    sys.stdout.write("tests: %s\n$ %s\n" % (plan["how"], " ".join(command)))
    sys.stdout.flush()
    if not os.path.isdir(cwd):
        os.makedirs(cwd)
    os.chdir(cwd)
    os.execve(command[0], command, env)


def clear(path):
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
