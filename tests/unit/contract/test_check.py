"""`orderguard contract check`: stale documents and breaking changes fail it; git history counts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orderguard.cli.commands import app
from orderguard.shared.contract.check import check_contract, generated_documents
from orderguard.shared.contract.schemas import event_schema

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def contract(*args: str) -> Any:
    return runner.invoke(app, ["contract", *args])


def write_docs(docs: Path) -> None:
    """The docs as the two documented commands write them."""
    assert contract("asyncapi", "--out", str(docs / "asyncapi.yaml")).exit_code == 0
    assert contract("schemas", "--out", str(docs / "schemas")).exit_code == 0


def publish(docs: Path, event_type: str, schema: dict[str, Any]) -> None:
    (docs / "schemas" / f"{event_type}.json").write_text(json.dumps(schema))


def with_extra_field(event_type: str) -> dict[str, Any]:
    """The schema as if an earlier revision of the model had a field `legacy_ref`."""
    schema = event_schema(event_type)
    schema["properties"]["legacy_ref"] = {"type": "string"}
    return schema


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_the_committed_contract_is_current_and_compatible() -> None:
    report = check_contract(ROOT / "docs" / "contract")
    assert report.stale == [] and report.breaking == [], report


def test_freshly_written_docs_pass_and_the_commands_write_what_check_expects(
    tmp_path: Path,
) -> None:
    write_docs(tmp_path)
    expected = generated_documents()
    written = {
        path.relative_to(tmp_path).as_posix(): path.read_text()
        for path in tmp_path.rglob("*")
        if path.is_file()
    }
    assert written == expected
    result = contract("check", "--docs", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "contract current" in result.output


def test_a_missing_or_edited_document_is_stale_and_names_the_command(tmp_path: Path) -> None:
    write_docs(tmp_path)
    (tmp_path / "asyncapi.yaml").write_text("asyncapi: 3.0.0\n")
    (tmp_path / "schemas" / "order.placed.v1.json").unlink()
    result = contract("check", "--docs", str(tmp_path))
    assert result.exit_code == 1
    assert f"stale     {tmp_path / 'asyncapi.yaml'} differs from what the models generate" in (
        result.output
    )
    assert f"`orderguard contract asyncapi --out {tmp_path / 'asyncapi.yaml'}`" in result.output
    assert "order.placed.v1.json is missing" in result.output
    assert f"`orderguard contract schemas --out {tmp_path / 'schemas'}`" in result.output
    assert "2 stale document(s), 0 breaking change(s)" in result.output


def test_a_breaking_change_against_the_committed_schema_names_type_field_and_rule(
    tmp_path: Path,
) -> None:
    write_docs(tmp_path)
    publish(tmp_path, "order.cancelled.v1", with_extra_field("order.cancelled.v1"))
    report = check_contract(tmp_path, history=False)
    assert len(report.stale) == 1
    (breaking,) = report.breaking
    assert breaking.startswith("order.cancelled.v1: `legacy_ref`: field-removed:")
    assert "order.cancelled.v1.json" in breaking


def test_a_published_type_without_a_model_is_a_removal(tmp_path: Path) -> None:
    write_docs(tmp_path)
    publish(tmp_path, "payment.retired.v1", {"type": "object", "properties": {}})
    (breaking,) = check_contract(tmp_path, history=False).breaking
    assert breaking.startswith("payment.retired.v1: type-removed:")


def test_a_published_file_that_is_not_json_is_stale_not_a_crash(tmp_path: Path) -> None:
    write_docs(tmp_path)
    (tmp_path / "schemas" / "order.placed.v1.json").write_text("{oops")
    report = check_contract(tmp_path, history=False)
    assert len(report.stale) == 1 and report.breaking == []


def test_regenerating_the_file_in_the_same_change_does_not_hide_a_break(tmp_path: Path) -> None:
    """The schema of v1 once had `legacy_ref`; the model dropped it and the file was regenerated."""
    git(tmp_path, "init", "-q")
    docs = tmp_path / "docs" / "contract"
    write_docs(docs)
    publish(docs, "order.cancelled.v1", with_extra_field("order.cancelled.v1"))
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "v1 with legacy_ref")
    first = git(tmp_path, "rev-parse", "--short", "HEAD").strip()
    write_docs(docs)
    git(tmp_path, "commit", "-qam", "regenerated")

    report = check_contract(docs)
    assert report.stale == []
    (breaking,) = report.breaking
    assert breaking.startswith("order.cancelled.v1: `legacy_ref`: field-removed:")
    assert f"order.cancelled.v1.json at {first}" in breaking

    result = contract("check", "--docs", str(docs), "--no-history")
    assert result.exit_code == 0, result.output
    assert "history not read (--no-history)" in result.output


def test_a_retired_type_deleted_with_its_file_is_not_a_break(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    docs = tmp_path / "docs" / "contract"
    write_docs(docs)
    publish(docs, "payment.retired.v1", {"type": "object", "properties": {}})
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "a type that is later retired")
    (docs / "schemas" / "payment.retired.v1.json").unlink()
    git(tmp_path, "commit", "-qam", "retired")
    assert check_contract(docs).ok


@pytest.mark.parametrize("args", [(), ("--no-history",)])
def test_the_check_exits_non_zero_on_a_break(tmp_path: Path, args: tuple[str, ...]) -> None:
    write_docs(tmp_path)
    schema = event_schema("inventory.stock_changed.v1")
    schema["properties"]["cause"]["enum"].append("stolen")
    publish(tmp_path, "inventory.stock_changed.v1", schema)
    result = contract("check", "--docs", str(tmp_path), *args)
    assert result.exit_code == 1
    assert (
        'breaking  inventory.stock_changed.v1: `cause`: enum-narrowed: no longer allows "stolen"'
        in result.output
    )
