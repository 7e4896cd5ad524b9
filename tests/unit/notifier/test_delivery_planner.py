"""Planning deliveries from requests: channels by default and by name, the language, quiet
hours, and the requests that fail at once (unknown template, missing param, nowhere to send)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import SecretStr

from orderguard.services.notifier.deliveries.domain import DeliveryRequest, Planner, delivery_id
from orderguard.services.notifier.deliveries.templates import Templates
from orderguard.services.notifier.settings import (
    ChannelSettings,
    DeliverySettings,
    EmailSettings,
    ImWebhookSettings,
    SmsSettings,
)
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted

DAY = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
NIGHT = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
MORNING = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai

CHANNELS = ChannelSettings(
    sms=SmsSettings(url="https://sms.example", api_key=SecretStr("k")),
    email=EmailSettings(host="smtp.example", sender="shop@example.com"),
    slack=ImWebhookSettings(url=SecretStr("https://hooks.slack.example/T")),
    team_emails={"warehouse": "warehouse@example.com"},
)
PLANNER = Planner(CHANNELS, DeliverySettings(), {"sms", "email", "slack"}, Templates())


def request(**changes: object) -> DeliveryRequest:
    base: dict[str, object] = {
        "request_id": "order.shipped:o-1:1",
        "source_event_id": "e-1",
        "recipient_kind": "customer",
        "recipient_id": "cust-1",
        "template": "order.shipped",
        "params": {"order_id": "o-1", "carrier": "SF", "tracking_number": "SF123"},
        "channels": None,
        "language": "en",
        "phone": "13800138000",
        "email": None,
    }
    return DeliveryRequest(**(base | changes))  # type: ignore[arg-type]


def test_defaults_are_the_customer_channels_they_can_be_reached_on() -> None:
    plan = PLANNER.plan(request(), DAY)
    (sms,) = plan.deliveries  # no email address: no email
    assert (sms.channel, sms.status, sms.next_attempt_at, sms.contact) == (
        "sms",
        "pending",
        DAY,
        "13800138000",
    )
    assert sms.contact_masked == "138****8000"
    assert sms.id == delivery_id("order.shipped:o-1:1", "sms")
    assert sms.language == "en" and "shipped" in sms.subject and sms.html is None
    both = PLANNER.plan(request(email="a@example.com"), DAY).deliveries
    assert [d.channel for d in both] == ["sms", "email"]
    assert both[1].html is not None and "<html" in both[1].html


def test_at_night_customer_messages_wait_for_the_morning() -> None:
    (sms,) = PLANNER.plan(request(), NIGHT).deliveries
    assert (sms.status, sms.next_attempt_at, sms.deferred_reason) == (
        "pending",
        MORNING,
        "quiet_hours",
    )


def test_named_channels_that_cannot_be_used_fail_with_the_reason() -> None:
    plan = PLANNER.plan(request(channels=("email", "wecom", "pigeon")), DAY)
    reasons = {d.channel: (d.status, d.fail_reason, d.error) for d in plan.deliveries}
    assert reasons["email"][:2] == ("failed", "no_channel")
    assert "no email" in str(reasons["email"][2])
    assert "wecom is not configured" in str(reasons["wecom"][2])
    assert "unknown channel 'pigeon'" in str(reasons["pigeon"][2])


def test_unrenderable_requests_fail_at_once() -> None:
    (sms,) = PLANNER.plan(request(params={"order_id": "o-1"}), DAY).deliveries
    assert (sms.status, sms.fail_reason) == ("failed", "unrenderable")
    assert "needs param(s) carrier, tracking_number" in str(sms.error)


def test_nowhere_to_send() -> None:
    plan = PLANNER.plan(request(phone=None), DAY)
    assert plan.deliveries == [] and plan.no_channel is not None


def test_routed_anomalies_go_to_the_team_on_the_route_channels_p1_even_at_night() -> None:
    anomaly = AnomalyDetected.model_validate(
        AnomalyDetected.model_json_schema()["examples"][0]
    ).model_copy(update={"severity": "P1"})
    routed = AnomalyRouted(
        anomaly=anomaly,
        route="warehouse-stock",
        queue="warehouse",
        channels=["in_app", "slack", "email"],
        routed_at=NIGHT,
    )
    staff_quiet = DeliverySettings.model_validate({"quiet_hours": {"staff": True}})
    planner = Planner(CHANNELS, staff_quiet, {"sms", "email", "slack"}, Templates())
    plan = planner.plan(DeliveryRequest.of_routed(routed, ("slack", "email"), "e-9"), NIGHT)
    assert [(d.channel, d.status, d.next_attempt_at) for d in plan.deliveries] == [
        ("slack", "pending", NIGHT),
        ("email", "pending", NIGHT),
    ]
    assert plan.deliveries[1].contact == "warehouse@example.com"
    assert plan.deliveries[0].language == "zh-CN"  # staff: the default language
    assert "stock.low" in plan.deliveries[0].subject


ESCALATION = {
    "request_id": "work_item.escalated:w-1:2",
    "recipient_kind": "team",
    "template": "work_item.escalated",
    "params": {
        "work_item_id": "w-1",
        "team": "warehouse",
        "tier": "2",
        "severity": "P2",
        "missed": "claim",
        "title": "stock.low",
        "due_at": "2026-11-22T08:00:00+00:00",
    },
    "phone": None,
}


def test_a_team_request_naming_no_channel_goes_to_every_channel_that_reaches_the_team() -> None:
    robots = CHANNELS.model_copy(
        update={
            "slack": ImWebhookSettings.model_validate(
                {"teams": {"warehouse": {"url": "https://hooks.slack.example/W"}}}
            )
        }
    )
    planner = Planner(robots, DeliverySettings(), {"sms", "email", "slack"}, Templates())
    warehouse = planner.plan(request(**ESCALATION, recipient_id="warehouse"), DAY)
    # its own slack robot and its email; sms needs a phone a team has not
    assert [(d.channel, d.status, d.contact) for d in warehouse.deliveries] == [
        ("email", "pending", "warehouse@example.com"),
        ("slack", "pending", None),
    ]
    # logistics has neither a robot of its own (and there is no shared one) nor an email
    logistics = planner.plan(request(**ESCALATION, recipient_id="logistics"), DAY)
    assert logistics.deliveries == [] and logistics.no_channel is not None
    named = planner.plan(request(**ESCALATION, recipient_id="logistics", channels=("slack",)), DAY)
    assert "no slack robot for team logistics" in str(named.deliveries[0].error)
