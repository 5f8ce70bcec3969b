"""Slot names: one builder per OS and Python, named `<os>-py<X.Y>` (linux-py3.12), and their order.

Buildbot sorts names as text (3.10 before 3.6); the farm's pages, and the UI through the farm's
www plugin (master/www), put them in version order with this key.
"""

from __future__ import annotations

import re

_SLOT = re.compile(r"^(?P<os>.+)-py(?P<python>[0-9]+(?:\.[0-9]+)*)(?P<flavour>[a-z]*)$")


def slot_name(os_name: str, python: str) -> str:
    return f"{os_name}-py{python}"


def slot_key(name: str):
    """Sorts slots by OS, then Python version (3.6 before 3.10); a name of another shape last."""
    found = _SLOT.match(name)
    if not found:
        return (name, (float("inf"),), "")
    return (found["os"], tuple(int(part) for part in found["python"].split(".")), found["flavour"])
