"""World-size-independent draws: each tensor's values in seeded chunks, so any rank draws only its rows.

A tensor's flattened values are cut into chunks of CHUNK elements; chunk c is
drawn from a generator seeded by `chunk_seed(seed, name, c)`, so the values
depend on the seed and the tensor's name only: the same on the CPU, on any
GPU, in one process or on any number of ranks holding shards of it. An
initializer that needs the whole tensor (orthogonal, eye, dirac, a module's
reset that is not i.i.d.) draws it whole from `path_seed(seed, name)`.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from netcli.builder.meta import META
from netcli.core.errors import NetcliError, first_line


def path_seed(seed: int, path: str) -> int:
    """Return a stable 63-bit seed for one tensor or block: a hash of the seed and its dotted path."""
    digest = hashlib.blake2b(f"{seed}\0{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


CHUNK = 1 << 18  # elements per chunk of a tensor's flattened values; part of the values' definition

# Initializers whose values do not depend on the tensor's shape: each chunk is drawn by calling them
# on the chunk itself (a flat tensor). The fan-based ones (xavier, kaiming) are recorded on a meta
# tensor of the full shape instead (their bound or std comes from the whole shape), then replayed.
SHAPE_FREE = {"normal", "uniform", "constant", "zeros", "ones", "trunc_normal", "custom", "my_init"}
_REPLAYABLE = {"uniform_", "normal_", "fill_", "zero_", "mul_", "add_"}


def chunk_seed(seed: int, name: str, index: int) -> int:
    """The seed of chunk `index` of tensor `name`: a stable hash of the three."""
    return path_seed(seed, f"{name}\0{index}")


class Draw:
    """How one tensor's values are drawn: chunk by chunk (i.i.d. initializers) or whole.

    - chunks: the flattened values are cut into `CHUNK`-element pieces; piece
      c is drawn into a fresh CPU tensor from the generator seeded by
      `chunk_seed(seed, name, c)`, by calling the initializer on it
      (`SHAPE_FREE`) or by replaying the in-place random ops the initializer
      applied to a meta tensor of the full shape (so a fan-based bound is the
      whole tensor's). Any rank can draw any piece alone: the values do not
      depend on how the tensor is split.
    - whole: an initializer that needs the whole tensor (orthogonal, eye,
      dirac, a plugin's, a module's reset_parameters that is not i.i.d.) draws
      it whole on the CPU from `path_seed(seed, name)`, one tensor at a time.
    """

    def __init__(self, name: str, shape, dtype, whole, chunk=None):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype
        self.whole = whole  # fn(full CPU tensor)
        self.chunk = chunk  # fn(flat CPU chunk), or None: draw whole

    def values(self, seed: int, start: int, stop: int) -> torch.Tensor:
        """The flattened values [start, stop) on the CPU (under fork_rng: reseeds the default generator)."""
        n = 1
        for s in self.shape:
            n *= s
        if self.chunk is None:
            torch.default_generator.manual_seed(path_seed(seed, self.name))
            t = torch.empty(self.shape, dtype=self.dtype)
            self.whole(t)
            return t.reshape(-1)[start:stop]
        pieces = []
        for c in range(start // CHUNK, -(-stop // CHUNK)):
            lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
            buf = torch.empty(hi - lo, dtype=self.dtype)
            torch.default_generator.manual_seed(chunk_seed(seed, self.name, c))
            self.chunk(buf)
            pieces.append(buf[max(start, lo) - lo : min(stop, hi) - lo])
        if not pieces:
            return torch.empty(0, dtype=self.dtype)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def _recorded(call, target: torch.Tensor):
    """Run `call()` on meta stand-ins; return a replay fn if it only drew i.i.d. in place into `target`, else None."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops: list = []
    bad: list = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if any(a is target for a in args[1:]) or any(v is target for v in kwargs.values()):
                bad.append(func)  # the target's values feed another op (copy, where, abs...)
            elif args and args[0] is target:
                name = func._schema.name.split("::")[-1]
                rest = list(args[1:])
                if (
                    name in _REPLAYABLE
                    and not any(isinstance(a, torch.Tensor) for a in rest)
                    and all(v is None for v in kwargs.values())
                ):
                    ops.append((name, rest))
                else:
                    bad.append(func)
            return func(*args, **kwargs)

    try:
        with Recorder():
            call()
    except Exception:
        return None
    if bad or not ops or not any(name in ("uniform_", "normal_", "fill_", "zero_") for name, _ in ops):
        return None  # nothing drawn into it (a meta short-cut), or not elementwise: draw it whole

    def replay(buf: torch.Tensor) -> None:
        for name, rest in ops:
            getattr(buf, name)(*rest)

    return replay


def _meta_like(p: torch.Tensor) -> torch.Tensor:
    return torch.empty(tuple(p.shape), dtype=p.dtype, device=META)


def rule_draw(name: str, p: torch.Tensor, fn, rule=None) -> Draw:
    """The Draw of a rule's initializer `fn` on parameter `p` (named `name`)."""
    init = getattr(rule, "init", None)
    if init in SHAPE_FREE:
        return Draw(name, p.shape, p.dtype, fn, fn)
    stand_in = _meta_like(p)
    return Draw(name, p.shape, p.dtype, fn, _recorded(lambda: fn(stand_in), stand_in))


def reset_draw(module: nn.Module, attr: str, name: str, stand_ins: dict) -> Draw:
    """The Draw of `module.reset_parameters()` for its parameter `attr`, the others meta stand-ins."""
    p = module._parameters[attr]
    assert p is not None  # `attr` names one of the module's parameters

    def with_target(t: torch.Tensor) -> None:
        module._parameters.update(stand_ins)
        module._parameters[attr] = t if isinstance(t, nn.Parameter) else nn.Parameter(t, requires_grad=p.requires_grad)
        module.reset_parameters()  # type: ignore[operator]  # the modules this draws for define it

    target = stand_ins[attr]
    return Draw(name, p.shape, p.dtype, with_target, _recorded(lambda: with_target(target), target))


def local_part(p: torch.Tensor):
    """(the tensor to write, first and last+1 flat index it holds) for a parameter or its DTensor shard."""
    try:
        from torch.distributed.tensor import DTensor, Shard
    except ImportError:  # pragma: no cover - torch without distributed
        return p, 0, p.numel()
    if isinstance(p, DTensor):
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

        if any(not isinstance(pl, Shard) or pl.dim != 0 for pl in p.placements if not pl.is_replicate()):
            raise NetcliError(
                f"a parameter sharded as {p.placements} cannot be initialized in place",
                hint="netcli shards parameters along their first dimension (FSDP2's Shard(0))",
            )
        local = p.to_local()
        shape, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
        row = 1
        for s in p.shape[1:]:
            row *= s
        start = (offset[0] if len(offset) else 0) * row
        return local, start, start + local.numel()
    return p, 0, p.numel()


def write_draw(p: torch.Tensor, draw: Draw, seed: int) -> None:
    """Draw the values of the part of `p` this process holds; copy them in."""
    dest, start, stop = local_part(p)
    if stop <= start:
        return
    values = draw.values(seed, start, stop)
    with torch.no_grad():
        dest.copy_(values.view(dest.shape))


def fill(p: torch.Tensor, name: str, seed: int, fn, rule=None) -> None:
    """Draw a rule's initializer `fn` into `p`, chunk-seeded by (seed, name, chunk) (see `Draw`)."""
    try:
        write_draw(p, rule_draw(name, p, fn, rule), seed)
    except NetcliError:
        raise
    except Exception as exc:
        if rule is None:
            raise
        raise NetcliError(
            rule.problem(
                f"{rule.init} failed on '{name}': {type(exc).__name__}: {first_line(exc)}", "check the rule's arguments"
            )
        ) from exc


def reset(module: nn.Module, mod_name: str, attrs: list[str], buffers: bool, seed: int) -> None:
    """Run `module.reset_parameters()` for each parameter in `attrs`, the others swapped for meta stand-ins.

    Each parameter's values come from its own name's chunk seeds (or, for a
    reset that is not i.i.d., its name's seed, drawn whole); the module's
    other parameters are meta stand-ins there (nothing drawn, no memory), so
    each value depends only on the seed and the parameter's name.
    """
    real = dict(module._parameters)
    stand_ins = {
        a: (
            nn.Parameter(torch.empty(tuple(p.shape), dtype=p.dtype, device=META), requires_grad=p.requires_grad)
            if p is not None
            else None
        )
        for a, p in real.items()
    }
    prefix = f"{mod_name}." if mod_name else ""
    try:
        for attr in attrs:
            draw = reset_draw(module, attr, prefix + attr, stand_ins)
            module._parameters.update(real)
            write_draw(real[attr], draw, seed)  # type: ignore[arg-type]  # real holds the parameters of attrs
        if buffers:  # norm statistics: deterministic, on the device itself
            module._parameters.update(stand_ins)
            module.reset_running_stats()  # type: ignore[operator]  # buffers: norm statistics
    finally:
        module._parameters.update(real)
