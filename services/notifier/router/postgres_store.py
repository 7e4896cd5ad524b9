"""The routing pipeline's memory in the notifier's tables (schema `notifier`), within the
caller's unit of work: what the pipeline decides on is locked (FOR UPDATE) until it commits.

Set-based per batch: `read_ahead` reads what a batch will touch in a few statements (routed
anomalies, route groups with their members, the anomalies the resolving ones hold back); the
pipeline's changes stay in memory and `write` stores them, one statement per table. A read
whose answer could depend on a change not written yet (an inhibition lookup) writes first, so
the pipeline sees exactly what it would see if every change had been written at once."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from orderguard.services.notifier.repository import Connection
from orderguard.services.notifier.router.group import Group, Member
from orderguard.services.notifier.router.inhibit import Inhibition
from orderguard.services.notifier.router.route import Destination
from orderguard.services.notifier.router.silence import Silence, Silenced
from orderguard.services.notifier.router.store import AnomalyState, Hold, Suppressed
from orderguard.services.notifier.routing import GroupTimers, Matcher
from orderguard.shared.events.anomalies import AnomalyDetected

_STATE = "a.fingerprint, a.labels, a.anomaly, a.outcome, a.traceparent"
_SUPPRESSED = (
    f"SELECT {_STATE}, s.event_id, s.reason, s.source_fingerprint"
    " FROM suppressed_anomalies s JOIN anomaly_states a USING (fingerprint)"
)


def _state(row: asyncpg.Record) -> AnomalyState:
    return AnomalyState(
        AnomalyDetected.model_validate(row["anomaly"]),
        row["labels"],
        row["outcome"],
        row["traceparent"],
    )


def _silence(row: asyncpg.Record) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple(Matcher.parse(text) for text in row["matchers"]),
        author=row["author"],
        comment=row["comment"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_at=row["created_at"],
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else int(value / timedelta(milliseconds=1))


@dataclass(frozen=True, slots=True)
class _Routed:
    """A row of routed_anomalies. `insertion`: 0 for a row read from the table, else which
    insert of this store made it (a resolution keeps it: the same row, updated)."""

    rule: str
    to: tuple[Destination, ...]
    event_id: str
    resolved: bool
    insertion: int = 0


@dataclass(slots=True)
class _StoredGroup:
    """A route group as its rows are in the table (as read, or as last written)."""

    group: Group
    timers: tuple[datetime | None, datetime | None, int]  # next flush, last flush, flushes
    members: dict[str, tuple[Member, bool, bool]]  # fingerprint -> (member, firing, pending)


def _timers(group: Group) -> tuple[datetime | None, datetime | None, int]:
    return (group.next_flush_at, group.last_flush_at, group.flushes)


def _snapshot(group: Group) -> _StoredGroup:
    return _StoredGroup(
        group,
        _timers(group),
        {fp: (m, m.firing, m.pending) for fp, m in group.members.items()},
    )


@dataclass(slots=True)
class _GroupWrites:
    """What writing the route groups takes: groups closed and opened again, and members that
    left and came back, are deleted first (then inserted afresh); closed groups deleted; new
    or changed groups and members upserted; members that left deleted."""

    first_groups: list[str] = field(default_factory=list)
    first_members: list[tuple[str, str]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    members: list[tuple[str, Member]] = field(default_factory=list)
    gone: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def between(
        cls, stored: dict[str, _StoredGroup | None], current: dict[str, Group | None]
    ) -> _GroupWrites:
        w = cls()
        for key, group in current.items():
            was = stored.get(key)
            if group is None:
                if was is not None:
                    w.closed.append(key)
                continue
            if was is not None and was.group is not group:
                w.first_groups.append(key)
                was = None
            if was is None:
                w.groups.append(group)
                w.members += [(key, m) for m in group.members.values()]
                continue
            if _timers(group) != was.timers:
                w.groups.append(group)
            w._member_changes(key, group, was)
        return w

    def _member_changes(self, key: str, group: Group, was: _StoredGroup) -> None:
        for fp, (member, firing, pending) in was.members.items():
            now = group.members.get(fp)
            if now is None:
                self.gone.append((key, fp))
            elif now is not member:
                self.first_members.append((key, fp))
                self.members.append((key, now))
            elif (now.firing, now.pending) != (firing, pending):
                self.members.append((key, now))
        self.members += [(key, m) for fp, m in group.members.items() if fp not in was.members]


class PostgresStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # Anomaly states read or changed by this transaction (locked, or written by it: no one
        # else changes them before it commits); those with a row; those changed, to write.
        self._states: dict[str, AnomalyState] = {}
        self._stored_states: set[str] = set()
        self._changed_states: dict[str, None] = {}
        # Routed anomalies known to this transaction (None: no row), as the pipeline changed
        # them and as the table has them.
        self._routed: dict[str, _Routed | None] = {}
        self._stored_routed: dict[str, _Routed | None] = {}
        self._insertions = itertools.count(1)
        # Route groups locked by this transaction (None: none, or closed by it), as the pipeline
        # changed them and as the table has them.
        self._groups: dict[str, Group | None] = {}
        self._stored_groups: dict[str, _StoredGroup | None] = {}
        # Holds and releases not written yet: fingerprint -> (hold, event id, released after).
        self._holds: dict[str, tuple[Hold, str, bool]] = {}
        self._releases: dict[str, None] = {}
        # Read ahead: the anomalies each resolving source holds back, valid until a hold or a
        # release changes the table or a state they show changes.
        self._inhibited: dict[str, list[Suppressed]] = {}
        self._holds_changed = False
        self._touched: set[str] = set()

    # -- reading ahead -----------------------------------------------------------------------

    async def lock_states(self, fingerprints: Sequence[str]) -> dict[str, AnomalyState]:
        rows = await self.conn.fetch(
            f"SELECT {_STATE} FROM anomaly_states a"
            " WHERE fingerprint = ANY($1::text[]) ORDER BY fingerprint FOR UPDATE",
            sorted(fingerprints),
        )
        locked = {row["fingerprint"]: _state(row) for row in rows}
        self._states.update(locked)
        self._stored_states.update(locked)
        return dict(locked)

    async def read_ahead(
        self, fingerprints: Sequence[str], resolving: Sequence[str], group_keys: Iterable[str]
    ) -> None:
        await self._read_routed(fingerprints)
        keys = set(group_keys)
        for fingerprint in resolving:
            routed = self._routed.get(fingerprint)
            if routed is not None:
                keys.update(to.group_key for to in routed.to if to.group_key is not None)
        await self._lock_groups(sorted(keys - self._groups.keys()))
        if resolving:
            rows = await self.conn.fetch(
                _SUPPRESSED + " WHERE s.source_fingerprint = ANY($1::text[])"
                " AND s.released_at IS NULL AND a.status = 'firing'"
                " ORDER BY a.fingerprint FOR UPDATE OF s",
                list(resolving),
            )
            self._inhibited.update((source, []) for source in resolving)
            for row in rows:
                self._inhibited[row["source_fingerprint"]].append(self._suppressed(row))

    async def _read_routed(self, fingerprints: Sequence[str]) -> None:
        wanted = [fp for fp in fingerprints if fp not in self._routed]
        if not wanted:
            return
        rows = await self.conn.fetch(
            "SELECT fingerprint, rule, matches, event_id, resolved_at IS NOT NULL AS resolved"
            " FROM routed_anomalies WHERE fingerprint = ANY($1::text[])",
            wanted,
        )
        found: dict[str, _Routed | None] = dict.fromkeys(wanted)
        for row in rows:
            found[row["fingerprint"]] = _Routed(
                row["rule"],
                tuple(Destination.of_json(m) for m in row["matches"]),
                row["event_id"],
                row["resolved"],
            )
        self._routed.update(found)
        self._stored_routed.update(found)

    async def _lock_groups(self, keys: Sequence[str]) -> None:
        """Lock these groups (sorted: one lock order for everyone) with their members; a key
        without a group is known to have none."""
        if not keys:
            return
        rows = await self.conn.fetch(
            "SELECT * FROM route_groups WHERE group_key = ANY($1::text[])"
            " ORDER BY group_key FOR UPDATE",
            list(keys),
        )
        await self._with_members(rows)
        for key in keys:
            self._groups.setdefault(key, None)
            self._stored_groups.setdefault(key, None)

    async def _with_members(self, rows: Sequence[asyncpg.Record]) -> list[Group]:
        """The locked groups of these rows, their members read in one statement."""
        if not rows:
            return []
        members: dict[str, dict[str, Member]] = {row["group_key"]: {} for row in rows}
        for m in await self.conn.fetch(
            "SELECT group_key, fingerprint, severity, firing, pending FROM route_group_members"
            " WHERE group_key = ANY($1::text[]) ORDER BY group_key, added_at, fingerprint",
            list(members),
        ):
            members[m["group_key"]][m["fingerprint"]] = Member(
                m["fingerprint"], m["firing"], m["pending"], m["severity"]
            )
        groups = []
        for row in rows:
            repeat = row["repeat_interval_ms"]
            group = Group(
                key=row["group_key"],
                timers=GroupTimers(
                    timedelta(milliseconds=row["group_wait_ms"]),
                    timedelta(milliseconds=row["group_interval_ms"]),
                    None if repeat is None else timedelta(milliseconds=repeat),
                ),
                created_at=row["created_at"],
                next_flush_at=row["next_flush_at"],
                last_flush_at=row["last_flush_at"],
                members=members[row["group_key"]],
                route=row["route"],
                queue=row["queue"],
                channels=tuple(row["channels"]),
                flushes=row["flushes"],
            )
            self._groups[group.key] = group
            self._stored_groups[group.key] = _snapshot(group)
            groups.append(group)
        return groups

    # -- states --------------------------------------------------------------------------------

    async def states_of(self, fingerprints: Sequence[str]) -> dict[str, AnomalyState]:
        found = {fp: self._states[fp] for fp in fingerprints if fp in self._states}
        rest = [fp for fp in fingerprints if fp not in found]
        if rest:
            rows = await self.conn.fetch(
                f"SELECT {_STATE} FROM anomaly_states a WHERE fingerprint = ANY($1::text[])",
                rest,
            )
            for row in rows:
                state = found[row["fingerprint"]] = _state(row)
                self._states[state.fingerprint] = state
                self._stored_states.add(state.fingerprint)
        return found

    async def add_state(self, state: AnomalyState) -> None:
        self._set_state(state)

    async def update_state(self, state: AnomalyState) -> None:
        self._set_state(state)

    def _set_state(self, state: AnomalyState) -> None:
        self._states[state.fingerprint] = state
        self._changed_states[state.fingerprint] = None
        self._touched.add(state.fingerprint)

    async def firing_with(
        self,
        labels: dict[str, str],
        exclude: str,
        after: str,
        limit: int,
        routed_only: bool = False,
    ) -> list[tuple[str, dict[str, str]]]:
        await self.write()  # it searches the table: the states changed so far must be there
        rows = await self.conn.fetch(
            "SELECT fingerprint, labels FROM anomaly_states"
            " WHERE status = 'firing' AND labels @> $1::jsonb AND fingerprint <> $2"
            " AND fingerprint > $3 AND (NOT $5 OR outcome = 'routed')"
            " ORDER BY fingerprint LIMIT $4" + (" FOR UPDATE" if routed_only else ""),
            labels,
            exclude,
            after,
            limit,
            routed_only,
        )
        return [(row["fingerprint"], row["labels"]) for row in rows]

    # -- silences and holds ----------------------------------------------------------------

    async def active_silences(self, now: datetime) -> list[Silence]:
        rows = await self.conn.fetch(
            "SELECT id, matchers, author, comment, starts_at, ends_at, created_at FROM silences"
            " WHERE starts_at <= $1 AND ends_at > $1",
            now,
        )
        return [_silence(row) for row in rows]

    async def hold(self, fingerprint: str, hold: Hold, event_id: str) -> None:
        self._holds[fingerprint] = (hold, event_id, False)
        self._releases.pop(fingerprint, None)
        self._holds_changed = True

    async def release(self, fingerprint: str) -> None:
        held = self._holds.get(fingerprint)
        if held is not None:
            self._holds[fingerprint] = (held[0], held[1], True)
        else:
            self._releases[fingerprint] = None
        self._holds_changed = True

    def _suppressed(self, row: asyncpg.Record) -> Suppressed:
        fingerprint = row["fingerprint"]
        state = self._states.get(fingerprint)
        if state is None:
            state = self._states[fingerprint] = _state(row)
            self._stored_states.add(fingerprint)
        return Suppressed(state, row["event_id"], row["reason"])

    async def lock_inhibited_by(self, source: str) -> list[Suppressed]:
        ahead = self._inhibited.pop(source, None)
        if (
            ahead is not None
            and not self._holds_changed
            and not any(held.state.fingerprint in self._touched for held in ahead)
        ):
            return ahead
        await self.write()
        rows = await self.conn.fetch(
            _SUPPRESSED + " WHERE s.source_fingerprint = $1 AND s.released_at IS NULL"
            " AND a.status = 'firing' ORDER BY a.fingerprint FOR UPDATE OF s",
            source,
        )
        return [self._suppressed(row) for row in rows]

    async def lock_silenced_past_their_silence(self, now: datetime, limit: int) -> list[Suppressed]:
        await self.write()
        rows = await self.conn.fetch(
            _SUPPRESSED + " JOIN silences si ON si.id = s.silence_id"
            " WHERE s.reason = 'silenced' AND s.released_at IS NULL AND a.status = 'firing'"
            " AND si.ends_at <= $1 ORDER BY a.fingerprint LIMIT $2"
            # The anomaly's row too: the router, resolving it meanwhile, waits for the release.
            " FOR UPDATE OF s, a SKIP LOCKED",
            now,
            limit,
        )
        return [self._suppressed(row) for row in rows]

    # -- where routed anomalies went -------------------------------------------------------

    async def _routed_row(self, fingerprint: str) -> _Routed | None:
        if fingerprint not in self._routed:
            await self._read_routed([fingerprint])
        return self._routed[fingerprint]

    async def record_routed(
        self, fingerprint: str, rule: str, to: Sequence[Destination], event_id: str
    ) -> bool:
        if await self._routed_row(fingerprint) is not None:
            return False
        self._routed[fingerprint] = _Routed(
            rule, tuple(to), event_id, resolved=False, insertion=next(self._insertions)
        )
        return True

    async def routed_resolved(self, fingerprint: str) -> list[Destination]:
        routed = await self._routed_row(fingerprint)
        if routed is None:
            return []
        self._routed[fingerprint] = replace(routed, resolved=True)
        return list(routed.to)

    async def withdraw_routed(self, fingerprint: str) -> tuple[list[Destination], str]:
        routed = await self._routed_row(fingerprint)
        assert routed is not None
        self._routed[fingerprint] = None
        return list(routed.to), routed.event_id

    # -- groups --------------------------------------------------------------------------------

    async def lock_group(self, key: str) -> Group | None:
        if key not in self._groups:
            await self._lock_groups([key])
        return self._groups[key]

    async def lock_due_groups(self, now: datetime, limit: int) -> list[Group]:
        rows = await self.conn.fetch(
            "SELECT * FROM route_groups WHERE next_flush_at <= $1"
            " ORDER BY next_flush_at, group_key LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        await self._with_members([row for row in rows if row["group_key"] not in self._groups])
        return [g for row in rows if (g := self._groups[row["group_key"]]) is not None]

    async def save_group(self, group: Group) -> None:
        self._groups[group.key] = None if group.closed else group

    # -- writing -------------------------------------------------------------------------------

    async def write(self) -> None:
        """Store every change not written yet: one statement per table (a route group closed
        and opened again, or a member that left and came back, is deleted first)."""
        await self._write_states()
        await self._write_holds()
        await self._write_routed()
        await self._write_groups()

    async def _write_states(self) -> None:
        changed = [self._states[fp] for fp in self._changed_states]
        if not changed:
            return
        new = [s for s in changed if s.fingerprint not in self._stored_states]
        old = [s for s in changed if s.fingerprint in self._stored_states]
        # A plain insert: a second router that inserted the same fingerprint meanwhile makes
        # this batch fail and retry (it then finds the state), as it always did.
        await self.conn.execute(
            "WITH updated AS (UPDATE anomaly_states a SET anomaly = u.anomaly,"
            "   status = u.status, outcome = u.outcome, updated_at = now()"
            " FROM unnest($8::text[], $9::jsonb[], $10::text[], $11::text[])"
            "   AS u(fingerprint, anomaly, status, outcome)"
            " WHERE a.fingerprint = u.fingerprint)"
            " INSERT INTO anomaly_states"
            " (fingerprint, rule, labels, anomaly, status, outcome, traceparent)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[], $5::text[],"
            "   $6::text[], $7::text[])",
            [s.fingerprint for s in new],
            [s.anomaly.rule for s in new],
            [s.labels for s in new],
            [s.anomaly.model_dump(mode="json") for s in new],
            [s.anomaly.status for s in new],
            [s.outcome for s in new],
            [s.traceparent for s in new],
            [s.fingerprint for s in old],
            [s.anomaly.model_dump(mode="json") for s in old],
            [s.anomaly.status for s in old],
            [s.outcome for s in old],
        )
        self._stored_states.update(s.fingerprint for s in new)
        self._changed_states.clear()

    async def _write_holds(self) -> None:
        holds, releases = self._holds, self._releases
        if not holds and not releases:
            return
        silenced = {
            fp: hold.silence.id for fp, (hold, _, _) in holds.items() if isinstance(hold, Silenced)
        }
        inhibited = {fp: hold for fp, (hold, _, _) in holds.items() if isinstance(hold, Inhibition)}
        await self.conn.execute(
            "WITH released AS (UPDATE suppressed_anomalies SET released_at = now()"
            "   WHERE fingerprint = ANY($7::text[]))"
            " INSERT INTO suppressed_anomalies (fingerprint, reason, silence_id, inhibit_rule,"
            "   source_fingerprint, event_id, released_at)"
            " SELECT fingerprint, reason, silence_id, inhibit_rule, source_fingerprint, event_id,"
            "   CASE WHEN released THEN now() END"
            " FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],"
            "   $8::bool[]) AS h(fingerprint, reason, silence_id, inhibit_rule,"
            "   source_fingerprint, event_id, released)"
            " ON CONFLICT (fingerprint) DO UPDATE SET reason = EXCLUDED.reason,"
            "   silence_id = EXCLUDED.silence_id, inhibit_rule = EXCLUDED.inhibit_rule,"
            "   source_fingerprint = EXCLUDED.source_fingerprint,"
            "   released_at = EXCLUDED.released_at",
            list(holds),
            ["silenced" if fp in silenced else "inhibited" for fp in holds],
            [silenced.get(fp) for fp in holds],
            [inhibited[fp].rule if fp in inhibited else None for fp in holds],
            [inhibited[fp].source_fingerprint if fp in inhibited else None for fp in holds],
            [event_id for _, event_id, _ in holds.values()],
            list(releases),
            [released for _, _, released in holds.values()],
        )
        if silenced:
            await self.conn.execute(
                "INSERT INTO silenced_anomalies (silence_id, fingerprint)"
                " SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT DO NOTHING",
                list(silenced.values()),
                list(silenced),
            )
        self._holds, self._releases = {}, {}

    async def _write_routed(self) -> None:
        deleted: list[str] = []
        inserted: list[tuple[str, _Routed]] = []
        resolved: list[str] = []
        for fingerprint, routed in self._routed.items():
            stored = self._stored_routed.get(fingerprint)
            if routed is stored:
                continue
            if routed is None:
                deleted.append(fingerprint)
            elif stored is not None and stored.insertion == routed.insertion:
                resolved.append(fingerprint)
            else:
                if stored is not None:
                    deleted.append(fingerprint)  # withdrawn, then routed again
                inserted.append((fingerprint, routed))
        if deleted:
            await self.conn.execute(
                "DELETE FROM routed_anomalies WHERE fingerprint = ANY($1::text[])", deleted
            )
        if inserted or resolved:
            await self.conn.execute(
                "WITH resolved AS (UPDATE routed_anomalies"
                "   SET resolved_at = coalesce(resolved_at, now())"
                "   WHERE fingerprint = ANY($7::text[]))"
                " INSERT INTO routed_anomalies"
                " (fingerprint, rule, routes, queues, event_id, matches, resolved_at)"
                " SELECT fingerprint, rule, ARRAY(SELECT jsonb_array_elements_text(routes::jsonb)),"
                "   ARRAY(SELECT jsonb_array_elements_text(queues::jsonb)), event_id,"
                "   matches::jsonb, CASE WHEN resolved THEN now() END"
                # Lists per row go as JSON text: asyncpg takes nested lists for dimensions.
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                "   $6::text[], $8::bool[])"
                "   AS r(fingerprint, rule, routes, queues, event_id, matches, resolved)",
                [fp for fp, _ in inserted],
                [r.rule for _, r in inserted],
                [_json([d.route for d in r.to]) for _, r in inserted],
                [_json([d.queue for d in r.to]) for _, r in inserted],
                [r.event_id for _, r in inserted],
                [_json([d.as_json() for d in r.to]) for _, r in inserted],
                resolved,
                [r.resolved for _, r in inserted],
            )
        self._stored_routed.update(self._routed)

    async def _write_groups(self) -> None:
        w = _GroupWrites.between(self._stored_groups, self._groups)
        first_groups, first_members, closed = w.first_groups, w.first_members, w.closed
        groups, members, gone = w.groups, w.members, w.gone
        if first_groups or first_members:
            await self.conn.execute(
                "WITH g AS (DELETE FROM route_groups WHERE group_key = ANY($1::text[]))"
                " DELETE FROM route_group_members WHERE (group_key, fingerprint) IN"
                "   (SELECT * FROM unnest($2::text[], $3::text[]))",
                first_groups,
                [key for key, _ in first_members],
                [fp for _, fp in first_members],
            )
        if closed or groups:
            await self.conn.execute(
                "WITH closed AS (DELETE FROM route_groups WHERE group_key = ANY($12::text[]))"
                " INSERT INTO route_groups (group_key, route, queue, channels, group_wait_ms,"
                "   group_interval_ms, repeat_interval_ms, created_at, next_flush_at,"
                "   last_flush_at, flushes)"
                " SELECT group_key, route, queue, ARRAY(SELECT jsonb_array_elements_text(channels::jsonb)),"
                "   group_wait_ms, group_interval_ms, repeat_interval_ms, created_at,"
                "   next_flush_at, last_flush_at, flushes"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],"
                "   $6::bigint[], $7::bigint[], $8::timestamptz[], $9::timestamptz[],"
                "   $10::timestamptz[], $11::int[]) AS g(group_key, route, queue, channels,"
                "   group_wait_ms, group_interval_ms, repeat_interval_ms, created_at,"
                "   next_flush_at, last_flush_at, flushes)"
                " ON CONFLICT (group_key) DO UPDATE SET next_flush_at = EXCLUDED.next_flush_at,"
                "   last_flush_at = EXCLUDED.last_flush_at, flushes = EXCLUDED.flushes",
                [g.key for g in groups],
                [g.route for g in groups],
                [g.queue for g in groups],
                [_json(list(g.channels)) for g in groups],
                [_ms(g.timers.group_wait) or 0 for g in groups],
                [_ms(g.timers.group_interval) or 0 for g in groups],
                [_ms(g.timers.repeat_interval) for g in groups],
                [g.created_at for g in groups],
                [g.next_flush_at for g in groups],
                [g.last_flush_at for g in groups],
                [g.flushes for g in groups],
                closed,
            )
        if members or gone:
            await self.conn.execute(
                "WITH gone AS (DELETE FROM route_group_members WHERE (group_key, fingerprint) IN"
                "   (SELECT * FROM unnest($6::text[], $7::text[])))"
                " INSERT INTO route_group_members (group_key, fingerprint, severity, firing, pending)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[])"
                " ON CONFLICT (group_key, fingerprint) DO UPDATE"
                " SET firing = EXCLUDED.firing, pending = EXCLUDED.pending",
                [key for key, _ in members],
                [m.fingerprint for _, m in members],
                [m.severity for _, m in members],
                [m.firing for _, m in members],
                [m.pending for _, m in members],
                [key for key, _ in gone],
                [fp for _, fp in gone],
            )
        self._stored_groups = {
            key: None if group is None else _snapshot(group) for key, group in self._groups.items()
        }
