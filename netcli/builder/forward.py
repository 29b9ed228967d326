"""A custom block's `forward:` (SPEC §1.6): read it, check it, compile it into the module.

    program = parse_forward(text, inputs=["x"], children=["conv1", "bn1"],
                            source="spec.yaml", line=12, column=7)
    block = block_class("BasicBlock")()          # one class per definition
    block.add_module("conv1", ...)               # children in the spec's order
    compile_forward(program, block)              # block(x) now runs the forward

`parse_forward` needs no torch (netcli validate can call it through
forward_parse); `compile_forward` writes the forward once as plain Python with
torch.fx, so a call costs what a hand-written forward costs.
"""

from __future__ import annotations

from netcli.builder.forward_graph import (
    CustomBlock,
    block_class,
    compile_forward,
    compiled_program,
    dataflow,
    failure_location,
)
from netcli.builder.forward_ir import ForwardProgram
from netcli.builder.forward_lang import ATTRIBUTES, FUNCTIONS, METHODS
from netcli.builder.forward_parse import parse_forward
from netcli.builder.forward_python import to_python

__all__ = [
    "ATTRIBUTES",
    "FUNCTIONS",
    "METHODS",
    "CustomBlock",
    "ForwardProgram",
    "block_class",
    "compile_forward",
    "compiled_program",
    "dataflow",
    "failure_location",
    "parse_forward",
    "to_python",
]
