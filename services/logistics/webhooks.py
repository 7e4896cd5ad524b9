"""Signed carrier webhooks: HMAC-SHA256 over "<timestamp>.<body>" with the carrier's secret.

The carrier sends `X-Carrier-Timestamp` (unix seconds) and `X-Carrier-Signature` (hex digest,
optionally prefixed "sha256="). Signing the timestamp with the body makes an old request
useless after the tolerance; within it, the receipts table refuses a signature or scan id seen
before. Pure: the clock and the secret come in as arguments.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

TIMESTAMP_HEADER = "X-Carrier-Timestamp"
SIGNATURE_HEADER = "X-Carrier-Signature"


class SignatureRejected(Exception):
    """The request is not provably from the carrier, now; `reason` says why (no secret in it)."""

    def __init__(self, slug: str, reason: str) -> None:
        super().__init__(reason)
        self.slug = slug
        self.reason = reason


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a carrier sends for `body` at `timestamp` (hex)."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    tolerance_s: float,
) -> str:
    """The verified signature (normalised hex), or SignatureRejected."""
    if secret is None:
        raise SignatureRejected(
            "carrier-unknown", "No webhook secret is configured for this carrier."
        )
    if not timestamp or not signature:
        raise SignatureRejected(
            "signature-missing", f"Send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}."
        )
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureRejected(
            "timestamp-invalid", f"{TIMESTAMP_HEADER} must be unix seconds."
        ) from None
    if abs(now.timestamp() - sent_at) > tolerance_s:
        raise SignatureRejected(
            "timestamp-stale",
            f"{TIMESTAMP_HEADER} is more than {tolerance_s:g}s from the server's clock.",
        )
    presented = signature.removeprefix("sha256=").strip().lower()
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise SignatureRejected(
            "signature-invalid", "The signature does not match the body and timestamp."
        )
    return expected
