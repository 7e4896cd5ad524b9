"""`orderguard contract check`: the committed contract is current, and no published version broke."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orderguard.shared.contract.asyncapi import asyncapi_yaml
from orderguard.shared.contract.compatibility import (
    BreakingChange,
    UnresolvableSchema,
    breaking_changes,
)
from orderguard.shared.contract.published import published_schemas
from orderguard.shared.contract.schemas import event_schemas, render_schema, schema_file_name

DOCS_DIR = Path("docs/contract")
ASYNCAPI_FILE = "asyncapi.yaml"
SCHEMAS_DIR = "schemas"


@dataclass
class CheckReport:
    stale: list[str] = field(default_factory=list)
    breaking: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    documents: int = 0
    published_versions: int = 0

    @property
    def ok(self) -> bool:
        return not self.stale and not self.breaking


def generated_documents() -> dict[str, str]:
    """What the models generate, by path relative to the docs directory."""
    documents = {ASYNCAPI_FILE: asyncapi_yaml()}
    for event_type, schema in event_schemas().items():
        documents[f"{SCHEMAS_DIR}/{schema_file_name(event_type)}"] = render_schema(schema)
    return documents


def _regenerate(docs_dir: Path, relative: str) -> str:
    if relative == ASYNCAPI_FILE:
        return f"orderguard contract asyncapi --out {docs_dir / ASYNCAPI_FILE}"
    return f"orderguard contract schemas --out {docs_dir / SCHEMAS_DIR}"


def _stale(docs_dir: Path, report: CheckReport) -> None:
    generated = generated_documents()
    report.documents = len(generated)
    for relative, text in generated.items():
        path = docs_dir / relative
        if not path.is_file():
            problem = "is missing"
        elif path.read_text() != text:
            problem = "differs from what the models generate"
        else:
            continue
        report.stale.append(f"{path} {problem}; run `{_regenerate(docs_dir, relative)}`")


def _breaking(docs_dir: Path, history: bool, report: CheckReport) -> None:
    current = event_schemas()
    published = published_schemas(docs_dir / SCHEMAS_DIR, docs_dir / SCHEMAS_DIR, history)
    if published.history_note:
        report.notes.append(published.history_note)
    report.published_versions = len(published.schemas)
    # The same break found against several past versions is reported once, with the first.
    found: dict[tuple[str, BreakingChange], list[str]] = {}
    for version in published.schemas:
        event_type = version.event_type
        if event_type not in current:
            if version.in_tree:
                report.breaking.append(
                    f"{event_type}: type-removed: {version.where} is published but no model"
                    f" registers {event_type} any more; its consumers and publishers break."
                    " Keep the model (publish a new version beside it), or delete the file in"
                    " the same change to retire the type on purpose"
                )
            continue
        try:
            changes = breaking_changes(version.schema, current[event_type])
        except UnresolvableSchema as exc:
            report.breaking.append(f"{event_type}: cannot compare with {version.where}: {exc}")
            continue
        for change in changes:
            found.setdefault((event_type, change), []).append(version.where)
    for (event_type, change), where in found.items():
        others = f" and {len(where) - 1} other published version(s)" if len(where) > 1 else ""
        report.breaking.append(f"{event_type}: {change} (against {where[0]}{others})")


def check_contract(docs_dir: Path = DOCS_DIR, history: bool = True) -> CheckReport:
    """Stale documents and breaking changes; `history` also reads past versions from git."""
    report = CheckReport()
    _stale(docs_dir, report)
    _breaking(docs_dir, history, report)
    return report
