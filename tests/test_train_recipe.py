"""The recipe around the paper preset is Caffe's: its input scale (and so LRN's effect), its
per-parameter learning rates and decays, its ``poly`` schedule. Measured, not read from the
configuration."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

import googlenet
from googlenet.data import EvalTransform, normalize
from googlenet.model import IMAGENET_MEAN, IMAGENET_STD
from googlenet.runtime.distributed import Dist
from googlenet.train import TrainConfig, build_optimizer, lr_at, make_loop, train_step
from googlenet.train.recipe import replan

# Caffe's LRN in BVLC's train_val.prototxt: local_size 5, alpha 1e-4, beta 0.75 (k 1).
CAFFE_LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}


def _images(n: int = 4, size: int = 64) -> torch.Tensor:
    """uint8 photos-to-be: a random color per image plus noise, the whole 0-255 range used."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, 3, 1, 1, generator=g) * 255
    return (base + torch.randn(n, 3, size, size, generator=g) * 40).clamp(0, 255).to(torch.uint8)


def _pool1(model: googlenet.GoogLeNet, images: torch.Tensor) -> torch.Tensor:
    """What reaches the first LRN layer: conv1 (with its ReLU), then pool1."""
    x = normalize(images, model.config.mean, model.config.std)
    with torch.no_grad():
        return model.maxpool1(model.conv1(x))


def _caffe_lrn_scale(a: torch.Tensor) -> torch.Tensor:
    """Caffe's across-channel LRN factor, by hand: (k + alpha/n * sum of a^2 over the n channels
    centred on each one, zero-padded) ** -beta, the formula of Caffe's lrn_layer.cpp."""
    n, alpha, beta, k = (CAFFE_LRN[key] for key in ("size", "alpha", "beta", "k"))
    sq = a.double().square()
    padded = torch.nn.functional.pad(sq, (0, 0, 0, 0, n // 2, n // 2))
    window = sum(padded[:, i : i + sq.shape[1]] for i in range(n))
    return (k + alpha / n * window) ** -beta


def test_the_paper_preset_feeds_caffes_input_and_every_task_reads_it():
    """0-255 pixels minus the mean pixel (R 123, G 117, B 104), no division: recorded in the
    weights' configuration, which the evaluation transform (used by eval, export, predict's
    crops) reads."""
    model = googlenet.create_model("paper", num_classes=3, input_size=32)
    assert model.config.mean == pytest.approx((123 / 255, 117 / 255, 104 / 255))
    assert model.config.std == pytest.approx((1 / 255,) * 3)
    pixels = np.full((32, 32, 3), (200, 100, 50), dtype=np.uint8)
    x = EvalTransform.for_model(model.config)(Image.fromarray(pixels))
    expected = torch.tensor([200 - 123, 100 - 117, 50 - 104], dtype=torch.float32)
    assert torch.allclose(x.reshape(-1, 3, 32, 32)[0, :, 16, 16], expected, atol=1e-3)
    torchvision = googlenet.create_model("torchvision", num_classes=3)
    assert torchvision.config.mean == pytest.approx(IMAGENET_MEAN)


def test_lrn_changes_an_initialized_paper_network_as_much_as_caffes_would():
    """At Caffe's input scale the first LRN divides active units by a measured factor well away
    from 1, equal to Caffe's formula computed here by hand; at ImageNet-normalized input (what
    the preset fed before) it was the identity to 4 decimals."""
    torch.manual_seed(0)
    model = googlenet.create_model("paper", num_classes=10, input_size=64).eval()
    a = _pool1(model, _images())
    with torch.no_grad():
        measured = model.norm1(a).double()
    expected = a.double() * _caffe_lrn_scale(a)
    assert torch.allclose(measured, expected, rtol=1e-4, atol=1e-4)
    active = a > 0
    factor = (measured[active] / a.double()[active]).mean().item()
    assert factor < 0.95, factor  # Caffe's LRN does something at initialization

    torch.manual_seed(0)
    old = googlenet.create_model(
        "paper", num_classes=10, input_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD
    ).eval()
    a_old = _pool1(old, _images())
    with torch.no_grad():
        ratio = old.norm1(a_old)[a_old > 0] / a_old[a_old > 0]
    assert ratio.mean().item() > 0.999  # ~57x smaller input: LRN close to the identity


def _one_step(preset: str, **overrides) -> tuple[dict, dict, dict, float, float]:
    """One real training step (momentum 0, fp32): parameters before and after, gradients."""
    cfg = TrainConfig(data="-", preset=preset, momentum=0.0, amp="none", **overrides)
    torch.manual_seed(0)
    model = googlenet.create_model(preset, num_classes=5, input_size=64)
    loop = make_loop(cfg, model, Dist(), steps_per_epoch=10)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = normalize(_images(4), model.config.mean, model.config.std)
    train_step(loop, x, torch.tensor([0, 1, 2, 3]))
    after = dict(model.named_parameters())
    grads = {n: p.grad.detach().clone() for n, p in after.items() if p.grad is not None}
    return before, after, grads, cfg.lr, cfg.weight_decay


def _measured(before, after, grads, name: str, lr: float) -> tuple[float, float]:
    """(learning-rate multiplier, weight decay) that explain the step of parameter ``name``:
    SGD without momentum moves it by lr * mult * (grad + decay * value)."""
    delta = (before[name] - after[name].detach()).double().flatten()
    g, w = grads[name].double().flatten(), before[name].double().flatten()
    # least squares for delta = lr*mult*g + lr*mult*decay*w, two unknowns
    coef = torch.linalg.lstsq(torch.stack([g, w], 1) * lr, delta[:, None]).solution.flatten()
    mult = coef[0].item()
    return mult, coef[1].item() / mult


def test_biases_learn_at_twice_the_rate_without_decay_like_caffe():
    before, after, grads, lr, wd = _one_step("paper")
    for name in ("conv1.conv.bias", "inception3a.conv3x3.conv.bias", "fc.bias", "aux1.fc1.bias"):
        mult, decay = _measured(before, after, grads, name, lr)
        assert mult == pytest.approx(2.0, rel=1e-3), name
        assert abs(decay) < 1e-6, name
    for name in ("conv1.conv.weight", "inception3a.conv3x3.conv.weight", "fc.weight"):
        mult, decay = _measured(before, after, grads, name, lr)
        assert mult == pytest.approx(1.0, rel=1e-3), name
        assert decay == pytest.approx(wd, rel=1e-2), name


def test_bias_lr_mult_is_a_flag_and_the_torchvision_recipe_keeps_one():
    before, after, grads, lr, _ = _one_step("paper", bias_lr_mult=1.0)
    assert _measured(before, after, grads, "fc.bias", lr)[0] == pytest.approx(1.0, rel=1e-3)
    before, after, grads, lr, _ = _one_step("torchvision")
    mult, decay = _measured(before, after, grads, "fc.bias", lr)
    # no decay: the fit's rounding noise (~1e-6, the bias being PyTorch's nonzero default) is
    # 1% of the weights' 2e-4
    assert mult == pytest.approx(1.0, rel=1e-3) and abs(decay) < 1e-5


def test_poly_schedule_is_caffes():
    """Caffe's "poly": base_lr * (1 - iter / max_iter) ^ power, over the whole run."""
    cfg = TrainConfig(data="-", schedule="poly", poly_power=0.5, epochs=4, lr=0.01)
    steps = 10
    assert lr_at(0, steps, cfg) == pytest.approx(0.01)
    assert lr_at(20, steps, cfg) == pytest.approx(0.01 * math.sqrt(0.5))
    assert lr_at(39, steps, cfg) == pytest.approx(0.01 * math.sqrt(1 / 40))
    rates = [lr_at(s, steps, cfg) for s in range(40)]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))


def test_cpu_threads_are_the_idle_cpus(tmp_path, monkeypatch):
    """``--threads auto`` computes on the CPUs that are idle (another process's core is left to
    it), and a machine whose load cannot be read keeps every CPU."""
    from googlenet.runtime import device

    assert device.cpu_threads(2, 2.0) == 2
    assert device.cpu_threads(2, 1.1) == 1  # one other CPU-bound process on two cores
    assert device.cpu_threads(2, 0.1) == 1  # a fully busy machine: still one
    assert device.cpu_threads(8, None) == 8
    stat = tmp_path / "stat"
    cores = "cpu0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n"
    stat.write_text("cpu 10 0 10 100 0 0 0 0 0 0\n" + cores)
    # over the interval: 20 jiffies user, 20 system, 40 idle of 80 on 2 CPUs: one CPU idle
    later = "cpu 30 0 30 140 0 0 0 0 0 0\n" + cores
    monkeypatch.setattr(device.time, "sleep", lambda s: stat.write_text(later))
    assert device.idle_cpus(0.1, stat) == pytest.approx(1.0)
    assert device.idle_cpus(0.0, tmp_path / "missing") is None


def test_batchnorm_parameters_learn_at_the_base_rate_without_decay():
    """paper-bn: BatchNorm's scale and shift are neither biases of a convolution (no 2x rate)
    nor weights (no decay): rate multiplier 1 and decay 0, measured from a real step."""
    before, after, grads, lr, _ = _one_step("paper-bn")
    for name in ("conv1.bn.weight", "inception3a.conv3x3.bn.weight", "aux1.conv.bn.weight"):
        mult, decay = _measured(before, after, grads, name, lr)
        assert mult == pytest.approx(1.0, rel=1e-3), name
        assert abs(decay) < 1e-6, name
    # The shifts start at 0, so the step measures their rate only: delta = lr * mult * grad.
    name = "conv1.bn.bias"
    mult, _ = _measured(before, after, grads, name, lr)
    assert mult == pytest.approx(1.0, rel=1e-3), name


def test_sgd_uses_the_papers_momentum_09():
    """Section 6: "asynchronous stochastic gradient descent with 0.9 momentum", in every group
    of the optimizer that training builds (TrainConfig's default and --momentum)."""
    model = googlenet.create_model("paper", num_classes=5, input_size=64)
    assert TrainConfig(data="-").momentum == 0.9
    for momentum in (0.9, 0.5):
        optimizer = build_optimizer(model, TrainConfig(data="-", momentum=momentum))
        assert isinstance(optimizer, torch.optim.SGD)
        assert len(optimizer.param_groups) == 2  # weights; biases (no norm layers in "paper")
        assert [g["momentum"] for g in optimizer.param_groups] == [momentum, momentum]


# ---------------------------------------------------------------------------------------------
# A resumed run whose length changed (--resume with another --epochs): the schedule goes on
# ---------------------------------------------------------------------------------------------


def _cosine(lr: float, t: float) -> float:
    """Half a cosine from ``lr`` at ``t = 0`` to 0 at ``t = 1``, by hand."""
    return lr * 0.5 * (1 + math.cos(math.pi * t))


@pytest.mark.parametrize("old_epochs, new_epochs", [(4, 8), (8, 4)])
def test_a_longer_or_shorter_cosine_run_decays_from_its_last_rate_to_zero(old_epochs, new_epochs):
    """Resumed at step 20 (10 steps an epoch): the rate the run last used (step 19 of the old
    cosine) goes down to 0 at the new end along half a cosine. The steps before 20, never taken
    again, follow the plain cosine of the new length (the re-plan starts where it says)."""
    old = TrainConfig(data="-", schedule="cosine", lr=0.1, epochs=old_epochs)
    new = replan(dataclasses.replace(old, epochs=new_epochs), old, 20, 10)
    last = _cosine(0.1, 1.9 / old_epochs)  # the old schedule at step 19, epoch 1.9
    assert new.replan_step == 20 and new.replan_lr == pytest.approx(last)
    remaining = new_epochs * 10 - 20
    for step in (20, 21, 20 + remaining // 2, 20 + remaining - 1, 20 + remaining):
        expected = _cosine(last, (step - 20) / remaining)
        assert lr_at(step, 10, new) == pytest.approx(expected, abs=1e-12), step
    for step in (0, 10, 19):
        expected = _cosine(0.1, step / 10 / new_epochs)
        assert lr_at(step, 10, new) == pytest.approx(expected, abs=1e-12), step


def test_a_longer_poly_run_decays_from_its_last_rate_with_its_power():
    old = TrainConfig(data="-", schedule="poly", poly_power=0.5, lr=0.01, epochs=2)
    new = replan(dataclasses.replace(old, epochs=4), old, 10, 10)
    last = 0.01 * (1 - 9 / 20) ** 0.5  # Caffe's poly at step 9 of 20
    assert lr_at(10, 10, new) == pytest.approx(last)
    assert lr_at(25, 10, new) == pytest.approx(last * (1 - 15 / 30) ** 0.5)
    assert lr_at(40, 10, new) == 0.0
    assert lr_at(45, 10, new) == 0.0  # past the end it stays at 0


def test_a_replan_at_the_first_step_starts_from_the_base_rate():
    old = TrainConfig(data="-", schedule="cosine", lr=0.1, epochs=2)
    new = replan(dataclasses.replace(old, epochs=3), old, 0, 10)
    assert new.replan_step == 0 and new.replan_lr == pytest.approx(0.1)
    assert lr_at(15, 10, new) == pytest.approx(_cosine(0.1, 0.5))


def test_a_replanned_schedule_ends_at_zero_with_one_step_left_and_stays_at_a_zero_rate():
    old = TrainConfig(data="-", schedule="cosine", lr=0.1, epochs=2)
    new = replan(old, old, 19, 10)  # one step (19) remains
    assert lr_at(19, 10, new) == pytest.approx(_cosine(0.1, 18 / 20))
    assert lr_at(20, 10, new) == pytest.approx(0.0, abs=1e-12)
    stopped = dataclasses.replace(old, replan_step=10, replan_lr=0.0)  # re-planned from rate 0
    assert lr_at(15, 10, stopped) == 0.0


@pytest.mark.parametrize(
    "schedule, old_size", [("paper", 8.0), ("paper-scaled", 8 * 10 / 250), ("step", 30.0)]
)
def test_a_longer_step_schedule_keeps_the_pace_of_its_decays(schedule, old_size):
    """The paper's schedule decays every 8 x epochs / 250 epochs of the run as planned
    (torchvision's every 30): a longer run keeps that step size, not spreading the decays."""
    old = TrainConfig(data="-", schedule=schedule, lr=0.1, epochs=10)
    new = replan(dataclasses.replace(old, epochs=20), old, 50, 10)
    assert new.lr_step_size == pytest.approx(old_size)
    assert new.replan_step is None and new.replan_lr is None
    gamma = 0.96 if schedule.startswith("paper") else 0.1
    for step in (0, 50, 99, 150, 199):
        expected = 0.1 * gamma ** math.floor(step / 10 / old_size + 1e-9)
        assert lr_at(step, 10, new) == pytest.approx(expected), step
    # An explicit --lr-step-size of the old run is kept as it was.
    sized = dataclasses.replace(old, lr_step_size=3.0)
    assert replan(dataclasses.replace(sized, epochs=20), sized, 50, 10).lr_step_size == 3.0


# ---------------------------------------------------------------------------------------------
# Caffe's momentum and Polyak-Juditsky's average
# ---------------------------------------------------------------------------------------------


def _two_steps(style: str | None, preset: str = "paper"):
    """Two real training steps under poly with power 1 over 2 steps (the rate halves from step 0
    to step 1); the weights before, after each step, and each step's gradients."""
    cfg = TrainConfig(
        data="-", preset=preset, amp="none", schedule="poly", poly_power=1.0, epochs=1, lr=0.01,
        momentum_style=style, dropout=0.0, aux_dropout=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = googlenet.create_model(
        preset, num_classes=4, input_size=32, dropout=0.0, aux_dropout=0.0
    )
    loop = make_loop(cfg, model, Dist(), steps_per_epoch=2)
    x = normalize(_images(4, 32), model.config.mean, model.config.std)
    y = torch.tensor([0, 1, 2, 3])
    params = dict(model.named_parameters())
    w = [{n: p.detach().clone() for n, p in params.items()}]
    g = []
    for _ in range(2):
        train_step(loop, x, y)
        g.append({n: p.grad.detach().clone() for n, p in params.items()})
        w.append({n: p.detach().clone() for n, p in params.items()})
    return w, g, cfg


def test_caffe_momentum_is_the_paper_presets_default_and_is_caffes_update():
    """Caffe's SGDSolver, by hand: v = m v + lr_mult lr (g + wd w); w -= v (v = 0 at first).
    The rates of the two steps are 0.01 and 0.005 (poly), so PyTorch's update, v = m v + g;
    w -= lr v, differs in the second step by m (lr1 - lr0) v: the test can tell them apart."""
    m, wd = 0.9, 2e-4
    w, g, cfg = _two_steps(None)  # the paper preset's default
    assert lr_at(0, 2, cfg) == 0.01 and lr_at(1, 2, cfg) == 0.005
    differ = 0
    rates = [("fc.weight", 1, wd), ("fc.bias", 2, 0.0), ("conv1.conv.weight", 1, wd)]
    rates.append(("inception4a.conv1x1.conv.bias", 2, 0.0))  # Caffe's lr_mult 2, decay_mult 0
    for name, mult, decay in rates:
        v = mult * 0.01 * (g[0][name] + decay * w[0][name])
        expected1 = w[0][name] - v
        v = m * v + mult * 0.005 * (g[1][name] + decay * w[1][name])
        expected2 = w[1][name] - v
        torch.testing.assert_close(w[1][name], expected1, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(w[2][name], expected2, rtol=1e-5, atol=1e-7)
        # PyTorch's update from the same weights and gradients
        b = g[0][name] + decay * w[0][name]
        b = m * b + g[1][name] + decay * w[1][name]
        pytorch2 = w[1][name] - mult * 0.005 * b
        differ += not torch.allclose(pytorch2, expected2, rtol=1e-5, atol=1e-7)
    assert differ == 4  # the two rules are different updates: the default is a real choice


def test_pytorch_momentum_is_torchs_sgd_and_the_torchvision_presets_default():
    m = 0.9
    for style, preset in (("pytorch", "paper"), (None, "torchvision")):
        w, g, _ = _two_steps(style, preset)
        name = "fc.weight"
        b = g[0][name] + 2e-4 * w[0][name]
        b = m * b + g[1][name] + 2e-4 * w[1][name]
        torch.testing.assert_close(w[2][name], w[1][name] - 0.005 * b, rtol=1e-5, atol=1e-7)


def test_caffe_momentum_survives_a_resume_of_the_optimizer_state():
    """SGD's buffer and the rate it was written at travel in the optimizer's state dict: a
    fresh optimizer loaded from it takes the same next step."""
    from googlenet.train.recipe import set_lr

    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5))
    opts = [torch.optim.SGD([p], lr=0.1, momentum=0.9) for _ in range(2)]
    p.grad = torch.ones(5)
    set_lr(opts[0], 0.1, "caffe")
    opts[0].step()
    opts[1].load_state_dict(copy.deepcopy(opts[0].state_dict()))  # as torch.load gives it back
    buffers = []
    for opt in opts:
        set_lr(opt, 0.05, "caffe")
        buffers.append(opt.state[p]["momentum_buffer"].clone())
    # v_caffe = 0.1 after the first step; in SGD's units at the new rate, 0.1 / 0.05 = 2
    assert torch.equal(buffers[0], buffers[1])
    assert torch.allclose(buffers[0], torch.full((5,), 2.0))


def test_polyak_average_is_the_arithmetic_mean_of_the_iterates():
    """``--average polyak``: each iterate from --polyak-start on counts the same (Polyak and
    Juditsky); the EMA would weight the last ones most."""
    cfg = TrainConfig(
        data="-", preset="paper", amp="none", polyak=True, average="polyak", polyak_start=0.5,
        lr=0.01, epochs=1, dropout=0.0, aux_dropout=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = googlenet.create_model(
        "paper", num_classes=4, input_size=32, dropout=0.0, aux_dropout=0.0
    )
    loop = make_loop(cfg, model, Dist(), steps_per_epoch=4)
    x = normalize(_images(4, 32), model.config.mean, model.config.std)
    seen = []
    for _ in range(4):
        train_step(loop, x, torch.tensor([0, 1, 2, 3]))
        seen.append(model.fc.weight.detach().clone())
    averaged = loop.polyak.module.fc.weight
    torch.testing.assert_close(averaged, (seen[2] + seen[3]) / 2)  # steps 2 and 3 of 4
    assert int(loop.polyak.n_averaged) == 2


@pytest.mark.parametrize(
    "field, value, message",
    [("momentum_style", "nesterov", "--momentum-style must be one of caffe, pytorch"),
     ("average", "swa", "--average must be one of ema, polyak"),
     ("polyak_start", -1.0, "--polyak-start must be 0 or more")],
)  # fmt: skip
def test_bad_momentum_and_average_choices_are_one_line_errors(field, value, message):
    with pytest.raises(googlenet.ConfigError, match=message):
        TrainConfig(data="-", **{field: value})
