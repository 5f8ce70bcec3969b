"""Truthful verdicts: each release is tested the way its own project tests itself. One fixture
package per way the runner used to blame a package for the farm's own way of testing, each served
by a real local index and run through the real runner (worker/runner.py), each asserting the
outcome and the report's explanation of it."""
import os
import textwrap
from pathlib import Path

import pytest

from tests.pkgindex import PackageIndex, ensure_wheelhouse, write_package
from tests.test_runner import MAIN_PY, run_cli

VERSION = "1.0"


def dedent(text):
    return textwrap.dedent(text).lstrip()


# The pyproject.toml fixtures start with: setuptools builds them.
BUILD_SYSTEM = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'

# name: (files of the project's tree, its dependencies, the outcome a maintainer sees)
FIXTURES = {
    # The uninstall audit blamed the release for what test tools wrote in their own folders.
    "vfix-audit": ({
        "tox.ini": "[testenv]\ndeps = vfix-cachedep\ncommands = pytest tests\n",
        "tests/test_cache.py": dedent("""
            import vfix_cachedep


            def test_the_tool_writes_its_cache_in_its_own_folder():
                assert vfix_cachedep.touch().endswith("cache.db")
            """),
        # cffi's way: a path built through the package's folder under src/ goes on in the tree
        "src/vfix_audit/__init__.py": "",
        "tests/test_paths.py": dedent("""
            import os

            ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


            def test_a_path_through_the_package_s_folder():
                with open(os.path.join(ROOT, "src", "vfix_audit", "..", "..", "tox.ini")) as fh:
                    assert "[testenv]" in fh.read()
            """),
    }, (), "passed"),
    # Tests pytest does not collect (unittest names): unittest discovery finds them.
    "vfix-unittest": ({
        "tests/__init__.py": "",
        "tests/test.py": dedent("""
            import unittest

            import vfix_unittest


            class Checks(unittest.TestCase):
                def test_version(self):
                    self.assertEqual(vfix_unittest.__version__, "1.0")

                def test_more(self):
                    self.assertTrue(True)

                def test_backends(self):
                    # pathspec's way: a subtest per backend, the missing ones skipped
                    for backend in ("simple", "hyperscan", "re2"):
                        with self.subTest(backend):
                            if backend != "simple":
                                self.skipTest("No module named %r" % backend)

                @unittest.skip("not on this platform")
                def test_skipped(self):
                    pass
            """),
    }, (), "passed"),
    # tox's env for this interpreter, never the pypy one or lint; an option's value is no test path.
    "vfix-toxenv": ({
        "tox.ini": dedent("""
            [tox]
            envlist = lint, pypy3-tests, py3{8,9,10,11,12,13}-tests

            [testenv]
            commands = pytest --ignore tests/broken {posargs:tests}

            [testenv:pypy3-tests]
            commands = pytest tests/pypy_only.py

            [testenv:lint]
            commands = flake8 --max-line-length 120
            """),
        "tests/pypy_only.py": "import platform\n\n\ndef test_pypy():\n    assert platform.python_implementation() == 'PyPy'\n",
        "tests/broken/test_broken.py": "def test_not_run_by_the_project():\n    assert False\n",
    }, (), "passed"),
    # The tests need the source tree: a root conftest.py, data beside the tests, files they read.
    "vfix-tree": ({
        "conftest.py": dedent("""
            import pathlib

            import pytest


            @pytest.fixture
            def sample():
                return (pathlib.Path(__file__).parent / "data" / "sample.txt").read_text()
            """),
        "data/sample.txt": "hello from the sdist\n",
        "vfix_tree/_kernel.py": "answer = 42\n",
        "vfix_tree/_kernel.pxd": "cdef int answer\n",  # in the sdist only (SDIST_ONLY)
        "vfix_tree/_kernel.c": "/* generated */\n",  # in the sdist only, and nothing reads it
        "examples/demo.py": "print('demo')\n",
        "requirements-dev.txt": "# nothing to install\n",
        "tests/test_tree.py": dedent("""
            import pathlib

            ROOT = pathlib.Path(__file__).parent.parent


            def test_data(sample):
                assert sample == "hello from the sdist\\n"


            def test_files_the_tests_read():
                assert (ROOT / "examples" / "demo.py").is_file()
                assert (ROOT / "requirements-dev.txt").is_file()


            def test_sources_the_wheel_leaves_out():
                # chardet's way: a test reads the Cython declarations beside the module they type
                import os

                import vfix_tree._kernel  # the module beside them is the installed copy's
                assert (ROOT / "vfix_tree" / "_kernel.pxd").read_text() == "cdef int answer\\n"
                assert "site-packages" in os.path.realpath(ROOT / "vfix_tree" / "_kernel.py")
                assert "site-packages" in os.path.realpath(vfix_tree._kernel.__file__)


            def test_the_package_by_path_is_the_installed_copy():
                # as tabulate's CLI tests run `python tabulate/__init__.py` from the tree
                import os
                import subprocess
                import sys

                import vfix_tree
                assert os.path.samefile(ROOT / "vfix_tree" / "__init__.py", vfix_tree.__file__)
                subprocess.run([sys.executable, "vfix_tree/__init__.py"], cwd=ROOT, check=True)
            """),
    }, (), "passed"),
    # Test dependencies declared through tox's `deps = -r requirements-dev.txt` (an editable line
    # and another index in it are left out: the release comes from the farm's index, installed).
    "vfix-deps": ({
        "tox.ini": "[testenv]\ndeps = -r requirements-dev.txt\ncommands = pytest tests\n",
        "requirements-dev.txt": "vfix-helper>=1.0\n-e .\n--index-url https://example.invalid/simple\n",
        "tests/test_helper.py": "import vfix_helper\n\n\ndef test_helper():\n    assert vfix_helper.__version__\n",
    }, (), "passed"),
    # The project pins the pytest it knows (here 8, where the farm's shared one is 9): the pin wins.
    "vfix-pin": ({
        "requirements-test.txt": "pytest==8.3.5\n",
        "tests/test_pin.py": "import pytest\n\n\ndef test_the_project_s_pytest():\n    assert pytest.__version__ == '8.3.5'\n",
    }, (), "passed"),
    # Tests inside the package's folder that the sdist alone holds (setup.py installs the top
    # package only), importing it relatively: they run against the installed copy.
    "vfix-inpkg": ({
        "vfix_inpkg/helper.py": "ANSWER = 42\n",
        "vfix_inpkg/tests/__init__.py": "",
        "vfix_inpkg/tests/test_relative.py": dedent("""
            import os

            from .. import helper
            from ..helper import ANSWER


            def test_relative_imports_reach_the_installed_copy():
                assert ANSWER == 42
                assert "site-packages" in helper.__file__.replace(os.sep, "/"), helper.__file__
            """),
    }, (), "passed"),
    # toolz's way: `testpaths` names the package, whose test folders (one nested deeper) the wheel
    # ships; they run from the installed copy, with the project's configuration (warnings are errors).
    "vfix-cfgpkg": ({
        "pyproject.toml": BUILD_SYSTEM + dedent("""
            [tool.pytest.ini_options]
            testpaths = ["vfix_cfgpkg"]
            filterwarnings = ["error"]
            """),
        "vfix_cfgpkg/tests/__init__.py": "",
        "vfix_cfgpkg/tests/test_top.py": dedent("""
            import warnings

            import pytest


            def test_the_project_s_configuration():
                with pytest.raises(UserWarning):
                    warnings.warn("an error under the project's filterwarnings")
            """),
        "vfix_cfgpkg/sandbox/__init__.py": "",
        "vfix_cfgpkg/sandbox/tests/__init__.py": "",
        "vfix_cfgpkg/sandbox/tests/test_nested.py": "def test_nested():\n    pass\n",
    }, (), "passed"),
    # Reporting-only options of plugins the farm does not install are no usage error.
    "vfix-cov": ({
        "pyproject.toml": BUILD_SYSTEM + dedent("""
            [tool.pytest.ini_options]
            addopts = "--cov=vfix_cov --cov-report=term-missing -n 2 --timeout 30 --flake8 --black"
            testpaths = ["tests"]
            """),
    }, (), "passed"),
    # The sandbox's environment: services a system has, an ordinary user, the network it lacks, a flaky test.
    "vfix-env": ({
        "tests/test_env.py": dedent("""
            import os
            import pathlib
            import pwd
            import socket
            import urllib.request


            def test_services_and_protocols():
                assert socket.getservbyname("http", "tcp") == 80
                assert socket.getprotobyname("tcp") == 6


            def test_the_folders_every_system_has():
                # platformdirs's tests look at /var/cache, /var/lib and /var/log
                assert all(pathlib.Path(d).is_dir() for d in ("/var/cache", "/var/lib", "/var/log", "/var/tmp"))


            def test_an_ordinary_user():
                # platformdirs and filelock test what an ordinary user may not do; a root worker's
                # sandbox still runs them as one
                assert os.getuid() != 0 and pwd.getpwuid(os.getuid()).pw_name == "farm"
                locked = pathlib.Path(__file__).with_name("locked")
                locked.write_text("x")
                locked.chmod(0)
                try:
                    locked.read_text()
                    raise AssertionError("read a file that has no read permission")
                except PermissionError:
                    pass


            def test_needs_the_network():
                urllib.request.urlopen("http://example.org/", timeout=5)


            def test_the_machine_a_maintainer_s_ci_gives():
                # UTC as the local zone, named as tzlocal finds it; UTF-8; shared memory for
                # multiprocessing; who the user is; no pip of the worker's system
                import locale
                import multiprocessing
                import shutil
                import time

                assert os.path.realpath("/etc/localtime").endswith("/UTC")
                assert pathlib.Path("/etc/timezone").read_text().strip() == "Etc/UTC"
                assert time.tzname[0] == "UTC"
                assert locale.getpreferredencoding(False).upper().replace("-", "") == "UTF8"
                multiprocessing.Lock()
                assert os.environ["USER"] == os.environ["LOGNAME"] == "farm"
                assert shutil.which("pip") is None and shutil.which("pip3") is None
                # a resolver configuration, as every machine has (dnspython will not start without one)
                assert "nameserver" in pathlib.Path("/etc/resolv.conf").read_text()


            def test_a_program_the_worker_lacks():
                import subprocess
                subprocess.run(["vfix-mkisofs", "-o", "image.iso", "."], check=True)


            def test_writes_into_a_folder_the_sdist_does_not_ship():
                # kept in git by a .gitkeep, left out of the sdist
                with open("tests/output/result.txt", "w") as fh:
                    fh.write("x")


            def test_its_own_host_name_is_no_network():
                assert socket.gethostbyname(socket.gethostname()).startswith("127.")


            def test_flaky():
                marker = pathlib.Path(__file__).with_name(".ran-once")
                if not marker.exists():
                    marker.write_text("x")
                    raise AssertionError("fails the first time only")
            """),
    }, (), "passed"),
    # jmespath's sdist leaves out tests/__init__.py, where its test modules take their helpers
    # from: as shipped, no test module can be collected. Nothing ran: never a pass.
    "vfix-noinit": ({
        "tests/test_one.py": "from tests import unittest\n\n\nclass T(unittest.TestCase):\n"
                             "    def test_one(self):\n        pass\n",
        "tests/test_two.py": "from tests import OrderedDict\n\n\ndef test_two():\n    assert OrderedDict() == {}\n",
    }, (), "no-tests"),
    # A test module that clones its data with git while it is collected (chardet): the others run.
    "vfix-clone": ({
        "tests/test_accuracy.py": dedent("""
            import subprocess
            import tempfile

            subprocess.run(["git", "clone", "--depth=1", "https://example.invalid/test-data.git",
                            tempfile.mkdtemp()], check=True, capture_output=True)


            def test_accuracy():
                pass
            """),
        # wavedrom's way: a session fixture clones the upstream project; pytest raises its cached
        # failure again for each later test that uses it, and each of them needed the network.
        "tests/conftest.py": dedent("""
            import subprocess

            import pytest


            @pytest.fixture(scope="session")
            def upstream(tmp_path_factory):
                where = tmp_path_factory.mktemp("upstream")
                subprocess.run(["git", "clone", "https://example.invalid/upstream.git", str(where)], check=True,
                               capture_output=True)
                return where
            """),
        "tests/test_upstream.py": dedent("""
            import pytest


            @pytest.mark.parametrize("case", ["one", "two", "three"])
            def test_upstream(upstream, case):
                assert (upstream / case).exists()
            """),
    }, (), "passed"),
    # django-randomslug's and django-ru-fields's way: a Django app's tests, meant to run inside a
    # project (a runtests.py the sdist leaves out), meet Django's settings never made; one test
    # raises the same exception from its own code, and it stays the package's.
    "vfix-djangoapp": ({
        "tests/test_app.py": dedent("""
            from django.conf import settings


            def test_the_database():
                assert settings.DATABASES


            def test_the_cache():
                assert settings.CACHES
            """),
    }, (), "no-tests"),  # (Django undeclared, as django-ru-fields leaves it: inferred)
    "vfix-djangoown": ({
        "tests/test_own.py": dedent("""
            from django.conf import ImproperlyConfigured, settings


            def test_its_own_check():
                raise ImproperlyConfigured("settings are not configured (raised by the package itself)")


            def test_the_database():
                assert settings.DATABASES
            """),
    }, ("django",), "tests-failed"),
    # django-proxy-users's way: no settings shipped, and the app's URLconf imports `patterns`, which
    # the Django its range admits removed: set up in minimal settings, it fails to import, as it
    # would with any settings.
    "vfix-djangourls": ({
        "vfix_djangourls/urls.py": "from django.conf.urls import patterns, url\n\nurlpatterns = patterns('')\n",
        "vfix_djangourls/models.py": "from django.conf import settings\n",
        "tests/test_views.py": dedent("""
            from django.conf import settings


            def test_the_urls():
                assert settings.ROOT_URLCONF
            """),
    }, ("django",), "tests-failed"),
    # kubernetes's way: tests inside the package, run from the installed copy, open a file of the
    # repository by its path from the repository's root; neither the sdist nor the wheel has it.
    "vfix-inwheel": ({
        "tox.ini": "[testenv]\ncommands = pytest --ignore=vfix_inwheel/e2e_test\n",
        "vfix_inwheel/tests/__init__.py": "",
        "vfix_inwheel/tests/test_deploy.py": dedent("""
            def test_from_the_repository():
                with open("vfix_inwheel/manifests/deploy.yaml") as fh:
                    assert fh.read()


            def test_the_package():
                import vfix_inwheel
                assert vfix_inwheel.__version__ == "1.0"
            """),
    }, (), "passed"),
    # A module the tests plainly need and the project forgot to declare: inferred, installed, said.
    # One is read in a test file's imports before the first run; one only a failed run names (a
    # helper module imports it); an optional one (under try) is left alone.
    "vfix-infer": ({
        "tests/test_infer.py": dedent("""
            import vfix_undeclared

            try:
                import vfix_optional
            except ImportError:
                vfix_optional = None


            def test_it():
                assert vfix_undeclared.__version__


            def test_the_optional_module_is_not_installed():
                assert vfix_optional is None
            """),
        "tests/helpers.py": "import vfix_later\n\nVERSION = vfix_later.__version__\n",
        "tests/test_helped.py": "from helpers import VERSION\n\n\ndef test_helped():\n    assert VERSION\n",
    }, (), "passed"),
    # The tests import what an extra of the release's declares (unidas's `dev`: xarray, and daspy
    # from daspy-toolbox): the release's extras come before a distribution guessed from the
    # module's name (here the index's newest, 2.0), each alone when one of them has no solution.
    "vfix-extras": ({
        "tests/test_extras.py": dedent("""
            import vfix_asofdep


            def test_the_extra_s_release_of_it():
                assert vfix_asofdep.__version__ == "1.0"
            """),
    }, ('vfix-asofdep==1.0; extra == "full"', 'vfix-nowhere-to-be-found; extra == "gpu"'), "passed"),
    # perceptra-storage's way: the package's own __init__ imports what only an extra declares; its
    # users' `pip install` cannot import it, so no extra is installed to make its tests pass.
    "vfix-extrasown": ({
        "vfix_extrasown/__init__.py": "import vfix_asofdep\n\n__version__ = '1.0'\n",
        "tests/test_own.py": "import vfix_extrasown\n\n\ndef test_version():\n    assert vfix_extrasown.__version__\n",
    }, ('vfix-asofdep==1.0; extra == "s3"',), "tests-failed"),
    # hdx's way: a name the package defines only when its `html` extra's module is there; no test
    # file imports a missing module, the run's import error tells.
    "vfix-extras2": ({
        "vfix_extras2/__init__.py": dedent("""
            __version__ = "1.0"
            try:
                import vfix_later
            except ImportError:
                pass
            else:
                def table():
                    return vfix_later.__version__
            """),
        "tests/test_table.py": "from vfix_extras2 import table\n\n\ndef test_table():\n    assert table()\n",
    }, ('vfix-later; extra == "html"',), "passed"),
    # Tests inside the package that write into its installed folder (kubernetes's
    # `tmp_file_path_test/`): the uninstall leaves that, and it is not the uninstall's fault.
    "vfix-writes": ({
        "vfix_writes/test_writes.py": dedent("""
            import os


            def test_writes_beside_itself():
                made = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tmp_made_by_test")
                os.makedirs(os.path.join(made, "empty"))
                with open(os.path.join(made, "note.txt"), "w") as fh:
                    fh.write("the test was here")
            """),
    }, (), "passed"),
    # The Makefile's test target says what to run and install (tokenizers' `test-py`): not the
    # benchmark scripts pytest would collect beside the tests.
    "vfix-make": ({
        "Makefile": "PYTHON ?= python\n.PHONY: test lint unit\n\ntest: lint unit\n\nlint:\n\tflake8 .\n\n"
                    "unit:\n\t$(PYTHON) -m pip install vfix-later\n\t@$(PYTHON) -m pytest -s -v tests/unit\n",
        "tests/unit/test_unit.py": "import vfix_later\n\n\ndef test_unit():\n    assert vfix_later.__version__\n",
        "benches/test_bench.py": "def test(model, dataset):\n    pass\n",
    }, (), "passed"),
    # tox runs the project's own test script (dill's `{envpython} dill/tests/__main__.py`, which
    # runs each test file as a script): its exit status is the verdict.
    "vfix-script": ({
        "tox.ini": "[testenv]\ncommands =\n    {envpython} -m pip install .\n    {envpython} vfix_script/tests/__main__.py\n",
        "vfix_script/tests/__init__.py": "",
        "vfix_script/tests/__main__.py": dedent("""
            import glob
            import os
            import subprocess
            import sys

            here = os.path.dirname(os.path.abspath(__file__))
            sys.exit(sum(subprocess.call([sys.executable, f]) != 0 for f in sorted(glob.glob(os.path.join(here, "test_*.py")))))
            """),
        "vfix_script/tests/test_one.py": "import vfix_script\n\nassert vfix_script.__version__ == '1.0'\n",
    }, (), "passed"),
    "vfix-scriptfail": ({
        "tox.ini": "[testenv]\ncommands = python tests/run_tests.py\n",
        "tests/run_tests.py": "import vfix_scriptfail\n\nassert vfix_scriptfail.__version__ == '2.0', 'a real bug'\n",
    }, (), "tests-failed"),
    # django-recommend's way: its tests are the package's `tests.py` module under src/, which
    # neither pytest's file names nor unittest's discovery from the root reach; the installed
    # package's test module is run.
    "vfix-testsmod": ({
        "src/vfix_testsmod/__init__.py": "__version__ = '1.0'\n",
        "src/vfix_testsmod/tests.py": "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_it(self):\n"
                                      "        import vfix_testsmod\n        self.assertEqual(vfix_testsmod.__version__, '1.0')\n",
        "vfix_testsmod/tests.py": "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_it(self):\n"
                                  "        import vfix_testsmod\n        self.assertEqual(vfix_testsmod.__version__, '1.0')\n",
    }, (), "passed"),
    # tamarind-cli's way: a test dependency pins an older release of a runtime dependency; the
    # tests run with the one users get (2.0, the index's newest), not the older one.
    "vfix-keeprt": ({
        "requirements-test.txt": "vfix-asofrt<2\n",
        "tests/test_rt.py": "import vfix_asofrt\n\n\ndef test_rt():\n    assert vfix_asofrt.__version__ == '2.0'\n",
    }, ("vfix-asofrt",), "passed"),
    # paralleltools's way (2012): the package's tests folder holds `acceptance_tests.py`, a test
    # module by its name though not pytest's default pattern: still a tests folder.
    "vfix-acceptance": ({
        "setup.cfg": "[options]\ntest_suite = vfix_acceptance.tests.acceptance_tests\n",
        "vfix_acceptance/tests/__init__.py": "",
        "vfix_acceptance/tests/acceptance_tests.py": "import unittest\n\nimport vfix_acceptance\n\n\n"
                                                    "class T(unittest.TestCase):\n    def test_it(self):\n"
                                                    "        self.assertEqual(vfix_acceptance.__version__, '1.0')\n",
    }, (), "passed"),
    # A `testing` package of helpers offered to users (headroom.testing), no test in it: no tests,
    # and none of the test dependencies installed for it (headroom's dev extra filled the disk).
    "vfix-helpers": ({
        "vfix_helpers/testing/__init__.py": "def fake_client():\n    return object()\n",
        "vfix_helpers/testing/fakes.py": "class FakeModel(object):\n    pass\n",
    }, ('vfix-nowhere-to-be-found; extra == "dev"',), "no-tests"),
    # None of the tree's tests can run as the sdist ships them (ihm's test/ imports the utils.py it
    # leaves out); the package's own installed test module (ihm/test.py) runs instead.
    "vfix-inlacks": ({
        "tests/test_tree.py": "from utils import helper\n\n\ndef test_tree():\n    assert helper()\n",
        "vfix_inlacks/test.py": dedent("""
            import unittest

            import vfix_inlacks


            class Tests(unittest.TestCase):
                def test_basic(self):
                    self.assertEqual(vfix_inlacks.__version__, "1.0")
            """),
    }, (), "passed"),
    # Native code that looks a name up (yahooquery's libcurl, mrml's Rust client), past Python's
    # sockets: the native network watch notes it, and the test needed the network.
    "vfix-native": ({
        "tests/test_native.py": dedent("""
            import ctypes
            import struct


            def test_a_lookup_in_native_code():
                libc = ctypes.CDLL(None)
                found = ctypes.c_void_p()
                status = libc.getaddrinfo(b"pypi.org", b"443", None, ctypes.byref(found))
                assert status == 0, "could not resolve host: pypi.org (%d)" % status


            def test_a_dns_query_from_native_code():
                # c-ares's way (curl_cffi's libcurl): its own query, to 127.0.0.1:53 without a resolv.conf
                libc = ctypes.CDLL(None)
                fd = libc.socket(2, 2, 0)  # AF_INET, SOCK_DGRAM
                address = struct.pack("=H", 2) + struct.pack("!H", 53) + bytes([127, 0, 0, 1]) + bytes(8)
                libc.connect(fd, address, len(address))
                raise AssertionError("Could not resolve host: finance.yahoo.com (Could not contact DNS servers)")
            """),
    }, (), "passed"),
    # A test that talks to a server its project's CI runs beside the tests (python-wordpress's
    # WordPress on :8888, redis's Redis on :6379): the sandbox runs none; not the package's failure.
    "vfix-service": ({
        "tests/test_service.py": dedent("""
            import socket


            def test_talks_to_its_database():
                socket.create_connection(("127.0.0.1", 6379), timeout=2)


            def test_its_server_thread_asks_docker():
                # moto's Lambda, from the server thread a test started: docker-py on Docker's socket
                import threading
                errors = []

                def ask():
                    try:
                        socket.socket(socket.AF_UNIX).connect("/var/run/docker.sock")
                    except OSError as exc:
                        errors.append(exc)
                thread = threading.Thread(target=ask)
                thread.start()
                thread.join()
                assert not errors, errors


            def test_a_program_it_starts_asks_docker():
                # moto's `curl --unix-socket /run/docker.sock`: native code, in another process
                import subprocess
                import sys
                subprocess.run([sys.executable, "-c", "import socket; "
                                "socket.socket(socket.AF_UNIX).connect('/run/docker.sock')"], check=True)
            """),
    }, (), "passed"),
    # The project's options need pytest's cache plugin (pytest-alembic's addopts `--ff`).
    "vfix-failedfirst": ({
        "pyproject.toml": BUILD_SYSTEM + '[tool.pytest.ini_options]\naddopts = "--ff --strict-markers"\n',
    }, (), "passed"),
    # Two undeclared modules, one of which no distribution on the index provides (redis's
    # `opentelemetry`): the other is still inferred and installed.
    "vfix-infer2": ({
        "tests/test_found.py": "import vfix_later\n\n\ndef test_found():\n    assert vfix_later.__version__\n",
        "tests/test_nowhere.py": "import vfix_nowhere_to_be_found\n\n\ndef test_nowhere():\n    pass\n",
    }, (), "tests-failed"),
    # The project asks for pytest without a pin: the farm's pytest tests it (not installed again),
    # and a requirement for another interpreter is not installed.
    "vfix-farmpytest": ({
        "pyproject.toml": BUILD_SYSTEM + dedent("""
            [dependency-groups]
            test = ["pytest>=7", "vfix-later; python_version < '3'"]
            """),
        "tests/test_tool.py": dedent("""
            import os

            import pytest


            def test_the_farm_s_pytest():
                assert os.sep + "site-packages" + os.sep not in pytest.__file__


            def test_nothing_for_another_interpreter():
                with pytest.raises(ImportError):
                    import vfix_later  # noqa: F401
            """),
    }, (), "passed"),
    # Test requirements with no solution together (a lock file's pins the index no longer has,
    # distro's `pre-commit==2.13.0`): each alone, the index asked first, so that what it plainly
    # lacks (no such project, no such release) starts no installer.
    "vfix-eachdep": ({
        "requirements-test.txt": "pytest==1.0.0\nvfix-later\nvfix-nowhere-on-the-index\nvfix-later==99.0\n",
        "tests/test_later.py": "import vfix_later\n\n\ndef test_later():\n    assert vfix_later.__version__\n",
    }, (), "passed"),
    # A test plugin that needs an older pytest than the farm's: it gets the one it asks for.
    "vfix-oldplugin": ({
        "requirements-test.txt": "vfix-pytest8-plugin\n",
        "tests/test_old.py": "import pytest\n\n\ndef test_old():\n    assert pytest.__version__.startswith('8.')\n",
    }, (), "passed"),
    # Honest failures that once read as the environment's: a module the language removed in this
    # version (imp, gone in 3.12), a message that mentions an installer, a bug after a lookup of the
    # sandbox's own host name. All counted.
    "vfix-noexcuse": ({
        "tests/test_noexcuse.py": dedent("""
            import socket


            def test_a_removed_standard_module():
                import imp  # noqa: F401


            def test_a_message_that_names_an_installer():
                raise AssertionError("the plugin is missing: pip install vfix-noexcuse[extra] to fix")


            def test_its_own_server_that_never_started():
                # a port the test's own process bound: refused later, it is no missing service
                server = socket.socket()
                server.bind(("127.0.0.1", 0))
                port = server.getsockname()[1]
                server.close()
                socket.create_connection(("127.0.0.1", port), timeout=2)


            def test_its_own_server_thread_that_died_before_it_bound():
                import threading
                threading.Thread(target=lambda: None).start()
                socket.create_connection(("127.0.0.1", 8765), timeout=2)


            def test_its_own_socket_that_is_no_daemon_s():
                socket.socket(socket.AF_UNIX).connect("/tmp/vfix-noexcuse.sock")


            def test_a_bug_after_a_lookup_of_its_own_name():
                socket.gethostbyname(socket.gethostname())
                assert 1 + 1 == 3, "a real bug"
            """),
    }, (), "tests-failed"),
    # No test of the package's passed: every one skipped, or every failure the environment's.
    "vfix-allskip": ({
        "tests/test_skip.py": dedent("""
            import pytest


            @pytest.mark.skip(reason="needs a GPU")
            def test_gpu():
                pass
            """),
    }, (), "no-tests"),
    "vfix-allnet": ({
        "tests/test_net.py": dedent("""
            import socket


            def test_needs_the_network():
                socket.create_connection(("pypi.org", 443), timeout=5)
            """),
    }, (), "no-tests"),
    # A namespace package (no __init__.py) whose tests the wheel ships: pytest cannot find it by
    # name (--pyargs), so its installed folder is given instead.
    "vfix-nsinst": ({
        "vfix_nsinst/__init__.py": None,
        "vfix_nsinst/core.py": "ANSWER = 42\n",
        "vfix_nsinst/tests/test_core.py": "from vfix_nsinst import core\n\n\ndef test_core():\n"
                                          "    assert core.ANSWER == 42\n",
    }, (), "passed"),
    # pytest-alembic's way: its tests are its modules' doctests (`--doctest-modules`), and its
    # configuration has an option of a plugin its left-out conftest.py loads, under `error` warnings.
    "vfix-doctests": ({
        "pyproject.toml": BUILD_SYSTEM + dedent("""
            [tool.pytest.ini_options]
            addopts = "--doctest-modules -vv"
            pytester_example_dir = "examples"
            filterwarnings = ["error"]
            """),
        "vfix_doctests/__init__.py": '"""The answer.\n\n>>> answer()\n42\n"""\n__version__ = "1.0"\n\n\n'
                                     'def answer():\n    return 42\n',
    }, (), "passed"),
    # unidas's way: the tests' fixtures are defined in the repository's test/conftest.py, which the
    # sdist leaves out (89 of its tests): not a test result. With a conftest.py shipped, a fixture
    # nothing defines is the package's (a typo).
    "vfix-noconftest": ({
        "tests/test_fx.py": dedent("""
            import pytest


            @pytest.mark.parametrize("case", range(25))
            def test_with_the_repository_s_fixture(sample, case):
                assert sample
            """),
    }, (), "passed"),
    "vfix-fixturetypo": ({
        "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef sample():\n    return 1\n",
        "tests/test_fx.py": "def test_with_a_typo(sampel):\n    assert sampel\n",
    }, (), "tests-failed"),
    # dau-core's way: the project's testpaths name the tests folder inside its package, which has
    # no __init__.py: run from the installed copy by its path (`--pyargs pkg.tests` finds nothing).
    "vfix-nstests": ({
        "pyproject.toml": BUILD_SYSTEM + '[tool.pytest.ini_options]\ntestpaths = ["vfix_nstests/tests"]\n',
        "vfix_nstests/tests/test_core.py": "import vfix_nstests\n\n\ndef test_core():\n"
                                           "    assert vfix_nstests.__version__ == '1.0'\n",
    }, (), "passed"),
    # pytest cannot start (a plugin of the project's monorepo, loaded by its conftest.py): nothing
    # was tested, and the release's modules are imported instead.
    "vfix-nostart": ({
        "conftest.py": "raise RuntimeError('this plugin only works inside the project\\'s monorepo')\n",
    }, (), "no-tests"),
    # An old unittest module with CPython's regrtest runner beside its tests: the runner is no test.
    "vfix-testmain": ({
        "tests/test_old.py": dedent("""
            import sys
            import unittest


            class OldStyle(unittest.TestCase):
                def test_it(self):
                    self.assertTrue(True)


            def test_main():
                result = unittest.TextTestRunner().run(unittest.TestLoader().loadTestsFromTestCase(OldStyle))
                sys.exit(not result.wasSuccessful())
            """),
    }, (), "passed"),
    # facekiapiclientv2's way: a script named test.py beside its module (it calls a live API, with
    # a Python 2 import) is no test module, though unittest's discovery imports it; a tests.py
    # that defines a test and does not import is the package's failure.
    "vfix-notatest": ({
        "tool/__init__.py": "",
        "tool/test.py": "from client import Client\n\nprint(Client().fetch())\n",
    }, (), "no-tests"),
    "vfix-badtests": ({
        "app/__init__.py": "",
        "app/tests.py": "import unittest\n\nfrom app import Thing\n\n\nclass T(unittest.TestCase):\n"
                        "    def test_thing(self):\n        self.assertTrue(Thing)\n",
    }, (), "tests-failed"),
    # weitsicht's way: test data the sdist leaves out, said with the path unquoted (its own
    # FileNotFoundError, GDAL's "PATH: No such file or directory").
    "vfix-bare": ({
        "tests/test_data.py": dedent("""
            import os

            HERE = os.path.dirname(os.path.abspath(__file__))


            def test_passes():
                assert True


            def test_reads_its_raster():
                path = os.path.join(HERE, "data", "grid.tif")
                if not os.path.exists(path):
                    raise FileNotFoundError("File specified not Found: " + path)
            """),
    }, (), "passed"),
    # NEMO-online-training's way: the tests stop for want of Django's settings, and the package
    # ships settings for them (tests/test_settings.py): run again in them, they pass.
    "vfix-djangoset": ({
        "vfix_djangoset/tests/__init__.py": "",
        "vfix_djangoset/tests/test_settings.py": 'INSTALLED_APPS = ["vfix_djangoset"]\n'
                                                  'DATABASES = {"default": {"NAME": ":memory:"}}\n',
        "vfix_djangoset/tests/test_app.py": dedent("""
            from django.conf import settings


            def test_the_database():
                assert settings.DATABASES["default"]["NAME"] == ":memory:"
            """),
    }, ("django",), "passed"),
    # django-cachalot's way: its runtests.py names the settings at the sdist's root; in them one
    # test of the package's fails, and counts.
    "vfix-djangorun": ({
        "runtests.py": dedent("""
            import os
            import sys

            os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings')
            sys.exit(os.system("python -m pytest tests"))
            """),
        "settings.py": 'INSTALLED_APPS = []\nDATABASES = {"default": {"NAME": "db.sqlite3"}}\nUSE_TZ = True\n',
        "tests/test_app.py": dedent("""
            from django.conf import settings


            def test_the_database():
                assert settings.DATABASES["default"]["NAME"] == "db.sqlite3"


            def test_the_time_zone():
                assert settings.USE_TZ is False
            """),
    }, ("django",), "tests-failed"),
    # mailosaur's way: a client that wants its service's API key from the environment; the CI has
    # it among its secrets, the farm never. An assertion of the test's own still counts.
    "vfix-creds": ({
        "vfix_creds/__init__.py": dedent("""
            import os


            class Client(object):
                def __init__(self, api_key=None):
                    self.api_key = api_key or os.environ.get("VFIX_API_KEY")
                    if not self.api_key:
                        raise ValueError("api_key must be set via the VFIX_API_KEY environment variable")

                def me(self):
                    import socket
                    return socket.getaddrinfo("api.vfix-creds.example", 443)


            LIMITS = {"authenticated": 5000, "anonymous": 60}


            def rate_limit():  # its bug is in the branch without a token
                return LIMITS["authenticated"] if os.environ.get("VFIX_GH_TOKEN") else LIMITS["anon"]
            """),
        "tests/test_client.py": dedent("""
            import os

            import vfix_creds
            from vfix_creds import Client


            def test_with_a_key():
                assert Client("k").api_key == "k"


            def test_against_the_service():
                assert Client().me()


            def test_a_bug_without_a_token():  # passes with a placeholder: no need shown, it counts
                assert vfix_creds.rate_limit() > 0


            def test_a_check_of_its_own():
                assert os.environ.get("VFIX_TOKEN", "unset") == "set"


            def test_a_bug_beside_a_key():  # fails the same with one: its own
                options = {"key": os.environ.get("VFIX_SECRET", "default")}
                return options["timeout"]
            """),
    }, (), "tests-failed"),
    # otpauthmiddleware's way: a release whose code was left out (setup.py's find_packages() found
    # nothing) installs only its metadata and requires nothing: nothing a user can use.
    "vfix-empty": ({"vfix_empty/__init__.py": None}, (), "tests-failed"),
    # weitsicht's way: the package checks the file itself and raises a FileNotFoundError that names
    # no path; the path it held is of the tree and the sdist lacks it. A path outside the tree counts.
    "vfix-nopath": ({
        "tests/test_raster.py": dedent("""
            import os

            HERE = os.path.dirname(os.path.abspath(__file__))


            def load(path):
                if not os.path.exists(path):
                    raise FileNotFoundError("Specified file does not exist")
                return path


            def test_passes():
                assert load(__file__)


            def test_reads_its_raster():
                load(os.path.join(HERE, "data", "grid.tif"))


            def test_reads_the_system_s():
                load("/nonexistent/vfix/settings.ini")


            def test_a_relative_path():  # the package's own lookup, by a relative path: counts
                load("conf/vfix.toml")
            """),
    }, (), "tests-failed"),
    # PROJ's way (weitsicht's tests): a library that reaches for the network once a process fails
    # the later tests without a try of their own; run again each alone, each tries. A test that
    # never tries counts.
    "vfix-netonce": ({
        "vfix_netonce/__init__.py": dedent("""
            import socket

            _tried = []
            _fetched = []


            def suffixes():  # tldextract's way: tries once a process, falls back to its own list
                if not _fetched:
                    _fetched.append(True)
                    try:
                        socket.getaddrinfo("publicsuffix.vfix.example", 443)
                    except (socket.error, OSError):
                        pass
                return ["com"]


            def transform():
                if not _tried:
                    _tried.append(True)
                    try:
                        socket.getaddrinfo("cdn.vfix-grids.example", 443)
                    except (socket.error, OSError):
                        pass
                raise RuntimeError("Error while transforming coordinates")
            """),
        "tests/test_grid.py": dedent("""
            from vfix_netonce import suffixes, transform


            def test_passes():  # the first run's try of the fallback list is this passing test's
                assert transform and suffixes() == ["com"]


            def test_first():
                transform()


            def test_second():
                transform()


            def test_third():
                transform()


            def test_a_bug():  # run again, it tries the network first, then its assertion fails: counts
                assert suffixes() == ["org"]
            """),
    }, (), "tests-failed"),
    # laya's way: a test_*.py that is a script, ending in sys.exit(), stopped pytest's whole
    # collection with an internal error; it is skipped as a script, and the tests run.
    "vfix-scriptmod": ({
        "tests/test_gate.py": "import sys\n\nprint('gate checks passed')\nsys.exit(0)\n",
        "tests/test_real.py": "import vfix_scriptmod\n\n\ndef test_version():\n    assert vfix_scriptmod.__version__\n",
    }, (), "passed"),
    # astrapy's way: a conftest that refuses to start without its CI's secrets. Run again with a
    # placeholder in each, the tests start: a pass counts; a failure then says nothing.
    "vfix-startcreds": ({
        "tests/conftest.py": "import os\n\nif not os.environ.get('VFIX_DB_TOKEN'):\n    raise ValueError('No credentials.')\n",
        "tests/test_unit.py": "import vfix_startcreds\n\n\ndef test_version():\n    assert vfix_startcreds.__version__\n",
    }, (), "passed"),
    "vfix-startcreds2": ({
        "tests/conftest.py": "import os\n\nif not os.environ.get('VFIX_DB_TOKEN'):\n    raise ValueError('No credentials.')\n",
        "tests/test_unit.py": "import os\n\n\ndef test_the_token():\n    assert os.environ['VFIX_DB_TOKEN'].startswith('tok-')\n",
    }, (), "no-tests"),
    # laya's way: a test module imports a private helper of the repository's the sdist leaves out.
    "vfix-privhelper": ({
        "tests/test_uses_helper.py": "from _common import make\n\n\ndef test_made():\n    assert make()\n",
        "tests/test_plain.py": "import vfix_privhelper\n\n\ndef test_version():\n    assert vfix_privhelper.__version__\n",
    }, (), "passed"),
    # redis's way: an asyncio client whose server the CI runs; its refusal is seen where asyncio
    # learns it (SO_ERROR), after a loop that resolved the name in a worker thread.
    "vfix-asyncsvc": ({
        "tests/test_client.py": dedent("""
            import asyncio

            import vfix_asyncsvc


            def test_version():
                assert vfix_asyncsvc.__version__


            def test_talks_to_its_server():
                async def ping():
                    await asyncio.open_connection("localhost", 6391)
                asyncio.run(ping())
            """),
    }, (), "passed"),
    # ...but a module of the package's that exits when imported is the package's own doing.
    "vfix-pkgexit": ({
        "vfix_pkgexit/cli.py": "import sys\n\n\ndef main():\n    return 0\n\n\nsys.exit(main())\n",
        "tests/test_cli.py": "from vfix_pkgexit.cli import main\n\n\ndef test_main():\n    assert main() == 0\n",
    }, (), "tests-failed"),
    # A conftest that wants a secret, and a package that does not import: run with a placeholder,
    # its failures say nothing, and the import check says what is the package's.
    "vfix-startbroken": ({
        "tests/conftest.py": "import os\n\nif not os.environ.get('VFIX_DB_TOKEN'):\n    raise ValueError('No credentials.')\n",
        "vfix_startbroken/__init__.py": "import collections\n\nMapping = collections.Mapping\n",
        "tests/test_unit.py": "import vfix_startbroken\n\n\ndef test_it():\n    assert vfix_startbroken.Mapping\n",
    }, (), "tests-failed"),
    # No tests: its modules are imported instead (autodep8's test), offline, each in its own process.
    "vfix-importok": ({"vfix_importok/__init__.py": "ANSWER = 42\n"}, (), "no-tests"),
    "vfix-importfail": ({"vfix_importfail/__init__.py": "import vfix_never_declared\n"}, (), "tests-failed"),
    # The test tools resolve as of the release's upload (uv's --exclude-newer), its runtime
    # dependencies as users get them today: the test plugin's later release breaks the tests.
    "vfix-asof": ({
        "requirements-test.txt": "vfix-asofdep\n",
        "tests/test_asof.py": dedent("""
            import vfix_asofdep
            import vfix_asofrt


            def test_the_test_tool_of_the_release_s_day():
                assert vfix_asofdep.__version__ == "1.0"


            def test_the_runtime_dependency_of_today():
                assert vfix_asofrt.__version__ == "2.0"
            """),
    }, ("vfix-asofrt",), "passed"),
    # A real failure stays a failure, next to a test that needed the network.
    "vfix-realfail": ({
        "tests/test_real.py": dedent("""
            import pathlib
            import socket

            import pytest


            def test_broken():
                assert 1 + 1 == 3, "a real bug"


            @pytest.mark.parametrize("n", range(5))
            def test_broken_too(n):
                # more broken tests than are ever re-run one at a time
                assert n < 0


            def test_missing_system_file():
                # a file missing outside the project's tree is no excuse
                open("/etc/vfix-realfail.conf")


            def test_flaky_beside_the_bugs():
                # run alone the second time: the broken tests beside it do not make it a failure
                marker = pathlib.Path(__file__).with_name(".ran-once")
                if not marker.exists():
                    marker.write_text("x")
                    raise AssertionError("fails the first time only")


            def test_needs_the_network():
                socket.create_connection(("pypi.org", 443), timeout=5)


            def test_reads_data_the_sdist_left_out():
                # toml's way: its test data is a git submodule, absent from the sdist. The release as
                # published cannot pass it: counted, and said.
                with open("toml-test/valid/table.toml") as fh:
                    assert fh.read()
            """),
        # urllib3's way: the project's uv takes a test tool from git; the farm has the index only
        "pyproject.toml": BUILD_SYSTEM + dedent("""
            [dependency-groups]
            test = ["vfix-helper"]

            [tool.uv.sources]
            vfix-helper = { git = "https://example.invalid/vfix-helper" }
            """),
    }, (), "tests-failed"),
}

TOOLS = {
    "vfix-cachedep": {"vfix_cachedep/__init__.py": dedent("""
        import os

        __version__ = "1.0"


        def touch():
            # like hypothesis or a plugin writing a cache beside itself at run time
            path = os.path.join(os.path.dirname(__file__), "cache.db")
            with open(path, "w") as fh:
                fh.write("cache")
            return path
        """)},
    # Django's settings as Django makes them: configured only once a settings module is named
    "django": {"django/__init__.py": dedent("""
        import os


        def setup():  # as Django's: each app of INSTALLED_APPS imported, and its models module
            from django.conf import settings
            for app in settings.INSTALLED_APPS:
                if not app.startswith("django."):
                    module = __import__(app, fromlist=["__name__"])
                    if os.path.isfile(os.path.join(os.path.dirname(module.__file__), "models.py")):
                        __import__(app + ".models")
        """),
        "django/conf/urls.py": "def url(*args, **kwargs):\n    return args\n",  # `patterns` is gone
        "django/conf/__init__.py": dedent("""
        import os


        class ImproperlyConfigured(Exception):
            pass


        class LazySettings(object):
            _wrapped = None

            @property
            def configured(self):
                return self._wrapped is not None

            def configure(self, **options):
                self._wrapped = type("Settings", (object,), options)

            def __getattr__(self, name):
                if self._wrapped is None:
                    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
                        raise ImproperlyConfigured(
                            "Requested setting %s, but settings are not configured. You must either define the "
                            "environment variable DJANGO_SETTINGS_MODULE or call settings.configure()." % name)
                    self._wrapped = __import__(os.environ["DJANGO_SETTINGS_MODULE"], fromlist=["__name__"])
                return getattr(self._wrapped, name)


        settings = LazySettings()
        """)},
    # pytest-django's place: this Django reads DJANGO_SETTINGS_MODULE itself
    "pytest-django": {"pytest_django/__init__.py": ""},
    "vfix-helper": {},
    "vfix-undeclared": {},
    "vfix-later": {},
    "vfix-optional": {},
    "vfix-pytest8-plugin": {},
}
TOOL_DEPENDENCIES = {"vfix-pytest8-plugin": ("pytest<9",)}
SDIST_ONLY = {"vfix-tree": ("vfix_tree/_kernel.pxd", "vfix_tree/_kernel.c")}  # a backend's excludes
WHEEL_ONLY = {"vfix-testsmod": ("vfix_testsmod/__init__.py", "vfix_testsmod/tests.py")}  # built from src/
OWN_TESTS_ONLY = ("vfix-unittest", "vfix-noinit", "vfix-cfgpkg", "vfix-noexcuse", "vfix-allskip", "vfix-allnet",
                  "vfix-importok", "vfix-importfail", "vfix-asof", "vfix-nsinst", "vfix-testmain", "vfix-infer2",
                  "vfix-extras", "vfix-extras2", "vfix-writes", "vfix-inlacks", "vfix-make", "vfix-script",
                  "vfix-scriptfail", "vfix-helpers", "vfix-testsmod", "vfix-keeprt", "vfix-nstests", "vfix-doctests",
                  "vfix-acceptance", "vfix-djangoapp", "vfix-djangoown", "vfix-inwheel", "vfix-djangourls",
                  "vfix-notatest", "vfix-badtests", "vfix-bare", "vfix-empty",
                  "vfix-djangoset", "vfix-djangorun", "vfix-creds", "vfix-nopath",
                  "vfix-netonce", "vfix-scriptmod", "vfix-startcreds", "vfix-startcreds2",
                  "vfix-privhelper", "vfix-asyncsvc", "vfix-pkgexit", "vfix-startbroken",
                  "vfix-extrasown")
# Released twice, a day of its own each (PEP 700 upload times on the local index).
DATED = {"vfix-asofdep": ("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
         "vfix-asofrt": ("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z")}
RELEASED = {"vfix-asof": "2024-06-01T00:00:00Z"}  # without the standard package's test file


@pytest.fixture(scope="module")
def verdict_reports(tmp_path_factory):
    dists = tmp_path_factory.mktemp("vdists")
    for name, files in TOOLS.items():
        write_package(dists, name, VERSION, "notests", extra_files=files, kind="wheel",
                      dependencies=TOOL_DEPENDENCIES.get(name, ()))
    for name, (files, deps, _) in FIXTURES.items():
        write_package(dists, name, VERSION, "notests" if name in OWN_TESTS_ONLY else "pass",
                      dependencies=deps, extra_files=files, kind="sdist" if name == "vfix-inpkg" else "both",
                      sdist_only=SDIST_ONLY.get(name, ()), wheel_only=WHEEL_ONLY.get(name, ()))
    times = {}
    for name, days in DATED.items():
        for version, day in zip(("1.0", "2.0"), days):
            for built in write_package(dists, name, version, "notests", kind="wheel"):
                times[built.name] = day
    out = {}
    with PackageIndex(dists, ensure_wheelhouse()) as index:
        index.set_upload_times(times)
        index.set_upload_times({p.name: RELEASED[n] for n in RELEASED for p in dists.iterdir()
                                if p.name.startswith(n.replace("-", "_") + "-")})
        for name in FIXTURES:
            workdir = tmp_path_factory.mktemp(name)
            proc, report = run_cli(name, workdir, index.url)
            if report is not None:
                report["_workdir"] = workdir  # (the test's; the runner's own report has no such field)
            out[name] = (proc, report)
    return out


def check(reports, name):
    proc, report = reports[name]
    expected = FIXTURES[name][2]
    failures = (report.get("tests") or {}).get("failures")  # first: a long message would hide them
    assert report["outcome"] == expected, (report["reason"], failures, proc.stdout[-3000:])
    return report, report["tests"]


@pytest.mark.slow
def test_a_missing_file_of_the_tree_said_without_quotes(verdict_reports):
    report, tests = check(verdict_reports, "vfix-bare")
    assert tests["passed"] == 1
    assert tests["sdist_lacks"] == [{"test": "tests/test_data.py::test_reads_its_raster", "path": "tests/data/grid.tif"}]


@pytest.mark.slow
def test_a_release_that_installs_nothing_fails(verdict_reports):
    report, tests = check(verdict_reports, "vfix-empty")
    assert report["reason"].startswith("vfix-empty 1.0 installs nothing but its own metadata: no module")
    # a metapackage (it requires what it stands for) is no such release
    from farm_runner.host.import_check import installs_nothing
    record = ["m-1.0.dist-info/METADATA", "m-1.0.dist-info/RECORD"]
    assert installs_nothing(record, []) and not installs_nothing(record, ["requests"])
    assert not installs_nothing([], []) and not installs_nothing(record + ["m/__init__.py"], [])


@pytest.mark.slow
def test_a_missing_file_the_error_does_not_name_is_found_where_it_was_raised(verdict_reports):
    report, tests = check(verdict_reports, "vfix-nopath")
    assert tests["sdist_lacks"] == [{"test": "tests/test_raster.py::test_reads_its_raster", "path": "tests/data/grid.tif"}]
    assert [f["test"] for f in tests["failures"]] == ["tests/test_raster.py::test_reads_the_system_s",
                                                      "tests/test_raster.py::test_a_relative_path"]


@pytest.mark.slow
def test_tests_failed_by_a_library_that_tries_the_network_once_a_process_each_try_alone(verdict_reports):
    report, tests = check(verdict_reports, "vfix-netonce")
    assert sorted(e["test"] for e in tests["needs_network"]) == [
        "tests/test_grid.py::test_%s" % t for t in ("first", "second", "third")]
    assert [f["test"] for f in tests["failures"]] == ["tests/test_grid.py::test_a_bug"]
    log = (report["_workdir"] / "test.log").read_text()
    assert "[farm: 1 of them reached for the network when run again; running the 2 others that failed again " \
           "one at a time]" in log


@pytest.mark.slow
def test_a_test_module_that_exits_at_import_is_a_script_not_the_end_of_the_run(verdict_reports):
    report, tests = check(verdict_reports, "vfix-scriptmod")
    assert tests["passed"] == 1 and tests["skipped"] == 1 and tests["errors"] == 0
    report, tests = check(verdict_reports, "vfix-pkgexit")
    assert "internal error" in report["reason"]


@pytest.mark.slow
def test_tests_that_cannot_start_without_credentials_start_with_placeholders(verdict_reports):
    report, tests = check(verdict_reports, "vfix-startcreds")
    assert tests["passed"] == 1
    log = (report["_workdir"] / "test.log").read_text()
    assert "[farm: the tests could not start, and read credentials this run does not set (VFIX_DB_TOKEN); " \
           "running them again with a placeholder in each]" in log
    report, tests = check(verdict_reports, "vfix-startcreds2")
    assert report["reason"].startswith("Not tested: the tests could not start without credentials this run does "
                                       "not set (VFIX_DB_TOKEN); with a placeholder in each they started")
    report, tests = check(verdict_reports, "vfix-startbroken")
    assert "importing vfix_startbroken fails: AttributeError" in report["reason"]


@pytest.mark.slow
def test_a_private_helper_the_sdist_leaves_out_is_its_lack(verdict_reports):
    report, tests = check(verdict_reports, "vfix-privhelper")
    assert tests["sdist_lacks"] == [{"test": "tests/test_uses_helper.py", "path": "tests/_common.py"}]
    assert tests["inferred"] == []


@pytest.mark.slow
def test_a_service_refused_to_an_asyncio_client_is_seen(verdict_reports):
    report, tests = check(verdict_reports, "vfix-asyncsvc")
    assert tests["needs_service"] == [{"test": "tests/test_client.py::test_talks_to_its_server",
                                       "service": "127.0.0.1:6391"}]


@pytest.mark.slow
def test_no_extra_is_installed_for_a_module_the_release_itself_cannot_import(verdict_reports):
    report, tests = check(verdict_reports, "vfix-extrasown")
    assert tests["inferred"] == [] and not any("s3" in d["source"] for d in tests["deps"])
    assert tests["imports"][0]["error"].startswith("ModuleNotFoundError: No module named 'vfix_asofdep'")


def test_a_private_module_is_never_a_distribution_to_install():
    # laya's tests import the repository's `_common`: it went to uv as "-common", read as `-c ommon`
    from farm_runner.host.missing import distributions_for
    assert distributions_for(["_common", "__index_url", "yaml", "research"], ["laya"], set()) == [
        ("yaml", "PyYAML"), ("research", "research")]


@pytest.mark.slow
def test_a_script_named_test_py_is_no_test_module(verdict_reports):
    report, tests = check(verdict_reports, "vfix-notatest")
    assert "unittest" in tests["how"] and tests["errors"] == 0
    log = (report["_workdir"] / "test.log").read_text()
    assert "[farm: tool/test.py defines no test (no TestCase, no test function): its import error is not counted]" in log
    report, tests = check(verdict_reports, "vfix-badtests")
    assert tests["errors"] == 1 and "app.tests" in tests["failures"][0]["test"], tests["failures"]


@pytest.mark.slow
def test_tools_writing_in_their_own_folders_are_not_the_release_s_leftovers(verdict_reports):
    report, tests = check(verdict_reports, "vfix-audit")
    assert report["leftovers"] == [] and tests["passed"] == 4
    assert {"requirement": "vfix-cachedep", "source": "tox deps"} in tests["deps"]


@pytest.mark.slow
def test_unittest_style_tests_run_with_unittest(verdict_reports):
    report, tests = check(verdict_reports, "vfix-unittest")
    assert tests["tool"] == "unittest" and "unittest" in tests["how"]
    # counted by test: four tests, one skipped; the skipped subtests do not make a test skipped twice
    assert (tests["passed"], tests["failed"], tests["skipped"]) == (3, 0, 1), tests


@pytest.mark.slow
def test_the_tox_env_for_this_interpreter_is_run(verdict_reports):
    report, tests = check(verdict_reports, "vfix-toxenv")
    assert tests["how"].startswith("tox env py3%s-tests" % MAIN_PY.split(".")[1]), tests["how"]
    assert tests["passed"] == 2 and tests["failed"] == 0
    # the option's value stays an option's value
    assert tests["command"][-3:] == ["--ignore", "tests/broken", "tests"]


@pytest.mark.slow
def test_tests_run_from_the_whole_sdist_against_the_installed_copy(verdict_reports):
    report, tests = check(verdict_reports, "vfix-tree")
    assert tests["passed"] == 6
    assert tests["set_aside"] == ["vfix_tree/"]  # the package's own source, so the installed copy is imported
    assert "site-packages" in tests["imported_from"]["vfix_tree"]


@pytest.mark.slow
def test_test_dependencies_from_tox_requirement_files(verdict_reports):
    report, tests = check(verdict_reports, "vfix-deps")
    assert tests["deps"] == [{"requirement": "vfix-helper>=1.0", "source": "tox deps -r requirements-dev.txt"}]
    assert tests["passed"] == 3


@pytest.mark.slow
def test_tests_only_the_sdist_holds_inside_the_package(verdict_reports):
    report, tests = check(verdict_reports, "vfix-inpkg")
    assert tests["passed"] == 3 and tests["set_aside"] == ["vfix_inpkg/"]
    assert "site-packages" in tests["imported_from"]["vfix_inpkg"]


@pytest.mark.slow
def test_the_project_s_pinned_pytest_wins(verdict_reports):
    report, tests = check(verdict_reports, "vfix-pin")
    assert tests["deps"] == [{"requirement": "pytest==8.3.5", "source": "requirements-test.txt"}]
    assert tests["passed"] == 3


@pytest.mark.slow
def test_reporting_options_of_missing_plugins_are_neutralised(verdict_reports):
    report, tests = check(verdict_reports, "vfix-cov")
    assert tests["passed"] == 2 and "configuration" in tests["how"]


@pytest.mark.slow
def test_network_and_flaky_failures_are_the_environment_s(verdict_reports):
    report, tests = check(verdict_reports, "vfix-env")
    assert [n["test"] for n in tests["needs_network"]] == ["tests/test_env.py::test_needs_the_network"]
    assert any(w.startswith("lookup example.org") for w in tests["needs_network"][0]["tried"])
    assert tests["flaky"] == ["tests/test_env.py::test_flaky"]
    assert tests["lacks_program"] == [{"test": "tests/test_env.py::test_a_program_the_worker_lacks",
                                       "program": "vfix-mkisofs"}]
    assert tests["sdist_lacks"] == [{"test": "tests/test_env.py::test_writes_into_a_folder_the_sdist_does_not_ship",
                                     "path": "tests/output/result.txt"}]
    assert tests["failures"] == []
    assert "Not counted: 1 needed the network, which the sandbox does not give; 1 needed a program this worker " \
        "lacks (vfix-mkisofs); 1 read or wrote files of the project's tree that the sdist does not ship " \
        "(tests/output/result.txt); 1 failed once and passed when run again (flaky)." in report["reason"]


@pytest.mark.slow
def test_a_module_that_needs_the_network_to_be_collected_does_not_stop_the_others(verdict_reports):
    report, tests = check(verdict_reports, "vfix-clone")
    assert tests["passed"] == 2 and "--continue-on-collection-errors" in tests["command"]  # the other module's
    # (git's own lookup of the host, seen by the native network watch, beside the probe's clone)
    assert tests["needs_network"][0]["test"] == "tests/test_accuracy.py"
    assert "git clone https://example.invalid/test-data.git (from a subprocess)" in tests["needs_network"][0]["tried"]
    assert [n["test"] for n in tests["needs_network"][1:]] == [
        "tests/test_upstream.py::test_upstream[%s]" % case for case in ("one", "two", "three")]
    assert all("git clone https://example.invalid/upstream.git (from a subprocess)" in n["tried"]
               for n in tests["needs_network"][1:])
    assert tests["failures"] == []


@pytest.mark.slow
def test_tests_that_need_a_django_project_the_sdist_leaves_out_are_not_tested(verdict_reports):
    report, tests = check(verdict_reports, "vfix-djangoapp")
    setting = "Django settings (DJANGO_SETTINGS_MODULE)"
    assert tests["needs_configuration"] == [{"test": "tests/test_app.py::test_the_%s" % t, "setting": setting}
                                            for t in ("database", "cache")]
    assert tests["passed"] == 0 and tests["failures"] == [] and tests["inferred"][0]["module"] == "django"
    assert "2 needed Django settings (DJANGO_SETTINGS_MODULE), which the release does not ship" in report["reason"]
    # the same words raised by the package's own code excuse nothing
    report, tests = check(verdict_reports, "vfix-djangoown")
    assert [f["test"] for f in tests["failures"]] == ["tests/test_own.py::test_its_own_check"]


@pytest.mark.slow
def test_tests_that_need_django_settings_run_in_those_the_release_ships(verdict_reports):
    report, tests = check(verdict_reports, "vfix-djangoset")
    assert tests["passed"] == 1 and tests["needs_configuration"] == []
    assert tests["how"].endswith("in the Django settings the release ships (vfix_djangoset.tests.test_settings), "
                                 "with pytest-django")
    assert [i["requirement"] for i in tests["inferred"]] == ["pytest-django"]
    # named by its runtests.py: what fails in them is the package's
    report, tests = check(verdict_reports, "vfix-djangorun")
    assert tests["passed"] == 1 and [f["test"] for f in tests["failures"]] == ["tests/test_app.py::test_the_time_zone"]
    assert "(settings)" in tests["how"]


@pytest.mark.slow
def test_a_test_that_needs_credentials_the_farm_lacks_is_not_counted(verdict_reports):
    report, tests = check(verdict_reports, "vfix-creds")
    assert tests["needs_credentials"] == [{"test": "tests/test_client.py::test_against_the_service",
                                           "variable": "VFIX_API_KEY"}]
    assert [f["test"] for f in tests["failures"]] == ["tests/test_client.py::test_a_bug_without_a_token",
                                                      "tests/test_client.py::test_a_check_of_its_own",
                                                      "tests/test_client.py::test_a_bug_beside_a_key"]
    assert "1 needed credentials the farm does not have (VFIX_API_KEY)" in report["reason"]
    log = (report["_workdir"] / "test.log").read_text()
    assert "[farm: 3 failed test(s) read credentials this run does not set (VFIX_API_KEY, VFIX_GH_TOKEN, " \
           "VFIX_SECRET); running them again once with a placeholder in each]" in log


@pytest.mark.slow
def test_a_django_app_without_settings_whose_own_module_does_not_import_fails(verdict_reports):
    report, tests = check(verdict_reports, "vfix-djangourls")
    assert report["reason"].startswith("The tests need Django settings, which the release does not ship; set up in "
                                       "minimal ones of the farm's, the release's own module does not import: "
                                       "ImportError: cannot import name 'patterns' from 'django.conf.urls'")
    assert report["reason"].endswith("(in vfix_djangourls/urls.py).")
    # an app that sets up cleanly stays not tested
    assert check(verdict_reports, "vfix-djangoapp")[0]["outcome"] == "no-tests"


@pytest.mark.slow
def test_a_repository_file_the_installed_tests_open_is_what_the_sdist_lacks(verdict_reports):
    report, tests = check(verdict_reports, "vfix-inwheel")
    assert tests["how"] == "tests inside the installed package" and tests["passed"] == 1
    assert tests["sdist_lacks"] == [{"test": "test_deploy.py::test_from_the_repository",
                                     "path": "vfix_inwheel/manifests/deploy.yaml"}], tests["failures"]


@pytest.mark.slow
def test_a_plainly_missing_module_is_inferred_once_and_said(verdict_reports):
    report, tests = check(verdict_reports, "vfix-infer")
    assert tests["inferred"] == [{"module": "vfix_undeclared", "requirement": "vfix-undeclared"},
                                 {"module": "vfix_later", "requirement": "vfix-later"}]
    assert tests["passed"] == 5
    log = report["phases"]["test"]["log_excerpt"]
    # the test files' own import before the first run; the helper's after the run that failed on it
    assert log.index("the tests need vfix_undeclared") < log.index("-m pytest") < log.index("the tests need vfix_later")


@pytest.mark.slow
def test_a_module_the_tests_import_comes_from_the_release_s_own_extras_first(verdict_reports):
    report, tests = check(verdict_reports, "vfix-extras")
    assert tests["inferred"] == [] and tests["passed"] == 1
    assert {"requirement": "vfix-asofdep==1.0", "source": "the release's extra full (its tests import what "
            "it provides)"} in tests["deps"]
    assert "each alone" in report["phases"]["test"]["log_excerpt"]
    report, tests = check(verdict_reports, "vfix-extras2")
    assert tests["inferred"] == [] and tests["passed"] == 1 and tests["deps"] == [
        {"requirement": "vfix-later", "source": "the release's extra html (its tests import what it provides)"}]


@pytest.mark.slow
def test_what_the_tests_wrote_in_the_installed_package_is_not_the_uninstall_s(verdict_reports):
    report, tests = check(verdict_reports, "vfix-writes")
    assert report["leftovers"] == [] and report["phases"]["uninstall"]["status"] == "ok"
    assert tests["wrote_in_package"] == ["vfix_writes/tmp_made_by_test/empty/", "vfix_writes/tmp_made_by_test/note.txt"]


@pytest.mark.slow
def test_test_requirements_without_a_solution_together_install_each_alone(verdict_reports):
    report, tests = check(verdict_reports, "vfix-eachdep")
    assert tests["deps_error"].endswith("Not installed: pytest==1.0.0, vfix-nowhere-on-the-index, vfix-later==99.0.")
    log = (report["_workdir"] / "test.log").read_text()
    started = [line for line in log.splitlines() if line.startswith("$ ") and " install " in line]
    assert len(started) == 2 and started[1].endswith(" vfix-later"), started  # together, then the one the index has


@pytest.mark.slow
def test_a_test_that_needs_a_service_the_sandbox_does_not_run_is_not_counted(verdict_reports):
    report, tests = check(verdict_reports, "vfix-service")
    assert sorted((e["test"].split("::")[1], e["service"]) for e in tests["needs_service"]) == [
        ("test_a_program_it_starts_asks_docker", "a Docker daemon at /run/docker.sock"),
        ("test_its_server_thread_asks_docker", "a Docker daemon at /var/run/docker.sock"),
        ("test_talks_to_its_database", "127.0.0.1:6379")]
    assert tests["failures"] == [] and tests["passed"] == 2
    assert "3 needed a service this worker does not run (127.0.0.1:6379, a Docker daemon at" in report["reason"]


@pytest.mark.slow
def test_the_makefile_s_test_target_is_the_project_s_command(verdict_reports):
    report, tests = check(verdict_reports, "vfix-make")
    assert tests["how"] == "the `unit` target of Makefile" and tests["command"][-1:] == ["tests/unit"]
    assert tests["passed"] == 1 and tests["deps"] == [{"requirement": "vfix-later", "source": "Makefile unit"}]


@pytest.mark.slow
def test_the_project_s_test_script_is_run_and_its_exit_status_is_the_verdict(verdict_reports):
    report, tests = check(verdict_reports, "vfix-script")
    assert tests["tool"] == "script" and tests["command"][-1].endswith("/site-packages/vfix_script/tests/__main__.py")
    assert tests["passed"] == 1 and "[test] ok: The project's test script (vfix_script/tests/__main__.py of the " \
        "installed package) ended well (exit status 0)." in report["phases"]["test"]["log_excerpt"]
    report, tests = check(verdict_reports, "vfix-scriptfail")
    assert report["reason"].startswith("The project's test script (tests/run_tests.py) failed (exit status 1): ")
    assert "a real bug" in report["reason"]


@pytest.mark.slow
def test_the_installed_test_module_runs_when_the_tree_s_runs_find_nothing(verdict_reports):
    report, tests = check(verdict_reports, "vfix-testsmod")
    assert tests["passed"] == 1 and tests["command"][-2:] == ["--pyargs", "vfix_testsmod.tests"]
    assert tests["how"].endswith("then the tests inside the installed package, as the tree's found no tests")


@pytest.mark.slow
def test_the_runtime_dependencies_stay_as_users_get_them(verdict_reports):
    report, tests = check(verdict_reports, "vfix-keeprt")
    assert tests["passed"] == 1 and tests["put_back"] == ["vfix-asofrt==2.0"]


@pytest.mark.slow
def test_a_package_of_testing_helpers_is_no_tests(verdict_reports):
    assert check(verdict_reports, "vfix-acceptance")[1]["passed"] == 1  # a tests folder by its modules' names
    report, tests = check(verdict_reports, "vfix-helpers")
    assert report["reason"].startswith("No tests found in vfix-helpers 1.0")
    assert "vfix-nowhere-to-be-found" not in report["phases"]["test"]["log_excerpt"]


@pytest.mark.slow
def test_the_installed_package_s_tests_run_when_none_of_the_tree_s_can(verdict_reports):
    report, tests = check(verdict_reports, "vfix-inlacks")
    assert tests["passed"] == 1 and tests["command"][-2:] == ["--pyargs", "vfix_inlacks.test"]
    assert tests["how"].endswith("then the tests inside the installed package, as the tree's could not run as the "
                                 "sdist ships them")


@pytest.mark.slow
def test_native_code_reaching_for_the_network_is_seen(verdict_reports):
    report, tests = check(verdict_reports, "vfix-native")
    assert sorted(tests["needs_network"], key=lambda n: n["test"]) == [
        {"test": "tests/test_native.py::test_a_dns_query_from_native_code", "tried": ["a name lookup (DNS query to 127.0.0.1:53)"]},
        {"test": "tests/test_native.py::test_a_lookup_in_native_code", "tried": ["lookup pypi.org"]}]
    assert tests["failures"] == [] and tests["passed"] == 2


@pytest.mark.slow
def test_a_configured_test_folder_without_init_inside_the_package_runs_by_its_installed_path(verdict_reports):
    report, tests = check(verdict_reports, "vfix-nstests")
    assert tests["passed"] == 1 and tests["command"][-1].endswith("site-packages/vfix_nstests/tests")


@pytest.mark.slow
def test_the_project_s_options_for_pytest_s_cache_are_kept(verdict_reports):
    report, tests = check(verdict_reports, "vfix-failedfirst")
    assert tests["passed"] == 2 and "no:cacheprovider" not in tests["command"]


@pytest.mark.slow
def test_an_undeclared_module_no_distribution_provides_keeps_no_other_out(verdict_reports):
    report, tests = check(verdict_reports, "vfix-infer2")
    assert tests["inferred"] == [{"module": "vfix_later", "requirement": "vfix-later"}]
    assert [f["test"] for f in tests["failures"]] == ["tests/test_nowhere.py"]
    assert "each alone" in report["phases"]["test"]["log_excerpt"]


@pytest.mark.slow
def test_the_farm_s_pytest_serves_a_project_that_pins_none(verdict_reports):
    report, tests = check(verdict_reports, "vfix-farmpytest")
    assert tests["passed"] == 4
    assert tests["pytest"]["version"] == "9.2.0"
    assert tests["deps"] == [
        {"requirement": "pytest>=7", "source": "pyproject.toml [dependency-groups] test; the farm's pytest 9.2.0"},
        {"requirement": 'vfix-later; python_version < "3"',
         "source": "pyproject.toml [dependency-groups] test; not for this interpreter"}]
    assert "uv pip install" not in report["phases"]["test"]["log_excerpt"]  # nothing to install: one sandbox


@pytest.mark.slow
def test_a_plugin_that_needs_an_older_pytest_gets_it(verdict_reports):
    report, tests = check(verdict_reports, "vfix-oldplugin")
    assert tests["pytest"]["version"].startswith("8.")
    assert tests["pytest"]["chosen"] == "the project's own (its test dependencies ask for it)"
    assert "installing them again with the pytest they ask for" in report["phases"]["test"]["log_excerpt"]


@pytest.mark.slow
def test_testpaths_naming_the_package_run_its_installed_tests_with_the_project_s_configuration(verdict_reports):
    report, tests = check(verdict_reports, "vfix-cfgpkg")
    assert tests["passed"] == 2  # the nested folder's test too
    assert tests["command"][-2:] == ["--pyargs", "vfix_cfgpkg"] and "configuration" in tests["how"]
    assert "site-packages" in tests["imported_from"]["vfix_cfgpkg"]


@pytest.mark.slow
def test_tests_that_cannot_be_collected_as_shipped_are_no_pass(verdict_reports):
    report, tests = check(verdict_reports, "vfix-noinit")
    assert sorted(x["test"] for x in tests["sdist_lacks"]) == ["tests/test_one.py", "tests/test_two.py"]
    assert {x["path"] for x in tests["sdist_lacks"]} == {"tests/__init__.py"}
    assert report["reason"] == "The tests could not run here: none passed, and every failure was the " \
        "environment's. Not counted: 2 read or wrote files of the project's tree that the sdist does not ship " \
        "(tests/__init__.py)."


@pytest.mark.slow
def test_no_failure_is_excused_by_its_message_a_removed_module_or_the_sandbox_s_own_name(verdict_reports):
    report, tests = check(verdict_reports, "vfix-noexcuse")
    assert sorted(f["test"].split("::")[1] for f in tests["failures"]) == [
        "test_a_bug_after_a_lookup_of_its_own_name", "test_a_message_that_names_an_installer",
        "test_a_removed_standard_module", "test_its_own_server_that_never_started",
        "test_its_own_server_thread_that_died_before_it_bound", "test_its_own_socket_that_is_no_daemon_s"]
    assert tests["needs_network"] == [] and tests["interpreter_lacks"] == [] and tests["flaky"] == []
    assert tests["needs_service"] == []


@pytest.mark.slow
def test_no_pass_without_a_test_that_passed(verdict_reports):
    report, tests = check(verdict_reports, "vfix-allskip")
    assert (tests["passed"], tests["skipped"]) == (0, 1)
    assert report["reason"] == "pytest ran 1 tests and skipped every one: none passed."
    report, tests = check(verdict_reports, "vfix-allnet")
    assert tests["passed"] == 0 and [n["test"] for n in tests["needs_network"]] == ["tests/test_net.py::test_needs_the_network"]
    assert report["reason"] == "The tests could not run here: none passed, and every failure was the environment's. " \
        "Not counted: 1 needed the network, which the sandbox does not give."


@pytest.mark.slow
def test_tests_of_a_namespace_package_run_from_its_installed_folder(verdict_reports):
    report, tests = check(verdict_reports, "vfix-nsinst")
    assert tests["passed"] == 1 and any(w.endswith("site-packages/vfix_nsinst/tests") for w in tests["command"])


@pytest.mark.slow
def test_a_unittest_module_s_own_runner_is_no_test(verdict_reports):
    report, tests = check(verdict_reports, "vfix-testmain")
    assert (tests["passed"], tests["failed"], tests["errors"]) == (1, 0, 0)


@pytest.mark.slow
def test_a_release_without_tests_is_imported_instead(verdict_reports):
    report, tests = check(verdict_reports, "vfix-importok")
    assert report["reason"] == "No tests found in vfix-importok 1.0 (sdist or installed package); it imports " \
        "cleanly (vfix_importok)."
    assert tests["imports"] == [{"module": "vfix_importok", "imports": True, "rc": 0, "counted": True, "error": ""}]
    report, tests = check(verdict_reports, "vfix-importfail")
    assert report["reason"] == "No tests found in vfix-importfail 1.0 (sdist or installed package), and importing " \
        "vfix_importfail fails: ModuleNotFoundError: No module named 'vfix_never_declared' (it imports " \
        "vfix_never_declared, which the release does not declare)."


@pytest.mark.slow
def test_tests_that_cannot_start_are_not_tested_and_the_release_is_imported(verdict_reports):
    report, tests = check(verdict_reports, "vfix-nostart")
    assert report["reason"].startswith("Not tested: the tests could not start (pytest stopped before any test ran, "
                                       "exit status 4: "), report["reason"]
    assert report["reason"].endswith("; it imports cleanly (vfix_nostart).")
    assert [x["module"] for x in tests["imports"]] == ["vfix_nostart"]


@pytest.mark.slow
def test_test_tools_as_of_the_release_and_its_dependencies_as_of_today(verdict_reports):
    report, tests = check(verdict_reports, "vfix-asof")
    assert tests["as_of"] == "2024-06-01T00:00:00Z" and tests["passed"] == 2
    assert {"name": "vfix-asofrt", "version": "2.0"} in report["dependencies"]


@pytest.mark.slow
def test_a_real_failure_stays_the_package_s(verdict_reports):
    report, tests = check(verdict_reports, "vfix-realfail")
    assert [f["test"] for f in tests["failures"]] == ["tests/test_real.py::test_broken"] + [
        "tests/test_real.py::test_broken_too[%d]" % n for n in range(5)] + [
        "tests/test_real.py::test_missing_system_file"]
    assert tests["sdist_lacks"] == [{"test": "tests/test_real.py::test_reads_data_the_sdist_left_out",
                                     "path": "toml-test/valid/table.toml"}]
    # seven failed twice and are not run alone again; the flaky one passed alone
    assert tests["flaky"] == ["tests/test_real.py::test_flaky_beside_the_bugs"]
    assert "running 1 of them again one at a time" in report["phases"]["test"]["log_excerpt"]
    assert "a real bug" in tests["failures"][0]["message"]
    assert [n["test"] for n in tests["needs_network"]] == ["tests/test_real.py::test_needs_the_network"]
    assert tests["deps"] == [{"requirement": "vfix-helper", "source": "pyproject.toml [dependency-groups] test; the "
                              "project takes it from https://example.invalid/vfix-helper, the farm from the index"}]
    assert "The project takes vfix-helper from elsewhere than the index" in report["reason"]
    # pytest's count, and what of it was the environment's
    assert report["reason"].startswith("Tests failed: ") and " 10 failed," in report["reason"]
    assert "Not counted: 1 needed the network, which the sandbox does not give; 1 read or wrote files of the " \
        "project's tree that the sdist does not ship (toml-test/valid/table.toml); 1 failed once and passed " \
        "when run again (flaky)." in report["reason"]


# -- the pieces, without a runner ---------------------------------------------------------------------

def test_tox_env_lists_and_the_env_for_this_interpreter():
    from farm_runner.inside import discover

    envs = discover.expand_envlist("pre-commit,\n py3{9-14}-tests,\n # a comment\n pypy3-tests, docs-{build,lint}")
    assert envs == ["pre-commit", "py39-tests", "py310-tests", "py311-tests", "py312-tests", "py313-tests",
                    "py314-tests", "pypy3-tests", "docs-build", "docs-lint"]
    assert discover.choose_tox_env(envs, (3, 12)) == "py312-tests"
    assert discover.choose_tox_env(envs, (3, 8)) is None  # no env for 3.8, and never pypy's or lint's
    # tox 4's TOML env names are interpreter versions
    assert discover.choose_tox_env(["3.15", "3.12", "type", "fix", "docs"], (3, 12)) == "3.12"
    assert discover.choose_tox_env(["lint", "py3", "notebooks"], (3, 11)) == "py3"


def test_plain_tox_runs_the_base_env_not_a_named_one(tmp_path):
    from farm_runner.inside import discover

    # zipp's tox.ini: no env list, a base env and named ones (diffcov, docs, release)
    (tmp_path / "tox.ini").write_text(
        "[testenv]\nextras =\n\ttest\ncommands =\n\tpytest {posargs}\n\n"
        "[testenv:diffcov]\ndeps =\n\tdiff-cover\ncommands =\n\tpytest {posargs} --cov-report xml\n\n"
        "[testenv:docs]\nchangedir = docs\ncommands =\n\tpython -m sphinx . build\n")
    plan = discover.tox_plan(str(tmp_path), (3, 12), "cpython")
    assert plan["how"] == "tox env py312 (tox.ini)" and plan["tox"]["extras"] == ["test"]
    # with no base env, a named env for the tests is what there is
    (tmp_path / "tox.ini").write_text("[testenv:tests]\ncommands = pytest tests\n\n[testenv:lint]\ncommands = ruff .\n")
    assert discover.tox_plan(str(tmp_path), (3, 12), "cpython")["how"] == "tox env tests (tox.ini)"
    # markdown-it-py's: the env list names py310 only; the section for 3.12 is a generative name
    (tmp_path / "tox.ini").write_text(
        "[tox]\nenvlist = py310\n\n[testenv]\nusedevelop = true\n\n"
        "[testenv:py{310,311,312,313}]\nextras =\n    coverage\n    testing\ncommands = pytest {posargs:tests/}\n\n"
        "[testenv:py{310,311,312,313}-plugins]\nextras = testing\ncommands = pytest {posargs}\n")
    plan = discover.tox_plan(str(tmp_path), (3, 12), "cpython")
    assert plan["how"] == "tox env py312 (tox.ini)" and plan["tox"]["extras"] == ["coverage", "testing"]
    assert plan["args"] == ["tests/"]


def test_the_project_s_pytest_words_for_the_farm(tmp_path):
    from farm_runner.inside import discover

    (tmp_path / "tests" / "broken").mkdir(parents=True)
    words = ["--ignore", "tests/broken", "-n", "auto", "--cov=pkg", "--cov-report", "xml", "-m", "not slow",
             "-p", "no:randomly", "tests", "docs/missing", "-W", "error", "-v", "--color=yes"]
    assert discover.pytest_args(str(tmp_path), "", words) == [
        "--ignore", "tests/broken", "-m", "not slow", "-p", "no:randomly", "tests", "-W", "error"]
    assert discover.pytest_args(str(tmp_path), "", ["--pyargs", "pkg.tests", "../outside"]) == ["--pyargs", "pkg.tests"]


def test_cibuildwheel_s_test_command_is_the_project_s_own(tmp_path):
    from farm_runner.inside import discover

    # librt's way: its wheels are tested with `pytest smoke_tests.py`, a name pytest does not collect
    (tmp_path / "smoke_tests.py").write_text("def test_smoke():\n    pass\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.cibuildwheel]\ntest-command = "pip list && pytest {project}/smoke_tests.py -x -n auto"\n'
        'test-requires = "pytest>=7 mypy_extensions"\ntest-extras = "numpy, speed"\n'
        '[tool.cibuildwheel.linux]\ntest-requires = ["hypothesis >= 6"]\n')
    plan = discover.plan_tests(str(tmp_path), ["librt"], (3, 12))
    assert (plan["how"], plan["tool"], plan["args"], plan["cwd"]) == (
        "cibuildwheel's test-command (pyproject.toml)", "pytest", ["./smoke_tests.py"], "")
    assert plan["deps"]["requirements"] == [["hypothesis >= 6", "pyproject.toml [tool.cibuildwheel] test-requires"]]
    assert plan["deps"]["extras"] == ["numpy", "speed"]
    # a command that is not a test run (numpy's `python -c "import numpy; numpy.test()"`) is not used
    (tmp_path / "pyproject.toml").write_text('[tool.cibuildwheel]\ntest-command = "python -c \'import x\'"\n')
    assert discover.plan_tests(str(tmp_path), ["x"], (3, 12))["how"] == "pytest from the sdist's root"


def test_a_maturin_project_s_python_tests_run_in_its_binding_s_folder(tmp_path):
    from farm_runner.inside import discover

    # tokenizers: the root's tests/ are Rust's; bindings/python holds pytest.ini and the Python tests
    (tmp_path / "tests").mkdir()
    (tmp_path / "bindings" / "python" / "tests").mkdir(parents=True)
    (tmp_path / "bindings" / "python" / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "pyproject.toml").write_text('[tool.maturin]\nmanifest-path = "bindings/python/Cargo.toml"\n')
    plan = discover.plan_tests(str(tmp_path), ["tokenizers"], (3, 11))
    assert (plan["cwd"], plan["how"]) == ("bindings/python", "pytest with the project's configuration "
                                          "(bindings/python/pytest.ini), in the folder of its Python binding")
    # a manifest outside the tree, or the root's own: the root, as before
    for manifest in ("../../Cargo.toml", "Cargo.toml"):
        (tmp_path / "pyproject.toml").write_text('[tool.maturin]\nmanifest-path = "%s"\n' % manifest)
        assert discover.plan_tests(str(tmp_path), ["tokenizers"], (3, 11))["cwd"] == ""
    # mrml: no pytest configuration, but the binding's own tests/ (reading resources/ beside them)
    (tmp_path / "bindings" / "python" / "pytest.ini").unlink()
    (tmp_path / "pyproject.toml").write_text('[tool.maturin]\nmanifest-path = "bindings/python/Cargo.toml"\n')
    plan = discover.plan_tests(str(tmp_path), ["mrml"], (3, 13))
    assert (plan["cwd"], plan["how"]) == ("bindings/python", "pytest in the folder of its Python binding "
                                          "(bindings/python)")
    # a binding folder with neither: the root
    (tmp_path / "bindings" / "python" / "tests").rmdir()
    assert discover.plan_tests(str(tmp_path), ["mrml"], (3, 13))["cwd"] == ""


def test_a_nose_era_suite_s_modules_are_given_to_pytest_by_name(tmp_path):
    from farm_runner.inside import stage

    # hdf5able (2014): hdf5able/test/testbasetypes.py, `from nose.tools import raises`; pytest
    # collects only test_*.py and *_test.py by itself, and collected nothing
    site, root = tmp_path / "site", tmp_path / "src"
    (site / "hdf5able" / "test").mkdir(parents=True)
    (site / "hdf5able" / "test" / "testbasetypes.py").write_text("from nose.tools import raises\n")
    (site / "hdf5able" / "test" / "testcallable.py").write_text("def test_x():\n    pass\n")
    (site / "hdf5able" / "test" / "test_plain.py").write_text("def test_y():\n    pass\n")
    (root / "tests").mkdir(parents=True)
    assert stage.nose_style_modules(["--pyargs", "hdf5able.test", "."], str(root), "", str(site)) == [
        "hdf5able.test.testbasetypes", "hdf5able.test.testcallable"]
    (root / "tests" / "testsuite.py").write_text("import nose\n")
    assert stage.nose_style_modules([], str(root), "", str(site)) == ["tests/testsuite.py", "."]
    assert stage.nose_style_modules(["-x", "tests"], str(root), "", str(site)) == ["tests/testsuite.py"]
    # without nose, a `testsomething.py` is no test module of pytest's or the project's
    (root / "tests" / "testsuite.py").write_text("import unittest\n")
    assert stage.nose_style_modules([], str(root), "", str(site)) == []


def test_setup_py_s_test_suite_and_tests_require_are_read_not_run(tmp_path):
    from farm_runner.inside import discover, stage

    # paralleltools's way (2.7): `setup.py test` ran test_suite; its tests_require were its test tools
    (tmp_path / "paralleltools" / "tests").mkdir(parents=True)
    (tmp_path / "setup.py").write_text(
        "from setuptools import setup\nimport sys; sys.exit('never run')\n"
        "test_requirements = ['mock>=1.0', \"nose\", './local']\n"
        "setup(name='paralleltools', packages=['paralleltools'], test_suite='paralleltools.tests.suite',\n"
        "      tests_require=test_requirements)\n")
    assert discover.setup_py_tests(str(tmp_path)) == {"suite": "paralleltools.tests.suite", "requires": ["mock>=1.0", "nose"]}
    assert stage.unittest_fallback(str(tmp_path), "") == ["paralleltools.tests.suite"]
    (tmp_path / "paralleltools" / "tests").rmdir()
    (tmp_path / "paralleltools").rmdir()  # set aside: the installed copy's tests are run
    assert stage.unittest_fallback(str(tmp_path), "") == ["discover"]
    assert stage.unittest_fallback(str(tmp_path), "", ["paralleltools"]) == ["paralleltools.tests.suite"]
    deps = discover.plan_tests(str(tmp_path), ["paralleltools"], (2, 7))["deps"]
    assert [r for r, _ in deps["requirements"]] == ["mock>=1.0", "nose"]
    # setup.cfg's [options]; a suite the tree does not hold leaves discovery as it was
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (tmp_path / "setup.cfg").write_text("[options]\ntest_suite = runtests\ntests_require =\n    pytest\n")
    assert discover.setup_py_tests(str(tmp_path)) == {"suite": "runtests", "requires": ["pytest"]}
    assert stage.unittest_fallback(str(tmp_path), "") == ["discover"]


def test_requirement_files_are_read_as_requirements_only(tmp_path):
    from farm_runner.inside import discover

    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements-dev.txt").write_text(
        "-r requirements/base.txt\n-c constraints.txt\n-e .\n.[test]\n--index-url https://example.invalid/simple\n"
        "pytest>=7  # the runner\nhttps://example.invalid/x.whl\n./local\nhypothesis --hash=sha256:00\n")
    (tmp_path / "requirements" / "base.txt").write_text("attrs==23.1\n-r ../../outside.txt\n")
    (tmp_path / "constraints.txt").write_text("urllib3<3\n")
    reqs, cons = discover.requirement_lines(str(tmp_path), "requirements-dev.txt", "requirements-dev.txt")
    assert [r for r, _ in reqs] == ["attrs==23.1", "pytest>=7", "hypothesis"]
    assert [c for c, _ in cons] == ["urllib3<3"]


def test_dependency_groups_and_nox_installs_become_requirement_lines(tmp_path):
    from farm_runner.inside import discover

    # urllib3's way: a test group included by a dev group, and uv sources that point one of its tools
    # at git (uv would fetch it for `--group`; the farm reads the group's lines, so the index's wins)
    (tmp_path / "pyproject.toml").write_text(dedent("""
        [dependency-groups]
        test = ["hypercorn>=0.15", "trio>=0.27", "tool @ git+https://example.invalid/tool", "./local"]
        dev = [{include-group = "test"}, "coverage"]
        docs = ["sphinx"]

        [tool.uv.sources]
        hypercorn = { git = "https://example.invalid/hypercorn" }
        """))
    deps = discover.test_dependencies(str(tmp_path))
    assert deps["requirements"] == [["hypercorn>=0.15", "pyproject.toml [dependency-groups] test"],
                                    ["trio>=0.27", "pyproject.toml [dependency-groups] test"]]
    # said in the report: the farm installs the index's hypercorn, not the project's git one
    assert deps["elsewhere"] == [["hypercorn", "https://example.invalid/hypercorn"]]
    assert [r for r, _ in discover.group_lines(discover.load_toml(str(tmp_path / "pyproject.toml")), "dev")] == [
        "hypercorn>=0.15", "trio>=0.27", "coverage"]
    # charset-normalizer's way: session.install("-r", "dev-requirements.txt") names a file, not a package
    (tmp_path / "dev-requirements.txt").write_text("pytest>=8\nchardet==5.2\n")
    deps = discover.test_dependencies(str(tmp_path), nox_installs=["-r", "dev-requirements.txt", "chardet"])
    assert [r for r, _ in deps["requirements"]][:3] == ["pytest>=8", "chardet==5.2", "chardet"]


def test_missing_modules_are_told_apart():
    from farm_runner.host import missing

    # an optional part of CPython the interpreter under test lacks (the host asked it): the environment's
    assert missing.standard_module_missing("ModuleNotFoundError: No module named '_dbm'", {"_dbm"}) == "_dbm"
    assert missing.standard_module_missing("ModuleNotFoundError: No module named 'cgi'", {"_dbm"}) is None
    assert missing.standard_module_missing("ModuleNotFoundError: No module named 'hypothesis'", {"_dbm"}) is None
    # a module the project forgot to declare: inferred, mapped to its distribution; the package's own
    # names, the standard library and what is installed are never inferred
    assert missing.missing_modules(["E   ModuleNotFoundError: No module named 'yaml'",
                                    "No module named 'mypkg.sub'", "No module named 'json'",
                                    "No module named 'hypothesis'"], ["mypkg"], {"hypothesis"}) == [("yaml", "PyYAML")]


def test_only_the_interpreter_under_test_says_what_it_lacks():
    from farm_runner.host.interpreters import lacking_standard_modules
    from tests.test_runner import INTERPRETERS

    asked = ["cgi", "imp", "distutils", "asynchat", "tomllib", "enum", "json", "_dbm", "dbm", "hypothesis"]
    lacks = {v: lacking_standard_modules(i["path"], int(v[0]), asked) for v, i in INTERPRETERS.items()
             if v in ("2.7", "3.10", "3.12", "3.13")}
    assert lacks, "no interpreter among 2.7, 3.10, 3.12, 3.13"
    for version, found in lacks.items():
        # what the language removed or never had in that version is never the build's lack
        assert not set(found) & {"cgi", "imp", "distutils", "asynchat", "tomllib", "enum", "json", "hypothesis"}, (
            version, found)
        assert set(found) <= {"_dbm", "dbm"}


def test_files_the_sdist_does_not_ship_are_told_apart():
    from farm_runner.host import missing
    from farm_runner.host.missing import tree_file_missing

    tree = "/w/box/src/pkg-1.0"
    error = "FileNotFoundError: [Errno 2] No such file or directory: '%s'"
    assert tree_file_missing(error % "toml-test/tests/valid/", tree) == "toml-test/tests/valid"
    assert tree_file_missing(error % "/w/box/src/pkg-1.0/tests/data/a.json", tree) == "tests/data/a.json"
    # a relative path is the test command's folder's
    assert tree_file_missing(error % "data/a.json", tree, "tests") == "tests/data/a.json"
    assert tree_file_missing(error % "../setup.cfg", tree, "tests") == "setup.cfg"
    # outside the tree (the system's, the installed package's, a climb out): the package's failure
    for path in ("/etc/app.conf", "/w/box/env/lib/python3.12/site-packages/pkg/data.json", "../x", "tests/../../x"):
        assert tree_file_missing(error % path, tree) is None, path
    assert tree_file_missing("AssertionError: assert 'a' == 'b'", tree) is None
    assert tree_file_missing(error % "git", tree) is None  # a program the system lacks
    # what the sdist ships, by the runner's listing; without one, nothing is excused
    assert missing.shipped("tests/data", {"tests", "tests/data"}) and not missing.shipped("tests/out", {"tests"})
    assert missing.shipped("anything", None)


def test_a_program_a_test_starts_that_fetches_is_seen_by_the_probe():
    import importlib.util
    import pathlib

    import farm_runner

    path = pathlib.Path(farm_runner.__file__).parent / "inside" / "pytest_plugin" / "_farm_probe.py"
    spec = importlib.util.spec_from_file_location("_farm_probe_test", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    # zipp's pytest-checkdocs builds the project's metadata in an isolated environment (pip, the index)
    assert probe._fetches(["/tmp/build-env-1/bin/python", "-Im", "pip", "install", "-r", "/tmp/r.txt"]) == \
        "pip install (the index, from a subprocess)"
    assert probe._fetches(["uv", "pip", "install", "x"]) == "uv pip install (the index, from a subprocess)"
    # chardet's test data, cloned with git while its test module is collected
    assert probe._fetches(["git", "clone", "--depth=1", "https://example.invalid/d.git", "/tmp/t"]) == \
        "git clone https://example.invalid/d.git (from a subprocess)"
    # what merely mentions an installer, or runs pip for something else, is no fetch
    assert probe._fetches(["echo", "pip install x"]) is None
    assert probe._fetches(["pip", "--version"]) is None and probe._fetches(["git", "status"]) is None
    # the machine's own name is looked up on the machine (the sandbox's is in its /etc/hosts)
    import socket
    assert probe._loopback(socket.gethostname()) and not probe._loopback("example.org")


def test_what_the_farm_s_pytest_or_a_marker_already_meets():
    from farm_runner.inside.discover import already_met

    tools = {"pytest": "9.0.2", "pluggy": "1.6.0"}
    markers = {"python_version": "3.12", "python_full_version": "3.12.1", "sys_platform": "linux",
               "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    assert already_met("pytest", [], tools, markers) == "the farm's pytest 9.0.2"
    assert already_met("pytest>=8,<10", [], tools, markers) == "the farm's pytest 9.0.2"
    assert already_met("pytest>=9.1", [], tools, markers) is None  # the project asks for a newer one
    assert already_met("pytest", ["pytest==8.3.5"], tools, markers) is None  # its lock file pins another
    assert already_met("pytest[testing]", [], tools, markers) is None  # extras: the installer's to resolve
    assert already_met("hypothesis", [], tools, markers) is None
    assert already_met("pytest-run-parallel; python_version >= '3.13'", [], tools, markers) == "not for this interpreter"
    assert already_met("tomli; python_version < '3.11'", [], tools, markers) == "not for this interpreter"
    assert already_met("not a requirement!", [], tools, markers) is None


def test_test_files_imports_that_nothing_provides(tmp_path):
    from farm_runner.inside.imports import unmet_imports

    site = tmp_path / "site"
    (site / "installed_pkg").mkdir(parents=True)
    (site / "single.py").write_text("")
    (site / "ext.cpython-312-x86_64-linux-gnu.so").write_text("")
    root = tmp_path / "src"
    (root / "tests" / "helpers").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text("import conf_needed\n")
    (root / "tests" / "test_a.py").write_text(
        "import os, json\nimport installed_pkg.sub\nfrom single import x\nimport ext\nimport helpers\n"
        "from . import sibling\nimport pytest\nimport hypothesis.strategies\n"
        "try:\n    import optional_one\nexcept ImportError:\n    pass\n"
        "if False:\n    import never\n\ndef test_x():\n    import inside_a_test\n")
    (root / "tests" / "test_b.py").write_text("from yaml import safe_load\nimport hypothesis\n")
    (root / "tests" / "shared.py").write_text("import unread\n")  # not a test file: not read
    (root / "tests" / "test_py2.py").write_text("print 'python 2'\nimport unparsed\n")
    (root / "tests" / "test_link.py").symlink_to("/etc/hostname")
    assert unmet_imports(str(root), "", [], str(site), ["pytest", "_pytest"]) == ["conf_needed", "hypothesis", "yaml"]
    # only under the plan's test paths, with the project's python_files
    (root / "other").mkdir()
    (root / "other" / "check_c.py").write_text("import from_other\n")
    (root / "other" / "build").mkdir()
    (root / "other" / "build" / "check_d.py").write_text("import from_a_build\n")  # pytest does not look there
    (root / "pytest.ini").write_text("[pytest]\npython_files = check_*.py\n")
    assert unmet_imports(str(root), "", ["other"], str(site), []) == ["from_other"]
    (root / "pytest.ini").write_text("[pytest]\npython_files = check_*.py\ntestpaths = other\n")
    assert unmet_imports(str(root), "", [], str(site), []) == ["from_other"]


def test_subtests_are_not_counted_as_tests_that_passed():
    from farm_runner.host.verdict import junit_counts

    # pytest 9's JUnit file: `tests` counts the 24 subtests of cachetools's threading tests too
    cases = "".join('<testcase classname="t" name="t%d"/>' % i for i in range(3))
    xml = ('<testsuites><testsuite name="pytest" tests="27" failures="1" errors="0" skipped="1">%s'
           '<testcase classname="t" name="f"><failure message="x"/></testcase>'
           '<testcase classname="t" name="s"><skipped message="y"/></testcase></testsuite></testsuites>' % cases)
    assert junit_counts(xml.encode()) == {"passed": 3, "failed": 1, "errors": 0, "skipped": 1}


@pytest.mark.slow
def test_temporary_files_count_against_the_disk_not_the_memory(tmp_path):
    # A suite's temporary files were on a tmpfs, whose pages the memory cgroup charges: 400 MB of
    # them ended a build as "oom" at 300M although the suite itself used little memory.
    write_package(tmp_path, "vfix-tmpfiles", VERSION, "notests", kind="both", extra_files={
        "tests/test_big.py": dedent("""
            import os
            import tempfile


            def test_large_temporary_files():
                with tempfile.NamedTemporaryFile() as fh:
                    for _ in range(400):
                        fh.write(b"x" * (1 << 20))
                    fh.flush()
                    assert os.path.getsize(fh.name) == 400 << 20
                    assert fh.name.startswith("/var/tmp/")
            """)})
    with PackageIndex(tmp_path, ensure_wheelhouse()) as index:
        proc, report = run_cli("vfix-tmpfiles", tmp_path / "work", index.url, extra=["--memory", "300M"])
    assert report["outcome"] == "passed", (report["reason"], proc.stdout[-2000:])
    assert report["tests"]["passed"] == 1


def test_versions_of_every_era_are_releases():
    from farm_runner import versions
    from farm_runner.host.cli import parse_spec
    from farm_runner.host.index import file_version
    from farm_runner.host.interpreters import UsageError

    # a dash in an sdist's version: packaging splits the name at the last one
    assert file_version("pkg-3.2.3-2.tar.gz", "pkg") == "3.2.3.post2"
    assert file_version("my-pkg-2.0-1.zip", "my-pkg") == "2.0.post1"
    # a legacy version PyPI still serves is kept as written, and sorts before PEP 440's
    assert file_version("pkg-1.0-ubuntu1.tar.gz", "pkg") == "1.0-ubuntu1"
    assert sorted(["2.0", "0.9-ubuntu1", "1.0"], key=versions.key) == ["0.9-ubuntu1", "1.0", "2.0"]
    assert versions.same("3.2.3-2", "3.2.3.post2") and versions.same("1.0-ubuntu1", "1.0-ubuntu1")
    assert parse_spec("pkg==1.0-ubuntu1") == ("name", "pkg", "1.0-ubuntu1")
    for bad in ("pkg==1.0 ; rm -rf /", "pkg==../x", "pkg==$(x)"):
        with pytest.raises(UsageError):
            parse_spec(bad)


def test_an_egg_info_install_is_a_distribution(tmp_path):
    # pip on Python 2.7 installs an sdist with `setup.py install`: an .egg-info folder, or
    # distutils' single PKG-INFO file, where a wheel leaves a .dist-info
    from farm_runner.inside import environment

    egg = tmp_path / "django_banana-1.0.0-py2.7.egg-info"
    egg.mkdir()
    (tmp_path / "django_banana").mkdir()
    (tmp_path / "django_banana" / "__init__.py").write_text("")
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: django-banana\nVersion: 1.0.0\n")
    (egg / "installed-files.txt").write_text("../django_banana/__init__.py\nPKG-INFO\n")
    (tmp_path / "old_thing-0.1-py2.7.egg-info").write_text("Metadata-Version: 1.0\nName: old-thing\nVersion: 0.1\n")
    for with_metadata in (True, False):
        dists = {d["dist_info"]: d for d in environment.distributions(str(tmp_path), metadata=with_metadata)}
        banana = dists["django_banana-1.0.0-py2.7.egg-info"]
        assert banana["version"] == "1.0.0" and banana["problem"] is None
        assert banana["record"] == ["django_banana/__init__.py", "django_banana-1.0.0-py2.7.egg-info/PKG-INFO"]
        assert dists["old_thing-0.1-py2.7.egg-info"]["version"] == "0.1"
    assert environment.import_names(banana["record"]) == ["django_banana"]
    assert environment.installed(str(tmp_path), "Django-Banana") == "django_banana-1.0.0-py2.7.egg-info"


def test_python2_bytecode_of_the_environment_s_own_files_is_no_leftover():
    from farm_runner.host.audit import leftovers

    site = "lib/python2.7/site-packages/"
    before = [site + "_virtualenv.py", site + "_virtualenv.pth"]
    after = before + [site + "_virtualenv.pyc", site + "stray.pyc"]
    assert leftovers(after, before, set(), [], site) == [site + "stray.pyc"]


def test_a_test_module_the_release_does_not_ship_is_told_apart():
    from farm_runner.host.missing import module_file_missing

    assert module_file_missing("E   ImportError: cannot import name 'base' from 'tests' (unknown location)") == (
        "tests", ["tests/__init__.py"])
    assert module_file_missing("ModuleNotFoundError: No module named 'tests.helpers.base'") == (
        "tests/helpers", ["tests/helpers/base.py", "tests/helpers/base/__init__.py"])
    assert module_file_missing("ModuleNotFoundError: No module named 'yaml'") is None  # a distribution's
    from farm_runner.host.missing import release_lacks

    nowhere = lambda path: False  # noqa: E731
    # optimizely: its wheel installs tests/ without tests/base.py, and its sdist ships neither
    assert release_lacks(("tests", ["tests/__init__.py"]), set(), lambda p: p == "tests", {"tests"}) == \
        "tests/__init__.py"
    assert release_lacks(("tests", ["tests/base.py"]), {"tests", "tests/base.py"}, nowhere, set()) is None
    # a wheel without a module of its own package is broken, not the sdist's lack
    assert release_lacks(("pkg", ["pkg/sub.py"]), {"pkg"}, lambda p: p == "pkg", {"pkg"}) is None
    assert release_lacks(("pkg/tests", ["pkg/tests/base.py"]), {"pkg/tests"}, nowhere, {"pkg"}) == "pkg/tests/base.py"
    # kubernetes: its installed tests import kubernetes.e2e_test, a test package it ships in neither
    installed = lambda p: p == "kubernetes"  # noqa: E731
    assert release_lacks(module_file_missing("No module named 'kubernetes.e2e_test'"), set(), installed,
                         {"kubernetes"}) == "kubernetes/e2e_test.py"
    assert release_lacks(module_file_missing("No module named 'kubernetes.client'"), set(), installed,
                         {"kubernetes"}) is None
    # a package whose own name starts with "test" is no test folder: its missing module is its own
    assert release_lacks(module_file_missing("No module named 'testinfra.utils'"), set(), lambda p: p == "testinfra",
                         {"testinfra"}) is None


# The hooks of pytest 2.2.4 (its _pytest/hookspec.py), the oldest pytest the farm picks (for a 2012
# upload): it refuses to load a plugin that implements any other.
PYTEST_2_2_HOOKS = frozenset("""
    pytest_addhooks pytest_namespace pytest_cmdline_parse pytest_cmdline_preparse pytest_addoption
    pytest_cmdline_main pytest_configure pytest_unconfigure pytest_runtestloop pytest_collection
    pytest_collection_modifyitems pytest_collection_finish pytest_ignore_collect pytest_collect_directory
    pytest_collect_file pytest_collectstart pytest_itemcollected pytest_collectreport pytest_deselected
    pytest_make_collect_report pytest_pycollect_makemodule pytest_pycollect_makeitem pytest_pyfunc_call
    pytest_generate_tests pytest_itemstart pytest_runtest_protocol pytest_runtest_logstart pytest_runtest_setup
    pytest_runtest_call pytest_runtest_teardown pytest_runtest_makereport pytest_runtest_logreport
    pytest_sessionstart pytest_sessionfinish pytest_assertrepr_compare pytest_report_header
    pytest_report_teststatus pytest_terminal_summary pytest_doctest_prepare_content pytest_plugin_registered
    pytest_plugin_unregistered pytest_internalerror pytest_keyboard_interrupt""".split())


def test_the_probe_loads_in_the_oldest_pytest_the_farm_picks():
    # pytest_exception_interact at the module's top level made pytest 2.2.4 refuse the probe: every
    # 2012 release "failed" with the farm's own plugin error; newer hooks are registered where they exist
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "worker/farm_runner/inside/pytest_plugin/_farm_probe.py"
    spec = importlib.util.spec_from_file_location("_farm_probe_for_hooks", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert {n for n in vars(probe) if n.startswith("pytest_")} - PYTEST_2_2_HOOKS == set()


def test_a_test_helper_the_sdist_left_out_is_no_distribution_to_install():
    # ihm's test modules `import utils` (test/utils.py, not in its sdist): the index's `utils` is
    # a stranger's project; the helper is what the sdist lacks
    from farm_runner.host.missing import distributions_for, helper_beside_missing

    assert distributions_for(["utils", "yaml", "helpers"], set(), set()) == [("yaml", "PyYAML")]
    said = "ModuleNotFoundError: No module named 'utils'"
    listing = {"test", "test/test_analysis.py", "ihm", "ihm/__init__.py"}
    assert helper_beside_missing("test/test_analysis.py", said, listing) == "test/utils.py"
    assert helper_beside_missing("test/test_analysis.py::test_one", said, listing) == "test/utils.py"
    assert helper_beside_missing("test/test_analysis.py", said, listing | {"test/utils.py"}) is None  # shipped: a bug
    assert helper_beside_missing("test/test_analysis.py", said, None) is None  # no listing, no excuse
    assert helper_beside_missing("other/test_x.py", said, listing) is None  # a folder the sdist does not ship
    assert helper_beside_missing("test/test_analysis.py", "No module named 'yaml'", listing) is None



def test_a_test_folder_shipped_without_its_init_is_what_the_sdist_lacks():
    # raclib: tests/test_*.py import `from .helpers import ...`; its sdist leaves out tests/__init__.py
    from farm_runner.host.missing import package_init_missing

    said = "E   ImportError: attempted relative import with no known parent package"
    listing = {"tests", "tests/test_docs.py", "tests/helpers.py"}
    assert package_init_missing("tests/test_docs.py", said, listing) == "tests/__init__.py"
    assert package_init_missing("tests/test_docs.py", said, listing | {"tests/__init__.py"}) is None
    assert package_init_missing("tests/test_docs.py", "ImportError: cannot import name 'x'", listing) is None
    assert package_init_missing("test_top.py", said, listing) is None  # the tree's root is no package to ship


def test_a_run_that_could_not_start_is_told_from_one_that_failed():
    from farm_runner.host.verdict import could_not_start

    nothing = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    assert could_not_start(4, None) and could_not_start(3, nothing)  # usage, internal error: nothing ran
    assert could_not_start(-11, None) is False  # a crash is a failure
    assert not could_not_start(2, dict(nothing, errors=3))  # collection errors: the package's
    assert not could_not_start(4, dict(nothing, passed=1)) and not could_not_start(4, None, started=True)
    # status 1 without results stays a failure (the hostile suite's escape removes the run's files)
    assert not could_not_start(1, None) and could_not_start(-1 * -3, None)


def test_the_classes_of_failure_that_are_not_the_package_s_are_said_once():
    from farm_runner import excuses

    tests = {"needs_network": [{"test": "a", "tried": ["lookup example.org"]}],
             "lacks_program": [{"test": "b", "program": "mkisofs"}] * 2, "flaky": ["c"]}
    assert excuses.not_counted(tests) == (" Not counted: 1 needed the network, which the sandbox does not give; "
                                          "2 needed a program this worker lacks (mkisofs); 1 failed once and passed "
                                          "when run again (flaky).")
    assert excuses.each_test(tests)[0] == ("a", "tried lookup example.org")
    assert excuses.not_counted({}) == "" and all(excuses.is_spurious(f) for f in excuses.FIELDS)


def test_a_doctest_s_error_is_its_exception(tmp_path):
    # fontTools.tfmLib's doctest reads test data the sdist does not ship: pytest says only
    # "UnexpectedException"; the exception's own line is what tells the environment's from the package's
    import json
    import subprocess
    import sys

    import farm_runner

    (tmp_path / "mod.py").write_text('def f():\n    """\n    >>> open("Tests/data/x.tfm").read()\n    \'x\'\n    """\n')
    plugin = str(Path(farm_runner.__file__).parent / "inside" / "pytest_plugin")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "_farm_probe", "-p", "no:cacheprovider",
                    "--doctest-modules", "mod.py"], cwd=tmp_path, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=plugin, FARM_PROBE_REPORT=str(tmp_path / "probe.json")))
    failures = json.loads((tmp_path / "probe.json").read_text())["failures"]
    assert failures == [{"test": "mod.py::mod.f", "when": "call",
                         "message": "FileNotFoundError: [Errno 2] No such file or directory: 'Tests/data/x.tfm'"}]


def run_suites(tmp_path, limits, suites):
    """{name: (process, report)}: a release per {name: its tests/test_suite.py}, each run with `limits`."""
    for name, text in suites.items():
        write_package(tmp_path, name, VERSION, "notests", kind="both", extra_files={"tests/test_suite.py": text})
    with PackageIndex(tmp_path, ensure_wheelhouse()) as index:
        return {name: run_cli(name, tmp_path / name, index.url, extra=limits) for name in suites}


@pytest.mark.slow
def test_a_suite_longer_than_its_limit_runs_on_in_a_second_part(tmp_path):
    # A scientific suite cut at its time limit with most tests done and none failed was an
    # infra-error for ever; its unfinished tests now run in a second part, with a limit of their own.
    tests = "import time\n\nimport pytest\n\n\n@pytest.mark.parametrize('n', range(16))\ndef test_slow(n):\n" \
            "    time.sleep(1)\n"
    reports = run_suites(tmp_path, ["--timeout", "12"], {
        "vfix-long": tests,
        "vfix-longfail": tests + "    assert n != 1, 'a real failure in the first part'\n"
        "    if n == 0:  # what the probe saw of a failure in the first part is kept (oaklib's lookups)\n"
        "        __import__('socket').create_connection(('pypi.org', 443), timeout=2)\n"})
    proc, report = reports["vfix-long"]
    assert report["outcome"] == "passed", (report["reason"], proc.stdout[-3000:])
    tests = report["tests"]
    assert tests["passed"] == 16 and 0 < tests["parts"]["first"] < 16, tests["parts"]
    assert "the others ran in a second part" in report["reason"]
    proc, report = reports["vfix-longfail"]
    assert report["outcome"] == "tests-failed", (report["reason"], proc.stdout[-3000:])
    assert report["tests"]["failed"] == 2 and report["tests"]["passed"] == 14
    assert [f["test"] for f in report["tests"]["failures"]] == ["tests/test_suite.py::test_slow[1]"]
    assert report["tests"]["needs_network"] == [{"test": "tests/test_suite.py::test_slow[0]", "tried": ["lookup pypi.org"]}]


@pytest.mark.slow
def test_a_suite_past_its_limit_in_both_parts_is_judged_on_what_finished(tmp_path):
    # redis's suite, each test waiting on a server the sandbox has not, finished neither part in
    # time: an infra-error for ever. Still finishing tests, it is cut and judged on what finished.
    tests = "import time\n\nimport pytest\n\n\n@pytest.mark.parametrize('n', range(60))\ndef test_slow(n):\n" \
            "    time.sleep(1)\n"
    proc, report = run_suites(tmp_path, ["--timeout", "12"], {"vfix-longer": tests})["vfix-longer"]
    assert report["outcome"] == "passed", (report["reason"], proc.stdout[-3000:])
    t = report["tests"]
    assert t["parts"]["cut"] and 10 < t["passed"] == t["parts"]["first"] < 60, t["parts"]
    assert "cut with %d finished; the rest did not run" % t["passed"] in report["reason"]
    # with a failure that counts, the rest not run, the timeout stands
    tests = tests.replace("time.sleep(1)", "time.sleep(1)\n    assert n != 2")
    proc, report = run_suites(tmp_path / "failing", ["--timeout", "12"], {"vfix-longerfail": tests})["vfix-longerfail"]
    assert report["outcome"] == "infra-error" and report["infra"] == "timeout", (report["reason"], proc.stdout[-3000:])


@pytest.mark.slow
def test_a_test_that_hangs_is_left_out_and_the_others_run_on(tmp_path):
    # gs-quant's tests wait for ever on recorded answers its sdist leaves out: the whole suite was
    # "no output for 300 s"; each hung test is now named and left out, the others run on. Their
    # failure is the package's; their passing is no pass, as the hung tests' outcome is unknown.
    tests = dedent("""
        import time


        def test_before():
            pass


        def test_hangs():
            time.sleep(600)


        def test_hangs_too():
            time.sleep(600)


        def test_after():
            assert {fails}
        """)
    reports = run_suites(tmp_path, ["--silence-timeout", "6"], {
        "vfix-hangfail": tests.format(fails="1 + 1 == 3, 'a real failure after it'"),
        "vfix-hangpass": tests.format(fails="True")})
    proc, report = reports["vfix-hangfail"]
    assert report["outcome"] == "tests-failed", (report["reason"], proc.stdout[-3000:])
    tests = report["tests"]
    assert (tests["passed"], tests["failed"]) == (1, 1)
    assert tests["hung"] == ["tests/test_suite.py::test_hangs", "tests/test_suite.py::test_hangs_too"]
    assert [f["test"] for f in tests["failures"]] == ["tests/test_suite.py::test_after"]
    assert "tests/test_suite.py::test_hangs, tests/test_suite.py::test_hangs_too gave no output for the silence " \
           "limit and were stopped" in report["reason"]
    proc, report = reports["vfix-hangpass"]
    assert report["outcome"] == "infra-error", (report["reason"], proc.stdout[-3000:])
    assert report["reason"].startswith("timeout: tests/test_suite.py::test_hangs gave no output for 6 s and was "
                                       "stopped (and 1 more after it); the 2 other tests passed")


@pytest.mark.slow
def test_a_suite_that_runs_out_of_memory_runs_again_once_with_more(tmp_path):
    # fastjsonschema's examples peak at 4 GB: more than the default limit, and no fault of the package's
    write_package(tmp_path, "vfix-bigmem", VERSION, "notests", kind="both", extra_files={
        "tests/test_big.py": "def test_large():\n    block = bytearray(400 << 20)\n    assert len(block) == 400 << 20\n"})
    with PackageIndex(tmp_path, ensure_wheelhouse()) as index:
        proc, report = run_cli("vfix-bigmem", tmp_path / "work", index.url, extra=["--memory", "300M"])
    assert report["outcome"] == "passed", (report["reason"], proc.stdout[-2000:])
    assert report["tests"]["memory_bytes"] == 900 << 20
    assert "The tests ran out of memory once and ran again with 900 MB." in report["reason"]


def test_what_a_package_writes_is_one_line_wherever_it_is_shown():
    from farm_runner.host.verdict import probe_answer
    from farm_runner.untrusted import line

    forged = "FileNotFoundError: 'data\r\nlog: https://evil.example/\r\nUnsubscribe from everything: https://x'"
    answer = probe_answer({"failures": [{"test": "t.py::t\nX", "message": forged}],
                           "network": {"t.py::t": ["lookup a\r\nb"]}})
    assert answer["failures"][0]["message"] == forged.replace("\r", "\\x0d").replace("\n", "\\x0a")
    assert "\n" not in answer["failures"][0]["test"] and answer["network"]["t.py::t"] == ["lookup a\\x0d\\x0ab"]
    assert line("\x1b[31mred\u2028", 50) == "\\x1b[31mred\\u2028" and len(line("x" * 999)) == 300


def test_an_async_test_no_plugin_runs_asks_for_the_plugin():
    from farm_runner.host.missing import async_plugin_missing

    said = ["Failed: async def functions are not natively supported."]
    assert async_plugin_missing(said, set()) == [("pytest_asyncio", "pytest-asyncio")]
    assert async_plugin_missing(said, {"pytest_asyncio"}) == [] and async_plugin_missing(["assert 1 == 2"], set()) == []


def test_another_distribution_s_empty_libs_folder_is_no_leftover():
    from farm_runner.host.audit import leftovers

    site = "lib/python3.11/site-packages/"
    claimed = {site + "freetype/__init__.py", site + "freetype_py.libs/libfreetype.so"}
    after = [site + "freetype_py.libs/", site + "fonttools_own.libs/"]
    assert leftovers(after, [], claimed, [], site) == [site + "fonttools_own.libs/"]
    # freetype-py's wheel makes an empty freetype_py.libs/ its RECORD does not list
    claimed = {site + "freetype/__init__.py", site + "freetype_py-2.5.1.dist-info/"}
    assert leftovers(after, [], claimed, [], site) == [site + "fonttools_own.libs/"]
    # a distribution's name forgives its empty .libs/ only: once a test broke its RECORD, its files are left behind
    claimed = {site + "farmfix_dep-1.0.dist-info/"}
    after = [site + "farmfix_dep/", site + "farmfix_dep/__init__.py"]
    assert leftovers(after, [], claimed, [], site) == after
