"""Write a checked forward program back as the plain PyTorch a person would write (for `netcli code`).

Children become `self.conv1(...)`, a loop `for block in self.blocks:`, the one
conditional `if self.downsample is not None:`, functions `torch.cat(...)` /
`F.gelu(...)` (the caller imports `torch` and `torch.nn.functional as F`), and
`dropout` gets `training=self.training`, as the compiled forward does.
"""

from __future__ import annotations

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
)

_COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})


def to_python(program: ForwardProgram, *, self_name: str = "self") -> str:
    """The forward as a method of a hand-written class: `def forward(self, x):` and its body."""
    w = _PythonWriter(self_name)
    w.taken |= {*program.inputs, *_names(program.body)}
    lines = [f"def forward({self_name}, {', '.join(program.inputs)}):"]
    w.statements(program.body, "    ", lines)
    result = program.result
    if isinstance(result, Seq) and not result.is_list and result.items:
        w.line(
            "    ",
            "return ",
            result,
            lambda: ", ".join(w.expr(i) for i in result.items) + ("," if len(result.items) == 1 else ""),
            lines,
        )
    else:
        w.line("    ", "return ", result, lambda: w.expr(result), lines)
    return "\n".join(lines) + "\n"


#: the longest line `to_python` writes, so that the method, one level inside a class, stays within 88 columns
WIDTH = 84


def _names(body) -> set[str]:
    """Every name a forward assigns or loops with (a hoisted value must not take one)."""
    found: set[str] = set()

    def add(t):
        if isinstance(t, str):
            found.add(t)
        else:
            for part in t:
                add(part)

    for stmt in body:
        if isinstance(stmt, Assign):
            add(stmt.target)
        elif isinstance(stmt, For):
            found.add(stmt.var)
            found |= _names(stmt.body)
        else:
            found |= _names(stmt.body) | _names(stmt.orelse)
    return found


def _calls(e):
    """The calls inside an expression (not `e` itself), outermost first."""
    stack = [e]
    while stack:
        node = stack.pop(0)
        parts = []
        if isinstance(node, (ChildCall, FunctionCall, MethodCall)):
            parts = [*node.args, *(v for _, v in node.kwargs)]
            if isinstance(node, MethodCall):
                parts.insert(0, node.obj)
        elif isinstance(node, (BinaryOp,)):
            parts = [node.left, node.right]
        elif isinstance(node, (Negate,)):
            parts = [node.operand]
        elif isinstance(node, (AttrGet, IndexGet)):
            parts = [node.obj]
        elif isinstance(node, Seq):
            parts = list(node.items)
        for part in parts:
            if isinstance(part, (ChildCall, FunctionCall, MethodCall)):
                yield part
            stack.append(part)


def _target(t) -> str:
    if isinstance(t, str):
        return t
    return ", ".join(_target(p) if isinstance(p, str) else f"({_target(p)})" for p in t) + ("," if len(t) == 1 else "")


def _rank(op: str) -> int:
    return 0 if op in _COMPARISONS else 1 if op in "+-" else 2


class _PythonWriter:
    """Writes the checked program back as Python, with the fewest parentheses that keep its meaning."""

    def __init__(self, self_name: str):
        self.s = self_name
        self.loop_vars: set[str] = set()
        self.hoisted: dict[int, str] = {}  # id of a call written on a line of its own -> its name
        self.taken = {self_name, "torch", "F", "nn"}

    def line(self, indent, head, value, render, lines) -> None:
        """`indent + head + render()`; a line too long for the class gets its longest call on a line before it.

        As a person (and ruff) would keep it: `cls_token = self.cls_token.expand(...)`
        then `x = torch.cat((cls_token, x), dim=1) + self.pos_embed`.
        """
        text = indent + head + render()
        for _ in range(8):
            if len(text) <= WIDTH:
                break
            calls = [c for c in _calls(value) if id(c) not in self.hoisted]
            if not calls:
                break
            call = max(calls, key=lambda c: len(self.expr(c)))
            name = self.fresh(call)
            self.line(indent, f"{name} = ", call, lambda c=call: self.expr(c), lines)
            self.hoisted[id(call)] = name
            text = indent + head + render()
        if (
            len(text) > WIDTH
            and isinstance(value, (ChildCall, FunctionCall, MethodCall))
            and id(value) not in self.hoisted
        ):
            lines += self.split_call(indent, head, value) or [text]
            return
        lines.append(text)

    def split_call(self, indent, head, call) -> list[str]:
        """A call too long for its line with nothing left to hoist, split as ruff format splits it: its
        arguments on one line of their own, or one a line with a trailing comma ([] where even that fails)."""
        callee, args = self.call_parts(call)
        first, inner = f"{indent}{head}{callee}(", indent + "    "
        if not args or len(first) > WIDTH:
            return []
        if len(inner) + len(", ".join(args)) <= WIDTH:
            return [first, inner + ", ".join(args), indent + ")"]
        return [first, *(f"{inner}{a}," for a in args), indent + ")"]

    def fresh(self, call) -> str:
        if isinstance(call, MethodCall) and isinstance(call.obj, (Ref, ChildValue)):
            base = call.obj.name if isinstance(call.obj, Ref) else str(call.obj.path[-1])
        elif isinstance(call, ChildCall):
            base = str(call.path[-1])
        else:
            base = call.name if isinstance(call, FunctionCall) else call.method
        base = base if base.isidentifier() else "value"
        name, n = base, 1
        while name in self.taken or name in self.loop_vars:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        return name

    def statements(self, body, indent: str, lines: list[str]) -> None:
        for stmt in body:
            if isinstance(stmt, Assign):
                value = stmt.value
                if isinstance(value, BinaryOp) and value.inplace:
                    head = f"{_target(stmt.target)} {value.op}= "
                    self.line(indent, head, value.right, lambda v=value: self.expr(v.right, _rank(v.op), True), lines)
                else:
                    self.line(indent, f"{_target(stmt.target)} = ", value, lambda v=value: self.expr(v), lines)
            elif isinstance(stmt, For):
                container = self.child(stmt.path) + (".values()" if stmt.values else "")
                lines.append(f"{indent}for {stmt.var} in {container}:")
                self.loop_vars.add(stmt.var)
                self.statements(stmt.body, indent + "    ", lines)
                self.loop_vars.discard(stmt.var)
            else:  # If
                lines.append(f"{indent}if {self.s}.{stmt.name} is not None:")
                self.statements(stmt.body, indent + "    ", lines)
                if stmt.orelse:
                    lines.append(f"{indent}else:")
                    self.statements(stmt.orelse, indent + "    ", lines)

    def arg_list(self, call, extra=()) -> list[str]:
        return [self.expr(a) for a in call.args] + [f"{k}={self.expr(v)}" for k, v in call.kwargs] + list(extra)

    def child(self, path) -> str:
        text = path[0] if path[0] in self.loop_vars else f"{self.s}.{path[0]}"
        for key in path[1:]:
            if isinstance(key, int):
                text += f"[{key}]"
            elif key.isidentifier():
                text += f".{key}"
            else:
                text = f"getattr({text}, {key!r})"
        return text

    def index(self, e) -> str:
        if isinstance(e, SliceExpr):
            lo, hi = ("" if p is None else self.expr(p) for p in (e.lower, e.upper))
            return f"{lo}:{hi}" + ("" if e.step is None else f":{self.expr(e.step)}")
        if isinstance(e, Seq) and not e.is_list and e.items:
            return ", ".join(self.index(i) for i in e.items) + ("," if len(e.items) == 1 else "")
        return self.expr(e)

    def call(self, e) -> str:
        callee, args = self.call_parts(e)
        return f"{callee}({', '.join(args)})"

    def call_parts(self, e) -> tuple[str, list[str]]:
        """What stands before a call's parentheses, and its arguments as written."""
        if isinstance(e, ChildCall):
            return self.child(e.path), self.arg_list(e)
        if isinstance(e, FunctionCall):
            qualifier = "F" if e.target.startswith("torch.nn.functional.") else "torch"
            extra = (
                [f"training={self.s}.training"]
                if e.name == "dropout" and len(e.args) < 3 and all(k != "training" for k, _ in e.kwargs)
                else []
            )
            return f"{qualifier}.{e.name}", self.arg_list(e, extra)
        return f"{self.expr(e.obj, 9)}.{e.method}", self.arg_list(e)

    def expr(self, e, parent=0, right=False) -> str:
        if id(e) in self.hoisted:
            return self.hoisted[id(e)]
        if isinstance(e, Const):
            if isinstance(e.value, float) and e.value != e.value or e.value in (float("inf"), float("-inf")):
                return (
                    _paren(f'{"-" if e.value < 0 else ""}float("inf")', 3, parent, right)
                    if e.value == e.value
                    else 'float("nan")'
                )
            return "..." if e.value is Ellipsis else repr(e.value)
        if isinstance(e, Ref):
            return e.name
        if isinstance(e, ChildValue):
            return self.child(e.path)
        if isinstance(e, DType):
            return f"torch.{e.name}"
        if isinstance(e, Choice):
            return repr(e.value)
        if isinstance(e, Seq):
            inner = ", ".join(self.expr(i) for i in e.items)
            return f"[{inner}]" if e.is_list else f"({inner}{',' if len(e.items) == 1 else ''})"
        if isinstance(e, (ChildCall, FunctionCall, MethodCall)):
            return self.call(e)
        if isinstance(e, AttrGet):
            return f"{self.expr(e.obj, 9)}.{e.attr}"
        if isinstance(e, IndexGet):
            return f"{self.expr(e.obj, 9)}[{self.index(e.index)}]"
        if isinstance(e, Negate):
            return _paren(f"-{self.expr(e.operand, 3)}", 3, parent, right)
        if isinstance(e, BinaryOp):
            rank = _rank(e.op)
            # comparisons do not chain here: `(a < b) == c` keeps its parentheses on either side
            text = f"{self.expr(e.left, rank + (rank == 0))} {e.op} {self.expr(e.right, rank, True)}"
            return _paren(text, rank, parent, right)
        return self.index(e) if isinstance(e, SliceExpr) else repr(e)


def _paren(text, rank, parent, right):
    needs = rank < parent or (right and rank == parent) or (parent == 9)
    return f"({text})" if needs else text
