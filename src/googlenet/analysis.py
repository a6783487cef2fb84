"""The network explains itself: Table 1, the naive-module cost, and other networks, all measured.

Nothing here is read from a table of constants except the paper's *printed* figures, which are
shown beside the measured ones. Rows come from running the live model once with forward hooks:
the top-level layers in the order they fire, grouped the way Table 1 groups them (a 1x1
reduction and the 3x3 convolution after it are one "convolution" row of depth 2; an LRN joins
the row before it, since Table 1 does not list it). Parameters are counted per row from the
modules; multiply-adds from every Conv2d and Linear as they run (what the paper calls "ops"),
and the total is cross-checked against ``torch.utils.flop_counter.FlopCounterMode``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import ConfigError, InputSizeError
from .model import ConvBlock, GoogLeNet, InceptionModule, NaiveInceptionModule

# The paper's printed params/ops columns (Table 1), by row. Approximate, and some do not match a
# recount (conv1 has 9,408 weights and ~118M multiply-adds); printed only for comparison.
PAPER_PRINTED: dict[str, tuple[float, float]] = {
    "conv1": (2.7e3, 34e6),
    "conv2": (112e3, 360e6),
    "inception3a": (159e3, 128e6),
    "inception3b": (380e3, 304e6),
    "inception4a": (364e3, 73e6),
    "inception4b": (437e3, 88e6),
    "inception4c": (463e3, 100e6),
    "inception4d": (580e3, 119e6),
    "inception4e": (840e3, 170e6),
    "inception5a": (1072e3, 54e6),
    "inception5b": (1388e3, 71e6),
    "fc": (1000e3, 1e6),
}

# ILSVRC classification top-5 error as reported (test set, each entry's best submission).
REPORTED_TOP5 = {"googlenet": 6.67, "vgg16": 7.32, "alexnet": 15.3}

_BRANCH_COLUMNS = ("c1x1", "c3x3_reduce", "c3x3", "c5x5_reduce", "c5x5", "pool_proj")


@dataclass
class Row:
    """One row of Table 1, measured."""

    name: str
    type: str
    patch: str | None
    output_shape: list[int]  # C, H, W
    depth: int
    params: int
    macs: int
    branches: dict[str, int] = field(default_factory=dict)
    paper_params: float | None = None
    paper_macs: float | None = None


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one Conv2d or Linear for one sample, from its output shape."""
    if isinstance(module, nn.Conv2d):
        per_output = (
            module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        )
        return output[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return output.shape[-1] * module.in_features
    return 0


@contextmanager
def count_macs(root: nn.Module) -> Iterator[dict[str, int]]:
    """Within the block, every forward of a Conv2d/Linear under ``root`` adds its multiply-adds
    (per sample) to the yielded dict, keyed by module name."""
    counts: dict[str, int] = {}
    handles = []
    for name, module in root.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):

            def hook(mod: nn.Module, _inp: Any, out: torch.Tensor, name: str = name) -> None:
                counts[name] = counts.get(name, 0) + layer_macs(mod, out)

            handles.append(module.register_forward_hook(hook))
    try:
        yield counts
    finally:
        for h in handles:
            h.remove()


def params_of(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(module: nn.Module, *inputs: torch.Tensor) -> tuple[int, int]:
    """(parameters, multiply-adds per sample) of one forward of ``module`` on ``inputs``."""
    with torch.no_grad(), count_macs(module) as counts:
        module(*inputs)
    return params_of(module), sum(counts.values())


def flop_counter_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds per sample as PyTorch's own FlopCounterMode counts them (FLOPs / 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2 // x.shape[0]


# ---------------------------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------------------------


def _patch(module: nn.Module, in_hw: tuple[int, ...]) -> str | None:
    conv = module.conv if isinstance(module, ConvBlock) else module
    if isinstance(conv, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
        k, s = conv.kernel_size, conv.stride
        k = k if isinstance(k, int) else k[0]
        s = s if isinstance(s, int) else s[0]
        return f"{k}x{k}/{s}"
    if isinstance(module, nn.AdaptiveAvgPool2d):  # global: the window is the whole input
        return f"{in_hw[0]}x{in_hw[1]}/1"
    return None


def _type(name: str, module: nn.Module) -> str:
    if isinstance(module, InceptionModule):
        return f"inception ({name.removeprefix('inception')})"
    if isinstance(module, ConvBlock):
        return "convolution"
    if isinstance(module, nn.MaxPool2d):
        return "max pool"
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AvgPool2d):
        return "avg pool"
    if isinstance(module, nn.Dropout):
        return f"dropout ({module.p:.0%})"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.LocalResponseNorm):
        return "LRN"
    return type(module).__name__


Fired = list[tuple[str, nn.Module, tuple[int, ...], tuple[int, ...]]]


@contextmanager
def eval_mode(model: nn.Module):
    """``model`` in eval mode, then every module back in its own mode (a caller's frozen
    BatchNorm inside a training model stays frozen; ``model.train(was)`` would unfreeze it)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def table1(model: GoogLeNet, input_size: int = 224) -> tuple[list[Row], list[Row]]:
    """Measure every Table 1 row of ``model`` at ``input_size``; also the two auxiliary heads.

    Returns ``(rows, aux_rows)``. Runs one eval-mode forward at batch 1 with hooks on the
    top-level layers, then the auxiliary heads on the 4a/4d outputs it captured.
    """
    if input_size < model.min_input_size:
        raise InputSizeError(
            f"--input-size {input_size} is too small for GoogLeNet: the smallest size that "
            f"works is {model.min_input_size}"
        )
    with eval_mode(model):
        fired, captured, macs = _trace_top_level(model, input_size)
        rows = _table_rows(fired, macs)
        aux_rows = _aux_rows(model, captured)
    if model.config.preset == "paper" and input_size == 224:
        for row in rows:
            if row.name in PAPER_PRINTED:
                row.paper_params, row.paper_macs = PAPER_PRINTED[row.name]
    return rows, aux_rows


def _trace_top_level(
    model: GoogLeNet, input_size: int
) -> tuple[Fired, dict[str, torch.Tensor], dict[str, int]]:
    """One forward at batch 1: each top-level layer's (name, module, input and output shape) in
    the order they ran, their outputs, and the multiply-adds of every layer."""
    fired: Fired = []
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name, child in model.named_children():
        if name in ("aux1", "aux2"):
            continue

        def hook(mod: nn.Module, inp: Any, out: torch.Tensor, name: str = name) -> None:
            fired.append((name, mod, tuple(inp[0].shape[1:]), tuple(out.shape[1:])))
            captured[name] = out

        handles.append(child.register_forward_hook(hook))
    x = torch.zeros(1, 3, input_size, input_size, device=next(model.parameters()).device)
    try:
        with torch.no_grad(), count_macs(model) as macs:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return fired, captured, macs


def _table_rows(fired: Fired, macs: dict[str, int]) -> list[Row]:
    """Table 1's rows from the traced layers: LRN folded into the row before it (Table 1 omits
    it), the stem's 1x1 reduction and 3x3 convolution as one row of depth 2, as printed."""
    rows: list[Row] = []
    for name, module, in_shape, out_shape in fired:
        row_macs = sum(v for k, v in macs.items() if k == name or k.startswith(name + "."))
        shape = list(out_shape) if len(out_shape) == 3 else [out_shape[0], 1, 1]
        prev = rows[-1] if rows else None
        if isinstance(module, nn.LocalResponseNorm) and prev is not None:
            prev.type += ", LRN"  # Caffe's LRN follows pool1 and conv2/3x3; Table 1 omits it
            continue
        if isinstance(module, ConvBlock) and prev is not None and _is_stem_reduce(prev):
            prev.branches = {"c3x3_reduce": prev.output_shape[0], "c3x3": shape[0]}
            prev.patch, prev.output_shape = _patch(module, in_shape[1:]), shape
            prev.depth += 1
            prev.params += params_of(module)
            prev.macs += row_macs
            continue
        row = Row(
            name=name,
            type=_type(name, module),
            patch=_patch(module, in_shape[1:]),
            output_shape=shape,
            depth=2 if isinstance(module, InceptionModule) else int(_has_weights(module)),
            params=params_of(module),
            macs=row_macs,
        )
        if isinstance(module, InceptionModule):
            row.branches = _branch_widths(module)
        rows.append(row)
    return rows


def _is_stem_reduce(row: Row) -> bool:
    """The stem's 1x1 convolution, which Table 1 prints with the 3x3 after it as one row."""
    return row.type == "convolution" and row.patch is not None and row.patch.startswith("1x1")


def _aux_rows(model: GoogLeNet, captured: dict[str, torch.Tensor]) -> list[Row]:
    """The auxiliary heads, measured on the 4a and 4d outputs they read."""
    aux_rows = []
    for aux_name, source in (("aux1", "inception4a"), ("aux2", "inception4d")):
        head = getattr(model, aux_name)
        if head is None:
            continue
        feature_map = captured[source]
        params, aux_macs = measure(head, feature_map)
        paper_pool = head.pooling == "paper" and feature_map.shape[-2:] == (14, 14)
        aux_rows.append(
            Row(
                aux_name,
                f"auxiliary classifier (on {source})",
                "5x5/3" if paper_pool else "adaptive to 4x4",
                [model.num_classes, 1, 1],
                depth=3,
                params=params,
                macs=aux_macs,
            )  # fmt: skip
        )
    return aux_rows


def _has_weights(module: nn.Module) -> bool:
    return isinstance(module, ConvBlock | nn.Linear)


def _branch_widths(module: InceptionModule) -> dict[str, int]:
    convs = (module.conv1x1, module.reduce3x3, module.conv3x3, module.reduce5x5, module.conv5x5,
             module.pool_proj)  # fmt: skip
    return {col: block.conv.out_channels for col, block in zip(_BRANCH_COLUMNS, convs, strict=True)}


# ---------------------------------------------------------------------------------------------
# Naive vs reduced, and other networks
# ---------------------------------------------------------------------------------------------


def naive_vs_reduced(model: GoogLeNet, input_size: int = 224) -> list[dict[str, Any]]:
    """For every Inception module: the naive module with the same 1x1/3x3/5x5 widths on the same
    input, against the module with reductions. Parameters, multiply-adds and their ratios."""
    inputs: dict[str, tuple[int, ...]] = {}
    handles = [
        m.register_forward_hook(
            lambda mod, inp, out, name=name: inputs.__setitem__(name, tuple(inp[0].shape))
        )
        for name, m in model.named_children()
        if isinstance(m, InceptionModule)
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            model.forward_features(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
    out = []
    for name, shape in inputs.items():
        module: InceptionModule = getattr(model, name)
        x = torch.zeros(shape)
        params, macs = measure(module, x)
        naive = NaiveInceptionModule(
            shape[1], module.conv1x1.conv.out_channels, module.conv3x3.conv.out_channels,
            module.conv5x5.conv.out_channels,
        )  # fmt: skip
        naive_params, naive_macs = measure(naive, x)
        out.append({
            "name": name,
            "input_shape": list(shape[1:]),
            "params": params,
            "macs": macs,
            "output_channels": module.out_channels,
            "naive_params": naive_params,
            "naive_macs": naive_macs,
            "naive_output_channels": naive.out_channels,
            "macs_ratio": naive_macs / macs,
            "params_ratio": naive_params / params,
        })  # fmt: skip
    return out


def five_by_five_example(
    in_channels: int = 192, size: int = 28, filters: int = 32, reduce: int = 16
) -> dict[str, Any]:
    """The source document's worked example: 5x5 filters on a 28x28x192 input, without and with
    a 1x1 reduction to 16 channels first (120.4M against 12.4M multiply-adds), measured."""
    x = torch.zeros(1, in_channels, size, size)
    direct = nn.Conv2d(in_channels, filters, 5, padding=2)
    reduced = nn.Sequential(
        nn.Conv2d(in_channels, reduce, 1), nn.Conv2d(reduce, filters, 5, padding=2)
    )
    return {
        "input_shape": [in_channels, size, size],
        "filters": filters,
        "reduce": reduce,
        "direct_macs": measure(direct, x)[1],
        "reduced_macs": measure(reduced, x)[1],
    }


def compare_models(names: list[str], input_size: int = 224) -> list[dict[str, Any]]:
    """Parameters and multiply-adds of torchvision classification models, from their definitions
    alone: built on the meta device, so no weights and no memory are needed."""
    import torchvision.models as tvm

    available = set(tvm.list_models(module=tvm))
    out = []
    for name in names:
        if name not in available:
            raise ConfigError(
                f"--compare: unknown torchvision model {name!r} (e.g. vgg16, alexnet)"
            )
        with torch.device("meta"):
            net = tvm.get_model(name, weights=None).eval()
            x = torch.zeros(1, 3, input_size, input_size)
        params, macs = measure(net, x)
        depth = sum(1 for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear))
        out.append({"name": name, "params": params, "macs": macs, "weight_layers": depth,
                    "reported_top5_error": REPORTED_TOP5.get(name)})  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def summarize(
    model: GoogLeNet, input_size: int = 224, naive: bool = False, compare: list[str] | None = None
) -> dict[str, Any]:
    """Everything ``googlenet summary`` shows, as one JSON-ready dict (format in the README)."""
    rows, aux_rows = table1(model, input_size)
    total_params = sum(r.params for r in rows)
    total_macs = sum(r.macs for r in rows)
    with eval_mode(model):  # counted in eval mode: no aux heads
        counted = flop_counter_macs(model, torch.zeros(1, 3, input_size, input_size))
    report: dict[str, Any] = {
        "preset": model.config.preset,
        "input_size": input_size,
        "num_classes": model.num_classes,
        "rows": [asdict(r) for r in rows],
        "aux_rows": [asdict(r) for r in aux_rows],
        "layers_with_params": sum(r.depth for r in rows),
        "total_params": total_params,
        "total_params_with_aux": total_params + sum(r.params for r in aux_rows),
        "total_macs": total_macs,
        "total_macs_with_aux": total_macs + sum(r.macs for r in aux_rows),
        "flop_counter_macs": counted,
        "flop_counter_agrees": counted == total_macs,
    }
    if total_params != params_of(model) - sum(r.params for r in aux_rows):
        raise AssertionError("rows do not cover every parameter")  # a bug in the walk, not a user
    if naive:
        report["naive"] = naive_vs_reduced(model, input_size)
        report["naive_example"] = five_by_five_example()
    if compare:
        mine = {"name": f"googlenet ({model.config.preset})", "params": total_params,
                "macs": total_macs, "weight_layers": report["layers_with_params"],
                "reported_top5_error": REPORTED_TOP5["googlenet"]}  # fmt: skip
        report["compare"] = [mine, *compare_models(compare, input_size)]
    return report


def _si(n: float | None, unit: str = "") -> str:
    if n is None:
        return ""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.{1 if n / div < 100 else 0}f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


_TABLE_HEADER = ["type", "patch/stride", "output", "depth", "#1x1", "#3x3 reduce", "#3x3",
                 "#5x5 reduce", "#5x5", "pool proj", "params", "ops (MACs)", "paper params",
                 "paper ops"]  # fmt: skip


def _row_cells(r: dict[str, Any]) -> list[str]:
    c, h, w = r["output_shape"]
    b = r["branches"]
    return [
        r["type"], r["patch"] or "", f"{h}x{w}x{c}", str(r["depth"]) if r["depth"] else "",
        *(str(b[k]) if k in b else "" for k in _BRANCH_COLUMNS),
        f"{r['params']:,}" if r["params"] else "", _si(r["macs"]) if r["macs"] else "",
        _si(r["paper_params"]), _si(r["paper_macs"]),
    ]  # fmt: skip


def _grid(header: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + [fmt.format(*cells) for cells in body])


def render(report: dict[str, Any], fmt: str = "table") -> str:
    """The report as ``table`` (terminal), ``markdown``, ``csv`` or ``json``."""
    if fmt == "json":
        return json.dumps(report, indent=2)
    if fmt == "csv":
        return _render_csv(report)
    md = fmt == "markdown"
    body = [_row_cells(r) for r in report["rows"] + report["aux_rows"]]
    parts = [
        f"GoogLeNet, preset {report['preset']!r}, input {report['input_size']}x"
        f"{report['input_size']}x3, {report['num_classes']} classes",
        "",
        _grid(_TABLE_HEADER, body, md),
        "",
        f"layers with parameters: {report['layers_with_params']}",
        f"parameters: {report['total_params']:,} without the auxiliary heads, "
        f"{report['total_params_with_aux']:,} with them",
        f"multiply-adds per image: {report['total_macs']:,} at inference "
        f"({_si(report['total_macs'])}), {report['total_macs_with_aux']:,} with the auxiliary "
        "heads",
        f"FlopCounterMode: {report['flop_counter_macs']:,} multiply-adds "
        f"({'agrees' if report['flop_counter_agrees'] else 'DISAGREES'})",
    ]
    if "naive" in report:
        header = ["module", "input", "reduced params", "reduced MACs", "naive params", "naive MACs",
                  "MACs ratio", "naive out depth"]  # fmt: skip
        rows = [[n["name"], "x".join(map(str, n["input_shape"][1:] + n["input_shape"][:1])),
                 f"{n['params']:,}", _si(n["macs"]), f"{n['naive_params']:,}", _si(n["naive_macs"]),
                 f"{n['macs_ratio']:.1f}x", str(n["naive_output_channels"])]
                for n in report["naive"]]  # fmt: skip
        ex = report["naive_example"]
        c, s, _ = ex["input_shape"]
        parts += [
            "",
            "Naive Inception modules (Figure 2a: 1x1, 3x3, 5x5 and pooling on the full input) "
            "against the modules with 1x1 reductions:",
            "",
            _grid(header, rows, md),
            "",
            f"Example: {ex['filters']} 5x5 filters on a {s}x{s}x{c} input cost "
            f"{ex['direct_macs'] / 1e6:.1f}M multiply-adds; reducing to {ex['reduce']} channels "
            f"first costs {ex['reduced_macs'] / 1e6:.1f}M "
            f"({ex['direct_macs'] / ex['reduced_macs']:.1f}x less).",
        ]
    if "compare" in report:
        header = ["model", "params", "MACs", "weight layers", "reported top-5 error",
                  "params vs GoogLeNet", "MACs vs GoogLeNet"]  # fmt: skip
        base = report["compare"][0]
        rows = [[m["name"], _si(m["params"]), _si(m["macs"]), str(m["weight_layers"]),
                 f"{m['reported_top5_error']}%" if m["reported_top5_error"] else "",
                 f"{m['params'] / base['params']:.1f}x", f"{m['macs'] / base['macs']:.1f}x"]
                for m in report["compare"]]  # fmt: skip
        title = ("Compared (parameters and multiply-adds measured from torchvision's definitions; "
                 "top-5 error as reported at ILSVRC):")  # fmt: skip
        parts += ["", title, "", _grid(header, rows, md)]
    return "\n".join(parts)


def _render_csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "type", "patch", "channels", "height", "width", "depth",
                     *_BRANCH_COLUMNS, "params", "macs", "paper_params", "paper_macs"])  # fmt: skip
    for r in report["rows"] + report["aux_rows"]:
        writer.writerow([r["name"], r["type"], r["patch"] or "", *r["output_shape"], r["depth"],
                         *(r["branches"].get(k, "") for k in _BRANCH_COLUMNS), r["params"],
                         r["macs"], r["paper_params"] or "", r["paper_macs"] or ""])  # fmt: skip
    writer.writerow(["total", "", "", "", "", "", report["layers_with_params"], *[""] * 6,
                     report["total_params"], report["total_macs"], "", ""])  # fmt: skip
    for section, keys in (("naive", ["name", "params", "macs", "naive_params", "naive_macs",
                                     "macs_ratio"]),
                          ("compare", ["name", "params", "macs", "weight_layers",
                                       "reported_top5_error"])):  # fmt: skip
        if section in report:
            buf.write("\n")
            writer.writerow(keys)
            for item in report[section]:
                writer.writerow([item[k] for k in keys])
    return buf.getvalue().rstrip("\n")
