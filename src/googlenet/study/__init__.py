"""``googlenet study``: the report's claims about GoogLeNet's design, each a controlled experiment.

Like :mod:`googlenet.demo`, a composer in front of the tasks: every arm of every claim is an
ordinary ``googlenet train`` run (its directory kept under ``OUT/runs/<arm>/seed<k>``, so it can
be inspected, evaluated or resumed by the ordinary commands) followed by ``googlenet eval``'s
evaluation; nothing here trains or scores by itself. The pieces:

* :mod:`.plan`    -- the claims, their arms (one setting apart), the default data and budget;
* :mod:`.measure` -- one arm and seed: train, evaluate, read the run's files; a network's cost;
* :mod:`.verdict` -- mean ± std, Welch's t-test, "not distinguishable at this scale";
* :mod:`.claims`  -- each claim's sentence, figure and verdict;
* :mod:`.report`  -- report.md, a self-contained report.html, the plots.

A study resumes: each finished arm-seed is a small JSON file under ``OUT/arms``; a killed study
run again with the same command skips those and finishes the arm it was in from its last
checkpoint (``--resume auto``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError, require
from ..fileio import atomic_write_text, output_lock
from ..runtime import distributed
from ..runtime.device import pick_device, training_threads
from . import measure, plan
from .claims import judge
from .report import write_report

log = logging.getLogger("googlenet.study")
QUIET = ("googlenet.train", "googlenet.evaluate", "googlenet.runtime")
SETTINGS = ("data", "preset", "input_size", "epochs", "batch_size")  # said first in the report
# How the runs go, not what they learn (the thread count fixes the float order, not the recipe:
# a study moved to another machine goes on, each arm resuming with its own recorded count).
NOT_RECIPE = ("resume", "print_freq", "workers", "threads", "best_checkpoint")


def run_study(
    output_dir: Path,
    *,
    data: str | None = None,
    claims: str = ",".join(plan.CLAIMS),
    seeds: int | None = None,
    epochs: int | None = None,
    input_size: int | None = None,
    batch_size: int | None = None,
    preset: str = "paper-bn",
    quick: bool = False,
    workers: int = 0,
    command: str = "",
) -> dict[str, Any]:
    """Run the claims' arms (those not done yet), then write results.json and the report."""
    chosen = plan.parse_claims(claims)
    require("scipy", extra="study")
    budget = dict(plan.QUICK if quick else plan.DEFAULT)
    budget["epochs"] = epochs or budget["epochs"]
    budget["input_size"] = input_size or budget["input_size"]
    budget["batch_size"] = batch_size or budget["batch_size"]
    seeds = seeds or (plan.QUICK_SEEDS if quick else 3)
    if data is not None and not (str(data).startswith(("http://", "https://"))
                                 or Path(data).exists()):  # fmt: skip
        raise DataError(f"--data {data}: no such folder; give an image folder or shards")
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"--output-dir {output_dir} is a file; give a folder")
    job = _Study(output_dir, data, budget, preset, workers, chosen, seeds, quick, command)
    start = time.perf_counter()
    d = distributed.setup(None)  # under torchrun: one process group for every arm's run
    try:
        if not d.is_main:
            _follow(job)
            return {}
        return _lead(job, start)
    finally:
        distributed.cleanup()


@dataclass(frozen=True)
class _Study:
    """What one ``googlenet study`` command asks for, resolved."""

    out: Path
    data: str | None
    budget: dict[str, int]
    preset: str
    workers: int
    chosen: list[str]
    seeds: int
    quick: bool
    command: str

    @property
    def arms(self) -> list[plan.Arm]:
        return plan.arms_for(self.chosen, self.preset)

    def settings(self, splits: dict[str, Any], warn: bool) -> dict[str, Any]:
        """The TrainConfig fields every arm shares."""
        b = self.budget
        base = plan.base_settings(splits["spec"], self.preset, b["epochs"], b["input_size"],
                                  b["batch_size"], self.workers)  # fmt: skip
        # One thread count for every arm, fixed now (and one warning if the CPUs are busy),
        # rather than each run sampling the load again: the arms compute alike.
        base["threads"] = training_threads(None, log if warn else None)
        return base


def _follow(job: _Study) -> None:
    """A process other than rank 0 under torchrun: its share of each arm's training, in step
    with rank 0, which alone writes, evaluates and reports. After each run it waits for rank 0's
    record of it (polling the file, not a collective: rank 0's evaluation may take longer than a
    collective's timeout on a real dataset; torchrun stops this process if rank 0 fails)."""
    with _quiet():
        distributed.barrier()  # rank 0 has written the data
        base = job.settings(_data(job.out, job.data, job.budget), warn=False)
        for arm in job.arms:
            for seed in range(job.seeds):
                record = job.out / "arms" / f"{arm.name}-seed{seed}.json"
                if record.is_file():
                    continue
                measure.train_run(arm, seed, base, job.out / "runs")
                while not record.is_file():
                    time.sleep(0.5)


def _lead(job: _Study, start: float) -> dict[str, Any]:
    """The study itself (rank 0 under torchrun): data, arms, results.json, the report."""
    out, chosen, preset, seeds = job.out, job.chosen, job.preset, job.seeds
    with output_lock(out, "study"), _quiet():
        splits = _data(out, job.data, job.budget)
        distributed.barrier()  # the data are written: the other processes may read them
        base = job.settings(splits, warn=pick_device(None).type == "cpu")
        arms = job.arms
        _check_settings(arms, base, out / "arms" / "settings.json")
        records, costs = _run_arms(out, arms, base, seeds, splits, job.quick)
        extra = {}
        if "crops" in chosen:
            extra["table3"] = _table3(out, records["baseline"], splits)
        results = {
            "command": job.command or "googlenet study (API)",
            "machine": _machine() + f"; {base['threads']} training threads",
            "settings": {k: base[k] for k in SETTINGS},
            "shared": {k: val for k, val in base.items() if k not in SETTINGS + NOT_RECIPE},
            "data": {k: splits[k] for k in ("train_images", "val_images", "classes")},
            "seeds": seeds,
            "arms": {a.name: {"changes": a.changes, "what": a.what} for a in arms},
            "records": records,
            "costs": costs,
            "claims": {c: judge(c, records, costs, extra, preset) for c in chosen},
            "seconds": time.perf_counter() - start,
            "arm_seconds": sum(r["seconds"] for recs in records.values() for r in recs),
        }
        atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
        paths = write_report(results, out)
    _print_verdicts(results, paths)
    return results


def _print_verdicts(results: dict, paths: dict[str, Path]) -> None:
    for claim, found in results["claims"].items():
        print(f"\n{plan.TITLES[claim]}:")
        for line in found.get("summary", []):
            print(f"  {line}")
    print(
        f"\nstudy: {results['seconds'] / 60:.1f} min in this process (the arms' training and "
        f"evaluation: {results['arm_seconds'] / 60:.1f} min); {paths['markdown']}, {paths['html']}"
    )


def _data(out: Path, data: str | None, budget: dict) -> dict[str, Any]:
    """The train and validation splits: the digits subset by default, else ``--data``."""
    from ..data import shards

    if data is None:  # googlenet demo's digits, the first N of each class (reused when there)
        from ..demo import write_digits

        root = out / "data"
        per_class = (budget["train_per_class"], budget["val_per_class"])
        n_train, n_val = write_digits(root, per_class=per_class)
        return {"spec": str(root), "train": root / "train", "val": root / "val",
                "train_images": n_train, "val_images": n_val, "classes": 10}  # fmt: skip
    train, val, classes = shards.resolve(data, None)
    if val is None:
        raise DataError(f"--data {data}: the study needs a validation split (DATA/val)")
    if shards.is_shard_spec(data):
        train_spec, val_spec = f"{data}/train", f"{data}/val"
        n_train, n_val = len(train), len(val)
    else:
        train_spec, val_spec = train, val
        n_train = sum(1 for p in Path(train).rglob("*") if p.is_file())
        n_val = sum(1 for p in Path(val).rglob("*") if p.is_file())
    return {"spec": str(data), "train": train_spec, "val": val_spec, "train_images": n_train,
            "val_images": n_val, "classes": len(classes)}  # fmt: skip


def _check_settings(arms: list[plan.Arm], base: dict, saved: Path) -> None:
    """Every arm's configuration is valid before anything trains (one-line errors), and the
    output directory holds no study of other settings: its finished arms would be reused."""
    from ..train import TrainConfig

    for arm in arms:
        TrainConfig(**arm.settings(base))
    recipe = {k: v for k, v in base.items() if k not in NOT_RECIPE}
    recipe = json.loads(json.dumps(recipe))  # tuples as JSON has them
    if saved.is_file():
        old = json.loads(saved.read_text())
        differ = [k for k in sorted(set(old) | set(recipe)) if old.get(k) != recipe.get(k)]
        if differ:
            k = differ[0]
            raise ConfigError(
                f"{saved.parent.parent} holds a study with {k} {old.get(k)!r}, not "
                f"{recipe.get(k)!r}: its finished arms would be mixed with these; continue it "
                "with its own settings or choose another --output-dir"
            )
    saved.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, json.dumps(recipe, indent=1) + "\n")


def _run_arms(out: Path, arms, base, seeds: int, splits, quick: bool) -> tuple[dict, dict]:
    """Each arm: its cost (once), then its seeds, skipping those a previous study finished."""
    records: dict[str, list[dict]] = {}
    done_dir, runs = out / "arms", out / "runs"
    done_dir.mkdir(parents=True, exist_ok=True)
    todo = [(a, s) for a in arms for s in range(seeds)]
    classes = [str(i) for i in range(splits["classes"])]
    print(f"study: measuring the {len(arms)} networks' costs", flush=True)
    names = "-".join(a.name for a in arms)
    rounds = 2 if quick else 9
    costs = _cached(
        done_dir / f"costs-{names}.json", lambda: measure.costs(arms, base, classes, rounds)
    )
    clock = _Clock(todo, {name: 1 / c["infer_images_per_s"] for name, c in costs.items()})
    for arm in arms:
        records[arm.name] = []
        for seed in range(seeds):
            path = done_dir / f"{arm.name}-seed{seed}.json"
            fresh = not path.is_file()
            record = _cached(path, lambda arm=arm, seed=seed: measure.train_arm(
                arm, seed, base, runs, Path(splits["train"]), Path(splits["val"])))  # fmt: skip
            records[arm.name].append(record)
            clock.tick(arm, seed, record, fresh)
    return records, costs


def _cached(path: Path, compute) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    atomic_write_text(path, json.dumps(value) + "\n")
    return value


class _Clock:
    """Progress for the whole study: arms done, and an ETA. A remaining run of an arm that has
    trained a seed in this process takes what that seed took; one of an arm not yet started
    takes the runs so far's seconds per unit of ``cost``: each network's inference seconds per
    image from the cost table (measured here, so closer to its training time than its
    multiply-adds: VGG-16 has 9.9 times the baseline's, and trains 3.7 times slower)."""

    def __init__(self, todo: list, cost: dict[str, float]) -> None:
        self.todo, self.cost = todo, cost
        self.done, self.cost_done, self.seconds = 0, 0.0, 0.0
        self.took: dict[str, list[float]] = {}

    def tick(self, arm, seed: int, record: dict, fresh: bool) -> None:
        self.done += 1
        if fresh:
            self.cost_done += self.cost[arm.name]
            self.seconds += record["seconds"]
            self.took.setdefault(arm.name, []).append(record["seconds"])
        eta = ""
        if self.cost_done:
            rate = self.seconds / self.cost_done
            left = [
                statistics.fmean(self.took[a.name]) if a.name in self.took
                else self.cost[a.name] * rate
                for a, _ in self.todo[self.done :]
            ]  # fmt: skip
            eta = f", ETA {_duration(sum(left))}"
        state = "trained" if fresh else "done before"
        print(
            f"study: [{self.done}/{len(self.todo)}] {arm.name} seed {seed} {state} "
            f"({record['seconds']:.0f} s): val top-1 {record['val_top1']:.1f}%{eta}",
            flush=True,
        )


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s"


def _table3(out: Path, baseline: list[dict], splits: dict) -> dict:
    weights = [r["weights"] for r in sorted(baseline, key=lambda r: r["seed"])]
    print(f"study: Table 3, {len(weights)} models x 1, 10 and 144 crops", flush=True)
    target = out / "table3"
    target.mkdir(exist_ok=True)
    return _cached(out / "arms" / "table3.json",
                   lambda: measure.table3(weights, Path(splits["val"]), target))  # fmt: skip


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, Python "
        f"{platform.python_version()}; load average at the end {load} (1, 5, 15 min)"
    )


@contextlib.contextmanager
def _quiet():
    """The runs' per-epoch lines are in their metrics files; the study prints its own."""
    loggers = [logging.getLogger(name) for name in QUIET]
    levels = [lg.level for lg in loggers]
    if not log.isEnabledFor(logging.DEBUG):
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def command_line() -> str:
    return "googlenet " + " ".join(shlex.quote(a) for a in sys.argv[1:])
