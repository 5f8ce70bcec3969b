"""What the poller remembers between polls about releases, as plain JSON-able data.

`pending`: releases seen on the feed and not built yet: waiting a short while for their sdist, or
for their metadata to be fetched. `awaiting`: releases built from wheels only, whose sdist, when it
comes, starts the tests again. Both are bounded, and both are saved in the farm's table
(pypi_poller/store.py, the rows a poll changed), so a restart, or another master of a cluster
taking the change source over, loses neither.
"""

from __future__ import annotations

import dataclasses

from pypi_poller.pypi import Event, release_key

MAX_PENDING = 100_000
MAX_AWAITING = 5_000
AWAIT_SDIST_FOR = 7 * 24 * 3600  # after that a late sdist is not worth a second build
GIVE_UP_AFTER = 24 * 3600  # a release still without any file (or unreadable metadata) after a day


@dataclasses.dataclass(frozen=True)
class Cancel:
    name: str
    version: str | None  # None: every release of the project
    reason: str


@dataclasses.dataclass(frozen=True)
class Retest:
    key: str
    filename: str | None


class Releases:
    def __init__(self, pending: dict | None = None, awaiting: dict | None = None, sdist_wait: int = 120):
        self.pending: dict[str, dict] = dict(pending or {})
        self.awaiting: dict[str, dict] = dict(awaiting or {})
        self.sdist_wait = sdist_wait

    # -- the journal -----------------------------------------------------------------------------
    def full(self) -> bool:
        """No room for another pending release: the caller stops reading the journal here."""
        return len(self.pending) >= MAX_PENDING

    def take(self, event: Event, now: float) -> list:
        """Fold one journal event in; returns what must be done at once (Cancel, Retest)."""
        if event.kind == "remove-project":
            self._forget(lambda entry: entry["name"] == event.name)
            return [Cancel(event.name, None, "project removed from the index")]
        key = release_key(event.name, event.version)
        if event.kind in ("yank", "remove-release"):
            self.pending.pop(key, None)
            self.awaiting.pop(key, None)
            return [Cancel(event.name, event.version, "release yanked" if event.kind == "yank" else "release removed")]
        if event.kind == "sdist" and key in self.awaiting:
            return [Retest(key, event.filename)]
        if event.kind in ("new", "unyank", "sdist", "wheel", "file"):
            entry = self.pending.get(key)
            if entry is None:
                entry = self.pending[key] = {
                    "name": event.name, "version": event.version, "since": now, "sdist": False, "serial": event.serial,
                }
            entry["sdist"] = entry["sdist"] or event.kind == "sdist"
            # The newest event of the release: an answer of the index older than it is stale.
            entry["last_serial"] = max(entry.get("last_serial") or 0, event.serial or 0)
        return []

    def _forget(self, matches) -> None:
        for table in (self.pending, self.awaiting):
            for key in [k for k, entry in table.items() if matches(entry)]:
                del table[key]

    # -- decisions -------------------------------------------------------------------------------
    def ready(self, now: float, limit: int) -> list[str]:
        """Pending releases to build now: their sdist is there, or they waited long enough for it."""
        keys = [
            key for key, entry in self.pending.items()
            if entry.get("retry_at", 0) <= now and (entry["sdist"] or now - entry["since"] >= self.sdist_wait)
        ]
        keys.sort(key=lambda key: self.pending[key].get("serial", 0))
        return keys[:limit]

    def wait_for_sdist(self, key: str, name: str, version: str, change: dict, now: float) -> None:
        """Keep a release whose wheels came first, with its Change ready, until its sdist or the deadline."""
        entry = self.pending.setdefault(key, {"name": name, "version": version, "since": now, "sdist": False})
        entry["change"] = change

    def postpone(self, key: str, now: float, delay: float) -> bool:
        """Try a release's metadata again later; False once it has been tried for a day."""
        entry = self.pending.get(key)
        if entry is None:
            return False
        if now - entry["since"] > GIVE_UP_AFTER:
            del self.pending[key]
            return False
        entry["retry_at"] = now + delay
        return True

    def built(self, key: str, change: dict, now: float) -> None:
        self.pending.pop(key, None)
        if change["properties"].get("has_sdist"):
            self.awaiting.pop(key, None)
        else:
            self.awaiting[key] = {"name": change["project"], "since": now, "change": change}
            if len(self.awaiting) > MAX_AWAITING:
                oldest = min(self.awaiting, key=lambda k: self.awaiting[k]["since"])
                del self.awaiting[oldest]

    def expire(self, now: float) -> None:
        for key in [k for k, entry in self.awaiting.items() if now - entry["since"] > AWAIT_SDIST_FOR]:
            del self.awaiting[key]
