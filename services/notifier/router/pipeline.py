"""The routing pipeline: silence → inhibit → route → group, for every anomaly that arrives,
every group timer that comes due and every silence that ends. It decides; the store keeps its
memory and the outlet carries the decisions out (live: anomaly.routed.v1 on the team queues,
metrics and logs; a backtest: its lists). No I/O of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from orderguard.services.notifier.domain import routing_labels
from orderguard.services.notifier.router.group import Group
from orderguard.services.notifier.router.inhibit import (
    Inhibition,
    candidate_filters,
    inhibitor,
    inhibits,
    target_filters,
)
from orderguard.services.notifier.router.route import Destination, destinations
from orderguard.services.notifier.router.silence import Silence, Silenced, silencing
from orderguard.services.notifier.router.store import (
    AnomalyState,
    Hold,
    Outcome,
    RouterStore,
    Suppressed,
)
from orderguard.services.notifier.routing import RouteMatch, RoutingTree
from orderguard.shared.events.anomalies import AnomalyDetected

# Firing anomalies read per page when looking for inhibition sources or targets.
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Arrival:
    """An anomaly.detected.v1 as the router receives it."""

    anomaly: AnomalyDetected
    event_id: str
    traceparent: str | None = None


class Outlet(Protocol):
    """Where the pipeline's decisions go."""

    def publish(
        self, anomaly: AnomalyDetected, to: Destination, traceparent: str | None, key: str
    ) -> None:
        """One anomaly.routed.v1 to a team queue (key: the group, else the fingerprint)."""

    def count(self, queue: str, outcome: str) -> None:
        """routed, unrouted (the root caught it), resolved, duplicate, resolved_unknown."""

    def held(self, state: AnomalyState, hold: Hold, after_routing: bool) -> None: ...

    def released(self, state: AnomalyState, reason: str) -> None: ...

    def routed(
        self, anomaly: AnomalyDetected, matches: Sequence[RouteMatch], event_id: str
    ) -> None: ...

    def flushed(self, group: Group, kind: str, published: int) -> None: ...

    def note(self, what: str, **fields: Any) -> None:
        """Something worth a log line live."""


class RoutingPipeline:
    """The pipeline at one moment `now` (one live transaction; one step of a backtest)."""

    def __init__(
        self, store: RouterStore, tree: RoutingTree, outlet: Outlet, now: datetime
    ) -> None:
        self.store = store
        self.tree = tree
        self.outlet = outlet
        self.now = now
        self._silences: list[Silence] | None = None
        # The states of the arriving batch's fingerprints, locked, as the pipeline changes them.
        self._known: dict[str, AnomalyState] = {}

    # -- arrivals --------------------------------------------------------------------------

    async def arrive(self, arrivals: Sequence[Arrival]) -> None:
        """Route each anomaly once per fingerprint (its resolution once more, to the same
        places); a firing source inhibits the targets routed before it."""
        if not arrivals:
            return
        fingerprints = list({a.anomaly.fingerprint: None for a in arrivals})
        known = self._known = await self.store.lock_states(fingerprints)
        await self._read_ahead(arrivals, fingerprints, known)
        for arrival in arrivals:
            anomaly = arrival.anomaly
            state = known.get(anomaly.fingerprint)
            if state is None:
                known[anomaly.fingerprint] = await self._first_seen(arrival)
            elif anomaly.status == "firing" or not state.firing:
                # Redelivered, sent again under a new id, or from a second detector driver.
                for queue in self._queues_of(state):
                    self.outlet.count(queue, "duplicate")
                self.outlet.note(
                    "anomaly already handled",
                    fingerprint=anomaly.fingerprint,
                    rule=anomaly.rule,
                    status=anomaly.status,
                    event_id=arrival.event_id,
                )
            else:
                known[anomaly.fingerprint] = await self._resolve(state, arrival)
        await self.store.write()

    async def _read_ahead(
        self,
        arrivals: Sequence[Arrival],
        fingerprints: list[str],
        known: dict[str, AnomalyState],
    ) -> None:
        """Tell the store what the batch will touch: where its fingerprints went, the
        groups its new firing anomalies may join, and the firing ones that resolve (their
        groups, and what they hold back)."""
        resolving: dict[str, None] = {}
        joining: set[str] = set()
        first: dict[str, AnomalyDetected] = {}
        for arrival in arrivals:
            anomaly = arrival.anomaly
            state = known.get(anomaly.fingerprint)
            if state is None:
                first.setdefault(anomaly.fingerprint, anomaly)
            if anomaly.status == "resolved" and (state is None or state.firing):
                resolving[anomaly.fingerprint] = None  # firing, or raised in this batch
        for anomaly in first.values():
            if anomaly.status == "firing":
                labels = routing_labels(anomaly)
                joining.update(
                    to.group_key
                    for _, to in destinations(self.tree, labels, anomaly.severity)
                    if to.group_key is not None
                )
        await self.store.read_ahead(fingerprints, list(resolving), joining)

    async def _first_seen(self, arrival: Arrival) -> AnomalyState:
        anomaly = arrival.anomaly
        state = AnomalyState(anomaly, routing_labels(anomaly), None, arrival.traceparent)
        await self.store.add_state(state)
        if not state.firing:
            self.outlet.count("none", "resolved_unknown")
            self.outlet.note(
                "resolved anomaly never seen firing; nothing to update",
                fingerprint=anomaly.fingerprint,
                rule=anomaly.rule,
                event_id=arrival.event_id,
            )
            return state
        state = await self._admit(state, arrival.event_id)
        await self._inhibit_targets_of(state)
        return state

    def _queues_of(self, state: AnomalyState) -> list[str]:
        if state.outcome != "routed":
            return ["none"]
        return [match.queue for match in self.tree.route(state.labels)]

    async def _admit(self, state: AnomalyState, event_id: str) -> AnomalyState:
        """Stages 1-4 for a firing anomaly: silenced, inhibited, or routed."""
        hold = await self._decide(state)
        if hold is None:
            await self._route(state, event_id)
            outcome: Outcome = "routed"
        else:
            await self.store.hold(state.fingerprint, hold, event_id)
            outcome = "silenced" if isinstance(hold, Silenced) else "inhibited"
            self.outlet.held(state, hold, after_routing=False)
        admitted = AnomalyState(state.anomaly, state.labels, outcome, state.traceparent)
        await self.store.update_state(admitted)
        return admitted

    async def _decide(self, state: AnomalyState) -> Hold | None:
        """Stage 1, silences; stage 2, inhibition by a firing source."""
        if self._silences is None:
            self._silences = await self.store.active_silences(self.now)
        muting = silencing(self._silences, state.labels, self.now)
        if muting is not None:
            return Silenced(muting)
        for rule, equal in candidate_filters(self.tree.inhibitions(), state.labels):
            # Page through the candidates: the targets themselves share the equal labels too.
            after = ""
            while True:
                sources = await self.store.firing_with(equal, state.fingerprint, after, PAGE)
                found = inhibitor([rule], state.fingerprint, state.labels, sources)
                if found is not None:
                    return found
                if len(sources) < PAGE:
                    break
                after = sources[-1][0]
        return None

    async def _route(self, state: AnomalyState, event_id: str) -> None:
        """Stage 3, the tree; stage 4, each route's group (or at once, without one)."""
        anomaly = state.anomaly
        found = destinations(self.tree, state.labels, anomaly.severity)
        if not await self.store.record_routed(
            state.fingerprint, anomaly.rule, [to for _, to in found], event_id
        ):
            return
        for match, to in found:
            if to.group_key is None:
                self.outlet.publish(anomaly, to, state.traceparent, key=state.fingerprint)
            else:
                await self._join_group(match, to, state.fingerprint)
            self.outlet.count(match.queue, "unrouted" if match.is_default else "routed")
        self.outlet.routed(anomaly, [match for match, _ in found], event_id)

    # -- inhibition that comes after its targets ---------------------------------------------

    async def _inhibit_targets_of(self, source: AnomalyState) -> None:
        """A new firing source holds back the targets routed before it: they leave their groups
        (a pending first flush does not publish them, a repeat no longer does) and are routed
        again when it resolves."""
        for rule, equal in target_filters(self.tree.inhibitions(), source.labels):
            after = ""
            while True:
                targets = await self.store.firing_with(
                    equal, source.fingerprint, after, PAGE, routed_only=True
                )
                for target in targets:
                    inhibition = inhibits(rule, source.fingerprint, source.labels, target)
                    if inhibition is not None:
                        await self._withdraw(target[0], inhibition)
                if len(targets) < PAGE:
                    break
                after = targets[-1][0]

    async def _withdraw(self, fingerprint: str, inhibition: Inhibition) -> None:
        state = (await self.store.states_of([fingerprint]))[fingerprint]
        if state.outcome != "routed":
            return  # held back by an earlier rule of this same source
        went, event_id = await self.store.withdraw_routed(fingerprint)
        for to in went:
            if to.group_key is None:
                continue  # published already; its work item stays until it clears
            group = await self.store.lock_group(to.group_key)
            if group is not None and group.withdraw(fingerprint):
                await self.store.save_group(group)
        await self.store.hold(fingerprint, inhibition, event_id)
        held = AnomalyState(state.anomaly, state.labels, "inhibited", state.traceparent)
        await self.store.update_state(held)
        if fingerprint in self._known:
            self._known[fingerprint] = held
        self.outlet.held(held, inhibition, after_routing=True)

    # -- resolutions -----------------------------------------------------------------------

    async def _resolve(self, state: AnomalyState, arrival: Arrival) -> AnomalyState:
        """A firing anomaly resolved: its routes hear of it (the same queues and groups); the
        anomalies it inhibited are routed if nothing else keeps them back."""
        resolved = AnomalyState(arrival.anomaly, state.labels, state.outcome, state.traceparent)
        await self.store.update_state(resolved)
        fingerprint = state.fingerprint
        if state.outcome == "routed":
            for to in await self.store.routed_resolved(fingerprint):
                if to.group_key is None:
                    self.outlet.publish(arrival.anomaly, to, state.traceparent, key=fingerprint)
                else:
                    await self._resolve_in_group(to.group_key, fingerprint)
                self.outlet.count(to.queue, "resolved")
            self.outlet.note(
                "resolved anomaly routed", fingerprint=fingerprint, event_id=arrival.event_id
            )
        else:
            self.outlet.note(
                "suppressed anomaly resolved before release",
                fingerprint=fingerprint,
                outcome=state.outcome,
            )
        for held in await self.store.lock_inhibited_by(fingerprint):
            await self.readmit(held)
        return resolved

    async def readmit(self, held: Suppressed) -> None:
        """A held-back anomaly whose reason passed: routed, or held for another reason."""
        state = held.state
        hold = await self._decide(state)
        if hold is None:
            await self.store.release(state.fingerprint)
            await self._route(state, held.event_id)
            outcome: Outcome = "routed"
            self.outlet.released(state, held.reason)
        else:
            await self.store.hold(state.fingerprint, hold, held.event_id)
            outcome = "silenced" if isinstance(hold, Silenced) else "inhibited"
        await self.store.update_state(
            AnomalyState(state.anomaly, state.labels, outcome, state.traceparent)
        )

    async def release_silenced(self, limit: int) -> int:
        """Scheduled: route the still-firing anomalies whose silence has ended."""
        held = await self.store.lock_silenced_past_their_silence(self.now, limit)
        for one in held:
            await self.readmit(one)
        await self.store.write()
        return len(held)

    # -- groups ----------------------------------------------------------------------------

    async def _join_group(self, match: RouteMatch, to: Destination, fingerprint: str) -> None:
        assert to.group_key is not None
        group = await self.store.lock_group(to.group_key)
        if group is None:
            group = Group.new(to.group_key, match.timers, self.now, to.route, to.queue, to.channels)
        group.add(fingerprint, self.now, to.severity)
        await self._settle(group)

    async def _resolve_in_group(self, group_key: str, fingerprint: str) -> None:
        group = await self.store.lock_group(group_key)
        if group is not None and group.resolve(fingerprint, self.now):
            await self._settle(group)

    async def flush_due_groups(self, limit: int) -> int:
        """Scheduled: flush the groups whose timer is due."""
        groups = await self.store.lock_due_groups(self.now, limit)
        for group in groups:
            await self._settle(group)
        await self.store.write()
        return len(groups)

    async def _settle(self, group: Group) -> None:
        """Flush the group if due, then store it."""
        if group.due(self.now):
            kind = group.flush_kind()
            published = group.flush(self.now)
            states = await self.store.states_of([m.fingerprint for m in published])
            for member in published:
                state = states[member.fingerprint]
                to = Destination(
                    group.route, group.queue, group.channels, group.key, member.severity
                )
                self.outlet.publish(state.anomaly, to, state.traceparent, key=group.key)
            self.outlet.flushed(group, kind, len(published))
        await self.store.save_group(group)
