"""Analytics of anomalies and work items, as chart-ready series: one SQL aggregate per request
over an indexed time column (work_item_anomalies.detected_at, work_items.created_at)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from orderguard.services.notifier.work_items.repository import Connection

Bucket = Literal["hour", "day", "week"]
BUCKET_LENGTH = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
MAX_BUCKETS = 2000

# Dimension -> SQL expression. A whitelist: user input never reaches the SQL text.
ANOMALY_DIMENSIONS: Mapping[str, str] = {
    "rule": "rule",
    "team": "team",
    "severity": "severity",
    "reason": "labels->>'reason'",
    "sku": "labels->>'sku'",
    "warehouse": "labels->>'warehouse'",
    "carrier": "labels->>'carrier'",
    "channel": "labels->>'channel'",
}
WORK_ITEM_DIMENSIONS: Mapping[str, str] = {
    "rule": "rules[1]",
    "team": "team",
    "severity": "initial_severity",
    "state": "state",
    "reason": "close_reason",
    "sku": "labels->>'sku'",
    "warehouse": "labels->>'warehouse'",
    "carrier": "labels->>'carrier'",
    "channel": "labels->>'channel'",
}
NONE_KEY = "(none)"


def bucket_starts(bucket: Bucket, start: datetime, end: datetime) -> list[datetime]:
    """Bucket starts covering [start, end), aligned like PostgreSQL's date_trunc in UTC."""
    start = start.astimezone(UTC)
    if bucket == "hour":
        first = start.replace(minute=0, second=0, microsecond=0)
    else:
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
        if bucket == "week":
            first -= timedelta(days=first.weekday())  # ISO weeks start on Monday
    starts = []
    at = first
    while at < end:
        starts.append(at)
        at += BUCKET_LENGTH[bucket]
    return starts


def _zero_filled(
    rows: Sequence[Any], bucket: Bucket, start: datetime, end: datetime
) -> tuple[list[datetime], list[tuple[str, list[int]]]]:
    """(bucket starts, [(key, count per bucket)] biggest total first) of (bucket, key, n) rows;
    buckets without rows count 0, a NULL key is NONE_KEY."""
    starts = bucket_starts(bucket, start, end)
    index = {at: i for i, at in enumerate(starts)}
    counts: dict[str, list[int]] = {}
    for row in rows:
        key = row["key"] if row["key"] is not None else NONE_KEY
        counts.setdefault(key, [0] * len(starts))[index[row["bucket"]]] += row["n"]
    return starts, sorted(counts.items(), key=lambda kv: (-sum(kv[1]), kv[0]))


async def series(
    conn: Connection,
    *,
    table: Literal["anomalies", "work_items"],
    by: str,
    bucket: Bucket,
    start: datetime,
    end: datetime,
    team: str | None,
    teams: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Counts and hourly rates per `by` value and time bucket, zero-filled for charts; of one
    `team`, of several `teams` (a person's), or of all."""
    if table == "anomalies":
        dimension, source, at = ANOMALY_DIMENSIONS[by], "work_item_anomalies", "detected_at"
        counted = "count(DISTINCT fingerprint)"  # routed to two teams: one anomaly still
    else:
        dimension, source, at = WORK_ITEM_DIMENSIONS[by], "work_items", "created_at"
        counted = "count(*)"
    rows = await conn.fetch(
        f"SELECT date_trunc($1, {at}, 'UTC') AS bucket, {dimension} AS key, {counted} AS n"
        f" FROM {source} WHERE {at} >= $2 AND {at} < $3 AND ($4::text IS NULL OR team = $4)"
        " AND ($5::text[] IS NULL OR team = ANY($5::text[])) GROUP BY 1, 2",
        bucket,
        start,
        end,
        team,
        None if teams is None else list(teams),
    )
    starts, ordered = _zero_filled(rows, bucket, start, end)
    hours = BUCKET_LENGTH[bucket].total_seconds() / 3600
    return {
        "of": table,
        "by": by,
        "bucket": bucket,
        "from": start,
        "to": end,
        "team": team,
        "buckets": starts,
        "series": [
            {
                "key": key,
                "total": sum(values),
                "counts": values,
                "rates_per_hour": [round(v / hours, 6) for v in values],
            }
            for key, values in ordered
        ],
        "total": sum(sum(values) for _, values in ordered),
    }


def _stats(p50: float | None, p90: float | None, avg: float | None) -> dict[str, float | None]:
    return {
        "p50": None if p50 is None else round(p50, 3),
        "p90": None if p90 is None else round(p90, 3),
        "avg": None if avg is None else round(avg, 3),
    }


async def response_times(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    team: str | None,
    teams: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Time to claim and to resolve, in seconds, per team and the severity items opened with,
    over the items created in [start, end)."""
    rows = await conn.fetch(
        "WITH t AS ("
        "  SELECT team, initial_severity AS severity, state,"
        "    extract(epoch FROM claimed_at - created_at)::float8 AS to_claim,"
        "    CASE WHEN state = 'resolved' THEN extract(epoch FROM closed_at - created_at)::float8"
        "    END AS to_resolve"
        "  FROM work_items WHERE created_at >= $1 AND created_at < $2"
        "    AND ($3::text IS NULL OR team = $3)"
        "    AND ($4::text[] IS NULL OR team = ANY($4::text[])))"
        " SELECT team, severity, count(*) AS items, count(to_claim) AS claimed,"
        "  count(to_resolve) AS resolved,"
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY to_claim) AS claim_p50,"
        "  percentile_cont(0.9) WITHIN GROUP (ORDER BY to_claim) AS claim_p90,"
        "  avg(to_claim) AS claim_avg,"
        "  percentile_cont(0.5) WITHIN GROUP (ORDER BY to_resolve) AS resolve_p50,"
        "  percentile_cont(0.9) WITHIN GROUP (ORDER BY to_resolve) AS resolve_p90,"
        "  avg(to_resolve) AS resolve_avg"
        " FROM t GROUP BY team, severity ORDER BY team, severity",
        start,
        end,
        team,
        None if teams is None else list(teams),
    )
    return {
        "from": start,
        "to": end,
        "team": team,
        "rows": [
            {
                "team": r["team"],
                "severity": r["severity"],
                "items": r["items"],
                "claimed": r["claimed"],
                "resolved": r["resolved"],
                "time_to_claim_s": _stats(r["claim_p50"], r["claim_p90"], r["claim_avg"]),
                "time_to_resolve_s": _stats(r["resolve_p50"], r["resolve_p90"], r["resolve_avg"]),
            }
            for r in rows
        ],
    }


async def escalations(
    conn: Connection,
    *,
    bucket: Bucket,
    start: datetime,
    end: datetime,
    teams: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Escalations per team and time bucket, zero-filled, from the items' "escalated" timeline
    entries in [start, end); of several `teams` (a person's), or of all."""
    rows = await conn.fetch(
        "SELECT date_trunc($1, e.at, 'UTC') AS bucket, i.team AS key, count(*) AS n"
        " FROM work_item_timeline e JOIN work_items i ON i.id = e.work_item_id"
        " WHERE e.what = 'escalated' AND e.at >= $2 AND e.at < $3"
        " AND ($4::text[] IS NULL OR i.team = ANY($4::text[])) GROUP BY 1, 2",
        bucket,
        start,
        end,
        None if teams is None else list(teams),
    )
    starts, ordered = _zero_filled(rows, bucket, start, end)
    return {
        "bucket": bucket,
        "from": start,
        "to": end,
        "buckets": starts,
        "series": [{"key": key, "total": sum(values), "counts": values} for key, values in ordered],
        "total": sum(sum(values) for _, values in ordered),
    }


# Label -> SQL expression of the anomalies' labels a rule names its subject with. A whitelist.
TOP_LABELS: Mapping[str, str] = {
    "sku": "labels->>'sku'",
    "customer": "labels->>'customer_id'",
}


async def top_by_rule(
    conn: Connection,
    *,
    label: str,
    start: datetime,
    end: datetime,
    teams: Sequence[str] | None = None,
    limit: int = 5,
) -> dict[str, list[dict[str, Any]]]:
    """Per rule (anomaly kind), the `limit` values of `label` (sku, customer) most anomalies
    detected in [start, end) name, most first: {rule: [{key, n}]}. Anomalies without the label
    are not counted."""
    value = TOP_LABELS[label]
    rows = await conn.fetch(
        "SELECT rule, key, n FROM ("
        f"  SELECT rule, {value} AS key, count(DISTINCT fingerprint) AS n,"
        f"    row_number() OVER (PARTITION BY rule ORDER BY count(DISTINCT fingerprint) DESC,"
        f"      {value}) AS place"
        "   FROM work_item_anomalies WHERE detected_at >= $1 AND detected_at < $2"
        f"    AND {value} IS NOT NULL AND ($3::text[] IS NULL OR team = ANY($3::text[]))"
        "   GROUP BY rule, key) ranked"
        " WHERE place <= $4 ORDER BY rule, n DESC, key",
        start,
        end,
        None if teams is None else list(teams),
        limit,
    )
    top: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        top.setdefault(row["rule"], []).append({"key": row["key"], "n": row["n"]})
    return top
