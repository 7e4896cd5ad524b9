"""The compatibility rules: which schema changes break the publishers or consumers of a published version."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, create_model

from orderguard.shared.contract import compatibility as rules
from orderguard.shared.contract.compatibility import (
    BreakingChange,
    UnresolvableSchema,
    breaking_changes,
)
from orderguard.shared.contract.schemas import event_schemas


def obj(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}


def found(old: Any, new: Any) -> set[tuple[str, str]]:
    return {(change.field, change.rule) for change in breaking_changes(old, new)}


# -- what is allowed -------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(event_schemas()))
def test_every_current_event_schema_is_compatible_with_itself(event_type: str) -> None:
    schema = event_schemas()[event_type]
    assert breaking_changes(schema, copy.deepcopy(schema)) == []


def test_documentation_changes_are_fine() -> None:
    old = obj(("a",), a={"type": "string", "title": "A"})
    new = obj(
        ("a",),
        a={
            "type": "string",
            "title": "Renamed",
            "description": "now documented",
            "examples": ["x"],
        },
    )
    new["description"] = "An event"
    new["default"] = {}
    assert breaking_changes(old, new) == []


def test_adding_an_optional_field_is_fine() -> None:
    assert breaking_changes(obj(("a",), a=STRING), obj(("a",), a=STRING, b=STRING)) == []


def test_reordering_the_alternatives_of_a_union_is_fine() -> None:
    reordered = {"anyOf": [{"type": "null"}, {"type": "string"}]}
    assert breaking_changes(obj(a=NULLABLE_STRING), obj(a=reordered)) == []


def test_renaming_a_referenced_definition_with_the_same_content_is_fine() -> None:
    old = obj(("line",), line={"$ref": "#/$defs/Line"})
    old["$defs"] = {"Line": obj(("sku",), sku=STRING)}
    new = obj(("line",), line={"$ref": "#/$defs/OrderLine"})
    new["$defs"] = {"OrderLine": obj(("sku",), sku=STRING)}
    assert breaking_changes(old, new) == []


# -- fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("required", [(), ("b",)])
def test_removing_a_field_breaks_consumers_whether_it_was_required_or_not(
    required: tuple[str, ...],
) -> None:
    old = obj(("a", *required), a=STRING, b=STRING)
    assert found(old, obj(("a",), a=STRING)) == {("b", rules.FIELD_REMOVED)}


def test_a_new_required_field_breaks_publishers() -> None:
    assert found(obj(a=STRING), obj(("b",), a=STRING, b=STRING)) == {
        ("b", rules.REQUIRED_FIELD_ADDED)
    }


def test_a_field_that_becomes_required_breaks_publishers() -> None:
    assert found(obj(a=STRING), obj(("a",), a=STRING)) == {("a", rules.FIELD_BECAME_REQUIRED)}


def test_a_field_that_becomes_optional_breaks_consumers_that_rely_on_it() -> None:
    assert found(obj(("a",), a=STRING), obj(a=STRING)) == {("a", rules.FIELD_BECAME_OPTIONAL)}


# -- types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (STRING, INTEGER),
        (INTEGER, {"type": "number"}),
        ({"type": "number"}, INTEGER),
        (STRING, obj(a=STRING)),
        (STRING, {"type": "array", "items": STRING}),
        (STRING, {}),  # any value now
        ({}, STRING),
    ],
)
def test_a_changed_type_breaks(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert found(obj(("a",), a=old), obj(("a",), a=new)) == {("a", rules.TYPE_CHANGED)}


def test_making_a_field_nullable_breaks_consumers_and_the_reverse_breaks_publishers() -> None:
    assert found(obj(("a",), a=STRING), obj(("a",), a=NULLABLE_STRING)) == {
        ("a", rules.TYPE_CHANGED)
    }
    assert found(obj(("a",), a=NULLABLE_STRING), obj(("a",), a=STRING)) == {
        ("a", rules.TYPE_CHANGED)
    }


def test_a_type_list_is_read_like_a_union() -> None:
    as_list = {"type": ["string", "null"]}
    assert breaking_changes(obj(a=as_list), obj(a=NULLABLE_STRING)) == []
    assert found(obj(a=as_list), obj(a=STRING)) == {("a", rules.TYPE_CHANGED)}


def test_the_detail_names_the_old_and_the_new_types() -> None:
    (change,) = breaking_changes(obj(a=STRING), obj(a=NULLABLE_STRING))
    assert change.detail == "was string, now string | null"


def test_a_change_inside_one_alternative_of_a_union_is_found() -> None:
    old = obj(a={"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]})
    new = obj(a={"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]})
    assert found(old, new) == {("a", rules.CONSTRAINT_TIGHTENED)}


def test_alternatives_with_titles_are_paired_by_title() -> None:
    card = obj(("last4",), last4=STRING)
    card["title"] = "Card"
    wallet = obj(("wallet",), wallet=STRING)
    wallet["title"] = "Wallet"
    changed_card = copy.deepcopy(card)
    del changed_card["properties"]["last4"]
    changed_card["required"] = []
    assert found(obj(p={"oneOf": [card, wallet]}), obj(p={"oneOf": [wallet, changed_card]})) == {
        ("p.last4", rules.FIELD_REMOVED)
    }
    assert found(obj(p={"oneOf": [card, wallet]}), obj(p={"oneOf": [card]})) == {
        ("p", rules.TYPE_CHANGED)
    }


# -- enums and literals -----------------------------------------------------------------------


def test_removing_an_enum_value_breaks_publishers() -> None:
    old = obj(a={"type": "string", "enum": ["a", "b", "c"]})
    new = obj(a={"type": "string", "enum": ["a", "b"]})
    (change,) = breaking_changes(old, new)
    assert (change.field, change.rule, change.detail) == (
        "a",
        rules.ENUM_NARROWED,
        'no longer allows "c"',
    )


def test_adding_an_enum_value_breaks_consumers_that_validate() -> None:
    old = obj(a={"type": "string", "enum": ["a", "b"]})
    new = obj(a={"type": "string", "enum": ["a", "b", "c"]})
    (change,) = breaking_changes(old, new)
    assert (change.rule, change.detail) == (rules.ENUM_WIDENED, 'now also allows "c"')


def test_a_const_that_becomes_an_enum_is_widened_and_an_enum_dropped_entirely_too() -> None:
    assert found(
        obj(a={"type": "string", "const": "a"}), obj(a={"type": "string", "enum": ["a", "b"]})
    ) == {("a", rules.ENUM_WIDENED)}
    assert found(obj(a={"type": "string", "enum": ["a"]}), obj(a=STRING)) == {
        ("a", rules.ENUM_WIDENED)
    }
    assert found(obj(a=STRING), obj(a={"type": "string", "enum": ["a"]})) == {
        ("a", rules.ENUM_NARROWED)
    }


def test_reordering_enum_values_is_fine() -> None:
    old = obj(a={"type": "string", "enum": ["a", "b"]})
    assert breaking_changes(old, obj(a={"type": "string", "enum": ["b", "a"]})) == []


# -- constraints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ({"minLength": 1}, {"minLength": 2}, rules.CONSTRAINT_TIGHTENED),
        ({"maxLength": 64}, {"maxLength": 32}, rules.CONSTRAINT_TIGHTENED),
        ({}, {"maxLength": 64}, rules.CONSTRAINT_TIGHTENED),
        ({"maxLength": 32}, {"maxLength": 64}, rules.CONSTRAINT_LOOSENED),
        ({"maxLength": 32}, {}, rules.CONSTRAINT_LOOSENED),
        ({"minLength": 2}, {"minLength": 1}, rules.CONSTRAINT_LOOSENED),
        ({"pattern": "^[0-9]+$"}, {"pattern": "^[0-9a-z]+$"}, rules.CONSTRAINT_CHANGED),
        ({"format": "date-time"}, {"format": "date"}, rules.CONSTRAINT_CHANGED),
        ({}, {"format": "email"}, rules.CONSTRAINT_CHANGED),
    ],
)
def test_string_constraints(old: dict[str, Any], new: dict[str, Any], rule: str) -> None:
    assert found(obj(a={"type": "string", **old}), obj(a={"type": "string", **new})) == {
        ("a", rule)
    }


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ({"exclusiveMinimum": 0}, {"exclusiveMinimum": 1}, rules.CONSTRAINT_TIGHTENED),
        ({"maximum": 100}, {"maximum": 10}, rules.CONSTRAINT_TIGHTENED),
        ({"minimum": 0}, {}, rules.CONSTRAINT_LOOSENED),
        ({"maximum": 10}, {"maximum": 100}, rules.CONSTRAINT_LOOSENED),
        ({"multipleOf": 1}, {"multipleOf": 2}, rules.CONSTRAINT_CHANGED),
    ],
)
def test_number_constraints(old: dict[str, Any], new: dict[str, Any], rule: str) -> None:
    assert found(obj(a={"type": "integer", **old}), obj(a={"type": "integer", **new})) == {
        ("a", rule)
    }


def test_array_bounds_and_item_changes_are_found_at_the_items_path() -> None:
    line = obj(("quantity",), quantity={"type": "integer", "exclusiveMinimum": 0})
    old = obj(("lines",), lines={"type": "array", "items": line, "minItems": 1})
    loosened_line = obj(("quantity",), quantity={"type": "integer"})
    new = obj(("lines",), lines={"type": "array", "items": loosened_line})
    assert found(old, new) == {
        ("lines", rules.CONSTRAINT_LOOSENED),
        ("lines[].quantity", rules.CONSTRAINT_LOOSENED),
    }


def test_positional_items_are_compared_one_by_one() -> None:
    old = obj(p={"type": "array", "prefixItems": [STRING, INTEGER]})
    new = obj(p={"type": "array", "prefixItems": [STRING, STRING]})
    assert found(old, new) == {("p[1]", rules.TYPE_CHANGED)}
    assert found(old, obj(p={"type": "array", "prefixItems": [STRING]})) == {
        ("p", rules.CONSTRAINT_CHANGED)
    }


# -- nested models, maps, closed objects -------------------------------------------------------


def test_changes_inside_referenced_models_are_named_by_their_dotted_path() -> None:
    old = obj(("address",), address={"$ref": "#/$defs/Address"})
    old["$defs"] = {"Address": obj(("city",), city=STRING, postal_code=NULLABLE_STRING)}
    new = copy.deepcopy(old)
    new["$defs"]["Address"]["required"] = ["city", "postal_code"]
    del new["$defs"]["Address"]["properties"]["city"]
    assert found(old, new) == {
        ("address.city", rules.FIELD_REMOVED),
        ("address.postal_code", rules.FIELD_BECAME_REQUIRED),
    }


def test_a_ref_with_sibling_keywords_keeps_them() -> None:
    old = obj(a={"$ref": "#/$defs/Name", "maxLength": 10})
    old["$defs"] = {"Name": STRING}
    new = copy.deepcopy(old)
    new["properties"]["a"]["maxLength"] = 5
    assert found(old, new) == {("a", rules.CONSTRAINT_TIGHTENED)}


def test_all_of_parts_are_merged() -> None:
    base = obj(("id",), id=STRING)
    old = {"allOf": [base, obj(("name",), name=STRING)]}
    new = {"allOf": [base, obj(name=STRING)]}
    assert found(old, new) == {("name", rules.FIELD_BECAME_OPTIONAL)}


def test_map_values_are_compared_as_a_schema() -> None:
    old = obj(labels={"type": "object", "additionalProperties": STRING})
    new = obj(labels={"type": "object", "additionalProperties": INTEGER})
    assert found(old, new) == {("labels.*", rules.TYPE_CHANGED)}
    assert found(old, obj(labels={"type": "object"})) == {("labels.*", rules.TYPE_CHANGED)}


def test_closing_and_opening_an_object_to_unknown_fields_breaks() -> None:
    open_ = obj(a=STRING)
    closed = {**obj(a=STRING), "additionalProperties": False}
    assert found(open_, closed) == {("", rules.CLOSED_TO_UNKNOWN_FIELDS)}
    assert found(closed, open_) == {("", rules.OPENED_TO_UNKNOWN_FIELDS)}
    with_field = {**obj(a=STRING, b=STRING), "additionalProperties": False}
    assert found(closed, with_field) == {("b", rules.FIELD_ADDED_TO_CLOSED_OBJECT)}


def test_a_recursive_model_is_compared_without_looping() -> None:
    def tree(value: dict[str, Any]) -> dict[str, Any]:
        node = obj(
            ("value",),
            value=value,
            children={"type": "array", "items": {"$ref": "#/$defs/Node"}},
        )
        return {"$ref": "#/$defs/Node", "$defs": {"Node": node}}

    assert breaking_changes(tree(STRING), tree(STRING)) == []
    assert found(tree(STRING), tree(INTEGER)) == {("value", rules.TYPE_CHANGED)}


def test_an_unknown_keyword_that_changes_is_reported_as_unprovable() -> None:
    old = obj(a={"type": "string", "not": {"const": "x"}})
    new = obj(a={"type": "string", "not": {"const": "y"}})
    assert found(old, new) == {("a", rules.KEYWORD_CHANGED)}


def test_a_ref_outside_the_document_cannot_be_compared() -> None:
    with pytest.raises(UnresolvableSchema, match="only local"):
        breaking_changes(obj(a={"$ref": "other.json#/A"}), obj(a=STRING))
    with pytest.raises(UnresolvableSchema, match="points at nothing"):
        breaking_changes(obj(a={"$ref": "#/$defs/Missing"}), obj(a=STRING))


def test_the_message_names_the_field_the_rule_and_who_breaks() -> None:
    change = BreakingChange("lines[].quantity", rules.FIELD_REMOVED, "the field was removed")
    assert str(change) == (
        "`lines[].quantity`: field-removed: the field was removed;"
        " consumers that read it no longer get it"
    )
    assert str(BreakingChange("", rules.CLOSED_TO_UNKNOWN_FIELDS, "x")).startswith("`(event)`")


# -- on schemas pydantic generates -----------------------------------------------------------


class PaymentV1(BaseModel):
    payment_id: str
    method: Literal["card", "wallet"]
    amount: Decimal = Field(ge=0)
    note: str | None = None


def changed(**fields: Any) -> dict[str, Any]:
    """PaymentV1's schema after redefining (or adding) some fields: name=(type, default)."""
    return create_model("PaymentV1", __base__=PaymentV1, **fields).model_json_schema()


OLD = PaymentV1.model_json_schema()


def test_pydantic_an_added_optional_field_passes() -> None:
    assert breaking_changes(OLD, changed(refund_of=(str | None, None))) == []


def test_pydantic_a_widened_literal_is_found() -> None:
    assert found(OLD, changed(method=(Literal["card", "wallet", "cash"], ...))) == {
        ("method", rules.ENUM_WIDENED)
    }


def test_pydantic_an_optional_id_is_a_new_type_and_no_longer_required() -> None:
    assert found(OLD, changed(payment_id=(str | None, None))) == {
        ("payment_id", rules.TYPE_CHANGED),
        ("payment_id", rules.FIELD_BECAME_OPTIONAL),
    }


def test_pydantic_a_tighter_bound_is_found() -> None:
    assert found(OLD, changed(amount=(Decimal, Field(ge=1)))) == {
        ("amount", rules.CONSTRAINT_TIGHTENED)
    }


def test_pydantic_a_new_required_field_is_found() -> None:
    assert found(OLD, changed(currency=(str, ...))) == {("currency", rules.REQUIRED_FIELD_ADDED)}
