"""Stage 2 of the router, inhibition: while a source anomaly fires, the targets that share its
`equal` labels are inhibited (recorded and counted, not routed); when the source resolves, the
targets still firing are routed. A source that starts firing after its targets were routed
inhibits them from then on (they leave their groups). Pure; the pipeline supplies the firing
anomalies (stored or simulated)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orderguard.services.notifier.routing import InhibitRule


@dataclass(frozen=True, slots=True)
class Inhibition:
    rule: str
    source_fingerprint: str


def candidate_filters(
    rules: Sequence[InhibitRule], target: Mapping[str, str]
) -> list[tuple[InhibitRule, dict[str, str]]]:
    """For each rule that targets these labels: the label values a source must share (what to
    look sources up by)."""
    return [
        (rule, {label: target[label] for label in rule.equal if label in target})
        for rule in rules
        if rule.is_target(target)
    ]


def inhibitor(
    rules: Sequence[InhibitRule],
    fingerprint: str,
    target: Mapping[str, str],
    firing: Iterable[tuple[str, Mapping[str, str]]],
) -> Inhibition | None:
    """The first rule (file order) and firing source that inhibit the target; an anomaly never
    inhibits itself."""
    sources = [(fp, labels) for fp, labels in firing if fp != fingerprint]
    for rule in rules:
        if not rule.is_target(target):
            continue
        for source_fp, labels in sorted(sources):
            if rule.inhibits(labels, target):
                assert rule.name is not None
                return Inhibition(rule.name, source_fp)
    return None


def target_filters(
    rules: Sequence[InhibitRule], source: Mapping[str, str]
) -> list[tuple[InhibitRule, dict[str, str]]]:
    """For each rule these labels are a source of: the label values a target must share."""
    return [
        (rule, {label: source[label] for label in rule.equal if label in source})
        for rule in rules
        if rule.is_source(source)
    ]


def inhibits(
    rule: InhibitRule,
    source_fingerprint: str,
    source: Mapping[str, str],
    target: tuple[str, Mapping[str, str]],
) -> Inhibition | None:
    """The source's inhibition of one target under one rule, if any (never of itself)."""
    fingerprint, labels = target
    if fingerprint == source_fingerprint or not rule.inhibits(source, labels):
        return None
    assert rule.name is not None
    return Inhibition(rule.name, source_fingerprint)
