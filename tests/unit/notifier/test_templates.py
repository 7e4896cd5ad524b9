"""Every template renders in both languages with its documented params; a missing param or an
unknown template is a clear permanent problem; HTML is escaped; languages are matched."""

from __future__ import annotations

import pytest

from orderguard.services.notifier.deliveries.templates import (
    LANGUAGES,
    STAFF_TEMPLATE,
    TEMPLATE_PARAMS,
    TemplateProblem,
    Templates,
    language_for,
)
from orderguard.shared.events.notifications import CUSTOMER_TEMPLATES, TEAM_TEMPLATES

TEMPLATES = Templates()


def documented(template: str) -> dict[str, str]:
    required, optional = TEMPLATE_PARAMS[template]
    return {name: f"<{name}-value>" for name in required + optional}


def test_every_customer_team_and_staff_template_is_documented() -> None:
    assert set(TEMPLATE_PARAMS) == {*CUSTOMER_TEMPLATES, *TEAM_TEMPLATES, STAFF_TEMPLATE}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", sorted(TEMPLATE_PARAMS))
def test_every_template_renders_in_every_language(template: str, language: str) -> None:
    params = documented(template)
    rendered = TEMPLATES.render(template, language, params)
    assert rendered.language == language
    assert rendered.subject and "\n" not in rendered.subject
    for name, value in params.items():
        # Every documented param shows in the text; the HTML carries it escaped.
        assert value in rendered.text, f"{template}/{language}: {name} missing from the text"
        escaped = value.replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in rendered.html and value not in rendered.html
    assert f'lang="{language}"' in rendered.html


def test_the_languages_differ() -> None:
    params = documented("order.shipped")
    zh = TEMPLATES.render("order.shipped", "zh-CN", params)
    en = TEMPLATES.render("order.shipped", "en", params)
    assert "已发货" in zh.subject and "shipped" in en.subject


def test_an_optional_param_may_be_left_out() -> None:
    params = documented("shipment.delayed")
    del params["compensation"]
    rendered = TEMPLATES.render("shipment.delayed", "en", params)
    assert "apology" not in rendered.text


@pytest.mark.parametrize("template", sorted(TEMPLATE_PARAMS))
def test_a_missing_param_is_a_clear_problem(template: str) -> None:
    params = documented(template)
    first_required = TEMPLATE_PARAMS[template][0][0]
    del params[first_required]
    with pytest.raises(TemplateProblem, match=rf"needs param\(s\) {first_required}\b"):
        TEMPLATES.render(template, "en", params)


def test_an_unknown_template_is_a_clear_problem() -> None:
    with pytest.raises(TemplateProblem, match=r"unknown template 'order\.teleported'"):
        TEMPLATES.render("order.teleported", "en", {})


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("zh_CN", "zh-CN"),
        ("en", "en"),
        ("en-GB", "en"),
        ("EN-us", "en"),
        ("fr", "zh-CN"),  # unsupported: the default
        (None, "zh-CN"),
    ],
)
def test_the_recipients_language_is_respected_else_the_default(
    tag: str | None, language: str
) -> None:
    assert language_for(tag, "zh-CN") == language
    assert language_for(None, "en") == "en"


def test_params_cannot_inject_template_code() -> None:
    params = documented("order.confirmed") | {"order_id": "{{ 7 * 7 }}"}
    assert "{{ 7 * 7 }}" in TEMPLATES.render("order.confirmed", "en", params).text
