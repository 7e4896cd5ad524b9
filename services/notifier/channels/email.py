"""Email over SMTP (aiosmtplib): a plain-text part and, when rendered, an HTML alternative."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from orderguard.services.notifier.channels.base import Message, Outcome
from orderguard.services.notifier.settings import EmailSettings


def email_message(message: Message, sender: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.contact or ""
    mail["Subject"] = message.subject
    mail["Message-ID"] = make_msgid(idstring=message.delivery_id)
    mail["X-Orderguard-Delivery"] = message.delivery_id
    mail.set_content(message.text)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    # After the content: setting content clears every Content-* header.
    mail["Content-Language"] = message.language
    return mail


def _smtp_outcome(code: int, error: str) -> Outcome:
    # SMTP: 4yz is a transient refusal (try later), 5yz a permanent one. Servers quote the
    # address in their answers; it is personal data, so it never reaches the attempt record.
    snippet = f"{code} {error}"
    if 400 <= code < 500:
        return Outcome.retryable(f"SMTP {code}", code, snippet)
    return Outcome.permanent(f"SMTP {code}", code, snippet)


class EmailChannel:
    kind = "email"

    def __init__(self, settings: EmailSettings, timeout_s: float) -> None:
        self._settings = settings
        self._timeout_s = timeout_s

    async def send(self, message: Message) -> Outcome:
        if not message.contact:
            return Outcome.permanent("no email address for this recipient")
        settings = self._settings
        try:
            _, answer = await aiosmtplib.send(
                email_message(message, settings.sender),
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password.get_secret_value() if settings.password else None,
                use_tls=settings.use_tls,
                start_tls=settings.starttls and not settings.use_tls,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients] or [550]
            return _smtp_outcome(min(codes), "recipient refused")
        except aiosmtplib.SMTPResponseException as exc:
            return _smtp_outcome(exc.code, exc.message[:200])
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Connection refused, timeout, disconnect: the server may be back on the next try.
            return Outcome.retryable(f"SMTP transport error: {type(exc).__name__}")
        return Outcome.delivered(250, answer[:200])
