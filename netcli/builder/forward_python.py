"""Write a checked forward program back as the Python a person would write (for `netcli code`)."""

from __future__ import annotations

from netcli.builder.forward_ir import (
    Assign,
    AttrGet,
    BinaryOp,
    ChildCall,
    Const,
    DtypeConst,
    ForwardProgram,
    FunctionCall,
    IfPresent,
    IndexGet,
    Loop,
    MethodCall,
    Negate,
    Ref,
    Seq,
    SliceExpr,
    TensorGet,
)


def to_python(program: ForwardProgram, *, self_name: str = "self") -> str:
    """The forward as a method of a hand-written class: `def forward(self, x):` and its body.

    Children become `self.conv1(...)`, functions `torch.cat(...)` / `F.gelu(...)`
    (the caller imports `torch` and `torch.nn.functional as F`), and `dropout`
    gets `training=self.training`, as the compiled forward does.
    """
    w = _PythonWriter(self_name)
    lines = [f"def forward({self_name}, {', '.join(program.inputs)}):"]
    lines += w.statements(program.body, "    ")
    result = program.result
    if isinstance(result, Seq) and not result.is_list and result.items:
        lines.append(
            "    return " + ", ".join(w.expr(i) for i in result.items) + ("," if len(result.items) == 1 else "")
        )
    else:
        lines.append(f"    return {w.expr(result)}")
    return "\n".join(lines) + "\n"


def _target(t) -> str:
    if isinstance(t, str):
        return t
    return ", ".join(_target(p) if isinstance(p, str) else f"({_target(p)})" for p in t) + ("," if len(t) == 1 else "")


class _PythonWriter:
    """Writes the checked expressions back as Python, with the fewest parentheses that keep their meaning."""

    def __init__(self, self_name: str):
        self.s = self_name
        self.loop_vars: set[str] = set()  # inside `for block in self.blocks:`, `block` is a local name

    def statements(self, body, pad: str) -> list[str]:
        lines: list[str] = []
        for stmt in body:
            if isinstance(stmt, Loop):
                lines.append(f"{pad}for {stmt.var} in {self.child(stmt.path)}:")
                self.loop_vars.add(stmt.var)
                lines += self.statements(stmt.body, pad + "    ")
                self.loop_vars.discard(stmt.var)
            elif isinstance(stmt, IfPresent):
                lines.append(f"{pad}if {self.s}.{stmt.name} is not None:")
                lines += self.statements(stmt.body, pad + "    ") or [f"{pad}    pass"]
                if stmt.orelse:
                    lines.append(f"{pad}else:")
                    lines += self.statements(stmt.orelse, pad + "    ")
            else:
                assert isinstance(stmt, Assign)
                value = stmt.value
                if isinstance(value, BinaryOp) and value.inplace:
                    rank = _rank(value.op)
                    lines.append(f"{pad}{_target(stmt.target)} {value.op}= {self.expr(value.right, rank, True)}")
                else:
                    lines.append(f"{pad}{_target(stmt.target)} = {self.expr(value)}")
        return lines

    def args(self, call, extra=()) -> str:
        parts = [self.expr(a) for a in call.args] + [f"{k}={self.expr(v)}" for k, v in call.kwargs] + list(extra)
        return ", ".join(parts)

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
        if isinstance(e, ChildCall):
            return f"{self.child(e.path)}({self.args(e)})"
        if isinstance(e, FunctionCall):
            qualifier = "F" if e.target.startswith("torch.nn.functional.") else "torch"
            extra = (
                [f"training={self.s}.training"]
                if e.name == "dropout" and len(e.args) < 3 and all(k != "training" for k, _ in e.kwargs)
                else []
            )
            return f"{qualifier}.{e.name}({self.args(e, extra)})"
        return f"{self.expr(e.obj, 9)}.{e.method}({self.args(e)})"

    def expr(self, e, parent=0, right=False) -> str:
        if isinstance(e, Const):
            if isinstance(e.value, float) and e.value != e.value or e.value in (float("inf"), float("-inf")):
                return f'float("{e.value}")'  # repr(1e999) is `inf`: a NameError in the written code
            return "..." if e.value is Ellipsis else repr(e.value)
        if isinstance(e, Ref):
            return e.name
        if isinstance(e, Seq):
            inner = ", ".join(self.expr(i) for i in e.items)
            return f"[{inner}]" if e.is_list else f"({inner}{',' if len(e.items) == 1 else ''})"
        if isinstance(e, (ChildCall, FunctionCall, MethodCall)):
            return self.call(e)
        if isinstance(e, AttrGet):
            return f"{self.expr(e.obj, 9)}.{e.attr}"
        if isinstance(e, TensorGet):
            return self.child(e.path)
        if isinstance(e, DtypeConst):
            return f"torch.{e.name}"
        if isinstance(e, IndexGet):
            return f"{self.expr(e.obj, 9)}[{self.index(e.index)}]"
        if isinstance(e, Negate):
            return _paren(f"-{self.expr(e.operand, 3)}", 3, parent, right)
        if isinstance(e, BinaryOp):
            rank = _rank(e.op)
            text = f"{self.expr(e.left, rank)} {e.op} {self.expr(e.right, rank, True)}"
            return _paren(text, rank, parent, right)
        return self.index(e) if isinstance(e, SliceExpr) else repr(e)


def _rank(op: str) -> int:
    """Python's binding strength, as this writer counts it: comparisons < + - < * / // % @."""
    if op in ("<", "<=", ">", ">=", "==", "!="):
        return 0
    return 1 if op in "+-" else 2


def _paren(text, rank, parent, right):
    needs = rank < parent or (right and rank == parent) or (parent == 9)
    return f"({text})" if needs else text
