"""`orderguard scenario run | check | detectors`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from orderguard.scenario.scale import SYSTEM_ENV, Scale

scenario_app = typer.Typer(
    help="A labelled shop scenario against a running orderguard, and its detection quality.",
    no_args_is_help=True,
)

LABELS = "scenario-labels.jsonl"
SERVICE_ORDER = ("order", "inventory", "logistics", "aftersales", "notifier")

DataDir = Annotated[
    Path, typer.Option(help="State of `orderguard up` (endpoints, API key) when not given.")
]
BaseUrl = Annotated[
    str | None, typer.Option(help="Base URL of the services, e.g. http://127.0.0.1 (with --ports).")
]
Ports = Annotated[
    str | None,
    typer.Option(help="Ports of order,inventory,logistics,aftersales,notifier, comma-separated."),
]
Bootstrap = Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")]
ApiKey = Annotated[str | None, typer.Option(help="API key (default: `up`'s, or the settings').")]
Prefix = Annotated[str | None, typer.Option(help="Topic prefix (default: the settings').")]


def resolve_target(
    data_dir: Path,
    base_url: str | None,
    ports: str | None,
    bootstrap: str | None,
    api_key: str | None,
    topic_prefix: str | None,
) -> Any:
    """Endpoints from the options, else from `orderguard up`'s state, else from the settings."""
    from orderguard.cli.services_registry import OrderguardSettings
    from orderguard.cli.supervisor import read_status
    from orderguard.scenario.player import Clients
    from orderguard.scenario.runner import Target
    from orderguard.services.logistics.settings import LogisticsSettings

    settings = OrderguardSettings()
    status = read_status(data_dir.resolve()) or {}
    urls = {name: s["url"] for name, s in status.get("services", {}).items()}
    if ports:
        numbers = [int(p) for p in ports.split(",")]
        if len(numbers) != len(SERVICE_ORDER):
            raise typer.BadParameter(
                f"--ports needs {len(SERVICE_ORDER)} ports", param_hint="--ports"
            )
        base = (base_url or "http://127.0.0.1").rstrip("/")
        urls = {name: f"{base}:{port}" for name, port in zip(SERVICE_ORDER, numbers, strict=True)}
    elif base_url:
        base = base_url.rstrip("/")
        urls = {name: f"{base}:{8001 + i}" for i, name in enumerate(SERVICE_ORDER)}
    if set(urls) != set(SERVICE_ORDER):
        raise typer.BadParameter(
            "no running `orderguard up` here: give --base-url/--ports and --bootstrap"
        )
    key_file = data_dir / "api-key"
    key = (
        api_key
        or status.get("api_key")
        or (key_file.read_text().strip() if key_file.exists() else None)
        or next((k.get_secret_value() for k in settings.api_keys), None)
    )
    if not key:
        raise typer.BadParameter("no API key: give --api-key")
    return Target(
        Clients.connect(urls, key),
        bootstrap or status.get("broker", {}).get("bootstrap") or settings.kafka_bootstrap,
        settings.topic_prefix if topic_prefix is None else topic_prefix,
        {
            name: secret.get_secret_value()
            for name, secret in settings.section(LogisticsSettings).carrier_secrets.items()
        },
    )


@scenario_app.command("run")
def run(
    rate: Annotated[
        float, typer.Option(help="Events per second (HTTP calls and messages).")
    ] = 20.0,
    speedup: Annotated[
        float,
        typer.Option(
            help="Simulated seconds per real second; the system's detectors file must match (see `scenario detectors`)."
        ),
    ] = 1440.0,
    seed: Annotated[int, typer.Option(help="Same seed, same plan.")] = 1,
    duration: Annotated[float, typer.Option(help="Real seconds of order arrivals.")] = 120.0,
    orders: Annotated[
        int | None, typer.Option(help="Clean orders (instead of --duration).")
    ] = None,
    injections_per_kind: Annotated[
        int | None, typer.Option(help="Anomalies of each kind (default: one per 40 orders).")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Seconds a detection may come after its due time.")
    ] = 10.0,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the labels (JSON lines); default <data-dir>/scenario-labels.jsonl."
        ),
    ] = None,
    check: Annotated[bool, typer.Option(help="Wait for the windows and check detection.")] = True,
    data_dir: DataDir = Path(".orderguard"),
    base_url: BaseUrl = None,
    ports: Ports = None,
    bootstrap: Bootstrap = None,
    api_key: ApiKey = None,
    topic_prefix: Prefix = None,
) -> None:
    """Play a believable shop with labelled anomalies against a running orderguard."""
    from orderguard.scenario.runner import ScenarioOptions, run_scenario

    options = ScenarioOptions(
        seed=seed,
        speedup=speedup,
        rate=rate,
        duration_s=duration,
        orders=orders,
        injections_per_kind=injections_per_kind,
        tolerance_s=tolerance,
    )
    target = resolve_target(data_dir, base_url, ports, bootstrap, api_key, topic_prefix)

    def say(line: str) -> None:
        typer.echo(f"scenario | {line}")

    async def play() -> Any:
        try:
            return await run_scenario(
                options, target, labels or data_dir / LABELS, check=check, say=say
            )
        finally:
            await target.clients.aclose()

    report = asyncio.run(play())
    if report is not None and not report.ok:
        raise typer.Exit(1)


@scenario_app.command("check")
def check(
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Labels written by `scenario run`; default <data-dir>/scenario-labels.jsonl."
        ),
    ] = None,
    data_dir: DataDir = Path(".orderguard"),
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print the numbers as JSON.")
    ] = False,
) -> None:
    """Compare what the system raised (anomalies.detected, intake holds) with the labels."""
    from orderguard.cli.supervisor import read_status
    from orderguard.scenario.runner import check_labels
    from orderguard.shared.settings import Settings

    status = read_status(data_dir.resolve()) or {}
    settings = Settings()

    report = asyncio.run(
        check_labels(
            labels or data_dir / LABELS,
            bootstrap or status.get("broker", {}).get("bootstrap") or settings.kafka_bootstrap,
            settings.topic_prefix if topic_prefix is None else topic_prefix,
            say=typer.echo,
        )
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "injected": report.injected,
                    "recall": report.recall,
                    "false_alarms": len(report.false_alarms),
                    "delay_p50_s": report.delay_percentile(50),
                    "delay_p95_s": report.delay_percentile(95),
                    "delay_max_s": report.delays[-1] if report.delays else None,
                }
            )
        )
    if not report.ok:
        raise typer.Exit(1)


@scenario_app.command("detectors")
def detectors(
    speedup: Annotated[float, typer.Option(help="The scenario's speed-up.")] = 1440.0,
    out: Annotated[Path | None, typer.Option(help="Write the file here.")] = None,
) -> None:
    """The detectors file (and settings) a system needs to be played at `speedup`."""
    text = Scale(speedup).detectors_yaml()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        typer.echo(f"written to {out}; run the services with ORDERGUARD_DETECTORS_FILE={out}")
    for name, value in SYSTEM_ENV.items():
        typer.echo(f"{name}={value}", err=True)
