"""``googlenet predict``: top-k classes for image files, folders and globs, streamed to a table,
CSV, JSON or JSON lines. The inference itself is :class:`googlenet.runtime.predictor.Predictor`."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import IO

from .data import collect_images
from .errors import ConfigError, DataError
from .fileio import atomic_open
from .progress import Progress
from .runtime.predictor import Prediction, Predictor

OUTPUT_FORMATS = ("table", "csv", "json", "jsonl")


class PredictionWriter:
    """Writes predictions as they come: a readable table, CSV, a JSON array, or JSON lines."""

    def __init__(self, stream: IO[str], format: str = "table") -> None:
        if format not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown format {format!r}; choose one of {OUTPUT_FORMATS}")
        self.stream, self.format, self.count = stream, format, 0
        if format == "csv":
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(["path", "rank", "class", "index", "prob"])
        elif format == "json":
            stream.write("[")

    def write(self, pred: Prediction) -> None:
        if self.format == "table":
            lines = [str(pred.path)] + [
                f"  {rank:>3}  {s.prob:7.2%}  {s.name} ({s.index})"
                for rank, s in enumerate(pred.topk, 1)
            ]
            self.stream.write("\n".join(lines) + "\n")
        elif self.format == "csv":
            for rank, s in enumerate(pred.topk, 1):
                self._csv.writerow([pred.path, rank, s.name, s.index, f"{s.prob:.6f}"])
        elif self.format == "json":
            sep = ",\n " if self.count else "\n "
            self.stream.write(sep + json.dumps(pred.to_dict(), ensure_ascii=False))
        else:
            self.stream.write(json.dumps(pred.to_dict(), ensure_ascii=False) + "\n")
        self.count += 1
        self.stream.flush()

    def close(self) -> None:
        if self.format == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
            self.stream.flush()


def predict_files(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    format: str = "table",
    topk: int = 5,
    workers: int | None = None,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    strict: bool = False,
) -> tuple[int, int]:
    """Predict every image ``inputs`` name; write results to ``out`` (atomically) or stdout.

    Each unreadable input is reported through ``report`` and skipped; ``strict`` stops at the
    first one instead (raising DataError; ``out`` is then not written). A progress bar runs on
    stderr when it is a terminal, else a line through ``report`` every few seconds
    (:class:`~googlenet.progress.Progress`). Returns ``(predicted, failed)``.
    """
    paths, problems = collect_images(inputs, report, strict)
    target = atomic_open(out, "w", encoding="utf-8", newline="") if out else nullcontext(sys.stdout)
    ok = failed = 0
    start = time.perf_counter()
    with target as stream, Progress(len(paths), "image(s)", report) as progress:
        writer = PredictionWriter(stream, format)
        # Keep the bar and the results apart when both go to the terminal.
        bar = progress.bar
        clear = bar.external_write_mode if not bar.disable and out is None else nullcontext
        for pred in predictor.stream(paths, topk=topk, workers=workers):
            with clear():
                if pred.ok:
                    writer.write(pred)
                    ok += 1
                else:
                    reason = pred.error or f"{pred.path}: unreadable"
                    if strict:
                        raise DataError(
                            f"{reason} (--strict: stopping at the first unreadable input)"
                        )
                    report(reason)
                    failed += 1
            progress.update()
        writer.close()
    elapsed = time.perf_counter() - start
    if ok:
        report(f"predicted {ok} image(s) in {elapsed:.1f} s ({ok / elapsed:.1f} images/s)")
    return ok, failed + len(problems)
