"""SMS through a generic JSON HTTP gateway: POST {to, text, reference[, sender]} with a bearer key."""

from __future__ import annotations

import httpx
import orjson

from orderguard.services.notifier.channels.base import Message, Outcome, http_outcome, post_json
from orderguard.services.notifier.settings import SmsSettings


class SmsGatewayChannel:
    kind = "sms"

    def __init__(self, settings: SmsSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client

    def body(self, message: Message) -> dict[str, str]:
        body = {"to": message.contact or "", "text": message.text, "reference": message.delivery_id}
        if self._settings.sender:
            body["sender"] = self._settings.sender
        return body

    async def send(self, message: Message) -> Outcome:
        if not message.contact:
            return Outcome.permanent("no phone number for this recipient")
        answer = await post_json(
            self._client,
            self._settings.url,
            content=orjson.dumps(self.body(message)),
            headers={"Authorization": f"Bearer {self._settings.api_key.get_secret_value()}"},
        )
        return answer if isinstance(answer, Outcome) else http_outcome(answer)
