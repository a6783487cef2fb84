"""Weights: torchvision import with identical outputs, our safetensors round trip, bad files."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import googlenet
from googlenet import WeightsError, create_model, load, save_weights
from googlenet.weights import read_metadata


def torchvision_model(transform_input: bool = True, aux_logits: bool = True, num_classes=1000):
    """torchvision's googlenet with random weights and random BatchNorm statistics."""
    torch.manual_seed(0)
    model = torchvision.models.googlenet(
        weights=None, aux_logits=aux_logits, transform_input=transform_input,
        init_weights=True, num_classes=num_classes,
    )  # fmt: skip
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def tv_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tv") / "googlenet-random.pth"
    torch.save(torchvision_model().state_dict(), path)
    return path


@pytest.fixture
def tv_file(tv_path) -> tuple[torch.nn.Module, Path]:
    """A fresh torchvision model (each test may change its mode and BN statistics) and its file."""
    model = torchvision.models.googlenet(
        weights=None, aux_logits=True, transform_input=True, init_weights=False
    )
    model.load_state_dict(torch.load(tv_path, weights_only=True))
    return model, tv_path


def test_torchvision_import_gives_identical_outputs(tv_file):
    theirs, path = tv_file
    ours = load(path)
    assert ours.config.preset == "torchvision" and ours.num_classes == 1000
    assert ours.config.class_names[0] == "tench"  # ImageNet names come with the weights
    x = torch.randn(2, 3, 224, 224)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max() <= 1e-5
    # Training mode: same dropout draws in the same order, so the aux logits agree too.
    theirs.train(), ours.train()
    torch.manual_seed(1)
    t = theirs(x)
    torch.manual_seed(1)
    o = ours(x, return_aux=True)
    assert (o.logits - t.logits).abs().max() <= 1e-5
    assert (o.aux1 - t.aux_logits1).abs().max() <= 1e-5
    assert (o.aux2 - t.aux_logits2).abs().max() <= 1e-5


def test_torchvision_import_without_transform_input(tmp_path):
    theirs = torchvision_model(transform_input=False, aux_logits=False, num_classes=10).eval()
    path = tmp_path / "tv.pth"
    torch.save({"state_dict": theirs.state_dict()}, path)  # the common checkpoint wrapping
    ours = load(path, transform_input=False).eval()
    assert ours.aux1 is None and ours.config.class_names is None
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max() <= 1e-5


def test_wrapped_keys_are_accepted(tmp_path):
    theirs = torchvision_model(aux_logits=False, num_classes=10).eval()
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in theirs.state_dict().items()}, path)
    ours = load(path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max() <= 1e-5


def test_new_number_of_classes_reinitializes_the_classifier_on_purpose(tv_file, caplog):
    theirs, path = tv_file
    with caplog.at_level(logging.WARNING):
        ours = load(path, num_classes=42)
    assert "classifier re-initialized for 42 classes" in caplog.text
    assert ours.fc.out_features == 42 and ours.aux2.fc2.out_features == 42
    assert ours.config.class_names is None
    assert torch.equal(ours.inception5b.conv1x1.conv.weight, theirs.inception5b.branch1.conv.weight)
    assert torch.equal(ours.aux1.fc1.weight, theirs.aux1.fc1.weight)
    no_aux = load(path, num_classes=42, aux_logits=False)
    assert no_aux.aux1 is None


def test_safetensors_round_trip_keeps_weights_and_metadata(tmp_path):
    names = [f"digit {i}" for i in range(10)]
    model = create_model("paper", num_classes=10, input_size=96, class_names=names,
                         mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))  # fmt: skip
    path = tmp_path / "model.safetensors"
    save_weights(model, path, metadata={"epoch": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # no temp left
    meta = read_metadata(path)
    assert meta["epoch"] == "3"
    config = json.loads(meta["googlenet.config"])
    assert (config["preset"], config["num_classes"], config["input_size"]) == ("paper", 10, 96)
    assert config["class_names"] == names and config["mean"] == [0.1, 0.2, 0.3]
    loaded = load(path)
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 96, 96)
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_convert_weights_cli(tv_file, tmp_path, run_cli):
    theirs, path = tv_file
    out = tmp_path / "imagenet.safetensors"
    proc = run_cli("convert-weights", path, out, "--no-aux", check=True)
    assert "1000 classes" in proc.stdout and "dropped" in proc.stdout
    ours = load(out).eval()
    assert ours.aux1 is None and ours.config.class_names[1] == "goldfish"
    x = torch.randn(1, 3, 224, 224)
    theirs.eval()
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max() <= 1e-5


# -- bad files --------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load(tmp_path / "nope.safetensors")


def test_text_file_is_not_weights(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello, these are not weights\n")
    with pytest.raises(WeightsError, match="not a weights file"):
        load(path)


def test_state_dict_of_another_network(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="not a GoogLeNet state dict.*conv1.weight"):
        load(path)


def test_pickle_that_runs_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.conv.weight": Evil()}, f, protocol=2)
    with pytest.raises(WeightsError, match="refusing to load"):
        load(path)
    assert not marker.exists()


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    save_weights(create_model("paper", num_classes=3, aux_logits=False), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load(path)


def test_metadata_that_lies_about_num_classes(tmp_path):
    model = create_model("paper", num_classes=3, aux_logits=False)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    config = model.config.to_dict() | {"num_classes": 5}
    path = tmp_path / "liar.safetensors"
    save_file(tensors, path, metadata={"googlenet.config": json.dumps(config)})
    with pytest.raises(WeightsError, match=r"fc\.(weight|bias).* has shape .* the model needs"):
        load(path)
    # found before the model is built (a claim of 10^6 classes must not allocate 4 GB first)
    with pytest.raises(WeightsError, match="configuration says 5 classes, its classifier has 3"):
        load(path)


def test_wrong_dtype_is_refused(tmp_path):
    model = create_model("paper", num_classes=3, aux_logits=False)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    tensors["fc.weight"] = tensors["fc.weight"].to(torch.int32)
    path = tmp_path / "ints.safetensors"
    save_file(tensors, path, metadata={"googlenet.config": json.dumps(model.config.to_dict())})
    with pytest.raises(WeightsError, match="dtype"):
        load(path)


def test_a_missing_or_extra_tensor_is_refused_naming_it(tmp_path):
    """A file that lacks a tensor would leave that layer at its random initialization; one with
    an extra tensor is not this network's: both are refused, with the count and an example."""
    model = create_model("paper", num_classes=3, aux_logits=False)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    metadata = {"googlenet.config": json.dumps(model.config.to_dict())}
    save_file({k: v for k, v in tensors.items() if k != "fc.bias"}, tmp_path / "a", metadata)
    with pytest.raises(WeightsError, match=r"keys 1 missing \(e\.g\. 'fc\.bias'\);"):
        load(tmp_path / "a")
    save_file(tensors | {"fc2.weight": torch.zeros(1)}, tmp_path / "b", metadata)
    with pytest.raises(WeightsError, match=r"keys 1 unexpected \(e\.g\. 'fc2\.weight'\);"):
        load(tmp_path / "b")
    both = {k: v for k, v in tensors.items() if k != "fc.bias"} | {"fc2.weight": torch.zeros(1)}
    save_file(both, tmp_path / "c", metadata)
    with pytest.raises(WeightsError) as err:
        load(tmp_path / "c")
    assert str(err.value).endswith(
        "keys 1 missing (e.g. 'fc.bias'), 1 unexpected (e.g. 'fc2.weight'); "
        "is it the state dict of another network?"
    )


def test_a_trunk_tensor_of_another_shape_or_with_nan_is_refused_naming_it(tmp_path):
    model = create_model("paper", num_classes=3, aux_logits=False)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    metadata = {"googlenet.config": json.dumps(model.config.to_dict())}
    save_file(tensors | {"conv2.conv.weight": torch.zeros(64, 64, 3, 3)}, tmp_path / "a", metadata)
    with pytest.raises(WeightsError) as err:
        load(tmp_path / "a")
    assert str(err.value).endswith(
        "tensor 'conv2.conv.weight' has shape [64, 64, 3, 3] but the model needs [64, 64, 1, 1]; "
        "the file does not match its own configuration"
    )
    nan = tensors["conv2.conv.bias"].clone()
    nan[0] = float("nan")
    save_file(tensors | {"conv2.conv.bias": nan}, tmp_path / "b", metadata)
    with pytest.raises(WeightsError) as err:
        load(tmp_path / "b")
    assert str(err.value).endswith("tensor 'conv2.conv.bias' holds NaN or infinite values")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("not weights"), "not a weights file"),
        (lambda p: torch.save(torchvision.models.alexnet(weights=None).state_dict(), p),
         "not a GoogLeNet state dict"),
    ],
)  # fmt: skip
def test_cli_bad_weights_one_line_exit_2(tmp_path, run_cli, make, message):
    src = tmp_path / "bad.pth"
    make(src)
    proc = run_cli("convert-weights", src, tmp_path / "out.safetensors")
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.safetensors").exists()


def test_cli_output_in_missing_directory(tv_file, tmp_path, run_cli):
    _, path = tv_file
    proc = run_cli("convert-weights", path, tmp_path / "no" / "such" / "dir" / "w.safetensors")
    assert proc.returncode == 2 and "does not exist; create it first" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_public_api_is_exported():
    assert googlenet.load is load and callable(googlenet.convert_torchvision_state_dict)


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    path = tmp_path / "model.safetensors"
    save_weights(create_model("paper", num_classes=2, aux_logits=False), path)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_nested_wrapper_prefixes_are_all_stripped(tmp_path):
    """DDP around a compiled model around DDP: every ``module.``/``_orig_mod.`` level goes."""
    theirs = torchvision_model(aux_logits=False, num_classes=10).eval()
    path = tmp_path / "nested.pth"
    prefix = "module._orig_mod.module."
    torch.save({prefix + k: v for k, v in theirs.state_dict().items()}, path)
    ours = load(path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max() <= 1e-5


def test_a_torchvision_state_dict_without_its_classifier_is_refused(tmp_path):
    state = torchvision_model(aux_logits=False, num_classes=10).state_dict()
    del state["fc.weight"]
    path = tmp_path / "headless.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="torchvision googlenet state dict has no 'fc.weight'"):
        load(path)


def test_unreadable_safetensors_metadata_names_the_file_and_the_reason(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(WeightsError) as err:
        read_metadata(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a readable safetensors file (")
    assert "None" not in message and len(message) > len(f"{path} is not a readable") + 30


def test_our_own_bare_state_dict_is_not_mistaken_for_torchvisions(tmp_path):
    """A plain ``state_dict()`` of our paper-bn network shares torchvision's stem keys
    (``conv1.bn.running_mean``) but not its branch names: it is refused with the expected keys,
    not converted as if it were torchvision's."""
    path = tmp_path / "ours.pth"
    torch.save(create_model("paper-bn", num_classes=4).state_dict(), path)
    with pytest.raises(WeightsError, match="is not a GoogLeNet state dict.*inception3a.branch1"):
        load(path)
