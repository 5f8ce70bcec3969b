"""After the uninstall, in the package's environment and interpreter: which of the package's import
names can still be found. Its output is a JSON list on the last line."""

CODE = ("import json, sys\n"
        "try:\n    from importlib.util import find_spec\n"
        "except ImportError:  # Python 2.7\n    from pkgutil import find_loader as find_spec\n"
        "print(json.dumps([n for n in sys.argv[1:] if find_spec(n) is not None]))")
