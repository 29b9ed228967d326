"""The memory check's byte count read from a constructor call equals the layer made on meta, for every type it
reads (netcli/builder/layer_bytes.py), over drawn arguments; a type or call it cannot read is left to meta."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from netcli.builder.layer_bytes import _RULES, layer_bytes

sizes = st.integers(1, 64)
flags = st.booleans()


def counted_on_meta(cls, args, kwargs) -> int:
    with torch.device("meta"):
        module = cls(*args, **kwargs)
    tensors = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def kernel(dims: int):
    return st.one_of(st.integers(1, 5), st.lists(st.integers(1, 5), min_size=dims, max_size=dims).map(tuple))


@st.composite
def conv_call(draw, dims: int):
    groups = draw(st.integers(1, 4))
    n_in, n_out = groups * draw(st.integers(1, 8)), groups * draw(st.integers(1, 8))
    args = [n_in, n_out, draw(kernel(dims))]
    kwargs = {"groups": groups, "bias": draw(flags)}
    if draw(flags):  # the positional form of a keyword argument
        args += [draw(st.integers(1, 3)), draw(st.integers(0, 2))]
    return args, kwargs


CALLS = {
    nn.Linear: st.tuples(st.tuples(sizes, sizes), st.fixed_dictionaries({"bias": flags})),
    nn.BatchNorm1d: st.tuples(st.tuples(sizes), st.fixed_dictionaries({"affine": flags, "track_running_stats": flags})),
    nn.BatchNorm2d: st.tuples(st.tuples(sizes), st.fixed_dictionaries({"affine": flags, "track_running_stats": flags})),
    nn.BatchNorm3d: st.tuples(st.tuples(sizes), st.fixed_dictionaries({"affine": flags, "track_running_stats": flags})),
    nn.LayerNorm: st.tuples(
        st.tuples(st.one_of(sizes, st.lists(sizes, min_size=1, max_size=3))),
        st.fixed_dictionaries({"elementwise_affine": flags, "bias": flags}),
    ),
    nn.GroupNorm: st.integers(1, 4).flatmap(
        lambda g: st.tuples(st.tuples(st.just(g), sizes.map(lambda c: c * g)), st.fixed_dictionaries({"affine": flags}))
    ),
    nn.Embedding: st.tuples(st.tuples(sizes, sizes), st.fixed_dictionaries({})),
}
for dims, types in ((1, (nn.Conv1d, nn.ConvTranspose1d)), (2, (nn.Conv2d, nn.ConvTranspose2d)),
                    (3, (nn.Conv3d, nn.ConvTranspose3d))):
    for cls in types:
        CALLS[cls] = conv_call(dims)


@pytest.mark.parametrize("cls", list(CALLS), ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_count_read_from_the_call_equals_the_layer_on_meta(cls, data):
    args, kwargs = data.draw(CALLS[cls])
    assert layer_bytes(cls, list(args), dict(kwargs)) == counted_on_meta(cls, args, kwargs)


def test_the_types_read_as_holding_nothing_hold_nothing():
    import inspect

    parameter_free = [cls for cls in _RULES if cls not in CALLS]
    assert len(parameter_free) >= 20
    for cls in parameter_free:  # each made with its required arguments (a kernel or output size of 2)
        required = [
            p
            for p in inspect.signature(cls).parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        args = [2] * len(required)
        module = cls(*args)
        assert not list(module.parameters()) and not list(module.buffers()), cls
        assert layer_bytes(cls, args, {}) == 0


@pytest.mark.parametrize(
    "cls,args,kwargs",
    [
        (nn.Linear, [4, 8], {"dtype": torch.float64}),  # another dtype: meta tells
        (nn.Linear, [4.0, 8], {}),  # not an int: the constructor decides, on meta
        (nn.Conv2d, [3, 4, 3], {"groups": 2}),  # 3 channels in 2 groups: torch refuses it, on meta
        (nn.LSTM, [4, 8], {}),  # a type this module does not read
        (nn.Embedding, [10, 4], {"_weight": torch.zeros(10, 4)}),
    ],
)
def test_a_call_it_cannot_read_is_left_to_meta(cls, args, kwargs):
    assert layer_bytes(cls, args, kwargs) is None


def test_the_memory_check_of_a_network_counts_what_it_builds():
    """The memory check's total for resnet18 (every layer read from its call) is the built network's bytes."""
    from netcli.builder import preflight
    from netcli.builder.validate import load_spec
    from netcli.init.engine import build_model

    loaded = load_spec("configs/resnet18.yaml")
    needed = preflight._needed(loaded, torch.device("cpu"), {})
    net = build_model(loaded, seed=0).net
    tensors = {id(t): t for t in [*net.parameters(), *net.buffers()]}
    assert needed == {torch.device("cpu"): sum(t.numel() * t.element_size() for t in tensors.values())}
