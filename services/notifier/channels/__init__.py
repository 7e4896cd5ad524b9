"""Delivery channels behind one small interface: `await channel.send(message) -> Outcome`."""

from orderguard.services.notifier.channels.base import (
    CHANNEL_KINDS,
    Channel,
    Message,
    Outcome,
    OutcomeStatus,
)
from orderguard.services.notifier.channels.registry import configured_channels

__all__ = ["CHANNEL_KINDS", "Channel", "Message", "Outcome", "OutcomeStatus", "configured_channels"]
