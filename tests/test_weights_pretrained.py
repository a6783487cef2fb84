"""googlenet.weights.pretrained: ``create_model("torchvision", weights="imagenet")``.

No network here: the real downloading code (torch.hub's, with its hash check) runs against a
``file://`` copy of a torchvision googlenet state dict that the test makes, named as torch.hub
requires (``<name>-<first hex digits of its sha256>.pth``), with TORCH_HOME in a tmp dir.
"""

from __future__ import annotations

import hashlib
import urllib.error

import pytest
import torch
import torchvision

import googlenet
from googlenet.weights import pretrained


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A torchvision googlenet state dict behind a file:// URL; TORCH_HOME in tmp_path."""
    torch.manual_seed(0)
    tv = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).eval()
    raw = tmp_path / "served" / "googlenet.pth"
    raw.parent.mkdir()
    torch.save(tv.state_dict(), raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    named = raw.with_name(f"googlenet-{digest[:8]}.pth")
    raw.rename(named)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setitem(pretrained.URLS, "imagenet", named.as_uri())
    return tv, named


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights": "imagenet"},
        {"pretrained": True},
        {"weights": "IMAGENET1K_V1"},
        {"weights": torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1},
    ],
    ids=["imagenet", "pretrained", "IMAGENET1K_V1", "enum"],
)
def test_pretrained_weights_are_torchvisions_through_the_hub_cache(served, tmp_path, kwargs):
    tv, named = served
    model = googlenet.create_model("torchvision", aux_logits=False, progress=False, **kwargs)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / named.name
    assert cached.read_bytes() == named.read_bytes()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), tv(x), atol=1e-4)
    assert model.config.num_classes == 1000 and len(model.config.class_names) == 1000


def test_a_corrupt_download_is_refused_and_not_cached(served, tmp_path):
    _, named = served
    bad = named.with_name("googlenet-00000000.pth")
    named.rename(bad)
    pretrained.URLS["imagenet"] = bad.as_uri()  # the fixture's monkeypatch restores it
    with pytest.raises(googlenet.WeightsError, match="hash"):
        googlenet.create_model("torchvision", weights="imagenet", progress=False)
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / bad.name).exists()


def test_offline_is_one_line(served, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(googlenet.WeightsError) as err:
        googlenet.create_model("torchvision", weights="imagenet", progress=False)
    line = str(err.value)
    assert "no route to host" in line and "checkpoints" in line and "\n" not in line


@pytest.mark.parametrize(
    "preset, kwargs, message",
    [
        ("paper", {"weights": "imagenet"}, "torchvision preset"),
        ("torchvision", {"weights": "imagenet22k"}, "unknown weights"),
        ("torchvision", {"weights": "nope", "pretrained": True}, "not both"),
    ],
)
def test_bad_requests_are_config_errors(preset, kwargs, message):
    with pytest.raises(googlenet.ConfigError, match=message):
        googlenet.create_model(preset, **kwargs)


def test_without_weights_it_is_the_plain_factory():
    torch.manual_seed(0)
    a = googlenet.create_model("paper", num_classes=7, aux_logits=False)
    torch.manual_seed(0)
    b = googlenet.model.create_model("paper", num_classes=7, aux_logits=False)
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)
