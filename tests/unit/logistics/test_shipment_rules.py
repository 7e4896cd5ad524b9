"""The shipment detectors as pure functions, driven like the engine drives them: events in
partition order, and `tick` when an injected event-time clock reaches the rule's deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from rulereplay import Replay, arrivals_within, same_transitions

from orderguard.services.logistics.rules import ShipmentException, ShipmentOverdue, ShipmentStalled
from orderguard.shared.detection.config import RuleConfig, parse_detector_config
from orderguard.shared.detection.rule import State, TimedRule
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.logistics import (
    ShipmentCreated,
    ShipmentExceptionReported,
    ShipmentReassigned,
    ShipmentScanned,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
SHP = "shp_1"


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def _event(event_type: str, data: BaseModel, at: datetime, n: int) -> Event:
    envelope = Envelope(
        id=f"e{n}",
        type=event_type,
        source="/test",
        subject=SHP,
        time=at,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "logistics.events", 0, n)


def created(
    at: datetime = T0, promised: datetime = T0 + hours(72), carrier: str = "sf-express"
) -> Event:
    data = ShipmentCreated(
        shipment_id=SHP,
        order_id="o1",
        carrier=carrier,
        tracking_number="SF1",
        warehouse="main",
        promised_delivery_by=promised,
        created_at=at,
    )
    return _event("shipment.created.v1", data, at, 0)


def scanned(
    at: datetime,
    status: str = "in_transit",
    shipment_status: str | None = None,
    n: int = 1,
    carrier: str = "sf-express",
    tracking: str = "SF1",
) -> Event:
    data = ShipmentScanned(
        shipment_id=SHP,
        order_id="o1",
        carrier=carrier,
        tracking_number=tracking,
        scan_id=f"s{n}",
        scan_status=status,
        scanned_at=at,  # type: ignore[arg-type]
        shipment_status=shipment_status or status,  # type: ignore[arg-type]
        status_changed=True,
    )
    return _event("shipment.scanned.v1", data, at, n)


def reassigned(at: datetime, carrier: str = "zto", n: int = 50) -> Event:
    data = ShipmentReassigned(
        shipment_id=SHP,
        order_id="o1",
        previous_carrier="sf-express",
        previous_tracking_number="SF1",
        carrier=carrier,
        tracking_number="ZTO9",
        reason="stuck",
        reassigned_by="test",
        reassigned_at=at,
    )
    return _event("shipment.reassigned.v1", data, at, n)


def exception(reason: str, n: int = 70, carrier: str = "sf-express") -> Event:
    data = ShipmentExceptionReported(
        shipment_id=SHP,
        order_id="o1",
        carrier=carrier,
        tracking_number="SF1",
        warehouse="main",
        scan_id=f"x{n}",
        reason=reason,  # type: ignore[arg-type]
        reported_at=T0,
        location="hub",
    )
    return _event("shipment.exception_reported.v1", data, T0, n)


class Driver:
    """The engine in miniature: state per shipment, and a clock that sweeps deadlines."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.state: State = rule.initial_state()
        self.anomalies: list[AnomalyDetected] = []

    def apply(self, event: Event, now: datetime | None = None) -> list[AnomalyDetected]:
        self.state, found = self.rule.apply(self.state, event, now or event.envelope.time)
        self.anomalies += found
        return found

    def clock(self, now: datetime) -> list[AnomalyDetected]:
        assert isinstance(self.rule, TimedRule)
        due = self.rule.deadline(self.state)
        if due is None or due > now:
            return []
        self.state, found = self.rule.tick(self.state, SHP, now)
        following = self.rule.deadline(self.state)
        assert following is None or following > now
        self.anomalies += found
        return found


def stalled(**params: Any) -> Driver:
    return Driver(ShipmentStalled(RuleConfig.of(ShipmentStalled, **params)))


def test_a_shipment_in_transit_and_silent_fires_while_silent_once() -> None:
    d = stalled(silence_hours=24)
    d.apply(created())
    d.apply(scanned(T0 + hours(1), "picked_up"))
    assert d.clock(T0 + hours(24)) == [], "23 h of silence is not yet a stall"
    [anomaly] = d.clock(T0 + hours(25))
    assert (anomaly.rule, anomaly.status, anomaly.team) == (
        "shipment.stalled",
        "firing",
        "logistics",
    )
    assert anomaly.event_time == T0 + hours(25) and anomaly.detected_at == T0 + hours(25)
    assert anomaly.labels["carrier"] == "sf-express" and anomaly.labels["shipment_id"] == SHP
    assert anomaly.source_event_id == "e1"
    assert d.clock(T0 + hours(100)) == [], "still the same silence: fires once"


def test_scans_keep_it_quiet_and_a_shipment_not_yet_picked_up_is_not_watched() -> None:
    d = stalled(silence_hours=24)
    d.apply(created())
    assert d.rule.deadline(d.state) is None, "no stall before the carrier has the parcel"
    for n in range(1, 6):
        d.apply(scanned(T0 + hours(20 * n), "in_transit", n=n))
        assert d.clock(T0 + hours(20 * n + 23)) == []
    assert d.anomalies == []


def test_a_late_scan_resolves_the_stall_with_the_same_fingerprint_and_re_arms() -> None:
    d = stalled(silence_hours=24)
    d.apply(created())
    d.apply(scanned(T0 + hours(1), "picked_up"))
    [fired] = d.clock(T0 + hours(30))
    [resumed] = d.apply(scanned(T0 + hours(31), "in_transit", n=2), now=T0 + hours(31))
    assert resumed.rule == "shipment.resumed" and resumed.status == "resolved"
    assert resumed.fingerprint == fired.fingerprint
    assert d.rule.deadline(d.state) == T0 + hours(55), "watched again from the new scan"
    [again] = d.clock(T0 + hours(56))
    assert again.fingerprint != fired.fingerprint, "a new silence is a new episode"


def test_an_out_of_order_scan_older_than_the_last_neither_moves_nor_clears() -> None:
    d = stalled(silence_hours=24)
    d.apply(created())
    d.apply(scanned(T0 + hours(10), "in_transit", n=1))
    d.apply(scanned(T0 + hours(2), "picked_up", shipment_status="in_transit", n=2))
    assert d.rule.deadline(d.state) == T0 + hours(34), "the deadline follows the latest scan"
    assert len(d.clock(T0 + hours(40))) == 1
    assert d.apply(scanned(T0 + hours(5), "in_transit", n=3)) == [], "older: proves nothing now"
    assert d.state["stalled"] is True and d.state["status"] == "in_transit"


def test_delivery_ends_the_watch_and_resolves_a_stall() -> None:
    d = stalled(silence_hours=24)
    d.apply(created())
    d.apply(scanned(T0 + hours(1), "picked_up"))
    d.apply(scanned(T0 + hours(2), "delivered", n=2))
    assert d.rule.deadline(d.state) is None and d.clock(T0 + hours(500)) == []
    d2 = stalled(silence_hours=24)
    d2.apply(scanned(T0, "picked_up"))
    d2.clock(T0 + hours(25))
    [resolved] = d2.apply(scanned(T0 + hours(26), "delivered", n=2))
    assert resolved.status == "resolved"


def test_silence_is_configured_per_carrier() -> None:
    config = parse_detector_config(
        "rules:\n  shipment.stalled:\n    params: {silence_hours: 24}\n"
        "    overrides:\n      - match: {carrier: zto}\n        params: {silence_hours: 6}\n",
        "test",
        [ShipmentStalled],
    )
    sf, zto = (
        Driver(ShipmentStalled(config.rule("shipment.stalled"))),
        Driver(ShipmentStalled(config.rule("shipment.stalled"))),
    )
    sf.apply(scanned(T0, "picked_up"))
    zto.apply(scanned(T0, "picked_up", carrier="zto"))
    assert sf.clock(T0 + hours(7)) == []
    assert len(zto.clock(T0 + hours(7))) == 1


def test_after_reassignment_the_silence_continues_with_the_new_carriers_hours() -> None:
    config = parse_detector_config(
        "rules:\n  shipment.stalled:\n    overrides:\n"
        "      - match: {carrier: zto}\n        params: {silence_hours: 6}\n",
        "test",
        [ShipmentStalled],
    )
    d = Driver(ShipmentStalled(config.rule("shipment.stalled")))
    d.apply(created())
    d.apply(scanned(T0 + hours(1), "picked_up"))
    d.apply(reassigned(T0 + hours(3)))
    assert d.rule.deadline(d.state) == T0 + hours(7), "from the last scan, not the reassignment"
    [fired] = d.clock(T0 + hours(8))
    assert fired.labels["carrier"] == "zto" and fired.labels["tracking_number"] == "ZTO9"
    [resumed] = d.apply(scanned(T0 + hours(9), carrier="zto", tracking="ZTO9", n=9))
    assert resumed.fingerprint == fired.fingerprint


def overdue(**params: Any) -> Driver:
    return Driver(ShipmentOverdue(RuleConfig.of(ShipmentOverdue, **params)))


def test_overdue_fires_at_the_promised_date_while_nothing_arrives() -> None:
    d = overdue()
    d.apply(created(promised=T0 + hours(48)))
    d.apply(scanned(T0 + hours(1), "picked_up"))
    assert d.clock(T0 + hours(47)) == []
    [anomaly] = d.clock(T0 + hours(48))
    assert anomaly.rule == "shipment.overdue" and anomaly.event_time == T0 + hours(48)
    assert d.clock(T0 + hours(90)) == []
    [resolved] = d.apply(scanned(T0 + hours(60), "delivered", n=2))
    assert resolved.status == "resolved" and resolved.fingerprint == anomaly.fingerprint


def test_delivered_in_time_never_fires_and_grace_is_configurable() -> None:
    d = overdue()
    d.apply(created(promised=T0 + hours(48)))
    d.apply(scanned(T0 + hours(40), "delivered"))
    assert d.rule.deadline(d.state) is None and d.clock(T0 + hours(100)) == []
    g = overdue(grace_hours=12)
    g.apply(created(promised=T0 + hours(48)))
    assert g.clock(T0 + hours(59)) == [] and len(g.clock(T0 + hours(60))) == 1


def test_carrier_exceptions_fire_each_with_carrier_and_reason_and_severity_by_reason() -> None:
    d = Driver(ShipmentException(RuleConfig.of(ShipmentException)))
    [lost] = d.apply(exception("lost", n=1))
    [address] = d.apply(exception("address_problem", n=2))
    [damaged] = d.apply(exception("damaged", n=3, carrier="zto"))
    assert (lost.rule, lost.severity, lost.labels["reason"], lost.labels["carrier"]) == (
        "shipment.exception",
        "P2",
        "lost",
        "sf-express",
    )
    assert address.severity == "P4" and damaged.severity == "P3"
    assert damaged.labels["carrier"] == "zto" and damaged.team == "logistics"
    assert len({lost.fingerprint, address.fingerprint, damaged.fingerprint}) == 3
    again = Driver(ShipmentException(RuleConfig.of(ShipmentException)))
    assert again.apply(exception("lost", n=1))[0].fingerprint == lost.fingerprint, "deterministic"


def test_exception_severity_is_overridable_per_carrier() -> None:
    config = parse_detector_config(
        "rules:\n  shipment.exception:\n    overrides:\n"
        "      - match: {carrier: zto}\n        params: {severity: {refused: P1}}\n",
        "test",
        [ShipmentException],
    )
    d = Driver(ShipmentException(config.rule("shipment.exception")))
    assert d.apply(exception("refused", carrier="zto"))[0].severity == "P1"
    assert d.apply(exception("refused", n=2))[0].severity == "P3"


# -- late and out-of-order events (the engine's clock, tests/rulereplay.py) -------------------


def shipment_events(
    shipment: str, n: int, created_at: float, scans: list[tuple[float, str]]
) -> list[Event]:
    """A shipment's created event and scans (hours after T0), with ids of their own."""
    promised = T0 + hours(created_at + 72)
    events = [
        _event(
            "shipment.created.v1",
            ShipmentCreated(
                shipment_id=shipment,
                order_id=f"o-{shipment}",
                carrier="sf-express",
                tracking_number=f"SF-{shipment}",
                warehouse="main",
                promised_delivery_by=promised,
                created_at=T0 + hours(created_at),
            ),
            T0 + hours(created_at),
            n * 100,
        )
    ]
    for i, (at, status) in enumerate(scans, start=1):
        data = ShipmentScanned(
            shipment_id=shipment,
            order_id=f"o-{shipment}",
            carrier="sf-express",
            tracking_number=f"SF-{shipment}",
            scan_id=f"{shipment}-s{i}",
            scan_status=status,  # type: ignore[arg-type]
            scanned_at=T0 + hours(at),
            shipment_status=status,  # type: ignore[arg-type]
            status_changed=True,
        )
        events.append(_event("shipment.scanned.v1", data, T0 + hours(at), n * 100 + i))
    return events


def traffic() -> list[Event]:
    """Four shipments on one partition: clean; silent for 30 h then resumed; delivered 4 h
    after its promise; silent for 25 h, then for 39 h across its promise."""
    return [
        *shipment_events(
            "a", 1, 0, [(2, "picked_up"), (20, "in_transit"), (40, "in_transit"), (60, "delivered")]
        ),
        *shipment_events(
            "b", 2, 1, [(3, "picked_up"), (10, "in_transit"), (40, "in_transit"), (50, "delivered")]
        ),
        *shipment_events(
            "c",
            3,
            2,
            [
                (4, "picked_up"),
                (24, "in_transit"),
                (44, "in_transit"),
                (64, "in_transit"),
                (78, "delivered"),
            ],
        ),
        *shipment_events(
            "d",
            4,
            5,
            [(6, "picked_up"), (26, "in_transit"), (51, "out_for_delivery"), (90, "delivered")],
        ),
    ]


def test_stalls_out_of_order_within_the_lateness_give_what_in_order_gives() -> None:
    rule, lateness = ShipmentStalled(RuleConfig.of(ShipmentStalled, silence_hours=24)), hours(3)
    events = traffic()
    in_order = Replay(rule, lateness).feed(sorted(events, key=lambda e: e.envelope.time))
    in_order.finish(T0 + hours(200))
    stalls = sorted((a.labels["shipment_id"], a.status) for a in in_order.raised)
    assert (
        stalls
        == [("b", "firing"), ("b", "resolved")] + [("d", "firing")] * 2 + [("d", "resolved")] * 2
    )
    for seed in range(30):
        shuffled = Replay(rule, lateness).feed(arrivals_within(events, lateness, seed))
        shuffled.finish(T0 + hours(200))
        assert same_transitions(in_order, shuffled), seed
        assert shuffled.late == 0


def test_overdue_out_of_order_within_the_lateness_gives_what_in_order_gives() -> None:
    rule, lateness = ShipmentOverdue(RuleConfig.of(ShipmentOverdue)), hours(3)
    events = traffic()
    in_order = Replay(rule, lateness).feed(sorted(events, key=lambda e: e.envelope.time))
    in_order.finish(T0 + hours(200))
    overdue = sorted((a.labels["shipment_id"], a.status) for a in in_order.raised)
    assert overdue == [("c", "firing"), ("c", "resolved"), ("d", "firing"), ("d", "resolved")]
    for seed in range(30):
        shuffled = Replay(rule, lateness).feed(arrivals_within(events, lateness, seed))
        shuffled.finish(T0 + hours(200))
        assert same_transitions(in_order, shuffled), seed


def test_a_scan_later_than_the_lateness_is_counted_late_and_resolves_the_stall() -> None:
    rule = ShipmentStalled(RuleConfig.of(ShipmentStalled, silence_hours=24))
    a = shipment_events("a", 1, 0, [(2, "picked_up"), (20, "in_transit")])
    e = shipment_events("e", 2, 0, [(1, "picked_up"), (24, "in_transit"), (30, "in_transit")])
    replay = Replay(rule, hours(3)).feed([*a[:2], *e[:3], e[3]])
    # e's scan at 30 h moved the clock to 27 h: a (last scanned at 2 h) stalled at 26 h; its
    # scan at 20 h (7 h behind the clock) arrives late: counted, applied, and it resumes.
    replay.feed([a[2]])
    assert replay.late == 1
    assert [(x.labels["shipment_id"], x.rule, x.status) for x in replay.raised] == [
        ("a", "shipment.stalled", "firing"),
        ("a", "shipment.resumed", "resolved"),
    ]
    assert replay.raised[0].fingerprint == replay.raised[1].fingerprint


def test_a_delivery_later_than_the_lateness_is_counted_late_and_resolves_the_overdue() -> None:
    rule = ShipmentOverdue(RuleConfig.of(ShipmentOverdue))
    a = shipment_events("a", 1, 0, [(2, "picked_up"), (70, "delivered")])
    other = shipment_events("f", 2, 60, [(80, "picked_up")])
    replay = Replay(rule, hours(3)).feed([*a[:2], *other, a[2]])
    assert replay.late == 1, "delivered at 70 h, arriving when the clock is at 77 h"
    assert [(x.labels["shipment_id"], x.status) for x in replay.raised] == [
        ("a", "firing"),
        ("a", "resolved"),
    ]


def test_a_parcel_declared_lost_is_no_longer_watched_for_stall_or_overdue() -> None:
    silent, late = stalled(silence_hours=24), overdue()
    for d in (silent, late):
        d.apply(created(promised=T0 + hours(48)))
        d.apply(scanned(T0 + hours(1), "picked_up"))
        d.apply(exception("damaged", n=71))  # another exception: still watched
        assert d.rule.deadline(d.state) is not None
        d.apply(exception("lost"))
        assert d.rule.deadline(d.state) is None
        assert d.clock(T0 + hours(200)) == []
        d.apply(scanned(T0 + hours(2), "in_transit", n=3))  # a stray scan does not re-arm it
        assert d.rule.deadline(d.state) is None
    assert silent.anomalies == [] and late.anomalies == []
