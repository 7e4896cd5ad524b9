"""`orderguard up --demo` wiring: the services get the scaled detectors file and the settings the
scenario needs; the generator is started against the same state directory and speed-up."""

from __future__ import annotations

import json
from pathlib import Path

from orderguard.cli.services_registry import rule_catalogue
from orderguard.cli.supervisor import Demo
from orderguard.scenario.scale import SYSTEM_ENV, Scale
from orderguard.shared.detection.config import load_detector_config
from orderguard.shared.settings import Settings


def test_demo_env_points_the_services_at_the_scaled_detectors_file(tmp_path: Path) -> None:
    demo = Demo(speedup=3600, rate=10, duration_s=60, seed=4)
    env = demo.env(tmp_path)
    detectors = Path(env["ORDERGUARD_DETECTORS_FILE"])
    assert detectors.read_text() == Scale(3600).detectors_yaml()
    config = load_detector_config(detectors, rule_catalogue())
    assert config.rule("case.sla_breached").base.first_response_s == 24.0
    assert {k: env[k] for k in SYSTEM_ENV} == SYSTEM_ENV
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        carrier_secrets=json.loads(env["ORDERGUARD_CARRIER_SECRETS"]),
        order_delivery_promise_days=int(env["ORDERGUARD_ORDER_DELIVERY_PROMISE_DAYS"]),
    )
    assert set(settings.carrier_secrets) == {"sf-express"}
    command = demo.command(tmp_path)
    assert command[2:5] == ["orderguard.cli", "scenario", "run"]
    assert command[command.index("--speedup") + 1] == "3600"
    assert command[command.index("--data-dir") + 1] == str(tmp_path)
    assert command[command.index("--seed") + 1] == "4"
