"""The email channel against a real SMTP server (aiosmtpd on localhost): accepted mail is
delivered with text and HTML parts; a 5xx refusal is permanent, a 4xx one worth a retry, and
a server that is not there a retry too."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from orderguard.cli.embedded import free_port
from orderguard.services.notifier.channels.base import Message
from orderguard.services.notifier.channels.email import EmailChannel
from orderguard.services.notifier.settings import EmailSettings


class Server:
    """Accepts mail for anyone but `gone@` (550) and `busy@` (451)."""

    def __init__(self) -> None:
        self.received: list[email.message.EmailMessage] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "451 4.3.2 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Server, int]]:
    server = Server()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    yield server, port
    controller.stop()


def channel(port: int) -> EmailChannel:
    settings = EmailSettings(host="127.0.0.1", port=port, sender="shop@example.com", starttls=False)
    return EmailChannel(settings, timeout_s=5)


def message(to: str) -> Message:
    return Message(
        delivery_id="d-7",
        request_id="refund.issued:o-7:1",
        template="refund.issued",
        language="zh-CN",
        recipient_kind="customer",
        recipient_id="cust-7",
        subject="订单 o-7 退款已发放",
        text="您的订单 o-7 已退款 ¥12.50。",
        html="<p>您的订单 o-7 已退款 ¥12.50。</p>",
        contact=to,
    )


async def test_accepted_mail_is_delivered_with_both_parts(smtp: tuple[Server, int]) -> None:
    server, port = smtp
    outcome = await channel(port).send(message("li.lei@example.com"))
    assert (outcome.status, outcome.response_status) == ("delivered", 250)
    (mail,) = server.received
    assert mail["Subject"] == "订单 o-7 退款已发放" and mail["To"] == "li.lei@example.com"
    assert mail["X-Orderguard-Delivery"] == "d-7"
    assert "¥12.50" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<p>" in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [("gone@example.com", "permanent", 550), ("busy@example.com", "retryable", 451)],
)
async def test_refusals_are_classified_by_smtp_code(
    smtp: tuple[Server, int], to: str, status: str, code: int
) -> None:
    _, port = smtp
    outcome = await channel(port).send(message(to))
    assert (outcome.status, outcome.response_status) == (status, code)
    assert to not in (outcome.error or "") + outcome.response_snippet  # no address in the record


async def test_a_server_that_is_not_there_is_worth_a_retry() -> None:
    outcome = await channel(free_port()).send(message("li.lei@example.com"))
    assert outcome.status == "retryable"
    assert outcome.error is not None and outcome.error.startswith("SMTP transport error")


async def test_no_address_is_permanent() -> None:
    outcome = await channel(free_port()).send(message(""))
    assert outcome.status == "permanent"
