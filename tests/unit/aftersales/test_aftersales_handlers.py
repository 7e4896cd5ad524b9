"""After-sales use cases on an in-memory unit of work: the events and state each one produces."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from inmemory import NOW, InMemoryUnitOfWork, incoming, one
from inmemory.aftersales import AftersalesRepository

from orderguard.services.aftersales import handlers
from orderguard.services.aftersales.domain import (
    Actor,
    CaseLine,
    RefundAboveCap,
    RefundLine,
)
from orderguard.services.aftersales.handlers import OpenCase
from orderguard.services.aftersales.repository import Attachment
from orderguard.shared.errors import IllegalTransition
from orderguard.shared.events import aftersales as events
from orderguard.shared.events.logistics import ShipmentExceptionReported
from orderguard.shared.events.notifications import NotificationRequested
from orderguard.shared.events.orders import (
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderRefundRequested,
    ShippingAddress,
)
from orderguard.shared.topics import Topics

TOPICS = Topics()
AGENT = Actor("staff", "agent-7")
CUSTOMER = Actor("customer", "c-1")
ADDRESS = ShippingAddress(
    province="浙江省", city="杭州市", district="西湖区", street="文三路 100 号", recipient="张三"
)


@pytest.fixture
async def repo(monkeypatch: pytest.MonkeyPatch) -> AftersalesRepository:
    """A repository that knows order o-1 (two lines, paid in full)."""
    fake = AftersalesRepository()
    monkeypatch.setattr(handlers, "repository", fake)
    facts = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "channel": "web",
        "warehouse": "hz",
        "lines": [
            OrderLine(sku="A", quantity=1, unit_price=Decimal("60.00")),
            OrderLine(sku="B", quantity=2, unit_price=Decimal("20.00")),
        ],
        "total_amount": Decimal("100.00"),
        "phone": "13800138000",
        "shipping_address": ADDRESS,
    }
    placed = OrderPlaced(**facts, placed_at=NOW - timedelta(days=2))
    paid = OrderPaid(
        **facts,
        paid_amount=Decimal("100.00"),
        payment_id="pay-1",
        promised_delivery_by=NOW + timedelta(days=1),
        paid_at=NOW - timedelta(days=2),
    )
    await handlers.learn_order_facts(
        InMemoryUnitOfWork(), [incoming(placed, "o-1"), incoming(paid, "o-1")]
    )
    return fake


async def open_case(case_type: str = "return", reason: str | None = None, days: int = 0) -> str:
    uow = InMemoryUnitOfWork(NOW + timedelta(days=days))
    command = OpenCase("o-1", case_type, (CaseLine("A", 1),), reason, "P3", None)
    opened = await handlers.open_case(uow, TOPICS, command, CUSTOMER, 7, 86400)
    return opened.case.case_id


async def test_learning_the_order_keeps_lines_and_paid_shares(repo: AftersalesRepository) -> None:
    order = repo.orders["o-1"]
    assert [(ln.sku, ln.quantity, ln.paid) for ln in order.lines] == [
        ("A", 1, Decimal("60.00")),
        ("B", 2, Decimal("40.00")),
    ]
    assert (order.paid_amount, order.phone) == (Decimal("100.00"), "13800138000")


async def test_a_return_within_the_window_opens_approved_and_the_customer_is_told(
    repo: AftersalesRepository,
) -> None:
    uow = InMemoryUnitOfWork()
    command = OpenCase("o-1", "return", (CaseLine("A", 1),), None, "P3", None)
    opened = await handlers.open_case(uow, TOPICS, command, CUSTOMER, 7, 86400)

    case_id = opened.case.case_id
    assert uow.types() == ["case.opened.v1", "case.updated.v1", "notification.requested.v1"]
    assert one(uow.events(events.CaseOpened)).lines == [events.CaseLine(sku="A", quantity=1)]
    approved = one(uow.events(events.CaseUpdated))
    assert (approved.action, approved.from_state, approved.to_state, approved.actor) == (
        "approve",
        "requested",
        "approved",
        "policy:return-window",
    )
    assert approved.note and approved.note.startswith("within 7 days")
    notice = one(uow.events(NotificationRequested))
    assert (notice.template, notice.request_id, notice.recipient.phone) == (
        "case.updated",
        f"case.updated:{case_id}:2",
        "13800138000",
    )
    assert [(e.what, e.event_type) for e in repo.timelines[case_id]] == [
        ("opened", "case.opened.v1"),
        ("approve", "case.updated.v1"),
    ]
    assert repo.cases[case_id].state == "approved"


async def test_a_late_return_is_flagged_for_review_and_only_opened(
    repo: AftersalesRepository,
) -> None:
    uow = InMemoryUnitOfWork(NOW + timedelta(days=30))
    command = OpenCase("o-1", "return", (CaseLine("A", 1),), "broken", "P3", None)
    opened = await handlers.open_case(uow, TOPICS, command, CUSTOMER, 7, 86400)

    assert uow.types() == ["case.opened.v1"]
    assert [(e.what, e.event_type) for e in repo.timelines[opened.case.case_id]] == [
        ("opened", "case.opened.v1"),
        ("flagged_for_review", None),
    ]
    assert repo.cases[opened.case.case_id].needs_review


async def test_case_actions_publish_updates_and_closing_publishes_case_closed(
    repo: AftersalesRepository,
) -> None:
    case_id = await open_case()
    receive = InMemoryUnitOfWork()
    await handlers.act_on_case(receive, TOPICS, case_id, "receive_goods", AGENT, "in the depot")
    assert receive.types() == ["case.updated.v1", "notification.requested.v1"]
    update = one(receive.events(events.CaseUpdated))
    assert (update.to_state, update.responded, update.note) == (
        "goods_received",
        True,
        "in the depot",
    )
    assert repo.cases[case_id].first_response_at == receive.now

    comment = InMemoryUnitOfWork()
    await handlers.comment_on_case(comment, TOPICS, case_id, AGENT, "refund tomorrow")
    assert comment.types() == ["case.updated.v1"]  # no state change: nothing to tell
    said = one(comment.events(events.CaseUpdated))
    assert (said.action, said.from_state, said.to_state) == (
        "comment",
        "goods_received",
        "goods_received",
    )

    with pytest.raises(IllegalTransition):
        await handlers.act_on_case(InMemoryUnitOfWork(), TOPICS, case_id, "close", AGENT, None)


async def test_a_refund_is_issued_once_within_what_was_paid(repo: AftersalesRepository) -> None:
    case_id = await open_case()
    await handlers.act_on_case(InMemoryUnitOfWork(), TOPICS, case_id, "receive_goods", AGENT, None)
    lines = [RefundLine("A", 1, Decimal("60.00"), "return")]
    uow = InMemoryUnitOfWork()
    refund, file = await handlers.issue_refund(uow, TOPICS, case_id, lines, "damaged", AGENT)

    assert uow.types() == [
        "refund.issued.v1",
        "notification.requested.v1",
        "case.updated.v1",
        "notification.requested.v1",
    ]
    issued = one(uow.events(events.RefundIssued))
    assert (issued.refund_id, issued.amount, issued.order_id) == (
        refund.refund_id,
        Decimal("60.00"),
        "o-1",
    )
    notices = uow.events(NotificationRequested)
    assert [n.template for n in notices] == ["refund.issued", "case.updated"]
    assert notices[0].request_id == f"refund.issued:{refund.refund_id}"
    assert file.case.state == "refunded"
    entry = repo.timelines[case_id][-1]
    assert (entry.what, entry.event_type) == ("refund", "case.updated.v1")
    assert entry.details["refund_event_id"] == uow.published[0][1].id
    assert entry.details["refund_id"] == refund.refund_id

    with pytest.raises(handlers.AlreadyRefunded):
        await handlers.issue_refund(InMemoryUnitOfWork(), TOPICS, case_id, lines, "again", AGENT)
    with pytest.raises(RefundAboveCap):
        await handlers.issue_refund(
            InMemoryUnitOfWork(),
            TOPICS,
            case_id,
            [RefundLine("A", 1, Decimal("0.01"), "compensation")],
            "more",
            AGENT,
        )

    close = InMemoryUnitOfWork()
    await handlers.act_on_case(close, TOPICS, case_id, "close", AGENT, "done")
    assert close.types() == ["case.updated.v1", "notification.requested.v1", "case.closed.v1"]
    assert one(close.events(events.CaseClosed)).resolution == "done"


async def test_a_refund_the_flow_does_not_allow_changes_nothing(
    repo: AftersalesRepository,
) -> None:
    case_id = await open_case(reason="late", days=30)  # requested, awaiting review
    uow = InMemoryUnitOfWork()
    with pytest.raises(IllegalTransition):
        await handlers.issue_refund(
            uow, TOPICS, case_id, [RefundLine("A", 1, Decimal("1"), "return")], "x", AGENT
        )
    assert uow.types() == [] and repo.refunds == []


async def test_a_cancelled_paid_order_is_refunded_in_full_once_and_the_customer_told(
    repo: AftersalesRepository,
) -> None:
    asked = OrderRefundRequested(
        order_id="o-1",
        customer_id="c-1",
        payment_id="pay-1",
        amount=Decimal("100.00"),
        reason="changed mind",
        requested_by="api:shop",
        requested_at=NOW,
    )
    uow = InMemoryUnitOfWork()
    await handlers.apply_order_facts(uow, TOPICS, [incoming(asked, "o-1")])
    refund = one(uow.events(events.RefundIssued))
    assert (refund.order_id, refund.amount) == ("o-1", Decimal("100.00"))
    assert [(ln.sku, ln.amount) for ln in refund.lines] == [
        ("A", Decimal("60.00")),
        ("B", Decimal("40.00")),
    ]
    templates = [n.template for n in uow.events(NotificationRequested)]
    assert "refund.issued" in templates
    [case] = repo.cases.values()
    assert (case.case_type, case.state) == ("refund", "refunded")
    [issued] = repo.refunds
    assert issued.issued_by == "consumer:order-cancellation"

    again = InMemoryUnitOfWork()  # the same request under a new event id
    await handlers.apply_order_facts(again, TOPICS, [incoming(asked, "o-1")])
    assert again.types() == []
    assert len(repo.refunds) == 1


async def test_a_parcel_declared_lost_opens_one_case_to_re_ship_or_refund(
    repo: AftersalesRepository,
) -> None:
    def reported(reason: str, scan_id: str) -> ShipmentExceptionReported:
        return ShipmentExceptionReported(
            shipment_id="shp-1",
            order_id="o-1",
            carrier="sf-express",
            tracking_number="SF1",
            warehouse="hz",
            scan_id=scan_id,
            reason=reason,  # type: ignore[arg-type]
            reported_at=NOW,
            location="hub",
        )

    uow = InMemoryUnitOfWork()
    await handlers.apply_shipment_facts(uow, TOPICS, [incoming(reported("damaged", "x1"), "shp-1")])
    assert uow.types() == [] and repo.cases == {}  # only a lost parcel opens a case
    await handlers.apply_shipment_facts(uow, TOPICS, [incoming(reported("lost", "x2"), "shp-1")])
    opened = one(uow.events(events.CaseOpened))
    assert (opened.case_type, opened.priority) == ("refund", "P2")
    assert "re-ship or refund" in opened.reason
    assert [(ln.sku, ln.quantity) for ln in opened.lines] == [("A", 1), ("B", 2)]
    again = InMemoryUnitOfWork()
    await handlers.apply_shipment_facts(again, TOPICS, [incoming(reported("lost", "x3"), "shp-1")])
    assert again.types() == [] and len(repo.cases) == 1


async def test_uploaded_evidence_is_stored_with_its_bytes_once_per_content(
    repo: AftersalesRepository,
) -> None:
    case_id = await open_case("complaint", reason="scratched")

    def photo(attachment_id: str) -> Attachment:
        return Attachment(
            attachment_id=attachment_id,
            case_id=case_id,
            filename="scratch.png",
            content_type="image/png",
            size_bytes=3,
            sha256="abc",
            storage="database",
            reference=attachment_id,
            uploaded_by="agent-7",
            uploaded_at=NOW,
        )

    _, added = await handlers.attach_evidence(InMemoryUnitOfWork(), photo("att-1"), b"PNG")
    assert added and repo.contents == {"att-1": b"PNG"}
    again, added = await handlers.attach_evidence(InMemoryUnitOfWork(), photo("att-2"), b"PNG")
    assert not added and again.attachment_id == "att-1" and list(repo.contents) == ["att-1"]
