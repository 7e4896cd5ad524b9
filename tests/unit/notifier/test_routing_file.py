"""An invalid routing file fails at load with a message that names each problem and where it is."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orderguard.services.notifier.routing import RoutingFileError, load_routing, parse_routing


def problems(yaml_text: str) -> str:
    with pytest.raises(RoutingFileError) as failure:
        parse_routing(textwrap.dedent(yaml_text), "bad.yaml")
    message = str(failure.value)
    assert message.startswith("routing file bad.yaml")
    return message


def test_unknown_queue() -> None:
    message = problems(
        """
        route:
          queue: warehouse
          routes:
            - matchers: ['rule="stock.low"']
              queue: warehose
        """
    )
    assert "route.routes.0.queue" in message
    assert "unknown queue 'warehose'" in message
    assert "warehouse, logistics, finance, customer_service, risk" in message


def test_bad_regex() -> None:
    message = problems(
        """
        route:
          queue: risk
          routes:
            - matchers: ['rule="ok"', 'rule=~"(refund"']
        """
    )
    assert "route.routes.0.matchers.1" in message
    assert "bad regular expression" in message
    assert "(refund" in message


def test_unparseable_matcher() -> None:
    message = problems(
        """
        route:
          queue: risk
          routes:
            - matchers: ['rule is stock.low']
        """
    )
    assert "route.routes.0.matchers.0" in message and "'rule is stock.low'" in message


def test_root_without_a_default_queue() -> None:
    assert "root route needs a `queue`" in problems("route: {routes: []}")


def test_missing_route() -> None:
    assert "route: required field is missing" in problems("routes: []")


def test_misspelt_field_and_unknown_channel_are_both_reported() -> None:
    message = problems(
        """
        route:
          queue: risk
          routes:
            - matchers: ['rule="x"']
              contine: true
              channels: [carrier-pigeon]
        """
    )
    assert "route.routes.0.contine: unknown field" in message
    assert "route.routes.0.channels.0" in message and "'carrier-pigeon'" in message


def test_root_takes_no_matchers() -> None:
    assert "takes no `matchers`" in problems("route: {queue: risk, matchers: ['a=\"b\"']}")


def test_route_names_are_unique() -> None:
    message = problems(
        """
        route:
          queue: risk
          routes:
            - {name: twice, matchers: ['a="1"']}
            - {name: twice, matchers: ['a="2"']}
        """
    )
    assert "'twice' is used twice" in message


def test_not_yaml_and_not_a_mapping() -> None:
    assert "not valid YAML" in problems("route: [unclosed")
    assert "must be a mapping" in problems("- just a list")
    assert "must be a mapping" in problems("")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutingFileError, match="cannot be read"):
        load_routing(tmp_path / "nope.yaml")


def test_a_file_on_disk_loads(tmp_path: Path) -> None:
    file = tmp_path / "routing.yaml"
    file.write_text("route:\n  queue: finance\n  channels: [in_app]\n")
    loaded = load_routing(file)
    assert loaded.source == str(file)
    assert [m.queue for m in loaded.route({"rule": "x"})] == ["finance"]


def test_a_route_may_name_the_outgoing_channels_and_nothing_else() -> None:
    from orderguard.services.notifier.routing import RoutingFileError, parse_routing

    tree = parse_routing("route:\n  queue: risk\n  channels: [in_app, slack, email]\n", "ok.yaml")
    assert tree.config.route.channels == ["in_app", "slack", "email"]
    with pytest.raises(RoutingFileError, match="pigeon"):
        parse_routing("route:\n  queue: risk\n  channels: [pigeon]\n", "bad.yaml")
