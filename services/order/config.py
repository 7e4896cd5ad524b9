"""The order service's configuration from settings, built once per process for its API and
its workers alike."""

from __future__ import annotations

from datetime import timedelta

from orderguard.services.order.handlers import OrderConfig
from orderguard.services.order.settings import OrderSettings
from orderguard.shared.runtime import Runtime


def order_config(runtime: Runtime) -> OrderConfig:
    def build() -> OrderConfig:
        settings = runtime.settings.section(OrderSettings)
        return OrderConfig(
            orders_topic=runtime.topics.orders,
            notifications_topic=runtime.topics.notification_requests,
            anomalies_topic=runtime.topics.anomalies,
            payment_deadline=timedelta(seconds=settings.payment_deadline_s),
            promise_days=settings.delivery_promise_days,
            express_promise_days=settings.express_delivery_promise_days,
            complete_after=timedelta(days=settings.complete_after_days),
        )

    return runtime.once("order_config", build)
