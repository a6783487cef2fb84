"""The network: Table 1 shapes, parameter counts, the output contract, sizes, presets."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import googlenet
from googlenet import (
    ConfigError,
    GoogLeNetOutputs,
    InceptionModule,
    InputSizeError,
    NaiveInceptionModule,
    create_model,
)
from googlenet.analysis import table1

PRESETS = ["paper", "paper-bn", "torchvision"]

# Table 1 of the paper: row name -> output size (H, W, C) at 224x224 input.
TABLE1_OUTPUTS = {
    "conv1": (112, 112, 64),
    "maxpool1": (56, 56, 64),
    "conv2": (56, 56, 192),
    "maxpool2": (28, 28, 192),
    "inception3a": (28, 28, 256),
    "inception3b": (28, 28, 480),
    "maxpool3": (14, 14, 480),
    "inception4a": (14, 14, 512),
    "inception4b": (14, 14, 512),
    "inception4c": (14, 14, 512),
    "inception4d": (14, 14, 528),
    "inception4e": (14, 14, 832),
    "maxpool4": (7, 7, 832),
    "inception5a": (7, 7, 832),
    "inception5b": (7, 7, 1024),
    "avgpool": (1, 1, 1024),
    "dropout": (1, 1, 1024),
    "fc": (1, 1, 1000),
}


def n_params(module: nn.Module, skip_aux: bool = False) -> int:
    return sum(
        p.numel()
        for name, p in module.named_parameters()
        if not (skip_aux and name.startswith("aux"))
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_every_table1_row_has_the_papers_output_shape(preset):
    rows, aux_rows = table1(create_model(preset), 224)
    got = {r.name: tuple(r.output_shape[1:]) + (r.output_shape[0],) for r in rows}
    assert got == TABLE1_OUTPUTS
    assert [r.output_shape for r in aux_rows] == [[1000, 1, 1], [1000, 1, 1]]
    assert sum(r.depth for r in rows) == 22  # "22 layers deep when counting only layers with
    # parameters" (the paper, section 5)


def test_torchvision_preset_has_torchvisions_parameter_counts():
    ours = create_model("torchvision")
    theirs = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    assert n_params(ours) == n_params(theirs) == 13_004_888
    assert n_params(ours, skip_aux=True) == n_params(theirs, skip_aux=True) == 6_624_904


def test_paper_preset_parameter_count_matches_the_caffe_model():
    # SPEC section 3: 6,998,552 without the auxiliary heads (conv biases, true 5x5, no BN).
    assert n_params(create_model("paper"), skip_aux=True) == 6_998_552


def test_paper_preset_is_the_paper_network():
    model = create_model("paper")
    for lrn in (model.norm1, model.norm2):
        assert isinstance(lrn, nn.LocalResponseNorm)
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)
    assert model.inception4a.conv5x5.conv.kernel_size == (5, 5)
    assert model.maxpool4.kernel_size == 3 and model.maxpool4.ceil_mode
    assert model.dropout.p == 0.4 and model.aux1.dropout.p == 0.7
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    # Caffe's fillers: conv biases 0.2, classifier biases 0.
    assert torch.all(model.conv1.conv.bias == 0.2) and torch.all(model.fc.bias == 0)


def test_torchvision_preset_names_its_deviations():
    model = create_model("torchvision")
    assert model.norm1 is None and model.norm2 is None
    assert model.inception4a.conv5x5.conv.kernel_size == (3, 3)
    assert model.maxpool4.kernel_size == 2
    assert model.dropout.p == 0.2
    assert model.config.transform_input
    for preset, fn in googlenet.PRESETS.items():
        assert fn.__doc__ and ("deviation" in fn.__doc__.lower()), preset


@pytest.mark.parametrize("preset", PRESETS)
def test_gradient_reaches_every_parameter_with_42_classes(preset):
    torch.manual_seed(0)
    model = create_model(preset, num_classes=42).train()
    out = model(torch.randn(2, 3, 96, 96), return_aux=True)
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [torch.Size([2, 42])] * 3
    target = torch.tensor([3, 41])
    ce = nn.functional.cross_entropy
    loss = ce(out.logits, target) + 0.3 * (ce(out.aux1, target) + ce(out.aux2, target))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.parametrize("preset", PRESETS)
def test_output_contract_train_and_eval(preset):
    model = create_model(preset, num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    assert isinstance(model(x), torch.Tensor)  # plain call: logits, in training too
    model.eval()
    with torch.no_grad():
        logits = model(x)
        out = model(x, return_aux=True)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5)
    assert out.aux1 is None and out.aux2 is None  # no aux output in eval mode
    torch.testing.assert_close(out.logits, logits)


def test_aux_logits_false_builds_no_aux_heads():
    model = create_model("paper", num_classes=3, aux_logits=False).train()
    assert model.aux1 is None and model.aux2 is None
    assert not any(n.startswith("aux") for n, _ in model.named_parameters())
    out = model(torch.randn(2, 3, 64, 64), return_aux=True)
    assert out.aux1 is None and out.logits.shape == (2, 3)


def test_features_head_and_reset_classifier():
    model = create_model("paper", num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, 1024, 7, 7)
        assert model.forward_head(feats, pre_logits=True).shape == (1, 1024)
        torch.testing.assert_close(model.forward_head(feats), model(x))
    trunk = model.inception5b.conv1x1.conv.weight.clone()
    model.reset_classifier(7, class_names=[f"c{i}" for i in range(7)])
    assert model.num_classes == 7 and model.config.class_names[-1] == "c6"
    assert model.fc.out_features == model.aux1.fc2.out_features == model.aux2.fc2.out_features == 7
    assert torch.equal(model.inception5b.conv1x1.conv.weight, trunk)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@pytest.mark.parametrize("preset", ["paper", "torchvision"])
def test_too_small_input_names_the_smallest_size(preset):
    model = create_model(preset, num_classes=2).eval()
    smallest = model.min_input_size
    with torch.no_grad():
        assert model(torch.randn(1, 3, smallest, smallest)).shape == (1, 2)
        with pytest.raises(InputSizeError, match=f"smallest size that works is {smallest}x"):
            model(torch.randn(1, 3, smallest - 1, smallest + 20))
        with pytest.raises(InputSizeError, match="RGB"):
            model(torch.randn(1, 1, 64, 64))


def test_aux_head_pools_5x5_stride_3_at_14x14_and_adaptively_elsewhere():
    head = googlenet.InceptionAux(8, 3, pooling="paper").eval()
    x = torch.randn(1, 8, 14, 14)
    pooled = nn.functional.avg_pool2d(x, 5, stride=3)
    manual = head.fc2(head.relu(head.fc1(torch.flatten(head.conv(pooled), 1))))
    torch.testing.assert_close(head(x), manual)
    y = torch.randn(1, 8, 6, 6)  # 96x96 input: 4a is 6x6
    pooled = nn.functional.adaptive_avg_pool2d(y, 4)
    manual = head.fc2(head.relu(head.fc1(torch.flatten(head.conv(pooled), 1))))
    torch.testing.assert_close(head(y), manual)


def test_inception_modules_stand_alone():
    module = InceptionModule(192, 64, 96, 128, 16, 32, 32)
    naive = NaiveInceptionModule(192, 64, 128, 32)
    x = torch.randn(2, 192, 28, 28)
    assert module(x).shape == (2, module.out_channels, 28, 28) and module.out_channels == 256
    assert naive(x).shape == (2, 64 + 128 + 32 + 192, 28, 28)
    assert torch.all(module(x) >= 0)  # every branch ends in a ReLU (the pool branch via its proj)


def test_factory_rejects_unknown_presets_and_options():
    with pytest.raises(ConfigError, match="unknown preset 'resnet'.*paper"):
        create_model("resnet")
    with pytest.raises(ConfigError, match="unknown model option"):
        create_model("paper", kernel=7)
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("paper", num_classes=0)
    with pytest.raises(ConfigError, match="class names"):
        create_model("paper", num_classes=3, class_names=["a", "b"])


def test_overrides_change_the_architecture_by_name():
    model = create_model("paper", num_classes=4, dropout=0.5, conv5x5_kernel=3)
    assert model.dropout.p == 0.5 and model.inception3a.conv5x5.conv.kernel_size == (3, 3)


def test_naive_module_counts_its_channels_and_takes_batchnorm_only_when_asked():
    naive = NaiveInceptionModule(192, 64, 128, 32)
    # Figure 2a: the pool branch passes all 192 input channels through
    assert (naive.in_channels, naive.out_channels) == (192, 64 + 128 + 32 + 192)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in naive.modules())
    with_bn = NaiveInceptionModule(192, 64, 128, 32, batchnorm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules()) == 3


def test_reset_classifier_replaces_every_head_with_the_caffe_fillers():
    model = create_model("paper", num_classes=5, input_size=64)
    model.reset_classifier(3, ["x", "y", "z"])
    assert model.config.num_classes == 3 and model.config.class_names == ("x", "y", "z")
    heads = model.classifiers()
    assert heads == [model.fc, model.aux1.fc2, model.aux2.fc2]
    bound = (3 / 1024) ** 0.5  # Caffe's xavier on 1024 inputs; nn.Linear's own is 1/32 = 0.031
    for fc in heads:
        assert fc.weight.shape == (3, 1024)
        assert 0.95 * bound < float(fc.weight.detach().abs().max()) <= bound
        assert torch.all(fc.bias == 0)  # the classifiers' biases are 0 (the others' 0.2)
    out = model.train()(torch.randn(2, 3, 64, 64), return_aux=True)
    assert [tuple(t.shape) for t in out] == [(2, 3)] * 3
    model.reset_classifier(4)
    assert model.config.class_names is None and model.fc.out_features == 4


def test_reset_classifier_builds_the_new_heads_on_the_model_device():
    model = create_model("paper", num_classes=5, input_size=64).to("meta")
    model.reset_classifier(3)
    assert {fc.weight.device.type for fc in model.classifiers()} == {"meta"}


def test_a_standalone_aux_head_pools_as_the_paper_by_default():
    head = googlenet.InceptionAux(8, 3).eval()
    y = torch.randn(2, 8, 14, 14)
    pooled = nn.functional.avg_pool2d(y, 5, stride=3)  # 14x14 -> 4x4, the paper's 5x5/3
    manual = head.fc2(head.relu(head.fc1(torch.flatten(head.conv(pooled), 1))))
    torch.testing.assert_close(head(y), manual)
    assert head.conv.bn is None and head.conv.conv.bias is not None  # the paper: no BatchNorm
    assert googlenet.InceptionAux(8, 3, batchnorm=True).conv.bn.eps == 1e-3  # torchvision's
    assert googlenet.InceptionAux(8, 3, batchnorm=True, bn_eps=1e-5).conv.bn.eps == 1e-5


def test_feature_size_is_the_last_feature_maps_side():
    """Table 1: 7 x 7 x 1024 before the average pool at 224; at 64 what the trunk really gives."""
    model = create_model("paper", num_classes=3, input_size=64).eval()
    assert model.feature_size(224) == 7
    with torch.no_grad():
        side = model.forward_features(torch.randn(1, 3, 64, 64)).shape[-1]
    assert model.feature_size(64) == side == 2


def test_torchvision_preset_initializes_like_torchvision():
    """torchvision's init: every conv and linear weight normal(0, 0.01) truncated at +-2, BatchNorm
    1/0, and the Linear biases left at PyTorch's default (uniform +-1/sqrt(fan_in)), not zeroed.
    Built from the same seed, the layers are drawn in the same order, so the two networks are
    the same tensors, bit for bit (torchvision's keys mapped to ours)."""
    from googlenet.weights import convert_torchvision_state_dict

    torch.manual_seed(0)
    ours = create_model("torchvision", num_classes=10)
    torch.manual_seed(0)
    theirs = torchvision.models.googlenet(
        weights=None, num_classes=10, aux_logits=True, init_weights=True
    )
    expected = convert_torchvision_state_dict(theirs.state_dict())
    got = ours.state_dict()
    assert set(got) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(got[key], tensor), key
    bound = 1 / 1024**0.5
    assert 0 < float(ours.fc.bias.detach().abs().max()) <= bound  # PyTorch's default, not zeros


def test_the_configuration_reaches_every_layer_it_names():
    """``bn_eps``, ``aux_dropout`` and ``aux_pooling`` of GoogLeNetConfig are used by every layer
    they describe, not only as the blocks' defaults (which equal the presets' values)."""
    model = create_model("paper-bn", num_classes=3, bn_eps=1e-5, aux_dropout=0.5)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) > 50 and all(m.eps == 1e-5 for m in norms)
    assert model.aux1.dropout.p == model.aux2.dropout.p == 0.5
    y = torch.randn(1, 512, 14, 14)  # what 4a gives at 224
    for preset, pool in (
        ("paper", lambda t: nn.functional.avg_pool2d(t, 5, stride=3)),  # the paper's 5x5/3
        ("torchvision", lambda t: nn.functional.adaptive_avg_pool2d(t, 4)),  # its port's
    ):
        head = create_model(preset, num_classes=3).aux1.eval()
        with torch.no_grad():
            manual = head.fc2(head.relu(head.fc1(torch.flatten(head.conv(pool(y)), 1))))
            torch.testing.assert_close(head(y), manual)


def test_the_bare_constructors_are_the_paper_preset():
    """``GoogLeNetConfig()`` and ``GoogLeNet()`` are ``create_model("paper")``, input scale
    included (Caffe's 0-255 mean pixel, to which the LRN's alpha is tuned), and the other presets
    keep ImageNet's mean and std."""
    from googlenet import GoogLeNet, GoogLeNetConfig
    from googlenet.model import CAFFE_MEAN, CAFFE_STD, IMAGENET_MEAN

    assert GoogLeNetConfig() == googlenet.preset_config("paper")
    assert GoogLeNet().config == create_model("paper").config
    assert (GoogLeNetConfig().mean, GoogLeNetConfig().std) == (CAFFE_MEAN, CAFFE_STD)
    assert create_model("paper-bn").config.mean == IMAGENET_MEAN
    assert create_model("torchvision").config.mean == IMAGENET_MEAN
