"""The PyTorch toolchain on every preset, beside torchvision's own ``googlenet``: one table of
models, the checks of torchvision's ``test/test_models.py`` (output shapes, the auxiliary outputs
in training, TorchScript, torch.fx, feature extraction, torch.export with a dynamic batch,
torch.compile fullgraph, determinism), in train and eval mode.

Each model is built without dropout (its masks are random, so a scripted or traced model could
not be compared with the eager one in training mode); inputs are 64x64, batch 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from googlenet import GoogLeNetOutputs, InputSizeError, create_model

NUM_CLASSES = 10
SIZE = 64


@dataclass(frozen=True)
class Case:
    """A model of the table and how to read its outputs: ``aux(out)`` (aux1, aux2) of a
    training-mode forward, ``call(model, x, aux)`` the forward that returns them."""

    name: str
    ours: bool

    def build(self) -> nn.Module:
        torch.manual_seed(0)
        if self.ours:
            return create_model(self.name, num_classes=NUM_CLASSES, dropout=0.0, aux_dropout=0.0)
        model = torchvision.models.googlenet(
            weights=None, num_classes=NUM_CLASSES, aux_logits=True, init_weights=True
        )
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        return model

    def call(self, model: Any, x: Tensor, aux: bool) -> Any:
        return model(x, return_aux=True) if self.ours and aux else model(x)

    def logits(self, out: Any) -> Tensor:
        """The main logits of any output: ours, torchvision's (a tuple in training mode and
        always when scripted)."""
        return out if isinstance(out, Tensor) else out[0]

    def aux(self, out: Any) -> tuple[Tensor, Tensor]:
        if self.ours:
            return out.aux1, out.aux2
        return out[2], out[1]  # torchvision: (logits, aux_logits2, aux_logits1)

    @property
    def feature_nodes(self) -> list[str]:
        return ["inception3b", "inception4e", "inception5b"]


CASES = [Case("paper", True), Case("paper-bn", True), Case("torchvision", True)]
TORCHVISION = Case("torchvision.models.googlenet", False)
TABLE = [*CASES, TORCHVISION]
MODES = ["eval", "train"]
# torch.export takes 3-6 s a model on 2 CPU cores: in training mode it runs with the slow tests.


def _ids(case: Case) -> str:
    return case.name


def _input(n: int = 2) -> Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(n))


def _model(case: Case, mode: str) -> nn.Module:
    return case.build().train(mode == "train")


def _same(a: Tensor, b: Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", TABLE, ids=_ids)
def test_shapes_and_auxiliary_outputs(case, mode):
    """Eval: the logits. Train: the logits and both auxiliary outputs, each N x classes."""
    model = _model(case, mode)
    out = case.call(model, _input(), aux=True)
    assert case.logits(out).shape == (2, NUM_CLASSES)
    if mode == "train":
        assert all(a.shape == (2, NUM_CLASSES) for a in case.aux(out))
    elif case.ours:
        assert isinstance(out, GoogLeNetOutputs) and out.aux1 is None and out.aux2 is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", TABLE, ids=_ids)
def test_torchscript(case, mode):
    model = _model(case, mode)
    scripted = torch.jit.script(model)
    x = _input()
    eager, script = case.call(model, x, aux=True), case.call(scripted, x, aux=True)
    _same(case.logits(script), case.logits(eager))
    if mode == "train":
        for a, b in zip(case.aux(script), case.aux(eager), strict=True):
            _same(a, b)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", TABLE, ids=_ids)
def test_fx_symbolic_trace(case, mode):
    model = _model(case, mode)
    traced = torch.fx.symbolic_trace(model)
    x = _input()
    _same(case.logits(traced(x)), case.logits(model(x)))


@pytest.mark.parametrize("case", TABLE, ids=_ids)
def test_feature_extraction_by_node_name(case):
    """get_graph_node_names in both modes, and create_feature_extractor on the stage outputs
    (for ours, the modules that ``feature_info`` names): strides 8, 16, 32."""
    model = _model(case, "eval")
    train_nodes, eval_nodes = get_graph_node_names(model)
    nodes = case.feature_nodes
    for names in (train_nodes, eval_nodes):  # a module's name selects its last node
        assert all(any(n == m or n.startswith(m + ".") for n in names) for m in nodes)
    extractor = create_feature_extractor(model, return_nodes=nodes)
    maps = extractor(_input())
    assert [tuple(m.shape[1:]) for m in maps.values()] == [
        (480, SIZE // 8, SIZE // 8),
        (832, SIZE // 16, SIZE // 16),
        (1024, SIZE // 32, SIZE // 32),
    ]
    if case.ours:
        assert nodes == [f["module"] for f in model.feature_info[2:]]


@pytest.mark.parametrize("mode", ["eval", pytest.param("train", marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", TABLE, ids=_ids)
def test_export_with_a_dynamic_batch(case, mode):
    """Exported at batch 2 with the batch dimension dynamic, run at batch 3: the eager logits
    (eval mode; in training mode BatchNorm's batch statistics depend on the batch, so the
    exported program is compared on the batch it was not exported with, against eager)."""
    model = _model(case, mode)
    batch = torch.export.Dim("batch", min=2, max=64)
    program = torch.export.export(model, (_input(2),), dynamic_shapes={"x": {0: batch}})
    x = _input(3)
    _same(case.logits(program.module()(x)), case.logits(model(x)))


def _compile_fullgraph(case: Case, mode: str, backend: str = "eager") -> None:
    torch._dynamo.reset()
    model = _model(case, mode)
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    x = _input()
    _same(case.logits(case.call(compiled, x, aux=True)), case.logits(case.call(model, x, True)))


def test_compile_fullgraph():
    """One fast representative: dynamo captures the whole network in one graph (fullgraph: a
    graph break raises), the eager backend so that no code is generated."""
    _compile_fullgraph(CASES[0], "eval")


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", TABLE, ids=_ids)
def test_compile_fullgraph_every_model(case, mode):
    _compile_fullgraph(case, mode)


@pytest.mark.slow
def test_compile_with_inductor():
    """Inductor's generated code (about 1.5 min on 2 CPU cores) gives the eager logits."""
    _compile_fullgraph(CASES[1], "eval", backend="inductor")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", TABLE, ids=_ids)
def test_determinism(case, mode):
    """The same model and input give bitwise the same output twice (torchvision's check)."""
    model = _model(case, mode)
    x = _input()
    assert torch.equal(case.logits(model(x)), case.logits(model(x)))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_traced_and_scripted_models_keep_the_input_check(case):
    """The one-line input error: eagerly, and from an fx graph (the check is a leaf of it);
    torch.export and TorchScript leave it out (their graphs do not run Python)."""
    model = _model(case, "eval")
    small = torch.zeros(1, 3, 8, 8)
    for form in (model, torch.fx.symbolic_trace(model)):
        with pytest.raises(InputSizeError, match="too small for GoogLeNet"):
            form(small)


@pytest.mark.parametrize("size", [SIZE, 224])
def test_fx_traces_the_auxiliary_outputs_with_concrete_args(size):
    """In training mode with ``return_aux`` fixed to True; at 224 the auxiliary heads' pooling
    takes the paper's 5x5/3 branch on the 14x14 map, at 64 the adaptive one (an fx leaf picks on
    the real tensor, so one graph serves both sizes)."""
    case = CASES[0]
    model = _model(case, "train")
    graph = torch.fx.symbolic_trace(model, concrete_args={"return_aux": True})
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    got, expected = graph(x, True), model(x, return_aux=True)
    for a, b in zip(got, expected, strict=True):
        _same(a, b)
    if size == 224:
        other = torch.randn(2, 3, SIZE, SIZE)
        assert graph(other, True).aux1.shape == (2, NUM_CLASSES)
