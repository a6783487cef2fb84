"""runtime.device: one --device rule and one --amp rule for every command."""

from __future__ import annotations

import pytest
import torch

from googlenet.errors import ConfigError
from googlenet.runtime.device import AMP_DTYPES, amp_dtype, autocast, pick_device


@pytest.mark.parametrize("name", [None, "auto", "cpu", torch.device("cpu")])
def test_auto_and_cpu_pick_the_cpu_here(name):
    assert pick_device(name) == torch.device("cpu")


@pytest.mark.parametrize(
    "name, words",
    [("gpu", "unknown device 'gpu'"), ("cuda", "CUDA is not available"), ("xla", "must be auto")],
)
def test_bad_or_missing_devices_are_one_line_errors(name, words):
    if torch.cuda.is_available() and name == "cuda":
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=words) as info:
        pick_device(name)
    assert "\n" not in str(info.value)


def test_amp_names_its_precisions():
    assert AMP_DTYPES == {"bf16": torch.bfloat16, "fp16": torch.float16}


def test_autocast_computes_in_bf16_only_where_the_cpu_has_it():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast("cpu", enabled=False):
        assert (a @ b).dtype == torch.float32
    with autocast("cpu"):
        want = torch.bfloat16 if amp_dtype("cpu") is not None else torch.float32
        assert (a @ b).dtype == want
