"""One-pass init (`--fast-init`): the same network, each tensor drawn once from its own path's seed."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from netcli.init.engine import build_model
from netcli.core.errors import NetcliError
from netcli.builder.meta import SkipMetaFills
from netcli.init.draws import CHUNK, chunk_seed, path_seed
from netcli.init.fastinit import needs_real_build
from netcli.builder.validate import load_spec, load_spec_text
from conftest import CONFIGS
from handwritten import FixedHiddenMLP


def drawn(seed: int, name: str, fill) -> torch.Tensor:
    """A whole-tensor draw: what `fill()` gives from the generator seeded by (seed, name)."""
    torch.manual_seed(path_seed(seed, name))
    return fill()


def chunked(seed: int, name: str, shape, draw) -> torch.Tensor:
    """The chunked definition, recomputed here: the flattened values cut into CHUNK-element pieces,
    piece c drawn by `draw(n)` (n values) from the generator seeded by (seed, name, c)."""
    total = math.prod(shape)
    pieces = []
    for c in range(-(-total // CHUNK)):
        torch.manual_seed(path_seed(seed, f"{name}\0{c}"))
        pieces.append(draw(min(CHUNK, total - c * CHUNK)))
    return torch.cat(pieces).reshape(shape)


def kaiming_bound(fan_in: int, a: float = math.sqrt(5)) -> float:
    """nn.init.kaiming_uniform_'s bound (leaky_relu gain), as torch's documentation defines it."""
    return math.sqrt(3.0) * math.sqrt(2.0 / (1 + a ** 2)) / math.sqrt(fan_in)


def test_chunk_seeds_are_path_seeds_of_the_name_and_index():
    assert chunk_seed(3, "0.weight", 2) == path_seed(3, "0.weight\0" "2")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_same_network_as_the_default_path(config):
    loaded = load_spec(str(config))
    fast, default = build_model(loaded, seed=0, fast_init=True), build_model(loaded, seed=0)
    assert str(fast.net) == str(default.net)
    ours, theirs = fast.net.state_dict(), default.net.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype, key
        assert ours[key].device == theirs[key].device, key
        assert torch.isfinite(ours[key].float()).all(), key
    assert [p.requires_grad for p in fast.net.parameters()] == [p.requires_grad for p in default.net.parameters()]
    if loaded.spec.input:
        from netcli.io.inputs import call, make_input
        x = make_input(None, loaded.spec.input, "cpu")
        # a forward may return a tuple (an LSTM's output and state): compare every tensor's shape
        shapes = [[t.shape for t in torch.utils._pytree.tree_leaves(call(n, x))] for n in (fast.net, default.net)]
        assert shapes[0] == shapes[1]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_reproducible_with_its_seed_whatever_was_drawn_before(config):
    loaded = load_spec(str(config))
    torch.manual_seed(1)
    a = build_model(loaded, seed=5, fast_init=True).net.state_dict()
    torch.rand(1000)  # the global stream is elsewhere now
    b = build_model(loaded, seed=5, fast_init=True).net.state_dict()
    c = build_model(loaded, seed=6, fast_init=True).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].numel() > 1)


def test_default_init_is_the_modules_own_drawn_in_seeded_chunks():
    net = build_model(load_spec("configs/mlp.yaml"), seed=3, fast_init=True).net
    # Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) on the weight, U(+-1/sqrt(fan_in)) on the bias;
    # each an i.i.d. draw whose bound comes from the whole weight's fan_in (256)
    w = chunked(3, "2.weight", (10, 256), lambda n: torch.empty(n).uniform_(-kaiming_bound(256), kaiming_bound(256)))
    b = chunked(3, "2.bias", (10,), lambda n: torch.empty(n).uniform_(-1 / math.sqrt(256), 1 / math.sqrt(256)))
    assert torch.equal(net[2].weight, w)
    assert torch.equal(net[2].bias, b)


def test_a_tensor_of_several_chunks():
    text = "model: [{Linear: [1000, 600]}]\ninit: ['normal(std=0.02):0.weight']\n"
    net = build_model(load_spec_text(text, "x.yaml"), seed=2, fast_init=True).net
    assert 600 * 1000 > 2 * CHUNK
    assert torch.equal(net[0].weight, chunked(2, "0.weight", (600, 1000), lambda n: torch.empty(n).normal_(0, 0.02)))
    assert torch.equal(net[0].bias, chunked(2, "0.bias", (600,), lambda n: torch.empty(n).uniform_(
        -1 / math.sqrt(1000), 1 / math.sqrt(1000))))


def test_rules_draw_in_seeded_chunks_whole_tensor_rules_whole():
    text = ("model: [{Linear: [20, 256]}, ReLU, {Linear: [256, 10]}, {Linear: [10, 10]}]\n"
            "init: ['xavier:*', 'normal(std=0.01):2', 'orthogonal:3', 'zeros:*.bias']\n")
    built = build_model(load_spec_text(text, "x.yaml"), seed=4, fast_init=True)
    net = built.net
    bound = math.sqrt(6.0 / (20 + 256))  # xavier_uniform's bound from the whole weight's fans
    assert torch.equal(net[0].weight, chunked(4, "0.weight", (256, 20), lambda n: torch.empty(n).uniform_(-bound, bound)))
    # the last rule that covers a parameter wins: normal, not xavier, on 2.weight
    assert torch.equal(net[2].weight, chunked(4, "2.weight", (10, 256), lambda n: torch.empty(n).normal_(0, 0.01)))
    # orthogonal needs the whole matrix: drawn whole from the name's seed
    assert torch.equal(net[3].weight, drawn(4, "3.weight", lambda: nn.init.orthogonal_(torch.empty(10, 10))))
    assert torch.equal(net[0].bias, torch.zeros(256)) and torch.equal(net[2].bias, torch.zeros(10))
    # the report lists what every rule set, in order, as the default path's does
    default = build_model(load_spec_text(text, "x.yaml"), seed=4)
    assert built.init_report == default.init_report


def test_a_parameter_depends_only_on_the_seed_and_its_name():
    short = build_model(load_spec_text("model: [{Linear: [4, 8]}, ReLU]\n", "a.yaml"), seed=0, fast_init=True)
    longer = build_model(load_spec_text("model: [{Linear: [4, 8]}, ReLU, {Linear: [8, 3]}]\n", "b.yaml"),
                         seed=0, fast_init=True)
    assert torch.equal(short.net[0].weight, longer.net[0].weight)
    assert torch.equal(short.net[0].bias, longer.net[0].bias)


class _CountFills(TorchFunctionMode):
    """Count random fills of real (non-meta) tensors: nn.init's and Tensor.uniform_/normal_ called directly.

    A mode does not see the calls made inside a call it handles, so
    `nn.init.kaiming_uniform_` counts once, not again for its `uniform_`.
    """

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensor = args[0] if args else kwargs.get("tensor")
        if getattr(func, "__name__", "").endswith(("uniform_", "normal_")) and isinstance(tensor, torch.Tensor) \
                and not tensor.is_meta:
            self.count += 1
        return func(*args, **kwargs)


def test_each_parameter_is_initialized_once():
    text = "model: [{Linear: [64, 64]}, {Linear: [64, 64]}, {Linear: [64, 64]}]\ninit: ['xavier:*', 'zeros:*.bias']\n"
    loaded = load_spec_text(text, "x.yaml")
    with _CountFills() as fast:
        build_model(loaded, seed=0, fast_init=True)
    with _CountFills() as default:
        build_model(loaded, seed=0)
    assert fast.count == 3  # xavier on each weight; zeros on the biases draws nothing; no default init
    assert default.count == 9  # as hand-written: kaiming + bias uniform per layer, then xavier again


def test_custom_blocks_are_built_for_real_from_their_paths_seed():
    net = build_model(load_spec("configs/chimera.yaml"), seed=2, fast_init=True).net
    assert needs_real_build(FixedHiddenMLP())
    hand = drawn(2, "2", FixedHiddenMLP)
    for key, value in hand.state_dict().items():
        assert torch.equal(net[2].state_dict()[key], value), key


def test_tied_and_frozen_parameters_keep_their_meaning():
    net = build_model(load_spec("configs/shared.yaml"), seed=0, fast_init=True).net
    assert net[2] is net[4] and net[2].weight is net[4].weight
    frozen = build_model(load_spec("configs/frozen.yaml"), seed=0, fast_init=True).net
    default = build_model(load_spec("configs/frozen.yaml"), seed=0).net
    assert [p.requires_grad for p in frozen.parameters()] == [p.requires_grad for p in default.parameters()]


def test_norm_statistics_and_embeddings():
    text = "model: [{Embedding: [10, 4, 0]}, {BatchNorm1d: 5}, {LayerNorm: 4}]\n"
    net = build_model(load_spec_text(text, "x.yaml"), seed=0, fast_init=True).net
    assert torch.equal(net[0].weight[0], torch.zeros(4))  # padding_idx row, as Embedding's reset_parameters
    assert torch.equal(net[1].running_mean, torch.zeros(5)) and torch.equal(net[1].running_var, torch.ones(5))
    assert int(net[1].num_batches_tracked) == 0
    assert torch.equal(net[2].weight, torch.ones(4)) and torch.equal(net[2].bias, torch.zeros(4))


def test_parent_level_inits_are_built_for_real():
    with torch.device("meta"):
        assert needs_real_build(nn.MultiheadAttention(8, 2))  # _reset_parameters: xavier on in_proj
        assert not needs_real_build(nn.Linear(2, 2))
    text = "model: [{MultiheadAttention: [8, 2]}]\n"
    net = build_model(load_spec_text(text, "x.yaml"), seed=0, fast_init=True).net
    hand = drawn(0, "0", lambda: nn.MultiheadAttention(8, 2))
    assert torch.equal(net[0].in_proj_weight, hand.in_proj_weight)


def test_meta_builds_stay_on_meta():
    built = build_model(load_spec("configs/rgnet.yaml"), device="meta", fast_init=True)
    assert all(t.is_meta for t in built.net.state_dict().values())


def test_bad_rules_are_refused_as_on_the_default_path():
    text = "model: [{Linear: [4, 8]}]\ninit: ['xavier:0.bias']\n"
    with pytest.raises(NetcliError, match="xavier cannot apply to '0.bias'"):
        build_model(load_spec_text(text, "x.yaml"), fast_init=True)


def test_skip_meta_fills_skips_only_meta_fills():
    real = torch.zeros(3)
    with SkipMetaFills():
        real.uniform_(1, 2)
        meta = nn.init.normal_(torch.empty(2, device="meta"))
    assert bool((real >= 1).all())
    assert meta.is_meta


def test_cli_fast_init_writes_what_the_library_builds(run_cli, tmp_path):
    out = tmp_path / "w.safetensors"
    result = run_cli("init", "configs/mlp.yaml", "--fast-init", "--seed", "9", "--rule", "xavier:0", "-o", out)
    assert result.code == 0, result.err
    from safetensors.torch import load_file
    saved = load_file(str(out))
    net = build_model(load_spec("configs/mlp.yaml"), seed=9, rules=["xavier:0"], fast_init=True).net
    for key, value in net.state_dict().items():
        assert torch.equal(saved[key], value), key
    for command in ("build", "run", "save"):
        assert "--fast-init" in run_cli(command, "--help").out


@pytest.mark.parametrize("stem", ["shared", "frozen", "chimera", "mlp"])
def test_a_strict_load_takes_the_files_tensors_into_an_uninitialized_build(stem, tmp_path):
    from netcli.io.checkpoint_save import save_checkpoint
    from netcli.app.restore import restore
    saved = build_model(load_spec(f"configs/{stem}.yaml"), seed=1)
    path = tmp_path / "net.safetensors"
    save_checkpoint(saved, path)
    restored, report = restore(path)
    assert str(restored.net) == str(saved.net)
    ours, theirs = restored.net.state_dict(), saved.net.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    assert [p.requires_grad for p in restored.net.parameters()] == [p.requires_grad for p in saved.net.parameters()]
    assert all(isinstance(p, nn.Parameter) for p in restored.net.parameters())
    if stem == "shared":
        assert restored.net[2].weight is restored.net[4].weight
