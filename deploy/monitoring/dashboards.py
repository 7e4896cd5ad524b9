"""Grafana dashboards of orderguard, as code, and the copies Kubernetes needs.

    python deploy/monitoring/dashboards.py           # (re)write every generated file
    python deploy/monitoring/dashboards.py --check   # exit 1 if a committed file is stale

Generates:
  deploy/monitoring/dashboards/<name>.json                 overview + one per service (compose)
  deploy/k8s/components/monitoring/dashboards/<name>.json  the same bytes: kustomize reads no
                                                           file outside the component directory
  deploy/k8s/components/monitoring/prometheusrule.yaml     alerts.yaml wrapped in a PrometheusRule

Standard library only (deploy/check.sh runs it in its tools venv). Queries use the recording
rules of alerts.yaml where those exist; tests/deploy/test_monitoring.py checks that every query
parses (promtool) and names only metrics the code exports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ALERTS = HERE / "alerts.yaml"
DASHBOARDS = HERE / "dashboards"
COMPONENT = ROOT / "deploy" / "k8s" / "components" / "monitoring"

# Kept equal to orderguard.shared.settings (SERVICES, SCHEMAS) by tests/deploy/test_monitoring.py.
SERVICES = ("order", "inventory", "logistics", "aftersales", "notifier")
SCHEMAS = {
    "order": "orders",
    "inventory": "inventory",
    "logistics": "logistics",
    "aftersales": "aftersales",
    "notifier": "notifier",
}

Json = dict[str, Any]

DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
ORDERGUARD_JOBS = 'job=~"orderguard-.+"'
API_ROUTES = 'route!~"/healthz|/readyz|/metrics"'  # the same exclusion as the recording rules
OUR_GROUPS = 'consumergroup=~"(order|inventory|logistics|aftersales|notifier)\\\\..+"'
GRID_WIDTH = 24


# ---- panels ---------------------------------------------------------------------------------


def _targets(queries: list[tuple[str, str]]) -> list[Json]:
    return [
        {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
        for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(
    title: str,
    description: str,
    queries: list[tuple[str, str]],
    unit: str = "short",
    width: int = 12,
    stacked: bool = False,
) -> Json:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "gridPos": {"h": 8, "w": width},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 25 if stacked else 10,
                    "showPoints": "never",
                    "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str,
    description: str,
    expr: str,
    unit: str = "short",
    red_from: float | None = None,
    legend: str = "",
    width: int = 6,
) -> Json:
    steps: list[Json] = [{"color": "green", "value": None}]
    if red_from is not None:
        steps.append({"color": "red", "value": red_from})
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets([(expr, legend)]),
        "gridPos": {"h": 4, "w": width},
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "value_and_name" if legend else "value",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    }


def layout(sections: list[tuple[str, list[Json]]]) -> list[Json]:
    """Rows of panels, left to right, wrapping at the grid width; ids in reading order."""
    panels: list[Json] = []
    y = 0
    for title, section in sections:
        panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = row_height = 0
        for panel in section:
            grid = panel["gridPos"]
            if x + grid["w"] > GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panel["gridPos"] = {"h": grid["h"], "w": grid["w"], "x": x, "y": y}
            x += grid["w"]
            row_height = max(row_height, grid["h"])
            panels.append(panel)
        y += row_height
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return panels


def dashboard(
    uid: str, title: str, description: str, sections: list[tuple[str, list[Json]]]
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["orderguard"],
        "editable": False,
        "graphTooltip": 1,  # shared crosshair
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "type": "dashboards",
                "tags": ["orderguard"],
                "asDropdown": True,
                "title": "orderguard",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    # Kubernetes namespace; under compose there is none and All matches that too.
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": f"label_values(up{{{ORDERGUARD_JOBS}}}, namespace)",
                    "definition": f"label_values(up{{{ORDERGUARD_JOBS}}}, namespace)",
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": False,
                    "refresh": 2,
                    "sort": 1,
                    "current": {},
                    "hide": 0,
                },
            ]
        },
        "panels": layout(sections),
    }


# ---- sections shared by the overview and the service dashboards -----------------------------


def histogram_p99(metric: str, selector: str, by: str) -> str:
    return (
        f"histogram_quantile(0.99, sum by ({by}, le) "
        f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))"
    )


def anomaly_panels(jobs: str) -> list[Json]:
    selector = f"{NS}{jobs}"
    return [
        timeseries(
            "Anomalies by rule",
            "Anomalies raised per second (orderguard_anomalies_detected_total).",
            [
                (
                    f"sum by (rule) (rate(orderguard_anomalies_detected_total{{{selector}}}[$__rate_interval]))",
                    "{{rule}}",
                )
            ],
            unit="ops",
            width=8,
            stacked=True,
        ),
        timeseries(
            "Anomalies by severity",
            "Anomalies raised per second, by severity P1 (worst) to P4.",
            [
                (
                    f"sum by (severity) (rate(orderguard_anomalies_detected_total{{{selector}}}[$__rate_interval]))",
                    "{{severity}}",
                )
            ],
            unit="ops",
            width=8,
            stacked=True,
        ),
        timeseries(
            "Detection latency p99 by rule",
            "From the time of the event that made a rule fire to the anomaly being written. "
            "The top bucket is 10s: the curve cannot show more. Alert: OrderguardDetectionLatencyP99High.",
            [(histogram_p99("orderguard_detection_latency_seconds", selector, "rule"), "{{rule}}")],
            unit="s",
            width=8,
        ),
    ]


def routing_panels(jobs: str) -> list[Json]:
    selector = f"{NS}{jobs}"
    return [
        timeseries(
            "Anomalies routed by queue",
            "Routed anomalies per second by team queue and outcome (routed, duplicate, unrouted = "
            "matched no route and went to the root queue). Alert: OrderguardAnomaliesUnrouted.",
            [
                (
                    f"sum by (queue, outcome) (rate(orderguard_anomalies_routed_total{{{selector}}}[$__rate_interval]))",
                    "{{queue}} {{outcome}}",
                )
            ],
            unit="ops",
            stacked=True,
        ),
        timeseries(
            "Notifications by channel",
            "Notifications per second by channel and outcome (orderguard_notifications_total): "
            "in_app recorded; outgoing deliveries planned, deferred (quiet hours, rate limit), "
            "delivered, retry, failed (dead-lettered on notifications.dead), resend.",
            [
                (
                    f"sum by (channel, outcome) (rate(orderguard_notifications_total{{{selector}}}[$__rate_interval]))",
                    "{{channel}} {{outcome}}",
                )
            ],
            unit="ops",
            stacked=True,
        ),
        timeseries(
            "Delivery attempt duration p99 by channel",
            "One attempt on an outgoing channel (webhook, email, SMS, IM robots), connect to "
            "answer; bounded by ORDERGUARD_NOTIFIER__CHANNELS__TIMEOUT_S.",
            [
                (
                    histogram_p99(
                        "orderguard_notification_attempt_duration_seconds", selector, "channel"
                    ),
                    "{{channel}}",
                )
            ],
            unit="s",
        ),
    ]


def work_item_panels(jobs: str) -> list[Json]:
    selector = f"{NS}{jobs}"
    return [
        timeseries(
            "Work items open by team and severity",
            "Work items open or claimed, recomputed from the notifier's table by every notifier "
            "worker (max across replicas), by team and severity (orderguard_work_items_open).",
            [
                (
                    f"max by (team, severity) (orderguard_work_items_open{{{selector}}})",
                    "{{team}} {{severity}}",
                )
            ],
            width=8,
            stacked=True,
        ),
        timeseries(
            "Work item changes by team",
            "Work items created, claimed, resolved, dismissed, reopened, escalated and reminded "
            "per second (orderguard_work_item_transitions_total).",
            [
                (
                    f"sum by (team, transition) (rate(orderguard_work_item_transitions_total{{{selector}}}[$__rate_interval]))",
                    "{{team}} {{transition}}",
                )
            ],
            unit="ops",
            width=8,
            stacked=True,
        ),
        timeseries(
            "Escalations per hour by team",
            "Work items that missed their claim or resolve time in the last hour. "
            "Alert: OrderguardWorkItemEscalationsPilingUp.",
            [
                (
                    f'sum by (team) (increase(orderguard_work_item_transitions_total{{{selector}, transition="escalated"}}[1h]))',
                    "{{team}}",
                )
            ],
            width=8,
        ),
    ]


def outbox_panels(jobs: str, schema: str = "") -> list[Json]:
    selector = f"{NS}{jobs}"
    schema_selector = f'{NS}, schema="{schema}"' if schema else NS
    return [
        timeseries(
            "Outbox backlog",
            "Unsent outbox rows the relay leader saw on its last pass, capped at one batch "
            "(ORDERGUARD_OUTBOX_BATCH_MAX). Alert: OrderguardOutboxBacklogHigh.",
            [
                (
                    f"max by (schema) (orderguard_outbox_backlog_messages{{{schema_selector}}})",
                    "{{schema}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "Outbox relay latency p99",
            "From outbox write to acknowledged publish, per process (top bucket 10s). "
            "Alert: OrderguardOutboxRelayLatencyHigh.",
            [
                (
                    histogram_p99("orderguard_outbox_relay_latency_seconds", selector, "job"),
                    "{{job}}",
                )
            ],
            unit="s",
            width=8,
        ),
        timeseries(
            "Outbox published by topic",
            "Messages the relays published to Kafka per second (dead letters included).",
            [
                (
                    f"sum by (topic) (rate(orderguard_outbox_published_total{{{selector}}}[$__rate_interval]))",
                    "{{topic}}",
                )
            ],
            unit="ops",
            width=8,
            stacked=True,
        ),
    ]


def consumer_panels(groups: str, jobs: str) -> list[Json]:
    recorded = f"{NS}{groups}"
    raw = f"{NS}{jobs}{groups}"
    return [
        timeseries(
            "Records applied by group",
            "Records applied per second (recording rule group_topic_outcome:orderguard_events_consumed:rate5m).",
            [
                (
                    f'sum by (group) (group_topic_outcome:orderguard_events_consumed:rate5m{{{recorded}, outcome="applied"}})',
                    "{{group}}",
                )
            ],
            unit="ops",
            width=8,
            stacked=True,
        ),
        timeseries(
            "Records by outcome",
            "Records taken per second by outcome: applied, duplicate (already applied), skipped "
            "(type not consumed), retry (batch attempts that failed), dlq.",
            [
                (
                    f"sum by (outcome) (group_topic_outcome:orderguard_events_consumed:rate5m{{{recorded}}})",
                    "{{outcome}}",
                )
            ],
            unit="ops",
            width=8,
            stacked=True,
        ),
        timeseries(
            "Batch duration p99 by group",
            "Time to apply one batch in one database transaction.",
            [
                (
                    histogram_p99("orderguard_engine_batch_duration_seconds", raw, "group"),
                    "{{group}}",
                )
            ],
            unit="s",
            width=8,
        ),
        timeseries(
            "Consumer lag (records)",
            "Records between the consumer position and the high watermark, per group and topic, "
            "as of each group's last batch. Alerts: OrderguardConsumerLagHigh, OrderguardConsumerStalled.",
            [
                (
                    f"sum by (group, topic) (group_topic:orderguard_consumer_lag_records:sum{{{recorded}}})",
                    "{{group}} {{topic}}",
                )
            ],
            width=8,
        ),
        timeseries(
            "Consumer time lag",
            "Age of the last record applied, worst partition per group and topic. "
            "Alert: OrderguardConsumerTimeLagHigh.",
            [
                (
                    f"max by (group, topic) (group_topic:orderguard_consumer_time_lag_seconds:max{{{recorded}}})",
                    "{{group}} {{topic}}",
                )
            ],
            unit="s",
            width=8,
        ),
        timeseries(
            "Records per batch (mean)",
            "Mean records per engine batch: near ORDERGUARD_CONSUMER_BATCH_MAX means the group is behind.",
            [
                (
                    f"sum by (group) (rate(orderguard_engine_batch_records_sum{{{raw}}}[$__rate_interval]))"
                    f" / sum by (group) (rate(orderguard_engine_batch_records_count{{{raw}}}[$__rate_interval]))",
                    "{{group}}",
                )
            ],
            width=8,
        ),
    ]


def error_panels(groups: str, jobs: str, service: str = "") -> list[Json]:
    raw = f"{NS}{jobs}{groups}"
    http = f'{NS}, service="{service}"' if service else NS
    return [
        timeseries(
            "Dead letters by group and reason",
            "Records sent to <topic>.dlq.<group> per interval, by reason (malformed, invalid, "
            "unknown_type, failed). Re-drive: orderguard dlq redrive <topic>.dlq.<group>. "
            "Alerts: OrderguardDeadLettersGrowing, OrderguardDeadLetterRatioHigh.",
            [
                (
                    f"sum by (group, reason) (increase(orderguard_dead_letters_total{{{raw}}}[$__rate_interval]))",
                    "{{group}} {{reason}}",
                )
            ],
            width=8,
            stacked=True,
        ),
        timeseries(
            "Batch retries and rebalances",
            "Records in batches that failed and were retried, and partition assignments, per interval.",
            [
                (
                    f'sum by (group) (increase(orderguard_events_consumed_total{{{raw}, outcome="retry"}}[$__rate_interval]))',
                    "retried {{group}}",
                ),
                (
                    f"sum by (group) (increase(orderguard_consumer_rebalances_total{{{raw}}}[$__rate_interval]))",
                    "rebalances {{group}}",
                ),
            ],
            width=8,
        ),
        timeseries(
            "HTTP 5xx",
            "5xx answers per second (ops endpoints excluded). Alert: OrderguardHTTPErrorRatioHigh.",
            [
                (
                    f"sum by (service) (service:orderguard_http_request_errors:rate5m{{{http}}})",
                    "{{service}}",
                )
            ],
            unit="reqps",
            width=8,
        ),
    ]


# ---- dashboards -----------------------------------------------------------------------------


def overview() -> Json:
    up = f"up{{{ORDERGUARD_JOBS}, {NS}}}"
    health = [
        stat(
            "Processes up",
            "orderguard processes Prometheus scrapes successfully.",
            f"sum({up})",
        ),
        stat(
            "Processes down",
            "Scrape targets that do not answer. Alerts: OrderguardProcessDown, OrderguardJobDown.",
            f"count({up} == 0) or vector(0)",
            red_from=1,
        ),
        stat(
            "Firing alerts",
            "orderguard alerts firing now (Prometheus' ALERTS series).",
            f'count(ALERTS{{alertname=~"Orderguard.+", alertstate="firing", {NS}}}) or vector(0)',
            red_from=1,
        ),
        stat(
            "Dead letters in range",
            "Records dead-lettered during the time range shown.",
            f"round(sum(increase(orderguard_dead_letters_total{{{NS}}}[$__range]))) or vector(0)",
            red_from=1,
        ),
    ]
    http = [
        timeseries(
            "Requests by service",
            "API requests per second, ops endpoints excluded (service:orderguard_http_requests:rate5m).",
            [
                (
                    f"sum by (service) (service:orderguard_http_requests:rate5m{{{NS}}})",
                    "{{service}}",
                )
            ],
            unit="reqps",
            width=8,
            stacked=True,
        ),
        timeseries(
            "5xx ratio by service",
            "Share of API requests answered with 5xx over 5 minutes. Alert at 5%: OrderguardHTTPErrorRatioHigh.",
            [
                (
                    f"max by (service) (service:orderguard_http_request_errors:ratio_rate5m{{{NS}}})",
                    "{{service}}",
                )
            ],
            unit="percentunit",
            width=8,
        ),
        timeseries(
            "Latency p99 by service",
            "99th percentile of API request duration over 5 minutes. Alert at 1s: OrderguardHTTPLatencyP99High.",
            [
                (
                    f"max by (service) (service:orderguard_http_request_duration_seconds:p99_rate5m{{{NS}}})",
                    "{{service}}",
                )
            ],
            unit="s",
            width=8,
        ),
    ]
    broker_lag = timeseries(
        "Kafka consumer group lag (kafka_exporter)",
        "The lag KEDA scales the workers on, from the broker's committed offsets "
        "(kafka_exporter or Strimzi). Alert: OrderguardKafkaConsumerGroupStalled.",
        [
            (
                f"sum by (consumergroup) (kafka_consumergroup_lag{{{OUR_GROUPS}}})",
                "{{consumergroup}}",
            )
        ],
        width=24,
    )
    return dashboard(
        "orderguard-overview",
        "orderguard / overview",
        "Every orderguard service at once: traffic, stream processing, anomalies, routing, "
        "notifications, errors, dead letters and the outbox. Generated by deploy/monitoring/dashboards.py.",
        [
            ("Health", health),
            ("HTTP APIs", http),
            ("Stream processing", [*consumer_panels("", ""), broker_lag]),
            ("Anomalies", anomaly_panels("")),
            ("Routing and notifications", routing_panels("")),
            ("Work items", work_item_panels("")),
            ("Errors and dead letters", error_panels("", "")),
            ("Outbox", outbox_panels("")),
        ],
    )


def service_dashboard(service: str) -> Json:
    jobs = f', job=~"orderguard-{service}-(api|worker)"'
    groups = f', group=~"{service}\\\\..+"'  # consumer groups are <service>.<name>
    selector = f"{NS}{jobs}"
    http = f'{NS}, service="{service}"'
    processes = [
        timeseries(
            "Up",
            "1 when Prometheus scrapes the process, 0 when it does not answer.",
            [(f"max by (job, instance) (up{{{selector}}})", "{{job}} {{instance}}")],
            width=6,
        ),
        timeseries(
            "CPU",
            "CPU seconds per second used by each process (prometheus_client process collector).",
            [
                (
                    f"sum by (job, instance) (rate(process_cpu_seconds_total{{{selector}}}[$__rate_interval]))",
                    "{{job}} {{instance}}",
                )
            ],
            unit="percentunit",
            width=6,
        ),
        timeseries(
            "Memory (RSS)",
            "Resident memory of each process, to compare with its container's memory limit.",
            [
                (
                    f"max by (job, instance) (process_resident_memory_bytes{{{selector}}})",
                    "{{job}} {{instance}}",
                )
            ],
            unit="bytes",
            width=6,
        ),
        timeseries(
            "Restarts (Kubernetes)",
            "Container restarts per hour from kube-state-metrics. Alert: OrderguardPodRestarting.",
            [
                (
                    "sum by (pod) (increase(kube_pod_container_status_restarts_total"
                    f'{{{NS}, container="orderguard", pod=~"{service}-(api|worker)-.+"}}[1h]))',
                    "{{pod}}",
                )
            ],
            width=6,
        ),
    ]
    api = [
        timeseries(
            "Requests by route and status",
            "Requests per second by route template and status code, ops endpoints excluded.",
            [
                (
                    f"sum by (route, status) (rate(orderguard_http_requests_total{{{http}, {API_ROUTES}}}[$__rate_interval]))",
                    "{{status}} {{route}}",
                )
            ],
            unit="reqps",
            width=8,
            stacked=True,
        ),
        timeseries(
            "Latency p50 / p90 / p99",
            "API request duration over 5 minutes, ops endpoints excluded "
            "(service_le:orderguard_http_request_duration_seconds_bucket:rate5m).",
            [
                (
                    f"histogram_quantile({q}, sum by (le) "
                    f"(service_le:orderguard_http_request_duration_seconds_bucket:rate5m{{{http}}}))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.9, 0.99)
            ],
            unit="s",
            width=8,
        ),
        timeseries(
            "Latency p99 by route",
            "99th percentile of request duration per route template.",
            [
                (
                    histogram_p99(
                        "orderguard_http_request_duration_seconds", f"{http}, {API_ROUTES}", "route"
                    ),
                    "{{route}}",
                )
            ],
            unit="s",
            width=8,
        ),
        timeseries(
            "5xx ratio",
            "Share of API requests answered with 5xx over 5 minutes. Alert at 5%: OrderguardHTTPErrorRatioHigh.",
            [
                (
                    f"max by (service) (service:orderguard_http_request_errors:ratio_rate5m{{{http}}})",
                    "{{service}}",
                )
            ],
            unit="percentunit",
            width=12,
        ),
        stat(
            "Version",
            "orderguard version and role of the running processes (orderguard_build_info).",
            f"count by (version, role) (orderguard_build_info{{{selector}}})",
            legend="{{version}} {{role}}",
            width=12,
        ),
    ]
    sections = [
        ("Processes", processes),
        ("HTTP API", api),
        ("Stream processing", consumer_panels(groups, jobs)),
        ("Errors and dead letters", error_panels(groups, jobs, service)),
        ("Anomalies", anomaly_panels(jobs)),
    ]
    if service == "notifier":
        sections.append(("Routing and notifications", routing_panels(jobs)))
        sections.append(("Work items", work_item_panels(jobs)))
    if service == "logistics":
        sections.append(("Carrier webhook", carrier_webhook_panels(jobs)))
    sections.append(("Outbox", outbox_panels(jobs, SCHEMAS[service])))
    return dashboard(
        f"orderguard-{service}",
        f"orderguard / {service}",
        f"The {service} service: its API (orderguard serve {service}) and its worker "
        f"(orderguard worker {service}). Generated by deploy/monitoring/dashboards.py.",
        sections,
    )


def carrier_webhook_panels(jobs: str) -> list[Json]:
    selector = f"{NS}{jobs}"
    return [
        timeseries(
            "Carrier webhook scans by outcome",
            "Scans carriers POSTed per second: accepted, unauthenticated (unsigned, forged, stale,"
            " unknown carrier), replayed, invalid (orderguard_carrier_webhook_scans_total).",
            [
                (
                    f"sum by (outcome) (rate(orderguard_carrier_webhook_scans_total{{{selector}}}[$__rate_interval]))",
                    "{{outcome}}",
                )
            ],
            unit="ops",
            width=24,
            stacked=True,
        ),
    ]


def dashboards() -> dict[str, Json]:
    return {"overview": overview()} | {s: service_dashboard(s) for s in SERVICES}


# ---- generated files ------------------------------------------------------------------------


def prometheus_rule(alerts: str) -> str:
    """alerts.yaml under a PrometheusRule's spec, text-wise so that its comments stay."""
    lines = alerts.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = "\n".join(f"  {line}" if line else "" for line in lines[start:])
    return (
        "# Generated by deploy/monitoring/dashboards.py from deploy/monitoring/alerts.yaml: edit\n"
        "# that file and regenerate. tests/deploy/test_monitoring.py checks they are equal.\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: orderguard\n"
        "  labels:\n"
        "    app.kubernetes.io/component: monitoring\n"
        "spec:\n"
        f"{body}\n"
    )


def generated() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for name, board in dashboards().items():
        text = json.dumps(board, indent=2, sort_keys=True) + "\n"
        files[DASHBOARDS / f"{name}.json"] = text
        files[COMPONENT / "dashboards" / f"{name}.json"] = text
    files[COMPONENT / "prometheusrule.yaml"] = prometheus_rule(ALERTS.read_text())
    return files


def leftovers(files: dict[Path, str]) -> list[Path]:
    """Dashboard JSON files no longer generated (a renamed or removed dashboard)."""
    found = set(DASHBOARDS.glob("*.json")) | set((COMPONENT / "dashboards").glob("*.json"))
    return sorted(found - set(files))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail if a committed file differs from what is generated",
    )
    args = parser.parse_args(argv)
    files = generated()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    extra = leftovers(files)
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}")
        for path in extra:
            print(f"not generated any more: {path.relative_to(ROOT)}")
        if stale or extra:
            print("run: python deploy/monitoring/dashboards.py", file=sys.stderr)
            return 1
        print(f"monitoring: {len(files)} generated files up to date")
        return 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {path.relative_to(ROOT)}")
    for path in extra:
        path.unlink()
        print(f"removed {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
