"""Inhibition with `equal` labels and silences with their time window (pure)."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta

from orderguard.services.notifier.router.inhibit import Inhibition, candidate_filters, inhibitor
from orderguard.services.notifier.router.silence import Silence, silencing
from orderguard.services.notifier.routing import Matcher, load_routing, parse_routing

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
RULES = parse_routing(
    textwrap.dedent(
        """
        route: {queue: logistics}
        inhibit_rules:
          - name: carrier-outage
            source_matchers: ['rule="shipment.carrier_outage"']
            target_matchers: ['rule="shipment.stalled"']
            equal: [carrier]
        """
    ),
    "t.yaml",
).inhibitions()

OUTAGE_SF = {"rule": "shipment.carrier_outage", "carrier": "sf"}
STALL_SF = {"rule": "shipment.stalled", "carrier": "sf", "shipment": "S-1"}
STALL_DHL = {"rule": "shipment.stalled", "carrier": "dhl", "shipment": "S-2"}


def test_a_carrier_outage_inhibits_the_stalls_of_that_carrier_only() -> None:
    firing = [("outage-sf", OUTAGE_SF)]
    assert inhibitor(RULES, "stall-1", STALL_SF, firing) == Inhibition(
        "carrier-outage", "outage-sf"
    )
    assert inhibitor(RULES, "stall-2", STALL_DHL, firing) is None
    assert inhibitor(RULES, "stall-1", STALL_SF, []) is None


def test_a_source_never_inhibits_itself_and_a_non_target_is_never_inhibited() -> None:
    both = {"rule": "shipment.stalled", "carrier": "sf"}
    assert inhibitor(RULES, "x", both, [("x", OUTAGE_SF | {"rule": "shipment.stalled"})]) is None
    assert inhibitor(RULES, "o2", OUTAGE_SF, [("outage-sf", OUTAGE_SF)]) is None


def test_candidate_filters_name_the_equal_values_to_look_sources_up_by() -> None:
    [(rule, equal)] = candidate_filters(RULES, STALL_SF)
    assert rule.name == "carrier-outage" and equal == {"carrier": "sf"}
    assert candidate_filters(RULES, OUTAGE_SF) == []


def test_shipped_rules_inhibit_stalls_under_a_carrier_scope_and_payment_failures() -> None:
    rules = load_routing().inhibitions()
    scoped = {"rule": "shipment.stalled", "carrier": "sf", "scope": "carrier"}
    assert inhibitor(rules, "s", STALL_SF, [("c", scoped)]) is not None
    assert inhibitor(rules, "s", STALL_DHL, [("c", scoped)]) is None
    provider = {"rule": "payment.provider_outage", "provider": "stripe"}
    failures = {"rule": "payment.failures", "provider": "stripe", "order_id": "O-1"}
    assert inhibitor(rules, "f", failures, [("p", provider)]) is not None
    assert inhibitor(rules, "f", failures | {"provider": "adyen"}, [("p", provider)]) is None


def silence(starts: timedelta, ends: timedelta, *matchers: str) -> Silence:
    return Silence(
        id=uuid.uuid4(),
        matchers=tuple(Matcher.parse(m) for m in matchers),
        author="ops#abc",
        comment="carrier maintenance",
        starts_at=T0 + starts,
        ends_at=T0 + ends,
        created_at=T0,
    )


def test_a_silence_mutes_matching_anomalies_only_inside_its_window() -> None:
    window = silence(timedelta(minutes=10), timedelta(hours=1), 'carrier="sf"')
    assert window.state(T0) == "pending" and not window.mutes(STALL_SF, T0)
    at = T0 + timedelta(minutes=10)
    assert window.state(at) == "active" and window.mutes(STALL_SF, at)
    assert not window.mutes(STALL_DHL, at)
    end = T0 + timedelta(hours=1)
    assert window.state(end) == "expired" and not window.mutes(STALL_SF, end)


def test_silencing_picks_the_oldest_active_silence_that_matches() -> None:
    expired = silence(-timedelta(hours=2), -timedelta(hours=1), 'carrier="sf"')
    active = silence(-timedelta(minutes=5), timedelta(minutes=5), 'rule=~"shipment\\..+"')
    assert silencing([expired, active], STALL_SF, T0) is active
    assert silencing([expired], STALL_SF, T0) is None
