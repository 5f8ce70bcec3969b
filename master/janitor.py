"""Retention ([retention] in farm.toml): Buildbot's janitor deletes, once a day, the logs and the
build data (properties, step data) older than the days given. Without it, every build's logs
stay in the database for ever (the bench's `database` section gives the growth per build).

The janitor is Buildbot's own configurator: a builder `janitor` on a local worker of its own, a
nightly scheduler, and `janitor_force` to run it now (an admin, or a test).
"""

from __future__ import annotations

from datetime import timedelta

from buildbot.configurators.janitor import JANITOR_NAME, JanitorConfigurator

from master.settings import RetentionSettings

FORCE_SCHEDULER = JANITOR_NAME + "_force"


def configure(retention: RetentionSettings, config: dict) -> None:
    if not (retention.log_days or retention.build_days):
        return
    JanitorConfigurator(
        logHorizon=timedelta(days=retention.log_days) if retention.log_days else None,
        build_data_horizon=timedelta(days=retention.build_days) if retention.build_days else None,
        hour=retention.hour,
    ).configure(config)
