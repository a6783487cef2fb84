"""``googlenet train``: the recipe's pieces, a whole run, exact resume, bad input."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from helpers.folders import FAST, make_dataset, make_image_folder, train_args
from safetensors.torch import load_file

import googlenet
from googlenet import cli
from googlenet.model import GoogLeNetOutputs
from googlenet.train import TrainConfig, googlenet_loss, lr_at

CHECKPOINT_KEYS = {
    "config",
    "model",
    "polyak",
    "optimizer",
    "scheduler",
    "scaler",
    "epoch",
    "step",
    "best_top1",
    "metrics",
    "rng",
    "args",
}


def one_line_error(proc) -> str:
    """A user mistake ends as one line on stderr, exit code 2, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("googlenet train: error: ") or last.startswith("googlenet: error")
    return last


# ---------------------------------------------------------------------------------------------
# Recipe pieces
# ---------------------------------------------------------------------------------------------


def test_paper_schedule_is_the_papers_literal_rule_and_paper_scaled_fits_it_to_the_run():
    literal = TrainConfig(data="x", epochs=25, lr=0.01)  # the default: x0.96 every 8 epochs
    assert literal.schedule == "paper"
    assert lr_at(799, 100, literal) == 0.01
    assert math.isclose(lr_at(800, 100, literal), 0.0096)
    assert math.isclose(lr_at(2499, 100, literal), 0.01 * 0.96**3)
    full = TrainConfig(data="x", epochs=250, lr=0.01, schedule="paper-scaled")
    assert math.isclose(lr_at(800, 100, full), 0.0096)  # at BVLC's length the two agree
    assert math.isclose(lr_at(1600, 100, full), 0.01 * 0.96**2)
    short = TrainConfig(data="x", epochs=25, lr=0.01, schedule="paper-scaled")
    assert math.isclose(lr_at(80, 100, short), 0.0096)  # 31 decays squeezed into 25 epochs
    assert math.isclose(lr_at(2499, 100, short), 0.01 * 0.96**31)
    sized = TrainConfig(data="x", epochs=25, lr=0.01, schedule="paper-scaled", lr_step_size=8)
    assert math.isclose(lr_at(2499, 100, sized), 0.01 * 0.96**3)


def test_cosine_step_and_warmup():
    cosine = TrainConfig(data="x", epochs=10, lr=0.1, schedule="cosine")
    assert lr_at(0, 10, cosine) == 0.1
    assert math.isclose(lr_at(50, 10, cosine), 0.05)
    assert lr_at(100, 10, cosine) < 1e-12
    assert lr_at(150, 10, cosine) < 1e-12  # past the end it stays at 0, does not rise again
    step = TrainConfig(data="x", epochs=90, lr=0.1, schedule="step")
    assert math.isclose(lr_at(300, 10, step), 0.01) and lr_at(299, 10, step) == 0.1
    halving = TrainConfig(data="x", epochs=90, lr=0.1, schedule="step", lr_gamma=0.5)
    assert math.isclose(lr_at(300, 10, halving), 0.05)  # --lr-gamma replaces the default 0.1
    paper = TrainConfig(data="x", epochs=250, lr=0.01, lr_gamma=0.9)
    assert math.isclose(lr_at(1600, 100, paper), 0.01 * 0.9**2)  # and the paper's 0.96
    warm = TrainConfig(data="x", epochs=10, lr=0.1, schedule="cosine", warmup_epochs=2)
    assert math.isclose(lr_at(0, 10, warm), 0.1 * cosine_at(0) / 20)
    assert math.isclose(lr_at(9, 10, warm), lr_at(9, 10, cosine) * 10 / 20)
    assert lr_at(20, 10, warm) == lr_at(20, 10, cosine)


def cosine_at(epoch: float, epochs: int = 10) -> float:
    return 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def test_loss_is_main_plus_03_times_the_auxiliary_losses():
    torch.manual_seed(0)
    logits, a1, a2 = torch.randn(3, 6, 5).unbind(0)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    ce = torch.nn.CrossEntropyLoss()
    total, main, l1, l2 = googlenet_loss(GoogLeNetOutputs(logits, a1, a2), y, ce, 0.3)
    assert torch.allclose(total, ce(logits, y) + 0.3 * (ce(a1, y) + ce(a2, y)))
    assert torch.equal(main, ce(logits, y)) and torch.equal(l1, ce(a1, y))
    by_default = googlenet_loss(GoogLeNetOutputs(logits, a1, a2), y, ce)[0]  # the paper's 0.3
    assert torch.allclose(by_default, ce(logits, y) + 0.3 * (ce(a1, y) + ce(a2, y)))
    total, main, l1, l2 = googlenet_loss(GoogLeNetOutputs(logits, None, None), y, ce, 0.3)
    assert torch.equal(total, ce(logits, y)) and l1 is None and l2 is None


def test_config_checks_its_arguments():
    with pytest.raises(googlenet.ConfigError, match="--freeze-trunk needs --weights"):
        TrainConfig(data="x", freeze_trunk=True)
    with pytest.raises(googlenet.ConfigError, match="--scale"):
        TrainConfig(data="x", scale=(0.5, 0.2))


# ---------------------------------------------------------------------------------------------
# A whole run
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_writes_a_complete_run(tmp_path, run_cli):
    make_dataset(tmp_path / "data")
    proc = run_cli(
        *train_args("data", "run", 2, "--polyak"),
        check=True,
    )
    run = tmp_path / "run"
    for name in (
        "last.pt",
        "best.pt",
        "final.safetensors",
        "best.safetensors",
        "polyak.safetensors",
        "metrics.csv",
        "metrics.jsonl",
        "loss.png",
        "accuracy.png",
        "config.json",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert "epoch 2/2" in proc.stderr and "done: 2 epoch(s)" in proc.stdout

    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert CHECKPOINT_KEYS <= set(ckpt) and ckpt["epoch"] == 2 and ckpt["step"] == 6
    assert ckpt["args"]["epochs"] == 2 and ckpt["config"]["class_names"] == ("a", "b", "c")
    assert len(ckpt["rng"]) == 1 and set(ckpt["rng"][0]) == {"torch", "cuda", "numpy", "python"}

    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in (
        "train_loss",
        "train_loss_main",
        "train_loss_aux1",
        "train_loss_aux2",
        "lr",
        "val_top1",
        "polyak_top1",
        "images_per_s",
        "epoch_time_s",
    ):
        assert math.isfinite(float(rows[1][key])), key
    jsonl = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # Three classes: top-5 is always 100%, so it is n/a in the log, the files and the plot.
    assert rows[1]["val_top5"] == "" and jsonl[1]["val_top5"] is None
    assert "top-5 n/a" in proc.stderr
    assert jsonl[1]["val_top1"] == pytest.approx(float(rows[1]["val_top1"]))
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"

    model = googlenet.load(run / "final.safetensors")
    assert model.config.class_names == ("a", "b", "c") and model.config.input_size == 32
    assert googlenet.load(run / "last.pt").config.class_names == ("a", "b", "c")
    config = json.loads((run / "config.json").read_text())
    assert config["args"]["polyak"] is True and config["data"]["train_images"] == 12


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, run_cli):
    """Stopped after epoch 1 and resumed (with another number of loader workers), a run ends
    with bitwise the same weights, average and metrics as the run that never stopped."""
    make_dataset(tmp_path / "data")
    common = [
        "train",
        "--data",
        "data",
        "--polyak",
        "--schedule",
        "step",
        "--lr-step-size",
        "1",
        "--lr-gamma",
        "0.5",
        *FAST,
    ]
    run_cli(*common, "--epochs", "2", "--output-dir", "a", check=True)
    run_cli(*common, "--epochs", "1", "--output-dir", "b", check=True)

    resumed = run_cli(
        *common, "--epochs", "2", "--output-dir", "b", "--resume", "auto", "-j", "1", check=True
    )
    assert "epoch 2/2" in resumed.stderr and "epoch 1/2" not in resumed.stderr
    for name in ("final.safetensors", "polyak.safetensors"):
        a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    rows_a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    timing = {"images_per_s", "epoch_time_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows_a] == [
        {k: v for k, v in r.items() if k not in timing} for r in rows_b
    ]


@pytest.mark.slow
def test_a_finished_run_is_not_overwritten_and_a_nan_loss_keeps_the_last_checkpoint(
    tmp_path, run_cli, monkeypatch, capsys
):
    make_dataset(tmp_path / "data")
    run_cli(*train_args("data", "run", 1), check=True)
    before = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    monkeypatch.chdir(tmp_path)
    line = cli_error(capsys, "train", "--data", "data", "--output-dir", "run", "--epochs", "2")
    assert "output directory run already holds a run (last.pt)" in line and "--resume" in line

    proc = run_cli(
        *train_args("data", "run", 3, "--resume", "auto", "--lr", "1e12"),
    )
    assert "loss became NaN or infinite in epoch 2" in one_line_error(proc)
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert after["epoch"] == 1
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])


# ---------------------------------------------------------------------------------------------
# Fine-tuning
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fine_tune_torchvision_weights_with_a_frozen_trunk(tmp_path, run_cli):
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.googlenet(
        weights=None, aux_logits=True, init_weights=True, num_classes=7
    )
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    make_dataset(tmp_path / "data")
    run_cli(
        "train",
        "--data",
        "data",
        "--output-dir",
        "run",
        "--weights",
        "tv.pth",
        "--freeze-trunk",
        "--epochs",
        "1",
        "--lr",
        "0.1",
        *FAST,
        check=True,
    )
    tuned = load_file(tmp_path / "run" / "final.safetensors")
    original = googlenet.convert_torchvision_state_dict(tv.state_dict())
    assert tuned["fc.weight"].shape == (3, 1024)
    assert not any(k.startswith("aux") for k in tuned)  # a frozen trunk drops the aux heads
    trunk = [k for k in tuned if not k.startswith("fc.")]
    assert trunk and all(torch.equal(tuned[k], original[k]) for k in trunk)  # BN stats too
    model = googlenet.load(tmp_path / "run" / "final.safetensors")
    assert model.config.preset == "torchvision" and model.config.class_names == ("a", "b", "c")


@pytest.mark.slow
def test_fine_tune_our_weights_to_other_classes_keeps_the_aux_heads(tmp_path, run_cli):
    make_dataset(tmp_path / "data")
    make_dataset(tmp_path / "data2", classes=("p", "q", "r", "s"))
    run_cli(*train_args("data", "run", 1), check=True)
    proc = run_cli(
        *train_args("data2", "run2", 1, "--weights", "run/final.safetensors"),
        check=True,
    )
    assert "classifier re-initialized for 4 classes" in proc.stderr
    first = load_file(tmp_path / "run" / "final.safetensors")
    tuned = load_file(tmp_path / "run2" / "final.safetensors")
    assert tuned["fc.weight"].shape == (4, 1024) and tuned["aux1.fc2.weight"].shape == (4, 1024)
    assert tuned["aux1.fc1.weight"].shape == first["aux1.fc1.weight"].shape
    assert not torch.equal(tuned["conv1.conv.weight"], first["conv1.conv.weight"])  # trained
    assert googlenet.load(tmp_path / "run2" / "final.safetensors").config.class_names == (
        "p",
        "q",
        "r",
        "s",
    )


# ---------------------------------------------------------------------------------------------
# Speed paths on the CPU: the same code that runs on CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # torch.compile: ~40 s on the busy 2-core machine
def test_bf16_channels_last_and_compile_train(tmp_path):
    seen = _first_step(tmp_path, amp="bf16", channels_last=True, compile="aot_eager", polyak=True)
    # each setting took effect in the step: the network ran compiled, on a channels_last batch,
    # under bf16 autocast (the logits reaching the loss are bf16)
    assert "OptimizedModule" in seen["called"], seen["called"]
    x = seen["input"]
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert seen["loss_dtype"] == torch.bfloat16
    weights = load_file(tmp_path / "run" / "final.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert not any(k.startswith("_orig_mod") for k in weights)


@pytest.mark.slow
def test_fp16_uses_a_grad_scaler(tmp_path, run_cli):
    make_dataset(tmp_path / "data")
    run_cli(
        *train_args("data", "run", 1, "--amp", "fp16"),
        check=True,
    )
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["scaler"]["scale"] > 0


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def cli_error(capsys, *args: str) -> str:
    """Run the CLI in this process (no interpreter start-up); expect a one-line user error."""
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def test_bad_data_directories_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    make_dataset(tmp_path / "noimages")
    (tmp_path / "noimages" / "train" / "d").mkdir()
    make_dataset(tmp_path / "extraval")
    make_image_folder(tmp_path / "extraval" / "val", classes=("zzz",))
    cases = {
        "missing": "data directory missing does not exist",
        "empty": "has no train/ folder",
        "noimages": "class folder noimages/train/d has no images",
        "extraval": "class folder(s) zzz that the training set lacks",
    }
    for folder, message in cases.items():
        line = cli_error(capsys, "train", "--data", folder, "--epochs", "1", *FAST)
        assert line.startswith("googlenet train: error: ") and message in line, folder
        assert not (tmp_path / "runs").exists()


def test_a_single_image_cannot_train_a_batchnorm_network(tmp_path, monkeypatch, capsys):
    """The last batch is kept unless it would break training: one image and BatchNorm. With a
    single image there is nothing else, and that is one line."""
    monkeypatch.chdir(tmp_path)
    make_image_folder(tmp_path / "data" / "train", classes=("a",), per_class=1)
    args = ["train", "--data", "data", "--epochs", "1", "--preset", "paper-bn", *FAST]
    assert "which BatchNorm cannot normalize" in cli_error(capsys, *args)


@pytest.mark.slow
def test_small_data_keeps_its_last_batch_unless_batchnorm_would_see_one_image(tmp_path, run_cli):
    make_dataset(tmp_path / "data", train=3)  # 9 images: batches of 4, 4 and 1
    lrn = run_cli(*train_args("data", "lrn", 1, "-b", "8"), check=True)  # 8 + 1: kept
    assert json.loads((tmp_path / "lrn" / "metrics.jsonl").read_text())["step"] == 2
    assert "leaves out" not in lrn.stderr
    bn = run_cli(*train_args("data", "bn", 1, "--preset", "paper-bn"), check=True)
    assert "each epoch leaves out 1 image per process (1 of 9)" in bn.stderr
    assert json.loads((tmp_path / "bn" / "metrics.jsonl").read_text())["step"] == 2


@pytest.mark.slow
def test_unreadable_images_are_skipped_and_counted_or_stop_with_strict(tmp_path, run_cli):
    make_dataset(tmp_path / "data")
    (tmp_path / "data" / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "data" / "train" / "b" / "notes.txt").write_text("not an image")
    proc = run_cli(
        "train",
        "--data",
        "data",
        "--output-dir",
        "run",
        "--epochs",
        "1",
        "--lr",  # the paper preset at 0.01 (no decay in one epoch) can diverge on 13 images
        "0.001",
        "--print-freq",
        "1",
        "--input-size",
        "32",
        "-b",
        "2",
        "-j",
        "1",
        check=True,
    )
    assert "ignored 1 file(s) without an image extension" in proc.stderr
    assert "broken.png: not a readable image" in proc.stderr
    assert "epoch 1: skipped 1 unreadable image(s)" in proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert rows[0]["skipped"] == "1"

    strict = run_cli(
        *train_args("data", "run2", 1, "--strict"),
        "-b",
        "2",
    )
    assert "broken.png: not a readable image" in one_line_error(strict)
    assert "--strict" in strict.stderr


def test_out_of_memory_suggests_a_smaller_batch(tmp_path, monkeypatch, capsys):
    make_dataset(tmp_path / "data")

    def oom(self, x, return_aux=False):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(googlenet.GoogLeNet, "forward", oom)
    line = cli_error(
        capsys,
        "train",
        "--data",
        tmp_path / "data",
        "--output-dir",
        tmp_path / "run",
        "--epochs",
        "1",
        *FAST,
        "-b",
        "8",
    )
    assert "out of memory on cpu with -b 8" in line and "try -b 4" in line


@pytest.mark.slow
def test_training_without_a_val_folder(tmp_path, run_cli):
    make_image_folder(tmp_path / "data" / "train")
    proc = run_cli(*train_args("data", "run", 1), check=True)
    assert "no validation set" in proc.stderr
    assert (tmp_path / "run" / "final.safetensors").is_file()
    assert not (tmp_path / "run" / "best.safetensors").exists()


def test_polyak_average_ramps_up_and_handles_batchnorm_buffers():
    from googlenet.train import polyak_average

    torch.manual_seed(0)
    model = googlenet.create_model("paper-bn", num_classes=3, input_size=32)
    average = polyak_average(model, decay=0.999)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average.update_parameters(model)  # the first update copies
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(2, 3, 32, 32))  # moves the BatchNorm statistics
    average.update_parameters(model)  # n = 1: decay min(0.999, 2/11)
    averaged = average.module.state_dict()
    d = 2 / 11
    w = "conv1.conv.weight"
    assert torch.allclose(averaged[w], d * start[w] + (1 - d) * model.state_dict()[w])
    rm = "conv1.bn.running_mean"
    assert torch.allclose(averaged[rm], d * start[rm] + (1 - d) * model.state_dict()[rm])
    assert averaged["conv1.bn.num_batches_tracked"] == 1


def test_resuming_with_other_classes_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path / "data")
    model = googlenet.create_model("paper", num_classes=3, class_names=("x", "y", "z"))
    ckpt = {
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "optimizer": {},
        "epoch": 1,
        "rng": [],
    }
    torch.save(ckpt, tmp_path / "other.pt")
    line = cli_error(capsys, "train", "--data", "data", "--resume", "other.pt", *FAST)
    assert "trained on classes [x, y, z] (3), the data has [a, b, c] (3)" in line


def test_progress_bar_on_a_terminal_plain_lines_otherwise(monkeypatch):
    from tqdm import tqdm

    from googlenet.runtime.distributed import Dist
    from googlenet.train.loop import _progress

    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert isinstance(_progress([1, 2], 0, 1, Dist()), tqdm)
    assert _progress([1, 2], 0, 1, Dist(rank=1, world=2)) == [1, 2]  # rank 0 only
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert _progress([1, 2], 0, 1, Dist()) == [1, 2]


# ---------------------------------------------------------------------------------------------
# The recipe as a real run applies it: one step of train() observed through torch's global hooks
# ---------------------------------------------------------------------------------------------


def _first_step(tmp_path, **overrides) -> dict:
    """Run ``train`` on 8 images in one batch of 8 (classes a: 4, b: 2, c: 2) and capture from the
    first training step: the network (from its forward in training mode), its outputs and input
    batch, the modules called, the dtype reaching the loss, and at the optimizer step each
    parameter's weight decay in the optimizer's groups and its gradient."""
    from torch.nn.modules.module import (
        register_module_forward_hook,
        register_module_forward_pre_hook,
    )
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from googlenet.train import train

    make_image_folder(tmp_path / "data" / "train", per_class=2, seed=0)
    make_image_folder(tmp_path / "data" / "train", classes=("a",), per_class=2, seed=2)
    seen: dict = {}

    def on_forward(module, args, out):
        if not module.training:
            return
        if isinstance(module, googlenet.GoogLeNet) and "out" not in seen:
            seen["model"], seen["out"] = module, out
        if isinstance(module, torch.nn.CrossEntropyLoss) and "loss_dtype" not in seen:
            seen["loss_dtype"] = args[0].dtype
        seen.setdefault("called", set()).add(type(module).__name__)

    def before_forward(module, args):
        if module.training and "input" not in seen:  # the outermost module's call comes first
            seen["input"] = args[0]

    def on_step(optimizer, args, kwargs):
        if "decay" not in seen:
            groups = optimizer.param_groups
            seen["decay"] = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
            seen["count"] = sum(len(g["params"]) for g in groups)
            seen["grad"] = {id(p): p.grad.detach().clone() for g in groups for p in g["params"]}

    hooks = [
        register_module_forward_pre_hook(before_forward),
        register_module_forward_hook(on_forward),
        register_optimizer_step_pre_hook(on_step),
    ]
    try:
        cfg = TrainConfig(
            data=str(tmp_path / "data"), output_dir=str(tmp_path / "run"), epochs=1,
            batch_size=8, workers=0, input_size=32, **overrides,
        )  # fmt: skip
        train(cfg)
    finally:
        for hook in hooks:
            hook.remove()
    seen["cfg"] = cfg
    return seen


def test_a_real_step_decays_weights_but_not_biases_or_norm_parameters(tmp_path):
    """Caffe's GoogLeNet: ``decay_mult: 0`` on every bias; BatchNorm's scale and shift are not
    decayed either. Whatever the groups' learning rates, each conv/linear weight is decayed by
    --weight-decay and every bias and norm parameter by 0."""
    seen = _first_step(tmp_path, preset="paper-bn")
    model, decay, cfg = seen["model"], seen["decay"], seen["cfg"]
    assert cfg.weight_decay > 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert seen["count"] == len(trainable) == len(decay)  # each parameter in one group
    kinds = {"weight": 0, "bias": 0, "norm": 0}
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            assert decay[id(m.weight)] == cfg.weight_decay, m
            kinds["weight"] += 1
            if m.bias is not None:
                assert decay[id(m.bias)] == 0, m
                kinds["bias"] += 1
        elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            assert decay[id(m.weight)] == 0 and decay[id(m.bias)] == 0, m
            kinds["norm"] += 1
    assert min(kinds.values()) > 0, kinds  # all three kinds were seen
    assert all(decay[id(p)] == 0 for p in trainable if p.dim() <= 1)


def test_a_real_step_uses_the_default_aux_weight_03(tmp_path):
    """The paper (section 5): loss = main + 0.3 x (aux1 + aux2), the default of TrainConfig and of
    --aux-weight. Each head's classifier bias only gets its own head's gradient, which for the
    mean cross-entropy is ``weight x (mean softmax - label frequencies)``: recomputed here from
    the step's outputs, the main head's weight must be 1 and each auxiliary head's 0.3."""
    assert TrainConfig(data="x").aux_weight == 0.3
    # fp32 (amp None): the gradients are then exact to ~1e-7 against differences of ~0.1.
    seen = _first_step(tmp_path, amp=None)
    out, grad = seen["out"], seen["grad"]
    frequencies = torch.tensor([4, 2, 2]) / 8  # one batch holds every image, in any order
    assert out.logits.shape == (8, 3)
    heads = zip((out.logits, out.aux1, out.aux2), seen["model"].classifiers(), strict=True)
    weights = []
    for logits, fc in heads:
        direction = logits.detach().float().softmax(1).mean(0) - frequencies
        g = grad[id(fc.bias)]
        weights.append(float(g @ direction / (direction @ direction)))
        # the gradient is that direction, not merely correlated with it
        assert torch.allclose(g, weights[-1] * direction, atol=1e-5), (g, direction)
    assert weights == pytest.approx([1.0, 0.3, 0.3], rel=1e-3)


def test_images_per_s_leaves_the_loaders_start_up_out(tmp_path, monkeypatch, capsys):
    """A loader that takes 1.5 s to its first batch (workers starting, a resumed epoch skipping
    its done batches): the epoch's time counts it, its images/s does not."""
    import time

    from googlenet import data

    make_dataset(tmp_path / "data")
    real = data.make_loader

    class SlowStart:
        def __init__(self, loader):
            self.loader = loader

        def __len__(self):
            return len(self.loader)

        def __getattr__(self, name):
            return getattr(self.loader, name)

        def __iter__(self):
            time.sleep(1.5)
            yield from self.loader

    monkeypatch.setattr(data, "make_loader", lambda *a, **k: SlowStart(real(*a, **k)))
    monkeypatch.chdir(tmp_path)
    assert cli.main(train_args("data", "run", 1)) == 0, capsys.readouterr().err
    (row,) = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    computing = 12 / row["images_per_s"]  # 12 training images
    assert row["epoch_time_s"] - computing >= 1.5  # the sleep: in the time, not in the speed


def test_no_best_checkpoint_keeps_the_best_weights_but_no_best_pt(tmp_path, monkeypatch, capsys):
    make_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert cli.main(train_args("data", "run", 1, "--no-best-checkpoint")) == 0
    run = tmp_path / "run"
    assert (run / "best.safetensors").is_file() and (run / "last.pt").is_file()
    assert not (run / "best.pt").exists()
    assert json.loads((run / "config.json").read_text())["args"]["best_checkpoint"] is False
    # and by default both, as before
    assert cli.main(train_args("data", "run2", 1)) == 0, capsys.readouterr().err
    assert (tmp_path / "run2" / "best.pt").is_file()
