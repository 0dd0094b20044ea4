"""Build progress when stderr is not a terminal: a plain line every few seconds."""

from __future__ import annotations

import pytest

from crampqa.cli import ProgressLines, build_progress


def test_lines_with_done_total_rate_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    now = [100.0]
    lines = ProgressLines(interval=5.0)
    lines.clock = lambda: now[0]
    lines("embedding passages", 0, 1000)  # starts the clock, prints nothing
    for done in range(50, 1001, 50):
        now[0] += 1.0
        lines("embedding passages", done, 1000)
    out = capsys.readouterr().err.strip().splitlines()
    assert len(out) == 4  # one line every 5 seconds of 20
    assert out[0] == "embedding passages: 250/1000 (25%), 50.0/s, ETA 0:15"
    assert out[-1].startswith("embedding passages: 1000/1000 (100%)")


def test_not_a_terminal_gets_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with build_progress(True) as progress:  # pytest's stderr is not a terminal
        assert isinstance(progress, ProgressLines)
    with build_progress(False) as progress:
        assert progress is None
