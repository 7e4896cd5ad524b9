"""The channels this deployment has configured, built from settings (credentials never in code)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from orderguard.services.notifier.channels.base import CHANNEL_KINDS, Channel
from orderguard.services.notifier.channels.email import EmailChannel
from orderguard.services.notifier.channels.im import DingTalkChannel, SlackChannel, WeComChannel
from orderguard.services.notifier.channels.sms import SmsGatewayChannel
from orderguard.services.notifier.channels.webhook import WebhookChannel
from orderguard.services.notifier.settings import ChannelSettings


def configured_channels(settings: ChannelSettings, client: httpx.AsyncClient) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    if settings.webhook is not None:
        channels["webhook"] = WebhookChannel(settings.webhook, client)
    if settings.email is not None:
        channels["email"] = EmailChannel(settings.email, settings.timeout_s)
    if settings.sms is not None:
        channels["sms"] = SmsGatewayChannel(settings.sms, client)
    if settings.dingtalk is not None:
        channels["dingtalk"] = DingTalkChannel(settings.dingtalk, client)
    if settings.wecom is not None:
        channels["wecom"] = WeComChannel(settings.wecom, client)
    if settings.slack is not None:
        channels["slack"] = SlackChannel(settings.slack, client)
    return channels


@contextlib.asynccontextmanager
async def open_channels(settings: ChannelSettings) -> AsyncIterator[dict[str, Channel]]:
    """The configured channels over one HTTP client, closed when done."""
    # No redirects: a webhook that redirects could leak the signed body elsewhere.
    async with httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False) as client:
        yield configured_channels(settings, client)


def configured_kinds(settings: ChannelSettings) -> frozenset[str]:
    return frozenset(kind for kind in CHANNEL_KINDS if getattr(settings, kind) is not None)
