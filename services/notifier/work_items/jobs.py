"""Scheduled jobs of the work items: escalation, reminders, and the open-items gauge."""

from __future__ import annotations

from orderguard.services.notifier.work_items import handlers
from orderguard.services.notifier.work_items.domain import SlaPolicy
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.topics import TEAMS, Topics
from orderguard.shared.uow import UnitOfWork


def work_item_jobs(policy: SlaPolicy, topics: Topics) -> list[ScheduledJob]:
    async def escalate(uow: UnitOfWork, limit: int) -> int:
        return await handlers.escalate_due(uow, policy, topics, limit)

    async def remind(uow: UnitOfWork, limit: int) -> int:
        return await handlers.remind_due(uow, policy, topics, limit)

    async def count_open(uow: UnitOfWork, limit: int) -> int:
        await handlers.refresh_open_gauge(uow, TEAMS)
        return 0

    return [
        ScheduledJob("work_items.escalate", escalate),
        ScheduledJob("work_items.remind", remind),
        ScheduledJob("work_items.open_gauge", count_open),
    ]
