"""What `up` hands its services: one partition per topic on the embedded broker, unless the
environment names a count."""

from __future__ import annotations

import pytest

from orderguard.cli.supervisor import EMBEDDED_TOPIC_PARTITIONS, embedded_settings


def test_topics_on_the_embedded_broker_have_one_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDERGUARD_TOPIC_PARTITIONS", raising=False)

    settings = embedded_settings("postgresql:///orderguard", "127.0.0.1:9092")

    assert settings.topic_partitions == EMBEDDED_TOPIC_PARTITIONS == 1
    assert settings.kafka_embedded_compat
    assert settings.kafka_bootstrap == "127.0.0.1:9092"


def test_a_count_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERGUARD_TOPIC_PARTITIONS", "6")

    assert embedded_settings("postgresql:///orderguard", "127.0.0.1:9092").topic_partitions == 6
