"""What a network costs to run, per block: FLOPs, MACs and activation bytes, counted on meta.

FLOPs are counted by torch's own `torch.utils.flop_counter.FlopCounterMode`
at the aten level, so a matmul inside a custom block's forward or inside
attention counts as much as one inside a Linear (torchinfo counts only the
weight-bearing layers). Its registry covers the operations that dominate a
network's cost: mm, addmm, bmm, baddbmm, convolution, scaled-dot-product and
flex attention, and their backward; elementwise operations (ReLU, additions,
normalization) count nothing, as in fvcore and torch's counter. Every one of
those operations is a multiply-accumulate, so MACs are exactly half the FLOPs.
LSTM, GRU and RNN run as single kernels the counter does not know: their
matrix products are computed from the module's sizes instead (cost_rnn.py).

Counting runs the network once on the meta device: shapes only, no values and
no memory, so a 70B-parameter network is counted in seconds. A block that
needs real values (a `while` on a tensor) stops the meta run; the summary then
counts on the real network instead where it has values.

Attribution to blocks: FlopCounterMode adds each operation's FLOPs to every
name in its module tracker's `parents`. Its own ModuleTracker names a module by
one of its paths, so the calls of a module used at several places (`ref`)
would all land on one row; `BlockTracker` names the n-th call of such a module
by its n-th path, as the summary's rows do, and follows backward through
gradient hooks (torch.autograd.graph.register_multi_grad_hook).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netcli.app.cost_rnn import add_recurrent, rnn_flops
from netcli.core.errors import first_line
from netcli.core.nested import leaves

GLOBAL = "Global"  # FlopCounterMode's key for everything counted


@dataclass
class BlockCost:
    """The cost of one block (its own work and its children's), by the summary's name."""

    flops: int = 0  # forward
    backward_flops: int = 0
    activation_bytes: int = 0  # bytes of its outputs, every call
    calls: int = 0
    shape: tuple | None = None  # its first call's (first) output shape


@dataclass
class Cost:
    """The cost of one forward (and, if asked, one backward) pass."""

    blocks: dict[str, BlockCost] = field(default_factory=dict)
    flops: int = 0  # forward total, as FlopCounterMode counts it
    backward_flops: int | None = None  # None: not counted (no --backward)
    by_op: dict[str, int] = field(default_factory=dict)  # aten op -> forward FLOPs
    activation_bytes: int = 0  # the leaf blocks' outputs, every call
    error: BaseException | None = None  # why the run stopped; the counts are then partial
    device: str = "meta"  # where it was counted

    @property
    def macs(self) -> int:
        return self.flops // 2


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    """The tensors in a module's output or input: a tensor, or nested tuples, lists and dicts of them."""
    return (t for t in leaves(value) if isinstance(t, torch.Tensor))


def _nbytes(value: Any) -> int:
    seen, total = set(), 0
    for t in _tensors(value):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


class BlockTracker:
    """Which blocks are running, by the summary's names: the `mod_tracker` FlopCounterMode reads.

    `parents` holds ("block", name) for every block whose forward (or, during
    backward, whose gradient) is being computed, plus "Global". Hooks go on the
    network's own modules only, for as long as `hooked()` lasts;
    `__enter__`/`__exit__` are what FlopCounterMode calls and do nothing.
    """

    def __init__(self, net: nn.Module, *, backward: bool = False):
        self.net = net
        self.backward = backward
        self.parents: dict[Any, int] = {GLOBAL: 1}  # a multiset; FlopCounterMode iterates set(parents)
        self.names: dict[int, list[str]] = {}
        for name, module in net.named_modules(remove_duplicate=False):
            self.names.setdefault(id(module), []).append(name)
        self.calls: dict[int, int] = defaultdict(int)
        self.running: dict[int, list[str]] = defaultdict(list)  # module -> names of its calls in progress
        self.blocks: dict[str, BlockCost] = defaultdict(BlockCost)
        self._handles: list = []
        self._grad_handles: list = []
        self.recurrent: list[tuple[str, str, int, list[str]]] = []  # (block, kind, FLOPs, blocks it counts in)

    # FlopCounterMode enters and exits its tracker; the hooks live in hooked() instead.
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _push(self, name: str) -> None:
        key = ("block", name)
        self.parents[key] = self.parents.get(key, 0) + 1

    def _pop(self, name: str) -> None:
        key = ("block", name)
        if self.parents.get(key, 0) > 1:
            self.parents[key] -= 1
        else:
            self.parents.pop(key, None)

    def _pre(self, module, args) -> None:
        names = self.names[id(module)]
        name = names[self.calls[id(module)] % len(names)]  # the n-th call of a tied module is its n-th name
        self.calls[id(module)] += 1
        self.running[id(module)].append(name)
        self._push(name)
        if isinstance(module, nn.RNNBase):  # FlopCounterMode counts no recurrent kernel: netcli does
            blocks = [k[1] for k in self.parents if isinstance(k, tuple)]
            self.recurrent.append((name, type(module).__name__.lower(), rnn_flops(module, args), blocks))
        if self.backward:
            # Backward leaves this block when the gradients of its inputs are ready.
            inputs = [t for t in _tensors(args) if t.requires_grad]
            if inputs:
                self._grad_handles.append(
                    torch.autograd.graph.register_multi_grad_hook(inputs, lambda grads, _name=name: self._pop(_name))
                )

    def _post(self, module, args, output) -> None:
        stack = self.running[id(module)]
        name = stack.pop() if stack else self.names[id(module)][0]
        self._pop(name)
        block = self.blocks[name]
        block.calls += 1
        block.activation_bytes += _nbytes(output)
        if block.shape is None:
            first = next(_tensors(output), None)
            block.shape = tuple(first.shape) if first is not None else None
        if self.backward:
            # Backward enters this block when the gradients of its outputs are ready.
            outputs = [t for t in _tensors(output) if t.requires_grad]
            if outputs:
                self._grad_handles.append(
                    torch.autograd.graph.register_multi_grad_hook(outputs, lambda grads, _name=name: self._push(_name))
                )

    def hook(self) -> None:
        seen: set[int] = set()
        for module in self.net.modules():
            if id(module) not in seen:
                seen.add(id(module))
                self._handles.append(module.register_forward_pre_hook(self._pre))
                self._handles.append(module.register_forward_hook(self._post))

    def unhook(self) -> None:
        for handle in self._handles + self._grad_handles:
            handle.remove()
        self._handles.clear()
        self._grad_handles.clear()

    def reset(self) -> None:
        """Forget which blocks are running (between forward and backward, and after a failure)."""
        self.parents = {GLOBAL: 1}
        self.running.clear()


def _counter(tracker: BlockTracker):
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    # attribute FLOPs by the summary's names (see the module's docstring): BlockTracker has the part of
    # torch's ModuleTracker that FlopCounterMode uses (parents, and entering and leaving), not its class
    counter.mod_tracker = tracker  # type: ignore[assignment]
    return counter


def _block_flops(counter) -> dict[str, int]:
    return {
        key[1]: sum(ops.values())
        for key, ops in counter.get_flop_counts().items()
        if isinstance(key, tuple) and key[0] == "block"
    }


def measure(net: nn.Module, inputs: tuple, *, backward: bool = False) -> Cost:
    """Run `net(*inputs)` once under FlopCounterMode; with `backward`, one backward pass too.

    Never raises for a failing forward: the Cost then carries the error and
    what was counted before it. On a materialized network the backward pass
    leaves no gradients behind.
    """
    tracker = BlockTracker(net, backward=backward)
    cost = Cost(device=str(next(iter(inputs)).device) if inputs else "meta")
    forward = _counter(tracker)
    touched = [p for p in net.parameters() if p.grad is None]
    tracker.hook()
    try:
        with torch.set_grad_enabled(backward), forward:
            output = net(*inputs)
        tracker.reset()
        if backward:
            loss = [t.sum() for t in _tensors(output) if t.requires_grad and t.is_floating_point()]
            cost.backward_flops = 0
            if loss:
                back = _counter(tracker)
                with back:
                    torch.stack(loss).sum().backward()
                cost.backward_flops = back.get_total_flops()
                for name, flops in _block_flops(back).items():
                    tracker.blocks[name].backward_flops = flops
    except Exception as exc:  # noqa: BLE001 - a block that cannot run here: report what was counted before it
        cost.error = exc
    finally:
        tracker.unhook()
        tracker.reset()
        for p in touched:
            p.grad = None
    cost.flops = forward.get_total_flops()
    cost.by_op = {str(op): n for op, n in forward.get_flop_counts().get(GLOBAL, {}).items()}
    counted = _block_flops(forward)
    for name, flops in counted.items():
        tracker.blocks[name].flops = flops
    add_recurrent(cost, tracker, counted, backward=backward and cost.backward_flops is not None)
    cost.blocks = dict(tracker.blocks)
    leaves = {
        name for name, module in net.named_modules(remove_duplicate=False) if next(module.children(), None) is None
    }
    cost.activation_bytes = sum(b.activation_bytes for name, b in cost.blocks.items() if name in leaves)
    return cost


_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "long": torch.int64,
    "int32": torch.int32,
    "int": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def example_inputs(spec_input: Any, device: torch.device | str, *, random: bool = False) -> tuple | None:
    """The example input(s) of a spec's `input:` on `device`: zeros of each shape and dtype.

    `input:` is a shape (`[2, 4]`), `{shape: [2, 16], dtype: int64, ...}`, or a
    list of those for a forward with several inputs (SPEC 1.6); on meta the
    values do not matter, and zeros are valid indices for an embedding.
    `random`: floating inputs are drawn from U(0, 1) instead, as `run` draws them.
    """

    def one(entry: Any) -> torch.Tensor:
        if isinstance(entry, dict):
            shape = list(entry.get("shape") or [])
            dtype = entry.get("dtype")
            dtype = (
                _DTYPES.get(str(getattr(dtype, "value", dtype)), torch.float32) if dtype is not None else torch.float32
            )
        else:
            shape, dtype = list(getattr(entry, "shape", entry)), getattr(entry, "dtype", None)
            dtype = (
                _DTYPES.get(str(getattr(dtype, "value", dtype)), torch.float32) if dtype is not None else torch.float32
            )
        if random and dtype.is_floating_point:
            return torch.rand(*shape, dtype=dtype, device=device)
        return torch.zeros(*shape, dtype=dtype, device=device)

    if spec_input is None:
        return None
    if isinstance(spec_input, (list, tuple)) and spec_input and all(isinstance(s, int) for s in spec_input):
        return (one(list(spec_input)),)
    if isinstance(spec_input, (list, tuple)):
        return tuple(one(entry) for entry in spec_input)
    if hasattr(spec_input, "model_dump"):
        spec_input = spec_input.model_dump()
    return (one(spec_input),)


# Small networks of torch.nn modules are counted with the CPU's kernels on zeros (the same shapes and
# FLOPs as on meta): many meta kernels are Python references whose first call imports torch._dynamo
# (~1 s per process), as build.validate's shape check does.
CPU_COUNT_BYTES = 16 << 20
CPU_COUNT_INPUT = 1 << 20  # elements of the example input


def _skip_dynamo_import() -> None:
    """Let FlopCounterMode's dispatch run without importing torch._dynamo (~1.3 s per process).

    torch wraps every TorchDispatchMode's __torch_dispatch__ in
    `torch._disable_dynamo`, which imports torch._dynamo on the first call only to
    keep torch.compile from tracing into the mode, and caches the result on the
    function as `__dynamo_disable`. Nothing here runs under torch.compile, so the
    cache is filled with the function itself. Where torch's layout differs, or
    torch._dynamo is already imported, this does nothing.
    """
    if "torch._dynamo" in sys.modules:
        return
    try:
        from torch.utils.flop_counter import _FlopCounterMode
    except ImportError:
        return
    raw = getattr(_FlopCounterMode.__dict__.get("__torch_dispatch__"), "__wrapped__", None)
    if callable(raw) and getattr(raw, "__dynamo_disable", None) is None:
        raw.__dynamo_disable = raw


def _given(inputs: tuple | None) -> tuple:
    """The example inputs of a spec known to have an `input:`."""
    assert inputs is not None
    return inputs


def _cpu_countable(net: nn.Module, inputs: tuple) -> bool:
    tensors = list(net.parameters()) + list(net.buffers())
    return (
        sum(t.numel() * t.element_size() for t in tensors) <= CPU_COUNT_BYTES
        and sum(t.numel() for t in inputs) <= CPU_COUNT_INPUT
        # torch.nn's layers and netcli's compiled custom blocks (no loops or conditionals on values)
        and all(type(m).__module__.startswith(("torch.nn.", "netcli.builder.")) for m in net.modules())
    )


def count_network(loaded, built, *, backward: bool = False):
    """Shapes, a note and the Cost of `built`'s spec on its example input, for the summary.

    Return (shapes by block name, note or None, Cost or None without `input:`).
    The shapes are checked as `validate` checks them (a located error where they
    stop fitting); the costs are counted on a meta build, or for a small network
    of torch.nn modules on a CPU copy of it whose tensors are zeros. Where a
    block needs real values (a `while` on a tensor) and `built` has them, the
    costs are counted on `built` itself.
    """
    if loaded.spec.input is None:
        return {}, None, None
    import copy

    from netcli.builder.shape_check import check_shapes

    trace, meta, note = check_shapes(loaded)
    shapes = dict(trace.shapes) if trace else {}
    _skip_dynamo_import()
    spec_input = getattr(loaded.spec, "inputs", None) or loaded.spec.input  # one entry per forward input
    inputs = example_inputs(spec_input, "meta")
    assert inputs is not None  # the spec has an input: (above)
    if _cpu_countable(meta.net, inputs):
        zeros = copy.deepcopy(meta.net)._apply(lambda t: torch.zeros(t.shape, dtype=t.dtype))
        with torch.random.fork_rng(devices=[]):  # dropout's draws must not move the caller's RNG
            cost = measure(zeros, _given(example_inputs(spec_input, "cpu")), backward=backward)
        cost.device = "meta"  # the same counts; nothing of the network's values was used
    else:
        cost = measure(meta.net, inputs, backward=backward)
    materialized = not any(t.is_meta for t in list(built.net.parameters()) + list(built.net.buffers()))
    if cost.error is not None and materialized and built.device.type != "meta":
        with torch.random.fork_rng(devices=[]):  # the example input's draws must not move the caller's RNG
            real = measure(built.net, _given(example_inputs(spec_input, built.device, random=True)), backward=backward)
        if real.error is None:
            blocker = (trace.failed_at or "(root)") if trace else "(root)"
            cost, note = (
                real,
                (
                    f"costs counted with a real forward on {built.device}: block '{blocker}' "
                    "has data-dependent control flow, which meta cannot run"
                ),
            )
    if cost.error is not None and note is None:
        note = f"costs are partial: the counting run stopped ({first_line(cost.error)[:200]})"
    return shapes, note, cost
