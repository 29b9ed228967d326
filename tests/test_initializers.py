"""The built-in initializers: each equals its torch.nn.init counterpart under the same seed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from netcli import registry
from netcli.core.errors import NetcliError

registry.ensure_loaded()
INITS = registry.initializers

# SPEC 1.4's list, plus the names torch spells out and the custom rule's alias
SPEC_NAMES = ["zeros", "ones", "constant", "normal", "uniform", "xavier", "xavier_uniform", "xavier_normal",
              "kaiming", "kaiming_uniform", "kaiming_normal", "orthogonal", "trunc_normal", "eye", "dirac",
              "default", "custom", "my_init"]

# (name, args, kwargs, shape, the torch.nn.init call it must equal)
TWINS = [
    ("zeros", (), {}, (8, 4), lambda t: nn.init.zeros_(t)),
    ("ones", (), {}, (8, 4), lambda t: nn.init.ones_(t)),
    ("constant", (42,), {}, (8, 4), lambda t: nn.init.constant_(t, 42)),
    ("normal", (), {"std": 0.01}, (8, 4), lambda t: nn.init.normal_(t, mean=0, std=0.01)),
    ("uniform", (-10, 10), {}, (8, 4), lambda t: nn.init.uniform_(t, -10, 10)),
    ("xavier", (), {}, (8, 4), lambda t: nn.init.xavier_uniform_(t)),
    ("xavier_uniform", (), {"gain": 2.0}, (8, 4), lambda t: nn.init.xavier_uniform_(t, gain=2.0)),
    ("xavier_normal", (), {}, (8, 4), lambda t: nn.init.xavier_normal_(t)),
    ("kaiming", (), {}, (8, 4), lambda t: nn.init.kaiming_uniform_(t)),
    ("kaiming_uniform", (), {"nonlinearity": "relu"}, (8, 4),
     lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu")),
    ("kaiming_normal", (), {"mode": "fan_out"}, (8, 4), lambda t: nn.init.kaiming_normal_(t, mode="fan_out")),
    ("orthogonal", (), {}, (8, 4), lambda t: nn.init.orthogonal_(t)),
    ("trunc_normal", (), {"std": 0.02}, (8, 4), lambda t: nn.init.trunc_normal_(t, std=0.02)),
    ("eye", (), {}, (8, 4), lambda t: nn.init.eye_(t)),
    ("dirac", (), {}, (4, 4, 3), lambda t: nn.init.dirac_(t)),
]


def test_every_initializer_spec_lists_is_registered():
    missing = [n for n in SPEC_NAMES if n not in INITS]
    assert not missing


@pytest.mark.parametrize("name,args,kwargs,shape,twin", TWINS, ids=[t[0] for t in TWINS])
def test_initializer_equals_torch_nn_init(name, args, kwargs, shape, twin):
    torch.manual_seed(7)
    expected = twin(torch.empty(shape))
    state_after = torch.random.get_rng_state()
    torch.manual_seed(7)
    got = INITS.get(name)(torch.empty(shape), *args, **kwargs)
    assert torch.equal(got, expected)
    assert torch.equal(torch.random.get_rng_state(), state_after)  # the same draws, no more


def test_aliases_are_the_same_initializer():
    assert INITS.get("xavier") is INITS.get("xavier_uniform")
    assert INITS.get("kaiming") is INITS.get("kaiming_uniform")
    assert INITS.get("custom") is INITS.get("my_init")


def test_custom_rule_is_the_chapters_my_init():
    w = torch.empty(100_000)
    torch.manual_seed(0)
    INITS.get("custom")(w)
    torch.manual_seed(0)
    ref = nn.init.uniform_(torch.empty(100_000), -10, 10)
    ref *= ref.abs() >= 5
    assert torch.equal(w, ref)
    # U(5, 10) with prob. 1/4, 0 with prob. 1/2, U(-10, -5) with prob. 1/4
    assert ((w == 0) | ((w.abs() >= 5) & (w.abs() <= 10))).all()
    assert 0.48 < (w == 0).float().mean() < 0.52
    assert 0.23 < (w >= 5).float().mean() < 0.27


def test_custom_rule_on_a_parameter_needs_no_grad_from_the_caller():
    p = nn.Parameter(torch.empty(8, 4))
    INITS.get("custom")(p)
    assert p.requires_grad and p.grad_fn is None


@pytest.mark.parametrize("name", [n for n in SPEC_NAMES if n != "default"])
def test_each_initializer_dry_runs_on_meta_without_drawing(name):
    # rules.check_rules runs them on meta tensors: that must not use the RNG
    args = (1.0,) if name == "constant" else ()
    shape = (4, 4, 3) if name == "dirac" else (8, 4)
    state = torch.random.get_rng_state()
    out = INITS.get(name)(torch.empty(shape, device="meta"), *args)
    assert out.device.type == "meta"
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("name,dims", [("xavier", 1), ("kaiming_normal", 1), ("orthogonal", 1),
                                       ("eye", 3), ("dirac", 2)])
def test_dimension_requirements_are_declared(name, dims):
    low, high, why = INITS.entry(name).meta["dims"]
    assert not (low <= dims <= (high if high is not None else 99)) and why


def test_a_second_registration_of_a_name_is_refused():
    with pytest.raises(NetcliError, match="initializer 'normal' is already registered"):
        registry.register_init(lambda t: t, name="normal")


@pytest.mark.parametrize("name,args", [("uniform", (10, -10)), ("trunc_normal", (0.0, 1.0, 3.0, -3.0))])
def test_empty_ranges_are_refused_even_on_meta(name, args):
    with pytest.raises(ValueError, match="empty"):
        INITS.get(name)(torch.empty(3, device="meta"), *args)


def test_a_rule_that_fails_its_dry_run_fails_again_on_every_build():
    """The dry runs that passed are remembered per (initializer, arguments, shape, dtype), so a network built
    again is not checked again; a rule that failed is refused on each build, and the same initializer with
    other arguments is tried anew."""
    import netcli

    spec = {"model": [{"Linear": [4, 8]}, "ReLU", {"Linear": [8, 2]}]}
    for _ in range(2):
        with pytest.raises(netcli.SpecError, match=r"uniform cannot apply to '0.weight'.*empty"):
            netcli.build(spec, rules=["uniform(10, -10):0"])
    netcli.build(spec, rules=["uniform(-10, 10):0"])
    with pytest.raises(netcli.SpecError, match=r"uniform cannot apply to '2.weight'.*empty"):
        netcli.build(spec, rules=["uniform(-10, 10):0", "uniform(10, -10):2"])
