"""The batched, transactional consumer engine that runs service consumers and detectors."""

from orderguard.shared.engine.consumer import (
    BatchHandler,
    DeadlineSweeper,
    Engine,
    Event,
    RejectEvent,
)

__all__ = ["BatchHandler", "DeadlineSweeper", "Engine", "Event", "RejectEvent"]
