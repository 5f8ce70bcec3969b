"""BuildmasterConfig from the settings: workers, one builder per slot, schedulers, web UI.

Slots are data: every (os, Python X.Y) that some worker serves becomes a builder named
`<os>-py<X.Y>`, run by the workers that have that interpreter.
"""

from __future__ import annotations

from collections import defaultdict

from buildbot.plugins import util, worker
from farm_runner.host.interpreters import find_interpreters
from twisted.python import log

import pypi_poller
from master import access, cluster, collapse, database, janitor, mail, maintainers, pages, priorities, retests, schedulers
from master.release_build import ReleaseBuild
from master.secrets import worker_password
from master.slots import slot_key, slot_name
from master.settings import Settings, WorkerSettings
from steps.runner_steps import release_steps


def worker_pythons(settings_worker: WorkerSettings) -> list[str]:
    if settings_worker.pythons != "auto":
        return list(settings_worker.pythons)
    found = find_interpreters()
    unsupported = [i for i in found if not i.get("supported", True)]
    for interpreter in unsupported:
        log.msg(
            f"worker {settings_worker.name}: Python {interpreter['version']} at {interpreter['path']} is not "
            f"served by the runner ({interpreter.get('note') or 'unsupported'}); no slot for it."
        )
    return [i["version"] for i in found if i.get("supported", True)]


def build_config(settings: Settings) -> dict:
    collapse.install()  # collapse only same-release requests, without reading the whole queue
    slots: dict[tuple[str, str], list[str]] = defaultdict(list)
    capacity: dict[str, int] = defaultdict(int)  # builds a slot's workers can run at once
    workers = []
    for entry in settings.workers:
        pythons = worker_pythons(entry)
        for python in pythons:
            slots[(entry.os, python)].append(entry.name)
            capacity[slot_name(entry.os, python)] += entry.max_builds
        workers.append(
            worker.Worker(
                entry.name,
                worker_password(entry),
                max_builds=entry.max_builds,
                properties={"runner_python": entry.runner_python, "worker_os": entry.os},
                **mail.missing_worker_notice(settings.mail),
            )
        )

    builders = []
    for os_name, python in sorted(slots, key=lambda slot: slot_key(slot_name(*slot))):
        # [farm] sdist_check adds the `sdist` step: the release built from its sdist too.
        factory = util.BuildFactory(release_steps(settings.sdist_check, settings.limits.timeout))
        factory.buildClass = ReleaseBuild
        builders.append(
            util.BuilderConfig(
                name=slot_name(os_name, python),
                workernames=slots[(os_name, python)],
                factory=factory,
                # The OS only: Buildbot's console groups builders by the tags they do not all share,
                # ordering the groups as text (py3.10 before py3.9), and within a group sorts by name.
                tags=[os_name],
                properties={
                    "python": python,
                    "slot_os": os_name,
                    "index_url": settings.index_url,
                    "runner_limits": settings.limits.runner_flags(),
                    "retries": settings.retries,
                },
            )
        )
    names = [b.name for b in builders]

    config = {
        "title": settings.title,
        "titleURL": settings.title_url,
        "buildbotURL": settings.buildbot_url,
        "workers": workers,
        "protocols": {"pb": {"port": f"tcp:{settings.pb_port}:interface=127.0.0.1" if _all_local(settings) else settings.pb_port}},
        "builders": builders,
        "schedulers": [
            schedulers.release_scheduler(names), schedulers.rebuild_scheduler(names, settings.index_url), schedulers.retest_scheduler(names),
        ],
        "change_source": pypi_poller.change_sources(settings.pypi),
        "collapseRequests": schedulers.same_release,
        # Rebuilds, then releases, then re-tests; new slots first among re-tests (master/priorities.py).
        "prioritizeBuilders": priorities.prioritize_builders,
        "db": database.db_config(settings.db_url),
        "www": {
            "port": settings.http_port,
            "plugins": {
                "waterfall_view": {}, "console_view": {}, "grid_view": {},
                # Slots in version order, no admin controls for visitors (master/www).
                "farm": {},
                # Packages (search, package pages, JSON, badges, unsubscribe) and Farm (overview).
                "wsgi_dashboards": pages.dashboards(settings, names, _unsubscribe_secret(settings)),
            },
            "change_hook_dialects": {},
            # Anonymous visitors read; the `admins` of [access] force, stop and rebuild.
            **access.www_access(settings.access),
        },
        "services": [database.FarmIndexes(), pages.PluginStyles(), *mail.mail_services(settings), *retests.retest_services(settings, dict(capacity))],
        "buildbotNetUsageData": None,
    }
    # Log and build data retention: Buildbot's janitor (a builder and a nightly scheduler of its own).
    janitor.configure(settings.retention, config)
    # One master, or several on one database ([cluster]): the once-only services are clustered.
    cluster.configure(settings.cluster, config)
    return config


def _unsubscribe_secret(settings: Settings) -> bytes | None:
    """The key of the unsubscribe links in maintainer mail; only a farm that mails needs one."""
    return maintainers.unsubscribe_secret(settings.secrets_dir) if settings.mail.enabled else None


def _all_local(settings: Settings) -> bool:
    """A farm whose only worker is the local one need not listen beyond loopback."""
    return all(w.local for w in settings.workers)
