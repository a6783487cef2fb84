"""fileio: a file appears whole or not at all, and a failed write leaves nothing behind."""

from __future__ import annotations

import os

import pytest
import torch

from googlenet.errors import GoogLeNetError
from googlenet.fileio import (
    atomic_open,
    atomic_save,
    atomic_write_text,
    refuse_overwrite,
    remove_stale_temporaries,
    torch_save,
)


def test_atomic_write_text_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    atomic_write_text(path, "new text\n")
    assert path.read_text() == "new text\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_writer_that_fails_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"good")

    def broken(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        atomic_save(path, broken)
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_atomic_open_is_for_writing_only(tmp_path):
    with pytest.raises(ValueError, match="for writing"):
        with atomic_open(tmp_path / "x", "r"):
            pass
    with atomic_open(tmp_path / "x.csv", "w", newline="") as f:
        f.write("a,b\n")
        assert not (tmp_path / "x.csv").exists()  # not there until the block ends
    assert (tmp_path / "x.csv").read_text() == "a,b\n"


def test_torch_save_round_trips_with_weights_only_load(tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3), "step": 7}
    torch_save(state, tmp_path / "ckpt.pt")
    back = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert back["step"] == 7 and torch.equal(back["w"], state["w"])


def test_missing_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(GoogLeNetError) as info:
        atomic_write_text(tmp_path / "no" / "such" / "dir.txt", "x")
    assert "\n" not in str(info.value) and "no/such" in str(info.value)


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    stale = tmp_path / ".last.pt.abcd1234.tmp"
    stale.write_bytes(b"x" * 10)
    keep = [tmp_path / "last.pt", tmp_path / ".hidden", tmp_path / "a.tmp"]
    for p in keep:
        p.write_bytes(b"k")
    removed = remove_stale_temporaries(tmp_path)
    assert removed == [stale] and not stale.exists()
    assert all(p.exists() for p in keep)


def test_file_mode_is_what_open_would_give(tmp_path):
    # mkstemp creates 0o600 files; the atomic writers restore what a plain open() would give.
    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_text(tmp_path / "m.txt", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_refuse_overwrite_names_the_first_existing_output_unless_forced(tmp_path):
    there, also, free = tmp_path / "a.json", tmp_path / "b.png", tmp_path / "c.csv"
    there.write_text("mine")
    also.write_text("mine")
    refuse_overwrite([free])  # nothing there: no objection
    refuse_overwrite([there, also], force=True)
    with pytest.raises(GoogLeNetError) as err:
        refuse_overwrite([free, there, also])
    assert str(err.value) == f"{there} already exists (and 1 more): pass --force to overwrite it"
