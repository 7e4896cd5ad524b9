"""Channels without a network: signatures (vectors checked with openssl), the payload formats
of DingTalk, WeCom and Slack, and how answers become outcomes."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import replace

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from orderguard.services.notifier.channels.base import Message, http_outcome
from orderguard.services.notifier.channels.im import (
    DingTalkChannel,
    SlackChannel,
    WeComChannel,
    dingtalk_payload,
    errcode_outcome,
    slack_payload,
    wecom_payload,
)
from orderguard.services.notifier.channels.signing import (
    dingtalk_sign,
    dingtalk_signed_url,
    verify_webhook,
    webhook_signature,
)
from orderguard.services.notifier.channels.sms import SmsGatewayChannel
from orderguard.services.notifier.channels.webhook import WebhookChannel
from orderguard.services.notifier.settings import (
    DingTalkSettings,
    ImWebhookSettings,
    SmsSettings,
    WebhookSettings,
)

MESSAGE = Message(
    delivery_id="d-1",
    request_id="order.held:o-1:1",
    template="order.held",
    language="en",
    recipient_kind="customer",
    recipient_id="cust-1",
    subject="Order o-1 is on hold",
    text="Your order o-1 is on hold: address incomplete.",
    contact="13800138000",
    params={"order_id": "o-1"},
)
NOW = 1763798400.0


def test_webhook_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    # Vector: printf '1763798400.{"a":1}' | openssl dgst -sha256 -hmac s3cret
    assert webhook_signature("s3cret", 1763798400, b'{"a":1}') == (
        "sha256=4d32bd47910f41adc634168ce0279300a2ad060f966e556eb54280bd5b40b2c6"
    )


def test_a_receiver_accepts_a_fresh_signature_and_rejects_tampering_or_replay() -> None:
    signature = webhook_signature("s3cret", int(NOW), b"body")
    assert verify_webhook("s3cret", str(int(NOW)), b"body", signature, now=NOW + 10)
    assert not verify_webhook("s3cret", str(int(NOW)), b"body!", signature, now=NOW)
    assert not verify_webhook("other", str(int(NOW)), b"body", signature, now=NOW)
    assert not verify_webhook("s3cret", str(int(NOW)), b"body", signature, now=NOW + 3600)


def test_dingtalk_sign_follows_the_documented_algorithm() -> None:
    # Vector: printf '1763798400000\nSEC123' | openssl dgst -sha256 -hmac SEC123 -binary | base64
    assert dingtalk_sign("SEC123", 1763798400000) == urllib.parse.quote_plus(
        "47Lxtm5pumprq9IlkE/hF0q9SiAyIuJfIpyuI6/6Dt4="
    )
    url = dingtalk_signed_url(
        "https://oapi.dingtalk.com/robot/send?access_token=T", "SEC123", 1763798400000
    )
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query == {
        "access_token": ["T"],
        "timestamp": ["1763798400000"],
        "sign": ["47Lxtm5pumprq9IlkE/hF0q9SiAyIuJfIpyuI6/6Dt4="],
    }


def test_im_payload_formats() -> None:
    assert dingtalk_payload(MESSAGE) == {
        "msgtype": "markdown",
        "markdown": {
            "title": "Order o-1 is on hold",
            "text": "#### Order o-1 is on hold\n\nYour order o-1 is on hold: address incomplete.",
        },
    }
    assert wecom_payload(MESSAGE) == {
        "msgtype": "markdown",
        "markdown": {
            "content": "#### Order o-1 is on hold\n\nYour order o-1 is on hold: address incomplete."
        },
    }
    slack = slack_payload(MESSAGE)
    assert slack["text"].startswith("Order o-1 is on hold")
    assert slack["blocks"] == [
        {"type": "header", "text": {"type": "plain_text", "text": "Order o-1 is on hold"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Your order o-1 is on hold: address incomplete."},
        },
    ]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (400, "permanent"),
        (401, "permanent"),
        (404, "permanent"),
        (408, "retryable"),
        (429, "retryable"),
        (500, "retryable"),
        (503, "retryable"),
    ],
)
def test_http_answers_become_outcomes(status: int, outcome: str) -> None:
    assert http_outcome(httpx.Response(status, text="x")).status == outcome


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ({"errcode": 0, "errmsg": "ok"}, "delivered"),
        ({"errcode": 130101, "errmsg": "send too fast"}, "retryable"),
        ({"errcode": 45009, "errmsg": "api freq out of limit"}, "retryable"),
        ({"errcode": 310000, "errmsg": "sign not match"}, "permanent"),
        ({"errcode": 93000, "errmsg": "invalid webhook url"}, "permanent"),
    ],
)
def test_dingtalk_and_wecom_answer_200_and_the_errcode_decides(body: dict, outcome: str) -> None:  # type: ignore[type-arg]
    result = errcode_outcome(httpx.Response(200, json=body))
    assert result.status == outcome
    assert result.response_status == 200


class Captured:
    def __init__(self, answer: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def client(self) -> httpx.AsyncClient:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return self.answer

        return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_webhook_channel_posts_the_signed_body() -> None:
    captured = Captured(httpx.Response(204))
    settings = WebhookSettings(url="https://hooks.example/orderguard", secret=SecretStr("s3cret"))
    async with captured.client() as client:
        outcome = await WebhookChannel(settings, client, clock=lambda: NOW).send(MESSAGE)
    assert outcome.status == "delivered"
    (request,) = captured.requests
    assert request.headers["X-Orderguard-Timestamp"] == "1763798400"
    assert request.headers["X-Orderguard-Delivery"] == "d-1"
    assert verify_webhook(
        "s3cret", "1763798400", request.content, request.headers["X-Orderguard-Signature"], NOW
    )
    body = json.loads(request.content)
    assert body["template"] == "order.held" and body["recipient"] == {
        "kind": "customer",
        "id": "cust-1",
    }
    assert "13800138000" not in request.content.decode()  # contacts stay with the notifier


async def test_dingtalk_channel_signs_its_url_at_send_time() -> None:
    captured = Captured(httpx.Response(200, json={"errcode": 0, "errmsg": "ok"}))
    settings = DingTalkSettings(
        url=SecretStr("https://oapi.dingtalk.com/robot/send?access_token=T"),
        secret=SecretStr("SEC123"),
    )
    async with captured.client() as client:
        outcome = await DingTalkChannel(settings, client, clock=lambda: NOW).send(MESSAGE)
    assert outcome.status == "delivered"
    (request,) = captured.requests
    assert request.url.params["sign"] == "47Lxtm5pumprq9IlkE/hF0q9SiAyIuJfIpyuI6/6Dt4="
    assert json.loads(request.content)["msgtype"] == "markdown"


async def test_wecom_and_slack_channels_post_their_formats() -> None:
    url = SecretStr("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K")
    wecom = Captured(httpx.Response(200, json={"errcode": 0, "errmsg": "ok"}))
    async with wecom.client() as client:
        assert (await WeComChannel(ImWebhookSettings(url=url), client).send(MESSAGE)).status == (
            "delivered"
        )
    assert json.loads(wecom.requests[0].content) == wecom_payload(MESSAGE)
    slack = Captured(httpx.Response(404, text="no_service"))
    async with slack.client() as client:
        outcome = await SlackChannel(ImWebhookSettings(url=url), client).send(MESSAGE)
    assert (outcome.status, outcome.response_snippet) == ("permanent", "no_service")


async def test_sms_gateway_gets_the_phone_text_and_bearer_key() -> None:
    captured = Captured(httpx.Response(202, json={"id": "sms-1"}))
    settings = SmsSettings(url="https://sms.example/send", api_key=SecretStr("k-1"), sender="SHOP")
    async with captured.client() as client:
        outcome = await SmsGatewayChannel(settings, client).send(MESSAGE)
    assert outcome.status == "delivered"
    (request,) = captured.requests
    assert request.headers["Authorization"] == "Bearer k-1"
    assert json.loads(request.content) == {
        "to": "13800138000",
        "text": MESSAGE.text,
        "reference": "d-1",
        "sender": "SHOP",
    }


async def test_a_refused_connection_is_retryable_and_names_no_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused to https://hooks.example?token=T")

    settings = ImWebhookSettings(url=SecretStr("https://hooks.example?token=T"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        outcome = await SlackChannel(settings, client).send(MESSAGE)
    assert outcome.status == "retryable"
    assert outcome.error is not None and "token" not in outcome.error


def test_secrets_do_not_print() -> None:
    settings = DingTalkSettings(url=SecretStr("https://x?access_token=T"), secret=SecretStr("S"))
    assert "access_token" not in repr(settings) and "'S'" not in repr(settings)


def test_answers_echoing_contacts_are_scrubbed_before_they_are_recorded() -> None:
    echoed = '{"to": "13800138000", "mail": "li.lei@example.com", "id": "sms-20261122000012345678"}'
    outcome = http_outcome(httpx.Response(400, text=echoed))
    assert "13800138000" not in outcome.response_snippet
    assert "li.lei@example.com" not in outcome.response_snippet
    assert "sms-20261122000012345678" in outcome.response_snippet
    refused = errcode_outcome(
        httpx.Response(200, json={"errcode": 1, "errmsg": "bad +8613800138000"})
    )
    assert "13800138000" not in (refused.error or "") + refused.response_snippet


async def test_im_messages_to_a_team_go_to_its_own_robot_else_the_shared_one() -> None:
    settings = ImWebhookSettings.model_validate(
        {
            "url": "https://hooks.slack.example/SHARED",
            "teams": {"warehouse": {"url": "https://hooks.slack.example/WAREHOUSE"}},
        }
    )
    captured = Captured(httpx.Response(200, text="ok"))
    async with captured.client() as client:
        for team in ("warehouse", "logistics"):
            to_team = replace(MESSAGE, recipient_kind="team", recipient_id=team)
            assert (await SlackChannel(settings, client).send(to_team)).status == "delivered"
    assert [r.url.path for r in captured.requests] == ["/WAREHOUSE", "/SHARED"]
    only_teams = ImWebhookSettings.model_validate(
        {"teams": {"warehouse": {"url": "https://hooks.slack.example/WAREHOUSE"}}}
    )
    async with captured.client() as client:
        refused = await WeComChannel(only_teams, client).send(MESSAGE)
    assert (refused.status, refused.error) == ("permanent", "no wecom robot for customer cust-1")
    with pytest.raises(ValidationError, match="unknown team"):
        DingTalkSettings.model_validate({"teams": {"warehous": {"url": "https://x"}}})
    with pytest.raises(ValidationError, match="give a robot"):
        ImWebhookSettings()
