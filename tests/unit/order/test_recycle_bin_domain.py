"""The recycle bin's pure rules: entry states, which causes move an order, category mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orderguard.cli.services_registry import OrderguardSettings, rule_catalogue
from orderguard.services.order.bootstrap import DEFINITION
from orderguard.services.order.domain import Actor
from orderguard.services.order.recycle_bin.domain import (
    BIN_TRANSITIONS,
    BinAction,
    BinEntry,
    BinState,
    Category,
    MoveOutcome,
    OrderFacts,
    anomaly_categories,
    anomaly_category,
    anomaly_cause,
    case_category,
    case_cause,
    manual_cause,
    move_to_recycle_bin,
    refund_cause,
)
from orderguard.shared.errors import IllegalTransition
from orderguard.shared.runtime import Runtime

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ORDER = OrderFacts("ord_1", "placed", "web", Decimal("59.70"))
OPERATOR = Actor("api", "orders:write#abc")
CONSUMER = Actor("consumer", "order.recycle-bin.aftersales")


def new_entry(at: datetime = T0) -> BinEntry:
    outcome, entry = move_to_recycle_bin(
        ORDER, None, set(), manual_cause(Category.ABNORMAL, "looks fake", OPERATOR, at)
    )
    assert outcome is MoveOutcome.MOVED and entry is not None
    return entry


# -- states --------------------------------------------------------------------------------


def test_a_new_entry_is_in_the_bin_with_the_orders_facts() -> None:
    entry = new_entry()
    assert entry.state is BinState.IN_BIN
    assert entry.entry_id.startswith("rb_")
    assert (entry.order_status, entry.channel, entry.amount) == ("placed", "web", Decimal("59.70"))
    assert (entry.category, entry.reason, entry.moved_by) == (
        Category.ABNORMAL,
        "looks fake",
        "api:orders:write#abc",
    )


def test_restore_closes_the_entry_and_remembers_who_and_why() -> None:
    entry = new_entry()
    entry.restore(OPERATOR, "customer confirmed", T0 + timedelta(hours=1))
    assert entry.state is BinState.RESTORED
    assert entry.restored_at == T0 + timedelta(hours=1)
    assert (entry.closed_by, entry.closed_reason) == ("api:orders:write#abc", "customer confirmed")


def test_archive_then_purge() -> None:
    entry = new_entry()
    entry.archive(CONSUMER, "case c-1 closed: refunded", T0 + timedelta(days=1))
    assert entry.state is BinState.ARCHIVED
    entry.purge(T0 + timedelta(days=200))
    assert entry.state is BinState.PURGED
    assert entry.purged_at == T0 + timedelta(days=200)
    assert entry.closed_reason == "case c-1 closed: refunded"  # the purge keeps why it was archived


@pytest.mark.parametrize(
    ("prepare", "action"),
    [
        (lambda e: e.restore(OPERATOR, None, T0), BinAction.RESTORE),  # restored twice
        (lambda e: e.restore(OPERATOR, None, T0), BinAction.ARCHIVE),
        (lambda e: None, BinAction.PURGE),  # purge before archive
        (lambda e: e.archive(CONSUMER, "x", T0), BinAction.RESTORE),
        (lambda e: e.archive(CONSUMER, "x", T0), BinAction.ARCHIVE),
    ],
)
def test_illegal_moves_name_the_current_state(prepare, action) -> None:  # type: ignore[no-untyped-def]
    entry = new_entry()
    prepare(entry)
    before = entry.state
    with pytest.raises(IllegalTransition) as raised:
        {
            BinAction.RESTORE: lambda: entry.restore(OPERATOR, None, T0),
            BinAction.ARCHIVE: lambda: entry.archive(CONSUMER, "again", T0),
            BinAction.PURGE: lambda: entry.purge(T0),
        }[action]()
    assert raised.value.current is before
    assert str(before) in str(raised.value)
    assert entry.state is before


def test_every_state_is_in_the_state_machine_and_purged_is_final() -> None:
    assert set(BIN_TRANSITIONS) == set(BinState)
    assert BIN_TRANSITIONS[BinState.PURGED] == {}
    assert BIN_TRANSITIONS[BinState.RESTORED] == {}


# -- moving in -----------------------------------------------------------------------------


def test_the_same_manual_cause_again_is_idempotent_whatever_its_spacing_or_case() -> None:
    entry = new_entry()
    again = manual_cause(Category.ABNORMAL, "  Looks   FAKE ", OPERATOR, T0 + timedelta(minutes=5))
    outcome, same = move_to_recycle_bin(ORDER, entry, set(), again)
    assert outcome is MoveOutcome.ALREADY and same is entry
    assert len(entry.causes) == 1


def test_a_different_cause_joins_the_entry_history_not_a_second_entry() -> None:
    entry = new_entry()
    refund = refund_cause("rf-1", "case-1", Decimal("19.90"), "broken", CONSUMER, T0 + timedelta(1))
    outcome, same = move_to_recycle_bin(ORDER, entry, {c.key for c in entry.causes}, refund)
    assert outcome is MoveOutcome.REASON_ADDED and same is entry
    assert [c.category for c in entry.causes] == [Category.ABNORMAL, Category.REFUND]
    assert entry.category is Category.ABNORMAL  # the first cause names the entry
    assert entry.case_id == "case-1"  # a case learnt later links the entry to it
    assert entry.last_cause_at == T0 + timedelta(1)


def test_an_event_cause_seen_before_does_not_send_the_order_back_in() -> None:
    # The refund put the order in, its case closed (archived), then the same refund arrives
    # again under a new event id: nothing happens.
    refund = refund_cause("rf-1", "case-1", Decimal("19.90"), "broken", CONSUMER, T0)
    outcome, entry = move_to_recycle_bin(ORDER, None, {"refund:rf-1"}, refund)
    assert (outcome, entry) == (MoveOutcome.ALREADY, None)


def test_a_manual_cause_after_a_restore_opens_a_new_stay() -> None:
    first = new_entry()
    first.restore(OPERATOR, None, T0)
    again = manual_cause(Category.ABNORMAL, "looks fake", OPERATOR, T0 + timedelta(days=1))
    outcome, entry = move_to_recycle_bin(ORDER, None, {c.key for c in first.causes}, again)
    assert outcome is MoveOutcome.MOVED and entry is not None
    assert entry.entry_id != first.entry_id


def test_cause_keys_identify_the_fact_not_the_event() -> None:
    a = refund_cause("rf-1", "case-1", Decimal(1), "x", CONSUMER, T0)
    b = refund_cause("rf-1", "case-1", Decimal(1), "x", CONSUMER, T0 + timedelta(hours=1))
    assert a.key == b.key == "refund:rf-1"
    assert case_cause("case-1", Category.RETURN, "x", CONSUMER, T0).key == "case:case-1"
    assert anomaly_cause("fp", Category.ABNORMAL, "dup", CONSUMER, T0).key == "anomaly:fp"
    assert not a.by_hand and manual_cause(Category.OTHER, "x", OPERATOR, T0).by_hand


# -- category mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case_type", "category"),
    [
        ("return", Category.RETURN),
        ("refund", Category.REFUND),
        ("complaint", Category.COMPLAINT),
        ("exchange", Category.EXCHANGE),
        ("repair", None),
    ],
)
def test_case_types_map_to_categories(case_type: str, category: Category | None) -> None:
    assert case_category(case_type) == category


def test_the_default_anomaly_setting_sends_duplicates_to_abnormal() -> None:
    categories = anomaly_categories(OrderguardSettings().order.recycle_bin_anomaly_rules)
    assert categories == {"order.duplicate": Category.ABNORMAL}
    labels = {"order_id": "ord_9", "customer_id": "c-1"}
    assert anomaly_category("order.duplicate", "firing", labels, categories) == (
        "ord_9",
        Category.ABNORMAL,
    )


@pytest.mark.parametrize(
    ("rule", "status", "labels"),
    [
        ("order.duplicate", "resolved", {"order_id": "ord_9"}),  # only firing anomalies move
        ("order.duplicate", "firing", {"customer_id": "c-1"}),  # no order named
        ("stock.low", "firing", {"order_id": "ord_9"}),  # a rule not configured
    ],
)
def test_anomalies_that_do_not_move_an_order(
    rule: str, status: str, labels: dict[str, str]
) -> None:
    categories = anomaly_categories({"order.duplicate": "abnormal"})
    assert anomaly_category(rule, status, labels, categories) is None


def test_an_unknown_category_in_the_setting_is_a_clear_start_up_error() -> None:
    with pytest.raises(ValueError, match=r"'payment.failures' maps to unknown category 'fraud'"):
        anomaly_categories({"payment.failures": "fraud"})


def test_the_order_worker_refuses_to_start_with_an_unknown_category() -> None:
    settings = OrderguardSettings(order={"recycle_bin_anomaly_rules": {"order.duplicate": "fraud"}})
    with pytest.raises(ValueError, match="unknown category 'fraud'"):
        Runtime(DEFINITION, settings, frozenset({"workers"}), rule_catalogue()).engine_consumers()
