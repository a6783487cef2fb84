"""GoogLeNet in torchvision's Faster R-CNN: one training step on synthetic images with boxes and
an eval forward, on a CPU, small images (the detector's min_size 64, max_size 96)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

import googlenet
from googlenet import ConfigError
from googlenet.detection import detection_backbone, fasterrcnn

SMALL = {"min_size": 64, "max_size": 96}


def _images_and_targets() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 72, 96, generator=g), torch.rand(3, 64, 64, generator=g)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 10.0, 90.0, 70.0]]),
         "labels": torch.tensor([1, 2])},
        {"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])},
    ]  # fmt: skip
    return images, targets


def _train_step_then_eval(detector) -> None:
    images, targets = _images_and_targets()
    detector.train()
    params = [p for p in detector.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    losses = detector(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, params, strict=True))
    detector.eval()
    with torch.no_grad():
        out = detector(images)
    assert len(out) == 2 and all(set(o) == {"boxes", "labels", "scores"} for o in out)
    assert all(o["boxes"].shape[1:] == (4,) for o in out)


@pytest.mark.parametrize("preset", ["paper", "paper-bn"])
def test_fasterrcnn_with_an_fpn_trains_a_step_and_detects(preset):
    torch.manual_seed(0)
    detector = fasterrcnn(num_classes=3, preset=preset, **SMALL)
    assert detector.backbone.out_channels == 256
    _train_step_then_eval(detector)


def test_the_single_map_form_trains_a_step_and_detects():
    torch.manual_seed(0)
    detector = fasterrcnn(num_classes=3, preset="paper-bn", fpn=False, **SMALL)
    assert detector.backbone.out_channels == 1024
    _train_step_then_eval(detector)


def test_a_classifiers_weights_fine_tune_a_detector_in_one_line(tmp_path):
    """The classifier's trunk, BatchNorm frozen (FrozenBatchNorm2d with its statistics), the top
    three stages trainable (torchvision's default for trained weights), its mean and std."""
    torch.manual_seed(0)
    classifier = googlenet.create_model("paper-bn", num_classes=5)
    with torch.no_grad():
        classifier.conv1.bn.running_var.fill_(2.0)
    googlenet.save_weights(classifier, tmp_path / "w.safetensors")

    detector = fasterrcnn(num_classes=3, weights=tmp_path / "w.safetensors", **SMALL)

    body = detector.backbone.body
    assert torch.equal(body.conv1.conv.weight, classifier.conv1.conv.weight)
    assert isinstance(body.conv1.bn, FrozenBatchNorm2d)
    assert torch.equal(body.conv1.bn.running_var, torch.full((64,), 2.0))
    trainable = {n.split(".")[0] for n, p in body.named_parameters() if p.requires_grad}
    assert trainable == {"inception3a", "inception3b"} | {f"inception4{c}" for c in "abcde"} | {
        "inception5a",
        "inception5b",
    }
    assert detector.transform.image_mean == list(classifier.config.mean)
    _train_step_then_eval(detector)


def test_the_backbone_is_a_top_level_name():
    assert googlenet.detection_backbone is detection_backbone


def test_trainable_layers_is_checked():
    with pytest.raises(ConfigError, match="trainable_layers must be 0 to 5"):
        detection_backbone("paper-bn", trainable_layers=6)
    frozen = detection_backbone("paper-bn", trainable_layers=0)
    assert not any(p.requires_grad for p in frozen.body.parameters())
