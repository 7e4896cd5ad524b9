"""Would a new JSON Schema of a published event version break those who use the old one?

A published version is frozen both ways, except for new optional fields and documentation:
- events valid under the old schema must stay valid under the new one: publishers still send
  them and the topics keep the ones already published (replays, new consumer groups);
- events valid under the new schema must be readable by consumers that validate with the
  old one: they upgrade later than we do, and a pydantic consumer rejects a value its model
  does not allow (a new enum value, a wider type, a looser bound).
A new optional field passes both ways because readers ignore fields they do not know (the
models' content is open). Anything else needs a new version (`<type>.v2`) beside the old one.

Pure: two schemas in, a list of breaking changes out. `$ref`s resolve within each document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

FIELD_REMOVED = "field-removed"
REQUIRED_FIELD_ADDED = "required-field-added"
FIELD_BECAME_REQUIRED = "field-became-required"
FIELD_BECAME_OPTIONAL = "field-became-optional"
TYPE_CHANGED = "type-changed"
ENUM_NARROWED = "enum-narrowed"
ENUM_WIDENED = "enum-widened"
CONSTRAINT_TIGHTENED = "constraint-tightened"
CONSTRAINT_LOOSENED = "constraint-loosened"
CONSTRAINT_CHANGED = "constraint-changed"
CLOSED_TO_UNKNOWN_FIELDS = "closed-to-unknown-fields"
OPENED_TO_UNKNOWN_FIELDS = "opened-to-unknown-fields"
FIELD_ADDED_TO_CLOSED_OBJECT = "field-added-to-closed-object"
KEYWORD_CHANGED = "keyword-changed"

# Who breaks, per rule: the second half of every message.
CONSEQUENCES: dict[str, str] = {
    FIELD_REMOVED: "consumers that read it no longer get it",
    REQUIRED_FIELD_ADDED: "events published without it are now rejected",
    FIELD_BECAME_REQUIRED: "events published without it are now rejected",
    FIELD_BECAME_OPTIONAL: "consumers that rely on it may not get it",
    TYPE_CHANGED: "values of the old type are rejected, or consumers meet a type they do not know",
    ENUM_NARROWED: "events carrying the removed values are now rejected",
    ENUM_WIDENED: "consumers validating with the published schema reject the new values",
    CONSTRAINT_TIGHTENED: "events valid under the published schema are now rejected",
    CONSTRAINT_LOOSENED: "consumers validating with the published schema reject the newly allowed values",
    CONSTRAINT_CHANGED: "values valid on one side are rejected on the other",
    CLOSED_TO_UNKNOWN_FIELDS: "events carrying fields the model does not list are now rejected",
    OPENED_TO_UNKNOWN_FIELDS: "consumers of the published schema reject fields they do not know",
    FIELD_ADDED_TO_CLOSED_OBJECT: "consumers of the published schema reject fields they do not know",
    KEYWORD_CHANGED: "compatibility of this keyword cannot be proven",
}

# Keywords that document a schema without constraining what is valid.
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "examples",
        "example",
        "default",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$schema",
        "$id",
        "$defs",
        "definitions",
        "discriminator",
    }
)
LOWER_BOUNDS = (
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
    "minContains",
)
UPPER_BOUNDS = (
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
    "maxContains",
)
EXACT = ("pattern", "format", "multipleOf", "uniqueItems", "contentEncoding", "contentMediaType")
_HANDLED = ANNOTATIONS | {
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    *LOWER_BOUNDS,
    *UPPER_BOUNDS,
    *EXACT,
}


@dataclass(frozen=True)
class BreakingChange:
    """One change that breaks a publisher or a consumer of the published schema."""

    field: str  # dotted path: `lines[].quantity`, `labels.*` (map values); "" is the event itself
    rule: str
    detail: str

    @property
    def consequence(self) -> str:
        return CONSEQUENCES[self.rule]

    def __str__(self) -> str:
        return f"`{self.field or '(event)'}`: {self.rule}: {self.detail}; {self.consequence}"


class UnresolvableSchema(ValueError):
    pass


def breaking_changes(old: Any, new: Any) -> list[BreakingChange]:
    """Every change from `old` (published) to `new` that breaks a publisher or a consumer."""
    comparison = _Comparison(old, new)
    comparison.schema(old, new, "")
    return list(dict.fromkeys(comparison.changes))


def _as_schema(schema: Any) -> dict[str, Any]:
    if schema is True:
        return {}
    if schema is False:
        return {"not": {}}
    if not isinstance(schema, dict):
        raise UnresolvableSchema(f"not a schema: {schema!r}")
    return schema


def _pointer(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        raise UnresolvableSchema(f"only local $refs are supported, not {ref!r}")
    node = root
    for raw in ref[1:].split("/")[1:]:
        step = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            raise UnresolvableSchema(f"$ref {ref!r} points at nothing")
    return node


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _kind(schema: dict[str, Any]) -> str:
    """The one JSON type a (single-branch) schema allows; "any" when it does not say."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    if "const" in schema:
        return _json_type(schema["const"])
    if isinstance(schema.get("enum"), list):
        kinds = {_json_type(value) for value in schema["enum"]}
        return kinds.pop() if len(kinds) == 1 else "any"
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "nothing" if schema.get("not") == {} else "any"


def _values(schema: dict[str, Any]) -> list[Any] | None:
    """The values an enum or const allows; None when it is not restricted to a list."""
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _shown(values: list[Any]) -> str:
    return ", ".join(json.dumps(value) for value in values)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Comparison:
    def __init__(self, old_root: Any, new_root: Any) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.changes: list[BreakingChange] = []
        # $ref pairs being compared further up: a recursive model is compared once per path.
        self._active: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()

    def add(self, path: str, rule: str, detail: str) -> None:
        self.changes.append(BreakingChange(path, rule, detail))

    # -- resolving -----------------------------------------------------------------------

    def _resolve(self, schema: Any, root: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Follow $refs (keeping sibling keywords) and merge allOf parts into one schema."""
        resolved = _as_schema(schema)
        refs: list[str] = []
        while "$ref" in resolved:
            ref = resolved["$ref"]
            if ref in refs:
                raise UnresolvableSchema(f"$ref {ref!r} refers to itself")
            refs.append(ref)
            siblings = {key: value for key, value in resolved.items() if key != "$ref"}
            resolved = {**_as_schema(_pointer(root, ref)), **siblings}
        if "allOf" in resolved:
            merged = {key: value for key, value in resolved.items() if key != "allOf"}
            for part in resolved["allOf"]:
                part_schema, part_refs = self._resolve(part, root)
                refs += part_refs
                for key, value in part_schema.items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif key == "required":
                        merged["required"] = sorted({*merged.get("required", []), *value})
                    else:
                        merged.setdefault(key, value)
            resolved = merged
        return resolved, tuple(refs)

    def _branches(self, schema: dict[str, Any], root: Any) -> list[Any]:
        """The alternatives of a schema: anyOf/oneOf members and `type: [a, b]` split apart."""
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                shared = {
                    key: value
                    for key, value in schema.items()
                    if key not in ("anyOf", "oneOf") and key not in ANNOTATIONS
                }
                branches: list[Any] = []
                for member in schema[keyword]:
                    member_schema = _as_schema(member)
                    combined = {**member_schema, **shared} if shared else member_schema
                    inner, _ = self._resolve(combined, root)
                    if "anyOf" in inner or "oneOf" in inner:
                        branches += self._branches(inner, root)
                    else:
                        branches.append(combined)
                return branches
        declared = schema.get("type")
        if isinstance(declared, list) and len(declared) > 1:
            return [{**schema, "type": name} for name in declared]
        if isinstance(declared, list) and declared:
            return [{**schema, "type": declared[0]}]
        return [schema]

    # -- comparing -----------------------------------------------------------------------

    def schema(self, old: Any, new: Any, path: str) -> None:
        old_schema, old_refs = self._resolve(old, self.old_root)
        new_schema, new_refs = self._resolve(new, self.new_root)
        pair = (old_refs, new_refs)
        if pair in self._active:
            return
        if old_refs or new_refs:
            self._active.add(pair)
        try:
            self._compare(old_schema, new_schema, path)
        finally:
            self._active.discard(pair)

    def _compare(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_branches = self._branches(old, self.old_root)
        new_branches = self._branches(new, self.new_root)
        if len(old_branches) == 1 and len(new_branches) == 1:
            self._single(
                self._resolve(old_branches[0], self.old_root)[0],
                self._resolve(new_branches[0], self.new_root)[0],
                path,
            )
        else:
            self._union(old_branches, new_branches, path)

    def _union(self, old: list[Any], new: list[Any], path: str) -> None:
        old_by_kind = self._by_kind(old, self.old_root)
        new_by_kind = self._by_kind(new, self.new_root)
        if set(old_by_kind) != set(new_by_kind):
            self._type_changed(path, list(old_by_kind), list(new_by_kind))
        for kind in old_by_kind.keys() & new_by_kind.keys():
            for old_branch, new_branch in self._pairs(old_by_kind[kind], new_by_kind[kind], path):
                self.schema(old_branch, new_branch, path)

    def _by_kind(self, branches: list[Any], root: Any) -> dict[str, list[Any]]:
        by_kind: dict[str, list[Any]] = {}
        for branch in branches:
            by_kind.setdefault(_kind(self._resolve(branch, root)[0]), []).append(branch)
        return by_kind

    def _pairs(self, old: list[Any], new: list[Any], path: str) -> Iterator[tuple[Any, Any]]:
        """Alternatives of one kind, paired by title when every one has one, else in order."""
        old_titles = [self._resolve(branch, self.old_root)[0].get("title") for branch in old]
        new_titles = [self._resolve(branch, self.new_root)[0].get("title") for branch in new]
        if all(old_titles) and all(new_titles):
            new_by_title = dict(zip(new_titles, new, strict=True))
            for title, branch in zip(old_titles, old, strict=True):
                if title in new_by_title:
                    yield branch, new_by_title[title]
                else:
                    self.add(path, TYPE_CHANGED, f"the alternative {title} was removed")
            for title in new_titles:
                if title not in old_titles:
                    self.add(path, TYPE_CHANGED, f"the alternative {title} was added")
            return
        if len(old) != len(new):
            self.add(
                path,
                TYPE_CHANGED,
                f"had {len(old)} alternatives of one type, now {len(new)}",
            )
        yield from zip(old, new, strict=False)

    def _type_changed(self, path: str, old: list[str], new: list[str]) -> None:
        self.add(path, TYPE_CHANGED, f"was {' | '.join(old)}, now {' | '.join(new)}")

    def _single(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_kind, new_kind = _kind(old), _kind(new)
        if old_kind != new_kind:
            self._type_changed(path, [old_kind], [new_kind])
            return
        self._enum(old, new, path)
        self._bounds(old, new, path)
        if old_kind in ("object", "any"):
            self._object(old, new, path)
        if old_kind in ("array", "any"):
            self._array(old, new, path)
        for keyword in sorted((old.keys() | new.keys()) - _HANDLED):
            if _canonical(old.get(keyword)) != _canonical(new.get(keyword)):
                self.add(path, KEYWORD_CHANGED, f"`{keyword}` changed")

    def _enum(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_values, new_values = _values(old), _values(new)
        if old_values is None and new_values is None:
            return
        if old_values is None:
            self.add(path, ENUM_NARROWED, f"now only {_shown(new_values or [])}")
            return
        if new_values is None:
            self.add(path, ENUM_WIDENED, f"was only {_shown(old_values)}, now any value")
            return
        new_keys = {_canonical(value) for value in new_values}
        old_keys = {_canonical(value) for value in old_values}
        removed = [value for value in old_values if _canonical(value) not in new_keys]
        added = [value for value in new_values if _canonical(value) not in old_keys]
        if removed:
            self.add(path, ENUM_NARROWED, f"no longer allows {_shown(removed)}")
        if added:
            self.add(path, ENUM_WIDENED, f"now also allows {_shown(added)}")

    def _bounds(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        for keyword, raising_tightens in [(k, True) for k in LOWER_BOUNDS] + [
            (k, False) for k in UPPER_BOUNDS
        ]:
            before, after = old.get(keyword), new.get(keyword)
            if before == after:
                continue
            if before is None:
                self.add(path, CONSTRAINT_TIGHTENED, f"adds {keyword} {after}")
            elif after is None:
                self.add(path, CONSTRAINT_LOOSENED, f"drops {keyword} {before}")
            else:
                tightened = (after > before) == raising_tightens
                self.add(
                    path,
                    CONSTRAINT_TIGHTENED if tightened else CONSTRAINT_LOOSENED,
                    f"{keyword} {before} -> {after}",
                )
        for keyword in EXACT:
            before, after = old.get(keyword), new.get(keyword)
            if before != after:
                self.add(
                    path,
                    CONSTRAINT_CHANGED,
                    f"{keyword} {json.dumps(before)} -> {json.dumps(after)}",
                )

    def _object(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_fields: dict[str, Any] = old.get("properties", {})
        new_fields: dict[str, Any] = new.get("properties", {})
        old_required = set(old.get("required", []))
        new_required = set(new.get("required", []))
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        for name in old_fields:
            if name not in new_fields:
                self.add(_child(path, name), FIELD_REMOVED, "the field was removed")
        for name in new_fields:
            if name in old_fields:
                continue
            if name in new_required:
                self.add(_child(path, name), REQUIRED_FIELD_ADDED, "a new field is required")
            elif old_extra is False:
                self.add(
                    _child(path, name),
                    FIELD_ADDED_TO_CLOSED_OBJECT,
                    "a new field on an object that allowed no other fields",
                )
        for name in sorted(new_required - old_required - new_fields.keys()):
            self.add(_child(path, name), REQUIRED_FIELD_ADDED, "a new field is required")
        for name, old_field in old_fields.items():
            if name not in new_fields:
                continue
            if name in new_required and name not in old_required:
                self.add(_child(path, name), FIELD_BECAME_REQUIRED, "was optional, now required")
            if name in old_required and name not in new_required:
                self.add(_child(path, name), FIELD_BECAME_OPTIONAL, "was required, now optional")
            self.schema(old_field, new_fields[name], _child(path, name))
        if old_extra is False and new_extra is not False:
            self.add(path, OPENED_TO_UNKNOWN_FIELDS, "allowed no other fields, now does")
        elif old_extra is not False and new_extra is False:
            self.add(path, CLOSED_TO_UNKNOWN_FIELDS, "allowed other fields, now does not")
        elif isinstance(old_extra, dict) or isinstance(new_extra, dict):
            self.schema(
                {} if old_extra is True else old_extra,
                {} if new_extra is True else new_extra,
                _child(path, "*"),
            )

    def _array(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        old_prefix: list[Any] = old.get("prefixItems", [])
        new_prefix: list[Any] = new.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            self.add(
                path,
                CONSTRAINT_CHANGED,
                f"had {len(old_prefix)} positional items, now {len(new_prefix)}",
            )
        for index, (old_item, new_item) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            self.schema(old_item, new_item, f"{path}[{index}]")
        if "items" in old or "items" in new:
            self.schema(old.get("items", True), new.get("items", True), f"{path}[]")
