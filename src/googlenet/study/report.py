"""The study's report: ``report.md``, a self-contained ``report.html`` (its plots embedded as
base64 PNG, no script, no CDN) and the plots as PNG files, all from ``results.json``'s content.
"""

from __future__ import annotations

import base64
import html
import math
import statistics
from pathlib import Path
from typing import Any

from .. import metrics
from ..fileio import atomic_write_text
from . import verdict as v
from .claims import CAVEATS, SENTENCES
from .plan import TITLES

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]


def _band(ax, series: list[list[float | None]], label: str, color: str, style: str = "-") -> None:
    """Mean over seeds with a ±1 std band, per epoch."""
    epochs = min(len(s) for s in series)
    if epochs == 0:
        return
    cols = [[float(v) for s in series if (v := s[i]) is not None] for i in range(epochs)]
    mean = [statistics.fmean(c) if c else math.nan for c in cols]
    std = [statistics.stdev(c) if len(c) > 1 else 0.0 for c in cols]
    x = list(range(1, epochs + 1))
    ax.plot(x, mean, style, color=color, label=label, marker="o" if epochs < 20 else None, ms=3)
    low = [m - s for m, s in zip(mean, std, strict=True)]
    high = [m + s for m, s in zip(mean, std, strict=True)]
    ax.fill_between(x, low, high, color=color, alpha=0.18)


def plot_curves(results: dict, claim: str, arms: list[str], out: Path) -> Path:
    """Validation top-1 (and, for the head claim, training top-1 dashed) and training loss by
    epoch, mean ± std over the seeds."""
    plt = metrics.pyplot()
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, arm in enumerate(arms):
        recs = results["records"][arm]
        color = COLORS[i % len(COLORS)]
        _band(acc, [r["curves"]["val_top1"] for r in recs], f"{arm} val", color)
        if claim == "gap":
            _band(acc, [r["curves"]["train_top1"] for r in recs], f"{arm} train", color, "--")
        _band(loss, [r["curves"]["train_loss_main"] for r in recs], arm, color)
    acc.set(xlabel="epoch", ylabel="top-1 (%)", title="accuracy (mean ± std over seeds)")
    loss.set(xlabel="epoch", ylabel="main loss", title="training loss (main head)")
    for ax in (acc, loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return metrics.save_figure(fig, out / f"{claim}-curves.png", dpi=100)


def plot_grad_norms(results: dict, arms: list[str], out: Path) -> Path:
    """The gradient norm reaching each stage, mean over the recorded steps, mean ± std over
    seeds (log scale), and conv1's norm step by step."""
    plt = metrics.pyplot()
    fig, (bars, steps) = plt.subplots(1, 2, figsize=(10, 3.8))
    stages = None
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        recs = results["records"][arm]
        stages = stages or list(recs[0].get("grad_norms", {}))
        vals = [[v.early_grad(r, s) or math.nan for r in recs] for s in stages]
        means = [statistics.fmean(x) for x in vals]
        stds = [statistics.stdev(x) if len(x) > 1 else 0.0 for x in vals]
        xs = [j + (i - (len(arms) - 1) / 2) * width for j in range(len(stages))]
        bars.bar(xs, means, width, yerr=stds, label=arm, color=COLORS[i % len(COLORS)], capsize=2)
        conv1 = [r["grad_norms"].get("conv1", []) for r in recs]
        if conv1 and all(conv1):
            _band(steps, conv1, arm, COLORS[i % len(COLORS)])
    bars.set_xticks(range(len(stages or [])), [s.replace("inception", "") for s in stages or []])
    bars.set(yscale="log", ylabel="gradient L2 norm", title="gradient reaching each stage")
    steps.set(yscale="log", xlabel="step", ylabel="conv1 gradient norm", title="conv1, per step")
    for ax in (bars, steps):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return metrics.save_figure(fig, out / "aux-grad-norms.png", dpi=100)


def plot_cost(results: dict, claim: str, arms: list[str], out: Path) -> Path:
    """Validation top-1 (mean ± std) against multiply-adds and against inference images/s."""
    plt = metrics.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = (
        (axes[0], "macs", "multiply-adds per image"),
        (axes[1], "infer_images_per_s", "inference images/s (this CPU)"),
    )
    for ax, key, label in panels:
        for i, arm in enumerate(arms):
            cost = results["costs"][arm]
            m, s = v.mean_std(v.per_seed(results["records"][arm], "val_top1"))
            ax.errorbar(cost[key], m, yerr=s, fmt="o", color=COLORS[i % len(COLORS)], capsize=3,
                        label=f"{arm} ({cost['params'] / 1e6:.1f}M params)")  # fmt: skip
        ax.set(xscale="log", xlabel=label, ylabel="val top-1 (%)")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # 2x10^2 3x10^2 ... overprinted
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return metrics.save_figure(fig, out / f"{claim}-cost.png", dpi=100)


def plot_table3(grid: dict, out: Path) -> Path:
    """Table 3's grid: top-1 error against crops, one model (mean ± std) and the ensemble."""
    plt = metrics.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    counts = sorted(int(n) for n in grid)
    grid = {int(n): cell for n, cell in grid.items()}
    alone = [v.mean_std(grid[n]["alone"]) for n in counts]
    k = len(grid[counts[0]]["alone"])
    ax.errorbar(counts, [a[0] for a in alone], yerr=[a[1] for a in alone], fmt="o-",
                capsize=3, label="1 model (mean ± std)")  # fmt: skip
    ax.plot(counts, [grid[n]["ensemble"] for n in counts], "s-", label=f"{k} models averaged")
    ax.set(xlabel="crops per image", ylabel="val top-1 error (%)", title="Table 3, this data")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return metrics.save_figure(fig, out / "crops-table3.png", dpi=100)


def make_plots(results: dict, out: Path) -> dict[str, list[Path]]:
    """Every claim's plots, as files under ``out``."""
    plots: dict[str, list[Path]] = {}
    for claim, found in results["claims"].items():
        arms = found["arms"]
        if claim == "crops":
            plots[claim] = [plot_table3(found["grid"], out)] if found.get("grid") else []
            continue
        plots[claim] = [plot_curves(results, claim, arms, out)]
        if claim == "aux":
            plots[claim].append(plot_grad_norms(results, arms, out))
        if claim in ("reduce", "vgg"):
            plots[claim].append(plot_cost(results, claim, arms, out))
    return plots


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


HEADER = ["arm", "differs from the baseline", "seeds", "val top-1 %", "train top-1 %",
          "params (inference)", "multiply-adds", "train img/s", "infer img/s",
          "train MB"]  # fmt: skip


def arm_table(results: dict, arms: list[str]) -> list[list[str]]:
    """One row per arm: what differs from the baseline, and every measured number."""
    rows = [HEADER]
    for arm in arms:
        recs = results["records"][arm]
        cost = results["costs"].get(arm, {})
        changes = results["arms"][arm]["changes"]
        rows.append([
            arm,
            ", ".join(f"{k}={val}" for k, val in changes.items()) or "(the baseline)",
            str(len(recs)),
            v.fmt(v.per_seed(recs, "val_top1")),
            v.fmt(v.per_seed(recs, "train_top1")),
            f"{cost.get('params', 0) / 1e6:.2f}M",
            f"{cost.get('macs', 0) / 1e6:.0f}M",
            v.fmt(v.per_seed(recs, "train_images_per_s"), digits=0),
            f"{cost.get('infer_images_per_s', 0):.0f}",
            f"{cost.get('train_memory_mb', 0):.0f}",
        ])  # fmt: skip
    return rows


def _md_table(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def _grid_rows(grid: dict) -> list[list[str]]:
    counts = sorted(grid, key=int)
    k = len(grid[counts[0]]["alone"])
    rows = [["models", *[f"{n} crop(s)" for n in counts]]]
    rows.append(["1 (mean ± std)", *[v.fmt(grid[n]["alone"], "%") for n in counts]])
    rows.append([f"{k} averaged", *[f"{grid[n]['ensemble']:.2f}%" for n in counts]])
    return rows


def _sections(results: dict, plots: dict[str, list[Path]]):
    """(title, paragraphs, tables, plots) per claim, shared by the Markdown and the HTML."""
    for claim, found in results["claims"].items():
        ko, en, paper = SENTENCES[claim]
        paras = [f"The report: “{ko}” ({en})", f"The paper: {paper}"]
        if claim in CAVEATS:
            paras.append(f"Read with care: {CAVEATS[claim]}")
        tables = [arm_table(results, found["arms"])]
        if found.get("grid"):
            tables.append(_grid_rows(found["grid"]))
        yield TITLES[claim], paras, found.get("summary", []), tables, plots.get(claim, [])


def _preamble(results: dict) -> list[str]:
    s = results["settings"]
    return [
        f"Command: `{results['command']}`",
        f"Machine: {results['machine']}",
        f"Data: {s['data']} ({results['data']['train_images']} training, "
        f"{results['data']['val_images']} validation images, {results['data']['classes']} "
        f"classes), {s['input_size']} px, {s['epochs']} epochs of batch {s['batch_size']}, "
        f"{results['seeds']} seeds an arm, baseline preset {s['preset']}; shared settings: "
        + ", ".join(f"{k}={val}" for k, val in results["shared"].items()),
        f"Statistics: mean ± sample standard deviation over the seeds; a difference is called "
        f'distinguishable when {v.TEST} gives p < {v.ALPHA}, otherwise "{v.SAME}". Every '
        "per-seed value is in results.json.",
        f"Time: the arms' training and evaluation took {results['arm_seconds'] / 60:.1f} min in "
        f"all; the process that wrote this report, {results['seconds'] / 60:.1f} min (a resumed "
        "study counts only what it did itself).",
    ]


def write_markdown(results: dict, plots: dict[str, list[Path]], path: Path) -> Path:
    out = ["# The report's claims, measured", "", *[f"{p}  " for p in _preamble(results)], ""]
    for title, paras, verdicts, tables, pngs in _sections(results, plots):
        out += [f"## {title}", "", *[p + "\n" for p in paras], "**Measured here:**", ""]
        out += [f"- {line}" for line in verdicts] + [""]
        for table in tables:
            out += [_md_table(table), ""]
        out += [f"![{title}]({png.relative_to(path.parent)})" for png in pngs] + [""]
    return atomic_write_text(path, "\n".join(out) + "\n")


def write_html(results: dict, plots: dict[str, list[Path]], path: Path) -> Path:
    esc = html.escape
    body = ["<h1>The report's claims, measured</h1>"]
    body += [f"<p>{esc(p)}</p>" for p in _preamble(results)]
    for title, paras, verdicts, tables, pngs in _sections(results, plots):
        body += [f"<h2>{esc(title)}</h2>", *[f"<p>{esc(p)}</p>" for p in paras]]
        body += ["<p><b>Measured here:</b></p><ul>"]
        body += [f"<li>{esc(line)}</li>" for line in verdicts] + ["</ul>"]
        for table in tables:
            head, *rows = table
            body.append("<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in head) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
            body.append("</table>")
        for png in pngs:
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            body.append(f'<img alt="{esc(title)}" src="data:image/png;base64,{data}">')
    style = ("body{font-family:sans-serif;max-width:1050px;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "img{max-width:100%;display:block;margin:1em 0}")  # fmt: skip
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>googlenet study</title><style>{style}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    return atomic_write_text(path, page)


def write_report(results: dict[str, Any], out: Path) -> dict[str, Path]:
    """The plots, report.md and report.html in ``out``."""
    (out / "plots").mkdir(parents=True, exist_ok=True)
    plots = make_plots(results, out / "plots")
    return {
        "markdown": write_markdown(results, plots, out / "report.md"),
        "html": write_html(results, plots, out / "report.html"),
    }
