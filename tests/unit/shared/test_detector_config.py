"""Detector configuration: defaults, the file, overrides by label resolved least to most specific,
one error naming every problem, and a bounded cache on the hot path."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, model_validator
from testkit import stock_event

from orderguard.cli.services_registry import OrderguardSettings, rule_catalogue
from orderguard.services.inventory import bootstrap
from orderguard.services.inventory.rules import LowStock
from orderguard.shared.detection.config import (
    DetectorConfig,
    DetectorConfigError,
    RuleConfig,
    load_detector_config,
    load_for,
    parse_detector_config,
)
from orderguard.shared.detection.consumer import DetectorConsumer
from orderguard.shared.runtime import Runtime


class StallWindow:
    """A fake rule whose params only make sense together (a cross-field validator)."""

    name = "test.stall"
    override_labels = ("carrier", "region")

    class Params(BaseModel):
        warn_after_s: float = Field(gt=0)  # no default: the file must set it
        stall_after_s: float = Field(default=3600, gt=0)

        @model_validator(mode="after")
        def _warn_before_stall(self) -> StallWindow.Params:
            if self.warn_after_s >= self.stall_after_s:
                raise ValueError("warn_after_s must be below stall_after_s")
            return self


RULES = [LowStock, StallWindow]
STALL_OK = "  test.stall:\n    params: {warn_after_s: 600}\n"


def parse(yaml_text: str, defaults: dict[str, dict[str, Any]] | None = None) -> DetectorConfig:
    return parse_detector_config(textwrap.dedent(yaml_text), "detectors.yaml", RULES, defaults)  # type: ignore[arg-type]


def problems(yaml_text: str) -> list[str]:
    with pytest.raises(DetectorConfigError) as failure:
        parse(yaml_text)
    first, *lines = str(failure.value).splitlines()
    assert first == "detectors file detectors.yaml is invalid:"
    return [line.strip() for line in lines]


EXAMPLE = """
rules:
  stock.low:
    enabled: true
    params: {threshold: 10, hysteresis: 0}
    overrides:
      - match: {sku: SKU-1, warehouse: WH-SH}
        params: {hysteresis: 2}
      - match: {warehouse: WH-SH}
        params: {threshold: 20}
      - match: {sku: SKU-1}
        params: {threshold: 5, hysteresis: 1}
  test.stall:
    params: {warn_after_s: 600}
"""


def low(labels: dict[str, str], config: DetectorConfig | None = None) -> tuple[int, int]:
    params = (config or parse(EXAMPLE)).rule("stock.low").params_for(labels)
    return params.threshold, params.hysteresis


# -- resolution ------------------------------------------------------------------------------


def test_defaults_apply_when_no_override_matches() -> None:
    assert low({"sku": "SKU-9", "warehouse": "main"}) == (10, 0)


def test_an_override_sets_only_the_params_it_names() -> None:
    assert low({"sku": "SKU-9", "warehouse": "WH-SH"}) == (20, 0)


def test_more_specific_overrides_apply_later_whatever_their_place_in_the_file() -> None:
    # {sku} and {warehouse} tie (one label each: file order, {sku} is later, threshold 5);
    # {sku, warehouse} is the most specific although written first: its hysteresis wins.
    assert low({"sku": "SKU-1", "warehouse": "WH-SH"}) == (5, 2)
    assert low({"sku": "SKU-1", "warehouse": "main"}) == (5, 1)


def test_ties_between_equally_specific_overrides_go_to_the_later_one() -> None:
    config = parse(
        textwrap.dedent(
            """
        rules:
          stock.low:
            overrides:
              - {match: {sku: A}, params: {threshold: 5}}
              - {match: {warehouse: W}, params: {threshold: 7}}
        """
        )
        + STALL_OK
    )
    assert low({"sku": "A", "warehouse": "W"}, config) == (7, 0)
    assert low({"sku": "A", "warehouse": "X"}, config) == (5, 0)


def test_a_missing_label_matches_no_override_that_needs_it() -> None:
    assert low({"warehouse": "WH-SH"}) == (20, 0)
    assert low({}) == (10, 0)


def test_built_in_defaults_come_from_settings_without_a_file() -> None:
    config = load_for(
        OrderguardSettings(inventory={"default_low_stock_threshold": 7}), rule_catalogue()
    )
    assert config.source == "<built-in defaults>"
    rule = config.rule("stock.low")
    assert rule.enabled
    assert (rule.params_for({"sku": "A", "warehouse": "W"}).threshold, rule.base.hysteresis) == (
        7,
        0,
    )


def test_the_file_wins_over_the_setting_it_replaces(tmp_path: Path) -> None:
    file = tmp_path / "detectors.yaml"
    file.write_text("rules:\n  stock.low:\n    params: {threshold: 3}\n")
    settings = OrderguardSettings(
        inventory={"default_low_stock_threshold": 7}, detectors_file=str(file)
    )
    assert load_for(settings, rule_catalogue()).rule("stock.low").base.threshold == 3
    file.write_text("rules:\n  stock.low:\n    params: {hysteresis: 4}\n")
    assert load_for(settings, rule_catalogue()).rule("stock.low").base.threshold == 7, (
        "only what the file names"
    )


def test_a_threshold_the_event_carries_wins_over_the_file() -> None:
    rule = LowStock(parse(EXAMPLE).rule("stock.low"))
    now = datetime.now(UTC)
    # WH-SH's file threshold is 20: 15 available fires by the file, not with the SKU's own 12.
    _, by_file = rule.apply(
        rule.initial_state(), stock_event(15, threshold=None, sku="S", warehouse="WH-SH"), now
    )
    _, by_own = rule.apply(
        rule.initial_state(), stock_event(15, threshold=12, sku="S", warehouse="WH-SH"), now
    )
    assert len(by_file) == 1 and "threshold of 20" in by_file[0].summary
    assert by_own == []


def test_an_empty_file_means_the_built_in_defaults() -> None:
    config = parse("", defaults={"test.stall": {"warn_after_s": 60}})
    assert config.rule("stock.low").base.threshold == 10
    assert config.rule("test.stall").base.warn_after_s == 60


# -- validation: one error, every problem, each with its location ------------------------------


def test_every_problem_is_reported_at_once_with_its_location() -> None:
    found = problems(
        textwrap.dedent(
            """
        rules:
          stock.lwo:
            params: {threshold: 1}
          stock.low:
            params: {threshold: ten, hysterisis: 1}
            overrides:
              - match: {carrier: SF}
                params: {threshold: -1}
              - match: {sku: A}
                params: {thresold: 2}
        """
        )
        + STALL_OK
    )
    assert found == [
        "rules.stock.lwo: unknown rule (known: stock.low, test.stall)",
        "rules.stock.low.params.threshold: Input should be a valid integer,"
        " unable to parse string as an integer (got 'ten')",
        "rules.stock.low.params.hysterisis: unknown param (a typo?);"
        " stock.low takes threshold, hysteresis",
        "rules.stock.low.overrides[0].match.carrier: stock.low cannot be overridden by"
        " 'carrier' (only by sku, warehouse)",
        "rules.stock.low.overrides[0].params.threshold: Input should be greater than or"
        " equal to 0 (got -1)",
        "rules.stock.low.overrides[1].params.thresold: unknown param (a typo?);"
        " stock.low takes threshold, hysteresis",
    ]


def test_merged_params_that_do_not_fit_together_are_named_with_their_overrides() -> None:
    found = problems(
        textwrap.dedent(
            """
        rules:
          test.stall:
            params: {warn_after_s: 600, stall_after_s: 3600}
            overrides:
              - {match: {carrier: SF}, params: {warn_after_s: 2000}}
              - {match: {region: north}, params: {stall_after_s: 1800}}
        """
        )
    )
    # Each override is fine on the base; together (SF in the north) warn comes after stall.
    assert found == [
        "rules.test.stall.overrides[0, 1]: merged params for {carrier: SF, region: north} are"
        " invalid: warn_after_s must be below stall_after_s"
        " (got {'warn_after_s': 2000, 'stall_after_s': 1800})"
    ]


def test_base_params_that_do_not_fit_together_or_lack_a_required_one() -> None:
    assert problems("rules:\n  test.stall:\n    params: {warn_after_s: 5000}\n") == [
        "rules.test.stall.params: merged params are invalid:"
        " warn_after_s must be below stall_after_s (got {'warn_after_s': 5000})"
    ]
    assert problems("rules: {}\n") == [
        "rules.test.stall.params: merged params are invalid: warn_after_s: required field is missing"
    ]


def test_structure_errors_name_the_field() -> None:
    found = problems(
        textwrap.dedent(
            """
        rule: {}
        rules:
          stock.low:
            enabeld: false
            overrides:
              - params: {threshold: 1}
              - match: {sku: 1}
                params: {threshold: 1}
              - match: {sku: A}
                params: {}
        """
        )
        + STALL_OK
    )
    assert found == [
        "rule: unknown field (a typo?)",
        "rules.stock.low.enabeld: unknown field (a typo?)",
    ]
    found = problems(
        textwrap.dedent(
            """
        rules:
          stock.low:
            overrides:
              - params: {threshold: 1}
              - match: {sku: 1}
                params: {threshold: 1}
              - match: {sku: A}
                params: {}
        """
        )
        + STALL_OK
    )
    assert found == [
        "rules.stock.low.overrides[0].match: required field is missing",
        "rules.stock.low.overrides[1].match.sku: Input should be a valid string (got 1)",
        "rules.stock.low.overrides[2].params: Dictionary should have at least 1 item after"
        " validation, not 0 (got {})",
    ]


def test_not_yaml_and_unreadable_files() -> None:
    with pytest.raises(DetectorConfigError, match=r"detectors\.yaml is not valid YAML"):
        parse("rules: [unclosed")
    with pytest.raises(
        DetectorConfigError, match=r"detectors file /nonexistent\.yaml cannot be read"
    ):
        load_detector_config("/nonexistent.yaml", RULES)  # type: ignore[arg-type]
    with pytest.raises(DetectorConfigError, match=r"must be a mapping with a `rules` key"):
        parse("- just a list\n")


# -- the hot path ----------------------------------------------------------------------------


def test_resolved_params_are_cached_per_label_tuple() -> None:
    rule = parse(EXAMPLE).rule("stock.low")
    first = rule.params_for({"sku": "SKU-1", "warehouse": "WH-SH"})
    again = rule.params_for({"warehouse": "WH-SH", "sku": "SKU-1", "ignored": "x"})
    assert first is again
    info = rule.cache_info()
    assert (info.hits, info.misses) == (1, 1)


def test_the_cache_is_bounded() -> None:
    base = parse(EXAMPLE).rule("stock.low")
    rule: RuleConfig[Any] = RuleConfig(
        base.name, LowStock.Params, LowStock.override_labels, {}, base.overrides, cache_size=2
    )
    for sku in ("A", "B", "C", "A"):
        rule.params_for({"sku": sku, "warehouse": "WH-SH"})
    info = rule.cache_info()
    assert (info.currsize, info.maxsize, info.misses) == (2, 2, 4), "A was evicted by C"


def test_a_rule_without_overrides_returns_its_base_without_a_lookup() -> None:
    rule = parse(STALL_OK.join(["rules:\n", ""])).rule("stock.low")
    assert rule.params_for({"sku": "A", "warehouse": "W"}) is rule.base
    assert rule.cache_info().misses == 0


# -- wiring ----------------------------------------------------------------------------------


def runtime(detectors_file: str | None) -> Runtime:
    settings = OrderguardSettings(detectors_file=detectors_file, topic_prefix="p.")
    return Runtime(bootstrap.DEFINITION, settings, frozenset({"workers"}), rule_catalogue())


def test_the_inventory_worker_builds_stock_low_from_the_file(tmp_path: Path) -> None:
    file = tmp_path / "detectors.yaml"
    file.write_text(
        "rules:\n  stock.low:\n    overrides:\n"
        "      - {match: {warehouse: WH-SH}, params: {threshold: 20}}\n"
    )
    detector = [h for h in runtime(str(file)).engine_consumers() if isinstance(h, DetectorConsumer)]
    assert [h.name for h in detector] == [
        "inventory.detector.stock.low",
        "inventory.detector.inventory.negative_available",
        "inventory.detector.inventory.inconsistent",
    ]
    rule = detector[0].rule
    assert isinstance(rule, LowStock)
    assert rule.config.params_for({"sku": "A", "warehouse": "WH-SH"}).threshold == 20


def test_a_disabled_rule_runs_no_detector(tmp_path: Path) -> None:
    file = tmp_path / "detectors.yaml"
    file.write_text("rules:\n  stock.low: {enabled: false}\n")
    groups = [getattr(h, "name", None) for h in runtime(str(file)).engine_consumers()]
    assert "inventory.detector.stock.low" not in groups
    assert groups[0] == "inventory.reservations"


def test_an_invalid_file_stops_the_worker_before_anything_starts(tmp_path: Path) -> None:
    file = tmp_path / "detectors.yaml"
    file.write_text("rules:\n  stock.low:\n    params: {threshold: -3}\n")
    with pytest.raises(DetectorConfigError, match=r"rules\.stock\.low\.params\.threshold"):
        runtime(str(file)).engine_consumers()
