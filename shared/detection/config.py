"""Detector thresholds and windows: each rule's defaults, the detectors file, overrides by label.

Every rule declares a pydantic `Params` model and the labels it can be overridden by. The
detectors file (ORDERGUARD_DETECTORS_FILE; optional, built-in defaults without it) sets them:

    rules:
      stock.low:
        enabled: true
        params: {threshold: 10, hysteresis: 0}
        overrides:
          - match: {warehouse: WH-SH}
            params: {threshold: 20}
          - match: {sku: SKU-1, warehouse: WH-SH}
            params: {hysteresis: 2}

Precedence, lowest first:
  1. the defaults of the rule's `Params` (and the settings that predate this file, see
     `builtin_params`);
  2. the rule's `params` in the file;
  3. every override whose `match` labels all equal the event's, from least to most specific
     (more labels = more specific; ties in file order), each setting only the params it names;
  4. a value the event itself carries, when the rule takes one (e.g. the low-stock threshold a
     SKU sets over HTTP): the rule documents it.
The merged result is validated against `Params`. Loading checks the whole file against every
rule of every service (the file is shared; `cli/services_registry.py` lists the rules) and
fails with ONE `DetectorConfigError` naming each problem and where it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orderguard.shared.config_files import read_config_text, readable
from orderguard.shared.logging import get_logger
from orderguard.shared.settings import Settings

if TYPE_CHECKING:
    from orderguard.shared.runtime import Runtime

log = get_logger(__name__)

# Distinct label tuples whose resolved params stay cached per rule (e.g. SKU x warehouse).
PARAMS_CACHE_SIZE = 65_536

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R")


class DetectorConfigError(ValueError):
    """The detectors file cannot be used; the message names every problem and where it is."""


class ConfigurableRule(Protocol):
    """What a rule declares about its configuration (class attributes)."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    # The labels an override may `match` on, e.g. ("sku", "warehouse").
    override_labels: ClassVar[tuple[str, ...]]


def builtin_params(settings: Settings) -> dict[str, dict[str, Any]]:
    """Rule params a service's settings set (e.g. inventory's default low-stock threshold): the
    built-in defaults, under the detectors file's."""
    return settings.detector_defaults()


@dataclass(frozen=True, slots=True)
class Override:
    """One `overrides` entry: the params it sets for events whose labels all equal `match`."""

    match: Mapping[str, str]
    params: Mapping[str, Any]
    position: int  # in the file: breaks ties between equally specific overrides

    @property
    def labels(self) -> frozenset[tuple[str, str]]:
        return frozenset(self.match.items())


class RuleConfig(Generic[P]):
    """The configuration of one rule: resolves its params for an event's labels, cheaply.

    Resolved params are cached per distinct tuple of label values (bounded, least recently
    used first out); a rule without overrides returns its base params without a lookup.
    """

    def __init__(
        self,
        name: str,
        params_model: type[P],
        override_labels: Sequence[str],
        params: Mapping[str, Any],
        overrides: Sequence[Override] = (),
        enabled: bool = True,
        cache_size: int = PARAMS_CACHE_SIZE,
    ) -> None:
        self.name = name
        self.enabled = enabled
        self.params_model = params_model
        self.override_labels = tuple(override_labels)
        self.overrides = tuple(overrides)
        self._params = dict(params)
        self.base: P = params_model.model_validate(self._params)
        # Overrides by the exact label set they match, so a lookup costs one probe per set used.
        self._by_labels: dict[frozenset[tuple[str, str]], list[Override]] = {}
        for override in self.overrides:
            self._by_labels.setdefault(override.labels, []).append(override)
        self._label_sets = sorted(
            {frozenset(o.match) for o in self.overrides}, key=lambda s: (len(s), sorted(s))
        )
        self._resolve_cached = lru_cache(maxsize=cache_size)(self._resolve)

    @classmethod
    def of(cls, rule: ConfigurableRule, **params: Any) -> RuleConfig[Any]:
        """The rule with these params and no overrides (tests, backtests)."""
        return cls(rule.name, rule.Params, rule.override_labels, params)  # type: ignore[arg-type]

    def params_for(self, labels: Mapping[str, str]) -> P:
        """The params in force for an event with these labels (labels the rule is not
        overridden by are ignored)."""
        if not self.overrides:
            return self.base
        return self._resolve_cached(tuple(labels.get(label) for label in self.override_labels))

    def cache_info(self) -> Any:
        return self._resolve_cached.cache_info()

    def matching(self, labels: Mapping[str, str]) -> list[Override]:
        """The overrides that apply to these labels, least specific first (ties: file order)."""
        found: list[Override] = []
        for label_set in self._label_sets:
            if all(labels.get(name) is not None for name in label_set):
                found += self._by_labels.get(
                    frozenset((name, labels[name]) for name in label_set), ()
                )
        return sorted(found, key=lambda o: (len(o.match), o.position))

    def merged(self, labels: Mapping[str, str]) -> dict[str, Any]:
        """Base params with every matching override applied, before validation."""
        return self._merge(self.matching(labels))

    def _merge(self, overrides: Iterable[Override]) -> dict[str, Any]:
        merged = dict(self._params)
        for override in overrides:
            merged.update(override.params)
        return merged

    def _resolve(self, values: tuple[str | None, ...]) -> P:
        labels = {
            name: value
            for name, value in zip(self.override_labels, values, strict=True)
            if value is not None
        }
        matched = self.matching(labels)
        return self.params_model.model_validate(self._merge(matched)) if matched else self.base


class DetectorConfig:
    """Every rule's configuration, as loaded from the detectors file (or built in)."""

    def __init__(self, rules: Mapping[str, RuleConfig[Any]], source: str) -> None:
        self._rules = dict(rules)
        self.source = source

    def rule(self, name: str) -> RuleConfig[Any]:
        return self._rules[name]

    def enabled(self, rules: Iterable[Callable[[RuleConfig[Any]], R]]) -> list[R]:
        """Each of these rules that the file enables, built with its configuration."""
        configs = [(rule, self.rule(rule.name)) for rule in rules]  # type: ignore[attr-defined]
        return [rule(config) for rule, config in configs if config.enabled]

    def __iter__(self) -> Iterator[RuleConfig[Any]]:
        return iter(self._rules.values())


# -- the file -------------------------------------------------------------------------------


class _RuleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)
    overrides: list[Any] = Field(default_factory=list)  # checked one by one, below


class _OverrideEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: dict[str, str] = Field(min_length=1)
    params: dict[str, Any] = Field(min_length=1)


def load_detector_config(
    path: str | Path | None,
    rules: Iterable[ConfigurableRule],
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> DetectorConfig:
    """Load and check the detectors file (None: built-in defaults only)."""
    if path is None:
        return parse_detector_config("", "<built-in defaults>", rules, defaults)
    file = Path(path)
    text = read_config_text(file, "detectors file", DetectorConfigError)
    return parse_detector_config(text, str(file), rules, defaults)


def load_for(settings: Settings, catalogue: Iterable[ConfigurableRule]) -> DetectorConfig:
    """The detectors configuration in force for this deployment, checked against every rule of
    every service (`catalogue`: the composition root knows the services)."""
    return load_detector_config(settings.detectors_file, catalogue, builtin_params(settings))


def parse_detector_config(
    text: str,
    source: str,
    rules: Iterable[ConfigurableRule],
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> DetectorConfig:
    """The configuration from YAML text; DetectorConfigError naming every problem if invalid.

    `defaults`: built-in params per rule, under the file's (see `builtin_params`).
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DetectorConfigError(f"detectors file {source} is not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise DetectorConfigError(f"detectors file {source} must be a mapping with a `rules` key")
    problems = _Problems()
    for field in document:
        if field != "rules":
            problems.add(str(field), "unknown field (a typo?)")
    entries = document.get("rules") or {}
    if not isinstance(entries, dict):
        problems.add("rules", "must be a mapping of rule names to their settings")
        entries = {}
    known = {rule.name: rule for rule in rules}
    builtin = defaults or {}
    for name in entries:
        if name not in known:
            problems.add(
                f"rules.{name}", f"unknown rule (known: {', '.join(sorted(known)) or 'none'})"
            )
    configs: dict[str, RuleConfig[Any]] = {}
    for name, rule in known.items():
        config = _check_rule(rule, entries.get(name), builtin.get(name, {}), problems)
        if config is not None:
            configs[name] = config
    if problems:
        raise DetectorConfigError(f"detectors file {source} is invalid:\n{problems}")
    return DetectorConfig(configs, source)


def _check_rule(
    rule: ConfigurableRule, raw: Any, builtin: Mapping[str, Any], problems: _Problems
) -> RuleConfig[Any] | None:
    """The rule's configuration, or None after adding what is wrong with it to `problems`."""
    where = f"rules.{rule.name}"
    before = len(problems)
    try:
        entry = _RuleEntry.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        problems.add_errors(where, exc)
        return None
    params = _checked_params(rule, entry.params, f"{where}.params", problems)
    overrides: list[Override] = []
    for position, raw_override in enumerate(entry.overrides):
        at = f"{where}.overrides[{position}]"
        try:
            override_entry = _OverrideEntry.model_validate(raw_override)
        except ValidationError as exc:
            problems.add_errors(at, exc)
            continue
        for label in override_entry.match:
            if label not in rule.override_labels:
                can = ", ".join(rule.override_labels) or "no label"
                problems.add(
                    f"{at}.match.{label}",
                    f"{rule.name} cannot be overridden by {label!r} (only by {can})",
                )
        checked = _checked_params(rule, override_entry.params, f"{at}.params", problems)
        overrides.append(Override(override_entry.match, checked, position))
    if len(problems) > before:
        return None
    try:
        config: RuleConfig[Any] = RuleConfig(
            rule.name,
            rule.Params,
            rule.override_labels,
            {**builtin, **params},
            overrides,
            enabled=entry.enabled,
        )
    except ValidationError as exc:
        # Each value was valid on its own: what is missing or does not fit together is left.
        problems.add_errors(f"{where}.params", exc, context="merged params are invalid")
        return None
    for labels, involved in _label_tuples(config):
        try:
            rule.Params.model_validate(config.merged(labels))
        except ValidationError as exc:
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(labels.items()))
            problems.add_errors(
                f"{where}.overrides[{', '.join(str(i) for i in involved)}]",
                exc,
                context=f"merged params for {{{shown}}} are invalid",
            )
    return None if len(problems) > before else config


def _checked_params(
    rule: ConfigurableRule, params: Mapping[str, Any], where: str, problems: _Problems
) -> dict[str, Any]:
    """The params that are known and valid on their own; the others go to `problems`."""
    fields = rule.Params.model_fields
    valid: dict[str, Any] = {}
    for name, value in params.items():
        if name not in fields:
            problems.add(
                f"{where}.{name}",
                f"unknown param (a typo?); {rule.name} takes {', '.join(fields) or 'none'}",
            )
            continue
        field = fields[name]
        alone: Any = Annotated[field.annotation, field]  # the field's type and constraints
        try:
            TypeAdapter[Any](alone).validate_python(value)
        except ValidationError as exc:
            problems.add_errors(f"{where}.{name}", exc)
            continue
        valid[name] = value
    return valid


def _label_tuples(config: RuleConfig[Any]) -> Iterator[tuple[dict[str, str], list[int]]]:
    """Label tuples whose merged params need checking, with the overrides that apply to each.

    Each override's own `match`; and, when `Params` has validators that may look at several
    fields together, every tuple that several overrides match at once (the closure of their
    consistent unions). Without such validators, values valid one by one stay valid merged.
    """
    decorators = config.params_model.__pydantic_decorators__
    combine = bool(decorators.model_validators or decorators.field_validators)
    seen: set[frozenset[tuple[str, str]]] = set()
    frontier = deque(o.labels for o in config.overrides)
    while frontier:
        items = frontier.popleft()
        if items in seen:
            continue
        seen.add(items)
        labels = dict(items)
        yield labels, [o.position for o in config.matching(labels)]
        if not combine:
            continue
        for override in config.overrides:
            if override.labels <= items:
                continue
            if all(labels.get(name, value) == value for name, value in override.match.items()):
                frontier.append(items | override.labels)


class _Problems:
    """Problems found while loading, each with its location, in the order found."""

    def __init__(self) -> None:
        self._lines: dict[str, None] = {}

    def add(self, location: str, message: str) -> None:
        self._lines[f"{location}: {message}" if location else message] = None

    def add_errors(self, location: str, exc: ValidationError, context: str = "") -> None:
        """Pydantic's errors at `location`; with `context`, the field goes into the message
        (for problems of merged params, which no single place in the file holds)."""
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            message = readable(error)
            if context:
                self.add(location, f"{context}: {field + ': ' if field else ''}{message}")
            else:
                self.add(".".join(p for p in (location, field) if p), message)

    def __len__(self) -> int:
        return len(self._lines)

    def __str__(self) -> str:
        return "\n".join(f"  {line}" for line in self._lines)


def in_force(runtime: Runtime) -> DetectorConfig:
    """The detectors configuration of this process, loaded once and shared by its API and
    workers; an invalid file stops start-up, naming every problem."""

    def load() -> DetectorConfig:
        config = load_for(runtime.settings, runtime.rule_catalogue)
        log.info("detectors configured", source=config.source)
        return config

    return runtime.once("detectors", load)
