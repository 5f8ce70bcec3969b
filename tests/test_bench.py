"""The bench's own arithmetic, table and parsing (bench/stats.py, bench/corpus.py, bench/procedures.py):
fast, no farm, no network. The timed runs themselves are `make bench`."""

from __future__ import annotations

import subprocess

import pytest

from bench import stats
from bench.corpus import CORPUS_FILE, read_corpus
from bench.procedures import Plan, script


def test_percentile_interpolates_like_numpy():
    values = [5, 1, 4, 2, 3]
    assert stats.percentile(values, 0.0) == 1
    assert stats.percentile(values, 1.0) == 5
    assert stats.percentile(values, 0.5) == 3
    assert stats.percentile(values, 0.9) == pytest.approx(4.6)
    assert stats.percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError):
        stats.percentile([], 0.5)
    with pytest.raises(ValueError):
        stats.percentile([1], 1.5)


def test_overhead_figures_are_per_build_differences_and_ratios():
    rows = [
        {"farm_s": 3.0, "raw_s": 2.0, "naive_s": 9.0},
        {"farm_s": 5.0, "raw_s": 4.5, "naive_s": 10.0},
        {"farm_s": 2.0, "raw_s": 1.0, "naive_s": 8.0},
    ]
    figures = stats.overhead_figures(rows)
    assert figures["overhead_median_s"] == 1.0  # differences 1.0, 0.5, 1.0
    assert figures["overhead_p90_s"] == pytest.approx(1.0)
    assert figures["naive_ratio"] == 3.0  # 3.0, 2.0, 4.0
    assert figures["farm_median_s"] == 3.0
    with pytest.raises(ValueError):
        stats.overhead_figures([])


def test_efficiency_and_builds_per_hour():
    assert stats.efficiency([10, 10, 20], wall_seconds=25, parallel=2) == 0.8
    assert stats.builds_per_hour(120, 600) == 720
    with pytest.raises(ValueError):
        stats.efficiency([1], 0, 2)


def test_the_table_says_which_targets_are_met():
    results = {"overhead_median_s": 0.4, "naive_ratio": 2.5, "efficiency": 0.9, "intake_10k_s": 30.0,
               "ui_p95_ms": 120.0, "latency_s": None}
    table = stats.markdown_table(results, before={"overhead_median_s": 3.1})
    lines = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    assert "| met |" in lines["Per-build overhead, median (farm - raw)"]
    assert "3.10 s" in lines["Per-build overhead, median (farm - raw)"]  # the figure before the fixes
    assert "| MISSED |" in lines["Naive time / farm time, per build (median)"]
    assert "90%" in lines["Throughput efficiency, sum(raw) / (wall x parallel)"]
    assert "not measured" in lines["Latency: release on the journal to its first finished build"]


def test_the_corpus_is_pinned_and_about_thirty_releases(tmp_path):
    corpus = read_corpus(CORPUS_FILE)
    assert 25 <= len(corpus) <= 40
    assert len({name for name, _ in corpus}) == len(corpus)
    bad = tmp_path / "corpus.txt"
    bad.write_text("six\n")
    with pytest.raises(ValueError, match="expected name==version"):
        read_corpus(bad)


def test_scripts_run_the_runner_s_tests_and_uninstall(tmp_path):
    plan = Plan("six", "1.17.0", tmp_path / "six-1.17.0.tar.gz", "six-1.17.0", ["test_six.py"], "pytest", "",
                ["six.py"])
    raw = script(plan, "raw", "/usr/bin/python3.12", tmp_path / "w", "http://127.0.0.1:1/simple", "uv", tmp_path / "c")
    assert "uv venv" in raw and "pip install" in raw and "pip uninstall" in raw and "six==1.17.0" in raw
    assert "--no-config" in raw and "-m pytest -q -p no:cacheprovider test_six.py" in raw
    assert "rm -rf %s" % (tmp_path / "w" / "src" / "six-1.17.0" / "six.py") in raw  # the installed copy is tested
    naive = script(plan, "naive", "/usr/bin/python3.12", tmp_path / "w", "http://127.0.0.1:1/simple", "uv",
                   tmp_path / "c")
    assert "-m venv" in naive and "-m pip" in naive and "uninstall -q --disable-pip-version-check" in naive
    no_tests = Plan("tomli", "2.5.0", tmp_path / "tomli-2.5.0.tar.gz", "tomli-2.5.0", [], None)
    assert "-m pytest" not in script(no_tests, "raw", "python3", tmp_path / "w", "http://127.0.0.1:1/simple", "uv",
                                     tmp_path / "c")


def test_scripts_fall_back_to_unittest_when_pytest_collects_nothing(tmp_path):
    plan = Plan("decorator", "5.2.1", tmp_path / "decorator-5.2.1.tar.gz", "decorator-5.2.1", [], "pytest", "",
                ["src/decorator.py"], fallback=["discover", "-s", "tests"])
    raw = script(plan, "raw", "/usr/bin/python3.12", tmp_path / "w", "http://127.0.0.1:1/simple", "uv", tmp_path / "c")
    assert "-m unittest discover -s tests" in raw and "[ $s = 5 ]" in raw
    assert subprocess.run(["bash", "-n"], input=raw, text=True).returncode == 0  # the script parses


def test_capacity_figures_per_build():
    from bench.run import capacity_figures

    figures = capacity_figures(master_cpu_s=24.0, database_bytes=6 * 2**20, builds=120)
    assert figures["master_cpu_per_build_s"] == 0.2 and figures["master_builds_per_s"] == 5.0
    assert figures["db_mb_per_10k_builds"] == 500.0
    assert figures["capacity_detail"] == {"builds": 120, "master_cpu_s": 24.0, "database_bytes": 6 * 2**20}
