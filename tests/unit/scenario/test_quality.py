"""The detection-quality comparison: hits, misses, duplicates, late and early raises, false
alarms, resolutions ignored, delay percentiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.scenario.quality import (
    Figures,
    Label,
    Observation,
    compare,
    observation_of_anomaly,
    observation_of_hold,
    percentile,
    player_kept_its_plan,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def label(
    id_: str, rule: str, match: dict[str, str], due: float = 0, tolerance: float = 5
) -> Label:
    return Label(id_, rule.split(".")[0], rule, match, at(0), at(due), at(due + tolerance))


def seen(
    rule: str, labels: dict[str, str], when: float, fingerprint: str = "f1", status: str = "firing"
) -> Observation:
    return Observation(rule, fingerprint, labels, at(when), status)


def test_an_anomaly_raised_once_in_its_window_is_a_hit_with_its_delay() -> None:
    report = compare(
        [label("a-1", "shipment.stalled", {"order_id": "o1"}, due=10)],
        [seen("shipment.stalled", {"order_id": "o1", "carrier": "sf"}, 12)],
    )
    assert report.recall == 1.0 and report.ok
    [outcome] = report.outcomes
    assert outcome.verdict == "hit" and outcome.delay_s == 2.0


def test_nothing_raised_is_a_miss() -> None:
    report = compare(
        [label("a-1", "stock.low", {"sku": "S"})], [seen("stock.low", {"sku": "T"}, 1)]
    )
    assert [o.verdict for o in report.outcomes] == ["missed"]
    assert report.recall == 0.0
    # The raise about another SKU is a false alarm.
    assert [a.labels for a in report.false_alarms] == [{"sku": "T"}]


def test_two_fingerprints_for_one_injection_are_a_duplicate_but_a_redelivery_is_not() -> None:
    injected = [label("a-1", "order.duplicate", {"customer_id": "c1"})]
    twice = compare(
        injected,
        [
            seen("order.duplicate", {"customer_id": "c1"}, 1, "f1"),
            seen("order.duplicate", {"customer_id": "c1"}, 2, "f2"),
        ],
    )
    assert [(o.verdict, o.raised) for o in twice.outcomes] == [("duplicated", 2)]
    assert twice.false_alarms == [] and not twice.ok
    redelivered = compare(
        injected,
        [
            seen("order.duplicate", {"customer_id": "c1"}, 1, "f1"),
            seen("order.duplicate", {"customer_id": "c1"}, 3, "f1"),
        ],
    )
    assert [o.verdict for o in redelivered.outcomes] == ["hit"]


def test_raised_after_the_window_is_late_and_before_the_injection_is_early() -> None:
    late = compare(
        [label("a-1", "case.sla_breached", {"case_id": "k1"}, due=30, tolerance=5)],
        [seen("case.sla_breached", {"case_id": "k1"}, 36)],
    )
    assert [o.verdict for o in late.outcomes] == ["late"]
    assert late.outcomes[0].delay_s == 6.0
    # An extra tolerance given to the check lets it pass.
    lenient = compare(
        [late.outcomes[0].label],
        [seen("case.sla_breached", {"case_id": "k1"}, 36)],
        tolerance_s=2,
    )
    assert [o.verdict for o in lenient.outcomes] == ["hit"]
    early = compare(
        [label("a-1", "stock.low", {"sku": "S"})], [seen("stock.low", {"sku": "S"}, -60)]
    )
    assert [o.verdict for o in early.outcomes] == ["early"]


def test_resolutions_are_not_alarms_and_unlabelled_firings_are() -> None:
    report = compare(
        [label("a-1", "shipment.stalled", {"order_id": "o1"})],
        [
            seen("shipment.stalled", {"order_id": "o1"}, 1, "f1"),
            seen("shipment.resumed", {"order_id": "o1"}, 5, "f1", status="resolved"),
            seen("stock.recovered", {"sku": "S"}, 6, "f9", status="resolved"),
            seen("payment.failures", {"scope": "overall"}, 7, "f3"),
        ],
    )
    assert report.hits == 1
    assert [a.rule for a in report.false_alarms] == ["payment.failures"]
    assert not report.ok
    assert any("false alarms of payment.failures: 1" in line for line in report.lines())


def test_delay_percentiles_are_nearest_rank() -> None:
    labels = [label(f"a-{i}", "stock.low", {"sku": f"S{i}"}) for i in range(1, 21)]
    observations = [seen("stock.low", {"sku": f"S{i}"}, i / 10, f"f{i}") for i in range(1, 21)]
    report = compare(labels, observations, tolerance_s=10)
    assert report.recall == 1.0
    assert report.delay_percentile(50) == 1.0
    assert report.delay_percentile(95) == 1.9
    assert report.delays[-1] == 2.0
    assert percentile([], 50) is None
    assert report.by_kind == {"stock": {"hit": 20}}


def test_observations_from_anomaly_events_and_intake_holds() -> None:
    anomaly = observation_of_anomaly(
        {
            "rule": "stock.low",
            "fingerprint": "abc",
            "status": "firing",
            "labels": {"sku": "S", "warehouse": "main"},
            "detected_at": "2026-11-22T08:00:01Z",
        }
    )
    assert anomaly == Observation("stock.low", "abc", {"sku": "S", "warehouse": "main"}, at(1))
    held = {
        "order_id": "o1",
        "customer_id": "c1",
        "channel": "web",
        "reason": "address_incomplete",
        "held_at": "2026-11-22T08:00:02+00:00",
    }
    hold = observation_of_hold(held)
    assert (
        hold is not None
        and hold.rule == "order.held"
        and hold.labels["reason"] == "address_incomplete"
    )
    assert observation_of_hold({**held, "reason": "out_of_stock"}) is None
    assert compare(
        [label("a-1", "order.held", {"order_id": "o1", "reason": "address_incomplete"})], [hold]
    ).ok


def test_injections_sharing_an_identity_are_judged_one_by_one_by_time() -> None:
    bursts = [
        Label("a-1", "payment", "payment.failures", {"scope": "overall"}, at(0), at(0), at(5)),
        Label(
            "a-2", "payment", "payment.failures", {"scope": "overall"}, at(100), at(100), at(105)
        ),
        Label(
            "a-3", "payment", "payment.failures", {"scope": "overall"}, at(200), at(200), at(205)
        ),
    ]
    report = compare(
        bursts,
        [
            seen("payment.failures", {"scope": "overall"}, 1, "f1"),
            seen("payment.failures", {"scope": "overall"}, 101, "f2"),
            seen("payment.failures", {"scope": "overall"}, 102, "f3"),
        ],
    )
    assert [(o.verdict, o.raised) for o in report.outcomes] == [
        ("hit", 1),
        ("duplicated", 2),
        ("missed", 0),
    ]
    assert report.false_alarms == []


def test_figures_sum_seeds_per_kind_with_early_raises_duplicates_and_false_alarms() -> None:
    burst = Label(
        "a-1",
        "payment_failure_burst",
        "payment.failures",
        {"scope": "channel"},
        at(0),
        at(0),
        at(10),
    )
    stall = Label(
        "a-2", "stalled_tracking", "shipment.stalled", {"order_id": "o1"}, at(0), at(30), at(40)
    )
    seed_1 = compare(
        [burst, stall],
        [
            # raised 29 s before it was due, then again on time: duplicated, and early
            seen("payment.failures", {"scope": "channel"}, -29, "f1"),
            seen("payment.failures", {"scope": "channel"}, 0.5, "f2"),
            seen("shipment.stalled", {"order_id": "o1"}, 31, "f3"),
        ],
    )
    seed_2 = compare(
        [stall],
        [
            seen("shipment.stalled", {"order_id": "o1"}, 29.5, "f4"),  # before its due: early
            seen("shipment.stalled", {"order_id": "o9"}, 50, "f5"),  # no label: false alarm
        ],
    )
    figures = Figures.of([seed_1, seed_2])
    payments, stalls = figures.kinds["payment_failure_burst"], figures.kinds["stalled_tracking"]
    assert (payments.injected, payments.hits, payments.duplicated, payments.early) == (1, 0, 1, 1)
    assert (stalls.injected, stalls.hits, stalls.early, stalls.false_alarms) == (2, 1, 1, 1)
    assert stalls.delays == [-0.5, 1.0]
    overall = figures.overall
    assert (overall.injected, overall.hits, overall.false_alarms) == (3, 1, 1)
    assert overall.recall == 1 / 3 and not figures.ok
    assert figures.lines()[-1].startswith("overall")
    assert Figures.of(
        [compare([stall], [seen("shipment.stalled", {"order_id": "o1"}, 30, "f")])]
    ).ok


def test_a_run_judges_the_rules_only_when_its_player_kept_its_plan() -> None:
    assert player_kept_its_plan({"p50": 0.1, "p95": 1.0, "max": 5.0}, tolerance_s=5)
    # one step 6 s late: a clean parcel may really have gone silent, a delivery come late
    assert not player_kept_its_plan({"p50": 0.1, "p95": 1.0, "max": 6.0}, tolerance_s=5)
    assert not player_kept_its_plan({}, tolerance_s=5), "a lag nobody measured is not kept"


def test_two_injections_of_one_identity_with_overlapping_windows_raised_twice_are_two_hits() -> (
    None
):
    # Seed 4 planned two duplicate orders of one customer 0.7 s apart: the rule raised both
    # (two fingerprints), inside both windows; they were judged a duplicate and a miss.
    injected = [
        label("a-154", "order.duplicate", {"customer_id": "c1"}, due=0, tolerance=10),
        label("a-156", "order.duplicate", {"customer_id": "c1"}, due=0.7, tolerance=10),
    ]
    report = compare(
        injected,
        [
            seen("order.duplicate", {"customer_id": "c1"}, 0.5, fingerprint="f1"),
            seen("order.duplicate", {"customer_id": "c1"}, 1.2, fingerprint="f2"),
            seen("order.duplicate", {"customer_id": "c1"}, 1.3, fingerprint="f2"),  # redelivery
        ],
    )
    assert [o.verdict for o in report.outcomes] == ["hit", "hit"]
    assert report.ok
