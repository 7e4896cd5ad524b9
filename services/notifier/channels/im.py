"""Group robots of IM apps: DingTalk and WeCom (markdown messages) and Slack (incoming webhook
with blocks). A message to a team goes to that team's robot (its group chat) when it has one,
else to the shared robot. They answer HTTP 200 even for a refused message, so the body
decides."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from orderguard.services.notifier.channels.base import (
    SNIPPET_CHARS,
    Message,
    Outcome,
    http_outcome,
    post_json,
)
from orderguard.services.notifier.channels.signing import dingtalk_signed_url
from orderguard.services.notifier.settings import (
    DingTalkRobot,
    DingTalkSettings,
    ImRobot,
    ImWebhookSettings,
)

# Error codes that mean "too fast, try later": DingTalk 130101, WeCom 45009 (API freq out of limit).
_THROTTLED = {130101, 45009, -1}
SLACK_HEADER_CHARS = 150


def markdown_text(message: Message) -> str:
    return f"#### {message.subject}\n\n{message.text}"


def dingtalk_payload(message: Message) -> dict[str, Any]:
    return {
        "msgtype": "markdown",
        "markdown": {"title": message.subject, "text": markdown_text(message)},
    }


def wecom_payload(message: Message) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": markdown_text(message)}}


def slack_payload(message: Message) -> dict[str, Any]:
    return {
        "text": f"{message.subject}\n{message.text}",  # the notification fallback
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": message.subject[:SLACK_HEADER_CHARS]},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": message.text}},
        ],
    }


def errcode_outcome(response: httpx.Response) -> Outcome:
    """DingTalk and WeCom: {"errcode": 0, "errmsg": "ok"} on success, HTTP 200 either way."""
    outcome = http_outcome(response)
    if outcome.status != "delivered":
        return outcome
    try:
        answer = response.json()
        errcode = int(answer.get("errcode", -1))
    except (ValueError, AttributeError, TypeError):
        return Outcome.retryable("unreadable answer", response.status_code, response.text)
    if errcode == 0:
        return outcome
    error = f"errcode {errcode}: {str(answer.get('errmsg', ''))[:SNIPPET_CHARS]}"
    if errcode in _THROTTLED:
        return Outcome.retryable(error, response.status_code, response.text)
    return Outcome.permanent(error, response.status_code, response.text)


def _no_robot(kind: str, message: Message) -> Outcome:
    return Outcome.permanent(
        f"no {kind} robot for {message.recipient_kind} {message.recipient_id[:50]}"
    )


class DingTalkChannel:
    kind = "dingtalk"

    def __init__(
        self,
        settings: DingTalkSettings,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._client = client
        self._clock = clock

    def url(self, robot: DingTalkRobot) -> str:
        url = robot.url.get_secret_value()
        if robot.secret is None:
            return url
        # DingTalk rejects a timestamp more than an hour off: sign at send time, every attempt.
        return dingtalk_signed_url(url, robot.secret.get_secret_value(), int(self._clock() * 1000))

    async def send(self, message: Message) -> Outcome:
        robot = self._settings.robot_for(message.recipient_kind, message.recipient_id)
        if robot is None:
            return _no_robot(self.kind, message)
        assert isinstance(robot, DingTalkRobot)
        answer = await post_json(
            self._client, self.url(robot), content=orjson.dumps(dingtalk_payload(message))
        )
        return answer if isinstance(answer, Outcome) else errcode_outcome(answer)


class WeComChannel:
    kind = "wecom"

    def __init__(self, settings: ImWebhookSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client

    async def send(self, message: Message) -> Outcome:
        robot = self._settings.robot_for(message.recipient_kind, message.recipient_id)
        if robot is None:
            return _no_robot(self.kind, message)
        answer = await post_json(
            self._client,
            robot.url.get_secret_value(),
            content=orjson.dumps(wecom_payload(message)),
        )
        return answer if isinstance(answer, Outcome) else errcode_outcome(answer)


class SlackChannel:
    kind = "slack"

    def __init__(self, settings: ImWebhookSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client

    async def send(self, message: Message) -> Outcome:
        robot: ImRobot | None = self._settings.robot_for(
            message.recipient_kind, message.recipient_id
        )
        if robot is None:
            return _no_robot(self.kind, message)
        # Slack answers 200 "ok"; 400 invalid_payload, 403/404 for a revoked hook, 429 slow down.
        answer = await post_json(
            self._client,
            robot.url.get_secret_value(),
            content=orjson.dumps(slack_payload(message)),
        )
        return answer if isinstance(answer, Outcome) else http_outcome(answer)
