"""Loaded into the package's own test run (`-p _farm_probe`, from LIB/farm_runner/inside/pytest_plugin):
records where the package under test was imported from. It runs in the package's interpreter,
any version the farm serves, so it keeps to what every Python has. What it writes is the
package's to forge; the host only shows it and checks that it names the installed copy."""
import importlib
import json
import os
import sys


def pytest_sessionfinish(session):
    out = {}
    for name in json.loads(os.environ.get("FARM_IMPORT_NAMES", "[]")):
        try:
            mod = sys.modules.get(name) or importlib.import_module(name)
            out[name] = getattr(mod, "__file__", None) or list(getattr(mod, "__path__", []) or [None])[0]
        except Exception as exc:
            out[name] = "!" + repr(exc)
    with open(os.environ["FARM_IMPORT_REPORT"], "w") as fh:
        json.dump(out, fh)
