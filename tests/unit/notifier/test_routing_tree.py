"""The routing tree: first match wins, `continue`, inheritance, the default, the shipped file."""

from __future__ import annotations

import textwrap

import pytest

from orderguard.services.notifier.routing import (
    RouteMatch,
    RoutingTree,
    load_routing,
    parse_routing,
)


def tree(yaml_text: str) -> RoutingTree:
    return parse_routing(textwrap.dedent(yaml_text), "test.yaml")


TREE = tree(
    """
    route:
      queue: customer_service
      channels: [in_app]
      routes:
        - name: stock
          matchers: ['rule="stock.low"']
          queue: warehouse
        - name: stock-again   # never reached for stock.low: the first match wins
          matchers: ['rule=~"stock\\..+"']
          queue: risk
        - name: big-refunds
          matchers: ['rule="refund.issued"', 'severity=~"P1|P2"']
          queue: finance
          continue: true
        - name: refunds-watch
          matchers: ['rule=~"refund\\..+"']
          queue: risk
          channels: []
        - name: shipments
          matchers: ['rule=~"shipment\\..+"']
          queue: logistics
          routes:
            - name: shipments-sf
              matchers: ['carrier="sf"']
            - name: shipments-quiet
              matchers: ['carrier="quiet"']
              channels: []
    """
)


def routes(labels: dict[str, str]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(m.route, m.queue, m.channels) for m in TREE.route(labels)]


def test_first_matching_child_wins() -> None:
    assert routes({"rule": "stock.low"}) == [("stock", "warehouse", ("in_app",))]


def test_all_matchers_of_a_route_must_match() -> None:
    assert routes({"rule": "refund.issued", "severity": "P3"}) == [("refunds-watch", "risk", ())]


def test_continue_goes_on_to_later_siblings() -> None:
    assert routes({"rule": "refund.issued", "severity": "P1"}) == [
        ("big-refunds", "finance", ("in_app",)),
        ("refunds-watch", "risk", ()),
    ]


def test_children_inherit_queue_and_channels_and_the_deepest_match_wins() -> None:
    assert routes({"rule": "shipment.stalled", "carrier": "sf"}) == [
        ("shipments-sf", "logistics", ("in_app",))
    ]
    assert routes({"rule": "shipment.stalled", "carrier": "quiet"}) == [
        ("shipments-quiet", "logistics", ())
    ]


def test_a_route_whose_children_do_not_match_is_the_match() -> None:
    assert routes({"rule": "shipment.stalled", "carrier": "ems"}) == [
        ("shipments", "logistics", ("in_app",))
    ]


def test_unmatched_anomalies_go_to_the_root_default() -> None:
    assert TREE.route({"rule": "something.new"}) == [
        RouteMatch("root", "customer_service", ("in_app",), is_default=True)
    ]


def test_routes_without_a_name_are_named_by_their_path() -> None:
    unnamed = tree(
        """
        route:
          queue: risk
          routes:
            - matchers: ['a="1"']
              queue: finance
              routes:
                - matchers: ['b="2"']
        """
    )
    assert [m.route for m in unnamed.route({"a": "1", "b": "2"})] == ["root/0/0"]


def test_the_tree_renders_as_json_that_parses_back_to_the_same_tree() -> None:
    rendered = TREE.as_json()
    assert rendered["source"] == "test.yaml"
    assert rendered["route"]["routes"][2]["continue"] is True
    assert rendered["route"]["routes"][0]["matchers"] == ['rule="stock.low"']
    import yaml

    again = parse_routing(yaml.safe_dump({"route": rendered["route"]}), "again")
    assert again.config == TREE.config


@pytest.mark.parametrize(
    ("rule", "queue"),
    [
        ("stock.low", "warehouse"),
        ("shipment.stalled", "logistics"),
        ("shipment.undeliverable", "logistics"),
        ("payment.failed", "finance"),
        ("refund.issued", "finance"),
        ("case.sla_breached", "customer_service"),
        ("refund.repeated", "risk"),
        ("order.duplicate", "risk"),
    ],
)
def test_the_shipped_routing_file_routes_each_known_rule_to_its_team_in_app(
    rule: str, queue: str
) -> None:
    matches = load_routing().route({"rule": rule, "team": "warehouse", "severity": "P3"})
    assert [(m.queue, m.channels, m.is_default) for m in matches] == [(queue, ("in_app",), False)]


def test_the_shipped_routing_file_has_a_default() -> None:
    [match] = load_routing().route({"rule": "order.stockpiled"})
    assert match.is_default
