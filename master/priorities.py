"""What the farm builds next: forced rebuilds, then new releases from the feed, then re-tests.

The order is carried by Buildbot's own build request priorities, set by each scheduler:

- REBUILD (100): someone pressed Rebuild and is waiting;
- RELEASE (50): a new release from the feed; it never waits behind a re-test;
- RETEST (0): rolling and dependency re-tests (master/retests.py), which fill idle worker time.

Inside one builder Buildbot's default chooser already takes the request of highest priority, the
oldest first among equals; a custom `nextBuild` would only repeat that, at the price of loading a
BuildRequest object for every pending request each time a worker frees up, so the farm keeps the
default. Across builders (`c['prioritizeBuilders']`), `prioritize_builders` orders by the highest
pending priority, then puts new slots first among equals: an interpreter just added to a worker
(a new Python) gets the rolling set before the slots that have seen it, which is how "new slots
are scheduled first" is kept without a queue of the farm's own.
"""

from __future__ import annotations

import math
from datetime import datetime

from buildbot.util.async_sort import async_sort
from twisted.internet import defer

REBUILD = 100
RELEASE = 50
RETEST = 0

# The name of the re-test service (master/retests.py) among c['services'].
SERVICE_NAME = "retests"


def new_slots(master) -> set[str]:
    """The slots that have not yet tested the whole rolling set (kept by the re-test service)."""
    manager = getattr(master, "service_manager", None)
    service = manager.namedServices.get(SERVICE_NAME) if manager is not None else None
    return set(getattr(service, "new_slots", ()) or ())


@defer.inlineCallbacks
def prioritize_builders(master, builders):
    """c['prioritizeBuilders']: the highest pending priority first, new slots, then the oldest request."""
    fresh = new_slots(master)

    @defer.inlineCallbacks
    def key(builder):
        priority = yield builder.get_highest_priority()
        oldest = yield builder.getOldestRequestTime()
        if isinstance(oldest, datetime):
            oldest = oldest.timestamp()
        return (
            -(priority if priority is not None else -math.inf),
            0 if builder.name in fresh else 1,
            oldest if oldest is not None else math.inf,
            builder.name,
        )

    yield async_sort(builders, key)
    return builders
