"""Shared fixtures: a real PEP 503 index with the standard fixture packages and the tool wheelhouse."""
import pytest

from tests.pkgindex import PackageIndex, ensure_wheelhouse, write_standard_packages


@pytest.fixture(scope="session")
def package_index(tmp_path_factory):
    """A PackageIndex (.url) serving farmfix-<behaviour> 1.0 for every outcome, plus pytest/setuptools.

    `package_index.expected` maps each package name to the outcome the runner must report,
    `package_index.dists` is the folder of built distributions.
    """
    dists = tmp_path_factory.mktemp("dists")
    expected = write_standard_packages(dists)
    with PackageIndex(dists, ensure_wheelhouse()) as index:
        index.expected = expected
        index.dists = dists
        yield index


@pytest.fixture(scope="session")
def postgres_server():
    """A database URL factory on the local PostgreSQL server (.ci/run installs and starts it)."""
    import uuid

    import psycopg

    try:
        admin = psycopg.connect(dbname="postgres", host=POSTGRES_SOCKETS, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL is not running here ({error}); .ci/run installs and starts it")
    made = []

    def new_database():
        name = "farm_" + uuid.uuid4().hex[:12]
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return f"postgresql://@/{name}?host={POSTGRES_SOCKETS}"

    yield new_database
    with admin.cursor() as cursor:
        for name in made:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


POSTGRES_SOCKETS = "/var/run/postgresql"
