"""Reading a process's autogroup: the supervisor and the fault test both rely on it, and some
sandboxed kernels have the file but show it empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderguard.cli import supervisor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/autogroup-56216 nice 0\n", ("/autogroup-56216", 0)),
        ("/autogroup-7 nice -10\n", ("/autogroup-7", -10)),
        ("", None),
        ("garbage", None),
    ],
)
def test_an_autogroup_is_read_where_the_kernel_shows_one(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: tuple[str, int] | None
) -> None:
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: text)
    assert supervisor.autogroup(123) == expected
    assert supervisor.autogroup_nice() == (None if expected is None else expected[1])


def test_a_process_without_an_autogroup_file_has_none() -> None:
    assert supervisor.autogroup(2**31 - 1) is None
