"""Read the expressions of a `forward:` text into checked program objects (forward_parse.py reads the statements).

Every name is resolved here against what the forward may see: inputs, earlier
values, children (and a child's children, parameters and buffers), loop
variables, the listed functions and dtypes. Anything else is refused with a
located problem. Nothing is evaluated.
"""

from __future__ import annotations

import ast
import builtins
import re
from typing import NoReturn

from netcli.builder.forward_ir import (
    AttrGet,
    BinaryOp,
    ChildCall,
    ChildValue,
    Choice,
    Const,
    DType,
    Expr,
    FunctionCall,
    IndexGet,
    MethodCall,
    Negate,
    Ref,
    Seq,
    SliceExpr,
    show_path,
)
from netcli.builder.forward_lang import (
    ATTRIBUTES,
    CHOICES,
    DTYPES,
    FUNCTIONS,
    METHODS,
    QUALIFIED_DTYPES,
    QUALIFIERS,
)
from netcli.core.errors import Location, Problem, did_you_mean

MAX_DEPTH = 64
OPERATORS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
}
COMPARISONS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_BUILTINS = frozenset(dir(builtins))


class Refused(Exception):
    """One problem in one statement: the reader records it and goes on with the next statement."""

    def __init__(self, problem: Problem):
        self.problem = problem


def dunder(name: str) -> bool:
    return name.startswith("__") or name.endswith("__")


class ExprReader:
    """Locations, refusals and expressions; the statement reader (forward_parse._Reader) builds on it."""

    def __init__(self, text, inputs, children, tensors, source, line, column, where):
        self.text, self.source, self.line, self.column, self.where = text, source, line, column, where
        self.lines = re.split(r"\r\n|\r|\n", text) if isinstance(text, str) else []
        self.inputs, self.children, self.tensors = tuple(inputs), tuple(children), frozenset(tensors)
        self.kinds: dict[str, str] = {}  # bound name -> "value" (known at run time) or "const"
        self.assigned_at: dict[str, int] = {}  # every name the text assigns -> first line
        self.loop_vars: set[str] = set()  # the loop variables in scope here
        self.loop_ended: set[str] = set()  # loop variables of loops already closed
        self.used: set[str] = set()
        self.optional: frozenset[str] = frozenset()  # children this use leaves out: named only under their `if`

    # -- locations and refusals --

    def loc(self, node=None, lineno=None, char=None) -> Location:
        if self.line is None:
            return Location(self.source)
        if node is not None:
            lineno = node.lineno
            raw = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
            char = len(raw.encode("utf-8")[: node.col_offset].decode("utf-8", "replace"))
        return Location(self.source, self.line + (lineno or 1) - 1, (self.column or 1) + (char or 0))

    def refuse(self, node, message, hint=None) -> NoReturn:
        raise Refused(Problem(message, self.where, self.loc(node), hint))

    def refuse_construct(self, node) -> NoReturn:
        """Refuse a construct the language lacks; the statement reader (forward_parse) names each one."""
        self.refuse(node, f"{type(node).__name__} is not part of the forward language")

    def is_child(self, name) -> bool:
        """A child (or loop variable) the text may name: not shadowed by a value it assigned."""
        return (name in self.children or name in self.loop_vars or name in self.optional) and name not in self.kinds

    # -- expressions --

    def expr(self, node, depth) -> Expr:
        if depth > MAX_DEPTH:
            self.refuse(
                node, f"the expression is nested deeper than {MAX_DEPTH} levels", "split it into several assignments"
            )
        depth += 1
        loc = self.loc(node)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node, depth)
        if isinstance(node, (ast.Tuple, ast.List)):
            return Seq(tuple(self.expr(e, depth) for e in node.elts), isinstance(node, ast.List), loc)
        if isinstance(node, ast.BinOp):
            op = OPERATORS.get(type(node.op))
            if op is None:
                self.refuse(node, "only + - * / // % @ are allowed between values")
            return BinaryOp(op, self.operand(node.left, depth), self.operand(node.right, depth), loc)
        if isinstance(node, ast.Compare):
            return self.compare(node, depth)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub):
                self.refuse(node, "only unary minus is allowed")
            inner = self.operand(node.operand, depth)
            if isinstance(inner, Const) and isinstance(inner.value, (int, float)):  # operand() refused None and bools
                return Const(-inner.value, loc)
            return Negate(inner, loc)
        if isinstance(node, (ast.Subscript, ast.Attribute)):
            path = self.child_path(node)
            if path is not None:
                if path[0] not in self.tensors and isinstance(node, ast.Subscript):
                    # a container's item is a module; `enc.weight` (an attribute) is checked when compiled
                    self.refuse(node, f"{show_path(path)} is a module: call it", f"{show_path(path)}(...)")
                return ChildValue(path, loc)
            if isinstance(node, ast.Attribute):
                return self.attribute(node, depth)
            obj = self.value_of(node.value, depth, "indexed")
            return IndexGet(obj, self.index(node.slice, depth), loc)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Slice):
            self.refuse(node, "a slice belongs inside [ ]")
        self.refuse_construct(node)

    def compare(self, node, depth) -> Expr:
        if len(node.ops) != 1:
            self.refuse(node, "one comparison at a time", "split `a < b < c` into two")
        op = COMPARISONS.get(type(node.ops[0]))
        if op is None:
            if isinstance(node.ops[0], ast.IsNot) and _is_none(node.comparators[0]):
                self.refuse(node, "`is not None` is allowed only as `if CHILD is not None:`")
            self.refuse(node, "only < <= > >= == != compare values", "they give a bool tensor")
        return BinaryOp(op, self.operand(node.left, depth), self.operand(node.comparators[0], depth), self.loc(node))

    def constant(self, node) -> Const:
        value = node.value
        if isinstance(value, str):
            self.refuse(
                node,
                'a string is allowed only as a documented choice of a function (mode="nearest") '
                "or to name a child's child (net['hidden'](x))",
            )
        if value is Ellipsis:
            self.refuse(node, "... belongs inside [ ], as in x[..., 0]")
        if value is not None and not isinstance(value, (bool, int, float)):
            self.refuse(node, f"{type(value).__name__} literals are not allowed", "numbers, True/False and None are")
        return Const(value, self.loc(node))

    def name(self, node, depth) -> Expr:
        name = node.id
        if name in self.kinds:
            return Ref(name, self.loc(node))
        if dunder(name):
            self.refuse(node, f"dunder names are not allowed: {name!r}")
        if self.is_child(name):
            if name not in self.tensors:
                what = "loop variable" if name in self.loop_vars else "child"
                self.refuse(node, f"{what} {name!r} is a module: call it", f"{name}(...)")
            self.used.add(name)
            return ChildValue((name,), self.loc(node))
        if name in FUNCTIONS:
            self.refuse(node, f"{name!r} is a function: call it", f"{name}(...)")
        if name == "inf":
            return Const(float("inf"), self.loc(node))
        if name in DTYPES and name not in QUALIFIED_DTYPES:
            return DType(name, self.loc(node))
        if name == "self":
            self.refuse(node, "a forward has no `self`", "call children by name: conv1(x)")
        if name in QUALIFIERS:
            self.refuse(node, f"`{name}` only qualifies a listed function", f"{name}.cat(...)")
        if name in self.loop_ended:
            self.refuse(node, f"loop variable {name!r} is used outside its loop", "use it only inside the `for` body")
        if name in self.assigned_at:
            self.refuse(
                node, f"{name!r} is used before it is assigned (line {self.loc(lineno=self.assigned_at[name]).line})"
            )
        if name in QUALIFIED_DTYPES:
            self.refuse(node, f"Python's {name!r} is not a dtype here", f"torch.{name}")
        if name in _BUILTINS:
            self.refuse(
                node,
                f"Python's {name!r} is not available in a forward",
                "a forward calls children and the listed tensor functions only",
            )
        choices = [*self.kinds, *self.children, *self.loop_vars, *FUNCTIONS]
        self.refuse(
            node,
            f"unknown name {name!r}",
            did_you_mean(name, choices) or "use an input, an earlier value, a child or a listed function",
        )

    def operand(self, node, depth) -> Expr:
        expr = self.expr(node, depth)
        if isinstance(expr, (Seq, DType, Choice)) or (
            isinstance(expr, Const) and (expr.value is None or isinstance(expr.value, bool))
        ):
            self.refuse(node, "arithmetic needs tensors or numbers")
        return expr

    def value_of(self, node, depth, what) -> Expr:
        expr = self.expr(node, depth)
        if isinstance(expr, (Const, Seq, DType, Choice)) or (
            isinstance(expr, Ref) and self.kinds.get(expr.name) == "const"
        ):
            self.refuse(node, f"only tensors can be {what}")
        return expr

    def index(self, node, depth) -> Expr:
        if isinstance(node, ast.Tuple):
            return Seq(tuple(self.index_item(e, depth) for e in node.elts), False, self.loc(node))
        return self.index_item(node, depth)

    def index_item(self, node, depth) -> Expr:
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.operand(p, depth + 1) for p in (node.lower, node.upper, node.step)]
            return SliceExpr(parts[0], parts[1], parts[2], self.loc(node))
        if isinstance(node, ast.Constant) and (node.value is Ellipsis or node.value is None):
            return Const(node.value, self.loc(node))
        return self.operand(node, depth + 1)

    def attribute(self, node, depth) -> Expr:
        attr = node.attr
        if dunder(attr):
            self.refuse(node, f"dunder names are not allowed: {attr!r}")
        base = node.value
        if isinstance(base, ast.Name) and base.id not in self.kinds and base.id not in QUALIFIERS:
            self.name(base, depth)  # refuses `self`, builtins and unknown names, saying why
        if isinstance(base, ast.Name) and base.id in QUALIFIERS and base.id not in self.kinds:
            if base.id == "torch" and attr in DTYPES:
                return DType(attr, self.loc(node))
            if base.id == "torch" and attr == "inf":
                return Const(float("inf"), self.loc(node))
            if attr in FUNCTIONS:
                self.refuse(node, f"{base.id}.{attr} is a function: call it")
            self.refuse(node, f"{base.id}.{attr} is not an allowed function", did_you_mean(attr, FUNCTIONS))
        if attr in ATTRIBUTES:
            return AttrGet(self.value_of(base, depth, "asked for ." + attr), attr, self.loc(node))
        if attr in METHODS:
            self.refuse(node, f".{attr} is a method: call it", f".{attr}(...)")
        self.refuse(
            node,
            f"attribute .{attr} is not allowed",
            did_you_mean(attr, sorted(ATTRIBUTES | METHODS))
            or "allowed: .shape, .ndim, .device, .dtype and the listed methods",
        )

    def child_path(self, node):
        """("net", 0, "hidden") for `net[0].hidden` or `net[0]['hidden']` when `net` is a child or loop variable.

        None when the head is not one, or a step is not a number or a quoted name
        (`pos_embed[:, 0]` then indexes the tensor `pos_embed`).
        """
        keys: list[str | int] = []
        while isinstance(node, (ast.Subscript, ast.Attribute)):  # a loop, not recursion: chains can be long
            if isinstance(node, ast.Attribute):
                if dunder(node.attr):
                    self.refuse(node, f"dunder names are not allowed: {node.attr!r}")
                keys.append(node.attr)
            else:
                key = node.slice
                if (
                    isinstance(key, ast.UnaryOp)
                    and isinstance(key.op, ast.USub)
                    and isinstance(key.operand, ast.Constant)
                    and type(key.operand.value) is int
                ):
                    keys.append(-key.operand.value)
                elif isinstance(key, ast.Constant) and (type(key.value) is int or type(key.value) is str):
                    keys.append(key.value)
                else:
                    return None
            node = node.value
        if not (isinstance(node, ast.Name) and self.is_child(node.id)):
            return None
        if node.id in self.children:
            self.used.add(node.id)
        return (node.id, *reversed(keys))

    def call(self, node, depth) -> Expr:
        func, loc = node.func, self.loc(node)
        path = self.child_path(func)
        if path is not None:
            args, kwargs = self.arguments(node, depth)
            return ChildCall(path, args, kwargs, loc)
        if isinstance(func, ast.Name) and func.id in FUNCTIONS and func.id not in self.kinds:
            args, kwargs = self.arguments(node, depth, func.id)
            return FunctionCall(func.id, FUNCTIONS[func.id], args, kwargs, loc)
        if isinstance(func, ast.Attribute):
            base, attr = func.value, func.attr
            if isinstance(base, ast.Name) and base.id in QUALIFIERS and base.id not in self.kinds and attr in FUNCTIONS:
                args, kwargs = self.arguments(node, depth, attr)
                return FunctionCall(attr, FUNCTIONS[attr], args, kwargs, loc)
            if (
                attr in METHODS
                and not dunder(attr)
                and not (isinstance(base, ast.Name) and base.id in QUALIFIERS and base.id not in self.kinds)
            ):
                obj = self.value_of(base, depth, f"given .{attr}()")
                args, kwargs = self.arguments(node, depth)
                return MethodCall(obj, attr, args, kwargs, loc)
            self.attribute(func, depth)  # refuses, saying why
            self.refuse(func, f"method .{attr}() is not allowed", did_you_mean(attr, sorted(METHODS)))
        if isinstance(func, ast.Name):
            if func.id in self.kinds:
                self.refuse(
                    func,
                    f"{func.id!r} is a value, not a child: it cannot be called",
                    did_you_mean(func.id, [*self.children, *FUNCTIONS]),
                )
            self.name(func, depth)  # refuses, saying why
        if isinstance(func, ast.Subscript):
            if self.child_path(func.value) is not None:
                self.refuse(
                    func.slice,
                    "a child's child is picked by a number or a quoted name",
                    "net[0](x) or net['hidden'](x)",
                )
            self.expr(func.value, depth)  # an unknown name is the better message
        self.refuse(func, "only children and the listed functions can be called")

    def arguments(self, node, depth, function=None):
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.refuse(arg, "star-arguments are not allowed", "pass each argument")
            args.append(self.expr(arg, depth))
        kwargs: list[tuple[str, Expr]] = []
        seen = set()
        for kw in node.keywords:
            if kw.arg is None:
                self.refuse(kw, "**-arguments are not allowed", "pass each keyword")
            if dunder(kw.arg):
                self.refuse(kw, f"dunder names are not allowed: {kw.arg!r}")
            if kw.arg in seen:
                self.refuse(kw, f"keyword {kw.arg!r} is given twice")
            seen.add(kw.arg)
            if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                kwargs.append((kw.arg, self.choice(kw.value, function, kw.arg)))
            else:
                kwargs.append((kw.arg, self.expr(kw.value, depth)))
        return tuple(args), tuple(kwargs)

    def choice(self, node, function, keyword) -> Choice:
        """A string keyword argument: one of the choices the function documents for that keyword."""
        choices = CHOICES.get((function, keyword))
        if choices is None:
            takes = sorted(f"{f}({k}=...)" for f, k in CHOICES)
            self.refuse(
                node,
                f"{keyword}= takes no string here" if function is None else f"{function}() takes no string {keyword}=",
                "strings are allowed only as " + ", ".join(takes),
            )
        if node.value not in choices:
            self.refuse(
                node,
                f"{function}'s {keyword} is one of " + ", ".join(repr(c) for c in choices),
                did_you_mean(node.value, choices),
            )
        return Choice(node.value, self.loc(node))


def _is_none(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is None
