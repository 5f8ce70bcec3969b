"""Several masters on one database, as Buildbot runs them ([cluster] in farm.toml).

Buildbot's multi-master: every master reads and writes the same database, and a WAMP message
queue (a Crossbar router) carries each master's events to the others, so any master's UI shows
every build and a worker may connect to any of them. Buildbot runs the change source and each
scheduler on one master at a time: a clustered service, claimed in the database, taken over by
another master when its own stops or falls silent.

The farm's duties that must also happen once in the cluster (topping up the re-test queues,
sending mail digests) follow a clustered service of their own: the `duties` scheduler, which
queues nothing; whichever master holds it does them (`duties_here`).
"""

from __future__ import annotations

import sqlalchemy as sa
from buildbot.data import masters as buildbot_masters
from buildbot.schedulers.base import ReconfigurableBaseScheduler
from buildbot.util import service
from twisted.internet import defer
from twisted.python import log

from master.settings import ClusterSettings

DUTIES = "duties"


class Duties(ReconfigurableBaseScheduler):
    """Queues nothing: held by one master of the cluster, which does the farm's once-only duties."""

    def __init__(self):
        super().__init__(name=DUTIES, builderNames=[])


class ReleaseClaims(service.BuildbotService):
    """Frees the build requests a dead master had claimed, so another master builds them.

    Buildbot 4.3's housekeeping for an expired master marks its builds RETRY but then unclaims
    the requests claimed by the master doing the housekeeping, not by the dead one
    (`unclaimBuildRequests` filters on its own masterid): the dead master's requests stay claimed
    and are never built. This service, on every master, listens for a master's 'stopped' event
    and deletes that master's claims on unfinished requests; it also sweeps once at start."""

    name = "farm-release-claims"

    @defer.inlineCallbacks
    def startService(self):
        yield super().startService()
        self.consumer = yield self.master.mq.startConsuming(self._stopped, ("masters", None, "stopped"))
        yield self._sweep(None)

    @defer.inlineCallbacks
    def stopService(self):
        consumer = getattr(self, "consumer", None)
        if consumer is not None:
            consumer.stopConsuming()
        yield super().stopService()

    def _stopped(self, key, master):
        return self._sweep(master.get("masterid"))

    @defer.inlineCallbacks
    def _sweep(self, masterid):
        try:
            freed = yield self.master.db.pool.do_with_transaction(free_claims, self.master.db.model, masterid)
        except Exception as error:
            log.err(error, "farm: freeing the build requests of a stopped master")
            return
        if freed:
            log.msg(f"farm: {freed} build requests claimed by a stopped master were freed for the others")
            self.master.botmaster.maybeStartBuildsForAllBuilders()


def free_claims(conn, model, masterid) -> int:
    """Delete the claims of inactive masters (of `masterid`, when given) on unfinished requests."""
    claims, requests, masters = model.buildrequest_claims, model.buildrequests, model.masters
    inactive = sa.select(masters.c.id).where(masters.c.active == 0)
    if masterid is not None:
        inactive = inactive.where(masters.c.id == masterid)
    unfinished = sa.select(requests.c.id).where(requests.c.complete == 0)
    result = conn.execute(claims.delete().where(sa.and_(claims.c.masterid.in_(inactive),
                                                        claims.c.brid.in_(unfinished))))
    return result.rowcount or 0


def duties_here(master) -> bool:
    """Does this master do the cluster's once-only duties? (The only master always does.)"""
    duties = master.scheduler_manager.namedServices.get(DUTIES)
    return duties is not None and duties.isActive()


def router_config(realm: str, port: int, interface: str = "127.0.0.1") -> dict:
    """Crossbar's configuration for the cluster's router: one realm the masters join, reached on
    ws://INTERFACE:PORT/ws. The masters are its only clients, so every role may do everything;
    keep the port where only the masters reach it (ansible/ opens it to them alone)."""
    anyone = {"uri": "", "match": "prefix", "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
              "disclose": {"caller": False, "publisher": False}, "cache": True}
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{"name": realm, "roles": [{"name": "anonymous", "permissions": [anyone]}]}],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": port, "interface": interface},
                "paths": {"ws": {"type": "websocket"}},
            }],
        }],
    }


def configure(cluster: ClusterSettings, config: dict) -> None:
    """The multi-master parts of the BuildmasterConfig; a single master keeps Buildbot's defaults."""
    config["services"].append(ReleaseClaims())
    if cluster.enabled and not cluster.services:
        # A master for builds and the UI only: it never takes the feed or the duties over. (The
        # schedulers stay: a rebuild forced through this master's UI is queued by its own.)
        config["change_source"] = []
    else:
        config["schedulers"].append(Duties())
    claimants = list(config["schedulers"]) + list(config["change_source"])
    if not cluster.enabled:
        return
    config["multiMaster"] = True
    config["mq"] = {"type": "wamp", "router_url": cluster.router, "realm": cluster.realm}
    for claimant in claimants:
        # How often a master tries to take over a service whose master stopped (Buildbot: 5 min).
        claimant.POLL_INTERVAL_SEC = cluster.claim_interval
    # When a silent master counts as gone, its builds retried and its services freed. Buildbot
    # keeps this as a module constant (10 minutes) with no setting of its own.
    buildbot_masters.EXPIRE_MINUTES = cluster.master_timeout / 60
