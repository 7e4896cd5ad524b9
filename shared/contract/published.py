"""The published versions of each event schema: the committed files, and every version in git history.

A published version must stay readable by everyone who used ANY of its past schemas, not only
the last one: regenerating the file in the same commit as a breaking change would otherwise
hide it. So the check reads each schema file as it is in the tree and as it was in every
commit that changed it. Without git (an exported tree), the files in the tree are all there is.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NO_BLOB = "0" * 40


@dataclass(frozen=True)
class PublishedSchema:
    event_type: str
    schema: dict[str, Any]
    where: str  # "docs/contract/schemas/x.v1.json" or "... at 1a2b3c4d"
    in_tree: bool


@dataclass(frozen=True)
class Published:
    schemas: list[PublishedSchema]
    # Why git history was not read, or is incomplete; None when all of it was read.
    history_note: str | None


def _event_type(path: str) -> str:
    return Path(path).name.removesuffix(".json")


def _parsed(text: str | bytes) -> dict[str, Any] | None:
    """A schema file's content; None for one that is not a JSON object (the staleness check names it)."""
    try:
        schema = json.loads(text)
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def _in_tree(schemas_dir: Path, shown_as: Path) -> list[PublishedSchema]:
    found = []
    for path in sorted(schemas_dir.glob("*.json")):
        schema = _parsed(path.read_text())
        if schema is not None:
            found.append(
                PublishedSchema(
                    _event_type(path.name), schema, str(shown_as / path.name), in_tree=True
                )
            )
    return found


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True
    ).stdout


def _in_history(schemas_dir: Path) -> tuple[list[PublishedSchema], str | None]:
    try:
        return _read_history(schemas_dir)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        reason = (
            exc.stderr.decode().strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        )
        return [], f"git history not read ({reason}): compared with the files in the tree only"


def _read_history(schemas_dir: Path) -> tuple[list[PublishedSchema], str | None]:
    top = Path(_git(schemas_dir, "rev-parse", "--show-toplevel").decode().strip())
    relative = schemas_dir.resolve().relative_to(top.resolve()).as_posix()
    log = _git(
        top, "log", "--no-renames", "--format=commit %h", "--raw", "--no-abbrev", "--", relative
    ).decode()
    versions: dict[str, tuple[str, str]] = {}  # blob -> (path, commit)
    commit = ""
    for line in log.splitlines():
        if line.startswith("commit "):
            commit = line.removeprefix("commit ")
        elif line.startswith(":"):
            meta, path = line.split("\t", 1)
            blob = meta.split()[3]
            in_dir = path.rsplit("/", 1)[0] == relative
            if blob != _NO_BLOB and in_dir and path.endswith(".json"):
                versions.setdefault(blob, (path, commit))
    schemas = []
    if versions:
        contents = _git(top, "cat-file", "--batch", stdin="\n".join(versions).encode() + b"\n")
        for blob, text in _blobs(contents):
            path, commit = versions[blob]
            schema = _parsed(text)
            if schema is not None:
                schemas.append(
                    PublishedSchema(_event_type(path), schema, f"{path} at {commit}", in_tree=False)
                )
    shallow = _git(top, "rev-parse", "--is-shallow-repository").decode().strip() == "true"
    return schemas, ("shallow clone: older published versions were not read" if shallow else None)


def _blobs(batch: bytes) -> list[tuple[str, bytes]]:
    """Parse `git cat-file --batch` output: `<sha> blob <size>\\n<content>\\n` per object."""
    found = []
    position = 0
    while position < len(batch):
        header_end = batch.index(b"\n", position)
        sha, _, size = batch[position:header_end].decode().split()
        start = header_end + 1
        found.append((sha, batch[start : start + int(size)]))
        position = start + int(size) + 1
    return found


def published_schemas(schemas_dir: Path, shown_as: Path, history: bool = True) -> Published:
    """Every distinct published schema per event type; `shown_as` is how messages name the dir."""
    schemas = _in_tree(schemas_dir, shown_as) if schemas_dir.is_dir() else []
    note = None
    if history and schemas_dir.is_dir():
        past, note = _in_history(schemas_dir)
        schemas += past
    elif not history:
        note = "history not read (--no-history): compared with the files in the tree only"
    distinct: dict[tuple[str, str], PublishedSchema] = {}
    for schema in schemas:
        canonical = json.dumps(schema.schema, sort_keys=True)
        distinct.setdefault((schema.event_type, canonical), schema)
    return Published(list(distinct.values()), note)
