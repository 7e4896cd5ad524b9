"""Notifier use cases: route anomalies to team queues (silences, inhibition, groups and their
timers, resolved updates); flush due groups and release silenced anomalies (scheduled jobs);
record the notifications routes ask for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orderguard.services.notifier import repository
from orderguard.services.notifier.channels.base import CHANNEL_KINDS
from orderguard.services.notifier.deliveries.domain import DeliveryRequest, Planner
from orderguard.services.notifier.deliveries.service import request_deliveries
from orderguard.services.notifier.domain import notifications_for, routing_labels
from orderguard.services.notifier.grouping import Group, Member
from orderguard.services.notifier.inhibition import Inhibition, candidate_filters, inhibitor
from orderguard.services.notifier.routing import GroupTimers, Matcher, RouteMatch, RoutingTree
from orderguard.services.notifier.silences import Silence, silencing
from orderguard.shared import metrics
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.logging import get_logger
from orderguard.shared.tracing import child_of
from orderguard.shared.uow import UnitOfWork

ROUTER_SOURCE = "/orderguard/notifier/router"
# Inhibition source candidates read per query.
SOURCES_PAGE = 1000

log = get_logger(__name__)

QueueTopic = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Silenced:
    silence: Silence


def silence_of(row: dict[str, Any]) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple(Matcher.parse(text) for text in row["matchers"]),
        author=row["author"],
        comment=row["comment"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_at=row["created_at"],
    )


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else int(value / timedelta(milliseconds=1))


def _timers(row: Any) -> GroupTimers:
    repeat = row["repeat_interval_ms"]
    return GroupTimers(
        timedelta(milliseconds=row["group_wait_ms"]),
        timedelta(milliseconds=row["group_interval_ms"]),
        None if repeat is None else timedelta(milliseconds=repeat),
    )


class Router:
    """Routing decisions for one transaction: every anomaly passes the silences, then the
    inhibition rules, then the tree; what is kept back is recorded, to be routed when released."""

    def __init__(self, uow: UnitOfWork, tree: RoutingTree, queue_topic: QueueTopic) -> None:
        self.uow = uow
        self.tree = tree
        self.queue_topic = queue_topic
        self._silences: list[Silence] | None = None

    @property
    def now(self) -> datetime:
        return self.uow.now

    # -- arrivals --------------------------------------------------------------------------

    async def route_events(self, events: list[Event]) -> None:
        anomalies = [
            (event, event.data) for event in events if isinstance(event.data, AnomalyDetected)
        ]
        if not anomalies:
            return
        conn = self.uow.conn
        known = await repository.lock_anomaly_states(
            conn, list({anomaly.fingerprint for _, anomaly in anomalies})
        )
        for event, anomaly in anomalies:
            state = known.get(anomaly.fingerprint)
            labels = routing_labels(anomaly)
            data = anomaly.model_dump(mode="json")
            traceparent = event.envelope.traceparent
            if state is None:
                await repository.insert_anomaly_state(
                    conn,
                    anomaly.fingerprint,
                    anomaly.rule,
                    labels,
                    data,
                    anomaly.status,
                    traceparent,
                )
                known[anomaly.fingerprint] = repository.AnomalyState(
                    anomaly.fingerprint, labels, data, anomaly.status, None, traceparent
                )
                if anomaly.status == "firing":
                    outcome = await self.admit(
                        anomaly.fingerprint, labels, data, event.id, traceparent
                    )
                    known[anomaly.fingerprint] = repository.AnomalyState(
                        anomaly.fingerprint, labels, data, "firing", outcome, traceparent
                    )
                else:
                    self._count("none", "resolved_unknown")
                    log.info(
                        "resolved anomaly never seen firing; nothing to update",
                        fingerprint=anomaly.fingerprint,
                        rule=anomaly.rule,
                        event_id=event.id,
                    )
                continue
            if anomaly.status == "firing" or state.status == "resolved":
                # Redelivered, sent again under a new id, or from a second detector driver.
                for queue in await self._queues_of(state):
                    self._count(queue, "duplicate")
                log.info(
                    "anomaly already handled",
                    fingerprint=anomaly.fingerprint,
                    rule=anomaly.rule,
                    status=anomaly.status,
                    event_id=event.id,
                )
                continue
            await self.resolve(state, data, event.id)
            known[anomaly.fingerprint] = repository.AnomalyState(
                anomaly.fingerprint, state.labels, data, "resolved", state.outcome, traceparent
            )

    async def _queues_of(self, state: repository.AnomalyState) -> list[str]:
        if state.outcome != "routed":
            return ["none"]
        return [match.queue for match in self.tree.route(state.labels)]

    async def admit(
        self,
        fingerprint: str,
        labels: dict[str, str],
        data: dict[str, Any],
        event_id: str,
        traceparent: str | None,
    ) -> str:
        """Silence, inhibit or route a firing anomaly; returns which."""
        conn = self.uow.conn
        decision = await self.decide(fingerprint, labels)
        if isinstance(decision, Silenced):
            await repository.suppress(
                conn, fingerprint, "silenced", event_id, silence_id=decision.silence.id
            )
            outcome = "silenced"
        elif isinstance(decision, Inhibition):
            await repository.suppress(
                conn,
                fingerprint,
                "inhibited",
                event_id,
                inhibit_rule=decision.rule,
                source_fingerprint=decision.source_fingerprint,
            )
            outcome = "inhibited"
        else:
            await self.route(fingerprint, labels, data, event_id, traceparent)
            outcome = "routed"
        await repository.set_anomaly_outcome(conn, fingerprint, outcome)
        if outcome != "routed":
            self.uow.after_commit(metrics.ANOMALIES_SUPPRESSED.labels(outcome).inc)
            log.info(
                f"anomaly {outcome}",
                fingerprint=fingerprint,
                rule=labels.get("rule"),
                silence_id=str(decision.silence.id) if isinstance(decision, Silenced) else None,
                inhibit_rule=decision.rule if isinstance(decision, Inhibition) else None,
                source_fingerprint=decision.source_fingerprint
                if isinstance(decision, Inhibition)
                else None,
            )
        return outcome

    async def decide(
        self, fingerprint: str, labels: dict[str, str]
    ) -> Silenced | Inhibition | None:
        if self._silences is None:
            rows = await repository.active_silences(self.uow.conn, self.now)
            self._silences = [silence_of(row) for row in rows]
        muting = silencing(self._silences, labels, self.now)
        if muting is not None:
            return Silenced(muting)
        for rule, equal in candidate_filters(self.tree.inhibitions(), labels):
            # Page through the candidates: the targets themselves share the equal labels too.
            after = ""
            while True:
                sources = await repository.firing_sources(
                    self.uow.conn, equal, fingerprint, after, SOURCES_PAGE
                )
                found = inhibitor([rule], fingerprint, labels, sources)
                if found is not None:
                    return found
                if len(sources) < SOURCES_PAGE:
                    break
                after = sources[-1][0]
        return None

    async def route(
        self,
        fingerprint: str,
        labels: dict[str, str],
        data: dict[str, Any],
        event_id: str,
        traceparent: str | None,
    ) -> None:
        matches = self.tree.route(labels)
        anomaly = AnomalyDetected.model_validate(data)
        stored = [
            {
                "route": m.route,
                "queue": m.queue,
                "channels": list(m.channels),
                "group_key": m.group_key(labels),
                "severity": m.severity(anomaly.severity),
                "is_default": m.is_default,
            }
            for m in matches
        ]
        if not await repository.record_routed(
            self.uow.conn, fingerprint, anomaly.rule, stored, event_id
        ):
            return
        for match, where in zip(matches, stored, strict=True):
            if where["group_key"] is None:
                self.publish(anomaly, where, traceparent, key=fingerprint)
            else:
                await self.join_group(match, where["group_key"], fingerprint, where["severity"])
            self._count(match.queue, "unrouted" if match.is_default else "routed")
        _log_routed(anomaly, matches, event_id)

    # -- resolutions -----------------------------------------------------------------------

    async def resolve(
        self, state: repository.AnomalyState, data: dict[str, Any], event_id: str
    ) -> None:
        """A firing anomaly resolved: its routes hear of it (the same queues and groups); the
        anomalies it inhibited are routed if nothing else keeps them back."""
        conn = self.uow.conn
        fingerprint = state.fingerprint
        await repository.resolve_anomaly_state(conn, fingerprint, data)
        anomaly = AnomalyDetected.model_validate(data)
        if state.outcome == "routed":
            for where in await repository.mark_routed_resolved(conn, fingerprint):
                if where["group_key"] is None:
                    self.publish(anomaly, where, state.traceparent, key=fingerprint)
                else:
                    await self.resolve_in_group(where["group_key"], fingerprint)
                self._count(where["queue"], "resolved")
            log.info("resolved anomaly routed", fingerprint=fingerprint, event_id=event_id)
        else:
            log.info(
                "suppressed anomaly resolved before release",
                fingerprint=fingerprint,
                outcome=state.outcome,
            )
        for held in await repository.lock_inhibited_by(conn, fingerprint):
            await self.readmit(held)

    async def readmit(self, held: repository.Suppressed) -> None:
        """A suppressed anomaly whose reason passed: routed, or kept back for another reason."""
        state = held.state
        conn = self.uow.conn
        decision = await self.decide(state.fingerprint, state.labels)
        if decision is None:
            await repository.release(conn, state.fingerprint)
            await self.route(
                state.fingerprint, state.labels, state.anomaly, held.event_id, state.traceparent
            )
            await repository.set_anomaly_outcome(conn, state.fingerprint, "routed")
            self.uow.after_commit(metrics.ANOMALIES_RELEASED.labels(held.reason).inc)
            log.info(
                "suppressed anomaly released", fingerprint=state.fingerprint, reason=held.reason
            )
            return
        if isinstance(decision, Silenced):
            await repository.suppress(
                conn, state.fingerprint, "silenced", held.event_id, silence_id=decision.silence.id
            )
            await repository.set_anomaly_outcome(conn, state.fingerprint, "silenced")
        else:
            await repository.suppress(
                conn,
                state.fingerprint,
                "inhibited",
                held.event_id,
                inhibit_rule=decision.rule,
                source_fingerprint=decision.source_fingerprint,
            )
            await repository.set_anomaly_outcome(conn, state.fingerprint, "inhibited")

    # -- groups ----------------------------------------------------------------------------

    async def join_group(
        self, match: RouteMatch, group_key: str, fingerprint: str, severity: str
    ) -> None:
        row = await repository.lock_group(self.uow.conn, group_key)
        if row is None:
            group = Group.new(group_key, match.timers, self.now)
            meta = {
                "route": match.route,
                "queue": match.queue,
                "channels": list(match.channels),
                "flushes": 0,
                "stored": {},
            }
        else:
            group, meta = await self._load_group(row)
        group.add(fingerprint, self.now, severity)
        await self._settle(group, meta)

    async def resolve_in_group(self, group_key: str, fingerprint: str) -> None:
        row = await repository.lock_group(self.uow.conn, group_key)
        if row is None:
            return
        group, meta = await self._load_group(row)
        if group.resolve(fingerprint, self.now):
            await self._settle(group, meta)

    async def flush_due_groups(self, limit: int) -> int:
        rows = await repository.lock_due_groups(self.uow.conn, self.now, limit)
        for row in rows:
            group, meta = await self._load_group(row)
            await self._settle(group, meta)
        return len(rows)

    async def _load_group(self, row: Any) -> tuple[Group, dict[str, Any]]:
        members = await repository.group_members(self.uow.conn, row["group_key"])
        group = Group(
            key=row["group_key"],
            timers=_timers(row),
            created_at=row["created_at"],
            next_flush_at=row["next_flush_at"],
            last_flush_at=row["last_flush_at"],
            members={
                m["fingerprint"]: Member(m["fingerprint"], m["firing"], m["pending"], m["severity"])
                for m in members
            },
        )
        meta = {
            "route": row["route"],
            "queue": row["queue"],
            "channels": list(row["channels"]),
            "flushes": row["flushes"],
            # What the table holds, so that only the members that change are written back.
            "stored": {fp: (m.firing, m.pending) for fp, m in group.members.items()},
        }
        return group, meta

    async def _settle(self, group: Group, meta: dict[str, Any]) -> None:
        """Flush the group if due, then store it (timers, members; a closed group goes)."""
        if group.due(self.now):
            kind = group.flush_kind()
            published = group.flush(self.now)
            meta["flushes"] += 1
            anomalies = await repository.anomalies_of(
                self.uow.conn, [m.fingerprint for m in published]
            )
            for member in published:
                stored = anomalies[member.fingerprint]
                self.publish(
                    AnomalyDetected.model_validate(stored["anomaly"]),
                    {
                        "route": meta["route"],
                        "queue": meta["queue"],
                        "channels": meta["channels"],
                        "group_key": group.key,
                        "severity": member.severity,
                    },
                    stored["traceparent"],
                    key=group.key,
                )
            self.uow.after_commit(metrics.ROUTE_GROUP_FLUSHES.labels(kind).inc)
            log.info(
                "route group flushed",
                group_key=group.key,
                kind=kind,
                published=len(published),
                next_flush_at=group.next_flush_at.isoformat() if group.next_flush_at else None,
            )
        await repository.save_group(
            self.uow.conn,
            group_key=group.key,
            route=meta["route"],
            queue=meta["queue"],
            channels=meta["channels"],
            group_wait_ms=_ms(group.timers.group_wait) or 0,
            group_interval_ms=_ms(group.timers.group_interval) or 0,
            repeat_interval_ms=_ms(group.timers.repeat_interval),
            created_at=group.created_at,
            next_flush_at=group.next_flush_at,
            last_flush_at=group.last_flush_at,
            flushes=meta["flushes"],
            members=[
                (m.fingerprint, m.severity, m.firing, m.pending)
                for m in group.members.values()
                if meta["stored"].get(m.fingerprint) != (m.firing, m.pending)
            ],
            removed=[fp for fp in meta["stored"] if fp not in group.members],
            closed=group.closed,
        )

    # -- publishing ------------------------------------------------------------------------

    def publish(
        self, anomaly: AnomalyDetected, where: dict[str, Any], traceparent: str | None, key: str
    ) -> None:
        data = AnomalyRouted(
            anomaly=anomaly,
            route=where["route"],
            queue=where["queue"],
            channels=list(where["channels"]),
            routed_at=self.now,
            group_key=where.get("group_key"),
            severity=where.get("severity"),
        )
        self.uow.forward(
            self.queue_topic(where["queue"]),
            Envelope(
                type="anomaly.routed.v1",
                source=ROUTER_SOURCE,
                subject=anomaly.fingerprint,
                data=data.model_dump(mode="json"),
                traceparent=child_of(traceparent),
            ),
            key=key,
        )

    def _count(self, queue: str, outcome: str) -> None:
        self.uow.after_commit(metrics.ANOMALIES_ROUTED.labels(queue, outcome).inc)


async def route_anomalies(
    uow: UnitOfWork, tree: RoutingTree, queue_topic: QueueTopic, events: list[Event]
) -> None:
    """Route each anomaly once per fingerprint (its resolution once more, to the same places)."""
    await Router(uow, tree, queue_topic).route_events(events)


async def flush_route_groups(
    uow: UnitOfWork, tree: RoutingTree, queue_topic: QueueTopic, limit: int
) -> int:
    """Scheduled: flush the groups whose timer is due."""
    return await Router(uow, tree, queue_topic).flush_due_groups(limit)


async def release_silenced(
    uow: UnitOfWork, tree: RoutingTree, queue_topic: QueueTopic, limit: int
) -> int:
    """Scheduled: route the still-firing anomalies whose silence has ended."""
    router = Router(uow, tree, queue_topic)
    held = await repository.lock_silenced_past_their_silence(uow.conn, uow.now, limit)
    for one in held:
        await router.readmit(one)
    return len(held)


def _log_routed(anomaly: AnomalyDetected, matches: list[RouteMatch], event_id: str) -> None:
    # Labels and summary may carry customer data: log identifiers only.
    fields = {
        "fingerprint": anomaly.fingerprint,
        "rule": anomaly.rule,
        "severity": anomaly.severity,
        "routes": [match.route for match in matches],
        "queues": [match.queue for match in matches],
        "event_id": event_id,
    }
    if any(match.is_default for match in matches):
        log.warning("anomaly matched no route; sent to the default queue", **fields)
    else:
        log.info("anomaly routed", **fields)


async def record_notifications(
    uow: UnitOfWork, events: list[Event], planner: Planner, dead_topic: str
) -> None:
    """One notification per (fingerprint, queue, channel), however often it is routed again:
    in_app ones are rows here; outgoing channels become deliveries (sent by the delivery job)."""
    wanted = []
    outgoing = []
    for event in events:
        if not isinstance(event.data, AnomalyRouted):
            continue
        notifications, unsupported = notifications_for(event.data, event.id)
        wanted += notifications
        sent_out = tuple(channel for channel in unsupported if channel in CHANNEL_KINDS)
        if sent_out:
            outgoing.append(DeliveryRequest.of_routed(event.data, sent_out, event.id))
        for channel in unsupported:
            if channel in sent_out:
                continue
            uow.after_commit(metrics.NOTIFICATIONS.labels("unsupported", "skipped").inc)
            log.warning(
                "routed anomaly names a channel the notifier cannot deliver on",
                channel=channel[:50],
                fingerprint=event.data.anomaly.fingerprint,
                queue=event.data.queue,
            )
    await request_deliveries(uow, planner, outgoing, dead_topic)
    recorded = await repository.record_notifications(uow.conn, wanted)
    for notification in wanted:
        outcome = "recorded" if notification.id in recorded else "duplicate"
        # Several routes may hand the same fingerprint to one queue: one notification still.
        recorded.discard(notification.id)
        uow.after_commit(metrics.NOTIFICATIONS.labels(notification.channel, outcome).inc)
        log.info(
            "notification recorded" if outcome == "recorded" else "notification already recorded",
            notification_id=str(notification.id),
            channel=notification.channel,
            queue=notification.queue,
            rule=notification.rule,
            fingerprint=notification.fingerprint,
        )
