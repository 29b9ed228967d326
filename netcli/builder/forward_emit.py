"""Build the torch.fx Graph of a checked forward program against the block it runs in.

Everything the text leaves open is decided here, once, from the built block:
a loop is unrolled over the container's modules (the loop variable names each
in turn), `if CHILD is not None:` keeps the branch that applies to this block,
and each child path becomes a module call (`call_module`), a parameter or
buffer read (`get_attr`), or a tensor method on one (`enc.weight.t()`). The
graph then holds only calls of the block's own children, listed functions and
methods, and literals: straight-line code with no loop or test left.
"""

from __future__ import annotations

import builtins
import importlib
import keyword
import operator
import re

import torch
from torch import fx, nn

from netcli.builder.forward_ir import (
    Assign,
    AttrGet,
    BinaryOp,
    ChildCall,
    ChildValue,
    Choice,
    Const,
    DType,
    For,
    ForwardProgram,
    FunctionCall,
    IndexGet,
    MethodCall,
    Negate,
    Ref,
    Seq,
    SliceExpr,
    show_path,
)
from netcli.builder.forward_lang import ATTRIBUTES, CHOICES, DTYPES, FUNCTIONS, METHODS
from netcli.core.errors import Location, NetcliError, Problem, did_you_mean

_OPERATORS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "@": operator.matmul,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_INPLACE = {
    "+": operator.iadd,
    "-": operator.isub,
    "*": operator.imul,
    "/": operator.itruediv,
    "//": operator.ifloordiv,
    "%": operator.imod,
    "@": operator.imatmul,
}
_CHOICES = frozenset(c for choices in CHOICES.values() for c in choices)
_LITERALS = (bool, int, float, type(None), type(Ellipsis))
# fx writes a child name that is not an identifier as getattr(self.net, "NAME"): a name
# that could end that string literal must never reach the generated code; nor may a
# keyword, which fx would write as self.net.class.
_UNSAFE_IN_CODE = re.compile(r'["\\]')
_DROPOUT = "torch.nn.functional.dropout"
_MISSING = object()


class Emitter:
    """Walk a program once, adding one fx node per call, operator, index or attribute; loops unrolled."""

    def __init__(self, program: ForwardProgram, root: nn.Module):
        self.program, self.root = program, root
        self.graph = fx.Graph()
        self.env: dict[str, object] = {}
        self.aliases: dict[str, tuple[nn.Module, list[str]]] = {}  # loop variable -> its module and qualified name
        self.reads: dict[str, fx.Node] = {}  # qualified tensor name -> its get_attr node (read once)
        self.origins: dict[str, Location] = {}
        self.problems: list[Problem] = []

    def build(self):
        for name in self.program.inputs:
            if not name.isidentifier():
                raise ValueError(f"not a checked program: input {name!r}")
            self.env[name] = self.graph.placeholder(name)
        self.statements(self.program.body)
        result = self.expr(self.program.result)
        if self.problems:
            unique = {(p.message, str(p.location)): p for p in self.problems}  # an unrolled loop repeats its problems
            raise NetcliError(list(unique.values()))
        self.graph.output(result)
        self.graph.lint()
        return self.graph, self.origins

    def statements(self, body):
        for stmt in body:
            if isinstance(stmt, Assign):
                self.bind(stmt.target, self.expr(stmt.value, stmt.target if isinstance(stmt.target, str) else None))
            elif isinstance(stmt, For):
                self.unroll(stmt)
            else:  # If: this block has the child or not, so one branch is its forward
                present = self.root._modules.get(stmt.name) is not None
                self.statements(stmt.body if present else stmt.orelse)

    def unroll(self, stmt: For):
        found = self.walk(stmt.path, stmt.loc)
        if found is None:
            return
        container, names, rest = found
        shown = show_path(stmt.path)
        if rest:
            self.problem(f"{shown} is a tensor, not a container of modules", stmt.loc)
            return
        if stmt.values != isinstance(container, nn.ModuleDict):
            kind = type(container).__name__
            if isinstance(container, nn.ModuleDict):
                self.problem(f"looping over a ModuleDict gives its keys: {shown} is one", stmt.loc, f"{shown}.values()")
            elif isinstance(container, (nn.ModuleList, nn.Sequential)):
                self.problem(f"{shown} is a {kind}: loop over it directly", stmt.loc, f"for ... in {shown}:")
            else:
                self.problem(f"{shown} is a {kind}: a loop runs over a ModuleList or Sequential", stmt.loc)
            return
        if not stmt.values and not isinstance(container, (nn.ModuleList, nn.Sequential)):
            kind = type(container).__name__
            self.problem(f"{shown} is a {kind}: a loop runs over a ModuleList or Sequential", stmt.loc)
            return
        for key, module in container._modules.items():
            if module is None or not self.usable(key):
                self.problem(f"child {shown}[{key!r}] cannot be called from a forward", stmt.loc)
                return
            self.aliases[stmt.var] = (module, [*names, key])
            self.statements(stmt.body)
        self.aliases.pop(stmt.var, None)

    def bind(self, target, value):
        if isinstance(target, str):
            self.env[target] = value
            return
        for i, part in enumerate(target):
            if isinstance(value, fx.Node):
                item = self.node(
                    "call_function", operator.getitem, (value, i), {}, part if isinstance(part, str) else None, None
                )
            else:
                item = value[i] if value is not None else None
            self.bind(part, item)

    def node(self, op, target, args, kwargs, name, loc):
        made = self.graph.create_node(op, target, tuple(args), dict(kwargs), name=name)
        if loc is not None:
            made.meta["netcli_location"] = loc
            self.origins[made.name] = loc
        return made

    def expr(self, e, name=None):
        """The fx argument for `e`: a Node, or a literal (tuple, slice, number, None, dtype, choice)."""
        if isinstance(e, Const):
            if not isinstance(e.value, _LITERALS):
                raise TypeError(f"not a checked program: literal {e.value!r}")
            return e.value
        if isinstance(e, Ref):
            value = self.env.get(e.name, _MISSING)
            if value is _MISSING:
                return self.problem(
                    f"{e.name!r} has no value in this block",
                    e.loc,
                    "it is assigned only in a loop over an empty container or in a branch this block does not take",
                )
            return value
        if isinstance(e, DType):
            if e.name not in DTYPES:
                raise ValueError(f"not a checked program: dtype {e.name!r}")
            return getattr(torch, e.name)
        if isinstance(e, Choice):
            if e.value not in _CHOICES:
                raise ValueError(f"not a checked program: choice {e.value!r}")
            return e.value
        if isinstance(e, Seq):
            items = [self.expr(i) for i in e.items]
            return items if e.is_list else tuple(items)
        if isinstance(e, SliceExpr):
            return slice(*(None if p is None else self.expr(p) for p in (e.lower, e.upper, e.step)))
        if isinstance(e, ChildCall):
            return self.child_call(e, name)
        if isinstance(e, ChildValue):
            return self.child_value(e, name)
        if isinstance(e, FunctionCall):
            if FUNCTIONS.get(e.name) != e.target:
                raise ValueError(f"not a checked program: function {e.target!r}")
            args, kwargs = self.arguments(e)
            if e.target == _DROPOUT and "training" not in kwargs and len(args) < 3:
                # like nn.Dropout: drop only while the block is training
                kwargs["training"] = self.node("get_attr", "training", (), {}, None, None)
            return self.node("call_function", _function(e.target), args, kwargs, name, e.loc)
        if isinstance(e, MethodCall):
            if e.method not in METHODS:
                raise ValueError(f"not a checked program: method {e.method!r}")
            args, kwargs = self.arguments(e)
            return self.node("call_method", e.method, (self.expr(e.obj), *args), kwargs, name, e.loc)
        if isinstance(e, AttrGet):
            if e.attr not in ATTRIBUTES:
                raise ValueError(f"not a checked program: attribute {e.attr!r}")
            return self.node("call_function", builtins.getattr, (self.expr(e.obj), e.attr), {}, name, e.loc)
        if isinstance(e, IndexGet):
            return self.node("call_function", operator.getitem, (self.expr(e.obj), self.expr(e.index)), {}, name, e.loc)
        if isinstance(e, BinaryOp):
            table = _INPLACE if e.inplace else _OPERATORS
            return self.node("call_function", table[e.op], (self.expr(e.left), self.expr(e.right)), {}, name, e.loc)
        if isinstance(e, Negate):
            return self.node("call_function", operator.neg, (self.expr(e.operand),), {}, name, e.loc)
        raise ValueError(f"not a checked program: {type(e).__name__}")

    def arguments(self, e):
        return [self.expr(a) for a in e.args], {k: self.expr(v) for k, v in e.kwargs}

    def child_call(self, e: ChildCall, name):
        found = self.walk(e.path, e.loc)
        if found is None:
            return "_missing"
        _, names, rest = found
        args, kwargs = self.arguments(e)
        if rest is None:
            return self.node("call_module", ".".join(names), args, kwargs, name, e.loc)
        shown = show_path(e.path)
        if not rest:
            return self.problem(f"{shown} is a tensor: it cannot be called", e.loc, "call a listed method on it")
        *steps, method = rest
        if not isinstance(method, str) or method not in METHODS:
            return self.problem(
                f"{shown} is not a module, and .{method}() is not a listed tensor method",
                e.loc,
                did_you_mean(str(method), sorted(METHODS)),
            )
        tensor = self.tensor_steps(self.read(names), steps, e)
        return self.node("call_method", method, (tensor, *args), kwargs, name, e.loc)

    def child_value(self, e: ChildValue, name):
        found = self.walk(e.path, e.loc)
        if found is None:
            return "_missing"
        _, names, rest = found
        if rest is None:
            shown = show_path(e.path)
            return self.problem(f"{shown} is a module: call it", e.loc, f"{shown}(...)")
        return self.tensor_steps(self.read(names, None if rest else name), rest, e)

    def tensor_steps(self, tensor, steps, e):
        """`pos_embed.shape[1]`: the steps after a tensor, each an index or a listed attribute."""
        for step in steps:
            if isinstance(step, int):
                tensor = self.node("call_function", operator.getitem, (tensor, step), {}, None, e.loc)
            elif step in ATTRIBUTES:
                tensor = self.node("call_function", builtins.getattr, (tensor, step), {}, None, e.loc)
            else:
                return self.problem(
                    f"{show_path(e.path)}: a tensor has no {step!r} a forward may read",
                    e.loc,
                    "allowed: .shape, .ndim, .device, .dtype and the listed methods",
                )
        return tensor

    def read(self, names, name=None):
        qualified = ".".join(names)
        if qualified not in self.reads:
            self.reads[qualified] = self.node("get_attr", qualified, (), {}, name, None)
        return self.reads[qualified]

    def walk(self, path, loc):
        """Follow a child path: (the module reached, the qualified names, the steps left after a tensor).

        The steps left are None while the path ends on a module; after a
        parameter or buffer they are what indexes it or is read from it. A
        missing child is a located problem (and None).
        """
        head, *keys = path
        if head in self.aliases:
            module, names = self.aliases[head][0], list(self.aliases[head][1])
            start = 1
        else:
            module, names, keys, start = self.root, [], list(path), 0
        for i, key in enumerate(keys, start):
            shown = show_path(path[:i]) if i else "the block"
            children = list(module._modules)
            if isinstance(key, int) and not isinstance(key, bool):
                if not isinstance(module, (nn.Sequential, nn.ModuleList)):
                    self.problem(
                        f"{shown} is a {type(module).__name__}, not a Sequential or ModuleList",
                        loc,
                        "pick its child by name: net['name']",
                    )
                    return None
                if not -len(children) <= key < len(children):
                    self.problem(f"{shown} has {len(children)} children: [{key}] is out of range", loc)
                    return None
                key = children[key]
            elif key not in module._modules:
                if key in module._parameters or key in module._buffers:
                    tensor = module._parameters.get(key, module._buffers.get(key))
                    if tensor is None or not self.usable(key):
                        self.problem(f"{show_path(path[: i + 1])} cannot be read from a forward", loc)
                        return None
                    return module, [*names, key], list(path[i + 1 :])
                tensors = [*module._parameters, *module._buffers]
                self.problem(
                    f"{shown} has no child {key!r}" if children else f"{shown} holds no parameter or buffer {key!r}",
                    loc,
                    did_you_mean(key, [*children, *tensors], listing=8),
                )
                return None
            child = module._modules[key]
            if child is None or not self.usable(key):
                self.problem(f"child {show_path(path[: i + 1])} cannot be called from a forward", loc)
                return None
            module = child
            names.append(key)
        return module, names, None

    @staticmethod
    def usable(key) -> bool:
        return not (_UNSAFE_IN_CODE.search(key) or not key.isprintable() or keyword.iskeyword(key))

    def problem(self, message, loc, hint=None):
        self.problems.append(Problem(message, self.program.where, loc, hint))
        return "_missing"


_CALLABLES: dict[str, object] = {}


def _function(target: str):
    """The torch callable for a dotted path from FUNCTIONS (looked up, never evaluated)."""
    fn = _CALLABLES.get(target)
    if fn is None:
        module, _, attr = target.rpartition(".")
        fn = _CALLABLES[target] = getattr(importlib.import_module(module), attr)
    return fn
