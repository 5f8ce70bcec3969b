"""Secrets (worker passwords) come from files or environment variables, never from the repo.

A local farm generates its own on first run, under the git-ignored secrets folder.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from master.settings import SettingsError, WorkerSettings


def read_or_create(path: Path) -> str:
    """The secret stored in `path`, creating a random one (readable by its owner only) if absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text(encoding="utf-8").strip()


def worker_password(worker: WorkerSettings, environ=os.environ) -> str:
    if worker.password_env:
        value = environ.get(worker.password_env)
        if value:
            return value
        if not worker.password_file:
            raise SettingsError(
                f"worker {worker.name!r}: the environment variable ${worker.password_env} is not set; "
                "set it to the worker's password."
            )
    if worker.local:
        return read_or_create(worker.password_file)
    try:
        return worker.password_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SettingsError(
            f"worker {worker.name!r}: the password file {worker.password_file} does not exist; "
            "create it with the worker's password."
        ) from None
