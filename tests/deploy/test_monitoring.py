"""Offline checks of the monitoring artifacts (deploy/monitoring/ and their Kubernetes copies).

- Every metric an alert, a recording rule or a dashboard query reads is exported by orderguard
  (the metric objects of `orderguard.shared.metrics`, with the sample suffixes of their type,
  or the client library's default collectors that /metrics serves too) or is on the short list
  of external metrics below. A renamed metric or label fails here, not silently in Grafana.
- Every dashboard query parses: promtool checks a rule file holding each one as a recording rule.
- Every alert has severity, summary, description and a runbook_url pointing at its runbook in
  docs/runbooks/, and a firing and a non-firing case in alerts.test.yaml; promtool runs them.
- The generated files (dashboards, the Kubernetes copies, the PrometheusRule) are up to date.
- docker-compose.yml's Prometheus scrapes every serve/worker container under the job names the
  rules use, and the ServiceMonitor/PodMonitor produce the same job names.

promtool (Debian package `prometheus`) is needed for the parsing checks: skipped without it,
except in CI. The metric-name checks need orderguard importable (project environment).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
ALERTS_FILE = MONITORING / "alerts.yaml"
ALERTS_TEST_FILE = MONITORING / "alerts.test.yaml"
DASHBOARDS_DIR = MONITORING / "dashboards"
COMPONENT = ROOT / "deploy" / "k8s" / "components" / "monitoring"
RUNBOOKS = ROOT / "docs" / "runbooks"
COMPOSE_FILE = ROOT / "docker-compose.yml"
RUNBOOK_URL = "https://github.com/orderguard/orderguard/blob/main/docs/runbooks/{alert}.md"
SEVERITIES = {"critical", "warning", "info"}
RUNBOOK_SECTIONS = ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation")

# Metrics we read but do not export, with the labels we may use on them, and who exports them.
EXTERNAL_METRICS: dict[str, set[str]] = {
    "up": set(),  # Prometheus, one per scrape target
    "ALERTS": {"alertname", "alertstate", "severity"},  # Prometheus, one per pending/firing alert
    "kube_pod_container_status_restarts_total": set(),  # kube-state-metrics
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},  # kafka_exporter, Strimzi
}
# Labels Prometheus adds to every scraped series (compose: job, instance; the Prometheus
# Operator: namespace, pod, container, service, endpoint).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "service", "endpoint"}
# The keys orderguard_build_info carries (shared/runtime.py sets them with BUILD_INFO.info()).
INFO_LABELS = {"version", "service", "role"}
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}
GRAFANA_GLOBALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}

Obj = dict[str, Any]


# ---------------------------------------------------------------- loading


@cache
def alert_groups() -> list[Obj]:
    return yaml.safe_load(ALERTS_FILE.read_text())["groups"]


def rules() -> list[Obj]:
    return [rule for group in alert_groups() for rule in group["rules"]]


def alerts() -> list[Obj]:
    return [rule for rule in rules() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


@cache
def dashboards_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards", MONITORING / "dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def dashboards() -> dict[str, Obj]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(board: Obj) -> list[Obj]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def panel_queries() -> list[tuple[str, str, Obj]]:
    """(dashboard, panel title, target) for every query target of every panel."""
    return [
        (name, panel["title"], target)
        for name, board in dashboards().items()
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def with_variables_filled(expr: str) -> str:
    """A panel query as Prometheus would get it: Grafana variables replaced by sample values."""
    for name, value in GRAFANA_GLOBALS.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return re.sub(r"\$\{?(\w+)\}?", "sample", expr)


def all_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every rule and every panel query."""
    found = [(rule.get("alert") or rule["record"], rule["expr"]) for rule in rules()]
    found += [
        (f"dashboard {board} / {title}", with_variables_filled(target["expr"]))
        for board, title, target in panel_queries()
    ]
    return found


def compose() -> Obj:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (Debian package prometheus)")
    return found


# ---------------------------------------------------------------- PromQL, lexically
#
# Enough of PromQL to find metric and label names; promtool (below) proves the queries parse.

STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)?\s*\{([^{}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
RANGES = re.compile(r"\[[^\[\]]*\]")
IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][\w:]*")
KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "start", "end",
}  # fmt: skip


def _blank_strings(expr: str) -> str:
    return STRINGS.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    text = _blank_strings(expr)
    text = SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    text = GROUPING.sub(" ", RANGES.sub(" ", text))
    names = set()
    for match in IDENTIFIER.finditer(text):
        name = match.group(0)
        if name.lower() in KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword, or a function or aggregation being called
        names.add(name)
    return names


def matcher_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name or '', label names matched) for every selector with braces."""
    return [
        (m.group(1) or "", set(MATCHER.findall(m.group(2))))
        for m in SELECTOR.finditer(_blank_strings(expr))
    ]


def grouping_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for clause in GROUPING.findall(_blank_strings(expr))
        for label in clause.split(",")
        if label.strip()
    }


def test_the_promql_reader_finds_metrics_labels_and_skips_the_rest():
    expr = (
        'sum by (namespace, group) (increase(orderguard_dead_letters_total{reason=~"a|b"}[15m]))'
        " / on (namespace) group_left max(foo:bar:rate5m offset 5m) > 1e3"
        ' or histogram_quantile(0.99, rate(x_bucket{le!="+Inf", status="5.."}[1m]))'
        ' unless absent(up{job=~"orderguard-.+"}) and vector(1) > bool 0'
    )
    assert metric_names(expr) == {
        "orderguard_dead_letters_total",
        "foo:bar:rate5m",
        "x_bucket",
        "up",
    }
    assert grouping_labels(expr) == {"namespace", "group"}
    assert matcher_labels(expr) == [
        ("orderguard_dead_letters_total", {"reason"}),
        ("x_bucket", {"le", "status"}),
        ("up", {"job"}),
    ]


# ---------------------------------------------------------------- what the code exports


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Sample name -> label names of everything orderguard's /metrics serves."""
    module = pytest.importorskip("orderguard.shared.metrics")
    from prometheus_client import REGISTRY
    from prometheus_client.metrics import MetricWrapperBase

    samples: dict[str, set[str]] = {}
    ours = set()
    for value in vars(module).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = set(value._labelnames)  # the label names given to the constructor
        for family in value.describe():
            ours.add(family.name)
            for suffix in SAMPLE_SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                extra |= INFO_LABELS if family.type == "info" else set()
                samples[family.name + suffix] = labels | extra
    assert len(ours) >= 15, f"found only {sorted(ours)} in orderguard.shared.metrics"
    # The client library's default collectors (process_*, python_*): /metrics serves the
    # default registry, so they are exported too.
    for family in REGISTRY.collect():
        if family.name not in ours:
            for sample in family.samples:
                samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def unknown_metrics(
    expressions: list[tuple[str, str]], exported: dict[str, set[str]], recorded: set[str]
) -> list[str]:
    problems = []
    for where, expr in expressions:
        for name in sorted(metric_names(expr)):
            if ":" in name:
                if name not in recorded:
                    problems.append(f"{where}: {name} is no recording rule of alerts.yaml")
            elif name not in exported and name not in EXTERNAL_METRICS:
                problems.append(f"{where}: {name} is not exported by orderguard")
    return problems


def test_every_metric_read_by_rules_and_dashboards_is_exported(exported):
    assert not unknown_metrics(all_expressions(), exported, recorded_names())


def test_a_renamed_metric_would_fail_the_check(exported):
    renamed = {k: v for k, v in exported.items() if k != "orderguard_consumer_lag_records"}
    problems = unknown_metrics(all_expressions(), renamed, recorded_names())
    assert any("orderguard_consumer_lag_records is not exported" in p for p in problems)
    problems = unknown_metrics([("x", "foo:bar:rate5m")], exported, recorded_names())
    assert problems == ["x: foo:bar:rate5m is no recording rule of alerts.yaml"]


def test_every_label_matched_or_grouped_on_exists(exported):
    vocabulary = set(TARGET_LABELS) | {"le"}
    vocabulary |= {label for labels in exported.values() for label in labels}
    vocabulary |= {label for labels in EXTERNAL_METRICS.values() for label in labels}
    problems = []
    for where, expr in all_expressions():
        for label in sorted(grouping_labels(expr) - vocabulary):
            problems.append(f"{where}: groups on unknown label {label}")
        for name, labels in matcher_labels(expr):
            if ":" in name or not name:
                allowed = vocabulary  # recorded series keep labels of the metrics they read
            elif name in exported:
                allowed = exported[name] | TARGET_LABELS
            else:
                allowed = EXTERNAL_METRICS.get(name, set()) | TARGET_LABELS
            for label in sorted(labels - allowed):
                problems.append(f"{where}: {name} has no label {label}")
    assert not problems, "\n".join(problems)


def test_dashboards_know_the_code_services_and_schemas():
    settings = pytest.importorskip("orderguard.shared.settings")
    module = dashboards_module()
    assert tuple(module.SERVICES) == tuple(settings.SERVICES)
    assert module.SCHEMAS == settings.SCHEMAS


# ---------------------------------------------------------------- dashboards


def test_generated_files_are_up_to_date():
    module = dashboards_module()
    files = module.generated()
    stale = [
        str(path.relative_to(ROOT))
        for path, text in files.items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run python deploy/monitoring/dashboards.py: stale {stale}"
    assert not module.leftovers(files), "dashboard JSON files no longer generated"
    assert {p.name for p in DASHBOARDS_DIR.glob("*.json")} == {"overview.json"} | {
        f"{service}.json" for service in module.SERVICES
    }


def test_dashboards_are_well_formed():
    uids = [board["uid"] for board in dashboards().values()]
    assert len(uids) == len(set(uids)), uids
    for name, board in dashboards().items():
        variables = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource", "namespace"} <= variables, name
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name} / {panel['title']}"
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel.get("description"), f"{name} / {panel['title']}: no description"
            assert panel["targets"], f"{name} / {panel['title']}: no query"
            for target in panel["targets"]:
                used = set(re.findall(r"\$\{?(\w+)\}?", target["expr"]))
                unknown = used - variables - set(GRAFANA_GLOBALS)
                assert not unknown, f"{name} / {panel['title']}: undefined variables {unknown}"
                legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]))
                known = grouping_labels(target["expr"])
                known |= {label for _, labels in matcher_labels(target["expr"]) for label in labels}
                assert legend_labels <= known, (
                    f"{name} / {panel['title']}: legend uses {legend_labels - known}, "
                    "which the query does not keep"
                )


def test_every_dashboard_query_parses(tmp_path):
    binary = promtool()
    queries = panel_queries()
    rule_file = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": with_variables_filled(t["expr"])}
                    for i, (_, _, t) in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump(rule_file))
    result = subprocess.run(
        [binary, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout


# ---------------------------------------------------------------- alerts


def test_alert_names_are_unique_and_follow_the_convention():
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), names
    assert all(re.fullmatch(r"Orderguard[A-Z][A-Za-z0-9]+", n) for n in names), names


def test_recording_rules_follow_level_metric_operation():
    for name in recorded_names():
        assert re.fullmatch(r"[a-z_]+:orderguard_[a-z_]+:[a-z0-9_]+", name), name


def test_every_alert_has_severity_summary_description_and_its_runbook():
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name
        assert annotations.get("runbook_url") == RUNBOOK_URL.format(alert=name), name
        runbook = RUNBOOKS / f"{name}.md"
        assert runbook.is_file(), f"{name}: {runbook.relative_to(ROOT)} is missing"
        text = runbook.read_text()
        assert text.startswith(f"# {name}\n"), f"{runbook.name}: title must be the alert name"
        missing = [section for section in RUNBOOK_SECTIONS if section not in text]
        assert not missing, f"{runbook.name} lacks {missing}"


def test_every_runbook_belongs_to_an_alert():
    names = {rule["alert"] for rule in alerts()}
    orphans = {p.stem for p in RUNBOOKS.glob("*.md")} - names - {"README"}
    assert not orphans, f"runbooks of no alert: {sorted(orphans)}"


def test_every_alert_has_a_firing_and_a_non_firing_unit_test():
    tests = yaml.safe_load(ALERTS_TEST_FILE.read_text())
    assert tests["rule_files"] == [ALERTS_FILE.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
            for expected in case.get("exp_alerts") or []:
                # labels and annotations are both spelled out
                assert expected.get("exp_labels", {}).get("severity"), case["alertname"]
                assert set(expected.get("exp_annotations", {})) == {
                    "summary",
                    "description",
                    "runbook_url",
                }, case["alertname"]
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), f"no firing case: {sorted(names - firing)}"
    assert names - quiet == set(), f"no non-firing case: {sorted(names - quiet)}"
    assert firing | quiet <= names, f"tests of unknown alerts: {sorted((firing | quiet) - names)}"


def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    binary = promtool()
    check = subprocess.run(
        [binary, "check", "rules", str(ALERTS_FILE)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        [binary, "test", "rules", str(ALERTS_TEST_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


# ---------------------------------------------------------------- Kubernetes


def test_prometheus_rule_holds_exactly_alerts_yaml():
    rule = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load(ALERTS_FILE.read_text())


def test_dashboard_config_maps_carry_every_dashboard_for_the_grafana_sidecar():
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert "prometheusrule.yaml" in kustomization["resources"]
    options = kustomization["generatorOptions"]
    assert options["labels"] == {"grafana_dashboard": "1"}
    assert options["disableNameSuffixHash"] is True
    listed = [f for generator in kustomization["configMapGenerator"] for f in generator["files"]]
    assert sorted(listed) == sorted(f"dashboards/{p.name}" for p in DASHBOARDS_DIR.glob("*.json"))
    for name in listed:
        assert (COMPONENT / name).read_bytes() == (MONITORING / name).read_bytes(), name


def test_kubernetes_monitors_name_jobs_as_the_rules_expect():
    service_monitor = yaml.safe_load((COMPONENT / "servicemonitor-api.yaml").read_text())
    pod_monitor = yaml.safe_load((COMPONENT / "podmonitor-worker.yaml").read_text())
    for endpoints, source, role in (
        (service_monitor["spec"]["endpoints"], "__meta_kubernetes_service_label_", "api"),
        (pod_monitor["spec"]["podMetricsEndpoints"], "__meta_kubernetes_pod_label_", "worker"),
    ):
        for endpoint in endpoints:
            (job,) = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
            assert job["sourceLabels"] == [f"{source}app_kubernetes_io_name"]
            assert job["replacement"] == f"orderguard-${{1}}-{role}"
    # The API metrics' own `service` label must win over the operator's target label.
    assert all(e.get("honorLabels") is True for e in service_monitor["spec"]["endpoints"])


# ---------------------------------------------------------------- docker compose


def compose_mounts(service: Obj) -> dict[str, str]:
    """container path -> host path (relative to the repository) of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            mounts[target] = source[2:]
    return mounts


def test_compose_prometheus_scrapes_every_orderguard_process_under_the_rules_job_names():
    services = compose()["services"]
    prometheus = services["prometheus"]
    mounts = compose_mounts(prometheus)
    config = yaml.safe_load((ROOT / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    jobs = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    expected = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command[:1] in (["serve"], ["worker"]):
            role = "api" if command[0] == "serve" else "worker"
            expected[f"orderguard-{command[1]}-{role}"] = [f"{name}:8000"]
    assert len(expected) == 10
    assert {job: jobs.get(job) for job in expected} == expected
    # alerts.yaml is what Prometheus loads.
    loaded = [mounts.get(path) for path in config["rule_files"]]
    assert loaded == ["deploy/monitoring/alerts.yaml"]


def test_compose_prometheus_config_is_valid(tmp_path):
    binary = promtool()
    config = (MONITORING / "prometheus.yml").read_text()
    mounts = compose_mounts(compose()["services"]["prometheus"])
    for container_path, host_path in mounts.items():
        config = config.replace(container_path, str(ROOT / host_path))
    path = tmp_path / "prometheus.yml"
    path.write_text(config)
    result = subprocess.run(
        [binary, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_grafana_provisions_the_datasource_and_the_dashboards():
    services = compose()["services"]
    grafana, prometheus = services["grafana"], services["prometheus"]
    for service in (grafana, prometheus):
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), image
        assert service["healthcheck"]["test"], image
        assert service["cap_drop"] == ["ALL"], image
        assert any(p.startswith("127.0.0.1:") for p in service["ports"]), image
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${") and ":?" in password, "the admin password comes from .env"
    mounts = compose_mounts(grafana)
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "orderguard.yaml").read_text())[
        "providers"
    ]
    assert mounts[provider["options"]["path"]] == "deploy/monitoring/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/overview.json"
