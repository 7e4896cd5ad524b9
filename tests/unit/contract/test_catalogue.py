"""The topic catalogue agrees with the code: topics, event types, keys and consumer groups."""

from __future__ import annotations

import pytest

from orderguard.cli.services_registry import OrderguardSettings, definition_of, rule_catalogue
from orderguard.shared.contract.asyncapi import example_envelope
from orderguard.shared.contract.catalogue import (
    CATALOGUE,
    Consumer,
    NotCatalogued,
    message_of,
    messages_of,
    uncatalogued_event_types,
)
from orderguard.shared.events import REGISTRY
from orderguard.shared.runtime import Runtime
from orderguard.shared.settings import SERVICES
from orderguard.shared.topics import BASE_TOPICS, Topics

MESSAGES = [(topic, message) for topic in CATALOGUE for message in topic.messages]


def test_the_catalogue_lists_exactly_the_topics_orderguard_creates() -> None:
    names = [name for topic in CATALOGUE for name in topic.names]
    assert sorted(names) == sorted(BASE_TOPICS)


def test_every_registered_event_type_flows_on_exactly_one_topic() -> None:
    assert uncatalogued_event_types() == []
    for event_type in REGISTRY:
        topic, message = message_of(event_type)
        assert message.event_type == event_type
        assert topic.messages.count(message) == 1


def test_an_event_type_on_no_topic_is_named() -> None:
    assert messages_of("order.exploded.v1") == []
    with pytest.raises(NotCatalogued, match=r"order\.exploded\.v1"):
        message_of("order.exploded.v1")


@pytest.mark.parametrize(("topic", "message"), MESSAGES, ids=[m.event_type for _, m in MESSAGES])
def test_the_key_is_a_required_string_field_of_the_event(topic, message) -> None:  # type: ignore[no-untyped-def]
    model = message.model
    *parents, leaf = message.key.split(".")
    for parent in parents:
        model = model.model_fields[parent].annotation
    field = model.model_fields[leaf]
    assert field.is_required() and field.annotation is str, message.key
    # Every example can be keyed: the envelope built from it has the key as subject.
    envelope = example_envelope(message)
    assert envelope.subject == message.key_of(envelope.data)


def test_key_of_follows_a_dotted_path_and_gives_none_when_a_step_is_missing() -> None:
    _, routed = message_of("anomaly.routed.v1")
    assert routed.key_of({"anomaly": {"fingerprint": "f-1"}}) == "f-1"
    assert routed.key_of({"anomaly": "not an object"}) is None
    assert routed.key_of({}) is None


def test_a_parameterised_address_expands_to_one_topic_per_value() -> None:
    (queues,) = [topic for topic in CATALOGUE if topic.parameters]
    assert queues.names == [Topics().queue(team) for team in queues.parameters["team"]]


def _consumers_in_code() -> set[tuple[str, str, str, str]]:
    """(service, group, topic, event type) for every engine consumer the services start."""
    found = set()
    for service in SERVICES:
        definition = definition_of(service)
        runtime = Runtime(
            definition, OrderguardSettings(), frozenset({"workers"}), rule_catalogue()
        )
        for consumer in runtime.engine_consumers():
            for topic in consumer.topics:
                for event_type in consumer.event_types:
                    found.add((service, consumer.name, topic, event_type))
    return found


def test_the_catalogued_consumers_are_the_services_consumer_groups() -> None:
    catalogued = {
        (consumer.service, consumer.handler, name, message.event_type)
        for topic, message in MESSAGES
        for name in topic.names
        for consumer in message.consumers
    }
    assert catalogued == _consumers_in_code()


def test_every_message_has_a_producer_and_consumers_are_unique() -> None:
    for _, message in MESSAGES:
        assert message.producers, message.event_type
        assert len(set(message.consumers)) == len(message.consumers)
        assert all(isinstance(consumer, Consumer) for consumer in message.consumers)
