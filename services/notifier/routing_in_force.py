"""The routing file in force, hot-reloaded: a changed file is validated and swapped in; an
invalid one is rejected (logged, counted, shown by GET /routing) and the old one stays.

The file's modification time is polled at most every `routing_reload_interval_s` by whoever
asks for the tree (the router per batch, the group-flush job, GET /routing), so API and worker
processes each notice a change without a thread of their own; POST /routing/reload and SIGHUP
(as for Prometheus and Alertmanager) force it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orderguard.services.notifier.routing import (
    DEFAULT_ROUTING_FILE,
    RoutingFileError,
    RoutingTree,
    load_routing,
)
from orderguard.shared import metrics
from orderguard.shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Rejection:
    error: str
    at: datetime
    modified: float  # the rejected file's mtime: not retried until it changes again


class RoutingInForce:
    def __init__(self, path: str | Path | None, interval_s: float = 5.0) -> None:
        self.path = Path(path) if path is not None else DEFAULT_ROUTING_FILE
        self.interval_s = interval_s
        self.tree = load_routing(self.path)  # invalid at start-up: start-up fails
        self.loaded_at = datetime.now(UTC)
        self.rejection: Rejection | None = None
        self._modified = self._mtime()
        self._checked = time.monotonic()
        metrics.ROUTING_CONFIG_INFO.labels(self.tree.version).set(1)
        metrics.ROUTING_CONFIG_LAST_RELOAD_OK.set(1)

    def current(self) -> RoutingTree:
        """The tree in force, after a reload if the file changed (checked at most every
        `interval_s`)."""
        if self.interval_s > 0 and time.monotonic() - self._checked >= self.interval_s:
            self.reload(force=False)
        return self.tree

    def reload(self, force: bool = True) -> bool:
        """Reload if the file changed (or always, with `force`); True if a new tree is in force."""
        self._checked = time.monotonic()
        modified = self._mtime()
        if not force and modified == self._modified:
            return False
        if not force and self.rejection is not None and modified == self.rejection.modified:
            return False
        try:
            tree = load_routing(self.path)
        except RoutingFileError as exc:
            self.rejection = Rejection(str(exc), datetime.now(UTC), modified)
            metrics.ROUTING_RELOADS.labels("rejected").inc()
            metrics.ROUTING_CONFIG_LAST_RELOAD_OK.set(0)
            log.error(
                "routing file rejected; the previous one stays in force",
                source=str(self.path),
                version_in_force=self.tree.version,
                error=str(exc),
            )
            return False
        self._modified = modified
        self.rejection = None
        metrics.ROUTING_CONFIG_LAST_RELOAD_OK.set(1)
        if tree.version == self.tree.version:
            return False
        metrics.ROUTING_RELOADS.labels("ok").inc()
        with contextlib.suppress(KeyError):
            metrics.ROUTING_CONFIG_INFO.remove(self.tree.version)  # one version series at a time
        metrics.ROUTING_CONFIG_INFO.labels(tree.version).set(1)
        log.info(
            "routing file reloaded",
            source=str(self.path),
            previous_version=self.tree.version,
            version=tree.version,
        )
        self.tree = tree
        self.loaded_at = datetime.now(UTC)
        return True

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return -1.0


# Every routing file in force in this process (the API's and the workers' share one; tests run
# several services in one process): SIGHUP reloads them all.
_ON_SIGHUP: weakref.WeakSet[RoutingInForce] = weakref.WeakSet()


def reload_on_sighup(routing: RoutingInForce) -> None:
    """Reload `routing` when the process receives SIGHUP; needs the running event loop of the
    main thread (where services run)."""
    _ON_SIGHUP.add(routing)
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload_all)
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        log.warning("SIGHUP will not reload the routing file here", reason=str(exc))


def _reload_all() -> None:
    for routing in list(_ON_SIGHUP):
        log.info("SIGHUP: reloading the routing file", source=str(routing.path))
        routing.reload(force=True)
