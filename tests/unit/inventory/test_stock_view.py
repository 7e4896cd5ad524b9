"""The stock view shows the threshold stock.low really uses for that SKU and warehouse."""

from __future__ import annotations

from orderguard.cli.services_registry import rule_catalogue
from orderguard.services.inventory.api import StockView
from orderguard.services.inventory.domain import StockLevel
from orderguard.services.inventory.rules import LowStock
from orderguard.shared.detection.config import parse_detector_config

FILE = """
rules:
  stock.low:
    params: {threshold: 10}
    overrides:
      - match: {warehouse: WH-SH}
        params: {threshold: 20}
"""


def test_effective_threshold_follows_the_file_unless_the_sku_sets_its_own() -> None:
    configured = parse_detector_config(FILE, "test", rule_catalogue()).rule(LowStock.name)
    shanghai = StockView.of(StockLevel("A", "WH-SH", on_hand=5), configured)
    beijing = StockView.of(StockLevel("A", "WH-BJ", on_hand=5), configured)
    own = StockView.of(StockLevel("A", "WH-SH", on_hand=5, low_stock_threshold=3), configured)
    assert (shanghai.effective_threshold, beijing.effective_threshold) == (20, 10)
    assert own.effective_threshold == 3
