"""The statistics: mean ± standard deviation over seeds, and whether two arms differ by more than
their seed-to-seed spread (Welch's t-test, scipy's). Every verdict is a pure function of the
per-seed values that results.json keeps, so anyone can recompute it.
"""

from __future__ import annotations

import math
import statistics
import warnings
from typing import Any

ALPHA = 0.05
TEST = "Welch's t-test (two-sided, scipy.stats.ttest_ind with equal_var=False)"
ONE_SAMPLE = "one-sample t-test (two-sided, scipy.stats.ttest_1samp)"
SAME = "not distinguishable at this scale"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def fmt(values: list[float], unit: str = "", digits: int = 2) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}{unit}"


def welch(a: list[float], b: list[float]) -> dict[str, Any]:
    """Welch's t-test of ``b`` against ``a``: the difference of means, t, p and a verdict.

    With fewer than two values on a side there is no spread to compare with: no p. Where both
    sides have no spread at all (every seed the same), equal means are not distinguishable and
    different means are (p 0), which is what the t statistic tends to."""
    ma, _ = mean_std(a)
    mb, _ = mean_std(b)
    out: dict[str, Any] = {"test": TEST, "diff": mb - ma, "n": [len(a), len(b)]}
    if len(a) < 2 or len(b) < 2:
        return out | {"t": None, "p": None, "distinguishable": False, "verdict": SAME}
    from scipy import stats

    if statistics.stdev(a) == 0 and statistics.stdev(b) == 0:
        t, p = (0.0, 1.0) if ma == mb else (math.copysign(math.inf, mb - ma), 0.0)
    else:
        with warnings.catch_warnings():  # nearly equal values: the p says so already
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_ind(b, a, equal_var=False)
        t, p = float(res.statistic), float(res.pvalue)
    distinct = p < ALPHA
    verdict = f"distinguishable (p = {p:.3g} < {ALPHA})" if distinct else f"{SAME} (p = {p:.3g})"
    return out | {"t": t, "p": p, "distinguishable": distinct, "verdict": verdict}


def one_sample(values: list[float], target: float) -> dict[str, Any]:
    """Whether ``values`` (one per seed) differ from a single number (an ensemble's error)."""
    m, _ = mean_std(values)
    out: dict[str, Any] = {"test": ONE_SAMPLE, "diff": target - m, "n": [len(values), 1]}
    if len(values) < 2:
        return out | {"t": None, "p": None, "distinguishable": False, "verdict": SAME}
    from scipy import stats

    if statistics.stdev(values) == 0:
        p = 1.0 if m == target else 0.0
        t = 0.0 if m == target else math.inf
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_1samp(values, target)
        t, p = float(res.statistic), float(res.pvalue)
    distinct = p < ALPHA
    verdict = f"distinguishable (p = {p:.3g} < {ALPHA})" if distinct else f"{SAME} (p = {p:.3g})"
    return out | {"t": t, "p": p, "distinguishable": distinct, "verdict": verdict}


def per_seed(records: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in sorted(records, key=lambda r: r["seed"])]


def early_grad(record: dict[str, Any], stage: str) -> float | None:
    """Mean gradient norm reaching ``stage`` over the steps recorded."""
    values = record.get("grad_norms", {}).get(stage) or []
    values = [v for v in values if math.isfinite(v)]
    return statistics.fmean(values) if values else None


def compare(
    records: dict[str, list[dict[str, Any]]], ref: str, other: str, key: str
) -> dict[str, Any]:
    """``key`` per seed for two arms, their mean ± std, and Welch's verdict on the difference."""
    a, b = per_seed(records[ref], key), per_seed(records[other], key)
    return {"metric": key, "arms": [ref, other], "values": {ref: a, other: b}} | welch(a, b)


def grid_verdicts(grid: dict[str, Any]) -> dict[str, Any]:
    """Table 3's two claims from its grid: more crops lower a single model's error (1 crop
    against the most crops, per seed: Welch), and the ensemble's error against its members'
    (one-sample t-test, at each number of crops)."""
    counts = sorted(grid, key=int)
    first, last = grid[counts[0]]["alone"], grid[counts[-1]]["alone"]
    return {
        "crops": {"from": counts[0], "to": counts[-1]} | welch(first, last),
        "ensemble": {n: one_sample(grid[n]["alone"], grid[n]["ensemble"]) for n in counts},
    }
