"""Fault injection for the reliability tests: inert unless ``GOOGLENET_FAULT`` is set.

The tests in ``tests/reliability`` kill training at exact moments, fill the disk and stop one
rank of a torchrun job. They do it through this one hook, read from the environment so that it
reaches subprocesses and torchrun's workers. Without the variable, :func:`inject` returns at once.

``GOOGLENET_FAULT`` holds one or more faults separated by ``;``, each ``ACTION@POINT=VALUE``
with optional ``,rank=R`` (only that torchrun rank) and ``,attempt=A`` (only that torchrun
restart, ``TORCHELASTIC_RESTART_COUNT``)::

    kill@step=5                   SIGKILL itself just before training step 5 (0-based)
    kill@step=3,rank=1,attempt=0  the same, on rank 1 of torchrun's first attempt only
    sigterm@step=4                send itself SIGTERM (also: sigint)
    stop@step=4                   SIGSTOP itself: the test sends signals, then SIGCONT or SIGKILL
    stop@write=last.pt            SIGSTOP inside the atomic write of last.pt, after the temporary
                                  file is complete and before it replaces last.pt
    ENOSPC@write=last.pt          raise OSError(ENOSPC) there (any errno name: EROFS, EACCES, EIO)

Points: ``step`` (:func:`googlenet.train.train_one_epoch`, before each optimizer step; the value
is the number of steps taken so far) and ``write`` (:mod:`googlenet.fileio`, the value is the
destination's file name).
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "GOOGLENET_FAULT"

_SIGNALS = {
    "kill": signal.SIGKILL,
    "stop": signal.SIGSTOP,
    "sigint": signal.SIGINT,
    "sigterm": signal.SIGTERM,
}


def inject(point: str, value: object) -> None:
    """Act out the faults of ``GOOGLENET_FAULT`` that match ``point`` = ``value``, if any."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for fault in filter(None, (f.strip() for f in spec.split(";"))):
        action, _, where = fault.partition("@")
        fields = dict(item.partition("=")[::2] for item in where.split(","))
        if fields.get(point) != str(value):
            continue
        if "rank" in fields and fields["rank"] != os.environ.get("RANK", "0"):
            continue
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        if "attempt" in fields and fields["attempt"] != attempt:
            continue
        if action in _SIGNALS:
            os.kill(os.getpid(), _SIGNALS[action])
        elif hasattr(errno, action):
            code = getattr(errno, action)
            raise OSError(code, f"{os.strerror(code)} (injected by {ENV})")
        else:
            raise ValueError(f"{ENV}: unknown action {action!r} in {fault!r}")
