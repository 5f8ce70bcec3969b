#!/usr/bin/env python3
"""The runner from a checkout: `python worker/runner.py SPEC --python X.Y [flags]`.

The runner is the package farm_runner beside this file (read farm_runner/__init__.py for its
layout); the master ships it to workers as one file built from that package (farm_runner/bundle.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from farm_runner.host.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
