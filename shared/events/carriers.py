"""Tracking scans from carriers, on `carriers.scans` (key: tracking number).

Carriers publish here directly, or POST to the logistics webhook
(`POST /carriers/{carrier}/scans`, HMAC-signed) which publishes what it accepted here, so one
consumer applies scans from both paths.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from orderguard.shared.events.logistics import ExceptionReason, ScanStatus
from orderguard.shared.events.registry import event_type


@event_type("carrier.scan.v1")
class CarrierScan(BaseModel):
    """A carrier scanned a parcel. `scan_id` is unique per carrier: a scan is applied once."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "carrier": "sf-express",
                    "tracking_number": "SF1234567890123",
                    "scan_id": "sf-scan-000123",
                    "status": "in_transit",
                    "location": "Hangzhou hub",
                    "exception_reason": None,
                    "scanned_at": "2026-11-22T20:14:00Z",
                },
                {
                    "carrier": "sf-express",
                    "tracking_number": "SF1234567890123",
                    "scan_id": "sf-scan-000124",
                    "status": "exception",
                    "location": "Hangzhou hub",
                    "exception_reason": "damaged",
                    "scanned_at": "2026-11-22T21:00:00Z",
                },
            ]
        },
    )

    carrier: str = Field(min_length=1, max_length=64, description="Carrier code, e.g. sf-express")
    tracking_number: str = Field(
        min_length=1, max_length=64, description="Also the event's subject and Kafka key"
    )
    scan_id: str = Field(min_length=1, max_length=128, description="Unique per carrier")
    status: ScanStatus
    location: str | None = Field(default=None, max_length=200)
    exception_reason: ExceptionReason | None = Field(
        default=None, description="Required when status is exception, absent otherwise"
    )
    scanned_at: AwareDatetime = Field(description="When the carrier scanned, with a UTC offset")

    @model_validator(mode="after")
    def _reason_with_exceptions_only(self) -> CarrierScan:
        if (self.status == "exception") != (self.exception_reason is not None):
            raise ValueError("exception_reason is required for status exception, and only then")
        return self
