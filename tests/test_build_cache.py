"""Every build of one loaded spec shares its block classes and checked work (netcli/builder/cache.py)."""

from __future__ import annotations

import pickle
from pathlib import Path

import handwritten_nets
import torch

from netcli.builder.cache import build_cache
from netcli.builder.validate import load_spec
from netcli.init.engine import build_model

CFG = Path(__file__).resolve().parents[1] / "configs"


def _same(net: torch.nn.Module, hand: torch.nn.Module) -> None:
    assert str(net) == str(hand)
    state, expected = net.state_dict(), hand.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def test_a_second_build_of_one_spec_reuses_its_classes_and_equals_hand_written():
    loaded = load_spec(str(CFG / "residual.yaml"))
    first = build_model(loaded, seed=3).net
    cache = build_cache(loaded)
    programs, classes, calls = dict(cache.programs), dict(cache.classes), dict(cache.calls)
    second = build_model(loaded, seed=3).net
    torch.manual_seed(3)
    hand = handwritten_nets.residual()
    _same(first, hand)
    _same(second, hand)
    # one class per definition for every build: a module of either build is an instance of it, and
    # nothing was parsed, made or bound again
    assert type(first[0]) is type(second[0]) and type(first[1]) is type(second[1])
    assert cache.programs == programs and cache.classes == classes and cache.calls == calls
    assert len(cache.programs) == 2  # Residual and Residual1x1, each forward parsed once
    x = torch.rand(4, 3, 6, 6)
    assert torch.equal(first.eval()(x), hand.eval()(x))
    copy = pickle.loads(pickle.dumps(second))
    assert torch.equal(copy.eval()(x), hand(x))


def test_a_spec_read_again_gets_a_cache_of_its_own():
    a, b = load_spec(str(CFG / "residual.yaml")), load_spec(str(CFG / "residual.yaml"))
    build_model(a, seed=0)
    assert build_cache(a) is build_cache(a) and build_cache(b) is not build_cache(a)
    assert build_cache(b).classes == {} and build_cache(a).classes  # b is checked (its forwards parsed), not built
