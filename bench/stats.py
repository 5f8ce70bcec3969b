"""The bench's arithmetic and its table: plain functions, tested without a farm (tests/test_bench.py)."""

from __future__ import annotations

import json
import math
import statistics


def percentile(values, fraction: float) -> float:
    """The `fraction` (0..1) percentile, interpolated between the two nearest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values) -> float:
    return statistics.median(values)


def overhead_figures(rows: list[dict]) -> dict:
    """Per-build figures from rows {farm_s, raw_s, naive_s}: farm minus raw, and the ratios."""
    if not rows:
        raise ValueError("no builds to summarise")
    differences = [row["farm_s"] - row["raw_s"] for row in rows]
    figures = {
        "overhead_median_s": median(differences),
        "overhead_p90_s": percentile(differences, 0.9),
        "farm_median_s": median(row["farm_s"] for row in rows),
        "raw_median_s": median(row["raw_s"] for row in rows),
        "farm_over_raw_ratio": median(row["farm_s"] / row["raw_s"] for row in rows),
    }
    naive = [row for row in rows if row.get("naive_s") is not None]
    if naive:
        figures["naive_median_s"] = median(row["naive_s"] for row in naive)
        figures["naive_ratio"] = median(row["naive_s"] / row["farm_s"] for row in naive)
    return figures


def efficiency(raw_seconds, wall_seconds: float, parallel: int) -> float:
    """Share of the farm's capacity spent on the packages' own work: sum(raw) / (wall x parallel)."""
    if wall_seconds <= 0 or parallel <= 0:
        raise ValueError("wall time and parallel builds must be positive")
    return sum(raw_seconds) / (wall_seconds * parallel)


def builds_per_hour(builds: int, wall_seconds: float) -> float:
    return builds * 3600.0 / wall_seconds


# (key, label, unit, target, "max" if the figure must stay under the target, "min" if over it)
TARGETS = (
    ("overhead_median_s", "Per-build overhead, median (farm - raw)", "s", 1.0, "max"),
    ("overhead_p90_s", "Per-build overhead, 90th percentile", "s", None, None),
    ("naive_ratio", "Naive time / farm time, per build (median)", "x", 3.0, "min"),
    ("efficiency", "Throughput efficiency, sum(raw) / (wall x parallel)", "", 0.85, "min"),
    ("builds_per_hour", "Builds per hour (2 at a time)", "/h", None, None),
    ("intake_10k_s", "Intake: 10,000 releases queued as build requests", "s", 60.0, "max"),
    ("master_rss_mb", "Master memory after the burst (RSS, peak)", "MB", None, None),
    ("master_cpu_per_build_s", "Master CPU per build (throughput run)", "s", None, None),
    ("master_builds_per_s", "Builds per second one master sustains (one core, from its CPU per build)", "/s", None, None),
    ("db_mb_per_10k_builds", "Database growth per 10,000 builds (SQLite, logs included)", "MB", None, None),
    ("ui_p95_ms", "UI: 95th percentile of the REST endpoints, 10,000 requests pending", "ms", 300.0, "max"),
    ("latency_s", "Latency: release on the journal to its first finished build", "s", 60.0, "max"),
)


def verdict(value, target, direction) -> str:
    if value is None:
        return "not measured"
    if target is None:
        return ""
    met = value <= target if direction == "max" else value >= target
    return "met" if met else "MISSED"


def _format(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:.1f} {unit}"
    if unit == "ms" or unit == "/h" or unit == "MB":
        return f"{value:.0f} {unit}"
    if unit == "":
        return f"{value:.0%}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.2f} {unit}"


def markdown_table(results: dict, before: dict | None = None) -> str:
    """The headline table: each figure, its target, whether it is met (and the figure before the fixes)."""
    header = "| figure | value | target | verdict |" + (" before the fixes |" if before else "")
    rule = "| --- | --- | --- | --- |" + (" --- |" if before else "")
    lines = [header, rule]
    for key, label, unit, target, direction in TARGETS:
        value = results.get(key)
        goal = "-" if target is None else ("<= " if direction == "max" else ">= ") + _format(target, unit)
        row = f"| {label} | {_format(value, unit)} | {goal} | {verdict(value, target, direction)} |"
        if before:
            row += f" {_format(before.get(key), unit)} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def dump(results: dict) -> str:
    return json.dumps(results, indent=2, sort_keys=True, default=str) + "\n"
