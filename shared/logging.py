"""The one logger setup: structlog, JSON lines by default, stdlib loggers routed through it."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Hashable

import structlog


def configure_logging(level: str = "INFO", fmt: str = "json", **bound: str) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            # First: a line below the level is dropped before the others format it (the
            # stdlib logger would drop it only after; an INFO line per order costs the order
            # process ~2% of a POST /orders at WARNING, py-spy).
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance step at INFO; keep them, but not its debug chatter.
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.INFO))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    if bound:
        structlog.contextvars.bind_contextvars(**bound)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


class Repeats:
    """For a line that repeats for one reason (a deployment with no channel for customers says
    so for every message): `say(key)` is how many lines of that key were held back since it was
    last said — the first time, and then at most once per `every_s` per key — else None."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._said_at: dict[Hashable, float] = {}
        self._held: Counter[Hashable] = Counter()

    def say(self, key: Hashable) -> int | None:
        now = self._clock()
        said_at = self._said_at.get(key)
        if said_at is not None and now - said_at < self._every_s:
            self._held[key] += 1
            return None
        self._said_at[key] = now
        return self._held.pop(key, 0)
