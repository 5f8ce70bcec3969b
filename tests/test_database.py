"""master/database.py: SQLite connections of the master commit with synchronous = normal."""

import sqlite3

import sqlalchemy as sa

from master import database


def test_sqlite_connections_commit_without_waiting_for_the_disk(tmp_path):
    config = database.db_config(f"sqlite:///{tmp_path}/state.sqlite")
    engine = sa.create_engine(config["db_url"], **config["engine_kwargs"])
    with engine.connect() as connection:
        assert connection.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL
    plain = sqlite3.connect(tmp_path / "plain.sqlite")
    assert plain.execute("pragma synchronous").fetchone()[0] == 2  # FULL, SQLite's default
    plain.close()
    engine.dispose()


def test_other_databases_get_only_their_url():
    assert database.db_config("postgresql://farm@localhost/farm") == {"db_url": "postgresql://farm@localhost/farm"}
