"""Progress display: a bar on a terminal, a readable line every 10 % in logs (no carriage-return frames)."""
from __future__ import annotations

import io

from compress.progress import LineProgress, NoProgress, progress_bar


def test_line_progress_writes_about_ten_plain_lines_with_eta() -> None:
    stream = io.StringIO()
    bar = LineProgress(500, desc="train", unit="step", stream=stream)
    for _ in range(500):
        bar.update(1)
        bar.set_postfix(loss="1.0e-03")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()
    assert lines[0].startswith("train: 50/500 step (10%)") and "ETA" in lines[0] and "loss=1.0e-03" in lines[0]
    assert lines[-1].startswith("train: 500/500 step (100%)")


def test_resumed_progress_counts_from_where_it_stopped_and_close_reports_an_unfinished_run() -> None:
    stream = io.StringIO()
    bar = LineProgress(100, initial=40, desc="qat", stream=stream)
    for _ in range(15):
        bar.update(1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [line.split(" ")[1] for line in lines] == ["50/100", "55/100"]


def test_disabled_or_piped_progress_never_draws_a_bar(monkeypatch) -> None:
    assert isinstance(progress_bar(10, enabled=False), NoProgress)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert isinstance(progress_bar(10, desc="x"), LineProgress)
