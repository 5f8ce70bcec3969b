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
