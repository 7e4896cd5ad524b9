"""Delivery use cases: plan deliveries for requests (consumer), send what is due with retries
and rate limits (scheduled job), resend a failed one (operator)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orderguard.services.notifier.channels.base import CHANNEL_KINDS, Channel, Message, Outcome
from orderguard.services.notifier.deliveries import repository
from orderguard.services.notifier.deliveries.domain import (
    DeliveryRequest,
    FailReason,
    PlannedDelivery,
    Planner,
)
from orderguard.services.notifier.deliveries.policy import (
    quiet_until,
    rate_window,
    retry_delay_s,
)
from orderguard.services.notifier.settings import DeliverySettings
from orderguard.shared import metrics
from orderguard.shared.engine import Event
from orderguard.shared.errors import IllegalTransition, NotFound
from orderguard.shared.events.notifications import (
    NotificationFailed,
    NotificationRequested,
    RecipientRef,
)
from orderguard.shared.logging import Repeats, get_logger
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/notifier/deliveries"

log = get_logger(__name__)

NO_CHANNEL_SAID_EVERY_S = 60.0
NO_CHANNEL_SAID = Repeats(NO_CHANNEL_SAID_EVERY_S)


def _channel_label(channel: str) -> str:
    return channel if channel in CHANNEL_KINDS else "unknown"


def _count(uow: UnitOfWork, channel: str, outcome: str) -> None:
    uow.after_commit(metrics.NOTIFICATIONS.labels(_channel_label(channel), outcome).inc)


def publish_failed(
    uow: UnitOfWork,
    topic: str,
    *,
    request_id: str,
    recipient_kind: str,
    recipient_id: str,
    template: str,
    reason: FailReason,
    error: str,
    delivery_id: uuid.UUID | None = None,
    channel: str | None = None,
    attempts: int = 0,
) -> None:
    """The dead letter of a message: on notifications.dead, keyed by recipient, with the reason."""
    data = NotificationFailed(
        request_id=request_id,
        delivery_id=str(delivery_id) if delivery_id else None,
        recipient=RecipientRef(kind=recipient_kind, id=recipient_id),
        template=template,
        channel=channel,
        reason=reason,
        error=error,
        attempts=attempts,
        failed_at=uow.now,
    )
    uow.publish(topic, data, source=SOURCE, subject=recipient_id)
    # A recipient no configured channel reaches is the deployment's gap, repeated for every
    # message (8,300 lines in one detection bench run): said once per kind of recipient and
    # template every NO_CHANNEL_SAID_EVERY_S, with how many were not. Each one is still on
    # notifications.dead and counted in orderguard_notifications_total.
    alike: dict[str, int] = {}
    if reason == "no_channel":
        held = NO_CHANNEL_SAID.say((recipient_kind, template))
        if held is None:
            return
        alike["alike_not_logged"] = held
    log.warning(
        "notification failed",
        request_id=request_id,
        delivery_id=str(delivery_id) if delivery_id else None,
        channel=channel,
        recipient_kind=recipient_kind,
        recipient_id=recipient_id,
        template=template,
        reason=reason,
        error=error,
        **alike,
    )


async def plan_requested_deliveries(
    uow: UnitOfWork, planner: Planner, dead_topic: str, batch: Sequence[Event]
) -> None:
    """Plan the deliveries each notification.requested.v1 asks for; the `notifier.deliveries`
    job sends them."""
    requests = [
        DeliveryRequest.of_request(event.data, event.id)
        for event in batch
        if isinstance(event.data, NotificationRequested)
    ]
    await request_deliveries(uow, planner, requests, dead_topic)


async def request_deliveries(
    uow: UnitOfWork,
    planner: Planner,
    requests: list[DeliveryRequest],
    dead_topic: str,
) -> None:
    """Plan and store the deliveries of each request, once per (request, channel), and once per
    identical message to one recipient within the dedup window."""
    since = uow.now - timedelta(seconds=planner.policy.dedup_window_s)
    for request in requests:
        plan = planner.plan(request, uow.now)
        if plan.no_channel is not None:
            _count(uow, "unknown", "failed")
            publish_failed(
                uow,
                dead_topic,
                request_id=request.request_id,
                recipient_kind=request.recipient_kind,
                recipient_id=request.recipient_id,
                template=request.template,
                reason="no_channel",
                error=plan.no_channel,
            )
            continue
        for planned in plan.deliveries:
            await _store(uow, planner.policy, planned, since, dead_topic)


async def _store(
    uow: UnitOfWork,
    policy: DeliverySettings,
    planned: PlannedDelivery,
    since: datetime,
    dead_topic: str,
) -> None:
    request = planned.request
    fields = {
        "delivery_id": str(planned.id),
        "request_id": request.request_id,
        "channel": planned.channel,
        "template": request.template,
        "recipient_id": request.recipient_id,
    }
    if planned.status == "pending" and await repository.recently_sent_same(
        uow.conn, planned.dedup_key, request.request_id, since
    ):
        _count(uow, planned.channel, "duplicate")
        log.info("same message sent to this recipient recently; not again", **fields)
        return
    if not await repository.insert_delivery(uow.conn, planned, policy.max_attempts):
        _count(uow, planned.channel, "duplicate")
        log.info("delivery already planned for this request", **fields)
        return
    if planned.status == "failed":
        assert planned.fail_reason is not None and planned.error is not None
        _count(uow, planned.channel, "failed")
        publish_failed(
            uow,
            dead_topic,
            request_id=request.request_id,
            recipient_kind=request.recipient_kind,
            recipient_id=request.recipient_id,
            template=request.template,
            reason=planned.fail_reason,
            error=planned.error,
            delivery_id=planned.id,
            channel=planned.channel,
        )
        return
    _count(uow, planned.channel, "planned")
    if planned.deferred_reason:
        _count(uow, planned.channel, "deferred")
    log.info(
        "delivery planned",
        language=planned.language,
        contact=planned.contact_masked,
        not_before=planned.next_attempt_at.isoformat() if planned.next_attempt_at else None,
        deferred_reason=planned.deferred_reason,
        **fields,
    )


OpenChannels = Callable[[], AbstractAsyncContextManager[Mapping[str, Channel]]]


@dataclass
class Sender:
    """Sends due deliveries on the configured channels: the body of the `notifier.deliveries`
    scheduled job. Channels (and their HTTP client) are opened per run that has work."""

    open_channels: OpenChannels
    policy: DeliverySettings
    dead_topic: str
    rand: Callable[[], float] = random.random
    _monotonic: Callable[[], float] = field(default=time.monotonic)

    async def send_due(self, uow: UnitOfWork, limit: int) -> int:
        now = uow.now
        due = await repository.lock_due(uow.conn, now, limit)
        awake = await self._outside_quiet_hours(uow, due, now)
        to_send = await self._within_rate_limits(uow, awake, now)
        if not to_send:
            return len(due)
        async with self.open_channels() as channels:
            outcomes = await asyncio.gather(*(self._attempt(channels, row) for row in to_send))
        for row, (outcome, started_at, duration_s) in zip(to_send, outcomes, strict=True):
            await self._settle(uow, row, outcome, started_at, duration_s)
        return len(due)

    async def _outside_quiet_hours(
        self, uow: UnitOfWork, due: list[dict[str, Any]], now: datetime
    ) -> list[dict[str, Any]]:
        """Quiet hours again at send time: a delivery deferred by a rate limit or a resend may
        come due inside them."""
        awake = []
        for row in due:
            held = quiet_until(now, self.policy.quiet_hours, row["recipient_kind"], row["severity"])
            if held is None:
                awake.append(row)
                continue
            await repository.defer(uow.conn, [row["id"]], held, "quiet_hours")
            _count(uow, row["channel"], "deferred")
        return awake

    async def _within_rate_limits(
        self, uow: UnitOfWork, due: list[dict[str, Any]], now: datetime
    ) -> list[dict[str, Any]]:
        start, end = rate_window(now, self.policy.rate_window_s)
        if due:
            await repository.forget_windows_before(uow.conn, start)
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for row in due:
            by_channel.setdefault(row["channel"], []).append(row)
        allowed: list[dict[str, Any]] = []
        for channel, rows in sorted(by_channel.items()):  # one lock order for every worker
            granted = await repository.take_from_window(
                uow.conn, channel, start, self.policy.rate_limits.get(channel), len(rows)
            )
            allowed += rows[:granted]
            over = rows[granted:]
            if over:
                # Over the limit: the rest waits for the next window, nothing is dropped.
                await repository.defer(uow.conn, [row["id"] for row in over], end, "rate_limited")
                uow.after_commit(
                    metrics.NOTIFICATIONS.labels(_channel_label(channel), "deferred").inc,
                )
                log.info(
                    "channel rate limit reached; deliveries wait for the next window",
                    channel=channel,
                    deferred=len(over),
                    until=end.isoformat(),
                )
        return allowed

    async def _attempt(
        self, channels: Mapping[str, Channel], row: dict[str, Any]
    ) -> tuple[Outcome, datetime, float]:
        started_at = datetime.now(UTC)
        began = self._monotonic()
        channel = channels.get(row["channel"])
        if channel is None:
            outcome = Outcome.permanent(f"channel {row['channel']} is no longer configured")
        else:
            try:
                outcome = await channel.send(_message(row))
            except Exception as exc:  # a channel bug must not stop the others' outcomes
                log.exception("channel raised", channel=row["channel"], delivery_id=str(row["id"]))
                outcome = Outcome.retryable(f"channel error: {type(exc).__name__}")
        duration_s = self._monotonic() - began
        metrics.NOTIFICATION_ATTEMPT_DURATION.labels(
            _channel_label(row["channel"]), outcome.status
        ).observe(duration_s)
        return outcome, started_at, duration_s

    async def _settle(
        self,
        uow: UnitOfWork,
        row: dict[str, Any],
        outcome: Outcome,
        started_at: datetime,
        duration_s: float,
    ) -> None:
        attempts = row["attempts"] + 1
        await repository.record_attempt(
            uow.conn, row["id"], attempts, outcome, started_at, duration_s
        )
        fields = {
            "delivery_id": str(row["id"]),
            "request_id": row["request_id"],
            "channel": row["channel"],
            "recipient_id": row["recipient_id"],
            "attempt": attempts,
            "response_status": outcome.response_status,
            "duration_s": round(duration_s, 3),
        }
        if outcome.status == "delivered":
            await repository.update_after_attempt(
                uow.conn,
                row["id"],
                status="delivered",
                attempts=attempts,
                next_attempt_at=None,
                deferred_reason=None,
                error=None,
                delivered_at=uow.now,
            )
            _count(uow, row["channel"], "delivered")
            log.info("delivered", **fields)
            return
        exhausted = attempts >= row["attempt_limit"]
        if outcome.status == "retryable" and not exhausted:
            delay = retry_delay_s(
                attempts, self.policy.retry_base_s, self.policy.retry_cap_s, self.rand
            )
            next_at = uow.now + timedelta(seconds=delay)
            held = quiet_until(
                next_at, self.policy.quiet_hours, row["recipient_kind"], row["severity"]
            )
            await repository.update_after_attempt(
                uow.conn,
                row["id"],
                status="retrying",
                attempts=attempts,
                next_attempt_at=held or next_at,
                deferred_reason="quiet_hours" if held else "retry",
                error=outcome.error,
                delivered_at=None,
            )
            _count(uow, row["channel"], "retry")
            log.info(
                "delivery failed; will retry",
                error=outcome.error,
                retry_in_s=round(delay, 1),
                **fields,
            )
            return
        reason: FailReason = "permanent" if outcome.status == "permanent" else "retries_exhausted"
        await repository.update_after_attempt(
            uow.conn,
            row["id"],
            status="failed",
            attempts=attempts,
            next_attempt_at=None,
            deferred_reason=None,
            error=outcome.error,
            delivered_at=None,
        )
        _count(uow, row["channel"], "failed")
        publish_failed(
            uow,
            self.dead_topic,
            request_id=row["request_id"],
            recipient_kind=row["recipient_kind"],
            recipient_id=row["recipient_id"],
            template=row["template"],
            reason=reason,
            error=outcome.error or outcome.status,
            delivery_id=row["id"],
            channel=row["channel"],
            attempts=attempts,
        )


def _message(row: dict[str, Any]) -> Message:
    return Message(
        delivery_id=str(row["id"]),
        request_id=row["request_id"],
        template=row["template"],
        language=row["language"],
        recipient_kind=row["recipient_kind"],
        recipient_id=row["recipient_id"],
        subject=row["subject"],
        text=row["body_text"],
        html=row["body_html"],
        contact=row["contact"],
        params=dict(row["params"] or {}),
    )


class DeliveryNotFound(NotFound):
    def __init__(self, delivery_id: str) -> None:
        super().__init__("delivery", delivery_id)


class NotResendable(IllegalTransition):
    """Only a failed delivery can be resent."""

    def __init__(self, delivery_id: str, status: str) -> None:
        super().__init__("delivery", delivery_id, status, "resend", allowed_from=["failed"])
        self.status = status


async def resend(
    uow: UnitOfWork, delivery_id: uuid.UUID, policy: DeliverySettings
) -> dict[str, Any]:
    """A failed delivery due again now, with a fresh budget of attempts."""
    row = await repository.lock_delivery(uow.conn, delivery_id)
    if row is None:
        raise DeliveryNotFound(str(delivery_id))
    if row["status"] != "failed":
        raise NotResendable(str(delivery_id), row["status"])
    await repository.reopen(uow.conn, delivery_id, uow.now, policy.max_attempts)
    _count(uow, row["channel"], "resend")
    log.info(
        "delivery re-opened for sending",
        delivery_id=str(delivery_id),
        channel=row["channel"],
        attempts=row["attempts"],
    )
    found = await repository.delivery_with_attempts(uow.conn, delivery_id)
    assert found is not None
    return found
