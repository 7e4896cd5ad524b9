"""One validation of received events (Kafka and HTTP): what it accepts and why it refuses."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from orderguard.shared.contract.received import (
    INVALID,
    MALFORMED,
    UNKNOWN_TYPE,
    InvalidEvent,
    check_subject,
    parse_envelope,
    received_event,
)
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.orders import OrderCancelled


def cancellation(**changes: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": "evt-1",
        "type": "order.cancelled.v1",
        "source": "/t",
        "subject": "o-1",
        "time": "2026-11-22T08:00:00Z",
        "data": {
            "order_id": "o-1",
            "reason": "r",
            "cancelled_by": "c",
            "cancelled_at": "2026-11-22T08:00:00Z",
        },
    }
    return {**event, **changes}


@pytest.mark.parametrize("hinted", [True, False])
def test_a_valid_event_comes_back_typed(hinted: bool) -> None:
    raw = orjson.dumps(cancellation())
    envelope = received_event(raw, "order.cancelled.v1" if hinted else None)
    assert isinstance(envelope.data, OrderCancelled)
    assert (envelope.id, envelope.data.order_id) == ("evt-1", "o-1")


@pytest.mark.parametrize(
    ("raw", "reason", "error"),
    [
        (b"{not json", MALFORMED, "Invalid JSON"),
        (b"[1]", MALFORMED, "<root>: An event is a JSON object"),
        (
            orjson.dumps({k: v for k, v in cancellation().items() if k != "id"}),
            MALFORMED,
            "id: Field required",
        ),
        (orjson.dumps(cancellation(type="order.exploded.v1")), UNKNOWN_TYPE, "order.exploded.v1"),
        (
            orjson.dumps(cancellation(data={"order_id": "o-1"})),
            INVALID,
            "data.reason: Field required",
        ),
        (
            orjson.dumps(cancellation(subject="o-2")),
            INVALID,
            "subject: subject must be the aggregate id, data.order_id ('o-1')",
        ),
    ],
)
@pytest.mark.parametrize("hinted", [True, False])
def test_a_refused_event_says_why(raw: bytes, reason: str, error: str, hinted: bool) -> None:
    with pytest.raises(InvalidEvent) as refused:
        received_event(raw, "order.cancelled.v1" if hinted else None)
    assert refused.value.reason == reason
    assert error in str(refused.value)


def test_the_subject_check_reads_dict_data_as_the_http_door_has_it() -> None:
    envelope = parse_envelope(cancellation(subject="o-2"))
    assert isinstance(envelope, Envelope) and isinstance(envelope.data, dict)
    with pytest.raises(InvalidEvent) as refused:
        check_subject(envelope)
    assert refused.value.errors[0]["type"] == "subject_mismatch"
    check_subject(parse_envelope(cancellation()))
