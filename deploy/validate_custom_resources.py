"""Validate the custom resources in rendered manifests, which kubernetes-validate skips.

ScaledObject (KEDA), PodMonitor/ServiceMonitor/PrometheusRule (Prometheus Operator): typed
pydantic models from the cloudcoil-models-* packages, plus a walk that reports every field
the model does not know (the models silently ignore unknown fields, so a misspelt key
would otherwise pass). KafkaTopic (Strimzi) has no model on PyPI: its few fields are
checked by hand.

Usage: python deploy/validate_custom_resources.py RENDERED.yaml [...]
Run by deploy/check.sh inside its tools venv; exits 1 on any finding.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as prom
from pydantic import BaseModel, ValidationError

MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
    ("monitoring.coreos.com/v1", "PodMonitor"): prom.PodMonitor,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): prom.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): prom.PrometheusRule,
}
CUSTOM_GROUPS = ("keda.sh/", "monitoring.coreos.com/", "kafka.strimzi.io/")


def unknown_fields(given: Any, known: Any, path: str = "") -> Iterator[str]:
    """Paths present in the manifest but absent from the model's re-serialisation."""
    if isinstance(given, dict):
        if not isinstance(known, dict):
            return
        for key, value in given.items():
            if key not in known:
                yield f"{path}.{key}" if path else key
            else:
                yield from unknown_fields(value, known[key], f"{path}.{key}" if path else key)
    elif isinstance(given, list) and isinstance(known, list):
        for index, (g, k) in enumerate(zip(given, known, strict=False)):
            yield from unknown_fields(g, k, f"{path}[{index}]")


def check_model(doc: dict[str, Any], model: type[BaseModel]) -> list[str]:
    try:
        parsed = model.model_validate(doc)
    except ValidationError as error:
        return [str(error)]
    dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"unknown field {p}" for p in unknown_fields(doc, dumped)]


def check_kafka_topic(doc: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if doc.get("apiVersion") != "kafka.strimzi.io/v1beta2":
        problems.append(f"apiVersion {doc.get('apiVersion')!r}, expected kafka.strimzi.io/v1beta2")
    labels = (doc.get("metadata") or {}).get("labels") or {}
    if not labels.get("strimzi.io/cluster"):
        problems.append("metadata.labels.strimzi.io/cluster is required by the Topic Operator")
    spec = doc.get("spec") or {}
    extra = set(spec) - {"topicName", "partitions", "replicas", "config"}
    if extra:
        problems.append(f"unknown spec fields {sorted(extra)}")
    for field in ("partitions", "replicas"):
        value = spec.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"spec.{field} must be a positive integer, got {value!r}")
    if "topicName" in spec and not isinstance(spec["topicName"], str):
        problems.append("spec.topicName must be a string")
    config = spec.get("config", {})
    if not isinstance(config, dict):
        problems.append("spec.config must be a mapping")
    else:
        for key, value in config.items():
            if not isinstance(value, (str, int, float, bool)):
                problems.append(f"spec.config.{key} must be a scalar")
    return problems


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    failures = checked = 0
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if not doc:
                continue
            api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            name = (doc.get("metadata") or {}).get("name", "?")
            if (api_version, kind) in MODELS:
                problems = check_model(doc, MODELS[(api_version, kind)])
            elif kind == "KafkaTopic":
                problems = check_kafka_topic(doc)
            elif api_version.startswith(CUSTOM_GROUPS):
                problems = [
                    f"no validator for {api_version} {kind}: add one to {Path(__file__).name}"
                ]
            else:
                continue
            checked += 1
            for problem in problems:
                failures += 1
                print(f"ERROR {path}: {kind}/{name}: {problem}")
    print(f"custom resources: {checked} checked, {failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
