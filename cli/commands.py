"""The `orderguard` command."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orderguard.cli.supervisor import BACKGROUND_NICE
from orderguard.cli.users import users_app
from orderguard.scenario.cli import scenario_app
from orderguard.shared.settings import SERVICES, Settings

app = typer.Typer(
    help="orderguard: catch and run the abnormal side of e-commerce orders.", no_args_is_help=True
)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
dlq_app = typer.Typer(help="Dead-letter topics.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
contract_app = typer.Typer(
    help="The event contract: AsyncAPI document, JSON Schemas and their checks.",
    no_args_is_help=True,
)
app.add_typer(contract_app, name="contract")
settings_app = typer.Typer(
    help="Settings (ORDERGUARD_* environment variables).", no_args_is_help=True
)
app.add_typer(settings_app, name="settings")
app.add_typer(scenario_app, name="scenario")
app.add_typer(users_app, name="users")

Service = Enum("Service", {name: name for name in SERVICES}, type=str)  # type: ignore[misc]
DATA_DIR = Annotated[
    Path, typer.Option(help="Where embedded mode keeps its database, logs and state.")
]


def _run_roles(service: str, roles: frozenset[str]) -> None:
    from orderguard.cli.services_registry import OrderguardSettings, definition_of, rule_catalogue
    from orderguard.shared.runtime import run_service

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    code = asyncio.run(
        run_service(definition_of(service), roles, OrderguardSettings(), rule_catalogue())  # type: ignore[arg-type]
    )
    raise typer.Exit(code)


@app.command()
def serve(service: Service) -> None:
    """Run a service's HTTP API (with the outbox relay that publishes what it writes)."""
    _run_roles(service.value, frozenset({"api"}))


class StreamEngine(StrEnum):
    engine = "engine"
    faust = "faust"


@app.command()
def worker(
    service: Service,
    engine: StreamEngine = typer.Option(
        StreamEngine.engine,
        "--engine",
        help="engine: the batched transactional engine (default, every consumer and detector);"
        " faust: the service's detectors as faust-streaming agents (see README)",
    ),
) -> None:
    """Run a service's stream consumers and detectors (with its outbox relay)."""
    if engine is StreamEngine.engine:
        _run_roles(service.value, frozenset({"workers"}))
        return
    from orderguard.cli.services_registry import OrderguardSettings, definition_of, rule_catalogue
    from orderguard.shared.detection.faust_driver import run_faust_service

    raise typer.Exit(
        asyncio.run(
            run_faust_service(definition_of(service.value), OrderguardSettings(), rule_catalogue())
        )
    )


@app.command()
def run(service: Service) -> None:
    """Run a service's API and workers in one process (what `up` starts)."""
    _run_roles(service.value, frozenset({"api", "workers"}))


@app.command()
def migrate(service: Service) -> None:
    """Apply a service's database migrations and exit."""
    from orderguard.cli.services_registry import definition_of
    from orderguard.shared.db import apply_migrations
    from orderguard.shared.settings import SCHEMAS

    settings = Settings()
    definition = definition_of(service.value)
    applied = asyncio.run(
        apply_migrations(settings.database_url, SCHEMAS[service.value], definition.migrations)
    )
    typer.echo(
        f"{service.value}: {len(applied)} migration(s) applied"
        + (f": {', '.join(applied)}" if applied else "")
    )


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic orderguard owns (existing ones are left alone)."""
    from orderguard.shared.kafka import create_topics, wait_for_broker

    settings = Settings()

    async def create() -> list[str]:
        await wait_for_broker(settings, timeout_s=120)
        return await create_topics(settings)

    created = asyncio.run(create())
    typer.echo(f"{len(created)} topic(s) created" + (f": {', '.join(created)}" if created else ""))


@dlq_app.command("redrive")
def dlq_redrive(
    topic: Annotated[str, typer.Argument(help="A dead-letter topic, <topic>.dlq.<service>.worker")],
) -> None:
    """Publish a dead-letter topic's records back to where they came from (once the cause is fixed)."""
    from orderguard.shared.dead_letters import redrive

    count = asyncio.run(redrive(Settings(), topic))
    typer.echo(f"{count} record(s) re-driven from {topic}")


@app.command()
def backtest(
    topic: Annotated[
        list[str] | None,
        typer.Option(help="A topic to replay (repeatable), e.g. inventory.events."),
    ] = None,
    from_offset: Annotated[
        int | None, typer.Option(help="First offset to replay, on every partition.")
    ] = None,
    to_offset: Annotated[
        int | None, typer.Option(help="Offset to stop before, on every partition.")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Replay records from this time (UTC without offset).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Replay records before this time.")] = None,
    file: Annotated[
        Path | None,
        typer.Option(help="Replay this file of events instead (JSON lines of envelopes)."),
    ] = None,
    live_file: Annotated[
        Path | None,
        typer.Option(help="What fired live, as JSON lines (anomaly.detected/routed envelopes)."),
    ] = None,
    no_live: Annotated[bool, typer.Option("--no-live", help="Do not compare with live.")] = False,
    routing_file: Annotated[
        Path | None, typer.Option(help="A routing file to try (default: the one in force).")
    ] = None,
    detectors_file: Annotated[
        Path | None, typer.Option(help="A detectors file to try (default: the one in force).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            help="Kafka bootstrap servers (default: ORDERGUARD_KAFKA_BOOTSTRAP, else the broker"
            " of a running `orderguard up`)."
        ),
    ] = None,
    data_dir: DATA_DIR = Path(".orderguard"),
) -> None:
    """Replay recorded events through the detector rules and the routing tree with a simulated
    clock: what would have fired, where it would have gone, and how that differs from live."""
    from orderguard.cli.backtest import run as run_backtest

    if (file is None) == (not topic):
        typer.echo("backtest: give --topic (one or more) or --file, not both", err=True)
        raise typer.Exit(2)
    if file is not None and any(v is not None for v in (from_offset, to_offset, since, until)):
        typer.echo(
            "backtest: --from-offset/--to-offset/--since/--until select a topic range;"
            " a --file is replayed whole",
            err=True,
        )
        raise typer.Exit(2)
    code = run_backtest(
        topics=topic or [],
        from_offset=from_offset,
        to_offset=to_offset,
        since=since,
        until=until,
        events_file=file,
        live_file=live_file,
        no_live=no_live,
        routing_file=routing_file,
        detectors_file=detectors_file,
        as_json=as_json,
        data_dir=data_dir,
        bootstrap=bootstrap,
    )
    raise typer.Exit(code)


@settings_app.command("table")
def settings_table(
    out: Annotated[Path | None, typer.Option(help="Write the table to this file.")] = None,
) -> None:
    """Print (or write) every setting as one Markdown table (docs/settings.md)."""
    from orderguard.cli.settings_table import render

    document = render()
    if out is None:
        typer.echo(document, nl=False)
        return
    out.write_text(document)
    typer.echo(f"settings table written to {out}")


@contract_app.command("asyncapi")
def contract_asyncapi(
    out: Annotated[Path | None, typer.Option(help="Write the document to this file.")] = None,
) -> None:
    """Print (or write) the AsyncAPI 3.0 document of our topics, generated from the models."""
    from orderguard.shared.contract.asyncapi import asyncapi_yaml

    document = asyncapi_yaml()
    if out is None:
        typer.echo(document, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document)
    typer.echo(f"AsyncAPI document written to {out}")


@contract_app.command("schemas")
def contract_schemas(
    out: Annotated[
        Path | None, typer.Option(help="Write one <type>.json per event type and version here.")
    ] = None,
) -> None:
    """Print (or write) the JSON Schema of every event type and version, generated from the models."""
    from orderguard.shared.contract.schemas import event_schemas, render_schema, schema_file_name

    generated = event_schemas()
    if out is None:
        typer.echo(json.dumps(generated, indent=2, sort_keys=True))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in generated.items():
        (out / schema_file_name(name)).write_text(render_schema(schema))
    typer.echo(f"{len(generated)} schema(s) written to {out}")


@contract_app.command("check")
def contract_check(
    docs: Annotated[
        Path, typer.Option(help="The committed contract: asyncapi.yaml and schemas/.")
    ] = Path("docs/contract"),
    history: Annotated[
        bool,
        typer.Option(help="Also compare with every past version of each schema in git history."),
    ] = True,
) -> None:
    """Fail when the committed contract is stale or a published event version would break."""
    from orderguard.shared.contract.check import check_contract

    report = check_contract(docs, history=history)
    for line in report.stale:
        typer.echo(f"stale     {line}", err=True)
    for line in report.breaking:
        typer.echo(f"breaking  {line}", err=True)
    for line in report.notes:
        typer.echo(f"note      {line}", err=True)
    if not report.ok:
        typer.echo(
            f"contract check failed: {len(report.stale)} stale document(s),"
            f" {len(report.breaking)} breaking change(s)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(
        f"contract current: {report.documents} document(s) match the models;"
        f" {report.published_versions} published schema version(s) compared, no breaking change"
    )


@app.command()
def up(
    data_dir: DATA_DIR = Path(".orderguard"),
    demo: Annotated[
        bool,
        typer.Option(
            help="Also play a labelled demo shop against it (detectors scaled to the demo's"
            " speed-up): anomalies reach the queues within a minute."
        ),
    ] = False,
    demo_speedup: Annotated[
        float, typer.Option(help="Simulated seconds per real second.")
    ] = 2880.0,
    demo_rate: Annotated[float, typer.Option(help="Demo events per second.")] = 20.0,
    demo_duration: Annotated[float, typer.Option(help="Seconds of demo orders.")] = 300.0,
    demo_seed: Annotated[int, typer.Option(help="The demo's seed.")] = 1,
    background_nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="How many nice steps below the order service (the front door) the other four"
            " services run: on a saturated machine customers' requests go first and the"
            " reactions catch up after; 0: all alike.",
        ),
    ] = BACKGROUND_NICE,
) -> None:
    """Start the whole system on embedded defaults: broker, PostgreSQL and the five services."""
    from orderguard.cli.supervisor import Demo, Supervisor

    scenario = Demo(demo_speedup, demo_rate, demo_duration, demo_seed) if demo else None
    raise typer.Exit(Supervisor(data_dir.resolve(), scenario, background_nice).run())


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable endpoints.")] = False,
    data_dir: DATA_DIR = Path(".orderguard"),
) -> None:
    """Where everything of a running `orderguard up` is, and whether it answers."""
    from orderguard.cli.supervisor import read_status

    current = read_status(data_dir.resolve())
    if current is None:
        typer.echo(
            "orderguard is not running here (no state file); start it with `orderguard up`.",
            err=True,
        )
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(current, indent=2))
        return
    typer.echo(f"broker     {current['broker']['bootstrap']}")
    typer.echo(f"database   {current['database']['url']}")
    typer.echo(f"api key    {current['api_key']}")
    for name, service in current["services"].items():
        state = "ready" if service["ready"] else f"NOT READY ({', '.join(service['failing'])})"
        typer.echo(f"{name:<11}{service['url']}  {state}")


def main() -> None:
    app(prog_name="orderguard", args=sys.argv[1:])
