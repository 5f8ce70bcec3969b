"""master/database.py: SQLite connections of the master commit with synchronous = normal."""

import sqlite3

import pytest
import sqlalchemy as sa

from master import database
from tests.farm import Farm


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


@pytest.fixture
def farm_master_db(tmp_path):
    absent = '[[workers]]\nname = "absent"\nos = "linux"\npythons = ["3.12"]\npassword_env = "ABSENT_PASSWORD"\n'
    farm = Farm(tmp_path, "http://127.0.0.1:9/simple", local_worker=False, extra_toml=absent,
                env={"ABSENT_PASSWORD": "never-used"})
    farm.start(wait_for_worker=False)
    assert farm.stop() == 0, farm.log_tail()
    return tmp_path / "master" / "state.sqlite"


def test_the_farm_indexes_are_there_once_a_master_ran(farm_master_db):
    """The master (tests/farm.py, SQLite) adds the indexes the farm's lookups need, and the
    lookups use them."""
    connection = sqlite3.connect(f"file:{farm_master_db}?mode=ro", uri=True)
    try:
        names = {row[0] for row in connection.execute("select name from sqlite_master where type = 'index'")}
        assert {name for name, _, _ in database.FARM_INDEXES} <= names
        plan = " ".join(str(row) for row in connection.execute(
            "explain query plan select changeid from changes where branch is null and repository = '' and project = 'six' "
            "and codebase = '' order by changeid desc limit 1"))
        assert "farm_changes_project" in plan, plan
    finally:
        connection.close()
