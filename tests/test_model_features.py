"""The network as a backbone, timm's way: ``create_model(..., features_only=True, out_indices=...)``
returns the maps at strides 2 to 32 with ``feature_info``; ``forward_intermediates`` gives the
maps and the logits in one pass; a classifier's weights load into the backbone."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.feature_extraction import create_feature_extractor

import googlenet
from googlenet import ConfigError, GoogLeNetFeatures, create_model

PRESETS = list(googlenet.PRESETS)
X = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("preset", PRESETS)
def test_features_only_returns_the_maps_feature_info_describes(preset):
    model = create_model(preset, features_only=True).eval()
    maps = model(X)
    info = model.feature_info
    assert info.reduction() == [2, 4, 8, 16, 32]
    assert info.channels() == [64, 192, 480, 832, 1024]
    assert [tuple(m.shape) for m in maps] == [
        (2, c, 96 // r, 96 // r) for c, r in zip(info.channels(), info.reduction(), strict=True)
    ]
    keys = model.state_dict()
    assert not any(k.startswith(("aux1.", "aux2.", "fc.")) for k in keys)
    # the modules feature_info names are where the maps come from (create_feature_extractor)
    classifier = create_model(preset).eval()
    classifier.load_state_dict(model.state_dict(), strict=False)
    extractor = create_feature_extractor(classifier, return_nodes=info.module_name())
    for got, expected in zip(maps, extractor(X).values(), strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(
    "out_indices, strides",
    [((1, 2, 3, 4), [4, 8, 16, 32]), ((2,), [8]), (2, [16, 32]), ((-1,), [32])],
)
def test_out_indices_choose_the_maps_and_drop_the_layers_after_the_last(out_indices, strides):
    """An int n is timm's "the last n". Layers after the last map asked for are not kept, so
    every parameter gets a gradient (DDP without find_unused_parameters)."""
    model = create_model("paper-bn", features_only=True, out_indices=out_indices)
    assert model.feature_info.reduction() == strides
    maps = model(X)
    assert [96 // m.shape[-1] for m in maps] == strides
    sum(m.sum() for m in maps).backward()
    assert all(p.grad is not None for p in model.parameters())
    if strides[-1] == 8:
        assert not any(k.startswith("inception4") for k in model.state_dict())


@pytest.mark.parametrize("bad", [(), (0, 0), (5,), (1.5,), 0, 6])
def test_bad_out_indices_are_one_line_errors(bad):
    with pytest.raises(ConfigError, match="indices") as err:
        create_model("paper", features_only=True, out_indices=bad)
    assert "\n" not in str(err.value)


def test_a_classifiers_weights_make_its_backbone(tmp_path):
    """Weights trained for classification (saved and loaded as usual) give the backbone the same
    maps as the classifier's forward_intermediates, whose final features give its logits."""
    torch.manual_seed(0)
    classifier = create_model("paper-bn", num_classes=5).eval()
    googlenet.save_weights(classifier, tmp_path / "w.safetensors")
    loaded = googlenet.load(tmp_path / "w.safetensors").eval()
    backbone = GoogLeNetFeatures.from_model(loaded, out_indices=(1, 2, 3, 4))
    assert not backbone.training
    final, maps = classifier.forward_intermediates(X, indices=[1, 2, 3, 4])
    for got, expected in zip(backbone(X), maps, strict=True):
        assert torch.equal(got, expected)
    assert torch.equal(classifier.forward_head(final), classifier(X))
    only = classifier.forward_intermediates(X, indices=1, intermediates_only=True, stop_early=True)
    assert len(only) == 1 and torch.equal(only[0], maps[-1])


@pytest.mark.parametrize("preset", PRESETS)
def test_the_backbone_scripts_and_traces(preset):
    model = create_model(preset, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    expected = model(X)
    for form in (torch.jit.script(model), torch.fx.symbolic_trace(model)):
        for got, want in zip(form(X), expected, strict=True):
            torch.testing.assert_close(got, want)


def test_out_indices_without_features_only_is_an_error():
    with pytest.raises(ConfigError, match="features_only"):
        create_model("paper", out_indices=(1, 2))
