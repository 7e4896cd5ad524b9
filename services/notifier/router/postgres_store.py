"""The routing pipeline's memory in the notifier's tables (schema `notifier`), within the
caller's unit of work: what the pipeline decides on is locked (FOR UPDATE) until it commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

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
    f"SELECT {_STATE}, s.event_id, s.reason"
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


def _ms(value: timedelta | None) -> int | None:
    return None if value is None else int(value / timedelta(milliseconds=1))


class PostgresStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # The groups locked in this transaction, as the pipeline changed them: the row lock is
        # held until commit, so a second anomaly of the same group in the batch reuses the
        # object rather than reading every member again (a busy route's group holds thousands).
        self._locked: dict[str, Group] = {}
        # The members of each group as last read or written, so that only those that change
        # are written back.
        self._read: dict[str, dict[str, tuple[bool, bool]]] = {}
        # The anomaly states this transaction locked or wrote: no one else changes them before
        # it commits, so a group's flush reads them here, not in another round trip.
        self._states: dict[str, AnomalyState] = {}

    async def lock_states(self, fingerprints: Sequence[str]) -> dict[str, AnomalyState]:
        rows = await self.conn.fetch(
            f"SELECT {_STATE} FROM anomaly_states a"
            " WHERE fingerprint = ANY($1::text[]) ORDER BY fingerprint FOR UPDATE",
            sorted(fingerprints),
        )
        locked = {row["fingerprint"]: _state(row) for row in rows}
        self._states.update(locked)
        return dict(locked)

    async def states_of(self, fingerprints: Sequence[str]) -> dict[str, AnomalyState]:
        found = {fp: self._states[fp] for fp in fingerprints if fp in self._states}
        rest = [fp for fp in fingerprints if fp not in found]
        if rest:
            rows = await self.conn.fetch(
                f"SELECT {_STATE} FROM anomaly_states a WHERE fingerprint = ANY($1::text[])",
                rest,
            )
            found.update((row["fingerprint"], _state(row)) for row in rows)
        return found

    async def add_state(self, state: AnomalyState) -> None:
        self._states.pop(state.fingerprint, None)
        await self.conn.execute(
            "INSERT INTO anomaly_states"
            " (fingerprint, rule, labels, anomaly, status, outcome, traceparent)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            state.fingerprint,
            state.anomaly.rule,
            state.labels,
            state.anomaly.model_dump(mode="json"),
            state.anomaly.status,
            state.outcome,
            state.traceparent,
        )
        self._states[state.fingerprint] = state

    async def update_state(self, state: AnomalyState) -> None:
        self._states.pop(state.fingerprint, None)
        await self.conn.execute(
            "UPDATE anomaly_states SET anomaly = $2, status = $3, outcome = $4, updated_at = now()"
            " WHERE fingerprint = $1",
            state.fingerprint,
            state.anomaly.model_dump(mode="json"),
            state.anomaly.status,
            state.outcome,
        )
        self._states[state.fingerprint] = state

    async def firing_with(
        self,
        labels: dict[str, str],
        exclude: str,
        after: str,
        limit: int,
        routed_only: bool = False,
    ) -> list[tuple[str, dict[str, str]]]:
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

    async def active_silences(self, now: datetime) -> list[Silence]:
        rows = await self.conn.fetch(
            "SELECT id, matchers, author, comment, starts_at, ends_at, created_at FROM silences"
            " WHERE starts_at <= $1 AND ends_at > $1",
            now,
        )
        return [_silence(row) for row in rows]

    async def hold(self, fingerprint: str, hold: Hold, event_id: str) -> None:
        silenced = hold.silence.id if isinstance(hold, Silenced) else None
        inhibited = hold if isinstance(hold, Inhibition) else None
        await self.conn.execute(
            "INSERT INTO suppressed_anomalies"
            " (fingerprint, reason, silence_id, inhibit_rule, source_fingerprint, event_id)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (fingerprint) DO UPDATE SET reason = EXCLUDED.reason,"
            "   silence_id = EXCLUDED.silence_id, inhibit_rule = EXCLUDED.inhibit_rule,"
            "   source_fingerprint = EXCLUDED.source_fingerprint, released_at = NULL",
            fingerprint,
            "silenced" if silenced else "inhibited",
            silenced,
            inhibited.rule if inhibited else None,
            inhibited.source_fingerprint if inhibited else None,
            event_id,
        )
        if silenced is not None:
            await self.conn.execute(
                "INSERT INTO silenced_anomalies (silence_id, fingerprint) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                silenced,
                fingerprint,
            )

    async def release(self, fingerprint: str) -> None:
        await self.conn.execute(
            "UPDATE suppressed_anomalies SET released_at = now() WHERE fingerprint = $1",
            fingerprint,
        )

    async def lock_inhibited_by(self, source: str) -> list[Suppressed]:
        rows = await self.conn.fetch(
            _SUPPRESSED + " WHERE s.source_fingerprint = $1 AND s.released_at IS NULL"
            " AND a.status = 'firing' ORDER BY a.fingerprint FOR UPDATE OF s",
            source,
        )
        return [Suppressed(_state(row), row["event_id"], row["reason"]) for row in rows]

    async def lock_silenced_past_their_silence(self, now: datetime, limit: int) -> list[Suppressed]:
        rows = await self.conn.fetch(
            _SUPPRESSED + " JOIN silences si ON si.id = s.silence_id"
            " WHERE s.reason = 'silenced' AND s.released_at IS NULL AND a.status = 'firing'"
            " AND si.ends_at <= $1 ORDER BY a.fingerprint LIMIT $2"
            # The anomaly's row too: the router, resolving it meanwhile, waits for the release.
            " FOR UPDATE OF s, a SKIP LOCKED",
            now,
            limit,
        )
        return [Suppressed(_state(row), row["event_id"], row["reason"]) for row in rows]

    async def record_routed(
        self, fingerprint: str, rule: str, to: Sequence[Destination], event_id: str
    ) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO routed_anomalies (fingerprint, rule, routes, queues, event_id, matches)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (fingerprint) DO NOTHING"
            " RETURNING fingerprint",
            fingerprint,
            rule,
            [d.route for d in to],
            [d.queue for d in to],
            event_id,
            [d.as_json() for d in to],
        )
        return inserted is not None

    async def routed_resolved(self, fingerprint: str) -> list[Destination]:
        matches = await self.conn.fetchval(
            "UPDATE routed_anomalies SET resolved_at = coalesce(resolved_at, now())"
            " WHERE fingerprint = $1 RETURNING matches",
            fingerprint,
        )
        return [Destination.of_json(m) for m in matches or []]

    async def withdraw_routed(self, fingerprint: str) -> tuple[list[Destination], str]:
        row = await self.conn.fetchrow(
            "DELETE FROM routed_anomalies WHERE fingerprint = $1 RETURNING matches, event_id",
            fingerprint,
        )
        assert row is not None
        return [Destination.of_json(m) for m in row["matches"]], row["event_id"]

    async def lock_group(self, key: str) -> Group | None:
        locked = self._locked.get(key)
        if locked is not None:
            return locked
        row = await self.conn.fetchrow(
            "SELECT * FROM route_groups WHERE group_key = $1 FOR UPDATE", key
        )
        return None if row is None else await self._group(row)

    async def lock_due_groups(self, now: datetime, limit: int) -> list[Group]:
        rows = await self.conn.fetch(
            "SELECT * FROM route_groups WHERE next_flush_at <= $1"
            " ORDER BY next_flush_at, group_key LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        return [await self._group(row) for row in rows]

    async def _group(self, row: asyncpg.Record) -> Group:
        members = await self.conn.fetch(
            "SELECT fingerprint, severity, firing, pending FROM route_group_members"
            " WHERE group_key = $1 ORDER BY added_at, fingerprint",
            row["group_key"],
        )
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
            members={
                m["fingerprint"]: Member(m["fingerprint"], m["firing"], m["pending"], m["severity"])
                for m in members
            },
            route=row["route"],
            queue=row["queue"],
            channels=tuple(row["channels"]),
            flushes=row["flushes"],
        )
        self._read[group.key] = {fp: (m.firing, m.pending) for fp, m in group.members.items()}
        self._locked[group.key] = group
        return group

    async def save_group(self, group: Group) -> None:
        read = self._read.pop(group.key, {})
        self._locked.pop(group.key, None)
        if group.closed:
            await self.conn.execute("DELETE FROM route_groups WHERE group_key = $1", group.key)
            return
        timers = group.timers
        await self.conn.execute(
            "INSERT INTO route_groups (group_key, route, queue, channels, group_wait_ms,"
            " group_interval_ms, repeat_interval_ms, created_at, next_flush_at, last_flush_at,"
            " flushes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            " ON CONFLICT (group_key) DO UPDATE SET next_flush_at = EXCLUDED.next_flush_at,"
            "   last_flush_at = EXCLUDED.last_flush_at, flushes = EXCLUDED.flushes",
            group.key,
            group.route,
            group.queue,
            list(group.channels),
            _ms(timers.group_wait) or 0,
            _ms(timers.group_interval) or 0,
            _ms(timers.repeat_interval),
            group.created_at,
            group.next_flush_at,
            group.last_flush_at,
            group.flushes,
        )
        removed = [fp for fp in read if fp not in group.members]
        if removed:
            await self.conn.execute(
                "DELETE FROM route_group_members WHERE group_key = $1"
                " AND fingerprint = ANY($2::text[])",
                group.key,
                removed,
            )
        changed: list[tuple[Any, ...]] = [
            (group.key, m.fingerprint, m.severity, m.firing, m.pending)
            for m in group.members.values()
            if read.get(m.fingerprint) != (m.firing, m.pending)
        ]
        if changed:
            await self.conn.executemany(
                "INSERT INTO route_group_members"
                " (group_key, fingerprint, severity, firing, pending)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_key, fingerprint) DO UPDATE"
                " SET firing = EXCLUDED.firing, pending = EXCLUDED.pending",
                changed,
            )
        # Locked (read FOR UPDATE, or inserted) by this transaction: kept for the next lock.
        for fp in removed:
            del read[fp]
        for _, fp, _, firing, pending in changed:
            read[fp] = (firing, pending)
        self._read[group.key] = read
        self._locked[group.key] = group
