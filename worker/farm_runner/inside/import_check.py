"""After the uninstall, in the package's environment and interpreter: which of the package's import
names can still be found. Its output is a JSON list on the last line."""

CODE = ("import importlib.util, json, sys; print(json.dumps([n for n in sys.argv[1:] "
        "if importlib.util.find_spec(n) is not None]))")
