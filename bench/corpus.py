"""The bench's corpus: small real releases (bench/corpus.txt), downloaded once into a local index.

`ensure_index()` fills `.cache/bench-index/` with, for each Python X.Y the bench uses, the corpus's
wheels and their dependencies, pytest and its dependencies, and every release's sdist (the runner
takes the tests from it). It downloads with pip from pypi.org, ignoring this machine's pip
configuration (PIP_CONFIG_FILE=/dev/null, no PIP_* variables): the global configuration adds local
wheel folders and extra indexes that must not leak into the corpus. A stamp named after the corpus
file's digest and the Pythons makes later runs offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import urllib.request
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_FILE = Path(__file__).resolve().parent / "corpus.txt"
INDEX_DIR = ROOT / ".cache" / "bench-index"
PUBLIC_INDEX = "https://pypi.org/simple"
PUBLIC_JSON = "https://pypi.org/pypi"
# Tools the runner or the naive procedure install from the index besides the release itself. pip
# download evaluates environment markers for its own Python, not --python-version: pytest's
# dependencies for older Pythons (exceptiongroup, tomli) are named outright.
TOOLS = ("pytest", "pip", "setuptools", "wheel", "exceptiongroup", "tomli", "typing-extensions")


def read_corpus(path: Path = CORPUS_FILE) -> list[tuple[str, str]]:
    """[(name, version)] of `name==version` lines; `#` starts a comment."""
    corpus = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        if not separator or not name.strip() or not version.strip():
            raise ValueError(f"{path}:{number}: expected name==version, not {line!r}")
        corpus.append((name.strip(), version.strip()))
    return corpus


def pip_environment() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _stamp(directory: Path, pythons, corpus_file: Path) -> Path:
    digest = hashlib.sha256(corpus_file.read_bytes() + " ".join(pythons).encode() + " ".join(TOOLS).encode())
    return directory / f".complete-{digest.hexdigest()[:16]}"


def ensure_index(pythons, directory: Path = INDEX_DIR, corpus_file: Path = CORPUS_FILE, log=print) -> Path:
    """Download the corpus for these Pythons once; return the folder of distribution files."""
    directory = Path(directory)
    stamp = _stamp(directory, pythons, corpus_file)
    if stamp.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    corpus = [f"{name}=={version}" for name, version in read_corpus(corpus_file)]
    pip = [sys.executable, "-m", "pip", "download", "--isolated", "--index-url", PUBLIC_INDEX, "-d", str(directory)]
    for name, version in read_corpus(corpus_file):
        _download_sdist(name, version, directory, log)  # where the tests are
    commands = []
    for python in pythons:
        # Wheels of the releases, pytest and the installers, with dependencies, as each slot resolves them.
        commands.append(pip + ["--only-binary", ":all:", "--python-version", python, *TOOLS, *corpus])
    for command in commands:
        log(f"bench: downloading into {directory}: {' '.join(command[3:8])} ...")
        done = subprocess.run(command, env=pip_environment(), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip download failed ({' '.join(command)}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    for old in directory.glob(".complete-*"):
        old.unlink()
    stamp.touch()
    return directory


def _download_sdist(name: str, version: str, directory: Path, log) -> None:
    """The release's sdist, by its JSON API entry (pip download would build its metadata first)."""
    url = f"{PUBLIC_JSON}/{name}/json"
    with urllib.request.urlopen(url, timeout=60) as response:
        files = json.load(response)["releases"].get(version) or []
    sdists = [f for f in files if f["packagetype"] == "sdist"]
    if not sdists:
        raise RuntimeError(f"{name} {version} has no sdist on pypi.org: the runner would find no tests")
    entry = sdists[0]
    target = directory / entry["filename"]
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == entry["digests"]["sha256"]:
        return
    # Mirrors answer with file addresses relative to the JSON document.
    with urllib.request.urlopen(urllib.parse.urljoin(url, entry["url"]), timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != entry["digests"]["sha256"]:
        raise RuntimeError(f"{entry['filename']}: sha256 mismatch")
    target.write_bytes(data)
    log(f"bench: {entry['filename']}")
