"""Signed JSON webhooks: every message POSTed with a timestamp and an HMAC-SHA256 signature."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import orjson

from orderguard.services.notifier.channels.base import Message, Outcome, http_outcome, post_json
from orderguard.services.notifier.channels.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature,
)
from orderguard.services.notifier.settings import WebhookSettings

DELIVERY_HEADER = "X-Orderguard-Delivery"


def webhook_body(message: Message) -> bytes:
    return orjson.dumps(
        {
            "delivery_id": message.delivery_id,
            "request_id": message.request_id,
            "template": message.template,
            "language": message.language,
            "recipient": {"kind": message.recipient_kind, "id": message.recipient_id},
            "subject": message.subject,
            "text": message.text,
            "params": message.params,
        }
    )


class WebhookChannel:
    kind = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = settings.url
        self._secret = settings.secret
        self._client = client
        self._clock = clock

    def signed_request(self, message: Message) -> tuple[bytes, dict[str, str]]:
        body = webhook_body(message)
        timestamp = int(self._clock())
        headers = {
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: webhook_signature(self._secret.get_secret_value(), timestamp, body),
            # Receivers dedup on this: a retry after a lost answer carries the same id.
            DELIVERY_HEADER: message.delivery_id,
        }
        return body, headers

    async def send(self, message: Message) -> Outcome:
        body, headers = self.signed_request(message)
        answer = await post_json(self._client, self._url, content=body, headers=headers)
        return answer if isinstance(answer, Outcome) else http_outcome(answer)
