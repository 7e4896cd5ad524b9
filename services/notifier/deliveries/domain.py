"""What a request to notify someone becomes: one planned delivery per channel, each either
ready (when to send it: now, or after quiet hours) or failed at once with the reason. Pure."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal

from orderguard.services.notifier.channels.base import CHANNEL_KINDS, CONTACT_OF, IM_KINDS
from orderguard.services.notifier.deliveries.policy import dedup_key, mask_contact, quiet_until
from orderguard.services.notifier.deliveries.templates import (
    STAFF_TEMPLATE,
    TemplateProblem,
    Templates,
    language_for,
)
from orderguard.services.notifier.settings import ChannelSettings, DeliverySettings
from orderguard.shared.events.anomalies import AnomalyRouted
from orderguard.shared.events.notifications import NotificationRequested

# One id per (request, channel), whoever computes it: a redelivered request finds its rows.
_DELIVERY_IDS = uuid.UUID("0d9b8c3e-51f4-4f0e-8a52-3b1f6c2e7d90")

FailReason = Literal["permanent", "retries_exhausted", "unrenderable", "no_channel"]


def delivery_id(request_id: str, channel: str) -> uuid.UUID:
    return uuid.uuid5(_DELIVERY_IDS, f"{request_id}\x1f{channel}")


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """A request to tell one recipient something, from a customer request or a routed anomaly."""

    request_id: str
    source_event_id: str
    recipient_kind: str
    recipient_id: str
    template: str
    params: dict[str, str]
    channels: tuple[str, ...] | None  # None: the defaults for the recipient
    language: str | None = None
    email: str | None = None
    phone: str | None = None
    severity: str | None = None

    @classmethod
    def of_request(cls, request: NotificationRequested, event_id: str) -> DeliveryRequest:
        recipient = request.recipient
        return cls(
            request_id=request.request_id,
            source_event_id=event_id,
            recipient_kind=recipient.kind,
            recipient_id=recipient.id,
            template=request.template,
            params=dict(request.params),
            channels=tuple(dict.fromkeys(request.channels)) if request.channels else None,
            language=recipient.language,
            email=recipient.email,
            phone=recipient.phone,
        )

    @classmethod
    def of_routed(
        cls, routed: AnomalyRouted, channels: tuple[str, ...], event_id: str
    ) -> DeliveryRequest:
        anomaly = routed.anomaly
        severity = routed.severity or anomaly.severity
        return cls(
            # One staff message per fingerprint and queue, however often it is routed again.
            request_id=f"anomaly.routed:{anomaly.fingerprint}:{routed.queue}",
            source_event_id=event_id,
            recipient_kind="team",
            recipient_id=routed.queue,
            template=STAFF_TEMPLATE,
            params={
                "rule": anomaly.rule,
                "severity": severity,
                "queue": routed.queue,
                "route": routed.route,
                "summary": anomaly.summary,
                "fingerprint": anomaly.fingerprint,
                "labels": ", ".join(f"{k}={v}" for k, v in sorted(anomaly.labels.items())),
            },
            channels=channels,
            severity=severity,
        )


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    id: uuid.UUID
    request: DeliveryRequest
    channel: str
    language: str
    contact: str | None
    dedup_key: str
    status: Literal["pending", "failed"]
    next_attempt_at: datetime | None
    deferred_reason: str | None = None
    subject: str = ""
    text: str = ""
    html: str | None = None
    error: str | None = None
    fail_reason: FailReason | None = None

    @property
    def contact_masked(self) -> str | None:
        return mask_contact(self.contact)


@dataclass(frozen=True, slots=True)
class Plan:
    deliveries: list[PlannedDelivery] = field(default_factory=list)
    # Nowhere to send at all: the request is dead-lettered without a delivery row.
    no_channel: str | None = None


@dataclass
class Planner:
    channels: ChannelSettings
    policy: DeliverySettings
    configured: Collection[str]
    templates: Templates

    def plan(self, request: DeliveryRequest, now: datetime) -> Plan:
        wanted = request.channels if request.channels is not None else self._defaults(request)
        if not wanted:
            return Plan(no_channel="no configured channel can reach this recipient")
        language = language_for(request.language, self.policy.default_language)
        try:
            rendered = self.templates.render(request.template, language, request.params)
            problem = None
        except TemplateProblem as exc:
            rendered, problem = None, str(exc)
        planned = []
        for channel in wanted:
            contact = self._contact(request, channel)
            planned_for = partial(
                PlannedDelivery,
                id=delivery_id(request.request_id, channel),
                request=request,
                channel=channel,
                language=language,
                contact=contact,
                dedup_key=dedup_key(
                    request.recipient_kind,
                    request.recipient_id,
                    channel,
                    request.template,
                    request.params,
                ),
            )
            error = problem or self._unusable(channel, contact, request)
            if error is not None or rendered is None:
                planned.append(
                    planned_for(
                        status="failed",
                        next_attempt_at=None,
                        error=error,
                        fail_reason="unrenderable" if problem else "no_channel",
                    )
                )
                continue
            held_until = quiet_until(
                now, self.policy.quiet_hours, request.recipient_kind, request.severity
            )
            planned.append(
                planned_for(
                    status="pending",
                    next_attempt_at=held_until or now,
                    deferred_reason="quiet_hours" if held_until else None,
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html if channel == "email" else None,
                )
            )
        return Plan(planned)

    def _defaults(self, request: DeliveryRequest) -> tuple[str, ...]:
        """A customer: the customer channels they can be reached on. A team (escalations,
        reminders): every configured channel that reaches it — the webhook, its IM robots (its
        own, else the shared one), its email — so the channels its routes name too."""
        if request.recipient_kind == "customer":
            candidates: tuple[str, ...] = tuple(self.policy.customer_channels)
        elif request.recipient_kind == "team":
            candidates = CHANNEL_KINDS
        else:
            return ()
        return tuple(
            channel
            for channel in candidates
            if channel in self.configured
            and self._unusable(channel, self._contact(request, channel), request) is None
        )

    def _contact(self, request: DeliveryRequest, channel: str) -> str | None:
        needs = CONTACT_OF.get(channel)
        if needs == "phone":
            return request.phone
        if needs == "email":
            if request.email:
                return request.email
            if request.recipient_kind == "team":
                return self.channels.team_emails.get(request.recipient_id)
        return None

    def _unusable(self, channel: str, contact: str | None, request: DeliveryRequest) -> str | None:
        if channel not in CHANNEL_KINDS:
            return f"unknown channel {channel[:50]!r}; known: {', '.join(CHANNEL_KINDS)}"
        if channel not in self.configured:
            return f"channel {channel} is not configured (ORDERGUARD_NOTIFIER__CHANNELS__{channel.upper()}__...)"
        if channel in CONTACT_OF and not contact:
            return f"the recipient has no {CONTACT_OF[channel]} for {channel}"
        robots = getattr(self.channels, channel) if channel in IM_KINDS else None
        if (
            robots is not None
            and robots.robot_for(request.recipient_kind, request.recipient_id) is None
        ):
            return (
                f"no {channel} robot for {request.recipient_kind} {request.recipient_id[:50]}"
                f" (ORDERGUARD_NOTIFIER__CHANNELS__{channel.upper()}__URL or __TEAMS__<team>__URL)"
            )
        return None
