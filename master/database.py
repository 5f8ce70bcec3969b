"""The master's database: its URL, and for SQLite how connections are kept and commit.

Buildbot runs SQLite in WAL mode with one database thread, and opens a new connection for each
transaction (SQLAlchemy's NullPool): opening one and reading the schema took a third of the
master's time while it took in a burst of releases. Here the connection is kept (a pool of
one, used by that one thread at a time). With SQLite's default `synchronous = full` every
commit waits for the disk, and a build makes dozens (steps, logs, properties); in WAL mode
`synchronous = normal` cannot corrupt the database, and a power cut may lose the last few
commits (a build's result, which the farm then builds again). A farm that must keep every row
runs on PostgreSQL.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from buildbot.util import service
from sqlalchemy.pool import QueuePool
from twisted.internet import defer
from twisted.python import log


class FarmSQLiteConnection(sqlite3.Connection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.execute("pragma synchronous = normal")


def db_config(db_url: str) -> dict:
    """Buildbot's `db` setting for this URL."""
    if db_url.startswith("sqlite"):
        return {"db_url": db_url, "engine_kwargs": {
            "poolclass": QueuePool, "pool_size": 1, "max_overflow": 4,
            # One thread at a time uses a connection, though not always the thread that opened it.
            "connect_args": {"factory": FarmSQLiteConnection, "check_same_thread": False},
        }}
    return {"db_url": db_url}


# Indexes Buildbot's schema lacks for the farm's questions; each turned a scan of a table that
# grows with every release into a lookup (the intake of 10,000 releases spent a quarter of its
# time in those scans). Named farm_*, so they are ours to add; Buildbot's upgrades leave them be.
FARM_INDEXES = (
    # The Changes of one package: Buildbot's parent-change lookup on each new Change, the poller's
    # "seen already?", the rebuild and re-test schedulers, the package page.
    ("farm_changes_project", "changes", ("project",)),
    # The buildsets of one source stamp, i.e. of one release: the collapser (master/collapse.py).
    ("farm_buildset_sourcestamps_ssid", "buildset_sourcestamps", ("sourcestampid",)),
)


class FarmIndexes(service.BuildbotService):
    """Adds FARM_INDEXES when the master starts (once: they are kept in the database)."""

    name = "farm-indexes"

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        for name, table, columns in FARM_INDEXES:
            # Plain DDL (SQLite, PostgreSQL): Buildbot's model and its metadata stay as they are.
            ddl = sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")
            try:
                yield self.master.db.pool.do_with_transaction(_execute, ddl)
            except Exception as error:  # the database refuses (MySQL has no IF NOT EXISTS here)
                log.msg(f"farm: could not add the index {name} ({error}); the farm works without it, slower")


def _execute(conn, statement) -> None:
    conn.execute(statement)  # returning its result would hold a cursor open (Buildbot's pool refuses it)
