"""`orderguard backtest`: reading the input, the progress bar and the report (the replay itself
is `services/notifier/backtest.py`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orderguard.cli.services_registry import STREAM_RULES, OrderguardSettings, rule_catalogue
from orderguard.services.notifier.backtest import (
    BacktestInputError,
    BacktestResult,
    Comparison,
    compare,
    decode,
    live_record,
    merge_by_time,
    read_envelopes_file,
    read_topic_range,
    result_json,
    run_backtest,
)
from orderguard.services.notifier.routing import RoutingFileError, load_routing
from orderguard.services.notifier.settings import NotifierSettings
from orderguard.shared.detection.config import (
    DetectorConfigError,
    builtin_params,
    load_detector_config,
)
from orderguard.shared.settings import Settings
from orderguard.shared.topics import TEAMS, Topics

# Show a progress bar from this many events on (short runs stay quiet).
PROGRESS_FROM = 1000


def where_things_are(settings: Settings, data_dir: Path, bootstrap: str | None) -> Settings:
    """The broker to read: --bootstrap, else ORDERGUARD_KAFKA_BOOTSTRAP when set, else the one
    a running `orderguard up` in `data_dir` started (whatever port it chose), else the default."""
    from orderguard.cli.supervisor import read_status

    if bootstrap is not None:
        return settings.model_copy(update={"kafka_bootstrap": bootstrap})
    if "kafka_bootstrap" in settings.model_fields_set:
        return settings
    status = read_status(data_dir.resolve()) or {}
    started = status.get("broker", {}).get("bootstrap")
    if started is None:
        return settings
    # up's broker is the embedded Tansu: read it the way the services it started do.
    return settings.model_copy(update={"kafka_bootstrap": started, "kafka_embedded_compat": True})


def run(
    *,
    topics: list[str],
    from_offset: int | None,
    to_offset: int | None,
    since: datetime | None,
    until: datetime | None,
    events_file: Path | None,
    live_file: Path | None,
    no_live: bool,
    routing_file: Path | None,
    detectors_file: Path | None,
    as_json: bool,
    data_dir: Path,
    bootstrap: str | None,
) -> int:
    settings = where_things_are(OrderguardSettings(), data_dir, bootstrap)
    console = Console(stderr=True)
    try:
        tree = load_routing(routing_file or settings.section(NotifierSettings).routing_file)
        config = load_detector_config(
            detectors_file or settings.detectors_file, rule_catalogue(), builtin_params(settings)
        )
    except (RoutingFileError, DetectorConfigError) as exc:
        typer.echo(str(exc), err=True)
        return 2
    rules = config.enabled(STREAM_RULES)
    prefixed = Topics(settings.topic_prefix)
    try:
        if events_file is not None:
            envelopes = list(read_envelopes_file(events_file))
        else:
            envelopes = asyncio.run(
                _read_topics(settings, topics, from_offset, to_offset, since, until, console)
            )
        live = None
        if live_file is not None:
            live = live_record(read_envelopes_file(live_file))
        elif not no_live and events_file is None:
            live_topics = [prefixed.anomalies, *(prefixed.queue(team) for team in TEAMS)]
            recorded = asyncio.run(
                _read_topics(settings, live_topics, None, None, since, None, console, bare=True)
            )
            live = live_record(recorded)
    except BacktestInputError as exc:
        typer.echo(f"backtest: {exc}", err=True)
        return 2
    events = [e for e in (decode(env) for env in envelopes) if e is not None]
    allowed = timedelta(seconds=settings.detector_allowed_lateness_s)
    with _progress(console, len(events)) as advance:
        result = run_backtest(
            events, rules, tree, allowed_lateness=allowed, until=until, progress=advance
        )
    comparison = compare(result, live, rules) if live is not None else None
    if as_json:
        typer.echo(json.dumps(result_json(result, comparison), indent=2))
    else:
        _print(result, comparison)
    return 0


async def _read_topics(
    settings: Settings,
    topics: list[str],
    from_offset: int | None,
    to_offset: int | None,
    since: datetime | None,
    until: datetime | None,
    console: Console,
    bare: bool = False,
) -> list:
    prefix = settings.topic_prefix
    found = []
    for topic in topics:
        name = topic if bare or topic.startswith(prefix) else prefix + topic
        found.append(
            await read_topic_range(
                settings,
                name,
                from_offset=from_offset,
                to_offset=to_offset,
                since=since,
                until=until,
            )
        )
    return merge_by_time(found)


class _progress:
    """A rich progress bar on long runs; a no-op callback on short ones."""

    def __init__(self, console: Console, total: int) -> None:
        self.total = total
        self.bar = (
            Progress(
                TextColumn("replaying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            if total >= PROGRESS_FROM and console.is_terminal
            else None
        )

    def __enter__(self) -> Callable[[int], None] | None:
        if self.bar is None:
            return None
        self.bar.start()
        task = self.bar.add_task("replay", total=self.total)
        bar = self.bar

        def advance(done: int) -> None:
            if done % 500 == 0 or done == self.total:
                bar.update(task, completed=done)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _table(title: str, columns: tuple[str, ...], rows: Iterable[Sequence[str]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def _print(result: BacktestResult, comparison: Comparison | None) -> None:
    console = Console()
    console.print(
        f"{result.events} event(s) replayed ({result.skipped} no rule looks at);"
        f" simulated clock ended at {result.clock.isoformat() if result.clock else '-'}"
    )
    console.print(
        _table(
            f"Would have fired ({len(result.fired)})",
            ("at", "rule", "status", "severity", "fingerprint"),
            ((f.at.isoformat(), f.rule, f.status, f.severity, f.fingerprint) for f in result.fired),
        )
    )
    console.print(
        _table(
            f"Would have been routed ({len(result.routed)})",
            ("at", "queue", "route", "group", "severity", "status", "fingerprint"),
            (
                (
                    r.at.isoformat(),
                    r.queue,
                    r.route,
                    r.group_key or "-",
                    r.severity,
                    r.status,
                    r.fingerprint,
                )
                for r in result.routed
            ),
        )
    )
    if result.held:
        console.print(
            _table(
                f"Kept back ({len(result.held)})",
                ("reason", "by", "rule", "fingerprint"),
                ((h.reason, h.by, h.rule, h.fingerprint) for h in result.held),
            )
        )
    if comparison is None:
        console.print("No comparison with live (no live record read).")
        return
    _print_comparison(console, comparison)


def _print_comparison(console: Console, comparison: Comparison) -> None:
    console.print(
        f"Compared with live, transition by transition (fingerprint, status, time):"
        f" {len(comparison.in_both)} in both, {len(comparison.only_in_backtest)} only in the"
        f" backtest, {len(comparison.only_live)} only live,"
        f" {len(comparison.routed_differently)} routed differently"
        + (" — they agree." if comparison.agree else ".")
    )
    if comparison.agree:
        return
    missing = [
        (side, step.at.isoformat(), step.rule, step.status, step.fingerprint)
        for side, steps in (
            ("only in backtest", comparison.only_in_backtest),
            ("only live", comparison.only_live),
        )
        for step in steps
    ]
    routed = [
        ("routed differently", "", "", status, f"{fp}: backtest {mine} / live {theirs}")
        for (fp, status), (mine, theirs) in comparison.routed_differently.items()
    ]
    console.print(
        _table(
            "Differences",
            ("difference", "at", "rule", "status", "fingerprint / routes"),
            missing + routed,
        )
    )
