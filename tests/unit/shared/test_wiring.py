"""Each service's worker runs what its bootstrap table declares: the detectors are exactly its
`rules.RULES` (a rule added there runs; none is listed by hand), every rules module is in the
composition root's catalogue, and consumer groups and job names keep one style."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from orderguard.cli.services_registry import (
    STREAM_RULES,
    OrderguardSettings,
    definition_of,
    rule_catalogue,
)
from orderguard.shared.detection.consumer import DetectorConsumer
from orderguard.shared.runtime import Runtime
from orderguard.shared.settings import SERVICES
from orderguard.shared.wiring import UseCaseConsumer

SERVICES_DIR = Path(__file__).resolve().parents[3] / "services"
WITH_RULES = sorted(p.parent.name for p in SERVICES_DIR.glob("*/rules.py"))


def worker(service: str) -> Runtime:
    return Runtime(
        definition_of(service), OrderguardSettings(), frozenset({"workers"}), rule_catalogue()
    )


@pytest.mark.parametrize("service", WITH_RULES)
def test_the_detectors_that_run_are_the_rules_module_rules(service: str) -> None:
    declared = importlib.import_module(f"orderguard.services.{service}.rules").RULES
    running = [c for c in worker(service).engine_consumers() if isinstance(c, DetectorConsumer)]
    assert [type(c.rule) for c in running] == list(declared)
    assert [c.name for c in running] == [f"{service}.detector.{r.name}" for r in declared]


@pytest.mark.parametrize("service", WITH_RULES)
def test_every_rules_module_is_in_the_catalogue(service: str) -> None:
    declared = importlib.import_module(f"orderguard.services.{service}.rules").RULES
    assert set(declared) <= set(STREAM_RULES)
    assert set(declared) <= set(rule_catalogue())


@pytest.mark.parametrize("service", WITH_RULES)
def test_every_declared_use_case_anomaly_is_in_the_catalogue(service: str) -> None:
    """So the detectors file configures it (and a typo in its name there is an error)."""
    module = importlib.import_module(f"orderguard.services.{service}.rules")
    assert set(getattr(module, "USE_CASE_ANOMALIES", ())) <= set(rule_catalogue())


def test_a_rule_disabled_in_the_file_does_not_run(tmp_path: Path) -> None:
    file = tmp_path / "detectors.yaml"
    file.write_text("rules:\n  order.duplicate: {enabled: false}\n")
    settings = OrderguardSettings(detectors_file=str(file))
    runtime = Runtime(definition_of("order"), settings, frozenset({"workers"}), rule_catalogue())
    groups = {c.name for c in runtime.engine_consumers()}
    assert "order.detector.order.duplicate" not in groups
    assert "order.detector.payment.failures" in groups


@pytest.mark.parametrize("service", SERVICES)
def test_consumer_groups_and_jobs_are_named_service_dot_kebab_case(service: str) -> None:
    runtime = worker(service)
    workers = runtime.definition.workers(runtime)
    name = re.compile(rf"^{service}(\.[a-z0-9]+(-[a-z0-9]+)*)+$")
    groups = [c.name for c in workers.consumers]
    assert all(isinstance(c, UseCaseConsumer) for c in workers.consumers)
    assert len(set(groups)) == len(groups)
    for consumer_group in groups:
        assert name.match(consumer_group), consumer_group
    jobs = [job.name for job in workers.jobs]
    assert len(set(jobs)) == len(jobs)
    # Retention jobs are one shared shape, named for the table they keep bounded.
    for job in jobs:
        assert name.match(job) or re.match(r"^retention(\.[a-z_]+)+$", job), job
