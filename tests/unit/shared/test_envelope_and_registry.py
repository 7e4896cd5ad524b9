"""The envelope and the event registry: the contract other services publish against."""

from __future__ import annotations

import os
import random
import time
import uuid

import orjson
import pytest
from pydantic import ValidationError

from orderguard.shared.detection.rule import fingerprint
from orderguard.shared.envelope import Envelope, new_event_id
from orderguard.shared.events import REGISTRY, UnknownEventType


def test_envelope_round_trips_and_carries_routing_headers() -> None:
    envelope = Envelope(
        type="order.cancelled.v1",
        source="/t",
        subject="o-1",
        data={"x": 1},
        traceparent="00-ab-cd-01",
    )
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    headers = dict(envelope.kafka_headers())
    assert headers["ce_type"] == b"order.cancelled.v1"
    assert headers["ce_id"] == envelope.id.encode()
    assert headers["traceparent"] == b"00-ab-cd-01"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"specversion": "1.0", "type": "x", "source": "/s", "subject": "k"}',  # no data
        b'{"specversion": "0.3", "type": "x", "source": "/s", "subject": "k", "data": {}}',
        b'{"specversion": "1.0", "type": "", "source": "/s", "subject": "k", "data": {}}',
    ],
)
def test_malformed_envelopes_are_rejected(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        Envelope.from_json(raw)


def test_registry_parses_known_types_and_names_unknown_ones() -> None:
    envelope = Envelope(
        type="order.cancelled.v1",
        source="/t",
        subject="o-1",
        data={
            "order_id": "o-1",
            "reason": "r",
            "cancelled_by": "c",
            "cancelled_at": "2026-11-22T08:00:00Z",
        },
    )
    assert REGISTRY.parse(envelope).order_id == "o-1"  # type: ignore[attr-defined]
    with pytest.raises(UnknownEventType, match=r"order\.exploded\.v1"):
        REGISTRY.parse(envelope.model_copy(update={"type": "order.exploded.v1"}))


def test_every_event_type_is_versioned_and_has_a_json_schema() -> None:
    schemas = REGISTRY.json_schemas()
    assert {
        "order.placed.v1",
        "order.cancelled.v1",
        "inventory.stock_changed.v1",
        "anomaly.detected.v1",
    } <= set(schemas)
    for name, schema in schemas.items():
        assert name.rsplit(".", 1)[-1].startswith("v"), name
        assert schema["type"] == "object" and schema["properties"], name


def test_fingerprint_is_deterministic_and_order_independent() -> None:
    a = fingerprint("stock.low", {"sku": "A", "warehouse": "main"}, 1)
    assert a == fingerprint("stock.low", {"warehouse": "main", "sku": "A"}, 1)
    assert a != fingerprint("stock.low", {"sku": "A", "warehouse": "main"}, 2)
    assert a != fingerprint("stock.low", {"sku": "B", "warehouse": "main"}, 1)


def test_event_ids_are_distinct_version_7_uuids() -> None:
    ids = [new_event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for event_id in ids[:1000]:
        parsed = uuid.UUID(event_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, event_id)


def test_event_ids_begin_with_the_millisecond_they_were_made_in() -> None:
    """Time-ordered ids go to the end of every index they key (each group's applied_events)."""
    before = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(event_id).int >> 80 <= after
    # Made a millisecond apart or more, they sort in the order they were made, as text too.
    ids = [event_id]
    while len(ids) < 4:
        if time.time_ns() // 1_000_000 > uuid.UUID(ids[-1]).int >> 80:
            ids.append(new_event_id())
    assert sorted(ids) == ids


def test_event_ids_do_not_repeat_when_someone_seeds_the_random_module() -> None:
    """Hypothesis (and any library) may seed the global generator the same way twice."""
    random.seed(7)
    first = new_event_id()
    random.seed(7)
    assert new_event_id() != first


def test_a_forked_child_draws_other_event_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its id and leave at once
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert uuid.UUID(child) and child != new_event_id()


def test_the_structured_json_leaves_out_what_is_unset_and_keeps_extensions() -> None:
    envelope = Envelope.model_validate(
        {
            "id": "e-1",
            "type": "order.cancelled.v1",
            "source": "/t",
            "subject": "o-1",
            "time": "2026-11-22T08:00:01.250000Z",
            "data": {"n": 1.5, "at": "x", "none": None, "list": [1, "ü"]},
            "traceparent": None,
            "partitionkey": "o-1",  # a CloudEvents extension attribute
        }
    )
    assert orjson.loads(envelope.to_json()) == {
        "specversion": "1.0",
        "id": "e-1",
        "type": "order.cancelled.v1",
        "source": "/t",
        "subject": "o-1",
        "time": "2026-11-22T08:00:01.250000Z",
        "datacontenttype": "application/json",
        "data": {"n": 1.5, "at": "x", "none": None, "list": [1, "ü"]},
        "partitionkey": "o-1",
    }
