"""FLOPs of LSTM, GRU and RNN blocks, which torch's FlopCounterMode does not count (its recurrent kernels
are single aten ops outside its registry): computed from each module's sizes and its input's shape, and
added to the summary's counts (cost.py) where torch counted nothing for the block.
"""

from __future__ import annotations

import torch
from torch import nn

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # matrix products per step: one per gate


def rnn_flops(module: nn.RNNBase, args: tuple) -> int:
    """The forward FLOPs of one call of an LSTM, GRU or RNN, from its sizes and its input's shape.

    Each step of each layer and direction multiplies the input and the hidden
    state by every gate's weights: gates x hidden x (input + hidden) MACs (an
    LSTM's projection adds proj_size x hidden); elementwise gate math counts
    nothing, as everywhere in this count. FLOPs are twice the MACs.
    """
    x = args[0] if args else None
    data = getattr(x, "data", x)  # a PackedSequence: its data holds every step of every sequence
    if not isinstance(data, torch.Tensor) or data.dim() < 2:
        return 0
    if hasattr(x, "batch_sizes") or data.dim() == 2:
        steps = data.shape[0]  # packed (sum of lengths) or unbatched (T, I): one sequence
    else:
        steps = data.shape[0] * data.shape[1]  # (T, B, I) or (B, T, I)
    gates = _GATES.get(module.mode.split("_")[0].lower(), 1)
    hidden, proj = module.hidden_size, getattr(module, "proj_size", 0) or 0
    state = proj or hidden
    directions = 2 if module.bidirectional else 1
    macs = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else state * directions
        macs += gates * hidden * (inputs + state) + (proj * hidden if proj else 0)
    return 2 * int(steps) * directions * macs


def add_recurrent(cost, tracker, counted: dict[str, int], *, backward: bool) -> None:
    """Add each recurrent call's FLOPs (rnn_flops) to its block, the blocks around it and the total.

    Only where torch's counter counted nothing for that block (a later torch
    that counts them is not counted twice). The backward of a matrix product
    costs twice its forward, so --backward adds twice as much.
    """
    for name, kind, flops, blocks in tracker.recurrent:
        if counted.get(name, 0) or not flops:
            continue
        for block in blocks:
            tracker.blocks[block].flops += flops
            if backward:
                tracker.blocks[block].backward_flops += 2 * flops
        cost.flops += flops
        key = f"aten.{kind} (netcli's count)"
        cost.by_op[key] = cost.by_op.get(key, 0) + flops
        if backward and cost.backward_flops is not None:
            cost.backward_flops += 2 * flops
