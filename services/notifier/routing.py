"""The routing tree: label matchers -> team queue and channels, Alertmanager-style. Pure, no I/O
except reading the routing file in `load_routing`.

A route matches when all its matchers match the anomaly's labels. Children are tried in order;
the first that matches wins unless it says `continue: true`, in which case the next siblings are
tried too. A route none of whose children match is itself the match, so an anomaly that no
child claims lands on the root's default queue. Children inherit `queue` and `channels`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails

from orderguard.shared.config_files import read_config_text, readable
from orderguard.shared.topics import TEAMS

DEFAULT_ROUTING_FILE = Path(__file__).parent / "routing.yaml"

MatchOp = Literal["=", "!=", "=~", "!~"]
# Delivery channels the notifier knows; the later notifier issue adds more behind one interface.
Channel = Literal["in_app"]

_LABEL_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_MATCHER = re.compile(
    rf"^\s*(?P<name>{_LABEL_NAME})\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$", re.DOTALL
)
_UNESCAPE = {'"': '"', "\\": "\\", "n": "\n"}
EXAMPLES = 'e.g. rule="stock.low", sku!="X-1", rule=~"shipment\\..+"'


class RoutingFileError(ValueError):
    """The routing file cannot be used; the message says where and why."""


def _unquote(raw: str, text: str) -> str:
    """The value of a matcher: "double-quoted" (\\" \\\\ \\n unescaped, other escapes kept for
    regexes like "a\\.b") or bare."""
    if not raw.startswith('"'):
        if '"' in raw:
            raise ValueError(f"matcher {text!r}: a value with quotes must be wholly double-quoted")
        return raw
    value: list[str] = []
    chars = iter(enumerate(raw[1:], start=1))
    for index, char in chars:
        if char == "\\":
            step = next(chars, None)
            if step is None:
                break
            escaped = step[1]
            value.append(_UNESCAPE.get(escaped, "\\" + escaped))
        elif char == '"':
            if index != len(raw) - 1:
                raise ValueError(f"matcher {text!r}: unexpected text after the closing quote")
            return "".join(value)
        else:
            value.append(char)
    raise ValueError(f"matcher {text!r}: the value's closing quote is missing")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class Matcher(BaseModel):
    """One Prometheus-style label matcher, written `name<op>"value"`: `=` equal, `!=` not equal,
    `=~` regex full match, `!~` regex no full match. A missing label matches like an empty one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=rf"^{_LABEL_NAME}$")
    op: MatchOp
    value: str
    _pattern: re.Pattern[str] | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        parsed = _MATCHER.match(raw)
        if parsed is None:
            raise ValueError(
                f"matcher {raw!r} is not label<op>value with op one of = != =~ !~ ({EXAMPLES})"
            )
        return {"name": parsed["name"], "op": parsed["op"], "value": _unquote(parsed["value"], raw)}

    @model_validator(mode="after")
    def _compile(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                # Anchored like Prometheus: the regex must match the whole label value.
                self._pattern = re.compile(self.value)
            except re.error as exc:
                raise ValueError(
                    f"matcher {str(self)!r} has a bad regular expression: {exc}"
                ) from None
        return self

    @classmethod
    def parse(cls, text: str) -> Matcher:
        return cls.model_validate(text)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._pattern is not None
        full = self._pattern.fullmatch(value) is not None
        return full if self.op == "=~" else not full

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"

    @model_serializer
    def _as_text(self) -> str:
        return str(self)


class Route(BaseModel):
    """A node of the routing tree, as written in the routing file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Defaults to the route's path, e.g. root/2",
    )
    matchers: list[Matcher] = Field(default_factory=list)
    queue: str | None = Field(
        default=None, description="A team queue; inherited from the parent when absent"
    )
    channels: list[Channel] | None = Field(
        default=None, description="Inherited from the parent when absent"
    )
    continue_: bool = Field(
        default=False, alias="continue", description="Keep trying later siblings"
    )
    routes: list[Route] = Field(default_factory=list)

    @field_validator("queue")
    @classmethod
    def _known_queue(cls, queue: str | None) -> str | None:
        if queue is not None and queue not in TEAMS:
            raise ValueError(f"unknown queue {queue!r}: expected one of {', '.join(TEAMS)}")
        return queue

    @field_validator("channels")
    @classmethod
    def _no_repeats(cls, channels: list[str] | None) -> list[str] | None:
        if channels is not None and len(set(channels)) != len(channels):
            raise ValueError(f"channels listed twice: {channels}")
        return channels

    def walk(self) -> Iterator[Route]:
        yield self
        for child in self.routes:
            yield from child.walk()


class RoutingConfig(BaseModel):
    """The routing file: one root `route`. (Inhibition and silences will sit beside it.)"""

    model_config = ConfigDict(extra="forbid")

    route: Route

    @model_validator(mode="after")
    def _root_and_names(self) -> RoutingConfig:
        root = self.route
        if root.queue is None:
            raise ValueError(
                "the root route needs a `queue`: the default for anomalies no route matches"
            )
        if root.matchers:
            raise ValueError("the root route matches every anomaly: it takes no `matchers`")
        if root.continue_:
            raise ValueError("the root route has no siblings: `continue` makes no sense there")
        _name_by_path(root, "root")
        seen: set[str] = set()
        for route in root.walk():
            assert route.name is not None
            if route.name in seen:
                raise ValueError(f"route name {route.name!r} is used twice; names must be unique")
            seen.add(route.name)
        return self


def _name_by_path(route: Route, path: str) -> None:
    if route.name is None:
        route.name = path
    for index, child in enumerate(route.routes):
        _name_by_path(child, f"{path}/{index}")


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Where one matching route sends an anomaly (queue and channels resolved by inheritance)."""

    route: str
    queue: str
    channels: tuple[str, ...]
    is_default: bool = False  # the root caught it: no route was written for it


class RoutingTree:
    def __init__(self, config: RoutingConfig, source: str) -> None:
        self.config = config
        self.source = source

    def route(self, labels: Mapping[str, str]) -> list[RouteMatch]:
        """Every route the labels reach, in tree order; never empty (the root catches the rest)."""
        root = self.config.route
        assert root.queue is not None and root.name is not None
        matches = _matches_below(root, labels, root.queue, tuple(root.channels or ()))
        return matches or [
            RouteMatch(root.name, root.queue, tuple(root.channels or ()), is_default=True)
        ]

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, **self.config.model_dump(mode="json", by_alias=True)}


def _matches_below(
    parent: Route, labels: Mapping[str, str], queue: str, channels: tuple[str, ...]
) -> list[RouteMatch]:
    found: list[RouteMatch] = []
    for child in parent.routes:
        if not all(matcher.matches(labels) for matcher in child.matchers):
            continue
        child_queue = child.queue or queue
        child_channels = tuple(child.channels) if child.channels is not None else channels
        assert child.name is not None
        found += _matches_below(child, labels, child_queue, child_channels) or [
            RouteMatch(child.name, child_queue, child_channels)
        ]
        if not child.continue_:
            break
    return found


def parse_routing(text: str, source: str) -> RoutingTree:
    """A routing tree from YAML text; RoutingFileError naming every problem when it is invalid."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutingFileError(f"routing file {source} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise RoutingFileError(f"routing file {source} must be a mapping with a `route` key")
    try:
        return RoutingTree(RoutingConfig.model_validate(document), source)
    except ValidationError as exc:
        problems = "\n".join(f"  {_problem(error)}" for error in exc.errors())
        raise RoutingFileError(f"routing file {source} is invalid:\n{problems}") from None


def load_routing(path: str | Path | None = None) -> RoutingTree:
    """Load and validate the routing file (None: the default shipped with the notifier)."""
    file = Path(path) if path is not None else DEFAULT_ROUTING_FILE
    return parse_routing(read_config_text(file, "routing file", RoutingFileError), str(file))


def _problem(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = readable(error)
    return f"{location}: {message}" if location else message
