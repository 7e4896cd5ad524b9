"""Message templates per template name and language (services/notifier/templates/<lang>/):
`<name>.subject.txt`, `<name>.txt` and `<name>.html` (autoescaped), rendered by a sandboxed
Jinja2 environment. A missing parameter or an unknown template is a permanent failure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from orderguard.shared.events.notifications import CUSTOMER_TEMPLATES, TEAM_TEMPLATES

TEMPLATE_DIR = Path(__file__).parent.parent / "templates"
LANGUAGES = ("zh-CN", "en")
STAFF_TEMPLATE = "anomaly.routed"

# The params each template documents: (required, optional). Mirrors CUSTOMER_TEMPLATES' notes.
TEMPLATE_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "order.confirmed": (("order_id", "total_amount"), ()),
    "order.held": (("order_id", "reason", "what_you_can_do"), ()),
    "order.out_of_stock": (("order_id", "skus", "what_you_can_do"), ()),
    "order.shipped": (("order_id", "carrier", "tracking_number"), ()),
    "shipment.delayed": (("order_id", "carrier", "reason"), ("compensation",)),
    "refund.issued": (("order_id", "amount"), ()),
    "case.updated": (("case_id", "order_id", "case_type", "status"), ()),
    STAFF_TEMPLATE: (("rule", "severity", "queue", "route", "summary", "fingerprint"), ("labels",)),
    # To a team, from its work items (services/notifier/work_items).
    "work_item.escalated": (
        ("work_item_id", "team", "tier", "severity", "title", "missed", "due_at"),
        (),
    ),
    "work_item.reminder": (
        ("work_item_id", "team", "tier", "severity", "title", "claim_due_at"),
        (),
    ),
}
assert {*CUSTOMER_TEMPLATES, *TEAM_TEMPLATES} <= set(TEMPLATE_PARAMS), "a template has no params"


class TemplateProblem(ValueError):
    """The request cannot be rendered, now or ever (unknown template, missing param)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    language: str
    subject: str
    text: str
    html: str


def language_for(requested: str | None, default: str) -> str:
    """The supported language closest to a BCP 47 tag: zh, zh-Hans, zh-CN → zh-CN; en-GB → en."""
    for tag in (requested, default):
        if not tag:
            continue
        primary = tag.replace("_", "-").split("-")[0].lower()
        for language in LANGUAGES:
            if language.split("-")[0].lower() == primary:
                return language
    return LANGUAGES[0]


class Templates:
    def __init__(self, directory: Path = TEMPLATE_DIR) -> None:
        # Sandboxed: params come from other services; autoescape only for the HTML files.
        self._env = SandboxedEnvironment(
            loader=FileSystemLoader(directory),
            autoescape=lambda name: bool(name and name.endswith(".html")),
            undefined=StrictUndefined,
            keep_trailing_newline=False,
        )

    def render(self, template: str, language: str, params: dict[str, str]) -> Rendered:
        documented = TEMPLATE_PARAMS.get(template)
        if documented is None:
            raise TemplateProblem(
                f"unknown template {template!r}; known: {', '.join(sorted(TEMPLATE_PARAMS))}"
            )
        required, optional = documented
        missing = [name for name in required if not params.get(name)]
        if missing:
            raise TemplateProblem(
                f"template {template!r} needs param(s) {', '.join(missing)}"
                f" (documented: {', '.join(required + optional)})"
            )
        context = {name: "" for name in optional} | params
        try:
            subject = self._env.get_template(f"{language}/{template}.subject.txt").render(context)
            text = self._env.get_template(f"{language}/{template}.txt").render(context)
            html = self._env.get_template(f"{language}/{template}.html").render(
                {**context, "subject": subject.strip()}
            )
        except TemplateNotFound as exc:
            raise TemplateProblem(f"template file {exc.name} is missing") from None
        except TemplateError as exc:
            raise TemplateProblem(f"template {template!r} ({language}) failed: {exc}") from None
        return Rendered(language, " ".join(subject.split()), text.strip(), html)
