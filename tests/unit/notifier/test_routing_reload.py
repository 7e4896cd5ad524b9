"""Hot reload: a changed routing file is swapped in; a broken one is rejected, counted, shown,
and the old routes stay in force."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import REGISTRY

from orderguard.services.notifier.routing_in_force import RoutingInForce

GOOD = "route:\n  queue: risk\n  routes:\n    - {name: stock, matchers: ['rule=\"stock.low\"'], queue: warehouse}\n"
CHANGED = GOOD.replace("queue: warehouse", "queue: finance")
BROKEN = "route:\n  queue: warehose\n"


def write(file: Path, text: str, mtime: float) -> None:
    file.write_text(text)
    os.utime(file, (mtime, mtime))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_changed_file_is_swapped_in_and_a_broken_one_keeps_the_old_routes(tmp_path: Path) -> None:
    file = tmp_path / "routing.yaml"
    write(file, GOOD, 1000)
    routing = RoutingInForce(file, interval_s=0.0)  # 0: only explicit reloads
    first = routing.tree
    assert routing.current().route({"rule": "stock.low"})[0].queue == "warehouse"
    ok_before = sample("orderguard_routing_reloads_total", outcome="ok")
    rejected_before = sample("orderguard_routing_reloads_total", outcome="rejected")

    assert not routing.reload(force=False)  # unchanged
    write(file, CHANGED, 1001)
    assert routing.reload(force=False)
    assert routing.tree.route({"rule": "stock.low"})[0].queue == "finance"
    assert routing.tree.version != first.version
    assert sample("orderguard_routing_config_info", version=routing.tree.version) == 1
    assert sample("orderguard_routing_config_info", version=first.version) == 0
    in_force = routing.tree

    write(file, BROKEN, 1002)
    assert not routing.reload(force=False)
    assert routing.tree is in_force  # the old one stays
    assert routing.rejection is not None
    assert "route.queue: unknown queue 'warehose'" in routing.rejection.error
    assert sample("orderguard_routing_config_last_reload_successful") == 0
    assert not routing.reload(force=False)  # the same broken file is not retried
    assert sample("orderguard_routing_reloads_total", outcome="rejected") - rejected_before == 1

    write(file, GOOD, 1003)
    assert routing.reload(force=False)
    assert routing.rejection is None
    assert sample("orderguard_routing_config_last_reload_successful") == 1
    assert sample("orderguard_routing_reloads_total", outcome="ok") - ok_before == 2


def test_current_polls_the_file_at_most_every_interval(tmp_path: Path) -> None:
    file = tmp_path / "routing.yaml"
    write(file, GOOD, 1000)
    routing = RoutingInForce(file, interval_s=3600)
    write(file, CHANGED, 1001)
    assert routing.current().route({"rule": "stock.low"})[0].queue == "warehouse"  # not yet
    routing.interval_s = 0.000001
    assert routing.current().route({"rule": "stock.low"})[0].queue == "finance"


def test_a_deleted_file_is_rejected_and_the_old_routes_stay(tmp_path: Path) -> None:
    file = tmp_path / "routing.yaml"
    write(file, GOOD, 1000)
    routing = RoutingInForce(file, interval_s=0.0)
    file.unlink()
    assert not routing.reload()
    assert routing.rejection is not None and "cannot be read" in routing.rejection.error
    assert routing.tree.route({"rule": "stock.low"})[0].queue == "warehouse"
