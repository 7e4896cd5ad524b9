"""Plays a plan against a running orderguard: the only part of the scenario that does I/O.

It uses what any outside system uses: the services' HTTP APIs (storefront: orders; warehouse:
stock, receipts, counts; customer service: cases, comments, refunds), `payments.events` as a
payment service publishes it, and carrier scans either over the signed webhook (for carriers
whose secret it is given) or on `carriers.scans`. Each story runs as its own task, each step
at its simulated time divided by the speed-up; a step that needs what the system has not made
yet (an order's shipment, a case's order known to aftersales) waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from orderguard.scenario.plan import (
    CaseAction,
    Comment,
    CountStock,
    OpenCase,
    Pay,
    PlaceOrder,
    Plan,
    PlannedAnomaly,
    ReceiveStock,
    Refund,
    Scan,
    SetStock,
    Step,
    Story,
)
from orderguard.scenario.quality import Label
from orderguard.scenario.scale import Scale
from orderguard.shared.envelope import Envelope
from orderguard.shared.topics import Topics

SERVICES = ("order", "inventory", "logistics", "aftersales", "notifier")
SOURCE_PAYMENTS = "/scenario/payments"
SOURCE_CARRIERS = "/scenario/carriers"


@dataclass(frozen=True)
class Played:
    """A step as played: its time as the detecting rule counts it, and when it was sent."""

    at: datetime
    sent: datetime


def label_of(
    anomaly: PlannedAnomaly,
    match: dict[str, str],
    parts: list[Played],
    scale: Scale,
    tolerance_s: float,
) -> Label:
    """The label of an injection from the steps that made it, as played (stories run on their
    own: the failures of a burst, the refunds of a customer, an order and its twin may go out
    in any order). Injected when its first step was sent; due when its rule counts it due —
    the latest step's own time plus the silence or SLA it waits for — and never before its
    last step was sent (nothing can see it sooner)."""
    due = max(
        max(p.at for p in parts) + timedelta(seconds=scale.real(anomaly.fires_after_s)),
        max(p.sent for p in parts),
    )
    return Label(
        anomaly.id,
        anomaly.kind,
        anomaly.rule,
        match,
        min(p.sent for p in parts),
        due,
        due + timedelta(seconds=tolerance_s),
        anomaly.note,
    )


class StepFailed(Exception):
    """A step could not be played (the system refused it or never got ready for it)."""


@dataclass
class Clients:
    """One HTTP client per service (base URL and API key already set)."""

    by_service: dict[str, httpx.AsyncClient]

    @classmethod
    def connect(cls, urls: dict[str, str], api_key: str, timeout_s: float = 30.0) -> Clients:
        return cls(
            {
                name: httpx.AsyncClient(
                    base_url=url, headers={"X-API-Key": api_key}, timeout=timeout_s
                )
                for name, url in urls.items()
            }
        )

    def __getitem__(self, service: str) -> httpx.AsyncClient:
        return self.by_service[service]

    async def aclose(self) -> None:
        for client in self.by_service.values():
            await client.aclose()


@dataclass
class Progress:
    steps_done: int = 0
    steps_total: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    labels: int = 0
    unplayed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first few, in words
    # how late each step started against the plan (s): a player behind its plan plays
    # another shop than the one planned (longer silences, later deliveries)
    lags_s: list[float] = field(default_factory=list)


@dataclass
class Player:
    plan: Plan
    scale: Scale
    clients: Clients
    kafka_bootstrap: str
    topic_prefix: str = ""
    tolerance_s: float = 10.0
    carrier_secrets: dict[str, str] = field(default_factory=dict)
    wait_s: float = 60.0  # how long a step waits for what it needs from the system
    concurrency: int = 16  # HTTP requests in flight
    on_label: Callable[[Label], None] | None = None
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        self.topics = Topics(self.topic_prefix)
        self.refs: dict[str, str] = {}
        self.ref_ready: dict[str, asyncio.Event] = {}
        self.tracking: dict[str, tuple[str, str]] = {}
        self.scans: Counter[str] = Counter()
        self.anomalies = {anomaly.id: anomaly for anomaly in self.plan.anomalies}
        self.labels: list[Label] = []
        # Per label, the steps that inject it and those played so far.
        self.parts = Counter(
            step.label for story in self.plan.stories for step in story.steps if step.label
        )
        self.played: dict[str, list[Played]] = {}
        self.started_at: datetime | None = None
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self._producer: AIOKafkaProducer | None = None
        self._t0 = 0.0

    # -- running --------------------------------------------------------------------------

    async def play(self) -> list[Label]:
        """Set the shop up, then play every story on time; the labels of what was injected."""
        self.progress.steps_total = self.plan.steps
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.kafka_bootstrap, acks="all", enable_idempotence=False
        )
        await self._producer.start()
        try:
            await asyncio.gather(*(self._guarded(action) for action in self.plan.setup))
            self.started_at = datetime.now(UTC)
            self._t0 = time.monotonic()
            await asyncio.gather(*(self._story(story) for story in self.plan.stories))
        finally:
            await self._producer.stop()
        return self.labels

    async def _guarded(self, action: Any) -> None:
        await self._do(Step(0.0, action))
        self.progress.steps_done += 1

    async def _story(self, story: Story) -> None:
        previous_start = self._t0
        for n, step in enumerate(story.steps):
            planned = self._t0 + self.scale.real(step.at)
            start = max(planned, previous_start + self.scale.real(step.min_gap_s))
            delay = start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            previous_start = time.monotonic()
            self.progress.lags_s.append(max(0.0, previous_start - planned))
            try:
                played = await self._do(step)
            except (StepFailed, httpx.HTTPError) as exc:
                self.progress.failed[type(step.action).__name__] += 1
                if len(self.progress.errors) < 20:
                    self.progress.errors.append(f"{story.name}: {exc}")
                self.progress.steps_done += len(story.steps) - n
                for rest in story.steps[n:]:
                    if rest.label:
                        self.progress.unplayed.append(f"{rest.label}: {exc}")
                return
            self.progress.steps_done += 1
            if step.label:
                parts = self.played.setdefault(step.label, [])
                parts.append(played)
                if len(parts) == self.parts[step.label]:
                    await self._record(self.anomalies[step.label], parts)

    async def _record(self, anomaly: PlannedAnomaly, parts: list[Played]) -> None:
        """The label, once every step that injects it was played."""
        match = {}
        for key, value in anomaly.match.items():
            match[key] = await self._resolve(value[1:]) if value.startswith("@") else value
        label = label_of(anomaly, match, parts, self.scale, self.tolerance_s)
        self.labels.append(label)
        self.progress.labels += 1
        if self.on_label:
            self.on_label(label)

    async def _resolve(self, ref: str) -> str:
        if ref not in self.refs:
            event = self.ref_ready.setdefault(ref, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), self.wait_s)
            except TimeoutError:
                raise StepFailed(f"{ref} never got an id") from None
        return self.refs[ref]

    def _name(self, ref: str, value: str) -> None:
        self.refs[ref] = value
        self.ref_ready.setdefault(ref, asyncio.Event()).set()

    # -- steps ----------------------------------------------------------------------------

    async def _do(self, step: Step) -> Played:
        """Plays one step; returns when it was sent (the successful request, not the start of
        the step: the player's own queue and retries are not the system's delay) and its time
        as the rule that detects it counts it: the same for a request, the case's own opening
        time, the payment's or the scan's own time."""
        action = step.action
        if isinstance(action, SetStock | ReceiveStock | CountStock):
            sent = await self._stock(action)
        elif isinstance(action, PlaceOrder):
            body, sent = await self._call(
                "order", "POST", "/orders", _order_body(action), key=self._key(action.ref)
            )
            self._name(action.ref, body["order_id"])
        elif isinstance(action, Pay):
            return await self._pay(action, step)
        elif isinstance(action, Scan):
            return await self._scan(action)
        elif isinstance(action, OpenCase):
            return await self._open_case(action)
        elif isinstance(action, CaseAction | Comment | Refund):
            sent = await self._follow_case(action)
        else:  # pragma: no cover - the plan has no other actions
            raise StepFailed(f"unknown action {action!r}")
        return Played(sent, sent)

    async def _stock(self, action: SetStock | ReceiveStock | CountStock) -> datetime:
        if isinstance(action, SetStock):
            _, sent = await self._call(
                "inventory",
                "PUT",
                f"/stock/{action.sku}/{action.warehouse}",
                {"on_hand": action.on_hand, "low_stock_threshold": action.threshold},
            )
        elif isinstance(action, ReceiveStock):
            _, sent = await self._call(
                "inventory",
                "POST",
                f"/stock/{action.sku}/{action.warehouse}/receipts",
                {"quantity": action.quantity, "reference": action.reference},
                key=f"{self.plan.tag}-{action.reference}",
            )
        else:
            _, sent = await self._call(
                "inventory",
                "POST",
                f"/stock/{action.sku}/{action.warehouse}/counts",
                {"counted_on_hand": action.counted_on_hand, "counted_by": action.counted_by},
            )
        return sent

    async def _open_case(self, action: OpenCase) -> Played:
        order_id = await self._resolve(action.order_ref)
        body, sent = await self._call(
            "aftersales",
            "POST",
            "/cases",
            {
                "order_id": order_id,
                "case_type": action.case_type,
                "lines": [{"sku": s, "quantity": q} for s, q in action.lines],
                "reason": action.reason,
                "priority": action.priority,
            },
            key=self._key(action.case_ref),
            retry_on=(404,),
        )
        self._name(action.case_ref, body["case_id"])
        # the SLA runs from the service's time
        return Played(datetime.fromisoformat(body["opened_at"]), sent)

    async def _follow_case(self, action: CaseAction | Comment | Refund) -> datetime:
        case_id = await self._resolve(action.case_ref)
        if isinstance(action, CaseAction):
            payload: dict[str, Any] = {"action": action.action}
            if action.satisfaction is not None:
                payload["satisfaction"] = action.satisfaction
            if action.resolution is not None:
                payload["resolution"] = action.resolution
            _, sent = await self._call("aftersales", "POST", f"/cases/{case_id}/actions", payload)
        elif isinstance(action, Comment):
            _, sent = await self._call(
                "aftersales", "POST", f"/cases/{case_id}/comments", {"note": action.note}
            )
        else:
            _, sent = await self._call(
                "aftersales",
                "POST",
                f"/cases/{case_id}/refunds",
                {
                    "lines": [
                        {"sku": s, "quantity": q, "amount": str(a), "action": "return"}
                        for s, q, a in action.lines
                    ],
                    "reason": action.reason,
                },
                key=f"{self.plan.tag}-refund-{action.case_ref}",
                retry_on=(404, 422),
            )
        return sent

    def _key(self, ref: str) -> str:
        return f"scenario-{self.plan.tag}-{ref}"

    async def _call(
        self,
        service: str,
        method: str,
        path: str,
        body: dict[str, Any],
        key: str | None = None,
        retry_on: tuple[int, ...] = (),
    ) -> tuple[dict[str, Any], datetime]:
        """One request; retried while the answer is one of `retry_on` (not ready yet) or the
        connection fails, up to `wait_s`. The answer, and when the request that got it was sent."""
        headers = {"Idempotency-Key": key} if key else {}
        deadline = time.monotonic() + self.wait_s
        delay = 0.05
        while True:
            try:
                async with self._semaphore:
                    sent = datetime.now(UTC)
                    response = await self.clients[service].request(
                        method, path, json=body, headers=headers
                    )
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise StepFailed(f"{method} {path}: {exc}") from exc
            else:
                if response.status_code < 300:
                    return (response.json() if response.content else {}), sent
                if response.status_code not in retry_on or time.monotonic() > deadline:
                    raise StepFailed(
                        f"{method} {path}: {response.status_code} {response.text[:300]}"
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _publish(self, topic: str, envelope: Envelope, key: str) -> None:
        """Send and wait for the broker's ack. No HTTP slot is taken: the producer batches, and
        a scan or a payment queued behind slow HTTP calls would stretch the plan's gaps."""
        assert self._producer is not None
        await self._producer.send_and_wait(
            topic, envelope.to_json(), key=key.encode(), headers=envelope.kafka_headers()
        )

    async def _pay(self, action: Pay, step: Step) -> Played:
        """Publish the payment's outcome. A success happens when it is sent (the delivery
        promise runs from it); a failure's own time is the plan's, so a burst stays a burst
        whatever the player's lag, but nothing can see it before it is sent."""
        order_id = await self._resolve(action.ref)
        sent = datetime.now(UTC)
        if action.failure_code is None:
            occurred = sent
            kind = "payment.succeeded.v1"
            data: dict[str, Any] = {}
        else:
            assert self.started_at is not None
            occurred = self.started_at + timedelta(seconds=self.scale.real(step.at))
            kind = "payment.failed.v1"
            data = {"code": action.failure_code, "reason": "declined by the issuer"}
        envelope = Envelope(
            type=kind,
            source=SOURCE_PAYMENTS,
            subject=order_id,
            data={
                "order_id": order_id,
                "payment_id": action.payment_id,
                "amount": str(action.amount),
                "provider": action.provider,
                "occurred_at": occurred.isoformat(),
                **data,
            },
        )
        await self._publish(self.topics.name("payments.events"), envelope, order_id)
        return Played(occurred, sent)

    async def _shipment(self, ref: str) -> tuple[str, str]:
        """The carrier and tracking number of the order's parcel, once logistics made it."""
        if ref in self.tracking:
            return self.tracking[ref]
        order_id = await self._resolve(ref)
        deadline = time.monotonic() + self.wait_s
        delay = 0.2
        while True:
            async with self._semaphore:
                response = await self.clients["logistics"].get(f"/orders/{order_id}/shipments")
            if response.status_code == 200 and response.json()["shipments"]:
                shipment = response.json()["shipments"][0]
                self.tracking[ref] = (shipment["carrier"], shipment["tracking_number"])
                return self.tracking[ref]
            if time.monotonic() > deadline:
                raise StepFailed(f"no shipment for {ref} ({order_id}) after {self.wait_s}s")
            # Backing off: hundreds of parcels polling every 0.2 s while the system lags would
            # take every HTTP slot and make the lag they wait out.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _scan(self, action: Scan) -> Played:
        """One scan, stamped when its step comes (the carrier's scan time: the plan's gaps
        between scans stay what they are whatever the player's queue), then sent."""
        carrier, tracking = await self._shipment(action.ref)
        self.scans[action.ref] += 1
        scanned_at = datetime.now(UTC)
        body = {
            "tracking_number": tracking,
            "scan_id": f"{self.plan.tag}-{action.ref}-{self.scans[action.ref]}",
            "status": action.status,
            "location": action.location,
            "scanned_at": scanned_at.isoformat(),
        }
        if action.exception_reason:
            body["exception_reason"] = action.exception_reason
        secret = self.carrier_secrets.get(carrier)
        sent = datetime.now(UTC)
        if secret and self.scans[action.ref] % 2 == 0:
            async with self._semaphore:
                sent = datetime.now(UTC)
                await self._webhook(carrier, secret, body)
        else:
            envelope = Envelope(
                type="carrier.scan.v1",
                source=SOURCE_CARRIERS,
                subject=tracking,
                data={"carrier": carrier, **body},
            )
            await self._publish(self.topics.carrier_scans, envelope, tracking)
        return Played(scanned_at, sent)

    async def _webhook(self, carrier: str, secret: str, body: dict[str, Any]) -> None:
        """A carrier's signed POST: HMAC-SHA256 of "<timestamp>.<body>" with its secret (the
        caller holds the semaphore)."""
        raw = orjson.dumps(body)
        timestamp = str(int(time.time()))
        signature = hmac.new(
            secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256
        ).hexdigest()
        response = await self.clients["logistics"].post(
            f"/carriers/{carrier}/scans",
            content=raw,
            headers={
                "X-Carrier-Timestamp": timestamp,
                "X-Carrier-Signature": f"sha256={signature}",
                "Content-Type": "application/json",
            },
        )
        if response.status_code >= 300:
            raise StepFailed(f"webhook scan: {response.status_code} {response.text[:300]}")


def _order_body(action: PlaceOrder) -> dict[str, Any]:
    address = action.address
    return {
        "customer_id": action.customer_id,
        "phone": action.phone,
        "channel": action.channel,
        "warehouse": action.warehouse,
        "member_level": action.member_level,
        "express": action.express,
        "shipping_address": {
            "province": address.province,
            "city": address.city,
            "district": address.district,
            "street": address.street,
            "recipient": address.recipient,
        },
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price": str(line.unit_price)}
            for line in action.lines
        ],
    }


async def close_quietly(clients: Clients) -> None:
    with contextlib.suppress(Exception):
        await clients.aclose()
