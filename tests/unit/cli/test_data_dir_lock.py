"""One `orderguard up` per data dir: a second one refuses before it starts anything."""

from __future__ import annotations

from pathlib import Path

from orderguard.cli.supervisor import Supervisor, hold_data_dir


def test_the_data_dir_is_held_until_its_holder_lets_go(tmp_path: Path) -> None:
    first = hold_data_dir(tmp_path)
    assert first is not None
    assert hold_data_dir(tmp_path) is None
    first.close()
    again = hold_data_dir(tmp_path)
    assert again is not None
    again.close()


def test_a_second_up_on_a_held_data_dir_starts_nothing(tmp_path: Path) -> None:
    held = hold_data_dir(tmp_path)
    assert held is not None
    try:
        assert Supervisor(tmp_path).run() == 1
        assert not (tmp_path / "pgdata").exists()
    finally:
        held.close()
