"""Progress of long work (training steps, images): a bar on a terminal, periodic lines elsewhere.

Rates and the ETA leave out the first item, which in training includes tracing the step (tens of
seconds on a CPU) and would make every early estimate wrong.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Callable, TextIO


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Counts done items toward total; shows rate and ETA.

    On a terminal: a tqdm bar (postfix: the latest losses). Otherwise (a log file, CI) one line
    every `every` items, through `log` when given, else to `stream`.
    """

    def __init__(self, total: int, done: int = 0, unit: str = "step", every: int = 100,
                 stream: TextIO | None = None, log: Callable[[str], None] | None = None,
                 bar: bool | None = None):
        self.total, self.done, self.unit, self.every = total, done, unit, max(1, every)
        self.stream = stream or sys.stderr
        self.log = log
        if bar is None:
            bar = log is None and self.stream.isatty()
        self._use_bar = bar
        self._bar = None  # made after the first item, so that its clock leaves that item out
        self._first_done_at: float | None = None  # the clock starts after the first item
        self._first_done: int = done
        self._interval_start: float | None = None
        self._interval_done = done
        self.rate = 0.0  # items per second over the last interval (0 before one is measured)

    def update(self, n: int = 1, postfix: str = "") -> None:
        now = time.perf_counter()
        self.done += n
        if self._first_done_at is None:
            self._first_done_at, self._first_done = now, self.done
            self._interval_start, self._interval_done = now, self.done
            if self._use_bar:
                from tqdm import tqdm
                self._bar = tqdm(total=self.total, initial=self.done, unit=self.unit,
                                 file=self.stream, dynamic_ncols=True, smoothing=0.1)
        elif self._bar is not None:
            self._bar.update(n)
        if postfix and self._bar is not None:
            self._bar.set_postfix_str(postfix, refresh=False)
        if self.done % self.every == 0 or self.done == self.total:
            elapsed = now - self._interval_start
            if self.done > self._interval_done and elapsed > 0:
                self.rate = (self.done - self._interval_done) / elapsed
            self._interval_start, self._interval_done = now, self.done
            if self._bar is None:
                self._emit(postfix)

    def eta(self) -> float:
        """Seconds left at the rate measured since the first item (inf before it is known)."""
        if self._first_done_at is None or self.done <= self._first_done:
            return float("inf")
        rate = (self.done - self._first_done) / max(time.perf_counter() - self._first_done_at, 1e-9)
        return (self.total - self.done) / rate

    def _emit(self, postfix: str) -> None:
        rate = f"{self.rate:.2f} {self.unit}s/s" if self.rate else f"- {self.unit}s/s"
        line = (f"{self.unit} {self.done}/{self.total} | {rate} | ETA "
                f"{format_duration(self.eta())}" + (f" | {postfix}" if postfix else ""))
        if self.log is not None:
            self.log(line)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
