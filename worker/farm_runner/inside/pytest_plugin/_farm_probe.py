"""Loaded into the package's own test run (`-p _farm_probe`, from LIB/farm_runner/inside/pytest_plugin).
It runs in the package's interpreter, any version the farm serves, so it keeps to what every
Python has. It:

- records where the package under test was imported from, and each failed test with its one-line error;
- records which tests tried to reach the network: a connection to an address that is not
  loopback, a host name looked up (never the sandbox's own name), or a program started that
  fetches (an installer's `install`, git's `clone`/`fetch`/`pull` of a URL); the sandbox has no
  network, so such a test fails for the farm's reasons, not the package's. What a test did is
  observed here, as it happens, never read from the text of its failure;
- records the programs a test started that were not found on PATH (the runner checks the worker lacks them),
  and its connections refused by a loopback port below the ephemeral range that this process never
  bound, from a test that started no program, process or thread (a service it lacks: a database server);
  a fixture that failed so is charged the same to every test that meets its cached failure;
- records the tests whose exception came from Django's settings module while no settings were made;
- records the tests that read an environment variable named as a credential (an API key, a token, a
  password) that was not set, and then failed with an error raised (not an assertion of theirs):
  a service account the project's CI has and the farm never gives;
- writes each test's start and result as it goes (FARM_PROGRESS), and leaves out the tests a first
  part of the run finished (FARM_DONE): a suite longer than its time limit, or one whose test hung,
  runs on in a second part;
- leaves out a module-level `test_main()` that runs a unittest module's tests (old suites' runner);
- reports a test module that exits at import (a script named test_*.py ending in `sys.exit()`) as
  what it is, skipped when it exits 0 and failed otherwise, instead of pytest's internal error that
  ends the whole run;
- accepts the options of reporting-only plugins the farm does not install (coverage, xdist,
  timeouts, style checkers), so that a project's `addopts = --cov` is not a usage error, and the
  configuration options of plugins the run does not load.

What it writes is the package's to forge; the host only shows it and checks it.
"""
import atexit
import errno
import importlib
import json
import os
import re
import socket
import sys
import warnings

try:
    from importlib.util import find_spec
except ImportError:  # Python 2.7
    from pkgutil import find_loader as find_spec

MAX_TESTS = 200  # tests recorded as needing the network
MAX_FAILURES = 200
_current = {"test": None}
_network = {}
_programs = {}
_services = {}
_unconfigured = {}  # test -> the framework whose settings were never made (Django's)
_not_found = {}  # test -> paths its FileNotFoundError was about, where its message names none
_read_unset = {}  # test -> credential variables it read that were not set
_credentials = {}  # test -> those, when it then failed with an error raised
_asserted = set()  # tests that failed on an assertion or a pytest.fail of their own
# An environment variable's name that says it holds a credential: MAILOSAUR_API_KEY, GITHUB_TOKEN.
CREDENTIAL = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)(_|$)")
_bound = set()  # ports this process's sockets bound or tried to: a refused connection to one is no missing service
_spawned = set()  # tests that started a program, a process or a thread: a server of their own may have died
# A non-blocking connection under way (asyncio's, trio's): its loopback address, by socket, until
# the loop asks the socket how it ended (SO_ERROR), where a refusal is seen.
_pending = {}
MAX_PENDING = 1000
EPHEMERAL = 32768  # Linux's first ephemeral port: a port from here on is a server's of the moment, no service's
_failures = []


def _own_names():
    """The sandbox's own host name and the names its /etc/hosts gives: looked up on this machine."""
    names = set()
    try:
        names.add(socket.gethostname().lower())
        with open("/etc/hosts") as fh:
            for line in fh:
                names.update(w.lower() for w in line.split("#", 1)[0].split()[1:])
    except Exception:
        pass
    return names


_OWN = _own_names()


def _loopback(host):
    if host is None:
        return True
    host = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    host = host.strip("[]").lower()
    return host in ("", "localhost", "localhost.localdomain", "ip6-localhost", "::1", "0.0.0.0", "::") or \
        host.startswith("127.") or host.startswith("::ffff:127.") or host.endswith(".localhost") or host in _OWN


def _numeric(host):
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, str(host).strip("[]"))
            return True
        except (socket.error, OSError, ValueError, TypeError):  # socket.error: Python 2.7
            continue
    return False


def _note(what):
    test = _current["test"] or "(collection)"
    if test in _network or len(_network) < MAX_TESTS:
        _network.setdefault(test, [])
        if len(_network[test]) < 5 and what not in _network[test]:
            _network[test].append(what)


def _inet(sock, address):
    return sock.family in (socket.AF_INET, getattr(socket, "AF_INET6", None)) and isinstance(address, tuple)


def _note_service(address):
    """A connection to a loopback port that nothing listens on, and that no socket of this process
    had bound: a service (a database server, a broker) the project's CI runs and the sandbox has not."""
    try:
        test = _current["test"] or "(collection)"
        if int(address[1]) in _bound or int(address[1]) >= EPHEMERAL or test in _spawned:
            return
        if test in _services or len(_services) < MAX_TESTS:
            where = "%s:%d" % (str(address[0])[:60], int(address[1]))
            if len(_services.setdefault(test, [])) < 5 and where not in _services[test]:
                _services[test].append(where)
    except Exception:
        pass


_NO_DAEMON = (errno.ENOENT, errno.ECONNREFUSED)


def _note_daemon(sock, path):
    """A Unix socket at an absolute path that is not there or not served: a daemon's, perhaps
    (Docker's /var/run/docker.sock); the runner keeps those it knows a daemon's, which the sandbox
    never gives, so no process of the test's own could have died serving it."""
    try:
        if getattr(socket, "AF_UNIX", None) is None or (sock is not None and sock.family != socket.AF_UNIX):
            return
        path = path.decode("utf-8", "replace") if isinstance(path, bytes) else path
        if not (isinstance(path, str) and path.startswith("/") and len(path) < 120):
            return
        test = _current["test"] or "(collection)"
        if test in _services or len(_services) < MAX_TESTS:
            where = "unix:" + path  # excuses.UNIX (this plugin imports nothing of the runner's)
            if len(_services.setdefault(test, [])) < 5 and where not in _services[test]:
                _services[test].append(where)
    except Exception:
        pass


_native = {"offset": 0}


def drain_native():
    """What native code of the running test looked up and connected to (inside/netwatch.c, through
    FARM_NATIVE_NET), noted as the test's, by the same rules as Python's own sockets."""
    path = os.environ.get("FARM_NATIVE_NET")
    if not path:
        return
    try:
        with open(path, "rb") as fh:
            fh.seek(_native["offset"])
            data = fh.read(1 << 20)
    except (IOError, OSError):
        return
    end = data.rfind(b"\n") + 1
    _native["offset"] += end
    for line in data[:end].decode("utf-8", "replace").splitlines():
        kind, _, what = line.partition(" ")
        try:
            if kind == "lookup" and not _loopback(what) and not _numeric(what):
                _note("lookup %s" % what)
            elif kind == "connect" and what.endswith(":53"):
                _note("a name lookup (DNS query to %s)" % what)  # even to loopback: no test serves port 53 here
            elif kind == "connect" and not _loopback(what.rsplit(":", 1)[0]):
                _note("connect %s" % what)
            elif kind == "unix":
                _note_daemon(None, what)
        except Exception:
            pass


def switch(test):
    """The running test is now `test`: what native code did until now was the previous one's."""
    drain_native()
    _current["test"] = test


def _wrap_connect(original, returns_code=False):
    def connect(self, address, *args, **kwargs):
        try:
            if _inet(self, address) and not _loopback(address[0]):
                _note("connect %s:%s" % (address[0], address[1]))
        except Exception:
            pass
        try:
            result = original(self, address, *args, **kwargs)
        except socket.error as exc:  # (socket.error: OSError's name on Python 2.7 too)
            if getattr(exc, "errno", None) == errno.ECONNREFUSED and _inet(self, address) and _loopback(address[0]):
                _note_service(address)
            elif getattr(exc, "errno", None) in _UNDER_WAY:
                _connecting(self, address)
            elif getattr(exc, "errno", None) in _NO_DAEMON:
                _note_daemon(self, address)
            raise
        if returns_code and result == errno.ECONNREFUSED and _inet(self, address) and _loopback(address[0]):
            _note_service(address)
        elif returns_code and result in _UNDER_WAY:
            _connecting(self, address)
        elif returns_code and result in _NO_DAEMON:
            _note_daemon(self, address)
        return result
    return connect


_UNDER_WAY = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


def _connecting(sock, address):
    try:
        if _inet(sock, address) and _loopback(address[0]):
            if len(_pending) >= MAX_PENDING:
                _pending.clear()
            _pending[id(sock)] = address
    except Exception:
        pass


def _wrap_getsockopt(original):
    """How a non-blocking connection ended (asyncio asks SO_ERROR): refused by a loopback port is
    noted as a blocking connect's refusal is."""
    def getsockopt(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        try:
            if _pending and args[:2] == (socket.SOL_SOCKET, socket.SO_ERROR) and len(args) == 2:
                address = _pending.pop(id(self), None)
                if address is not None and result == errno.ECONNREFUSED:
                    _note_service(address)
        except Exception:
            pass
        return result
    return getsockopt


def _wrap_bind(original):
    def bind(self, address, *args, **kwargs):
        try:
            if _inet(self, address) and int(address[1]):
                _bound.add(int(address[1]))  # tried, whether or not it works
        except Exception:
            pass
        result = original(self, address, *args, **kwargs)
        try:
            if _inet(self, address):
                _bound.add(int(self.getsockname()[1]))
        except Exception:
            pass
        return result
    return bind


def _wrap_lookup(original):
    def lookup(host, *args, **kwargs):
        try:
            if not _loopback(host) and not _numeric(host):
                _note("lookup %s" % (host.decode("ascii", "replace") if isinstance(host, bytes) else host))
        except Exception:
            pass
        return original(host, *args, **kwargs)
    return lookup


_INSTALLERS = ("pip", "pip3", "uv")
_FETCHES = ("clone", "fetch", "pull", "submodule")


def _fetches(argv):
    """What a program a test starts fetches from the network, or None: an installer's install
    (`pip install`, `python -m pip install`, `uv pip install`), git fetching a URL."""
    words = [w.decode("utf-8", "replace") if isinstance(w, bytes) else str(w) for w in argv][:50]
    names = [os.path.basename(w) for w in words]
    for i, name in enumerate(names):
        if name in _INSTALLERS and "install" in words[i + 1:i + 3]:
            return "%s install (the index, from a subprocess)" % ("uv pip" if name == "uv" else "pip")
        if name == "git" and any(w in _FETCHES for w in words[i + 1:i + 4]):
            urls = [w for w in words[i + 1:] if "://" in w or w.startswith("git@")]
            verb = next(w for w in words[i + 1:i + 4] if w in _FETCHES)
            return "git %s %s (from a subprocess)" % (verb, urls[0][:200] if urls else "(no URL)")
    return None


def _note_program(name):
    test = _current["test"] or "(collection)"
    if test in _programs or len(_programs) < MAX_TESTS:
        names = _programs.setdefault(test, [])
        if len(names) < 5 and name not in names:
            names.append(name)


def _wrap_popen(original):
    def __init__(self, args, *rest, **kwargs):
        argv, shell = [], False
        try:
            argv = [args] if isinstance(args, (str, bytes)) else list(args)
            shell = bool(kwargs.get("shell") or (rest and len(rest) > 7 and rest[7]))
            if shell:
                argv = " ".join(str(a) for a in argv).split()
            what = _fetches(argv)
            if what:
                _note(what)
        except Exception:
            pass
        _note_spawn()
        try:
            return original(self, args, *rest, **kwargs)
        except OSError as exc:
            # A program looked up on PATH and not found: the runner checks that the worker lacks it.
            try:
                name = argv[0].decode("utf-8", "replace") if isinstance(argv[0], bytes) else str(argv[0])
                if exc.errno == errno.ENOENT and not shell and "/" not in name and not kwargs.get("executable"):
                    _note_program(name[:100])
            except Exception:
                pass
            raise
    return __init__


def _note_spawn(*args):
    if len(_spawned) < MAX_TESTS * 10:
        _spawned.add(_current["test"] or "(collection)")


_NO_SERVER_THREADS = ("concurrent.futures.thread", "asyncio.base_events")


def _wrap_thread_start(original):
    def start(self):
        # a pool's worker (asyncio resolves names in one) or asyncio's closing of it serves no
        # port of the test's own
        if getattr(getattr(self, "_target", None), "__module__", None) not in _NO_SERVER_THREADS:
            _note_spawn()
        return original(self)
    return start


AT_START = "(start)"  # what was read before any test was collected: a conftest's, a plugin's


def _note_unset(key):
    test = _current["test"] or AT_START
    try:
        if not isinstance(key, str) or len(key) > 100 or not CREDENTIAL.search(key.upper()):
            return
        if test in _read_unset or len(_read_unset) < MAX_TESTS:
            names = _read_unset.setdefault(test, [])
            if len(names) < 5 and key not in names:
                names.append(key)
    except Exception:
        pass


_ASSERTED = ("Failed", "XFailed", "Skipped", "Exit", "Interrupted")  # pytest's outcomes, raised by a test


def note_error(test, kind):
    """`test` failed with an exception of class `kind`. An assertion or a pytest.fail of the test's
    own is noted as such (a check that failed: what it reached for before says nothing of why);
    an error raised is charged to the credentials it read unset (the client's "api_key must be set")."""
    try:
        if not isinstance(kind, type):
            return
        if issubclass(kind, AssertionError) or kind.__name__ in _ASSERTED:
            if len(_asserted) < MAX_FAILURES:
                _asserted.add(test)
        elif test in _read_unset and (test in _credentials or len(_credentials) < MAX_TESTS):
            _credentials[test] = list(_read_unset[test])
    except Exception:
        pass


def note_not_found(test, excinfo):
    """A test's FileNotFoundError that names no path ("Specified file does not exist", raised by
    the package after its own check): the paths, in the locals of the frames that raised it, that
    do not exist. The runner admits one only when it is of the project's tree and the sdist lacks it."""
    try:
        exc = excinfo.value
        if not (isinstance(exc, (IOError, OSError)) and (getattr(exc, "errno", None) == errno.ENOENT or (
                type(exc).__name__ == "FileNotFoundError" and getattr(exc, "errno", None) is None))) or \
                getattr(exc, "filename", None) or not (test in _not_found or len(_not_found) < MAX_TESTS):
            return
        frames, tb = [], excinfo.tb
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        paths = []
        for frame in reversed(frames[-3:]):
            for value in list(frame.f_locals.values())[:50]:
                value = value.__fspath__() if hasattr(value, "__fspath__") else value
                if isinstance(value, str) and "/" in value and len(value) <= 300 and "\0" not in value and \
                        value not in paths and not os.path.lexists(value):
                    paths.append(value)
        if paths:
            _not_found[test] = paths[:3]
    except Exception:
        pass


def _install_environ_watch():
    """os.environ's missing keys seen as they are asked for (os.environ[...], .get, os.getenv:
    Python 3's mapping asks __getitem__ for each)."""
    cls = type(os.environ)
    original = getattr(cls, "__getitem__", None)
    if original is None or getattr(original, "_farm", False):
        return

    def __getitem__(self, key):
        try:
            return original(self, key)
        except KeyError:
            _note_unset(key)
            raise
    __getitem__._farm = True
    try:
        cls.__getitem__ = __getitem__
    except (TypeError, AttributeError):
        pass


def credentials_seen():
    """The credentials the tests needed (each failed for want of one), and those read unset
    before any test was collected (a conftest that refuses to start without them)."""
    seen = dict(_credentials)
    if AT_START in _read_unset:
        seen[AT_START] = list(_read_unset[AT_START])
    return seen


def _install_network_watch():
    _install_environ_watch()
    import subprocess
    import threading
    subprocess.Popen.__init__ = _wrap_popen(subprocess.Popen.__init__)
    threading.Thread.start = _wrap_thread_start(threading.Thread.start)
    if hasattr(os, "register_at_fork"):  # (3.7+) multiprocessing's fork, os.fork
        os.register_at_fork(before=_note_spawn)
    socket.socket.connect = _wrap_connect(socket.socket.connect)
    socket.socket.connect_ex = _wrap_connect(socket.socket.connect_ex, returns_code=True)
    socket.socket.bind = _wrap_bind(socket.socket.bind)
    socket.socket.getsockopt = _wrap_getsockopt(socket.socket.getsockopt)
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        if hasattr(socket, name):
            setattr(socket, name, _wrap_lookup(getattr(socket, name)))


def _missing(module):
    try:
        return find_spec(module) is None
    except Exception:
        return True


def _option(add, *names, **how):
    """An option offered if this pytest's parser takes it (pytest before 2.4 uses optparse, which
    refuses argparse's nargs="?" and const): one it refuses is simply not offered."""
    try:
        add(*names, **how)
    except Exception:
        pass


def pytest_addoption(parser):
    """Reporting-only options of plugins that are not installed: accepted and ignored."""
    group = parser.getgroup("farm", "options of plugins the farm does not install (ignored)")
    if _missing("pytest_cov"):
        _option(group.addoption, "--cov", action="append", nargs="?", const=True, default=[], dest="farm_cov")
        for option in ("--cov-report", "--cov-config", "--cov-fail-under", "--cov-context"):
            _option(group.addoption, option, action="append", default=[], dest="farm_" + option.strip("-").replace("-", "_"))
        for option in ("--cov-append", "--cov-branch", "--no-cov", "--no-cov-on-fail"):
            _option(group.addoption, option, action="store_true", dest="farm_" + option.strip("-").replace("-", "_"))
    if _missing("xdist"):
        _option(group._addoption, "-n", "--numprocesses", action="store", dest="farm_numprocesses")  # as xdist does
        _option(group.addoption, "--dist", action="store", dest="farm_dist")
        _option(group.addoption, "--maxprocesses", action="store", dest="farm_maxprocesses")
    if _missing("pytest_timeout"):
        _option(group.addoption, "--timeout", action="store", dest="farm_timeout")
    if _missing("pytest_benchmark"):
        for option in ("--benchmark-skip", "--benchmark-disable", "--benchmark-only", "--benchmark-autosave"):
            _option(group.addoption, option, action="store_true", dest="farm_" + option.strip("-").replace("-", "_"))
    # Style checkers run as tests (jaraco's projects: `addopts = --flake8 --black`): they judge the
    # source's style, not the installed package's behaviour; without their plugin, no such tests.
    for module, option in (("pytest_flake8", "--flake8"), ("pytest_black", "--black"), ("pytest_mypy", "--mypy"),
                           ("pytest_isort", "--isort"), ("pytest_pylint", "--pylint")):
        if _missing(module):
            _option(group.addoption, option, action="store_true", dest="farm_" + option.strip("-"))


# The first line of the stub __init__.py the stage step writes (inside/stage.py) where a package
# folder only lends the installed package the sdist's tests.
TREE_STUB = "# farm: the installed package is tested; this folder only lends it the sdist's tests\n"


def _lend_sdist_tests():
    """For a package whose sdist alone holds tests inside it (`pkg/tests/`, left in the tree with
    a stub `pkg/__init__.py`): import the installed package, never the stub, and add the tree's
    folder to its __path__, so that `pkg.tests` and its relative imports resolve."""
    here = os.getcwd()
    for name in json.loads(os.environ.get("FARM_IMPORT_NAMES", "[]")):
        folder = os.path.join(here, name)
        try:
            with open(os.path.join(folder, "__init__.py")) as fh:
                if fh.read(len(TREE_STUB)) != TREE_STUB:
                    continue
        except (IOError, OSError, ValueError):  # IOError: Python 2.7
            continue
        saved = list(sys.path)
        sys.path[:] = [p for p in sys.path if p not in ("", ".") and os.path.abspath(p) != here]
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        finally:
            sys.path[:] = saved
        if hasattr(module, "__path__") and folder not in module.__path__:
            module.__path__.append(folder)


def _script_module(collector):
    """Wraps the collection of one node (a hook wrapper): a module whose import raised SystemExit."""
    outcome = yield
    try:
        excinfo = outcome.excinfo
        if not excinfo or not issubclass(excinfo[0], SystemExit) or type(collector).__name__ != "Module":
            return
        code = excinfo[1].code
        path = str(getattr(collector, "fspath", None) or getattr(collector, "path", ""))
        tb = excinfo[2]
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is None or os.path.realpath(tb.tb_frame.f_code.co_filename) != os.path.realpath(path):
            return  # raised by the package's code it imports: the package's own doing
        try:
            from _pytest.reports import CollectReport
        except ImportError:  # pytest before 3.7
            from _pytest.runner import CollectReport
        said = "%s exits at import (SystemExit: %r): a script, not a test module" % (collector.nodeid, code)
        outcome.force_result(CollectReport(collector.nodeid, "skipped" if code in (0, None) else "failed",
                                           (path, 0, "Skipped: " + said) if code in (0, None) else said, []))
    except Exception:
        pass


class _ScriptModules(object):
    pass


def pytest_configure(config):
    if hasattr(config.hook, "pytest_exception_interact"):
        config.pluginmanager.register(_CachedFixtureFailures(), "_farm_cached_fixture_failures")
    hookimpl = getattr(sys.modules.get("pytest"), "hookimpl", None)
    if hookimpl is not None:  # (pytest 2.8 on)
        _ScriptModules.pytest_make_collect_report = staticmethod(hookimpl(hookwrapper=True)(_script_module))
        config.pluginmanager.register(_ScriptModules(), "_farm_script_modules")
    _accept_unknown_ini_options(config)
    _install_network_watch()
    _lend_sdist_tests()


def _accept_unknown_ini_options(config):
    """The project's configuration options that no loaded plugin declares are accepted: the plugin
    that declares them is one a conftest.py the sdist leaves out would load (pytest-alembic's
    `pytester_example_dir`, pytester's), and under the project's `filterwarnings = error` pytest's
    "Unknown config option" warning stopped the run before any test."""
    try:
        known = config._parser._inidict
        given = config.__dict__.get("_inicfg")  # (pytest 9 warns on `inicfg`, its older name)
        for name in list(given if given is not None else getattr(config, "inicfg", None) or {}):
            if name not in known:
                config._parser.addini(name, "(farm: an option of a plugin this run does not load)")
    except Exception:
        pass


def _unittest_runner(item):
    """A module-level `test_main()` beside unittest test cases: CPython's old regrtest convention,
    a function that runs the module's tests (and exits), not a test. pytest would call it."""
    module = getattr(item, "module", None)
    if getattr(item, "name", None) != "test_main" or getattr(item, "cls", None) is not None or module is None:
        return False
    import unittest
    return any(isinstance(v, type) and issubclass(v, unittest.TestCase) for v in list(vars(module).values()))


def _finished():
    """The tests a first part of this run finished (FARM_DONE, written by the runner)."""
    path = os.environ.get("FARM_DONE")
    if not path:
        return set()
    try:
        with open(path) as fh:
            return set(line.rstrip("\n") for line in fh)
    except (IOError, OSError):
        return set()


def pytest_collection_modifyitems(session, config, items):
    done = _finished()
    if done:
        finished = [item for item in items if item.nodeid in done]
        config.hook.pytest_deselected(items=finished)
        items[:] = [item for item in items if item.nodeid not in done]
    runners = [item for item in items if _unittest_runner(item)]
    if runners:
        config.hook.pytest_deselected(items=runners)
        items[:] = [item for item in items if item not in runners]


def pytest_collectstart(collector):
    switch(collector.nodeid)  # a module's imports run while it is collected


def pytest_runtest_setup(item):
    switch(item.nodeid)


def pytest_runtest_teardown(item):
    switch(item.nodeid)


# A fixture whose setup failed raises the same exception object again for every later test that
# uses it (pytest caches it): what the first test was seen doing is what each of them did.
_raised_by = {}  # id(exception) -> (the exception, kept alive so its id stays its own; the first test)


def raised_in(tb):
    """The file of a traceback's innermost frame (where the exception was raised), or None."""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename if tb is not None else None


def note_unconfigured(test, where):
    """Record `test` when its exception was raised inside Django's settings module (`where`, the
    file it came from) while no settings were made at all: DJANGO_SETTINGS_MODULE unset and
    settings.configure() never called. Django apps of the 2010s ship tests meant to run inside a
    project, with a runner (runtests.py) their sdist leaves out: no test of theirs could run."""
    try:
        conf = sys.modules.get("django.conf")
        if conf is None or os.environ.get("DJANGO_SETTINGS_MODULE") or conf.settings.configured or \
                not isinstance(where, str):
            return
        if os.path.dirname(os.path.realpath(where)) == os.path.dirname(os.path.realpath(conf.__file__)) and \
                (test in _unconfigured or len(_unconfigured) < MAX_TESTS):
            _unconfigured[test] = "Django settings (DJANGO_SETTINGS_MODULE)"
    except Exception:
        pass


class _CachedFixtureFailures(object):
    """Registered where pytest has the hook (not 2.2's, which refuses a plugin with a hook it lacks)."""

    def pytest_exception_interact(self, node, call, report):
        if getattr(call, "excinfo", None) is not None:
            note_error(node.nodeid, getattr(call.excinfo, "type", None))
            note_not_found(node.nodeid, call.excinfo)
        _charge_cached_failure(node, call, report)
        if getattr(call, "excinfo", None) is not None:
            note_unconfigured(node.nodeid, raised_in(call.excinfo.tb))


def _charge_cached_failure(node, call, report):
    try:
        if getattr(report, "when", None) != "setup" or getattr(call, "excinfo", None) is None:
            return
        exc, test = call.excinfo.value, node.nodeid
        first = _raised_by.get(id(exc))
        if first is None or first[0] is not exc:
            if len(_raised_by) < MAX_TESTS:
                _raised_by[id(exc)] = (exc, test)
            return
        for seen in (_network, _programs, _services, _unconfigured, _credentials):
            if first[1] in seen and test not in seen and len(seen) < MAX_TESTS:
                seen[test] = list(seen[first[1]])
    except Exception:
        pass


def _crash_in_unconfigured_django(report):
    """pytest 2.2 (no pytest_exception_interact): the file its report says the exception came from."""
    if report.nodeid not in _unconfigured:
        note_unconfigured(report.nodeid, getattr(getattr(getattr(report, "longrepr", None), "reprcrash", None),
                                                 "path", None))


def pytest_runtest_logreport(report):
    if report.failed:
        _crash_in_unconfigured_django(report)
    if report.failed and len(_failures) < MAX_FAILURES:
        _failures.append({"test": report.nodeid, "when": report.when, "message": _one_line(report)})
    _progress(report)


def pytest_runtest_logstart(nodeid, location):
    """A test begins (FARM_PROGRESS): a suite stopped for its silence names the test that hung."""
    _write_progress({"test": nodeid, "outcome": "started"})


def _write_progress(entry):
    path = os.environ.get("FARM_PROGRESS")
    if not path:
        return
    try:
        with open(path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
    except (IOError, OSError, ValueError):
        pass


def _progress(report):
    """One line per test phase that decides a test (FARM_PROGRESS): written as the suite goes, so
    that a suite stopped at its time limit says which tests it finished (the runner runs the
    others in a second part)."""
    if report.when == "call" or report.failed or report.skipped:
        entry = {"test": report.nodeid, "outcome": report.outcome, "when": report.when,
                 "message": _one_line(report) if report.failed else ""}
        if report.failed:  # what the test was seen to do, for a run stopped before probe.json is written
            drain_native()
            entry["evidence"] = dict((k, seen[report.nodeid]) for k, seen in (
                ("network", _network), ("programs", _programs), ("services", _services),
                ("unconfigured", _unconfigured), ("credentials", _credentials)) if report.nodeid in seen)
        _write_progress(entry)


def pytest_collectreport(report):
    if report.failed:
        _crash_in_unconfigured_django(report)
    if report.failed and len(_failures) < MAX_FAILURES:
        _failures.append({"test": report.nodeid, "when": "collect", "message": _one_line(report)})


def _one_line(report):
    wanted = getattr(getattr(report, "longrepr", None), "errorstring", None)  # pytest's fixture lookup error
    if isinstance(wanted, str) and wanted.strip():
        return wanted.strip().splitlines()[0][:300]
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = getattr(crash, "message", None) or str(getattr(report, "longrepr", "") or "")
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if not lines:
        return ""
    if lines[-1].endswith("UnexpectedException"):  # a doctest's error: its exception is in the report's text
        raised = [l for l in str(getattr(report, "longrepr", "")).splitlines()
                  if l.strip() and l.strip().split(":", 1)[0].endswith(("Error", "Exception")) and ":" in l]
        if raised:
            return raised[-1].strip()[:300]
    missing = [l for l in lines if "No module named" in l]  # a collection error's cause, not its first line
    return (missing[-1] if missing else lines[-1] if getattr(crash, "message", None) is None else lines[0])[:300]


def pytest_sessionfinish(session):
    """One answer file (FARM_PROBE_REPORT): {"imports", "network", "failures", "gil_enabled", "pytest"}."""
    out = {}
    for name in json.loads(os.environ.get("FARM_IMPORT_NAMES", "[]")):
        try:
            with warnings.catch_warnings():  # the farm's own import must not add to the run's warnings
                warnings.simplefilter("ignore")
                mod = sys.modules.get(name) or importlib.import_module(name)
            where = getattr(mod, "__file__", None) or list(getattr(mod, "__path__", []) or [None])[0]
            # (the tree's place of the package is a link to the installed copy: where it leads)
            out[name] = os.path.realpath(where) if isinstance(where, str) else where
        except Exception as exc:
            out[name] = "!" + repr(exc)
    # A free-threaded build: is the GIL back on (an extension imported without declaring it can run
    # without it)? CPython's warning names the module; this says whether it happened at all.
    gil_enabled = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else None
    drain_native()
    _answered.append(True)
    with open(os.environ["FARM_PROBE_REPORT"], "w") as fh:
        json.dump({"imports": out, "network": _network, "programs": _programs, "services": _services,
                   "unconfigured": _unconfigured, "credentials": credentials_seen(), "not_found": _not_found,
                   "asserted": sorted(_asserted),
                   "failures": _failures,
                   "gil_enabled": gil_enabled,
                   "pytest": getattr(sys.modules.get("pytest"), "__version__", None)}, fh)


_answered = []


def _answer_at_exit():
    """pytest stopped before its session (a conftest that raised while loading): what was read
    unset until then is the only answer."""
    path = os.environ.get("FARM_PROBE_REPORT")
    if _answered or not path or AT_START not in _read_unset or os.path.lexists(path):
        return
    try:
        with open(path, "w") as fh:
            json.dump({"credentials": credentials_seen()}, fh)
    except (IOError, OSError, ValueError):
        pass


# Watched from the plugin's import (`-p _farm_probe`, before any conftest is loaded).
_install_environ_watch()
atexit.register(_answer_at_exit)
