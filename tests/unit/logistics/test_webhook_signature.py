"""HMAC verification of carrier webhooks: good, tampered, wrong secret, stale, malformed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.services.logistics.webhooks import SignatureRejected, sign, verify

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
BODY = b'{"scan_id":"s1","tracking_number":"SF1","status":"picked_up"}'
SECRET = "s3cret"


def stamp(moment: datetime = NOW) -> str:
    return str(int(moment.timestamp()))


def check(
    signature: str, timestamp: str | None = None, body: bytes = BODY, secret: str | None = SECRET
) -> str:
    return verify(secret, timestamp or stamp(), signature, body, NOW, tolerance_s=300)


def test_a_good_signature_is_accepted_with_or_without_the_prefix() -> None:
    signature = sign(SECRET, stamp(), BODY)
    assert check(signature) == signature
    assert check("sha256=" + signature.upper()) == signature


@pytest.mark.parametrize(
    ("signature", "body", "secret"),
    [
        (sign(SECRET, stamp(), BODY), BODY + b" ", SECRET),  # body changed
        (sign("other", stamp(), BODY), BODY, SECRET),  # another secret
        (sign(SECRET, stamp(NOW - timedelta(seconds=1)), BODY), BODY, SECRET),  # timestamp changed
        ("not-hex", BODY, SECRET),
    ],
    ids=["tampered-body", "wrong-secret", "timestamp-not-signed", "garbage"],
)
def test_a_bad_signature_is_refused(signature: str, body: bytes, secret: str) -> None:
    with pytest.raises(SignatureRejected) as refused:
        check(signature, body=body, secret=secret)
    assert refused.value.slug == "signature-invalid"


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused_even_if_signed(offset: int) -> None:
    then = stamp(NOW + timedelta(seconds=offset))
    with pytest.raises(SignatureRejected) as refused:
        check(sign(SECRET, then, BODY), timestamp=then)
    assert refused.value.slug == "timestamp-stale"
    inside = stamp(NOW - timedelta(seconds=299))
    assert check(sign(SECRET, inside, BODY), timestamp=inside)


def test_missing_headers_unknown_carrier_and_bad_timestamps_are_refused() -> None:
    with pytest.raises(SignatureRejected, match="secret") as unknown:
        check(sign(SECRET, stamp(), BODY), secret=None)
    assert unknown.value.slug == "carrier-unknown"
    with pytest.raises(SignatureRejected) as missing:
        verify(SECRET, None, None, BODY, NOW, 300)
    assert missing.value.slug == "signature-missing"
    with pytest.raises(SignatureRejected) as malformed:
        check(sign(SECRET, "yesterday", BODY), timestamp="yesterday")
    assert malformed.value.slug == "timestamp-invalid"


def test_the_reason_never_contains_the_secret() -> None:
    with pytest.raises(SignatureRejected) as refused:
        check(sign("other", stamp(), BODY))
    assert SECRET not in refused.value.reason
