"""Channel credentials come from the environment (one JSON secret, or one variable per field),
print masked, and an incomplete channel stops start-up with the field named."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from orderguard.cli.services_registry import OrderguardSettings
from orderguard.services.notifier.channels.registry import configured_kinds


def test_channels_from_one_json_secret_and_per_field_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "ORDERGUARD_NOTIFIER__CHANNELS",
        '{"webhook": {"url": "https://hooks.example/o", "secret": "whsec-1"}}',
    )
    monkeypatch.setenv(
        "ORDERGUARD_NOTIFIER__CHANNELS__DINGTALK__URL",
        "https://oapi.dingtalk.com/robot/send?access_token=T",
    )
    monkeypatch.setenv("ORDERGUARD_NOTIFIER__CHANNELS__DINGTALK__SECRET", "SEC-1")
    monkeypatch.setenv("ORDERGUARD_NOTIFIER__DELIVERIES__QUIET_HOURS__START", "21:30")
    monkeypatch.setenv("ORDERGUARD_NOTIFIER__DELIVERIES__RATE_LIMITS", '{"sms": 5}')
    settings = OrderguardSettings().notifier
    channels = settings.channels
    assert configured_kinds(channels) == {"webhook", "dingtalk"}
    assert channels.webhook is not None and channels.webhook.secret.get_secret_value() == "whsec-1"
    assert settings.deliveries.quiet_hours.start == time(21, 30)
    assert settings.deliveries.rate_limits == {"sms": 5}
    shown = repr(settings)
    assert "whsec-1" not in shown and "SEC-1" not in shown and "access_token" not in shown


def test_an_incomplete_channel_names_the_missing_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERGUARD_NOTIFIER__CHANNELS__SMS__URL", "https://sms.example/send")
    with pytest.raises(ValidationError, match=r"notifier\.channels\.sms\.api_key"):
        OrderguardSettings()


def test_nothing_configured_means_no_outgoing_channel() -> None:
    assert configured_kinds(OrderguardSettings().notifier.channels) == frozenset()
