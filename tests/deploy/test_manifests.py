"""Offline checks of the deployment artifacts that the linters miss.

kustomize, kubernetes-validate, checkov and the compose JSON schema (deploy/check.sh) check
each object on its own. These tests check how the objects fit together — selectors that
select something, autoscalers and monitors that point at real workloads, patches whose
target exists, compose dependencies that name real services — and the properties ops.md
asks of every container. PyYAML and the standard library only; the Kubernetes part renders
with `kubectl kustomize` and is skipped when kubectl is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS_EXAMPLE = K8S / "secrets.example.env"
COMPOSE_ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"

SERVICES = ("order", "inventory", "logistics", "aftersales", "notifier")
ROLES = {"api": "serve", "worker": "worker"}
RENDERS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
TOPICS = (
    "orders.events",
    "inventory.events",
    "logistics.events",
    "aftersales.events",
    "payments.events",
    "notifications.requests",
    "anomalies.detected",
    "queues.warehouse",
    "queues.logistics",
    "queues.finance",
    "queues.customer_service",
    "queues.risk",
    "carriers.scans",
    "notifications.dead",
    "work_items.events",
)
PARTITIONS = 6
IMAGE = re.compile(r"^ghcr\.io/orderguard/orderguard:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
)
SECRET_SETTINGS = (
    "ORDERGUARD_API_KEYS",
    "ORDERGUARD_DATABASE_URL",
    "ORDERGUARD_LOGISTICS__CARRIER_SECRETS",
    "ORDERGUARD_NOTIFIER__CHANNELS",
)
SECRET_NAME = "orderguard-secrets"
UID = 10001
MIN_GRACE_SECONDS = 30

Obj = dict[str, Any]


# ---------------------------------------------------------------- helpers


def kind_of(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def name_of(obj: Obj) -> str:
    return obj["metadata"]["name"]


def pod_spec(obj: Obj) -> Obj:
    return obj["spec"]["template"]["spec"]


def pod_labels(obj: Obj) -> dict[str, str]:
    return obj["spec"]["template"]["metadata"].get("labels", {})


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels + matchExpressions)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def label_selector_string_matches(selector: str, labels: dict[str, str]) -> bool:
    """The equality-based selector strings kustomize accepts in patch targets."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def seconds(duration: str) -> float:
    """Compose durations such as 30s, 1m30s, 500ms."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def kustomization(directory: Path) -> Obj:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def kustomize_dirs(directory: Path) -> Iterator[Path]:
    """The kustomization directory and every directory it pulls in (resources, components)."""
    yield directory
    k = kustomization(directory)
    for entry in k.get("resources", []) + k.get("components", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            yield from kustomize_dirs(path)


# ---------------------------------------------------------------- fixtures


@cache
def render(name: str) -> list[Obj]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(RENDERS[name])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {RENDERS[name]} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(params=sorted(RENDERS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not found: it embeds kustomize, needed to render deploy/k8s")
    return request.param, render(request.param)


@pytest.fixture
def prod() -> list[Obj]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not found: it embeds kustomize, needed to render deploy/k8s")
    return render("prod")


@pytest.fixture(scope="module")
def compose() -> Obj:
    return yaml.safe_load(COMPOSE_FILE.read_text())


# ---------------------------------------------------------------- Kubernetes: what exists


def test_every_service_has_an_api_and_a_worker_with_the_right_command(rendered):
    _, objs = rendered
    deployments = {name_of(d): d for d in kind_of(objs, "Deployment")}
    expected = {f"{s}-{role}" for s in SERVICES for role in ROLES}
    assert expected <= set(deployments), (
        f"missing Deployments: {sorted(expected - set(deployments))}"
    )
    for service in SERVICES:
        for role, command in ROLES.items():
            deployment = deployments[f"{service}-{role}"]
            (container,) = pod_spec(deployment)["containers"]
            assert container.get("args") == [command, service], name_of(deployment)
            labels = pod_labels(deployment)
            assert labels["app.kubernetes.io/name"] == service
            assert labels["app.kubernetes.io/component"] == role


def test_every_object_carries_the_recommended_labels(rendered):
    _, objs = rendered
    for obj in objs:
        if obj["kind"] in ("Namespace", "ConfigMap", "KafkaTopic"):
            continue
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "orderguard", (
            f"{obj['kind']}/{name_of(obj)}"
        )
    for workload in workloads(objs):
        for where, labels in (
            ("metadata", workload["metadata"].get("labels", {})),
            ("pod template", pod_labels(workload)),
        ):
            missing = [label for label in RECOMMENDED_LABELS if not labels.get(label)]
            assert not missing, f"{workload['kind']}/{name_of(workload)} {where} lacks {missing}"


# ---------------------------------------------------------------- Kubernetes: hardening


def test_every_container_is_hardened(rendered):
    _, objs = rendered
    assert workloads(objs)
    for workload in workloads(objs):
        where = f"{workload['kind']}/{name_of(workload)}"
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, (
            f"{where}: service account token mounted"
        )
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(workload):
            cwhere = f"{where} container {container['name']}"
            sc = container.get("securityContext", {})

            def effective(key: str, sc: Obj = sc, pod_sc: Obj = pod_sc) -> Any:
                return sc.get(key, pod_sc.get(key))

            assert effective("runAsNonRoot") is True, f"{cwhere}: runAsNonRoot"
            assert effective("runAsUser") == UID, f"{cwhere}: runAsUser must be {UID}"
            assert sc.get("allowPrivilegeEscalation") is False, (
                f"{cwhere}: allowPrivilegeEscalation"
            )
            assert sc.get("readOnlyRootFilesystem") is True, f"{cwhere}: readOnlyRootFilesystem"
            assert sc.get("privileged") in (None, False), f"{cwhere}: privileged"
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), (
                f"{cwhere}: capabilities.drop ALL"
            )
            assert not sc.get("capabilities", {}).get("add"), f"{cwhere}: adds capabilities"
            assert (effective("seccompProfile") or {}).get("type") == "RuntimeDefault", (
                f"{cwhere}: seccomp"
            )
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp, f"{cwhere}: no writable /tmp"
            assert "emptyDir" in volumes.get(tmp[0]["name"], {}), (
                f"{cwhere}: /tmp is not an emptyDir"
            )
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resources.get(bound, {}).get(resource), (
                        f"{cwhere}: no {bound}.{resource}"
                    )
            image = container.get("image", "")
            assert IMAGE.match(image), (
                f"{cwhere}: image {image!r} is not a pinned orderguard release"
            )


def test_every_long_running_container_has_probes_and_a_grace_period(rendered):
    _, objs = rendered
    for deployment in kind_of(objs, "Deployment"):
        where = f"Deployment/{name_of(deployment)}"
        spec = pod_spec(deployment)
        assert spec.get("terminationGracePeriodSeconds", 30) >= MIN_GRACE_SECONDS, where
        for container in spec["containers"]:
            ports = {p.get("name") for p in container.get("ports", [])}
            readiness = container.get("readinessProbe", {}).get("httpGet", {})
            liveness = container.get("livenessProbe", {}).get("httpGet", {})
            assert readiness.get("path") == "/readyz", f"{where}: readiness must be /readyz"
            assert liveness.get("path") == "/healthz", (
                f"{where}: liveness must be /healthz (no dependencies)"
            )
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None:
                    assert port in ports or port == 8000, (
                        f"{where}: {probe} port {port!r} is not declared"
                    )
            if pod_labels(deployment).get("app.kubernetes.io/component") == "worker":
                assert "startupProbe" in container, (
                    f"{where}: stream processors need a startup probe"
                )
                assert "metrics" in ports, f"{where}: worker needs a container port named metrics"


def test_api_containers_listen_on_named_http_port_8000(rendered):
    _, objs = rendered
    for deployment in kind_of(objs, "Deployment"):
        if pod_labels(deployment).get("app.kubernetes.io/component") != "api":
            continue
        (container,) = pod_spec(deployment)["containers"]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert ports.get("http") == 8000, name_of(deployment)


def test_service_accounts_do_not_mount_tokens_and_exist_for_every_pod(rendered):
    _, objs = rendered
    accounts = {name_of(sa): sa for sa in kind_of(objs, "ServiceAccount")}
    for sa in accounts.values():
        assert sa.get("automountServiceAccountToken") is False, f"ServiceAccount/{name_of(sa)}"
    for workload in workloads(objs):
        account = pod_spec(workload).get("serviceAccountName")
        assert account in accounts, (
            f"{workload['kind']}/{name_of(workload)} uses missing ServiceAccount {account!r}"
        )


# ---------------------------------------------------------------- Kubernetes: references


def test_every_service_selects_a_deployment_and_its_named_ports(rendered):
    _, objs = rendered
    deployments = kind_of(objs, "Deployment")
    services = kind_of(objs, "Service")
    assert len(services) == len(SERVICES)
    for service in services:
        selector = service["spec"].get("selector")
        assert selector, f"Service/{name_of(service)} has no selector"
        selected = [
            d
            for d in deployments
            if d["metadata"].get("namespace") == service["metadata"].get("namespace")
            and selector_matches({"matchLabels": selector}, pod_labels(d))
        ]
        assert len(selected) == 1, (
            f"Service/{name_of(service)} selects {[name_of(d) for d in selected]}"
        )
        container_ports = {
            p.get("name"): p["containerPort"]
            for c in pod_spec(selected[0])["containers"]
            for p in c.get("ports", [])
        }
        names = {p["name"] for p in service["spec"]["ports"]}
        assert {"http", "metrics"} <= names, f"Service/{name_of(service)} ports {names}"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in container_ports or target in container_ports.values(), (
                f"Service/{name_of(service)} port {port['name']} targets {target!r}, "
                f"not a port of Deployment/{name_of(selected[0])}"
            )
        assert next(p for p in service["spec"]["ports"] if p["name"] == "http")["port"] == 8000


def test_every_deployment_selector_matches_its_own_pods(rendered):
    _, objs = rendered
    for deployment in kind_of(objs, "Deployment"):
        assert selector_matches(deployment["spec"]["selector"], pod_labels(deployment)), name_of(
            deployment
        )


def test_config_maps_and_secrets_referenced_by_pods_exist(rendered):
    _, objs = rendered
    config_maps = {name_of(c) for c in kind_of(objs, "ConfigMap")}
    example_keys = set(read_env_file(SECRETS_EXAMPLE))
    used_keys: set[str] = set()
    for workload in workloads(objs):
        for container in containers(workload):
            where = f"{workload['kind']}/{name_of(workload)}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, where
                assert "secretRef" not in source or source["secretRef"]["name"] == SECRET_NAME, (
                    where
                )
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET_NAME, where
                    assert ref["key"] in example_keys, (
                        f"{where}: key {ref['key']} missing from {SECRETS_EXAMPLE.name}"
                    )
                    used_keys.add(ref["key"])
    assert used_keys == example_keys, (
        f"documented but unused secret keys: {sorted(example_keys - used_keys)}"
    )


def test_secret_settings_come_only_from_secret_refs(rendered):
    _, objs = rendered
    assert not kind_of(objs, "Secret"), (
        "a Secret object is rendered: secrets must be created outside git"
    )
    for config_map in kind_of(objs, "ConfigMap"):
        leaked = set(config_map.get("data", {})) & set(SECRET_SETTINGS)
        assert not leaked, f"ConfigMap/{name_of(config_map)} holds {leaked}"
    for workload in workloads(objs):
        for container in containers(workload):
            for env in container.get("env", []):
                if env["name"] in SECRET_SETTINGS:
                    assert "value" not in env, f"{name_of(workload)}: literal {env['name']}"
                    assert "secretKeyRef" in env.get("valueFrom", {}), (
                        f"{name_of(workload)}: {env['name']}"
                    )
    api_keys_holders = {
        name_of(w)
        for w in workloads(objs)
        for c in containers(w)
        for e in c.get("env", [])
        if e["name"] == "ORDERGUARD_API_KEYS"
    }
    assert api_keys_holders == {f"{s}-api" for s in SERVICES}, "only the HTTP APIs get the API keys"


def test_every_pod_is_covered_by_network_policies_in_the_overlays(rendered):
    name, objs = rendered
    if name == "base":
        pytest.skip("base has no NetworkPolicy by design (opt-in component)")
    policies = kind_of(objs, "NetworkPolicy")
    for workload in workloads(objs):
        labels = pod_labels(workload)
        covering = [p for p in policies if selector_matches(p["spec"]["podSelector"], labels)]
        types = {t for p in covering for t in p["spec"].get("policyTypes", [])}
        assert {"Ingress", "Egress"} <= types, f"{name_of(workload)}: not isolated ({types})"
        egress_ports = {
            port.get("port")
            for p in covering
            for rule in p["spec"].get("egress", [])
            for port in rule.get("ports", [])
        }
        assert {53, 5432} <= egress_ports and egress_ports & {9092, 9093}, (
            f"{name_of(workload)}: egress to DNS, PostgreSQL, Kafka must stay open ({egress_ports})"
        )
        if workload["kind"] == "Deployment":
            ingress_ports = {
                port.get("port")
                for p in covering
                for rule in p["spec"].get("ingress", [])
                for port in rule.get("ports", [])
            }
            assert 8000 in ingress_ports, (
                f"{name_of(workload)}: /metrics and probes port 8000 closed"
            )


CONSOLE_URLS = {
    f"ORDERGUARD_NOTIFIER__CONSOLE_{service.upper()}_URL": service
    for service in ("order", "aftersales", "logistics")
}


def test_the_console_reaches_the_apis_it_acts_through(prod):
    """notifier-api's console calls order, aftersales and logistics for a person: each URL
    names that service's API, and the network policies let notifier-api reach its port."""
    configs = {name_of(c): c.get("data", {}) for c in kind_of(prod, "ConfigMap")}
    api = next(d for d in kind_of(prod, "Deployment") if name_of(d) == "notifier-api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for source in container.get("envFrom", []):
        env.update(configs[source["configMapRef"]["name"]])
    services = {name_of(s): s for s in kind_of(prod, "Service")}
    deployments = {name_of(d): d for d in kind_of(prod, "Deployment")}
    policies = kind_of(prod, "NetworkPolicy")
    covering = [p for p in policies if selector_matches(p["spec"]["podSelector"], pod_labels(api))]
    for setting, service in CONSOLE_URLS.items():
        host, port = env[setting].removeprefix("http://").split(":")
        assert host == f"{service}-api" and host in services, f"{setting}={env[setting]}"
        target = pod_labels(deployments[host])
        assert any(
            any(selector_matches(peer.get("podSelector"), target) for peer in rule.get("to", []))
            and any(p.get("port") == int(port) for p in rule.get("ports", []))
            for policy in covering
            for rule in policy["spec"].get("egress", [])
        ), f"notifier-api may not reach {host}:{port}"


def test_compose_console_urls_name_the_apis(compose):
    environment = compose["services"]["notifier-api"]["environment"]
    assert environment["ORDERGUARD_DATABASE_URL"], "the shared settings stay merged in"
    for setting, service in CONSOLE_URLS.items():
        assert environment[setting] == f"http://{service}-api:8000"
        assert f"{service}-api" in compose["services"]


def test_pdbs_select_exactly_one_deployment_and_never_overlap(prod):
    deployments = kind_of(prod, "Deployment")
    pdbs = kind_of(prod, "PodDisruptionBudget")
    assert len(pdbs) == len(deployments)
    for pdb in pdbs:
        selected = [
            d for d in deployments if selector_matches(pdb["spec"]["selector"], pod_labels(d))
        ]
        assert len(selected) == 1, f"PDB/{name_of(pdb)} selects {[name_of(d) for d in selected]}"
    for deployment in deployments:
        covering = [
            p for p in pdbs if selector_matches(p["spec"]["selector"], pod_labels(deployment))
        ]
        # The eviction API refuses pods covered by more than one PDB.
        assert len(covering) == 1, f"{name_of(deployment)} is covered by {len(covering)} PDBs"


def test_autoscalers_target_existing_deployments_without_conflict(prod):
    deployments = {name_of(d): d for d in kind_of(prod, "Deployment")}
    targets: dict[str, str] = {}
    for scaler in kind_of(prod, "HorizontalPodAutoscaler") + kind_of(prod, "ScaledObject"):
        ref = scaler["spec"]["scaleTargetRef"]
        where = f"{scaler['kind']}/{name_of(scaler)}"
        assert ref.get("kind", "Deployment") == "Deployment" and ref["name"] in deployments, where
        assert ref["name"] not in targets, (
            f"{ref['name']} scaled by both {targets[ref['name']]} and {where}"
        )
        targets[ref["name"]] = where
    for name, deployment in deployments.items():
        component = pod_labels(deployment)["app.kubernetes.io/component"]
        if component == "api":
            assert targets.get(name, "").startswith("HorizontalPodAutoscaler"), (
                f"{name} needs an HPA"
            )
        elif name in targets:
            assert targets[name].startswith("ScaledObject"), (
                f"{name}: workers scale on lag (KEDA), not CPU"
            )
        if name in targets:
            assert "replicas" not in deployment["spec"], (
                f"{name}: autoscaled, so it must not set replicas"
            )
        else:
            assert deployment["spec"].get("replicas", 0) >= 1, (
                f"{name}: neither autoscaled nor given replicas"
            )


def code_consumer_groups() -> dict[str, set[str]]:
    """The consumer groups each service's worker joins, from the code's own bootstrap."""
    registry = pytest.importorskip(
        "orderguard.cli.services_registry", reason="orderguard is not installed here"
    )
    from orderguard.shared.runtime import Runtime

    groups = {}
    for service in SERVICES:
        definition = registry.definition_of(service)
        runtime = Runtime(
            definition,
            registry.OrderguardSettings(),
            frozenset({"workers"}),
            registry.rule_catalogue(),
        )
        groups[service] = {runtime.worker_group} if runtime.engine_consumers() else set()
    return groups


def test_keda_triggers_follow_the_code_consumer_groups(prod):
    """A consumer added in code without a KEDA trigger (or a renamed group) fails here."""
    groups = code_consumer_groups()
    scaled = {name_of(s): s for s in kind_of(prod, "ScaledObject")}
    for service, expected in groups.items():
        name = f"{service}-worker"
        if not expected:
            assert name not in scaled, (
                f"{name}: no consumer group in the code, nothing for KEDA to measure"
            )
            continue
        assert name in scaled, (
            f"{name} consumes {sorted(expected)}: add a ScaledObject to components/autoscaling "
            "and its name to the replicas patch there"
        )
        triggers = {t["metadata"]["consumerGroup"] for t in scaled[name]["spec"]["triggers"]}
        assert triggers == expected, (
            f"{name}: KEDA watches {sorted(triggers)}, the code joins {sorted(expected)}"
        )


def test_keda_never_scales_consumers_past_the_partition_count(prod):
    partitions = [t["spec"]["partitions"] for t in kind_of(prod, "KafkaTopic")] or [PARTITIONS]
    for scaled in kind_of(prod, "ScaledObject"):
        spec = scaled["spec"]
        assert 1 <= spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"] <= min(partitions), (
            name_of(scaled)
        )
        for trigger in spec["triggers"]:
            assert trigger["type"] == "kafka"
            metadata = trigger["metadata"]
            assert metadata.get("consumerGroup"), name_of(scaled)
            assert metadata.get("bootstrapServers") or metadata.get("bootstrapServersFromEnv")
            assert metadata.get("allowIdleConsumers", "false") == "false"


def test_monitors_scrape_every_deployment_metrics_port(prod):
    deployments = kind_of(prod, "Deployment")
    services = kind_of(prod, "Service")
    scraped: set[str] = set()
    for monitor in kind_of(prod, "PodMonitor"):
        endpoints = monitor["spec"]["podMetricsEndpoints"]
        selected = [
            d for d in deployments if selector_matches(monitor["spec"]["selector"], pod_labels(d))
        ]
        assert selected, f"PodMonitor/{name_of(monitor)} selects no pods"
        for deployment in selected:
            ports = {
                p.get("name")
                for c in pod_spec(deployment)["containers"]
                for p in c.get("ports", [])
            }
            for endpoint in endpoints:
                assert endpoint["port"] in ports, (
                    f"PodMonitor/{name_of(monitor)}: {name_of(deployment)} lacks port"
                )
            scraped.add(name_of(deployment))
    for monitor in kind_of(prod, "ServiceMonitor"):
        selected = [
            s
            for s in services
            if selector_matches(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
        ]
        assert selected, f"ServiceMonitor/{name_of(monitor)} selects no Service"
        for service in selected:
            names = {p["name"] for p in service["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["port"] in names, (
                    f"ServiceMonitor/{name_of(monitor)}: {name_of(service)} lacks port"
                )
            scraped.update(
                name_of(d)
                for d in deployments
                if selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(d))
            )
    assert scraped == {name_of(d) for d in deployments}, (
        f"not scraped: {sorted({name_of(d) for d in deployments} - scraped)}"
    )


def test_kafka_topics_are_the_contract_topics(prod):
    topics = {t["spec"].get("topicName", name_of(t)): t for t in kind_of(prod, "KafkaTopic")}
    assert set(topics) == set(TOPICS)
    for name, topic in topics.items():
        spec = topic["spec"]
        assert spec["partitions"] == PARTITIONS, name
        assert spec["replicas"] >= 3 and spec["config"]["min.insync.replicas"] < spec["replicas"], (
            name
        )
        assert int(spec["config"]["retention.ms"]) > 0, name
        assert topic["metadata"]["labels"].get("strimzi.io/cluster"), name


def test_every_patch_target_matches_something():
    """kustomize silently applies a patch whose target matches nothing; catch that here."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not found: it embeds kustomize, needed to render deploy/k8s")
    checked = 0
    for render_name, top in RENDERS.items():
        objs = render(render_name)
        for directory in kustomize_dirs(top):
            for patch in kustomization(directory).get("patches", []):
                target = patch.get("target")
                if target is None:
                    doc = yaml.safe_load((directory / patch["path"]).read_text())
                    target = {"kind": doc["kind"], "name": doc["metadata"]["name"]}
                matched = [
                    o
                    for o in objs
                    if ("kind" not in target or o["kind"] == target["kind"])
                    and ("name" not in target or re.fullmatch(target["name"], name_of(o)))
                    and (
                        "labelSelector" not in target
                        or label_selector_string_matches(
                            target["labelSelector"], o["metadata"].get("labels", {})
                        )
                    )
                ]
                where = f"{directory.relative_to(ROOT)} patch {patch.get('path', target)}"
                assert matched, f"{where} matches nothing in the {render_name} render"
                checked += 1
    assert checked >= 5


def test_overlays_show_their_patches():
    """Spot checks that each overlay's and component's intent reached the output."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not found: it embeds kustomize, needed to render deploy/k8s")
    dev, prod_objs = render("dev"), render("prod")
    assert {o["metadata"].get("namespace") for o in dev if o["kind"] != "Namespace"} == {
        "orderguard-dev"
    }
    assert {o["metadata"].get("namespace") for o in prod_objs if o["kind"] != "Namespace"} == {
        "orderguard"
    }
    for objs in (dev, prod_objs):
        (namespace,) = kind_of(objs, "Namespace")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(d["spec"]["replicas"] == 1 for d in kind_of(dev, "Deployment"))
    assert len(kind_of(dev, "Job")) == 1 and pod_spec(kind_of(dev, "Job")[0])["containers"][0][
        "args"
    ] == ["topics", "create"]
    assert all(h["spec"]["minReplicas"] >= 2 for h in kind_of(prod_objs, "HorizontalPodAutoscaler"))
    assert all(s["spec"]["minReplicaCount"] >= 2 for s in kind_of(prod_objs, "ScaledObject"))
    for deployment in kind_of(prod_objs, "Deployment"):
        keys = {c["topologyKey"] for c in pod_spec(deployment).get("topologySpreadConstraints", [])}
        assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys, name_of(
            deployment
        )
    config = next(
        c for c in kind_of(prod_objs, "ConfigMap") if name_of(c).startswith("orderguard-config")
    )
    assert config["data"]["ORDERGUARD_KAFKA_EMBEDDED_COMPAT"] == "false"


# ---------------------------------------------------------------- docker compose


def app_services(compose: Obj) -> dict[str, Obj]:
    return {
        n: s
        for n, s in compose["services"].items()
        if s.get("image", "").startswith("ghcr.io/orderguard/")
    }


def test_compose_depends_on_names_existing_services_with_sound_conditions(compose):
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for dependency, options in depends.items():
            assert dependency in services, f"{name} depends on undefined service {dependency!r}"
            assert dependency != name
            condition = options.get("condition", "service_started")
            target = services[dependency]
            if condition == "service_healthy":
                check = target.get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), (
                    f"{name}: {dependency} has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert target.get("restart", "no") == "no", (
                    f"{name}: {dependency} is not a one-shot"
                )
            else:
                assert condition == "service_started", f"{name}: unknown condition {condition}"


def test_compose_runs_every_service_and_role_once(compose):
    commands = sorted(tuple(s["command"]) for s in app_services(compose).values())
    expected = sorted([(ROLES[r], s) for s in SERVICES for r in ROLES] + [("topics", "create")])
    assert commands == expected


def test_compose_app_containers_are_hardened_checked_and_ordered(compose):
    for name, service in app_services(compose).items():
        assert IMAGE.match(service["image"]), name
        assert service.get("env_file") in (".env", [".env"]), f"{name}: secrets must come from .env"
        assert service.get("user") == f"{UID}:{UID}", name
        assert service.get("read_only") is True, name
        assert any(str(t).startswith("/tmp") for t in service.get("tmpfs", [])), name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory"), name
        assert seconds(service.get("stop_grace_period", "10s")) >= MIN_GRACE_SECONDS, name
        environment = service.get("environment", {})
        assert environment.get("ORDERGUARD_KAFKA_EMBEDDED_COMPAT") == "false", name
        if service["command"][0] == "topics":
            assert service.get("restart") == "no", name
            continue
        test = " ".join(service["healthcheck"]["test"])
        assert "/readyz" in test and "urllib" in test and "curl" not in test, name
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["kafka"]["condition"] == "service_healthy", name
        assert depends["topics"]["condition"] == "service_completed_successfully", name


def test_compose_infrastructure_is_pinned_and_kraft(compose):
    services = compose["services"]
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["postgres"]["image"] == "postgres:17.6"
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller", "single-node KRaft"
    assert "ZOOKEEPER" not in " ".join(map(str, kafka_env)).upper()
    for name, service in services.items():
        assert not str(service.get("image", "")).endswith(":latest"), name
        assert ":" in str(service.get("image", "")), f"{name}: untagged image"


def test_compose_keeps_secrets_out_of_the_file(compose):
    raw = COMPOSE_FILE.read_text()
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        assert "ORDERGUARD_API_KEYS" not in environment, f"{name}: API keys must come from env_file"
        for key, value in environment.items():
            if re.search(r"PASSWORD|SECRET|TOKEN|API_KEY", key):
                assert str(value).startswith("${"), f"{name}: literal {key}"
        url = environment.get("ORDERGUARD_DATABASE_URL")
        if url:
            password = re.match(r"postgresql://[^:]+:(.*)@", url)
            assert password and password.group(1).startswith("${POSTGRES_PASSWORD"), (
                f"{name}: literal password"
            )
    # Every variable compose must interpolate without a default is in the example env file.
    required = set(re.findall(r"\$\{([A-Z0-9_]+)(?::?\?[^}]*)?\}", raw))
    assert required <= set(read_env_file(COMPOSE_ENV_EXAMPLE)), f"undocumented: {required}"


# ---------------------------------------------------------------- image and committed files


def dockerfile_instructions() -> list[str]:
    """One string per instruction, continuation lines joined, comments dropped."""
    kept = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return re.sub(r"\\\n\s*", " ", "\n".join(kept)).splitlines()


def test_dockerfile_is_multistage_pinned_and_non_root():
    lines = dockerfile_instructions()
    froms = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert len(froms) >= 2 and set(froms) == {"python:3.11.11-slim-bookworm"}, froms
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] == str(UID), users
    entrypoint = [line for line in lines if line.upper().startswith("ENTRYPOINT")]
    cmd = [line for line in lines if line.upper().startswith("CMD")]
    assert entrypoint == ['ENTRYPOINT ["orderguard"]'], entrypoint
    assert cmd == ['CMD ["serve", "order"]'], cmd
    assert any("pip install ." in line for line in lines)


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".orderguard", ".env", ".pytest_cache", "**/__pycache__"} <= patterns


def committed_deploy_files() -> list[Path]:
    files = [ROOT / "Dockerfile", ROOT / ".dockerignore", COMPOSE_FILE]
    files += [p for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    return files


SECRET_PATTERNS = {
    "credentials in a URL": re.compile(r"://[^/\s:@]+:(?!CHANGE_ME@|\$\{)[^@\s/]+@"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "password assignment": re.compile(r"(?i)password\s*[=:]\s*(?!CHANGE_ME\b|\$\{)[^\s#]{6,}"),
    "API key JSON": re.compile(r'ORDERGUARD_API_KEYS\s*[=:]\s*[\'"]?\{\s*"(?!CHANGE_ME")[^"]+"'),
    "api-keys JSON": re.compile(r'api-keys\s*=\s*\{\s*"(?!CHANGE_ME")[^"]+"'),
}


def test_no_literal_secrets_in_committed_deploy_files():
    checked = 0
    for path in committed_deploy_files():
        if ".orderguard" in path.parts:
            continue
        text = path.read_text(errors="replace")
        for what, pattern in SECRET_PATTERNS.items():
            match = pattern.search(text)
            assert not match, f"{path.relative_to(ROOT)}: {what}: {match.group(0)!r}"
        checked += 1
    assert checked > 20


def test_example_env_files_hold_placeholders_only():
    for path in (SECRETS_EXAMPLE, COMPOSE_ENV_EXAMPLE):
        for key, value in read_env_file(path).items():
            assert "CHANGE_ME" in value, f"{path.name}: {key} has no CHANGE_ME placeholder"


def test_local_secret_files_are_not_tracked_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git work tree")
    tracked = subprocess.run(
        ["git", "ls-files", "--", ".env", "deploy/k8s/secrets.env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not tracked, f"secret files are committed: {tracked}"
    if not (ROOT / ".gitignore").exists():
        pytest.skip(".gitignore not written yet: cannot check that .env is ignored")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, (
        ".env (copied from deploy/compose.env.example) must be git-ignored"
    )
