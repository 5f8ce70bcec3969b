"""The farm's runner: install, self-test and uninstall one release on one interpreter.

The package is laid out along its one trust boundary:

    contract.py   outcomes, exit statuses, report fields, limits: shared with the master
    host/         the supervisor, trusted, on the worker: fetches and hash-checks files from the
                  index, makes the build's folders, starts every sandboxed command with its limits,
                  runs the index proxy, decides the outcome and writes the report. It never opens,
                  copies or follows a file that package code could have written; what comes back
                  from the sandbox it reads as untrusted data (host/untrusted.py).
    inside/       the work that touches the package's trees, run inside the sandbox: unpacking the
                  sdist, finding and staging the tests, listing the environment for the audit, the
                  network forwarder, and the pytest plugin (which runs in the package's interpreter).
    bundle.py     builds the one file the master ships to workers (a zipapp of this package).
    _vendor/      packaging, bundled unchanged.

From a checkout: `python worker/runner.py SPEC --python X.Y [flags]`.
"""
