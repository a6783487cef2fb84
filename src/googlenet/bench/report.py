"""The bench report as a table or JSON."""

from __future__ import annotations

import json
from typing import Any


def render(report: dict[str, Any], fmt: str = "table") -> str:
    """The report as ``json`` or a plain-text ``table``."""
    if fmt == "json":
        return json.dumps(report, indent=2)
    cfg, machine = report["config"], report["machine"]
    where = machine.get("gpu") or f"{machine.get('cpu')}, {machine.get('threads')} threads"
    peaks = ", ".join(f"{k} {v:,.0f}" for k, v in report["matmul_peak_gflops"].items())
    lines = [
        f"googlenet bench: preset {cfg['preset']}, batch {cfg['batch_size']}, "
        f"{cfg['input_size']}x{cfg['input_size']}, {cfg['device']} ({where}), torch "
        f"{machine['torch']}; median of {cfg['repeats']} alternating rounds",
        f"large-matmul peak GFLOP/s: {peaks}",
    ]
    nominal = machine.get("nominal_bf16_tflops")
    if nominal:
        lines.append(f"data-sheet dense bf16 peak: {nominal:,.0f} TFLOP/s ('of sheet' column)")
    for mode in ("infer", "train"):
        if mode not in report:
            continue
        section = report[mode]
        lines.append("")
        lines.append(f"{'inference' if mode == 'infer' else 'training step'}:")
        head = f"  {'contender':44} {'img/s':>8} {'ms/batch':>9} {'GFLOP/s':>8} {'of peak':>8}"
        if mode == "infer":
            head += f" {'b1 ms':>7}"
        head += f" {'peak MB':>8} {'max|diff|':>9}"
        if nominal:
            head += f" {'of sheet':>8}"
        lines.append(head)
        for r in section["results"]:
            frac = f"{100 * r['fraction_of_peak']:.0f}%" if r["fraction_of_peak"] else "-"
            row = (
                f"  {r['name'][:44]:44} {r['images_per_s']:8.1f} {r['ms_per_batch']:9.1f} "
                f"{r['gflops_per_s']:8.1f} {frac:>8}"
            )
            if mode == "infer":
                lat = r["latency_ms_b1"]
                row += f" {lat:7.1f}" if lat is not None else f" {'-':>7}"
            mem = r["peak_memory_mb"]
            row += f" {mem:8.0f}" if mem is not None else f" {'-':>8}"
            diff = r["max_abs_diff"]
            row += f" {diff:9.1e}" if diff is not None else f" {'-':>9}"
            if nominal:
                row += f" {100 * r['fraction_of_nominal_bf16']:7.1f}%"
            lines.append(row)
        for name, ratio in section["ratios"].items():
            paired = section.get("ratios_paired", {}).get(name)
            best = section.get("ratios_best", {}).get(name)
            extra = f" (paired {paired:.2f}x, best {best:.2f}x)" if paired and best else ""
            lines.append(f"  {name}: {ratio:.2f}x{extra}")
    return "\n".join(lines)
