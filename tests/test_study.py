"""``googlenet study``: each claim's measurement on its own, then the whole --quick study."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch
from helpers.folders import make_dataset, train_args
from helpers.reliability import assert_one_line_error, main, torchrun
from torch import nn

from googlenet.data import Batch
from googlenet.model import ROW, TABLE1, NaiveInceptionModule, create_model
from googlenet.networks import create
from googlenet.runtime.evaluation import evaluate
from googlenet.runtime.training import stage_grad_norms, training_memory
from googlenet.study import plan, verdict
from googlenet.study.claims import judge

# -- claim 1: the naive network ------------------------------------------------------------------


def test_naive_network_has_table1_widths_and_grows_its_depth_module_after_module():
    model = create_model("paper", num_classes=10, inception="naive")
    depth = ROW["inception3a"].in_channels  # 192, from the stem
    for spec in TABLE1:
        module = getattr(model, spec.name)
        assert isinstance(module, NaiveInceptionModule)
        # Table 1's #1x1, #3x3 and #5x5 columns, each straight on the module's whole input
        assert module.conv1x1.conv.out_channels == spec.c1x1
        assert module.conv3x3.conv.out_channels == spec.c3x3
        assert module.conv5x5.conv.out_channels == spec.c5x5
        assert module.conv3x3.conv.in_channels == module.conv5x5.conv.in_channels == depth
        # no reductions: the pool branch passes the input's channels through
        depth += spec.c1x1 + spec.c3x3 + spec.c5x5
        assert module.out_channels == depth
    assert depth == 4944  # against the paper's 1024 at 5b
    assert model.fc.in_features == depth
    assert model.aux1.conv.conv.in_channels == model.inception4a.out_channels
    model.eval()
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


# -- claim 3: the fully connected head ---------------------------------------------------------


@pytest.mark.parametrize("size", [64, 96])
def test_fc_head_adds_exactly_the_flattened_layer_of_the_formula(size):
    gap = create_model("paper", num_classes=7, aux_logits=False, input_size=size)
    fc = create_model("paper", num_classes=7, aux_logits=False, input_size=size, head="fc")
    side = gap.feature_size(size)
    assert side > 1
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # flatten 1024 x s x s -> FC 1024 (+ bias); the classifier reads 1024 either way
    assert count(fc) - count(gap) == 1024 * side * side * 1024 + 1024
    fc.eval()
    assert fc(torch.zeros(2, 3, size, size)).shape == (2, 7)
    with pytest.raises(Exception, match="fully connected head reads"):
        fc(torch.zeros(1, 3, size + 32, size + 32))


def test_study_costs_count_the_inference_network_of_each_arm(tmp_path):
    from googlenet.study import measure

    base = plan.base_settings(str(tmp_path), "paper-bn", 1, 64, 2, 0)
    arms = plan.arms_for(["gap", "aux"], "paper-bn")
    costs = measure.costs([a for a in arms if "paper" not in a.name], base, list("abc"), 1)
    gap, fc = costs["baseline"], costs["fc-head"]
    assert fc["params"] - gap["params"] == 1024 * 2 * 2 * 1024 + 1024  # the 2x2 map flattened
    assert costs["baseline-noaux"]["params"] == gap["params"] < gap["params_with_aux"]
    assert gap["macs"] == costs["baseline-noaux"]["macs"]  # the heads are not run at inference
    assert gap["train_memory_mb"] > costs["baseline-noaux"]["train_memory_mb"]
    assert all(c["infer_images_per_s"] > 0 for c in costs.values())


def test_reference_networks_are_torchvisions_with_the_pool_adapted_to_small_inputs():
    import torchvision

    tv = sum(p.numel() for p in torchvision.models.vgg16(num_classes=10).parameters())
    at224 = create("paper-bn", num_classes=10, arch="vgg16", input_size=224)
    assert sum(p.numel() for p in at224.parameters()) == tv  # identical at 224 px
    small = create("paper-bn", num_classes=10, arch="alexnet", input_size=64)
    assert small.min_input_size == 63 and small.aux1 is None
    small.train()
    out = small(torch.zeros(2, 3, 64, 64), return_aux=True)
    assert out.logits.shape == (2, 10) and out.aux1 is None


def test_variants_run_as_they_are_and_refuse_the_fused_form():
    from googlenet.errors import ConfigError
    from googlenet.runtime.backends import optimize_for_inference
    from googlenet.runtime.fuse import fuse

    model = create_model("paper", num_classes=3, aux_logits=False, input_size=64, head="fc")
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    reference = model(x)
    eager = optimize_for_inference(model, "eager")
    assert eager.backend == "eager"
    torch.testing.assert_close(eager(x), reference, rtol=0, atol=0)  # the module itself
    runner = optimize_for_inference(model, "auto")
    assert runner.backend == "torch"  # unfused, channels_last, on a copy
    torch.testing.assert_close(runner(x), reference, rtol=1e-4, atol=1e-4)
    assert model.conv1.conv.weight.is_contiguous()  # the model itself is not converted
    with pytest.raises(ConfigError, match="fused .* form is the paper's network"):
        fuse(model)
    with pytest.raises(ConfigError, match="runs on torch or eager"):
        optimize_for_inference(model, "onnxruntime")


# -- claim 2: gradient norms -------------------------------------------------------------------


class _Known(nn.Module):
    """Two stages whose gradients are known in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Linear(3, 1, bias=False)
        self.inception3a = nn.Linear(3, 1, bias=True)


def test_stage_grad_norms_are_the_norms_of_the_stages_gradients():
    model = _Known()
    x = torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    (model.conv1(x).sum() + 3 * model.inception3a(x).sum()).backward()
    norms = stage_grad_norms(model)
    assert set(norms) == {"conv1", "inception3a"}  # stages a model lacks are left out
    assert norms["conv1"] == pytest.approx(3.0)  # d/dw sum(w.x) = sum of x rows: (1, 2, 2)
    # weight: 3 x (1, 2, 2) (norm 9), bias: 3 x 2 rows = 6
    assert norms["inception3a"] == pytest.approx(math.hypot(9.0, 6.0))


def test_train_records_grad_norms_for_the_first_steps(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path / "data", train=4, val=1)
    code, _, err = main(capsys, *train_args("data", "run", 2), "--log-grad-norms", "3")
    assert code == 0, err
    lines = (tmp_path / "run" / "grad_norms.csv").read_text().splitlines()
    assert lines[0] == "step,conv1,inception3a,inception4a,inception4e,inception5b"
    rows = [list(map(float, line.split(","))) for line in lines[1:]]
    assert [r[0] for r in rows] == [1, 2, 3]  # 3 steps a epoch x 2 epochs, the first 3 kept
    assert all(v > 0 and math.isfinite(v) for r in rows for v in r[1:])


def test_training_memory_counts_what_backward_keeps():
    lin = _Known()
    lin.forward = lambda x, return_aux=False: lin.conv1(torch.relu(x))  # type: ignore[method-assign]
    memory = training_memory(lin, torch.zeros(8, 3), amp=None)
    assert memory["weights"] == 3 * 7 * 4  # 7 fp32 parameters, with gradient and momentum
    assert memory["activations"] >= 8 * 3 * 4  # at least the ReLU's output, saved for the linear


# -- claim 4: the Table 3 grid -----------------------------------------------------------------


class _Loader:
    """Two images, two crops each; fixed logits stand in for the models."""

    def __init__(self) -> None:
        self.dataset = type("D", (), {"classes": ["a", "b"]})()

    def __iter__(self):
        yield Batch(torch.zeros(2, 2, 3, 4, 4), torch.tensor([0, 1]), [])


def test_crops_and_models_are_averaged_as_softmax_probabilities():
    # model A: image 0 right on both crops; image 1 wrong on crop 1, very right on crop 2
    a = torch.tensor([[2.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    # model B: image 0 wrong on average; image 1 right
    b = torch.tensor([[0.0, 3.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    counts = evaluate([lambda x: a, lambda x: b], _Loader(), torch.device("cpu"))
    p = lambda logits: logits.softmax(1).view(2, 2, 2).mean(1)  # noqa: E731
    ensemble = (p(a) + p(b)) / 2
    expected = (ensemble.argmax(1) == torch.tensor([0, 1])).sum().item()
    assert counts.top1 == pytest.approx(100.0 * expected / 2)
    alone = [(p(m).argmax(1) == torch.tensor([0, 1])).sum().item() for m in (a, b)]
    assert counts.members[:, 0].tolist() == alone


def test_table3_verdicts_from_a_fixed_grid():
    grid = {
        "1": {"alone": [20.0, 22.0, 21.0], "ensemble": 15.0, "images": 100},
        "10": {"alone": [18.0, 19.0, 18.5], "ensemble": 14.0, "images": 100},
        "144": {"alone": [12.0, 12.5, 13.0], "ensemble": 11.0, "images": 100},
    }
    tests = verdict.grid_verdicts(grid)
    assert tests["crops"]["distinguishable"] and tests["crops"]["diff"] == pytest.approx(-8.5)
    assert tests["ensemble"]["1"]["distinguishable"]  # 15 against 21 +- 1
    found = judge("crops", {}, {}, {"table3": grid}, "paper-bn")
    assert "1 crop -> 144 crops: top-1 error 21.00 ± 1.00% -> 12.50 ± 0.50%" in found["summary"][0]


# -- statistics ---------------------------------------------------------------------------------


def test_welch_verdicts_match_scipy_and_say_when_seeds_cannot_tell():
    from scipy import stats

    a, b = [70.0, 72.0, 71.0], [80.0, 81.5, 79.0]
    res = verdict.welch(a, b)
    assert res["p"] == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert res["distinguishable"] and res["diff"] == pytest.approx(9.1666, abs=1e-3)
    same = verdict.welch([70.0, 75.0, 72.0], [71.0, 74.0, 73.0])
    assert not same["distinguishable"] and same["verdict"].startswith(verdict.SAME)
    assert verdict.welch([10.0, 10.0], [10.0, 10.0])["p"] == 1.0  # all at chance, alike
    assert verdict.welch([10.0], [20.0])["verdict"] == verdict.SAME  # one seed: no spread
    assert verdict.fmt([1.0, 2.0, 3.0], "%") == "2.00 ± 1.00%"


def test_claims_and_arms():
    assert plan.parse_claims("vgg, reduce") == ["reduce", "vgg"]
    with pytest.raises(Exception, match="unknown claim 'resnet'"):
        plan.parse_claims("reduce,resnet")
    names = [a.name for a in plan.arms_for(list(plan.CLAIMS), "paper-bn")]
    assert names[0] == "baseline" and len(names) == len(set(names)) == 8
    # with the paper preset as the baseline, claim 2's paper arms are the baseline's
    assert plan.claim_arms("aux", "paper") == ["baseline", "baseline-noaux"]
    for arm in plan.arms_for(list(plan.CLAIMS), "paper-bn"):
        assert len(arm.changes) <= 2  # one setting apart (paper-noaux: from the paper arm)
    # claim 5 compares like with like too: GoogLeNet without BatchNorm against VGG and AlexNet
    assert [a.name for a in plan.arms_for(["vgg"], "paper-bn")] == [
        "baseline", "paper", "alexnet", "vgg16"]  # fmt: skip
    assert plan.claim_arms("vgg", "paper") == ["baseline", "vgg16", "alexnet"]


def test_bad_claims_and_data_are_one_line_errors(tmp_path, capsys):
    code, _, err = main(capsys, "study", "--claims", "reduce,nope", "--output-dir", tmp_path / "o")
    assert "unknown claim 'nope'" in assert_one_line_error(code, err, "study")
    code, _, err = main(capsys, "study", "--data", tmp_path / "none", "--output-dir", tmp_path)
    assert "no such folder" in assert_one_line_error(code, err, "study")
    assert not (tmp_path / "o").exists()


def test_a_study_of_other_settings_is_not_mixed_in(tmp_path, capsys):
    out = tmp_path / "study"
    (out / "arms").mkdir(parents=True)
    (out / "arms" / "settings.json").write_text(json.dumps({"epochs": 99}))
    code, _, err = main(capsys, "study", "--quick", "--output-dir", out)
    line = assert_one_line_error(code, err, "study")
    assert "holds a study with" in line and "another --output-dir" in line
    assert not list((out / "arms").glob("*-seed*.json"))  # nothing trained


def test_one_study_per_output_directory(tmp_path, capsys):
    from googlenet.fileio import output_lock

    with output_lock(tmp_path / "study", "study"):
        code, _, err = main(capsys, "study", "--quick", "--output-dir", tmp_path / "study")
    assert "googlenet study" in assert_one_line_error(code, err, "study")


# -- the whole study ----------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_study_end_to_end_and_resumed(tmp_path, run_cli):
    out = tmp_path / "study"
    try:
        proc = run_cli("study", "--quick", "--output-dir", out, check=True, timeout=900)
        assert "study: [16/16] vgg16 seed 1 trained" in proc.stdout
        results = json.loads((out / "results.json").read_text())
        assert list(results["claims"]) == list(plan.CLAIMS)
        # every verdict recomputes from the per-seed values kept
        for found in results["claims"].values():
            for comp in found["comparisons"]:
                a, b = (comp["values"][arm] for arm in comp["arms"])
                assert verdict.welch(a, b)["verdict"] == comp["verdict"]
        grid = results["claims"]["crops"]["grid"]
        assert sorted(grid, key=int) == ["1", "10", "144"]
        assert len(grid["144"]["alone"]) == 2
        page = (out / "report.html").read_text()
        assert page.count("data:image/png;base64,") >= 8 and "<script" not in page
        assert not re.search(r"""(src|href)=["']https?:""", page)
        md = (out / "report.md").read_text()
        assert "naive" in md and "not distinguishable at this scale" in md
        run = out / "runs" / "naive" / "seed0"
        assert json.loads((run / "config.json").read_text())["model"]["inception"] == "naive"
        # a second run resumes: nothing is trained again
        again = run_cli("study", "--quick", "--output-dir", out, check=True, timeout=300)
        assert "trained" not in again.stdout and "done before" in again.stdout
    finally:
        shutil.rmtree(out, ignore_errors=True)  # several GB of checkpoints


def test_aux_summary_quotes_the_gradient_norms_not_the_accuracies():
    """The aux claim's lines give each stage's gradient norms (a merge once printed the arms'
    accuracies there, while results.json held the right comparison)."""
    arms = plan.claim_arms("aux", "paper-bn")
    records = {
        arm: [
            {"seed": s, "val_top1": 50.0 + i + s, "grad_norms": {"conv1": [3.0 + i + s / 10],
                                                                  "inception3a": [7.0 + i]}}
            for s in range(3)
        ]
        for i, arm in enumerate(arms)
    }  # fmt: skip
    found = judge("aux", records, {}, {}, "paper-bn")
    grads = [c for c in found["comparisons"] if c["metric"] == "grad_norm_conv1"]
    assert grads and grads[0]["values"][arms[0]] == pytest.approx([3.0, 3.1, 3.2])
    line = next(s for s in found["summary"] if "reaching conv1" in s)
    assert "3.100 ± 0.100" in line and "50.00" not in line, line


def test_vgg_claim_compares_the_batchnorm_baseline_and_the_paper_arm_with_each_network():
    arms = plan.claim_arms("vgg", "paper-bn")
    records = {arm: [{"seed": s, "val_top1": 10.0 * (i + 1) + s} for s in range(3)]
               for i, arm in enumerate(arms)}  # fmt: skip
    found = judge("vgg", records, {}, {}, "paper-bn")
    pairs = [tuple(c["arms"]) for c in found["comparisons"]]
    assert pairs == [("baseline", "vgg16"), ("baseline", "alexnet"), ("paper", "vgg16"),
                     ("paper", "alexnet")]  # fmt: skip
    assert found["summary"][2].startswith("vgg16 vs paper: val top-1 21.00 ± 1.00%")
    # with the paper preset as the baseline there is no second, BatchNorm-free reference
    assert len(judge("vgg", records, {}, {}, "paper")["comparisons"]) == 2


@pytest.mark.slow
def test_study_under_torchrun_trains_each_arm_on_every_process_and_reports_once(tmp_path):
    """``torchrun --nproc-per-node 2 -m googlenet study``: each arm one DDP run of 2 processes
    (gloo here, NCCL on GPUs), rank 0 alone evaluating, recording and reporting."""
    proc = torchrun(tmp_path, "study", "--quick", "--claims", "gap", "--output-dir", "s",
                    "-b", "5", timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("study: [4/4] fc-head seed 1 trained") == 1  # rank 0 prints
    out = tmp_path / "s"
    results = json.loads((out / "results.json").read_text())
    assert set(results["records"]) == {"baseline", "fc-head"}
    for arm in ("baseline", "fc-head"):
        for seed in (0, 1):
            ckpt = torch.load(out / "runs" / arm / f"seed{seed}" / "last.pt", weights_only=True)
            assert ckpt["world_size"] == 2 and ckpt["args"]["seed"] == seed
            assert ckpt["args"]["batch_size"] == 5  # per process: 2 steps of 2 x 5 images
    assert (out / "report.html").is_file() and not list(out.glob("**/*.tmp"))


def test_progress_eta_takes_an_arms_own_time_else_its_inference_cost(capsys):
    from googlenet.study import _Clock

    a, b = plan.Arm("a"), plan.Arm("b")
    clock = _Clock([(a, 0), (a, 1), (b, 0), (b, 1)], {"a": 1.0, "b": 4.0})
    clock.tick(a, 0, {"seconds": 10.0, "val_top1": 50.0}, fresh=True)
    # a's second seed as long as its first; b's two at 4x a's cost per unit: 10 + 2 x 40 s
    assert capsys.readouterr().out.strip().endswith("[1/4] a seed 0 trained (10 s): "
                                                    "val top-1 50.0%, ETA 1m30s")  # fmt: skip
    clock.tick(a, 1, {"seconds": 30.0, "val_top1": 50.0}, fresh=True)
    assert capsys.readouterr().out.strip().endswith("ETA 2m40s")  # 20 s a unit now: 2 x 80 s
