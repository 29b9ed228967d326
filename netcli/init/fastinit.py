"""One-pass init (`--fast-init`): build on meta, allocate once, initialize each tensor once, per-path seeds.

The default build is what hand-written code does: every module draws its
default init as it is created, and the spec's rules then draw again over it.
Knowing the whole network and its rules in advance, this path

1. creates every module on the meta device (no memory, no random numbers);
2. allocates each tensor once, directly on its block's device (as `to_empty`);
3. runs each parameter's initializer once: the last rule that covers it
   (rules.py's targets and order), else its module's own `reset_parameters()`;
   a module whose parameters are all covered by rules never draws its default.

Every parameter's values are drawn on the CPU in fixed-size chunks of its
flattened values, chunk c from the generator seeded by
`chunk_seed(seed, name, c)` (a stable hash of the seed, the parameter's name
and c), and copied to the device: one spec and one seed give the same weights
on the CPU, on any GPU, whatever else the process drew before, and at any
world size (`--shard fsdp`: a rank draws only the chunks its shard overlaps).
Initializers that need the whole tensor (orthogonal, eye, dirac, a module's
reset_parameters that is not i.i.d.) draw it whole from `path_seed(seed, name)`
(see `Draw`). The values differ from the default path's (which follows torch's
one RNG stream, as hand-written code does).

A block this cannot initialize from its parts (a module holding tensors
without `reset_parameters`, a private `_reset_parameters`, buffers other than
norm statistics, or a non-torch class without its own `reset_parameters`) is
built normally instead: on the CPU under a generator seeded by its path, then
moved to its device, so it too is reproducible everywhere.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from netcli.builder.builder import Builder, Built, build_network
from netcli.builder.meta import CPU, META
from netcli.builder.tensors import fill_of, tensor_fills
from netcli.core.errors import NetcliError
from netcli.core.ties import canonical_names
from netcli.init.draws import fill, local_part, path_seed, reset
from netcli.init.plan import InitPlan, plan_rules
from netcli.init.rules import all_rules

_NO_VALUES: contextvars.ContextVar[bool] = contextvars.ContextVar("netcli_fastinit_no_values", default=False)


@contextlib.contextmanager
def uninitialized() -> Iterator[None]:
    """Within this block, `--fast-init` builds allocate the tensors but draw no values.

    For a load that overwrites every tensor (app.restore, strict): the
    memory it never touches costs nothing, and nothing is drawn twice.

    >>> with uninitialized():
    ...     built = build_model(loaded, fast_init=True)  # then load_into(built, ckpt, assign=True)
    """
    token = _NO_VALUES.set(True)
    try:
        yield
    finally:
        _NO_VALUES.reset(token)


def resolve_seed(seed: int | None) -> int:
    """The seed of a one-pass build: the given one, else this process's (rank 0's in a job, so ranks agree)."""
    if seed is not None:
        return int(seed)
    chosen = [torch.initial_seed()]
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast_object_list(chosen, src=0)
    return int(chosen[0])


@dataclass
class MetaBuild:
    """A network built on meta (but for blocks built for real), with its checked init plan and seed."""

    built: Built
    plan: InitPlan
    seed: int
    real: set[int]  # id() of the blocks built for real: their tensors already hold values
    runs_on: dict  # id() of a placed block -> its device


def build_on_meta(loaded, dev: torch.device, seed: int | None, inferred: dict, rules: Sequence[str] = ()) -> MetaBuild:
    """Build `loaded`'s structure for `dev` on meta and check its init rules, before any memory is allocated."""
    seed = resolve_seed(seed)
    fast = _FastBuilder(loaded, dev, seed)
    built = build_network(loaded, dev, inferred, fast)  # on meta, but for blocks built for real
    rule_list = all_rules(loaded, rules) if (loaded.spec.init or rules) else []
    plan = plan_rules(built.net, rule_list)  # checks every rule on the meta network before allocating
    # only the network's own modules: an argument built for real and then copied by its owner
    # (TransformerEncoder deep-copies its encoder_layer) was dropped, and its id may be another module's later
    real = {id(m) for m in built.net.modules() if id(m) in fast.real}
    return MetaBuild(built, plan, seed, real, fast.runs_on)


def initialize_in_place(net: nn.Module, meta: MetaBuild) -> None:
    """Draw every tensor's values where it lies (a whole tensor, or this rank's shard of it); see `_initialize`."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        _initialize(net, meta.plan, meta.seed, meta.real)


def build_fast(loaded, dev: torch.device, seed: int | None, inferred: dict, rules: Sequence[str] = ()) -> Built:
    """Build `loaded` on `dev` in one pass; see the module docstring.

    Called by `engine.build_model(..., fast_init=True)` after `preflight.prepare`
    has resolved the device, inferred the sizes and checked the memory.
    """
    meta = build_on_meta(loaded, dev, seed, inferred, rules)
    built = meta.built
    if dev.type != "meta":
        _allocate(built.net, dev, meta.runs_on, set())
    if dev.type != "meta" and not _NO_VALUES.get():
        initialize_in_place(built.net, meta)
    elif dev.type != "meta":  # a load fills what the file holds; a non-persistent buffer is made here
        for module in built.net.modules():
            for attr, t in module._buffers.items():
                if t is not None and isinstance(how := fill_of(module, attr), torch.Tensor):
                    t.copy_(how.to(t.device))
    built.init_report = meta.plan.report(built.net)
    return built


class _FastBuilder(Builder):
    """The builder, creating each layer on meta unless it must be built for real (see `needs_real_build`)."""

    def __init__(self, loaded, device: torch.device, seed: int):
        super().__init__(loaded, device)
        self.seed = seed
        self.real: set[int] = set()  # id() of blocks built for real (their tensors hold values)
        self.kept: list[nn.Module] = []  # those blocks, alive while building: no other module takes their id

    def tensor(self, module, name, node, path, device):
        super().tensor(module, name, node, path, META)  # drawn in place by _initialize, as its fill says

    def layer(self, node, path, device, qualname):
        if self.device.type == "meta":
            return super().layer(node, path, META, qualname)
        try:
            module = super().layer(node, path, META, qualname)
        except NetcliError:
            module = None  # a constructor that needs values: build it for real, which reports a real error
        if module is not None and not needs_real_build(module):
            return module
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(path_seed(self.seed, qualname or "(root)"))
            module = super().layer(node, path, CPU, qualname)
        if device != CPU:
            module = module.to(device)
        self.kept.append(module)
        self.real.add(id(module))
        for m in module.modules():
            self.real.add(id(m))
        return module


def needs_real_build(module: nn.Module) -> bool:
    """Say whether a freshly built (meta) block cannot be initialized from its modules' reset_parameters."""
    if not _is_torch(type(module)) and not _defines_reset(type(module)) and _holds_tensors(module):
        return True  # its __init__ may initialize its children its own way
    for m in module.modules():
        if callable(getattr(m, "_reset_parameters", None)):
            return True  # a parent-level init (MultiheadAttention, Transformer) reset_parameters would miss
        own_params = any(p is not None for p in m._parameters.values())
        own_buffers = any(b is not None for b in m._buffers.values())
        if (own_params or own_buffers) and not callable(getattr(m, "reset_parameters", None)):
            return True
        if own_buffers and not callable(getattr(m, "reset_running_stats", None)):
            return True  # a buffer computed in __init__ (a constant, a table) would be lost
        if m is not module and not _is_torch(type(m)) and not _defines_reset(type(m)) and _holds_tensors(m):
            return True
    return False


def _is_torch(cls: type) -> bool:
    return cls.__module__.startswith("torch.")


def _defines_reset(cls: type) -> bool:
    return any("reset_parameters" in vars(k) for k in cls.__mro__ if k is not nn.Module)


def _holds_tensors(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def _allocate(module: nn.Module, device: torch.device, runs_on: dict, seen: set[int], made: dict | None = None) -> None:
    """Give each meta tensor uninitialized memory on its block's device, once (tied modules and tensors once)."""
    if id(module) in seen:
        return
    seen.add(id(module))
    made = {} if made is None else made  # id(meta tensor) -> (it, its allocation): a tied parameter stays one
    device = runs_on.get(id(module), device)
    for table in (module._parameters, module._buffers):
        for attr, t in table.items():
            if t is None or not t.is_meta:
                continue
            if id(t) not in made:
                # as module.to_empty(device=...), whose empty_like of a meta tensor imports sympy (~0.3 s)
                empty = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=device)
                made[id(t)] = (t, nn.Parameter(empty, t.requires_grad) if isinstance(t, nn.Parameter) else empty)
            table[attr] = made[id(t)][1]
    for child in module.children():
        _allocate(child, device, runs_on, seen, made)


def _refill(module: nn.Module, attr: str, t: torch.Tensor, name: str, seed: int) -> None:
    """Fill a custom block's tensor child as its fill says: drawn chunk-seeded, or its constant values
    (this rank's part of them when it is a shard)."""
    how = fill_of(module, attr)
    if isinstance(how, str):
        fill(t, name, seed, lambda x, d=how: getattr(x, d)())
    elif how is not None:
        dest, start, stop = local_part(t)
        with torch.no_grad():
            dest.copy_(how.flatten()[start:stop].view(dest.shape).to(dest.device))


def _initialize(net: nn.Module, plan: InitPlan, seed: int, real: set[int]) -> None:
    """Run each parameter's last covering rule, else its module's reset_parameters, once, chunk-seeded.

    A parameter may be a DTensor shard (`--shard fsdp`): then only the chunks
    that overlap this rank's rows are drawn (see `draw_values`).
    """
    names, _ = canonical_names(net)
    last = plan.last_rule()  # a `default` rule means the module's own reset_parameters
    done: set[int] = set()
    for mod_name, module in net.named_modules():
        if id(module) in done:
            continue
        done.add(id(module))
        made = tensor_fills(module)  # a custom block's Parameter and Buffer children: drawn as their fill says
        own = [(attr, p) for attr, p in module._parameters.items() if p is not None]
        defaults = [(attr, p) for attr, p in own if id(p) not in last or last[id(p)][0].module_scope]
        if made and id(module) not in real:
            for attr, t in [*defaults, *module._buffers.items()]:
                if attr in made and t is not None:
                    _refill(module, attr, t, f"{mod_name}.{attr}" if mod_name else attr, seed)
            defaults = [(attr, p) for attr, p in defaults if attr not in made]
        has_buffers = any(b is not None for a, b in module._buffers.items() if a not in made)
        if defaults or has_buffers:
            if id(module) not in real:  # a block built for real holds its values already
                reset(module, mod_name, [a for a, _ in defaults], has_buffers, seed)
        for attr, p in own:
            if id(p) in last and (attr, p) not in defaults:
                rule, s = last[id(p)]
                fill(p, names[id(p)], seed, lambda t, r=rule: r.fn(t, *r.args, **r.kwargs), rule)
