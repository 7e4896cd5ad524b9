"""docs/settings.md is the settings models' own table: every field described, none stale; and a
renamed variable left in a deployment stops start-up instead of being ignored."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from orderguard.cli.services_registry import RENAMED, OrderguardSettings
from orderguard.cli.settings_table import render, rows, section_model

ROOT = Path(__file__).resolve().parents[3]


def test_the_committed_settings_table_is_current() -> None:
    committed = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/settings.md is stale: run `make settings-doc`"


def _undescribed(model: type[BaseModel], path: str) -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        if not field.description:
            found.append(f"{path}{name}")
        section = section_model(field.annotation)
        if section is not None:
            found += _undescribed(section, f"{path}{name}.")
    return found


def test_every_setting_has_a_description() -> None:
    assert _undescribed(OrderguardSettings, "") == []


def test_each_service_section_reads_its_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERGUARD_ORDER__PAYMENT_DEADLINE_S", "90")
    monkeypatch.setenv("ORDERGUARD_LOGISTICS__CARRIER_SECRETS", '{"zto": "s"}')
    monkeypatch.setenv("ORDERGUARD_NOTIFIER__CHANNELS__SLACK__TEAMS__WAREHOUSE__URL", "https://s")
    monkeypatch.setenv("ORDERGUARD_INVENTORY__DEFAULT_LOW_STOCK_THRESHOLD", "4")
    settings = OrderguardSettings()
    assert settings.order.payment_deadline_s == 90
    assert set(settings.logistics.carrier_secrets) == {"zto"}
    slack = settings.notifier.channels.slack
    assert slack is not None and slack.teams["warehouse"].url.get_secret_value() == "https://s"
    assert settings.detector_defaults() == {"stock.low": {"threshold": 4}}


@pytest.mark.parametrize(
    "old",
    ["ORDERGUARD_CARRIER_SECRETS", "ORDERGUARD_CHANNELS__SLACK__URL", "ORDERGUARD_ROUTING_FILE"],
)
def test_a_renamed_variable_stops_start_up_naming_the_new_one(
    monkeypatch: pytest.MonkeyPatch, old: str
) -> None:
    monkeypatch.setenv(old, "x")
    new = RENAMED[old.split("__")[0]]
    with pytest.raises(ValidationError, match=f"{old.split('__')[0]} is now {new}"):
        OrderguardSettings()


def test_every_new_name_is_a_setting() -> None:
    variables = {variable for variable, *_ in rows(OrderguardSettings)}
    assert set(RENAMED.values()) <= variables
