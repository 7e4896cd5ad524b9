"""The after-sales service's own settings: ORDERGUARD_AFTERSALES__<FIELD> (docs/settings.md)."""

from __future__ import annotations

from pydantic import Field

from orderguard.shared.settings import ServiceSettings


class AftersalesSettings(ServiceSettings):
    """The return window and evidence uploads."""

    return_window_days: int = Field(
        default=7,
        ge=0,
        description='The "N days, no reason" return window (from delivery, else payment)',
    )
    attachments_dir: str = Field(
        default="var/aftersales/attachments",
        description="Read only for evidence uploaded before evidence moved into PostgreSQL"
        " (legacy files); new uploads are stored in the database",
    )
    attachment_max_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, description="The largest evidence upload (bytes)"
    )
    attachment_types: list[str] = Field(
        default_factory=lambda: [
            "image/jpeg",
            "image/png",
            "image/webp",
            "application/pdf",
            "video/mp4",
            "text/plain",
        ],
        description="Content types an evidence upload may have",
    )

    def upload_max_bytes(self) -> int:
        return self.attachment_max_bytes
