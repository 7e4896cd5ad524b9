"""Wall-time work of the recycle bin: archive quiet entries, purge past retention, measure."""

from __future__ import annotations

from orderguard.services.order.recycle_bin import handlers
from orderguard.shared.runtime import Runtime
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.uow import UnitOfWork


def jobs(runtime: Runtime) -> list[ScheduledJob]:
    settings = runtime.settings
    topic = runtime.topics.orders

    async def archive_quiet(uow: UnitOfWork, limit: int) -> int:
        return await handlers.archive_quiet_entries(
            uow, topic, settings.recycle_bin_quiet_period_s, limit
        )

    async def purge(uow: UnitOfWork, limit: int) -> int:
        return await handlers.purge_past_retention(
            uow, topic, settings.recycle_bin_retention_s, limit
        )

    async def measure(uow: UnitOfWork, limit: int) -> int:
        await handlers.measure(uow)
        return 0

    return [
        ScheduledJob("recycle-bin.archive-quiet", archive_quiet),
        ScheduledJob("recycle-bin.purge", purge, batch_max=200),
        ScheduledJob("recycle-bin.measure", measure),
    ]
