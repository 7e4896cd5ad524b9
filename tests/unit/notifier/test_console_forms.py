"""The console's pure pieces: a refund form as the aftersales API's body, other services'
problem+json answers as words, and every word of the templates in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from orderguard.services.notifier.console import pages
from orderguard.services.notifier.console.case_pages import refund_body
from orderguard.services.notifier.console.i18n import LANGUAGES, MESSAGES
from orderguard.services.notifier.console.service_client import words_of


def test_a_refund_form_is_one_refund_line() -> None:
    body = refund_body(
        {
            "sku": " MUG ",
            "quantity": "2",
            "amount": "39.90",
            "refund_action": "partial",
            "reason": " cracked ",
        }
    )
    assert body == {
        "lines": [{"sku": "MUG", "quantity": 2, "amount": "39.90", "action": "partial"}],
        "reason": "cracked",
    }


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("quantity", "two", "quantity"), ("amount", "lots", "amount")],
)
def test_a_wrong_refund_field_is_named(field: str, value: str, named: str) -> None:
    given = {"sku": "MUG", "quantity": "1", "amount": "1.00", field: value}
    with pytest.raises(ValueError, match=named):
        refund_body(given)


def test_problems_become_words_and_other_answers_their_status() -> None:
    problem = httpx.Response(
        409,
        json={"type": "x", "title": "Case cannot score now", "detail": "It is in intake."},
    )
    assert words_of("aftersales", problem) == "Case cannot score now: It is in intake."
    assert words_of("logistics", httpx.Response(502, text="<html>")) == (
        "The logistics service answered 502."
    )


def test_every_word_the_templates_ask_for_is_in_both_languages() -> None:
    asked = {
        key
        for template in (pages.HERE / "templates").glob("*.html")
        for key in re.findall(r"""\bt\(["']([a-z_]+)["']\)""", Path(template).read_text())
    }
    assert len(asked) > 100
    missing = {
        (key, language)
        for key in asked
        for language in LANGUAGES
        if language not in MESSAGES.get(key, {})
    }
    assert not missing, sorted(missing)
