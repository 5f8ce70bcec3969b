"""Collapsing build requests without reading the whole queue for each new one.

Buildbot 4.3's `BuildRequestCollapser` reads every unclaimed request of a builder for each new
request, before it even looks whether collapsing is on, and calls `collapseRequests` on each pair:
with 10,000 requests pending, taking in a burst of releases becomes quadratic (the bench's intake
spent most of its time there). Only requests for the same release can collapse
(`schedulers.same_release`), and requests for the same release share their source stamp (Buildbot
stores each distinct stamp once: project = package, revision = version). So this collapser looks
up the other buildsets of the new buildset's stamps (an index master/database.py adds; for a new
release there are none), reads their unclaimed requests on the same builders, and asks the
configured `collapseRequests` about those alone.

`install()` puts it in place of Buildbot's in `buildbot.data.buildsets`, the one place that uses it.
"""

from __future__ import annotations

import sqlalchemy as sa
from buildbot.data import buildsets
from buildbot.process.buildrequest import BuildRequestCollapser
from buildbot.process.results import SKIPPED
from twisted.internet import defer


class SameSourceCollapser(BuildRequestCollapser):
    @defer.inlineCallbacks
    def collapse(self):
        if not self.brids:
            return []
        candidates = yield self.master.db.pool.do(self._same_source_unclaimed)
        to_collapse = set()
        for (brid, builder_name), others in candidates.items():
            if not others:
                continue
            request = yield self.master.data.get(("buildrequests", brid))
            builder = self.master.botmaster.builders.get(builder_name)
            can_collapse = builder.getCollapseRequestsFn() if builder else None
            if not can_collapse:
                continue
            for other_id in others:
                other = yield self.master.data.get(("buildrequests", other_id))
                if (yield can_collapse(self.master, builder, request, other)) is True:
                    to_collapse.add(other_id)

        collapsed = []
        for brid in sorted(to_collapse):
            claimed = yield self.master.data.updates.claimBuildRequests([brid])
            if claimed:
                yield self.master.data.updates.completeBuildRequests([brid], SKIPPED)
                collapsed.append(brid)
        return collapsed

    def _same_source_unclaimed(self, conn) -> dict[tuple[int, str], list[int]]:
        """{(new request, its builder's name): [unclaimed, incomplete requests of other buildsets
        on that builder with the same source stamps]}."""
        model = self.master.db.model
        requests, claims, stamps = model.buildrequests, model.buildrequest_claims, model.buildset_sourcestamps
        new = conn.execute(
            sa.select(requests.c.id, requests.c.builderid, requests.c.buildsetid, model.builders.c.name)
            .select_from(requests.join(model.builders, model.builders.c.id == requests.c.builderid))
            .where(requests.c.id.in_(self.brids))
        ).fetchall()
        found: dict[tuple[int, str], list[int]] = {(row.id, row.name): [] for row in new}
        for buildsetid in {row.buildsetid for row in new}:
            stamp_ids = select_column(conn, stamps.c.sourcestampid, stamps.c.buildsetid == buildsetid)
            # The other buildsets of these stamps (an index of master/database.py finds them): for
            # a new release there are none, and that is the end of it.
            others = select_column(conn, stamps.c.buildsetid, stamps.c.sourcestampid.in_(stamp_ids),
                                   stamps.c.buildsetid != buildsetid) if stamp_ids else []
            if not others:
                continue
            mine = {row.builderid: (row.id, row.name) for row in new if row.buildsetid == buildsetid}
            query = (
                sa.select(requests.c.id, requests.c.builderid)
                .select_from(requests.outerjoin(claims, claims.c.brid == requests.c.id))
                .where(requests.c.buildsetid.in_(sorted(set(others))))
                .where(requests.c.builderid.in_(list(mine)))
                .where(requests.c.complete == 0)
                .where(claims.c.brid.is_(None))
            )
            for row in conn.execute(query):
                found[mine[row.builderid]].append(row.id)
        return found


def select_column(conn, column, *conditions) -> list:
    return [row[0] for row in conn.execute(sa.select(column).where(*conditions))]


def install() -> None:
    """Use SameSourceCollapser wherever Buildbot adds a buildset."""
    buildsets.BuildRequestCollapser = SameSourceCollapser
