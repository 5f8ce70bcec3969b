"""Release versions as PyPI holds them: PEP 440's, and the legacy strings older releases carry
(`3.2.3-2`, `1.0-beta-3`), which packaging no longer parses but the index still serves. One
definition for the runner and the master: a legacy string is a version too, compared as text and
ordered before every PEP 440 version."""

import re

from farm_runner._vendor.packaging.version import InvalidVersion, Version

# What a legacy version may be: no spaces, slashes or anything a path or a shell would read.
LEGACY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,63}$")


def parse(text):
    """A PEP 440 Version, or None for a legacy string (or anything else)."""
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return None


def valid(text):
    """Is `text` a version a release may have: PEP 440, or a safe legacy string?"""
    return isinstance(text, str) and (parse(text) is not None or bool(LEGACY.match(text)))


def key(text):
    """A sort key: legacy strings first (as text), then PEP 440 versions in their order."""
    v = parse(text)
    return (1, v, "") if v is not None else (0, None, str(text))


def same(a, b):
    """Are two version strings the same release (PEP 440's equality, else the same text)?"""
    va, vb = parse(a), parse(b)
    return va == vb if va is not None and vb is not None else a == b


def is_prerelease(text):
    v = parse(text)
    return v is not None and v.is_prerelease
