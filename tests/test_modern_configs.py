"""The transformer-era configs (SPEC 1.8) build what their hand-written twins build, bit for bit.

For each configs/STEM.yaml whose twin is in tests/handwritten_modern.py: the same print, state_dict keys,
values under seeds 0 and 1234 (ties included: the same parameters are one tensor), eval-mode outputs on
the same inputs, and `netcli code`'s module builds the same (test_eject.py checks every shipped config's
file against `netcli build` and with ruff). vit_tiny and gpt_nano compile with torch.compile(fullgraph=True).
"""

from __future__ import annotations

import pytest
import torch
from conftest import CONFIGS
from handwritten_modern import MODERN_INPUTS, MODERN_TWINS, example_inputs
from test_eject import write_and_import

from netcli.app.eject import eject
from netcli.builder.validate import load_spec
from netcli.init.engine import build_model
from netcli.io.inputs import call, make_input

SEEDS = [0, 1234]
SHIPPED = [c for c in CONFIGS if c.stem in MODERN_TWINS]


def _twin(stem, seed):
    torch.manual_seed(seed)
    return MODERN_TWINS[stem]()


def _built(config, seed):
    return build_model(load_spec(str(config)), seed=seed).net


def assert_same(a, b):
    """Equal outputs, bit for bit: a tensor, or tuples/lists of them as the forward returns them."""
    if isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert isinstance(a, (tuple, list)) and len(a) == len(b), (type(a), type(b))
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)


def assert_same_network(ours, theirs):
    """The same print, keys, values, requires_grad and ties (which parameters are one tensor)."""
    assert str(ours) == str(theirs)
    mine, hand = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(hand)
    for key in hand:
        assert torch.equal(mine[key], hand[key]), key
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [p.requires_grad for p in ours.parameters()] == [p.requires_grad for p in theirs.parameters()]
    assert _tie_groups(ours) == _tie_groups(theirs)


def _tie_groups(net):
    groups = {}
    for name, p in net.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return sorted(names for names in groups.values() if len(names) > 1)


# resnet50 keeps its real 23.5M-parameter layout: a few seconds per build
@pytest.fixture(
    params=[pytest.param(c, marks=[pytest.mark.slow] if c.stem == "resnet50" else []) for c in SHIPPED],
    ids=lambda p: p.stem,
)
def config(request):
    return request.param


def test_print_matches_handwritten(config, run_cli):
    result = run_cli("build", config, "--print")
    assert result.code == 0, result.err
    assert result.out == str(_twin(config.stem, 0)) + "\n"


@pytest.mark.parametrize("seed", SEEDS)
def test_network_bit_identical_under_seed(config, seed):
    assert_same_network(_built(config, seed), _twin(config.stem, seed))


def test_spec_input_is_the_twins(config):
    entries = load_spec(str(config)).spec.inputs
    assert [(tuple(e.shape), e.dtype, e.high) for e in entries] == [
        (shape, str(dtype).removeprefix("torch."), high) for shape, dtype, high in MODERN_INPUTS[config.stem]
    ]


def test_eval_outputs_identical(config):
    # eval mode: batch norm's running statistics and dropout's masks make train-mode runs differ
    built, hand = _built(config, 7).eval(), _twin(config.stem, 7).eval()
    xs = example_inputs(config.stem, torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert_same(built(*xs), hand(*xs))


def test_train_mode_outputs_and_gradients_identical(config):
    # the same dropout masks and batch statistics from the same global seed, and the same gradients
    built, hand = _built(config, 7).train(), _twin(config.stem, 7).train()
    xs = example_inputs(config.stem, torch.Generator().manual_seed(3))
    torch.manual_seed(11)
    ours = built(*xs)
    torch.manual_seed(11)
    theirs = hand(*xs)
    assert_same(ours, theirs)
    for y in (ours, theirs):
        (y if isinstance(y, torch.Tensor) else y[0]).float().sum().backward()
    for (name, p), (_, q) in zip(built.named_parameters(), hand.named_parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), name
        assert p.grad is None or torch.equal(p.grad, q.grad), name


def test_ejected_code_builds_the_twin(config, tmp_path):
    loaded = load_spec(str(config))
    _, module = write_and_import(eject(loaded, spec_args=f"configs/{config.name}"), tmp_path, config.stem)
    for seed in SEEDS:
        assert_same_network(module.build(seed), _twin(config.stem, seed))
    ours, theirs = module.build(7).eval(), _twin(config.stem, 7).eval()
    x = make_input(None, loaded.spec.input, torch.device("cpu"))
    with torch.no_grad():
        assert_same(call(ours, x), call(theirs, x))


@pytest.mark.parametrize("stem", [s for s, inputs in MODERN_INPUTS.items() if inputs[0][1] == torch.int64])
def test_run_on_your_own_token_ids_prints_the_twins_output(stem, run_cli, root, tmp_path):
    # `run --input` keeps a file's int64 dtype; one --input per forward input, in order; --eval as net.eval()
    config = root / "configs" / f"{stem}.yaml"
    xs = example_inputs(stem, torch.Generator().manual_seed(5))
    files = []
    for i, x in enumerate(xs):
        files += ["--input", tmp_path / f"in{i}.pt"]
        torch.save(x, files[-1])
    result = run_cli("run", config, *files, "--seed", "2", "--eval")
    assert result.code == 0, result.err
    assert result.out == str(_twin(stem, 2).eval()(*xs)) + "\n"  # as print(net(X)) shows it, grad_fn included


@pytest.mark.parametrize("stem", ["vit_tiny", "gpt_nano"])
def test_compiles_whole_with_no_graph_break(stem, root):
    # fullgraph=True raises at the first graph break; the "eager" backend keeps the check cheap on a CPU
    torch._dynamo.reset()
    net = _built(root / "configs" / f"{stem}.yaml", 0).eval()
    xs = example_inputs(stem, torch.Generator().manual_seed(3))
    compiled = torch.compile(net, fullgraph=True, backend="eager")
    # with gradients on: under no_grad nn.TransformerEncoderLayer takes its fused fast path in eager mode only
    torch.testing.assert_close(compiled(*xs), net(*xs))
    explained = torch._dynamo.explain(net)(*xs)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons


def test_the_docs_vit_example_is_the_shipped_config(root):
    # docs/SPEC-LANGUAGE.md shows configs/vit_tiny.yaml's text, which the tests above hold to the twin
    doc = (root / "docs" / "SPEC-LANGUAGE.md").read_text()
    start = doc.index("```yaml\n# a tiny ViT: ") + len("```yaml\n")
    example = doc[start : doc.index("```", start)]
    shipped = (root / "configs" / "vit_tiny.yaml").read_text()
    assert example.split("\n", 1)[1] == shipped[shipped.index("input:") :]
