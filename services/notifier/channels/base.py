"""The channel interface: a rendered message in, an outcome out. Channels never raise for a
failed delivery; they say whether trying again can help."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

import httpx

OutcomeStatus = Literal["delivered", "retryable", "permanent"]

# Every kind of channel a delivery can go out on (in_app is the notifier's own table).
ChannelKind = Literal["webhook", "email", "sms", "dingtalk", "wecom", "slack"]
CHANNEL_KINDS: tuple[str, ...] = get_args(ChannelKind)
# Channels that post to a group robot of an IM app: one per team, or one shared.
IM_KINDS = frozenset({"dingtalk", "wecom", "slack"})
# Channels that need the recipient's own contact (the others have a configured endpoint).
CONTACT_OF: dict[str, Literal["email", "phone"]] = {"email": "email", "sms": "phone"}

SNIPPET_CHARS = 300
# Receivers echo what they got (an SMS gateway the number, an SMTP server the address): the
# attempt record keeps neither.
_PERSONAL = re.compile(r"<?[^\s<>@\"']+@[^\s<>\"']+>?|(?<!\d)\+?\d{11,15}(?!\d)")


def scrub(text: str) -> str:
    """The text with email addresses and phone numbers replaced by placeholders."""
    return _PERSONAL.sub("<redacted>", text)


@dataclass(frozen=True, slots=True)
class Message:
    """What to send: rendered text for one recipient on one channel."""

    delivery_id: str
    request_id: str
    template: str
    language: str
    recipient_kind: str
    recipient_id: str
    subject: str
    text: str
    html: str | None = None
    contact: str | None = None  # email address or phone, for channels that need one
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: OutcomeStatus
    response_status: int | None = None
    response_snippet: str = ""
    error: str | None = None

    @classmethod
    def delivered(cls, status: int | None = None, snippet: str = "") -> Outcome:
        return cls("delivered", status, scrub(snippet[:SNIPPET_CHARS]))

    @classmethod
    def retryable(cls, error: str, status: int | None = None, snippet: str = "") -> Outcome:
        return cls(
            "retryable", status, scrub(snippet[:SNIPPET_CHARS]), scrub(error[:SNIPPET_CHARS])
        )

    @classmethod
    def permanent(cls, error: str, status: int | None = None, snippet: str = "") -> Outcome:
        return cls(
            "permanent", status, scrub(snippet[:SNIPPET_CHARS]), scrub(error[:SNIPPET_CHARS])
        )


class Channel(Protocol):
    kind: str

    async def send(self, message: Message) -> Outcome: ...


def http_outcome(response: httpx.Response) -> Outcome:
    """2xx delivered; 408, 429 and 5xx worth another try; any other answer will not change."""
    snippet = response.text
    code = response.status_code
    if 200 <= code < 300:
        return Outcome.delivered(code, snippet)
    if code in (408, 425, 429) or code >= 500:
        return Outcome.retryable(f"HTTP {code}", code, snippet)
    return Outcome.permanent(f"HTTP {code}", code, snippet)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response | Outcome:
    """POST a JSON body; a transport problem (timeout, refused, reset) is a retryable outcome.
    Errors name the exception type only: httpx messages may quote the URL and its token."""
    try:
        return await client.post(
            url, content=content, headers={"Content-Type": "application/json", **(headers or {})}
        )
    except httpx.TransportError as exc:
        return Outcome.retryable(f"transport error: {type(exc).__name__}")
