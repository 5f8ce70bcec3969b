"""Follows PyPI: a Buildbot change source that turns each new release into one Change.

`settings.py` reads the `[pypi]` table of farm.toml, `pypi.py` reads PyPI's answers (plain
functions), `releases.py` keeps track of releases between polls, `source.py` is the change source.
"""

from __future__ import annotations


def change_sources(settings) -> list:
    """The change sources for the master's configuration: none when `feed = "none"`."""
    if settings.feed == "none":
        return []
    from pypi_poller.source import PyPIPoller

    return [PyPIPoller(settings, name="pypi")]
