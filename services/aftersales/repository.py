"""PostgreSQL adapter for aftersales (schema `aftersales`): known orders, cases, their timeline,
attachments and refunds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from orderguard.services.aftersales.domain import (
    Actor,
    Case,
    CaseLine,
    KnownOrder,
    OrderLine,
    RefundLine,
    TimelineEntry,
)
from orderguard.shared.db import Connection

# -- known orders --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderFact:
    """What an order event tells of an order: a placement (`placed_at`) or a payment (`paid_at`,
    and the lines' paid shares)."""

    order_id: str
    customer_id: str
    channel: str
    phone: str | None
    total_amount: Decimal
    lines: Sequence[OrderLine]
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    paid_amount: Decimal | None = None
    payment_id: str | None = None


async def remember_orders(conn: Connection, facts: Sequence[OrderFact]) -> None:
    """Upsert what order events tell, in their order; the same fact again changes nothing.
    Payment facts (and the lines' paid shares) win over the placement's; a placement never
    undoes a payment. One statement per run of facts about distinct orders (a statement
    cannot upsert a row twice)."""
    run: list[OrderFact] = []
    told: set[str] = set()  # the orders of the run
    for fact in facts:
        if fact.order_id in told:
            await _remember(conn, run)
            run, told = [], set()
        run.append(fact)
        told.add(fact.order_id)
    if run:
        await _remember(conn, run)


def _line_arrays(facts: Iterable[OrderFact]) -> list[list[Any]]:
    lines = [(fact.order_id, ln) for fact in facts for ln in fact.lines]
    return [
        [order_id for order_id, _ in lines],
        [ln.sku for _, ln in lines],
        [ln.quantity for _, ln in lines],
        [ln.amount for _, ln in lines],
        [ln.paid for _, ln in lines],
    ]


async def _remember(conn: Connection, facts: Sequence[OrderFact]) -> None:
    """Orders told once each, and their lines, in one statement (the lines' key check runs at
    its end, when the orders' rows are there)."""
    await conn.execute(
        "WITH known AS (INSERT INTO known_orders (order_id, customer_id, channel, phone,"
        " total_amount, placed_at, paid_at, paid_amount, payment_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],"
        " $6::timestamptz[], $7::timestamptz[], $8::numeric[], $9::text[])"
        " ON CONFLICT (order_id) DO UPDATE SET"
        " placed_at = COALESCE(known_orders.placed_at, EXCLUDED.placed_at),"
        " paid_at = COALESCE(known_orders.paid_at, EXCLUDED.paid_at),"
        " paid_amount = COALESCE(known_orders.paid_amount, EXCLUDED.paid_amount),"
        " payment_id = COALESCE(known_orders.payment_id, EXCLUDED.payment_id),"
        " phone = COALESCE(EXCLUDED.phone, known_orders.phone), updated_at = now()),"
        # A payment tells the lines' paid shares: they replace what the placement told.
        " paid_lines AS (INSERT INTO known_order_lines (order_id, sku, quantity, amount, paid)"
        " SELECT * FROM unnest($10::text[], $11::text[], $12::int[], $13::numeric[],"
        " $14::numeric[]) ON CONFLICT (order_id, sku) DO UPDATE SET quantity = EXCLUDED.quantity,"
        " amount = EXCLUDED.amount, paid = EXCLUDED.paid)"
        " INSERT INTO known_order_lines (order_id, sku, quantity, amount, paid)"
        " SELECT * FROM unnest($15::text[], $16::text[], $17::int[], $18::numeric[],"
        " $19::numeric[]) ON CONFLICT (order_id, sku) DO NOTHING",
        [f.order_id for f in facts],
        [f.customer_id for f in facts],
        [f.channel for f in facts],
        [f.phone for f in facts],
        [f.total_amount for f in facts],
        [f.placed_at for f in facts],
        [f.paid_at for f in facts],
        [f.paid_amount for f in facts],
        [f.payment_id for f in facts],
        *_line_arrays(f for f in facts if f.paid_at is not None),
        *_line_arrays(f for f in facts if f.paid_at is None),
    )


async def remember_delivery(
    conn: Connection, order_id: str, shipment_id: str, delivered_at: datetime
) -> None:
    """The first delivery reported for an order is the one the return window counts from."""
    await conn.execute(
        "INSERT INTO order_deliveries (order_id, shipment_id, delivered_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (order_id) DO NOTHING",
        order_id,
        shipment_id,
        delivered_at,
    )


async def get_order(conn: Connection, order_id: str, for_update: bool = False) -> KnownOrder | None:
    row = await conn.fetchrow(
        "SELECT o.*, d.delivered_at FROM known_orders o"
        " LEFT JOIN order_deliveries d USING (order_id) WHERE o.order_id = $1"
        + (" FOR UPDATE OF o" if for_update else ""),
        order_id,
    )
    if row is None:
        return None
    lines = await conn.fetch(
        "SELECT sku, quantity, amount, paid FROM known_order_lines WHERE order_id = $1"
        " ORDER BY sku",
        order_id,
    )
    return KnownOrder(
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        channel=row["channel"],
        lines=tuple(OrderLine(r["sku"], r["quantity"], r["amount"], r["paid"]) for r in lines),
        placed_at=row["placed_at"],
        paid_at=row["paid_at"],
        paid_amount=row["paid_amount"],
        delivered_at=row["delivered_at"],
        phone=row["phone"],
    )


# -- cases ---------------------------------------------------------------------------------

_CASE_COLUMNS = (
    "case_id, order_id, customer_id, channel, case_type, state, priority, reason, lines,"
    " needs_review, policy, opened_at, updated_at, first_response_due_at, first_response_at,"
    " closed_at, resolution, satisfaction, version"
)


def _case_values(case: Case) -> tuple[Any, ...]:
    return (
        case.case_id,
        case.order_id,
        case.customer_id,
        case.channel,
        case.case_type,
        case.state,
        case.priority,
        case.reason,
        [{"sku": line.sku, "quantity": line.quantity} for line in case.lines],
        case.needs_review,
        dict(case.policy),
        case.opened_at,
        case.updated_at,
        case.first_response_due_at,
        case.first_response_at,
        case.closed_at,
        case.resolution,
        case.satisfaction,
        case.version,
    )


async def add_case(conn: Connection, case: Case) -> None:
    await conn.execute(
        f"INSERT INTO cases ({_CASE_COLUMNS}) VALUES"
        " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        *_case_values(case),
    )


async def save_case(conn: Connection, case: Case) -> None:
    await conn.execute(
        "UPDATE cases SET state = $2, needs_review = $3, updated_at = $4,"
        " first_response_at = $5, closed_at = $6, resolution = $7, satisfaction = $8,"
        " version = $9 WHERE case_id = $1",
        case.case_id,
        case.state,
        case.needs_review,
        case.updated_at,
        case.first_response_at,
        case.closed_at,
        case.resolution,
        case.satisfaction,
        case.version,
    )


def _case(row: Any) -> Case:
    return Case(
        case_id=row["case_id"],
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        channel=row["channel"],
        case_type=row["case_type"],
        state=row["state"],
        priority=row["priority"],
        reason=row["reason"],
        lines=tuple(CaseLine(line["sku"], line["quantity"]) for line in row["lines"]),
        needs_review=row["needs_review"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        first_response_due_at=row["first_response_due_at"],
        first_response_at=row["first_response_at"],
        closed_at=row["closed_at"],
        resolution=row["resolution"],
        satisfaction=row["satisfaction"],
        policy=row["policy"],
        version=row["version"],
    )


async def get_case(conn: Connection, case_id: str, for_update: bool = False) -> Case | None:
    row = await conn.fetchrow(
        f"SELECT {_CASE_COLUMNS} FROM cases WHERE case_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        case_id,
    )
    return _case(row) if row is not None else None


async def find_cases(
    conn: Connection,
    order_id: str | None,
    state: str | None,
    case_type: str | None,
    limit: int,
    order: Literal["newest", "sla_due"] = "newest",
) -> list[Case]:
    # sla_due: closed cases last, then the earliest first-response due (none due: after).
    ordering = (
        "opened_at DESC, case_id"
        if order == "newest"
        else "closed_at IS NOT NULL, first_response_due_at ASC NULLS LAST, opened_at, case_id"
    )
    rows = await conn.fetch(
        f"SELECT {_CASE_COLUMNS} FROM cases WHERE ($1::text IS NULL OR order_id = $1)"
        " AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR case_type = $3)"
        f" ORDER BY {ordering} LIMIT $4",
        order_id,
        state,
        case_type,
        limit,
    )
    return [_case(row) for row in rows]


async def record(conn: Connection, case_id: str, entries: Iterable[TimelineEntry]) -> None:
    await conn.executemany(
        "INSERT INTO case_timeline (case_id, at, what, actor_kind, actor_id, actor_name, note,"
        " from_state, to_state, event_type, event_id, details)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        [
            (
                case_id,
                e.at,
                e.what,
                e.actor.kind,
                e.actor.id,
                e.actor.name,
                e.note,
                e.from_state,
                e.to_state,
                e.event_type,
                e.event_id,
                dict(e.details),
            )
            for e in entries
        ],
    )


async def timeline(conn: Connection, case_id: str) -> list[TimelineEntry]:
    rows = await conn.fetch(
        "SELECT at, what, actor_kind, actor_id, actor_name, note, from_state, to_state,"
        " event_type, event_id, details FROM case_timeline WHERE case_id = $1 ORDER BY at, id",
        case_id,
    )
    return [
        TimelineEntry(
            at=r["at"],
            what=r["what"],
            actor=Actor(r["actor_kind"], r["actor_id"], r["actor_name"]),
            note=r["note"],
            from_state=r["from_state"],
            to_state=r["to_state"],
            event_type=r["event_type"],
            event_id=r["event_id"],
            details=r["details"],
        )
        for r in rows
    ]


# -- attachments ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attachment:
    attachment_id: str
    case_id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    storage: str  # database (the bytes in case_attachment_content) | url | local (older uploads)
    reference: str
    uploaded_by: str
    uploaded_at: datetime


_ATTACHMENT_COLUMNS = (
    "attachment_id, case_id, filename, content_type, size_bytes, sha256, storage, reference,"
    " uploaded_by, uploaded_at"
)


async def add_attachment(conn: Connection, attachment: Attachment) -> None:
    await conn.execute(
        f"INSERT INTO case_attachments ({_ATTACHMENT_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        attachment.attachment_id,
        attachment.case_id,
        attachment.filename,
        attachment.content_type,
        attachment.size_bytes,
        attachment.sha256,
        attachment.storage,
        attachment.reference,
        attachment.uploaded_by,
        attachment.uploaded_at,
    )


async def add_attachment_content(conn: Connection, attachment_id: str, content: bytes) -> None:
    await conn.execute(
        "INSERT INTO case_attachment_content (attachment_id, content) VALUES ($1, $2)",
        attachment_id,
        content,
    )


async def attachment_content(
    conn: Connection, case_id: str, attachment_id: str
) -> tuple[Attachment, bytes | None] | None:
    """An attachment of the case and its stored bytes (None when stored elsewhere)."""
    row = await conn.fetchrow(
        "SELECT a.attachment_id, a.case_id, a.filename, a.content_type, a.size_bytes, a.sha256,"
        " a.storage, a.reference, a.uploaded_by, a.uploaded_at, c.content"
        " FROM case_attachments a"
        " LEFT JOIN case_attachment_content c ON c.attachment_id = a.attachment_id"
        " WHERE a.case_id = $1 AND a.attachment_id = $2",
        case_id,
        attachment_id,
    )
    if row is None:
        return None
    fields = dict(row)
    content = fields.pop("content")
    return Attachment(**fields), content


async def attachment_with(conn: Connection, case_id: str, sha256: str) -> Attachment | None:
    row = await conn.fetchrow(
        f"SELECT {_ATTACHMENT_COLUMNS} FROM case_attachments WHERE case_id = $1 AND sha256 = $2",
        case_id,
        sha256,
    )
    return Attachment(**dict(row)) if row is not None else None


async def attachments(conn: Connection, case_id: str) -> list[Attachment]:
    rows = await conn.fetch(
        f"SELECT {_ATTACHMENT_COLUMNS} FROM case_attachments WHERE case_id = $1"
        " ORDER BY uploaded_at, attachment_id",
        case_id,
    )
    return [Attachment(**dict(row)) for row in rows]


# -- refunds -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    case_id: str
    order_id: str
    customer_id: str
    amount: Decimal
    reason: str
    issued_by: str
    issued_at: datetime
    lines: tuple[RefundLine, ...]


async def refunded_by_sku(conn: Connection, order_id: str) -> dict[str, Decimal]:
    """What was already refunded per SKU of the order, on every case."""
    rows = await conn.fetch(
        "SELECT sku, sum(amount) AS amount FROM refund_lines WHERE order_id = $1 GROUP BY sku",
        order_id,
    )
    return {row["sku"]: row["amount"] for row in rows}


async def issued_lines(
    conn: Connection, case_id: str, lines: Sequence[RefundLine]
) -> list[tuple[str, str, str]]:
    """(sku, action, refund id) of these lines already refunded on this case."""
    rows = await conn.fetch(
        "SELECT sku, action, refund_id FROM refund_lines WHERE case_id = $1"
        " AND (sku, action) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        case_id,
        [line.sku for line in lines],
        [line.action for line in lines],
    )
    return [(row["sku"], row["action"], row["refund_id"]) for row in rows]


async def add_refund(conn: Connection, refund: Refund) -> None:
    await conn.execute(
        "INSERT INTO refunds (refund_id, case_id, order_id, customer_id, amount, reason,"
        " issued_by, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        refund.refund_id,
        refund.case_id,
        refund.order_id,
        refund.customer_id,
        refund.amount,
        refund.reason,
        refund.issued_by,
        refund.issued_at,
    )
    await conn.executemany(
        "INSERT INTO refund_lines (refund_id, case_id, order_id, sku, action, quantity, amount)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (
                refund.refund_id,
                refund.case_id,
                refund.order_id,
                ln.sku,
                ln.action,
                ln.quantity,
                ln.amount,
            )
            for ln in refund.lines
        ],
    )


async def refunds_of(conn: Connection, case_id: str) -> list[Refund]:
    rows = await conn.fetch(
        "SELECT * FROM refunds WHERE case_id = $1 ORDER BY issued_at, refund_id", case_id
    )
    lines = await conn.fetch(
        "SELECT refund_id, sku, action, quantity, amount FROM refund_lines WHERE case_id = $1"
        " ORDER BY sku, action",
        case_id,
    )
    by_refund: dict[str, list[RefundLine]] = {}
    for ln in lines:
        by_refund.setdefault(ln["refund_id"], []).append(
            RefundLine(ln["sku"], ln["quantity"], ln["amount"], ln["action"])
        )
    return [
        Refund(
            refund_id=r["refund_id"],
            case_id=r["case_id"],
            order_id=r["order_id"],
            customer_id=r["customer_id"],
            amount=r["amount"],
            reason=r["reason"],
            issued_by=r["issued_by"],
            issued_at=r["issued_at"],
            lines=tuple(by_refund.get(r["refund_id"], ())),
        )
        for r in rows
    ]
