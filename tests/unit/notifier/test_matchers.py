"""Prometheus-style label matchers: parsing, matching, and their errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orderguard.services.notifier.routing import Matcher


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('sku="X-1"', "sku", "=", "X-1"),
        ('sku != "X-1"', "sku", "!=", "X-1"),
        (
            'rule=~"shipment\\..+"',
            "rule",
            "=~",
            "shipment\\..+",
        ),  # unknown escapes kept for regexes
        (
            'rule=~"shipment\\\\..+"',
            "rule",
            "=~",
            "shipment\\..+",
        ),  # or written doubled, as in PromQL
        ('rule!~"stock.*"', "rule", "!~", "stock.*"),
        ("warehouse=main", "warehouse", "=", "main"),  # bare values, like Alertmanager
        ('note="say \\"hi\\""', "note", "=", 'say "hi"'),
        ('note="a=b!=c"', "note", "=", "a=b!=c"),
        ('empty=""', "empty", "=", ""),
    ],
)
def test_parses_name_operator_and_value(text: str, name: str, op: str, value: str) -> None:
    matcher = Matcher.parse(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


@pytest.mark.parametrize(
    "text", ['sku="X-1"', 'rule=~"shipment\\\\..+"', 'note="say \\"hi\\""', 'a!~"x|y"']
)
def test_renders_back_to_text_that_parses_to_the_same_matcher(text: str) -> None:
    matcher = Matcher.parse(text)
    assert Matcher.parse(str(matcher)) == matcher
    assert matcher.model_dump(mode="json") == str(matcher)


def test_accepts_the_structured_form_too() -> None:
    assert Matcher.model_validate({"name": "sku", "op": "=", "value": "X"}) == Matcher.parse(
        'sku="X"'
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("sku", "is not label<op>value"),
        ('sku=="X"', "double-quoted"),
        ('9sku="X"', "is not label<op>value"),
        ('sku="X', "closing quote is missing"),
        ('sku="X"Y', "after the closing quote"),
        ('rule=~"(unclosed"', "bad regular expression"),
        ('rule!~"*"', "bad regular expression"),
    ],
)
def test_rejects_bad_matchers_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValidationError) as failure:
        Matcher.parse(text)
    assert problem in str(failure.value)


LABELS = {"rule": "shipment.stalled", "sku": "X-1", "carrier": "sf"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('sku="X-1"', True),
        ('sku="X-2"', False),
        ('sku!="X-2"', True),
        ('sku!="X-1"', False),
        ('rule=~"shipment\\..+"', True),
        ('rule=~"shipment"', False),  # anchored: a prefix is not a match
        ('rule=~"stalled"', False),  # nor is a substring
        ('rule=~"ship.*|stock.*"', True),  # alternation is anchored as a whole
        ('rule=~"x|shipment.stalled"', True),
        ('rule!~"shipment"', True),
        ('rule!~"shipment\\..+"', False),
        ('carrier=~"SF"', False),  # case-sensitive
    ],
)
def test_matching(text: str, expected: bool) -> None:
    assert Matcher.parse(text).matches(LABELS) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('region=""', True),
        ('region!="eu"', True),
        ('region="eu"', False),
        ('region=~".*"', True),
        ('region=~".+"', False),
    ],
)
def test_a_missing_label_matches_like_an_empty_one(text: str, expected: bool) -> None:
    assert Matcher.parse(text).matches(LABELS) is expected
