"""Progress that a person can read either way: a tqdm bar on a terminal, and where stderr is not a
terminal (a log file, CI, a job scheduler) a plain line with the count, the rate and the ETA every
:data:`EVERY_S` seconds. ``googlenet predict`` and ``googlenet eval`` both show it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

EVERY_S = 10.0  # seconds between plain progress lines


class Progress:
    """``with Progress(total, "image(s)", report) as p: ... p.update()``.

    ``report`` takes the plain lines (``print`` to stderr, a logger's ``info``); ``bar`` is the
    tqdm bar (disabled off a terminal), for ``bar.external_write_mode`` around other output.
    """

    def __init__(
        self,
        total: int,
        unit: str,
        report: Callable[[str], Any],
        *,
        desc: str = "",
        leave: bool = True,
        every: float | None = None,
    ) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, desc=desc or None, unit=unit, file=sys.stderr, disable=None,
            dynamic_ncols=True, leave=leave,
        )  # fmt: skip
        self.total, self.unit, self.report, self.desc = total, unit, report, desc
        self.every = EVERY_S if every is None else every
        self.done = 0
        self.start = self.shown = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(n)
        now = time.perf_counter()
        if self.bar.disable and now - self.shown >= self.every and self.done < self.total:
            self.shown = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate
            prefix = f"{self.desc}: " if self.desc else ""
            self.report(
                f"{prefix}{self.done}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s, "
                f"eta {eta:.0f} s"
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
