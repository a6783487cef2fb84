"""Issue 13: sharded datasets (googlenet shard) streamed by train and eval, on one or many nodes.

Tiny data: 40 x 36 images of 3 classes (tests/folders.py), or solid images whose red value is
their number (to see which reader got which sample). Shards of a few samples each, so that even
these sets have more shards than readers (whole-shard splits) or fewer (sample splits).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from helpers.folders import make_dataset
from helpers.runs import assert_same_training, initial
from PIL import Image
from safetensors.torch import load_file

import googlenet
from googlenet import cli
from googlenet.data import shards
from googlenet.fileio import output_lock

FAST = ["--input-size", "32", "-j", "0", "--print-freq", "1"]


def main(capsys, *args) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, (code, err)
    assert lines[0].startswith(f"googlenet {command}: error: "), lines[0]
    return lines[0]


def numbered(root: Path, classes=("a", "b"), per_class=13, size=(40, 36)) -> Path:
    """Solid images whose red value is their number (class k: numbers k*100 ...)."""
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", size, (k * 100 + i, 0, 0)).save(root / name / f"{i:02d}.png")
    return root


def red(img, g=None) -> torch.Tensor:
    """A 'transform' that keeps only the image's number."""
    return torch.tensor(img.getpixel((0, 0))[0])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """An image folder (8 train, 3 val images a class) and its shards of 4 samples."""
    root = tmp_path_factory.mktemp("shards")
    make_dataset(root / "data", train=8, val=3)
    code = cli.main(["shard", "--data", str(root / "data"), "--out", str(root / "sh"),
                     "--shard-size", "4"])  # fmt: skip
    assert code == 0
    model = googlenet.create_model(
        "paper", num_classes=3, aux_logits=False, input_size=32, class_names=("a", "b", "c")
    )
    googlenet.save_weights(model, root / "w.safetensors")
    return root


def test_shard_writes_every_image_once_with_its_class_and_an_index(tmp_path, capsys):
    make_dataset(tmp_path / "data", train=5, val=2)
    code, out, err = main(capsys, "shard", "--data", tmp_path / "data", "--out", tmp_path / "sh",
                          "--shard-size", "4", "-j", "2")  # fmt: skip
    assert code == 0, err
    assert "train: 15 images in 4 shard(s)" in out and "val: 6 images in 2 shard(s)" in out, out
    top = json.loads((tmp_path / "sh" / "index.json").read_text())
    assert top["classes"] == ["a", "b", "c"] and top["splits"]["train"]["count"] == 15
    for split, per_class in (("train", 5), ("val", 2)):
        index = json.loads((tmp_path / "sh" / split / "index.json").read_text())
        seen = []
        for entry in index["shards"]:
            with tarfile.open(tmp_path / "sh" / split / entry["name"]) as tar:
                names = tar.getnames()
                labels = [int(tar.extractfile(n).read()) for n in names if n.endswith(".cls")]
            assert len(labels) == entry["count"] and len(names) == 2 * entry["count"]
            seen += labels
        assert sorted(seen) == sorted(list(range(3)) * per_class)
    train_index = json.loads((tmp_path / "sh" / "train" / "index.json").read_text())
    first = [int(n[:9]) for n in _members(tmp_path / "sh" / "train" / "train-000000.tar")]
    assert first != sorted(first) or len({i // 5 for i in first}) > 1  # shuffled: classes mix
    assert train_index["preprocessing"]["resize_shorter_side"] is None


def _members(tar_path: Path) -> list[str]:
    with tarfile.open(tar_path) as tar:
        return [n for n in tar.getnames() if not n.endswith(".cls")]


def test_resize_stores_smaller_jpegs_and_says_how_much_smaller(tmp_path, capsys):
    numbered(tmp_path / "data" / "train", per_class=3, size=(120, 96))
    data = tmp_path / "data"
    code, out, err = main(capsys, "shard", "--data", data, "--val", data / "train",
                          "--out", tmp_path / "sh", "--resize", "48")  # fmt: skip
    assert code == 0, err
    assert "--downscale 48:" in out and "x smaller" in out, out
    with tarfile.open(tmp_path / "sh" / "train" / "train-000000.tar") as tar:
        jpegs = [n for n in tar.getnames() if n.endswith(".jpg")]
        img = Image.open(io.BytesIO(tar.extractfile(jpegs[0]).read()))
    assert len(jpegs) == 6 and img.format == "JPEG" and img.size == (60, 48)


def test_unreadable_images_are_counted_and_skipped_or_stop_with_strict(tmp_path, capsys, caplog):
    make_dataset(tmp_path / "data", train=3, val=1)
    (tmp_path / "data" / "train" / "a" / "bad.png").write_bytes(b"not a png")
    code, out, err = main(capsys, "shard", "--data", tmp_path / "data", "--out", tmp_path / "sh")
    assert code == 0 and "1 unreadable image(s) skipped" in out, out
    assert "bad.png" in caplog.text  # named
    code, _, err = main(capsys, "shard", "--data", tmp_path / "data", "--out", tmp_path / "s2",
                        "--strict")  # fmt: skip
    assert "bad.png" in one_line(code, err, "shard")
    assert not (tmp_path / "s2").exists()  # nothing half-written


def test_a_second_writer_of_one_shard_set_is_refused(tmp_path, capsys):
    make_dataset(tmp_path / "data", train=1, val=1)
    with output_lock(tmp_path / "sh", "shard", "--out"):
        code, _, err = main(capsys, "shard", "--data", tmp_path / "data", "--out", tmp_path / "sh")
    line = one_line(code, err, "shard")
    assert "is in use by googlenet shard, pid" in line and "--out" in line
    assert main(capsys, "shard", "--data", tmp_path / "data", "--out", tmp_path / "sh")[0] == 0
    code, _, err = main(capsys, "shard", "--data", tmp_path / "data", "--out", tmp_path / "sh")
    assert "already holds a shard set" in one_line(code, err, "shard")


# ---------------------------------------------------------------------------------------------
# Who reads what
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def numbered_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("numbered")
    numbered(root / "data" / "train")
    code = cli.main(["shard", "--data", str(root / "data"), "--val", str(root / "data" / "train"),
                     "--out", str(root / "sh"), "--shard-size", "4"])  # fmt: skip
    assert code == 0
    return root / "sh"


def _read(split, *, train, world, workers, batch=3, epoch=0, start=0):
    """Every rank's batches: {rank: [list of image numbers per batch]}."""
    out = {}
    for rank in range(world):
        ds = shards.ShardDataset(split, red, train=train, batch_size=batch, rank=rank, world=world,
                                 seed=5, buffer=4)  # fmt: skip
        loader = shards.ShardLoader(ds, batch, workers)
        ds.set_epoch(epoch, start)
        out[rank] = [b.images.tolist() for b in loader]
        assert len(out[rank]) == len(loader) - start // batch
    return out


@pytest.mark.parametrize("world, workers", [(1, 0), (2, 2), (4, 1), (3, 3)])
def test_evaluation_reads_every_sample_exactly_once(numbered_shards, world, workers):
    split = shards.open_split(numbered_shards / "val")
    got = _read(split, train=False, world=world, workers=workers)
    everything = sorted(n for batches in got.values() for b in batches for n in b)
    assert everything == sorted([*range(13), *range(100, 113)])


@pytest.mark.parametrize("world, workers", [(2, 2), (3, 0), (8, 1)])
def test_training_ranks_take_equal_steps_of_distinct_samples(numbered_shards, world, workers):
    split = shards.open_split(numbered_shards / "train")  # 26 samples in 7 shards
    got = _read(split, train=True, world=world, workers=workers, batch=2)
    steps = {len(batches) for batches in got.values()}
    assert steps == {26 // world // 2}, got  # the same on every rank: DDP never waits
    per_rank = [{n for b in batches for n in b} for batches in got.values()]
    if world <= 3:  # whole shards a rank: no sample on two ranks
        assert sum(map(len, per_rank)) == len(set().union(*per_rank)), per_rank
    # Distinct within a rank as far as its share allows (shards of 4 do not split 26 evenly).
    assert all(len(seen) >= min(26 // world // 2 * 2, 26 // world) - 4 for seen in per_rank)
    assert all(len(b) == 2 for batches in got.values() for b in batches)


def test_epochs_reshuffle_and_a_resumed_epoch_goes_on_with_the_same_batches(numbered_shards):
    split = shards.open_split(numbered_shards / "train")
    first = _read(split, train=True, world=2, workers=2, batch=2)
    again = _read(split, train=True, world=2, workers=2, batch=2)
    other = _read(split, train=True, world=2, workers=2, batch=2, epoch=1)
    assert first == again and first != other
    resumed = _read(split, train=True, world=2, workers=2, batch=2, start=3 * 2)
    assert all(resumed[r] == first[r][3:] for r in first)


# ---------------------------------------------------------------------------------------------
# train and eval on shards
# ---------------------------------------------------------------------------------------------


def test_train_and_eval_stream_shards(dataset, tmp_path, capsys):
    sh = dataset / "sh"
    run = tmp_path / "run"
    code, _, err = main(capsys, "train", "--data", sh, "--output-dir", run, "--epochs", "1",
                        "-b", "4", *FAST)  # fmt: skip
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["train_images"] == 24 and config["data"]["val_images"] == 9
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert rows[0]["step"] == 6 and rows[0]["skipped"] == 0  # 24 images, batches of 4
    assert rows[0]["val_top1"] is not None
    report = tmp_path / "r.json"
    for data in (sh, sh / "val", f"pipe:cat {sh}/val/val-{{000000..000002}}.tar"):
        code, out, err = main(capsys, "eval", "--weights", dataset / "w.safetensors", "--data",
                              data, "-j", "1", "--format", "json", "--output", report,
                              "--force")  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["n"] == 9 and json.loads(out)["skipped"] == 0


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_unbroken_one(
    dataset, tmp_path, run_cli
):
    args = ["train", "--data", dataset / "sh", "--epochs", "2", "-b", "4", "--input-size", "32",
            "-j", "2", "--save-every", "2", "--print-freq", "1"]  # fmt: skip
    assert run_cli(*args, "--output-dir", "whole").returncode == 0
    killed = run_cli(*args, "--output-dir", "broken", env={"GOOGLENET_FAULT": "kill@step=9"})
    assert killed.returncode == -9, killed.stderr  # step 9: batch 4 of epoch 2, saved at 2
    resumed = run_cli(*args, "--output-dir", "broken", "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "batch 2 of 6 of epoch 2" in resumed.stderr, resumed.stderr
    a, b = (load_file(tmp_path / run / "final.safetensors") for run in ("whole", "broken"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = {
        run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").open()]
        for run in ("whole", "broken")
    }
    for a, b in zip(rows["whole"], rows["broken"], strict=True):
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]


# ---------------------------------------------------------------------------------------------
# Bad input: one line and exit 2, or counted and skipped; never a hang
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def copy(dataset, tmp_path):
    """A copy of the shard set to damage."""
    shutil.copytree(dataset / "sh", tmp_path / "sh")
    return tmp_path / "sh"


def _eval(capsys, dataset, data, *extra):
    return main(capsys, "eval", "--weights", dataset / "w.safetensors", "--data", data,
                "--output", Path(str(data).split()[-1]).parent / "r.json", *extra)  # fmt: skip


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.unlink(), "val-000001.tar is missing"),
    (lambda p: p.write_bytes(b""), "val-000001.tar is empty"),
])  # fmt: skip
def test_a_missing_or_empty_shard_is_one_line(copy, dataset, capsys, damage, message):
    damage(copy / "val" / "val-000001.tar")
    code, _, err = _eval(capsys, dataset, copy / "val", "-j", "0")
    assert message in one_line(code, err, "eval")


def test_a_corrupt_member_is_counted_and_the_rest_read(copy, dataset, capsys, caplog):
    shard = copy / "val" / "val-000000.tar"
    with tarfile.open(shard) as tar:
        third = tar.getmembers()[2].offset  # the header of the second sample
    blob = bytearray(shard.read_bytes())
    blob[third : third + 512] = b"\xff" * 512
    shard.write_bytes(bytes(blob))
    code, out, err = _eval(capsys, dataset, copy / "val", "-j", "1", "--format", "json")
    assert code == 2 and "1 of 7 input(s) failed" in err, err  # scored the rest, exit 2
    report = json.loads(out)
    assert report["n"] == 9 - 3 and report["skipped"] == 1, report  # 1 of 4 read
    assert "val-000000.tar: shard ends after 1 of its 4 samples" in caplog.text


def test_a_class_outside_the_index_stops_with_one_line(copy, dataset, capsys):
    shard = copy / "val" / "val-000002.tar"  # 1 sample
    with tarfile.open(shard) as tar:
        image = next(m for m in tar.getmembers() if m.name.endswith(".png"))
        png = tar.extractfile(image).read()
    with tarfile.open(shard, "w") as tar:
        for name, body in ((image.name, png), (image.name[:-4] + ".cls", b"7")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    code, _, err = _eval(capsys, dataset, copy / "val", "-j", "1")  # raised in a loader worker
    assert "has class 7, but its index lists 3 classes" in one_line(code, err, "eval")


def test_urls_that_cannot_be_opened(copy, dataset, capsys, tmp_path):
    code, _, err = _eval(capsys, dataset, f"pipe:cat {tmp_path}/none/val-{{000000..000002}}.tar")
    assert "cannot read its shard index" in one_line(code, err, "eval")
    (copy / "val" / "val-000001.tar").unlink()  # the index is there, one shard is not
    url = f"pipe:cat {copy}/val/val-{{000000..000002}}.tar"
    code, out, err = _eval(capsys, dataset, url, "-j", "0", "--format", "json")
    assert code == 2 and json.loads(out)["skipped"] == 1 and json.loads(out)["n"] == 5, err
    for shard in (copy / "train").glob("*.tar"):
        shard.unlink()
    train = f"pipe:cat {copy}/train/train-{{000000..000005}}.tar"
    code, _, err = main(capsys, "train", "--data", train, "--output-dir", tmp_path / "run",
                        "-b", "4", *FAST)  # fmt: skip
    assert "no readable sample in shard(s)" in err.splitlines()[-1] and code == 2, err


# ---------------------------------------------------------------------------------------------
# Many nodes
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_the_loopback_train_on_shards_like_one_process(tmp_path, run_cli):
    """torchrun as two nodes of one process each (c10d rendezvous on 127.0.0.1, gloo) against
    one process with the same global batch of 8.

    8 images in 2 shards of 4, so an epoch is one step: one process reads both shards, each node
    one of them (the nodes' shards change each epoch, the step's 8 images do not), and every
    image is augmented by (seed, epoch, its index) wherever it is read. So the two runs compute
    the same steps up to float summation order: the tolerance of tests/test_distributed.py.
    """
    make_dataset(tmp_path / "data", classes=("a", "b"), train=4, val=2)
    run_cli("shard", "--data", "data", "--out", "sh", "--shard-size", "4", check=True)
    # -j 0: the ranks' shard split is what two nodes test (workers' splits: the tests above;
    # spawned workers and a run's exit: tests/test_data.py).
    args = ["train", "--data", "sh", "--epochs", "3", "--input-size", "32", "-j", "0",
            "--dropout", "0", "--aux-dropout", "0", "--polyak", "--print-freq", "1",
            # fp32 and ImageNet-normalized input: test_distributed.py says why
            "--amp", "none", "--mean", "0.485", "0.456", "0.406",
            "--std", "0.229", "0.224", "0.225"]  # fmt: skip
    run_cli(*args, "-b", "8", "--output-dir", "one", check=True)
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                "shards",
                "--local-addr",
                "127.0.0.1",
                "-m",
                "googlenet",
                *args,
                "-b",
                "4",
                "--output-dir",
                "two",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ | {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"},
        )  # fmt: skip
        for rank in (0, 1)
    ]
    results = [node.communicate(timeout=600) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-3000:] for _, err in results]
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["world_size"] == 2 and config["global_batch_size"] == 8
    assert_same_training(tmp_path / "one", tmp_path / "two", initial(("a", "b")))
    rows = {
        run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").open()]
        for run in ("one", "two")
    }
    for a, b in zip(rows["one"], rows["two"], strict=True):
        assert a["step"] == b["step"] == a["epoch"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert a["val_top1"] == b["val_top1"]


@pytest.mark.slow
def test_bench_data_times_folders_and_shards_and_says_how_many_workers_a_gpu_needs(capsys):
    code, out, err = main(capsys, "bench", "--mode", "data", "--images", "16", "--input-size",
                          "32", "-j", "1", "--gpu-images-per-s", "1000")  # fmt: skip
    assert code == 0, err
    for row in ("decode: PIL", "decode: torchvision decode_jpeg (CPU)", "folder", "shards"):
        assert row in out, out
    per_worker = float(out.split("per-worker rate (")[1].split()[0])
    needed = int(out.split("needs about ")[1].split()[0])
    assert needed == -(-1000 // per_worker) or abs(needed - 1000 / per_worker) <= 1
    assert "1,000 images/s (measured)" in out
    # --decode gpu: the workers only read; the device path is timed on this machine's CPU
    assert "--decode gpu path on cpu (batch of 16)" in out
    reading = min(float(line.split()[-1]) for line in out.splitlines() if line.startswith("read:"))
    readers = int(out.split("the workers only read: ")[1].split()[0])
    assert readers == -(-1000 // reading) or abs(readers - 1000 / reading) <= 1
