"""The batched, transactional consumer engine that runs service consumers and detectors."""

from orderguard.shared.engine.consumer import (
    BatchConsumer,
    DeadlineSweeper,
    Engine,
    Event,
    RejectEvent,
)

__all__ = ["BatchConsumer", "DeadlineSweeper", "Engine", "Event", "RejectEvent"]
