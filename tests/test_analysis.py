"""`googlenet summary`: Table 1 measured from the live model, naive cost, comparisons, formats."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
import torchvision.models as tvm
from torch.utils.flop_counter import FlopCounterMode

from googlenet import create_model
from googlenet.analysis import five_by_five_example, render, summarize


def params(module, skip_aux=False):
    return sum(p.numel() for n, p in module.named_parameters() if not (skip_aux and "aux" in n))


@pytest.mark.parametrize("preset", ["paper", "torchvision"])
def test_summary_totals_equal_the_models_own_counts_and_flop_counter(preset, run_cli):
    proc = run_cli("summary", "--preset", preset, "--format", "json", check=True)
    report = json.loads(proc.stdout)
    model = create_model(preset).eval()
    assert report["total_params"] == params(model, skip_aux=True)
    assert report["total_params_with_aux"] == params(model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 224, 224))
    assert report["total_macs"] == counter.get_total_flops() // 2
    assert report["flop_counter_agrees"] is True
    assert sum(r["macs"] for r in report["rows"]) == report["total_macs"]
    assert {"name", "type", "output_shape", "params", "macs"} <= set(report["rows"][0])
    assert report["preset"] == preset and report["input_size"] == 224


def test_paper_rows_carry_the_printed_figures_and_the_recount():
    report = summarize(create_model("paper"))
    rows = {r["name"]: r for r in report["rows"]}
    # conv1: 7*7*3*64 weights + 64 biases; 112*112*64 outputs of 7*7*3 multiply-adds each.
    assert rows["conv1"]["params"] == 7 * 7 * 3 * 64 + 64
    assert rows["conv1"]["macs"] == 112 * 112 * 64 * 7 * 7 * 3
    assert rows["conv1"]["paper_params"] == 2.7e3 and rows["inception5b"]["paper_params"] == 1388e3
    assert rows["conv2"]["depth"] == 2
    assert rows["conv2"]["branches"] == {"c3x3_reduce": 64, "c3x3": 192}
    assert rows["inception4e"]["branches"]["c5x5"] == 128
    assert "LRN" in rows["maxpool1"]["type"] and "LRN" in rows["conv2"]["type"]
    assert report["total_params"] == 6_998_552
    assert 1.5e9 < report["total_macs"] < 1.6e9  # the paper's budget: about 1.5G multiply-adds


def test_naive_modules_cost_more_and_the_seed_example():
    report = summarize(create_model("paper"), naive=True)
    first = report["naive"][0]
    assert first["name"] == "inception3a" and first["input_shape"] == [192, 28, 28]
    hw = 28 * 28
    assert first["naive_macs"] == hw * 192 * (64 + 9 * 128 + 25 * 32)
    assert all(n["macs_ratio"] > 1 and n["naive_params"] > n["params"] for n in report["naive"])
    ex = five_by_five_example()
    assert ex["direct_macs"] == 5 * 5 * 192 * 32 * 28 * 28  # 120.4M
    assert ex["reduced_macs"] == 192 * 16 * 28 * 28 + 5 * 5 * 16 * 32 * 28 * 28  # 12.4M
    text = render(report, "table")
    assert "120.4M" in text and "12.4M" in text


def test_compare_with_vgg16_and_alexnet_from_torchvisions_definitions():
    report = summarize(create_model("paper"), compare=["vgg16", "alexnet"])
    by_name = {m["name"]: m for m in report["compare"]}
    with torch.device("meta"):
        assert by_name["vgg16"]["params"] == params(tvm.vgg16())
        assert by_name["alexnet"]["params"] == params(tvm.alexnet())
    assert by_name["vgg16"]["params"] / report["total_params"] > 19  # ~138M against ~7M
    assert by_name["vgg16"]["macs"] > 15e9


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_formats(fmt):
    report = summarize(create_model("torchvision"), input_size=96, naive=True)
    text = render(report, fmt)
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text.split("\n\n")[0])))
        assert rows[0][:3] == ["name", "type", "patch"] and rows[1][0] == "conv1"
        assert rows[-1][0] == "total" and int(rows[-1][-3]) == report["total_macs"]
    elif fmt == "markdown":
        assert text.count("| inception (4e) |") == 1
    else:
        assert "inception (5b)" in text and "agrees" in text


def test_other_input_sizes_are_measured_too():
    report = summarize(create_model("paper", num_classes=10), input_size=96)
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["inception5b"]["output_shape"] == [1024, 3, 3]
    assert rows["avgpool"]["patch"] == "3x3/1"
    assert report["flop_counter_agrees"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "resnet"], "invalid choice: 'resnet'"),
        (["--input-size", "20"], "smallest size that works is 31"),
        (["--input-size", "-3"], "must be at least 1"),
        (["--compare", "vgg99"], "unknown torchvision model 'vgg99'"),
        (["--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_summary_bad_arguments_exit_2_with_one_line(args, message, run_cli):
    proc = run_cli("summary", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_console_entry_points(run_cli):
    proc = run_cli("--version", check=True)
    assert proc.stdout.startswith("googlenet ")
    assert run_cli().returncode == 2


@pytest.mark.parametrize("training", [True, False])
def test_summarize_leaves_the_model_in_the_callers_mode(training):
    model = create_model("paper", num_classes=10).train(training)
    summarize(model, input_size=64)
    assert model.training is training
    assert all(m.training is training for m in model.modules())


def test_summarize_restores_a_mixed_mode():
    """A caller's frozen part (BatchNorm in eval mode under a training model) stays as it was."""
    model = create_model("paper-bn", num_classes=10).train()
    model.conv1.bn.eval()
    summarize(model, input_size=64)
    assert model.training and model.inception3a.training and not model.conv1.bn.training
