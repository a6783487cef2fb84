"""Each claim: the report's sentence, the paper's figure, and its verdict from the measurements.

A verdict is computed from the per-seed values in ``results.json`` only (:mod:`.verdict`), so the
report can be rebuilt, and checked, from that file alone.
"""

from __future__ import annotations

from typing import Any

from . import verdict as v
from .plan import claim_arms

SENTENCES = {
    "reduce": (
        "1x1 컨볼루션을 병목(bottleneck) 계층으로 활용하여 계산량을 획기적으로 줄이면서도 모델의 "
        "표현력을 높이는 기법을 도입했다.",
        "The 1x1 convolutions as bottleneck layers cut the computation drastically while "
        "raising the model's expressiveness.",
        "Figure 2a vs 2b; the report's example, a 5x5 convolution with 32 filters on a 28x28x192 "
        "input: 120.4M multiply-adds direct, 12.4M with a 1x1 reduction to 16 first (about 1/10). "
        "The whole network: 1.5 billion multiply-adds at inference.",
    ),
    "aux": (
        "보조 분류기는 깊은 네트워크의 중간 지점에서 추가적인 기울기를 주입하여 기울기 소실 문제를 "
        "완화하기 위해 고안된 장치이다.",
        "The auxiliary classifiers inject extra gradient in the middle of the deep network to "
        "ease the vanishing-gradient problem.",
        "Loss = main + 0.3 x (aux1 + aux2), heads on 4a and 4d, training only. The paper: the "
        "heads' effect on the final result is small, about 0.5%.",
    ),
    "gap": (
        "GAP의 도입은 ... 파라미터 수의 극적인 감소 ... 과적합 방지 ... top-1 정확도가 약 0.6% "
        "향상되는 효과를 거두었다.",
        "Global average pooling instead of fully connected layers removes millions of parameters, "
        "resists overfitting, and raised top-1 accuracy by about 0.6%.",
        "Section 5 of the paper: moving from fully connected layers to average pooling improved "
        "top-1 accuracy by about 0.6%.",
    ),
    "crops": (
        "Softmax probabilities are averaged over crops and over models (the paper, section 7).",
        "Error falls with more crops and with more models.",
        "Table 3 (top-5 error, ILSVRC 2012 val): 1 model 1/10/144 crops 10.07/9.15/7.89%; "
        "7 models 1/10/144 crops 8.09/7.62/6.67%.",
    ),
    "vgg": (
        "GoogLeNet은 VGG-16보다 더 깊은 네트워크임에도 불구하고, 파라미터 수는 20분의 1에 "
        "불과했으며, 더 높은 정확도를 달성했다.",
        "GoogLeNet, though deeper than VGG-16, has 1/20 of its parameters and reached higher "
        "accuracy.",
        "Table 2 of the report: GoogLeNet about 7M parameters, 6.67% top-5; VGG-16 about 138M, "
        "7.3%; AlexNet (2012) 60M parameters, 12x GoogLeNet's.",
    ),
}

# What a reader must know to read a claim's numbers (the same for any data).
CAVEATS = {
    "aux": "The vanishing-gradient argument is about a network without BatchNorm: the paper "
    "preset's pair tests it; the paper-bn pair shows what BatchNorm leaves to the heads.",
    "crops": "The 144 crops include mirror images and corners of up-scaled images: a network "
    "trained without flips or with large crops only (the default study's digits) meets them "
    "for the first time, and more crops can then raise the error.",
    "vgg": "torchvision's VGG-16 and AlexNet have no BatchNorm: against a paper-bn baseline, a "
    "short run measures how fast each starts to learn as much as what it can reach. The paper "
    "arm (GoogLeNet without BatchNorm) is compared with them too, like with like; networks "
    "without BatchNorm need more steps to leave chance (--epochs).",
    "gap": "The train - validation gap is measured on the training images without "
    "augmentation, after training; a head that underfits has a small gap too.",
}


def judge(claim: str, records: dict[str, list[dict]], costs: dict[str, dict], extra: dict,
          preset: str) -> dict[str, Any]:  # fmt: skip
    """The measured comparisons of ``claim`` and a one-paragraph verdict."""
    arms = claim_arms(claim, preset)
    out: dict[str, Any] = {"arms": arms, "comparisons": []}
    if claim == "crops":
        grid = extra.get("table3")
        if grid:
            out["grid"] = grid
            out["tests"] = v.grid_verdicts(grid)
            out["summary"] = _crops_summary(grid, out["tests"])
        return out
    pairs = _pairs(claim, arms)
    lines = []
    for a, b in pairs:
        comp = v.compare(records, a, b, "val_top1")
        out["comparisons"].append(comp)
        ratio = _cost_ratio(costs, a, b)
        lines.append(
            f"{b} vs {a}: val top-1 {v.fmt(comp['values'][b], '%')} against "
            f"{v.fmt(comp['values'][a], '%')} ({comp['diff']:+.2f} points), {comp['verdict']}"
            + ratio
        )
        if claim == "gap":
            gap = v.compare(records, a, b, "overfit_gap")
            out["comparisons"].append(gap)
            lines.append(
                f"train - val top-1 gap (overfitting): {b} {v.fmt(gap['values'][b], ' points')}, "
                f"{a} {v.fmt(gap['values'][a], ' points')}, {gap['verdict']}"
            )
        if claim == "aux":
            for stage in ("conv1", "inception3a"):
                grad = _grad_compare(records, a, b, stage)
                if grad:
                    out["comparisons"].append(grad)
                    lines.append(
                        f"mean gradient norm reaching {stage} over the first steps, with heads "
                        f"{v.fmt(grad['values'][a], digits=3)} vs without "
                        f"{v.fmt(grad['values'][b], digits=3)}: {grad['verdict']}"
                    )
    out["summary"] = lines
    return out


def _pairs(claim: str, arms: list[str]) -> list[tuple[str, str]]:
    """(reference, other) pairs: aux's two with/without pairs; vgg's baseline against each
    reference network and, when the baseline has BatchNorm, the paper arm (none, like them)
    against each too; the other claims' reference against each other arm."""
    if claim == "aux":
        return list(zip(arms[::2], arms[1::2], strict=False))
    ref, others = arms[0], arms[1:]
    if claim == "vgg" and "paper" in others:
        nets = [a for a in others if a != "paper"]
        return [(ref, n) for n in nets] + [("paper", n) for n in nets]
    return [(ref, other) for other in others]


def _grad_compare(records: dict, a: str, b: str, stage: str) -> dict | None:
    va = [v.early_grad(r, stage) for r in sorted(records[a], key=lambda r: r["seed"])]
    vb = [v.early_grad(r, stage) for r in sorted(records[b], key=lambda r: r["seed"])]
    if None in va or None in vb:
        return None
    fa = [float(x) for x in va if x is not None]
    fb = [float(x) for x in vb if x is not None]
    return {"metric": f"grad_norm_{stage}", "arms": [a, b], "values": {a: fa, b: fb}} | v.welch(
        fa, fb
    )


def _cost_ratio(costs: dict, a: str, b: str) -> str:
    if a not in costs or b not in costs:
        return ""
    ca, cb = costs[a], costs[b]
    return (
        f"; {cb['params'] / ca['params']:.2f}x the parameters, {cb['macs'] / ca['macs']:.2f}x the "
        f"multiply-adds, {cb['infer_images_per_s'] / ca['infer_images_per_s']:.2f}x the "
        "inference images/s"
    )


def _crops_summary(grid: dict, tests: dict) -> list[str]:
    counts = sorted(grid, key=int)
    lines = [
        f"one model, {counts[0]} crop -> {counts[-1]} crops: top-1 error "
        f"{v.fmt(grid[counts[0]]['alone'], '%')} -> {v.fmt(grid[counts[-1]]['alone'], '%')}, "
        f"{tests['crops']['verdict']}"
    ]
    for n in counts:
        t = tests["ensemble"][n]
        k = len(grid[n]["alone"])
        lines.append(
            f"{k} models averaged, {n} crop(s): {grid[n]['ensemble']:.2f}% against one model's "
            f"{v.fmt(grid[n]['alone'], '%')}, {t['verdict']}"
        )
    return lines
