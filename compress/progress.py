"""Progress display: a tqdm bar on a terminal, a plain line every N % (with ETA) in logs and pipes.

A carriage-return bar written to a file (``run.log``, a CI log) becomes kilobytes of frames; when stderr
is not a terminal the same calls print one readable line per ``LINE_EVERY`` of the work instead.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

LINE_EVERY = 0.1  # fraction of the total between two log lines


class LineProgress:
    """tqdm's ``update``/``set_postfix``/``close`` as occasional log lines: ``desc 40/100 (40%) … ETA 1m05s``."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "it",
                 stream: TextIO | None = None) -> None:
        self.total, self.n, self.desc, self.unit = max(total, 1), initial, desc, unit
        self.stream = stream or sys.stderr
        self.start_n, self.started = initial, time.monotonic()
        self.every = max(1, round(self.total * LINE_EVERY))
        self.next_line = initial + self.every
        self.printed = initial  # the count the last line showed
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= self.next_line or self.n >= self.total:
            self._line()
            self.next_line = self.n + self.every

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def close(self) -> None:
        """A last line for a run that stopped between two lines (interrupted, or ended early)."""
        if self.n != self.printed:
            self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self.started
        done = self.n - self.start_n
        eta = elapsed / done * (self.total - self.n) if done > 0 else float("nan")
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        head = f"{self.desc}: " if self.desc else ""
        self.printed = self.n
        print(f"{head}{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%), "
              f"{_duration(elapsed)} elapsed, ETA {_duration(eta)}{extra}", file=self.stream, flush=True)


class NoProgress:
    """The do-nothing display (progress off, or a non-zero DDP rank)."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **values: Any) -> None: ...
    def close(self) -> None: ...


def progress_bar(total: int, *, enabled: bool = True, initial: int = 0, desc: str = "", unit: str = "it") -> Any:
    """A progress display for ``total`` units: tqdm on a terminal, ``LineProgress`` otherwise, or nothing."""
    if not enabled:
        return NoProgress()
    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc or None, unit=unit, dynamic_ncols=True, mininterval=1.0)
    return LineProgress(total, initial=initial, desc=desc, unit=unit)


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN: nothing done yet
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
