"""Stop signals and failures of other processes: how a run ends when it is asked to, or when a
peer of a torchrun job dies.

SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption) stop the run after its current step, with
a checkpoint (:class:`StopSignals`); a collective that fails because another rank died is one
line naming the reason (:func:`is_peer_failure`, :func:`peer_reason`).
"""

from __future__ import annotations

import os
import re
import signal
import threading
from typing import Any

import torch

from ..errors import Interrupted, first_line


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption) ask the run to stop after its current
    step, with a checkpoint; a second one stops at once (the default behaviour). Installed only
    in the main thread, for the duration of a ``with`` block; the previous handlers come back."""

    def __init__(self, announce: bool = True) -> None:
        self.signum: int | None = None
        self.finished = False  # the run has stopped and saved: later signals change nothing
        self.announce = announce
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.finished:
            return
        if self.signum is not None:  # the second signal: give up at once
            self.__exit__()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        if self.announce:
            name = signal.Signals(signum).name
            os.write(
                2,
                f"googlenet: {name}: stopping after this step with a checkpoint "
                f"({name} again: stop at once)\n".encode(),
            )


def interrupted(stop: StopSignals | None, saved: str, early: bool = False) -> Interrupted:
    """The error that ends a run stopped by a signal, its checkpoint ``saved`` written. Takes the
    loop's two fields, not the loop: the loop holds a :class:`StopSignals`, so this module stays
    below it."""
    signum = stop.signum if stop is not None and stop.signum else signal.SIGINT
    if stop is not None:
        stop.finished = True
    name = signal.Signals(signum).name
    if early:
        return Interrupted(f"stopped by {name} before training began: nothing new to save", signum)
    return Interrupted(f"stopped by {name}: saved {saved}; continue with --resume auto", signum)


def is_peer_failure(err: RuntimeError) -> bool:
    """Whether a collective failed because another process of the job died (gloo, NCCL)."""
    text = str(err).lower()
    signs = ("connection closed by peer", "connection reset", "broken pipe", "timed out", "nccl")
    return isinstance(err, torch.distributed.DistError) or any(s in text for s in signs)


def peer_reason(err: BaseException) -> str:
    """The gist of a gloo/NCCL error: "Read error [127.0.0.1]:23724: Connection reset by peer"
    without the source location in front or the advice after."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", first_line(err))
    return text.split(". ")[0][:160]
