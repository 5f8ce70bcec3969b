"""The master's database: its URL, and for SQLite how each connection commits.

Buildbot runs SQLite in WAL mode with one database thread and a new connection per transaction;
with SQLite's default `synchronous = full` every commit waits for the disk, and a build makes
dozens (steps, logs, properties). In WAL mode `synchronous = normal` cannot corrupt the
database; a power cut may lose the last few commits (a build's result, which the farm then
builds again). A farm that must keep every row runs on PostgreSQL.
"""

from __future__ import annotations

import sqlite3


class FarmSQLiteConnection(sqlite3.Connection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.execute("pragma synchronous = normal")


def db_config(db_url: str) -> dict:
    """Buildbot's `db` setting for this URL."""
    if db_url.startswith("sqlite"):
        return {"db_url": db_url, "engine_kwargs": {"connect_args": {"factory": FarmSQLiteConnection}}}
    return {"db_url": db_url}
