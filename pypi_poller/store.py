"""The change source's releases between polls (pypi_poller/releases.py) in a table of the farm's
own, one row per release: a poll writes only the rows it changed, where Buildbot's state would
rewrite the whole set (up to 100,000 entries) as one blob every poll. Plain SQLAlchemy Core, for
SQLite and PostgreSQL alike; the master that runs the change source is the only writer.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

KINDS = ("pending", "awaiting")
BATCH = 500

metadata = sa.MetaData()
releases = sa.Table(
    "farm_poller_releases", metadata,
    sa.Column("source", sa.String(100), primary_key=True),  # the change source's name
    sa.Column("kind", sa.String(10), primary_key=True),  # pending | awaiting
    sa.Column("release", sa.String(300), primary_key=True),  # its key (pypi.release_key)
    sa.Column("entry", sa.Text, nullable=False),  # JSON
)


def encode(entry: dict) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def load(conn, source: str) -> dict[str, dict[str, str]]:
    """{kind: {release key: encoded entry}} as saved; the table is created here if absent (the
    change source loads before it first saves)."""
    metadata.create_all(conn, checkfirst=True)
    found: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    rows = conn.execute(sa.select(releases.c.kind, releases.c.release, releases.c.entry)
                        .where(releases.c.source == source))
    for kind, key, entry in rows:
        if kind in found:
            found[kind][key] = entry
    return found


def changes(saved: dict[str, dict[str, str]], current: dict[str, dict[str, dict]]):
    """(rows to write, keys to delete) per kind, from what was saved to what the poller holds."""
    write: dict[str, dict[str, str]] = {}
    delete: dict[str, list[str]] = {}
    for kind in KINDS:
        before, now = saved.get(kind, {}), current.get(kind, {})
        encoded = {key: encode(entry) for key, entry in now.items()}
        write[kind] = {key: text for key, text in encoded.items() if before.get(key) != text}
        delete[kind] = [key for key in before if key not in now]
    return write, delete


def save(conn, source: str, write: dict[str, dict[str, str]], delete: dict[str, list[str]]) -> None:
    for kind in KINDS:
        keys = list(write.get(kind, {})) + list(delete.get(kind, []))
        for start in range(0, len(keys), BATCH):
            chunk = keys[start:start + BATCH]
            conn.execute(releases.delete().where(sa.and_(
                releases.c.source == source, releases.c.kind == kind, releases.c.release.in_(chunk))))
        rows = [{"source": source, "kind": kind, "release": key, "entry": text}
                for key, text in write.get(kind, {}).items()]
        for start in range(0, len(rows), BATCH):
            conn.execute(releases.insert(), rows[start:start + BATCH])
