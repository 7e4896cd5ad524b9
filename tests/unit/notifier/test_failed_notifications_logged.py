"""Every failed notification is dead-lettered; the log says a recipient no channel reaches once
per kind of recipient and template a minute (with how many alike it did not), not for each
message: a shop whose customers have no contact channel would log every order otherwise."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from orderguard.services.notifier.deliveries import service
from orderguard.shared.logging import Repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Published:
    """What publish_failed needs of a unit of work: publish, and the time."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, tzinfo=UTC)
        self.events: list[Any] = []

    def publish(self, topic: str, data: Any, **_: Any) -> None:
        self.events.append(data)


def fail(
    uow: Published, n: int, reason: str = "no_channel", template: str = "order.confirmed"
) -> None:
    service.publish_failed(
        uow,  # type: ignore[arg-type]
        "notifications.dead",
        request_id=f"r-{n}",
        recipient_kind="customer",
        recipient_id=f"c-{n}",
        template=template,
        reason=reason,  # type: ignore[arg-type]
        error="no configured channel can reach this recipient",
    )


def test_no_channel_is_logged_once_a_minute_with_the_count_and_every_one_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(service, "NO_CHANNEL_SAID", Repeats(60.0, clock))
    uow = Published()
    with capture_logs() as logs:
        for n in range(5):
            fail(uow, n)
        fail(uow, 5, template="shipment.delayed")  # another template: said on its own
        clock.now = 61.0
        fail(uow, 6)
    said = [(line["recipient_id"], line.get("alike_not_logged")) for line in logs]
    assert said == [("c-0", 0), ("c-5", 0), ("c-6", 4)]
    assert [event.request_id for event in uow.events] == [f"r-{n}" for n in range(7)]


def test_other_failures_are_logged_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "NO_CHANNEL_SAID", Repeats(60.0, Clock()))
    uow = Published()
    with capture_logs() as logs:
        for n in range(3):
            fail(uow, n, reason="retries_exhausted")
    assert [line["recipient_id"] for line in logs] == ["c-0", "c-1", "c-2"]
    assert all("alike_not_logged" not in line for line in logs)
