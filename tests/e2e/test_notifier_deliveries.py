"""Deliveries end to end on the real broker and database, to real local receivers: a request
published on notifications.requests goes out over a signed webhook (a local HTTP server), with
retries recorded as attempts, permanent failures dead-lettered with the reason, resent over
HTTP; email through a real SMTP server (aiosmtpd) in zh-CN and en; routed anomalies to a Slack
hook; redelivery sends once; a restart mid-flow loses nothing; a rate limit defers."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from testkit import RunningService, events_of_type, publish_event, tuned, wait_until

from orderguard.cli.embedded import free_port
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.channels.signing import verify_webhook
from orderguard.services.notifier.settings import (
    ChannelSettings,
    DeliverySettings,
    EmailSettings,
    ImWebhookSettings,
    NotifierSettings,
    QuietHours,
    WebhookSettings,
)
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.events.notifications import NotificationRequested, Recipient
from orderguard.shared.settings import Settings

SECRET = "whsec-test"


class Receiver:
    """A real HTTP server on localhost that records each request and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int] = []  # consumed in order; 200 once empty
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def on(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]


class Mailbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def configured(
    settings: Settings, receiver: Receiver, smtp_port: int | None = None, **policy: Any
) -> Settings:
    channels = ChannelSettings(
        webhook=WebhookSettings(url=f"{receiver.url}/hook", secret=SecretStr(SECRET)),
        slack=ImWebhookSettings(url=SecretStr(f"{receiver.url}/slack")),
        email=EmailSettings(
            host="127.0.0.1", port=smtp_port, sender="shop@example.com", starttls=False
        )
        if smtp_port
        else None,
        timeout_s=5,
    )
    deliveries = DeliverySettings(
        quiet_hours=QuietHours(enabled=False),
        retry_base_s=0.05,
        retry_cap_s=0.2,
        **policy,
    )
    return tuned(
        settings,
        notifier={"channels": channels, "deliveries": deliveries},
        job_interval_s=0.05,
    )


def request_envelope(
    request_id: str,
    channels: list[str] | None = ("webhook",),  # type: ignore[assignment]
    customer: str = "cust-1",
    template: str = "order.shipped",
    params: dict[str, str] | None = None,
    **recipient: Any,
) -> Envelope:
    data = NotificationRequested(
        request_id=request_id,
        recipient=Recipient(kind="customer", id=customer, **recipient),
        template=template,
        params=params
        if params is not None
        else {"order_id": "o-1", "carrier": "SF Express", "tracking_number": "SF1234567890"},
        channels=list(channels) if channels is not None else None,
        requested_at=datetime.now(UTC),
    )
    return Envelope(
        type="notification.requested.v1",
        source="/test",
        subject=customer,
        data=data.model_dump(mode="json"),
    )


async def deliveries(service: RunningService, **query: str) -> list[dict[str, Any]]:
    response = await service.client.get("/deliveries", params=query)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def delivery(service: RunningService, delivery_id: str) -> dict[str, Any]:
    response = await service.client.get(f"/deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def one_delivery_in(service: RunningService, status: str, **query: str) -> dict[str, Any]:
    async def found() -> list[dict[str, Any]]:
        return await deliveries(service, status=status, **query)

    (only,) = await wait_until(found, timeout=20, what=f"a {status} delivery")
    return await delivery(service, only["id"])


async def requests_applied(service: RunningService, count: int) -> None:
    async def applied() -> bool:
        done = await service.consumed_on(service.runtime.topics.notification_requests)
        return done >= count

    await wait_until(applied, timeout=20, what=f"{count} requests consumed")


async def test_a_request_goes_out_once_over_a_signed_webhook(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    settings = configured(settings, receiver)
    topic = settings.topic_prefix + "notifications.requests"
    notifier = await start_service(NOTIFIER, settings_=settings)
    await notifier.wait_assigned()
    first = request_envelope("order.shipped:o-1:1")
    await publish_event(settings, topic, first)

    sent = await one_delivery_in(notifier, "delivered", recipient="cust-1")
    assert (sent["channel"], sent["template"], sent["language"]) == (
        "webhook",
        "order.shipped",
        "zh-CN",
    )
    (attempt,) = sent["attempt_log"]
    assert (attempt["outcome"], attempt["response_status"]) == ("delivered", 200)
    assert attempt["duration_s"] >= 0
    (hit,) = receiver.on("/hook")
    headers = hit["headers"]
    assert verify_webhook(
        SECRET,
        headers["X-Orderguard-Timestamp"],
        hit["body"],
        headers["X-Orderguard-Signature"],
        now=time.time(),
    )
    body = json.loads(hit["body"])
    assert body["delivery_id"] == sent["id"] == headers["X-Orderguard-Delivery"]
    assert "SF1234567890" in body["text"] and "已发货" in body["subject"]

    # The same request again (a producer's resend under a new event id), and the same message
    # under another request id within the dedup window: neither goes out a second time.
    again = request_envelope("order.shipped:o-1:1")
    same_message = request_envelope("order.shipped:o-1:2")
    await publish_event(settings, topic, again)
    await publish_event(settings, topic, same_message)
    await requests_applied(notifier, 3)
    assert len(await deliveries(notifier)) == 1
    assert len(receiver.on("/hook")) == 1


async def test_a_failing_receiver_is_retried_with_every_attempt_recorded(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    settings = configured(settings, receiver)
    receiver.answers = [503, 500]
    notifier = await start_service(NOTIFIER, settings_=settings)
    await publish_event(
        settings, settings.topic_prefix + "notifications.requests", request_envelope("r-flaky")
    )
    sent = await one_delivery_in(notifier, "delivered")
    assert sent["attempts"] == 3
    assert [(a["number"], a["outcome"], a["response_status"]) for a in sent["attempt_log"]] == [
        (1, "retryable", 503),
        (2, "retryable", 500),
        (3, "delivered", 200),
    ]
    assert sent["attempt_log"][0]["response_snippet"] == "nope"
    # Every attempt carried the same delivery id, so the receiver can dedup.
    assert {r["headers"]["X-Orderguard-Delivery"] for r in receiver.on("/hook")} == {sent["id"]}


async def test_a_permanent_failure_is_dead_lettered_and_can_be_resent(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    settings = configured(settings, receiver)
    receiver.answers = [400]
    notifier = await start_service(NOTIFIER, settings_=settings)
    await publish_event(
        settings, settings.topic_prefix + "notifications.requests", request_envelope("r-gone")
    )
    failed = await one_delivery_in(notifier, "failed")
    assert (failed["attempts"], failed["last_error"]) == (1, "HTTP 400")

    dead_topic = settings.topic_prefix + "notifications.dead"
    (dead,) = await wait_until(
        lambda: events_of_type(settings, dead_topic, "notification.failed.v1"),
        timeout=20,
        what="the dead letter",
    )
    assert dead.subject == "cust-1"
    assert dead.data["delivery_id"] == failed["id"]
    assert (dead.data["reason"], dead.data["error"], dead.data["channel"]) == (
        "permanent",
        "HTTP 400",
        "webhook",
    )

    resent = await notifier.client.post(
        f"/deliveries/{failed['id']}/resend", headers={"Idempotency-Key": "resend-1"}
    )
    assert resent.status_code == 202, resent.text
    assert resent.json()["status"] == "pending"
    replay = await notifier.client.post(
        f"/deliveries/{failed['id']}/resend", headers={"Idempotency-Key": "resend-1"}
    )
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    sent = await one_delivery_in(notifier, "delivered")
    assert [a["outcome"] for a in sent["attempt_log"]] == ["permanent", "delivered"]

    conflict = await notifier.client.post(f"/deliveries/{failed['id']}/resend")
    assert conflict.status_code == 409
    assert conflict.json()["current_state"] == "delivered"
    missing = await notifier.client.post("/deliveries/00000000-0000-0000-0000-000000000000/resend")
    assert missing.status_code == 404


async def test_an_unrenderable_request_is_dead_lettered_at_once(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    settings = configured(settings, receiver)
    notifier = await start_service(NOTIFIER, settings_=settings)
    await publish_event(
        settings,
        settings.topic_prefix + "notifications.requests",
        request_envelope("r-bad", params={"order_id": "o-1"}),
    )
    failed = await one_delivery_in(notifier, "failed")
    assert failed["attempts"] == 0 and "needs param(s) carrier" in failed["last_error"]
    (dead,) = await wait_until(
        lambda: events_of_type(
            settings, settings.topic_prefix + "notifications.dead", "notification.failed.v1"
        ),
        timeout=20,
        what="the dead letter",
    )
    assert dead.data["reason"] == "unrenderable"
    assert receiver.requests == []


async def test_email_through_a_real_smtp_server_in_each_language(
    settings: Settings,
    start_service: Any,
    receiver: Receiver,
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    settings = configured(settings, receiver, smtp_port=port)
    notifier = await start_service(NOTIFIER, settings_=settings)
    topic = settings.topic_prefix + "notifications.requests"
    params = {"order_id": "o-9", "reason": "address incomplete", "what_you_can_do": "confirm it"}
    for customer, language in (("cust-zh", "zh-CN"), ("cust-en", "en")):
        await publish_event(
            settings,
            topic,
            request_envelope(
                f"order.held:o-9:{customer}",
                channels=None,  # the defaults: the customer has an email address, no phone
                customer=customer,
                template="order.held",
                params=params,
                email=f"{customer}@example.com",
                language=language,
            ),
        )
    await wait_until(lambda: _count(box), timeout=20, what="two emails")
    by_recipient = {message["To"]: message for message in box.messages}
    zh = by_recipient["cust-zh@example.com"]
    en = by_recipient["cust-en@example.com"]
    assert zh["Subject"] == "订单 o-9 暂缓处理" and zh["Content-Language"] == "zh-CN"
    assert en["Subject"] == "Order o-9 is on hold"
    assert "您可以：confirm it" in zh.get_body(("plain",)).get_content()  # type: ignore[union-attr]  # noqa: RUF001
    html = en.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "What you can do: confirm it" in html and '<html lang="en">' in html

    # The mail server has them before the sending job commits "delivered": wait for the rows.
    async def both_delivered() -> list[dict[str, Any]]:
        found = await deliveries(notifier, channel="email", status="delivered")
        return found if len(found) == 2 else []

    listed = await wait_until(both_delivered, what="two delivered email rows")
    assert sorted(d["contact_masked"] for d in listed) == [
        "c******@example.com",
        "c******@example.com",
    ]
    assert all("cust-" not in (d["contact_masked"] or "").split("@")[0][1:] for d in listed)


async def _count(box: Mailbox) -> bool:
    return len(box.messages) >= 2


async def test_routed_anomalies_reach_staff_on_the_channels_the_route_names(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    settings = configured(settings, receiver)
    notifier = await start_service(NOTIFIER, settings_=settings)
    example = AnomalyDetected.model_json_schema()["examples"][0]
    routed = AnomalyRouted(
        anomaly=AnomalyDetected.model_validate(example),
        route="warehouse-stock",
        queue="warehouse",
        channels=["in_app", "slack"],
        routed_at=datetime.now(UTC),
    )
    envelope = Envelope(
        type="anomaly.routed.v1",
        source="/test",
        subject=routed.anomaly.fingerprint,
        data=routed.model_dump(mode="json"),
    )
    await publish_event(settings, settings.topic_prefix + "queues.warehouse", envelope)
    sent = await one_delivery_in(notifier, "delivered", recipient="warehouse")
    assert (sent["channel"], sent["template"], sent["recipient_kind"]) == (
        "slack",
        "anomaly.routed",
        "team",
    )
    (hit,) = receiver.on("/slack")
    payload = json.loads(hit["body"])
    assert payload["blocks"][0]["text"]["text"] == "[P3] stock.low → warehouse"
    assert "MUG-RED-350" in payload["blocks"][1]["text"]["text"]
    # The in_app notification is still recorded beside it.
    listed = await notifier.client.get("/notifications", params={"queue": "warehouse"})
    assert [n["channel"] for n in listed.json()] == ["in_app"]


async def test_escalations_reach_the_teams_channels_with_its_own_im_robot(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    base = configured(settings, receiver)
    slack = ImWebhookSettings.model_validate(
        {
            "url": f"{receiver.url}/slack",  # shared by the teams without a robot of their own
            "teams": {"warehouse": {"url": f"{receiver.url}/slack/warehouse"}},
        }
    )
    fast = tuned(
        base,
        job_interval_s=0.1,
        notifier={
            "channels": base.section(NotifierSettings).channels.model_copy(update={"slack": slack}),
            "work_item_claim_within_s": {"P1": 0.5, "P2": 0.5, "P3": 0.5, "P4": 0.5},
            "work_item_max_tier": 2,  # one escalation
        },
    )
    notifier = await start_service(NOTIFIER, settings_=fast)
    await notifier.wait_assigned()
    example = AnomalyDetected.model_json_schema()["examples"][0]
    routed = AnomalyRouted(
        anomaly=AnomalyDetected.model_validate(example),
        route="warehouse-stock",
        queue="warehouse",
        channels=["in_app", "slack"],
        routed_at=datetime.now(UTC),
    )
    await publish_event(
        settings,
        settings.topic_prefix + "queues.warehouse",
        Envelope(
            type="anomaly.routed.v1",
            source="/test",
            subject=routed.anomaly.fingerprint,
            data=routed.model_dump(mode="json"),
        ),
    )

    async def escalation_sent() -> list[dict[str, Any]]:
        sent = await deliveries(notifier, recipient="warehouse", status="delivered")
        found = [d for d in sent if d["template"] == "work_item.escalated"]
        return found if len(found) >= 2 else []

    # Unclaimed past its claim-by: escalated to tier 2, on every channel that reaches the
    # team (the webhook, and the slack robot of its own that the route names too).
    sent = await wait_until(escalation_sent, timeout=30, what="the escalation delivered")
    assert sorted(d["channel"] for d in sent) == ["slack", "webhook"]
    assert {d["recipient_kind"] for d in sent} == {"team"}
    on_robot = [json.loads(hit["body"])["text"] for hit in receiver.on("/slack/warehouse")]
    assert any("stock.low" in text for text in on_robot)  # the routed anomaly
    assert len(on_robot) >= 2  # and the escalation
    assert receiver.on("/slack") == []  # the shared robot is for the other teams
    (_hook,) = [
        hit
        for hit in receiver.on("/hook")
        if json.loads(hit["body"]).get("template") == "work_item.escalated"
    ]


async def test_a_restart_mid_flow_loses_nothing(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    settings = configured(settings, receiver)
    topic = settings.topic_prefix + "notifications.requests"
    first = await start_service(NOTIFIER, settings_=settings)
    await first.wait_assigned()
    receiver.answers = [503]  # the first try fails; the retry happens after the restart
    await publish_event(settings, topic, request_envelope("r-before"))
    await wait_until(
        lambda: deliveries(first, status="retrying"), timeout=20, what="a retrying delivery"
    )
    await first.stop()
    await publish_event(settings, topic, request_envelope("r-during", customer="cust-2"))
    second = await start_service(NOTIFIER, settings_=settings)

    async def both_delivered() -> bool:
        return len(await deliveries(second, status="delivered")) == 2

    await wait_until(both_delivered, timeout=30, what="both delivered after the restart")
    assert sorted(json.loads(r["body"])["request_id"] for r in receiver.on("/hook")) == [
        "r-before",
        "r-before",
        "r-during",
    ]


async def test_over_the_rate_limit_deliveries_wait_for_the_next_window(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    settings = configured(settings, receiver, rate_limits={"webhook": 2}, rate_window_s=3600)
    notifier = await start_service(NOTIFIER, settings_=settings)
    topic = settings.topic_prefix + "notifications.requests"
    for n in range(3):
        await publish_event(settings, topic, request_envelope(f"r-{n}", customer=f"cust-{n}"))

    async def settled() -> list[dict[str, Any]]:
        delivered = await deliveries(notifier, status="delivered")
        waiting = [
            d
            for d in await deliveries(notifier, status="pending")
            if d["deferred_reason"] == "rate_limited"
        ]
        return [*delivered, *waiting] if len(delivered) == 2 and len(waiting) == 1 else []

    rows = await wait_until(settled, timeout=20, what="two sent, one deferred")
    (waiting,) = [row for row in rows if row["status"] == "pending"]
    next_at = datetime.fromisoformat(waiting["next_attempt_at"])
    assert next_at.timestamp() % 3600 == 0 and next_at > datetime.now(UTC)
    assert len(receiver.on("/hook")) == 2


async def test_retries_exhausted_are_dead_lettered(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    settings = configured(settings, receiver, max_attempts=2)
    receiver.answers = [503, 502]
    notifier = await start_service(NOTIFIER, settings_=settings)
    await publish_event(
        settings, settings.topic_prefix + "notifications.requests", request_envelope("r-down")
    )
    failed = await one_delivery_in(notifier, "failed")
    assert [a["response_status"] for a in failed["attempt_log"]] == [503, 502]
    (dead,) = await wait_until(
        lambda: events_of_type(
            settings, settings.topic_prefix + "notifications.dead", "notification.failed.v1"
        ),
        timeout=20,
        what="the dead letter",
    )
    assert (dead.data["reason"], dead.data["attempts"], dead.data["error"]) == (
        "retries_exhausted",
        2,
        "HTTP 502",
    )


async def test_customer_messages_in_quiet_hours_wait_for_their_end(
    settings: Settings, start_service: Any, receiver: Receiver
) -> None:
    now = datetime.now(UTC)
    quiet = QuietHours(
        start=(now - timedelta(hours=1)).time().replace(second=0, microsecond=0),
        end=(now + timedelta(hours=1)).time().replace(second=0, microsecond=0),
        timezone="UTC",
    )
    settings = configured(settings, receiver)
    policy = settings.section(NotifierSettings).deliveries
    settings = tuned(
        settings, notifier={"deliveries": policy.model_copy(update={"quiet_hours": quiet})}
    )
    notifier = await start_service(NOTIFIER, settings_=settings)
    await publish_event(
        settings, settings.topic_prefix + "notifications.requests", request_envelope("r-night")
    )
    (waiting,) = await wait_until(
        lambda: deliveries(notifier, status="pending"), timeout=20, what="a deferred delivery"
    )
    assert waiting["deferred_reason"] == "quiet_hours"
    next_at = datetime.fromisoformat(waiting["next_attempt_at"])
    assert timedelta(minutes=58) < next_at - now <= timedelta(hours=1)
    assert receiver.requests == []
