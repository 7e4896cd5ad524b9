"""The routing file's grouping, timers, severities and inhibition rules: parsed, inherited,
validated with clear errors."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from orderguard.services.notifier.routing import (
    GroupTimers,
    RoutingConfig,
    RoutingFileError,
    format_duration,
    load_routing,
    parse_duration,
    parse_routing,
    raised,
)


def tree(text: str):  # type: ignore[no-untyped-def]
    return parse_routing(textwrap.dedent(text), "t.yaml")


TREE = tree(
    """
    severities:
      P1: {time_limit: 15m}
    route:
      queue: customer_service
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 7m
      routes:
        - name: stock
          matchers: ['rule=~"stock\\\\..+"']
          queue: warehouse
          group_by: [warehouse]
          routes:
            - name: stock-big
              matchers: ['warehouse="big"']
              group_wait: 0s
              raise_severity_to: P2
        - name: refunds
          matchers: ['rule="refund.repeated"']
          queue: risk
          raise_severity_to: P1
    """
)


def test_timers_group_by_and_severity_raise_are_inherited() -> None:
    [stock] = TREE.route({"rule": "stock.low", "warehouse": "small"})
    assert stock.route == "stock"
    assert stock.group_by == ("warehouse",)
    assert stock.timers == GroupTimers(
        timedelta(seconds=30), timedelta(minutes=5), timedelta(minutes=7)
    )
    assert stock.group_key({"warehouse": "small"}) == 'stock:{warehouse="small"}'
    [big] = TREE.route({"rule": "stock.low", "warehouse": "big"})
    assert big.route == "stock-big" and big.group_by == ("warehouse",)
    assert big.timers.group_wait == timedelta() and big.timers.repeat_interval == timedelta(
        minutes=7
    )
    assert big.severity("P3") == "P2" and big.severity("P1") == "P1"  # raised, never lowered


def test_a_route_without_group_by_makes_each_anomaly_its_own_group() -> None:
    [refund] = TREE.route({"rule": "refund.repeated"})
    assert refund.group_key({"customer": "C-1"}) is None
    assert refund.severity("P4") == "P1"


def test_severities_default_per_level_and_are_readable_by_work_items() -> None:
    config: RoutingConfig = TREE.config
    assert config.time_limit("P1") == timedelta(minutes=15)
    assert config.time_limit("P4") == timedelta(days=3)  # not written: the default
    shipped = load_routing()
    assert [format_duration(shipped.time_limit(p)) for p in ("P1", "P2", "P3", "P4")] == [
        "4h",
        "1d",
        "2d",
        "3d",
    ]
    shown = TREE.as_json()
    assert shown["severities"]["P1"]["time_limit"] == "15m"
    assert shown["route"]["repeat_interval"] == "7m" and shown["version"]


def test_raised_orders_severities_p1_most_urgent() -> None:
    assert raised("P4", "P2") == "P2"
    assert raised("P1", "P3") == "P1"
    assert raised("P3", None) == "P3"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0s", timedelta()),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(minutes=90)),
        ("3d", timedelta(days=3)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_durations(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("  group_wait: 5", "group_wait: 5 has no unit"),
        ("  group_interval: soon", "group_interval: 'soon' is not a duration"),
        ("  repeat_interval: 0s", "repeat_interval: repeat_interval must be longer than 0s"),
        ("  group_by: [warehouse, warehouse]", "group_by lists a label twice"),
        ("  raise_severity_to: P0", "raise_severity_to: Input should be 'P1', 'P2', 'P3' or 'P4'"),
    ],
)
def test_invalid_route_settings_are_named(fragment: str, message: str) -> None:
    with pytest.raises(RoutingFileError) as error:
        parse_routing(f"route:\n  queue: risk\n{fragment}\n", "bad.yaml")
    assert message in str(error.value)


def test_severities_must_not_make_a_more_urgent_level_slower() -> None:
    with pytest.raises(RoutingFileError, match="a more urgent level cannot have a longer"):
        parse_routing("severities:\n  P1: {time_limit: 5d}\nroute: {queue: risk}\n", "bad.yaml")
    with pytest.raises(RoutingFileError, match=r"severities\.P1\.time_limit"):
        parse_routing("severities:\n  P1: {time_limit: 0s}\nroute: {queue: risk}\n", "bad.yaml")


def test_inhibit_rules_need_source_and_target_matchers_and_are_named() -> None:
    with pytest.raises(RoutingFileError, match=r"inhibit_rules\.0\.target_matchers"):
        parse_routing(
            "route: {queue: risk}\ninhibit_rules:\n  - source_matchers: ['rule=\"a\"']\n",
            "bad.yaml",
        )
    rules = tree(
        """
        route: {queue: risk}
        inhibit_rules:
          - {source_matchers: ['rule="a"'], target_matchers: ['rule="b"'], equal: [x]}
        """
    ).inhibitions()
    assert rules[0].name == "inhibit/0"


@pytest.mark.parametrize(
    ("rule", "labels", "queue", "severity"),
    [
        ("stock.low", {"warehouse": "main"}, "warehouse", "P3"),
        ("inventory.negative_available", {"warehouse": "main"}, "warehouse", "P2"),
        ("inventory.unknown_reservation", {"warehouse": "main"}, "warehouse", "P3"),
        ("inventory.inconsistent", {"warehouse": "main"}, "warehouse", "P2"),
        ("order.duplicate", {}, "risk", "P2"),
        ("payment.failures", {"provider": "stripe"}, "finance", "P3"),
        ("shipment.stalled", {"carrier": "sf"}, "logistics", "P3"),
        ("shipment.overdue", {"carrier": "sf"}, "logistics", "P3"),
        ("shipment.exception", {"carrier": "sf"}, "logistics", "P3"),
        ("case.sla_breached", {}, "customer_service", "P3"),
        ("refund.repeated", {}, "risk", "P2"),
        ("refund.issued", {}, "finance", "P3"),
    ],
)
def test_the_shipped_file_routes_every_rule_of_this_release_to_its_team(
    rule: str, labels: dict[str, str], queue: str, severity: str
) -> None:
    [match] = load_routing().route({"rule": rule, **labels})
    assert (match.queue, match.is_default, match.severity("P3")) == (queue, False, severity)


def test_a_child_raise_never_lowers_its_parents() -> None:
    nested = tree(
        """
        route:
          queue: risk
          routes:
            - name: urgent
              matchers: ['rule=~"a.*"']
              raise_severity_to: P1
              routes:
                - {name: milder, matchers: ['rule="ab"'], raise_severity_to: P3}
        """
    )
    [match] = nested.route({"rule": "ab"})
    assert match.route == "milder" and match.severity("P4") == "P1"
