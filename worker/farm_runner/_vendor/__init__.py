"""Third-party code bundled into the shipped runner, unchanged: the runner runs on a worker's own
Python, which need not have these installed, and its inside/ code runs without site-packages.
Of packaging, the modules the runner never imports are left out (metadata, pylock, direct_url,
licenses, ranges: 230 KB the master would send with every build).
`packaging` is the version pinned in requirements/lock.txt, `tomli` stands in for tomllib before
Python 3.11 (tests/test_runner_bundle.py checks the versions); their licences are in
<name>-<version>.licenses/."""
