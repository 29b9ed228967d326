"""Every shipped config builds what its hand-written PyTorch builds: repr, keys, parameters, outputs."""
from __future__ import annotations

import pytest
import torch

import handwritten_nets
from conftest import CONFIGS
from handwritten import HANDWRITTEN
from handwritten_modern import MODERN_TWINS
from netcli.init.engine import build_model
from netcli.builder.validate import load_spec
from netcli.io.inputs import call, make_input

SEEDS = [0, 1, 1234]
# The chapter's nets and the everyday ones (tests/handwritten_nets.py); configs/vgg11.yaml ships at the
# reduced size D2L trains, its full size is test_full_size_vgg11 below.
TWINS = {**HANDWRITTEN, **handwritten_nets.EXTRA_TWINS, "vgg11": handwritten_nets.vgg11_small}


def _handwritten(stem, seed):
    torch.manual_seed(seed)
    return TWINS[stem]()


@pytest.fixture(params=[c for c in CONFIGS if c.stem in TWINS], ids=lambda p: p.stem)
def config(request):
    return request.param


def test_every_shipped_config_has_a_handwritten_twin(root):
    # the parametrized tests below cover configs listed in TWINS, tests/test_modern_configs.py those in MODERN_TWINS
    missing = [c.stem for c in CONFIGS if c.stem not in TWINS and c.stem not in MODERN_TWINS]
    assert not missing, f"configs without a hand-written twin in tests/handwritten*.py: {missing}"


def test_print_matches_handwritten(config, run_cli):
    result = run_cli("build", config, "--print")
    assert result.code == 0, result.err
    assert result.out == str(_handwritten(config.stem, 0)) + "\n"


@pytest.mark.parametrize("seed", SEEDS)
def test_parameters_bit_identical_under_seed(config, seed):
    built = build_model(load_spec(str(config)), seed=seed)
    hand = _handwritten(config.stem, seed)
    ours, theirs = built.net.state_dict(), hand.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    assert [p.requires_grad for p in built.net.parameters()] == [p.requires_grad for p in hand.parameters()]


def test_outputs_identical(config):
    # in eval mode: batch norm's running statistics and dropout's masks make train-mode runs differ
    loaded = load_spec(str(config))
    built = build_model(loaded, seed=7)
    hand = _handwritten(config.stem, 7)
    built.net.eval(), hand.eval()
    x = make_input(None, loaded.spec.input, "cpu")
    with torch.no_grad():
        assert torch.equal(call(built.net, x), call(hand, x))


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.stem in handwritten_nets.EXAMPLE_OUTPUTS],
                         ids=lambda p: p.stem)
def test_everyday_configs_take_their_twins_example_input(config):
    loaded = load_spec(str(config))
    stem = "vgg11_small" if config.stem == "vgg11" else config.stem
    shape, dtype, high = handwritten_nets.EXAMPLE_INPUTS[stem]
    entry = loaded.spec.inputs[0]
    assert (tuple(entry.shape), entry.dtype, entry.high) == (shape, str(dtype).removeprefix("torch."), high)
    built = build_model(loaded, seed=0)
    built.net.eval()
    with torch.no_grad():
        assert tuple(built.net(handwritten_nets.example_input(stem)).shape) == handwritten_nets.EXAMPLE_OUTPUTS[stem]


def test_full_size_vgg11_is_the_books(run_cli, root):
    """configs/vgg11.yaml at the book's size (128.8M parameters): the same print, keys and shapes as vgg11(),
    on meta (the values follow from the same spec, checked at the shipped size above)."""
    sets = ["vars.c1=64", "vars.c2=128", "vars.c3=256", "vars.c4=512", "vars.hidden=4096", "input=[1,1,224,224]"]
    loaded = load_spec(str(root / "configs/vgg11.yaml"), [f"{s}" for s in sets])
    net = build_model(loaded, device="meta").net
    with torch.device("meta"):
        hand = handwritten_nets.vgg11()
    assert str(net) == str(hand)
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in hand.state_dict().items()}
    assert sum(p.numel() for p in net.parameters()) == 128_806_154


def test_rgnet_prints_the_chapters_block_names(run_cli, root):
    out = run_cli("build", root / "configs/rgnet.yaml", "--print").out
    assert [line.strip().split(":")[0] for line in out.splitlines() if "block" in line] == [
        "(block 0)", "(block 1)", "(block 2)", "(block 3)"]


def test_shared_layer_is_one_module_and_gradients_add_up(root):
    net = build_model(load_spec(str(root / "configs/shared.yaml")), seed=0).net
    assert net[2] is net[4]
    assert net[2].weight is net[4].weight
    assert len(list(net.parameters())) == 6  # the tied pair counted once
    x = torch.rand(2, 4)
    net(x).sum().backward()
    grad_tied = net[2].weight.grad.clone()
    # The same computation with two separate copies of the layer: the tied grad is their sum.
    import copy
    a, b = copy.deepcopy(net[2]), copy.deepcopy(net[2])
    for p in list(a.parameters()) + list(b.parameters()):
        p.grad = None
    untied = torch.nn.Sequential(copy.deepcopy(net[0]), torch.nn.ReLU(), a, torch.nn.ReLU(), b,
                                 torch.nn.ReLU(), copy.deepcopy(net[6]))
    untied(x).sum().backward()
    assert torch.allclose(grad_tied, a.weight.grad + b.weight.grad)
    assert not torch.allclose(a.weight.grad, b.weight.grad)


def test_frozen_parameters_take_no_gradient(root):
    net = build_model(load_spec(str(root / "configs/frozen.yaml")), seed=0).net
    net(torch.rand(2, 20)).sum().backward()
    assert net[0].weight.grad is None and net[0].bias.grad is None
    assert net[2].weight.grad is not None


def test_fixed_hidden_mlp_keeps_its_constant_weight_as_a_buffer(root):
    net = build_model(load_spec(str(root / "configs/chimera.yaml")), seed=0).net
    assert "2.rand_weight" in net.state_dict()
    assert "2.rand_weight" not in dict(net.named_parameters())


def test_run_prints_what_print_net_x_prints(run_cli, root):
    result = run_cli("run", root / "configs/mlp.yaml", "--seed", "3")
    torch.manual_seed(3)
    net = HANDWRITTEN["mlp"]()
    x = torch.rand(2, 20)
    assert result.code == 0, result.err
    assert result.out == str(net(x)) + "\n"


def test_every_shipped_config_validates_with_its_shapes_checked(run_cli, root):
    import json
    result = run_cli("validate", *sorted((root / "configs").glob("*.yaml")), "--json")
    assert result.code == 0, result.err
    for entry in json.loads(result.out):
        assert entry["ok"], entry
        # only a block with a `while` on tensor values stops the meta-device shape check
        expected_note = "FixedHiddenMLP" in (root / entry["file"]).read_text()
        assert (entry["note"] is not None) == expected_note, entry
