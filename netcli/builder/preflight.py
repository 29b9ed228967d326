"""What is settled before a build: the device, the seed, the sizes a spec leaves out, and whether it fits.

Each is decided without allocating: left-out sizes by a pass on the meta
device, the memory a network needs by counting its layers on meta, so a
network that does not fit is refused before the first tensor exists.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from netcli.builder import inference
from netcli.builder.builder import Builder
from netcli.builder.cache import build_cache, layer_key
from netcli.builder.layer_bytes import layer_bytes
from netcli.core.devices import resolve_device
from netcli.core.errors import NetcliError, relocated
from netcli.specfile.loading import LoadedSpec


def prepare(
    loaded: LoadedSpec,
    *,
    device: str | None = None,
    seed: int | None = None,
    input_shape: list[int] | None = None,
    check_readings: bool = False,
) -> tuple[torch.device, int | None, dict[str, dict[str, Any]]]:
    """Resolve the device, seed torch's RNG, infer left-out sizes and check the memory, before building.

    With a seed (`seed` or the spec's `seed:`), `torch.manual_seed` is called,
    so the parameters equal hand-written code's under the same seed. Input sizes
    the spec leaves out are inferred from `input_shape` (default: the spec's
    `input:`), see `infer_sizes`. Return (device, seed, inferred sizes).

    `check_readings`: also run the pass on meta when the only reason is to
    check positional readings against the input (see `infer_sizes`). The
    checks that run a forward on meta anyway (validate, the summary, run)
    ask for it; a plain build does not: a spec that writes every size builds
    as the hand-written code does, without a forward on meta, whose first
    convolution or batch norm alone imports about 1 s of torch (sympy, dynamo).
    """
    spec = loaded.spec
    dev = resolve_device(device, where="--device") if device is not None else resolve_device(spec.device)
    seed = seed if seed is not None else spec.seed
    if seed is not None:
        torch.manual_seed(seed)
    inferred = infer_sizes(
        loaded, input_shape if input_shape is not None else spec.inputs, check_readings=check_readings
    )
    if dev.type != "meta":
        check_memory(loaded, dev, inferred, "--device" if device is not None else None)
    return dev, seed, inferred


def infer_sizes(loaded: LoadedSpec, shape, *, check_readings: bool = True) -> dict[str, dict[str, Any]]:
    """Find the input sizes the spec leaves out, by a first build on the meta device.

    The blocks are created on meta in declaration order and each runs on the
    meta tensor flowing in, so every layer knows its input shape when it is
    created. Nothing is allocated and the CPU RNG is not drawn from, so the
    real build that follows is what hand-written code with the sizes written
    out would do. Inside a custom block the forward decides what flows where:
    the block runs on the flowing tensor and each layer whose size is left out
    is created when the forward first calls it (blocks.Deferred). A spec that
    writes every size skips this, unless `check_readings` asks that its
    positional lists in torch's order be checked against the flowing shape.
    `shape`: a shape, or the spec's input entries.
    """
    if not inference.needs_inference(loaded, readings=check_readings):
        return {}
    flow = inference.Flow(shape)
    meta = Builder(loaded, torch.device("meta"), flow=flow)
    meta.build(loaded.spec.model, ("model",), meta.device, "")  # `ref` blocks are created at first use
    if flow.problems:
        raise NetcliError(flow.problems)
    return meta.inferred


def check_memory(loaded: LoadedSpec, dev: torch.device, inferred: dict, option: str | None) -> None:
    """Refuse, before allocating, a network whose parameters and buffers do not fit the free memory.

    The bytes are counted on a build on the meta device (no memory, no RNG
    draws), each tensor on the device its block is placed on. Each distinct
    layer (node and arguments) is created on meta once per spec; the count
    walks the spec's structure with its ties (a `ref` counts once).
    """
    from netcli.core.devices import ensure_fits

    cache = build_cache(loaded).needed
    key = (str(dev), repr(inferred))  # what the spec needs is the same each time it is built
    needed = cache.get(key)
    if needed is None:
        needed = cache[key] = _needed(loaded, dev, inferred)
    try:
        ensure_fits(needed)
    except NetcliError as exc:
        path = ("device",) if option is None and loaded.spec.device is not None else ("model",)
        raise NetcliError(relocated(exc.problems, option) if option else loaded.relocate(path, exc.problems)) from None


def _needed(loaded: LoadedSpec, dev: torch.device, inferred: dict) -> dict[torch.device, int]:
    """Bytes of parameters and buffers per device, counted on meta."""
    meta = _CountingBuilder(loaded, torch.device("meta"))
    meta.inferred = inferred
    with torch.random.fork_rng(devices=[]):
        meta.create_shared()
        net = meta.build(loaded.spec.model, ("model",), meta.device, "")
    needed: dict[torch.device, int] = {}
    seen: set[int] = set()

    def count(module: nn.Module, device: torch.device) -> None:
        device = meta.runs_on.get(id(module), device)
        if isinstance(module, _Bytes):
            if id(module) not in seen:
                seen.add(id(module))
                needed[device] = needed.get(device, 0) + module.nbytes
            return
        for t in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
            if id(t) not in seen:
                seen.add(id(t))
                needed[device] = needed.get(device, 0) + t.numel() * t.element_size()
        for child in module.children():
            count(child, device)

    count(net, dev)
    return needed


class _Bytes(nn.Module):
    """Stands for one layer in the memory count: the bytes of its parameters and buffers."""

    def __init__(self, nbytes: int):
        super().__init__()
        self.nbytes = nbytes


class _CountingBuilder(Builder):
    """The spec's structure on meta, each layer as its byte count: read from its constructor call for the
    common types (layer_bytes), else the layer made on meta once per spec and counted."""

    def create(self, node, path, device, qualname, cls, args, kwargs):
        if self.quiet:  # an argument of another layer (encoder_layer): that layer needs the real module
            return super().create(node, path, device, qualname, cls, args, kwargs)
        cache = build_cache(self.loaded).layer_bytes
        key = layer_key(node.type, args, kwargs)  # the full call, left-out sizes filled in
        nbytes = cache.get(key)
        if nbytes is None:
            nbytes = layer_bytes(cls, args, kwargs)
            if nbytes is None:
                module = super().create(node, path, device, qualname, cls, args, kwargs)
                tensors = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
                nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
            cache[key] = nbytes
        return _Bytes(nbytes)

    def block(self, node, path, device, qualname):
        module = nn.Module()  # no forward to compile, no ties: only what it holds is counted
        self.children(module, node, path, device, qualname)
        return module
