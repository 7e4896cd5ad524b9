"""The routing file, Alertmanager-style: a tree of routes (label matchers -> team queue and
channels, grouping and its timers, severity raise), the severity levels with their processing
time limits, and the inhibition rules. Pure, no I/O except reading the file in `load_routing`.

A route matches when all its matchers match the anomaly's labels. Children are tried in order;
the first that matches wins unless it says `continue: true`, in which case the next siblings are
tried too. A route none of whose children match is itself the match, so an anomaly that no
child claims lands on the root's default queue. Children inherit `queue`, `channels`,
`group_by`, the three group timers and `raise_severity_to`.

Unlike Alertmanager, `repeat_interval` is honoured exactly as written: it is not rounded up to
a multiple of `group_interval` (see `router/group.py`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails

from orderguard.services.notifier.channels.base import ChannelKind
from orderguard.shared.config_files import read_config_text, readable
from orderguard.shared.events.anomalies import Severity
from orderguard.shared.topics import TEAMS

DEFAULT_ROUTING_FILE = Path(__file__).parent / "routing.yaml"

MatchOp = Literal["=", "!=", "=~", "!~"]
# Where a route notifies people: in_app (the notifications list) or an outgoing channel, sent
# when the deployment configured it (services/notifier/channels).
Channel = Literal["in_app"] | ChannelKind

_LABEL_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_MATCHER = re.compile(
    rf"^\s*(?P<name>{_LABEL_NAME})\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$", re.DOTALL
)
_UNESCAPE = {'"': '"', "\\": "\\", "n": "\n"}
EXAMPLES = 'e.g. rule="stock.low", sku!="X-1", rule=~"shipment\\..+"'


SEVERITIES: tuple[Severity, ...] = ("P1", "P2", "P3", "P4")  # most urgent first

_DURATION = re.compile(r"(?P<amount>\d+)(?P<unit>ms|s|m|h|d|w)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


class RoutingFileError(ValueError):
    """The routing file cannot be used; the message says where and why."""


def parse_duration(text: str) -> timedelta:
    """A Prometheus-style duration: `30s`, `5m`, `1h30m`, `3d`, `0s` (units ms s m h d w)."""
    raw = text.strip()
    position = 0
    total = timedelta()
    for part in _DURATION.finditer(raw):
        if part.start() != position:
            break
        total += int(part["amount"]) * _UNITS[part["unit"]]
        position = part.end()
    if not raw or position != len(raw):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h30m or 3d")
    return total


def format_duration(value: timedelta) -> str:
    """The shortest Prometheus-style spelling of a duration (`1h30m`, `0s`)."""
    left = int(value / timedelta(milliseconds=1))
    if left == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        amount, left = divmod(left, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _as_duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit: write a duration like 30s, 5m or 4h")
    return value


def raised(severity: Severity, floor: Severity | None) -> Severity:
    """`severity`, raised to `floor` when that is more urgent; never lowered."""
    if floor is None:
        return severity
    return min(severity, floor, key=SEVERITIES.index)


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
    group_by: list[str] | None = Field(
        default=None,
        description="Labels whose values make a group (one work item, one batch of"
        " notifications); inherited; absent or []: each anomaly is its own group, routed at once",
    )
    group_wait: timedelta | None = Field(
        default=None,
        description="How long a new group waits for more members before its first"
        " flush; inherited (root default 0s)",
    )
    group_interval: timedelta | None = Field(
        default=None,
        description="After a flush, how long before members added or resolved since are flushed;"
        " inherited (root default 0s)",
    )
    repeat_interval: timedelta | None = Field(
        default=None,
        description="After a flush, when the still-firing members are published again if nothing"
        " changed; exact, not rounded to group_interval; inherited (root default: never)",
    )
    raise_severity_to: Severity | None = Field(
        default=None,
        description="Anomalies routed here are at least this urgent (never lowered); inherited",
    )
    routes: list[Route] = Field(default_factory=list)

    @field_validator("group_wait", "group_interval", "repeat_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _as_duration(value)

    @field_validator("group_wait", "group_interval", "repeat_interval")
    @classmethod
    def _not_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta():
            raise ValueError("a duration cannot be negative")
        return value

    @field_validator("repeat_interval")
    @classmethod
    def _repeat_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta():
            raise ValueError("repeat_interval must be longer than 0s (leave it out: never repeat)")
        return value

    @field_serializer("group_wait", "group_interval", "repeat_interval")
    def _show_duration(self, value: timedelta | None) -> str | None:
        return None if value is None else format_duration(value)

    @field_validator("group_by")
    @classmethod
    def _label_names(cls, labels: list[str] | None) -> list[str] | None:
        if labels is None:
            return None
        for label in labels:
            if not re.fullmatch(_LABEL_NAME, label):
                raise ValueError(f"group_by label {label!r} is not a label name")
        if len(set(labels)) != len(labels):
            raise ValueError(f"group_by lists a label twice: {labels}")
        return labels

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


class SeverityLevel(BaseModel):
    """What a severity level means for the people who work it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_limit: timedelta = Field(
        description="Processing time limit: a work item of this severity is due this long after"
        " it is opened (the work-items SLA)"
    )
    description: str = ""

    @field_validator("time_limit", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _as_duration(value)

    @field_serializer("time_limit")
    def _show_duration(self, value: timedelta) -> str:
        return format_duration(value)

    @field_validator("time_limit")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta():
            raise ValueError("a time limit must be longer than 0s")
        return value


DEFAULT_SEVERITIES: dict[Severity, SeverityLevel] = {
    "P1": SeverityLevel(time_limit=timedelta(hours=4), description="page now"),
    "P2": SeverityLevel(time_limit=timedelta(days=1), description="today"),
    "P3": SeverityLevel(time_limit=timedelta(days=2), description="within two working days"),
    "P4": SeverityLevel(time_limit=timedelta(days=3), description="when convenient"),
}


class InhibitRule(BaseModel):
    """While an anomaly matching `source_matchers` fires, anomalies matching `target_matchers`
    with the same values of every `equal` label are inhibited (recorded, not routed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    source_matchers: list[Matcher] = Field(min_length=1)
    target_matchers: list[Matcher] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    @field_validator("equal")
    @classmethod
    def _label_names(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not re.fullmatch(_LABEL_NAME, label):
                raise ValueError(f"equal label {label!r} is not a label name")
        return labels

    def is_source(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.source_matchers)

    def is_target(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.target_matchers)

    def inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        """`source` (firing) inhibits `target`. An anomaly never inhibits itself (the caller
        compares fingerprints); an `equal` label missing on both sides counts as equal, like
        Alertmanager."""
        return (
            self.is_target(target)
            and self.is_source(source)
            and all(source.get(label, "") == target.get(label, "") for label in self.equal)
        )


class RoutingConfig(BaseModel):
    """The routing file: one root `route`, the `severities` and the `inhibit_rules`."""

    model_config = ConfigDict(extra="forbid")

    route: Route
    severities: dict[Severity, SeverityLevel] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES),
        description="Processing time limit per level; levels not written keep their defaults",
    )
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)

    @field_validator("severities", mode="after")
    @classmethod
    def _every_level(cls, levels: dict[Severity, SeverityLevel]) -> dict[Severity, SeverityLevel]:
        merged = {**DEFAULT_SEVERITIES, **levels}
        ordered = [merged[level].time_limit for level in SEVERITIES]
        if ordered != sorted(ordered):
            shown = ", ".join(
                f"{level}: {format_duration(merged[level].time_limit)}" for level in SEVERITIES
            )
            raise ValueError(f"a more urgent level cannot have a longer time limit ({shown})")
        return {level: merged[level] for level in SEVERITIES}

    def time_limit(self, severity: Severity) -> timedelta:
        """The processing time limit of a severity level (work items' SLA)."""
        return self.severities[severity].time_limit

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
        for index, rule in enumerate(self.inhibit_rules):
            if rule.name is None:
                self.inhibit_rules[index] = rule.model_copy(update={"name": f"inhibit/{index}"})
        return self


def _name_by_path(route: Route, path: str) -> None:
    if route.name is None:
        route.name = path
    for index, child in enumerate(route.routes):
        _name_by_path(child, f"{path}/{index}")


@dataclass(frozen=True, slots=True)
class GroupTimers:
    group_wait: timedelta = timedelta()
    group_interval: timedelta = timedelta()
    repeat_interval: timedelta | None = None  # None: never published again unchanged


@dataclass(frozen=True, slots=True)
class _Inherited:
    """What a route passes down to its children."""

    queue: str
    channels: tuple[str, ...]
    group_by: tuple[str, ...]
    timers: GroupTimers
    raise_severity_to: Severity | None

    def below(self, route: Route) -> _Inherited:
        timers = self.timers
        return _Inherited(
            queue=route.queue or self.queue,
            channels=tuple(route.channels) if route.channels is not None else self.channels,
            group_by=tuple(route.group_by) if route.group_by is not None else self.group_by,
            timers=GroupTimers(
                route.group_wait if route.group_wait is not None else timers.group_wait,
                route.group_interval if route.group_interval is not None else timers.group_interval,
                route.repeat_interval
                if route.repeat_interval is not None
                else timers.repeat_interval,
            ),
            # A child's raise adds to its parent's: the more urgent floor wins, never a lower one.
            raise_severity_to=route.raise_severity_to
            if self.raise_severity_to is None
            else raised(self.raise_severity_to, route.raise_severity_to),
        )


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Where one matching route sends an anomaly (everything resolved by inheritance)."""

    route: str
    queue: str
    channels: tuple[str, ...]
    is_default: bool = False  # the root caught it: no route was written for it
    group_by: tuple[str, ...] = ()
    timers: GroupTimers = GroupTimers()
    raise_severity_to: Severity | None = None

    def group_key(self, labels: Mapping[str, str]) -> str | None:
        """The group an anomaly with these labels joins on this route; None: it is its own."""
        if not self.group_by:
            return None
        values = ",".join(f"{label}={_quote(labels.get(label, ''))}" for label in self.group_by)
        return f"{self.route}:{{{values}}}"

    def severity(self, severity: Severity) -> Severity:
        return raised(severity, self.raise_severity_to)


class RoutingTree:
    def __init__(self, config: RoutingConfig, source: str, version: str = "") -> None:
        self.config = config
        self.source = source
        self.version = version  # a digest of the file's text: which file is in force
        root = config.route
        assert root.queue is not None and root.name is not None
        self._root = root
        self._top = _Inherited(
            queue=root.queue,
            channels=tuple(root.channels or ()),
            group_by=tuple(root.group_by or ()),
            timers=GroupTimers(
                root.group_wait or timedelta(),
                root.group_interval or timedelta(),
                root.repeat_interval,
            ),
            raise_severity_to=root.raise_severity_to,
        )

    def route(self, labels: Mapping[str, str]) -> list[RouteMatch]:
        """Every route the labels reach, in tree order; never empty (the root catches the rest)."""
        matches = _matches_below(self._root, labels, self._top)
        assert self._root.name is not None
        return matches or [_match(self._root.name, self._top, is_default=True)]

    def inhibitions(self) -> list[InhibitRule]:
        return self.config.inhibit_rules

    def time_limit(self, severity: Severity) -> timedelta:
        return self.config.time_limit(severity)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.version,
            **self.config.model_dump(mode="json", by_alias=True, exclude_none=False),
        }


def _match(name: str, inherited: _Inherited, is_default: bool = False) -> RouteMatch:
    return RouteMatch(
        route=name,
        queue=inherited.queue,
        channels=inherited.channels,
        is_default=is_default,
        group_by=inherited.group_by,
        timers=inherited.timers,
        raise_severity_to=inherited.raise_severity_to,
    )


def _matches_below(
    parent: Route, labels: Mapping[str, str], inherited: _Inherited
) -> list[RouteMatch]:
    found: list[RouteMatch] = []
    for child in parent.routes:
        if not all(matcher.matches(labels) for matcher in child.matchers):
            continue
        below = inherited.below(child)
        assert child.name is not None
        found += _matches_below(child, labels, below) or [_match(child.name, below)]
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
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    try:
        return RoutingTree(RoutingConfig.model_validate(document), source, version)
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
