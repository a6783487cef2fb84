"""``googlenet bench`` end to end at a tiny size, its JSON, its table and its errors.

Speed is never asserted here: only that the numbers exist, are consistent and well formed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from googlenet.bench import BenchConfig, _peak_memory_probe, render

TINY = ["--input-size", "64", "-b", "2", "--repeats", "2", "--warmup", "1", "--threads", "1"]
TINY += ["--settle", "0.01"]


def _check_results(section: dict, mode: str) -> None:
    results = section["results"]
    assert results[0]["ours"] is True
    names = [r["name"] for r in results]
    assert len(names) == len(set(names))
    for r in results:
        assert r["mode"] == mode
        assert r["images_per_s"] > 0 and r["ms_per_batch"] > 0
        assert r["ms_min"] <= r["ms_per_batch"] <= r["ms_max"]
        assert r["images_per_s"] == pytest.approx(2 / (r["ms_per_batch"] / 1000), rel=1e-6)
        assert r["gflops_per_s"] > 0
        if r["fraction_of_peak"] is not None:
            assert 0 < r["fraction_of_peak"]
        if r["max_abs_diff"] is not None:
            assert r["max_abs_diff"] <= 1e-4
    assert all(ratio > 0 for ratio in section["ratios"].values())
    assert (
        section["ratios_paired"].keys() == section["ratios"].keys() == section["ratios_best"].keys()
    )
    assert all(ratio > 0 for ratio in section["ratios_paired"].values())
    assert all(v > 0 for v in section["flops_per_image"].values())


def test_bench_both_modes_json(run_cli, tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli(
        "bench", "--mode", "both", "--format", "json", "--no-memory", "--output", out, *TINY
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == report
    assert report["config"]["batch_size"] == 2 and report["config"]["input_size"] == 64
    assert report["machine"]["torch"]
    assert report["matmul_peak_gflops"]["fp32"] > 0
    _check_results(report["infer"], "infer")
    _check_results(report["train"], "train")
    infer_names = [r["name"] for r in report["infer"]["results"]]
    assert "torchvision eager NCHW" in infer_names
    assert "torchvision eager channels_last" in infer_names
    assert "ours vs torchvision eager NCHW" in report["infer"]["ratios"]
    assert "ours vs torchvision channels_last" in report["train"]["ratios"]
    assert all(r["latency_ms_b1"] > 0 for r in report["infer"]["results"])
    # The table renders the same report.
    table = render(report, "table")
    assert "inference:" in table and "training step:" in table
    assert "ours vs torchvision eager NCHW" in table


def test_bench_table_paper_preset_infer(capsys):
    from googlenet.cli import main

    code = main(
        [
            "bench",
            "--mode",
            "infer",
            "--preset",
            "paper",
            "--no-memory",
            "--no-latency",
            "--backend",
            "torch",
            *TINY,
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "googlenet torch" in out
    assert "ours vs torchvision eager channels_last" in out


@pytest.mark.slow
def test_peak_memory_probe_runs_in_a_fresh_process():
    cfg = BenchConfig(mode="infer", batch_size=2, input_size=64, threads=1, backend="torch")
    peak = _peak_memory_probe(cfg, "infer", 0)
    # The probe's child imports what this one does before it runs the model, so its peak is at
    # least that RSS; on top come the weights (a few copies of 27 MB), batch-2 activations at
    # 64 px (a few MB) and the allocator's arenas: +250 MB measured. A unit slip (kB, GB) or
    # the parent's figure is far outside [baseline / 2, baseline + 750].
    code = "import resource, googlenet.bench; print(resource.getrusage(0).ru_maxrss / 1024)"
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    baseline = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       check=True).stdout.split()[-1]
    )  # fmt: skip
    # The lower bound is half the baseline, not the baseline: under load the baseline process
    # itself was once measured at 1,682 MB against 708 MB idle (the probe's child: 1,002 MB).
    assert peak is not None and baseline / 2 < peak < baseline + 750, (peak, baseline)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "cuda"], "no CUDA GPU"),
        (["-b", "0"], "must be at least 1"),
        (["--batch-size", "two"], "expected a whole number"),
        (["--input-size", "8"], "too small"),
        (["--repeats", "0"], "must be at least 1"),
        (["--settle", "11"], "settle must be from 0 to 10"),
        (["--settle", "-1"], "--settle"),
        (["--mode", "fast"], "invalid choice"),
        (["--backend", "tensorrt"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    import torch

    from googlenet.cli import main

    if args == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    try:
        code = main(["bench", *args])
    except SystemExit as exit:  # argparse's own checks
        code = exit.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]


@pytest.mark.parametrize("preset", ["torchvision", "paper"])
def test_bench_models_keep_activations_at_a_trained_networks_scale(preset):
    """Tiny activations would make the deep layers compute on subnormal floats, which x86 CPUs
    run many times slower: the bench would time that, not the network."""
    import torch

    from googlenet.bench.contenders import _ours, _torchvision

    cfg = BenchConfig(mode="infer", preset=preset, batch_size=2, input_size=64)
    ours, theirs = _ours(cfg, aux=False).eval(), _torchvision(cfg, aux=False).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = ours.forward_features(x)
        logits, baseline = ours(x), theirs(x)
    assert 0.1 < features.abs().mean() < 100
    assert 0.1 < logits.std() < 100 and 0.1 < baseline.std() < 100
    if preset == "torchvision":  # the same network with the same weights: the same function
        torch.testing.assert_close(logits, baseline, atol=1e-5, rtol=1e-5)
