"""`orderguard up --demo` wiring: the services get the scaled detectors file and the settings the
scenario needs; the generator is started against the same state directory and speed-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderguard.cli.services_registry import OrderguardSettings, rule_catalogue
from orderguard.cli.supervisor import Demo
from orderguard.scenario.scale import SYSTEM_ENV, Scale
from orderguard.shared.detection.config import load_detector_config


def test_demo_env_points_the_services_at_the_scaled_detectors_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = Demo(speedup=3600, rate=10, duration_s=60, seed=4)
    env = demo.env(tmp_path)
    detectors = Path(env["ORDERGUARD_DETECTORS_FILE"])
    assert detectors.read_text() == Scale(3600).detectors_yaml()
    config = load_detector_config(detectors, rule_catalogue())
    assert config.rule("case.sla_breached").base.first_response_s == 24.0
    assert {k: env[k] for k in SYSTEM_ENV} == SYSTEM_ENV
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = OrderguardSettings(_env_file=None)  # type: ignore[call-arg]
    assert set(settings.logistics.carrier_secrets) == {"sf-express"}
    assert settings.order.delivery_promise_days == 0
    command = demo.command(tmp_path)
    assert command[2:5] == ["orderguard.cli", "scenario", "run"]
    assert command[command.index("--speedup") + 1] == "3600"
    assert command[command.index("--data-dir") + 1] == str(tmp_path)
    assert command[command.index("--seed") + 1] == "4"
