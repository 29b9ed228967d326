"""The forward language: what a `forward:` may call, and the checked program as plain data.

forward_parse.py reads text into these objects, forward_graph.py compiles them
into a module's forward, and `to_python` writes them back as the plain PyTorch
a person would write (for `netcli code`). No torch here: checking a spec must
not pay for importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcli.core.errors import Location

_TORCH = [
    "abs",
    "add",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "bmm",
    "cat",
    "chunk",
    "clamp",
    "concat",
    "cos",
    "cumsum",
    "div",
    "erf",
    "exp",
    "flatten",
    "flip",
    "log",
    "log1p",
    "log_softmax",
    "logsumexp",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mm",
    "mul",
    "narrow",
    "neg",
    "ones_like",
    "permute",
    "pow",
    "prod",
    "repeat_interleave",
    "reshape",
    "roll",
    "rsqrt",
    "select",
    "sigmoid",
    "sign",
    "sin",
    "softmax",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "t",
    "tanh",
    "tile",
    "transpose",
    "unbind",
    "unsqueeze",
    "var",
    "where",
    "zeros_like",
]
_FUNCTIONAL = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "celu",
    "dropout",
    "elu",
    "gelu",
    "glu",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "interpolate",
    "layer_norm",
    "leaky_relu",
    "logsigmoid",
    "max_pool1d",
    "max_pool2d",
    "mish",
    "normalize",
    "one_hot",
    "pad",
    "pixel_shuffle",
    "relu",
    "relu6",
    "scaled_dot_product_attention",
    "selu",
    "silu",
    "softmin",
    "softplus",
    "softsign",
    "tanhshrink",
]

#: The pure tensor functions a forward may call: bare name -> the callable's dotted path.
#: `torch.NAME(...)` and `F.NAME(...)` are accepted spellings of the same function.
FUNCTIONS: dict[str, str] = {
    **{n: f"torch.{n}" for n in _TORCH},
    **{n: f"torch.nn.functional.{n}" for n in _FUNCTIONAL},
}
#: The tensor methods a forward may call on a value: `x.flatten(1)`.
METHODS = frozenset(
    [
        "abs",
        "add",
        "amax",
        "amin",
        "argmax",
        "argmin",
        "bmm",
        "chunk",
        "clamp",
        "contiguous",
        "cos",
        "cumsum",
        "detach",
        "div",
        "exp",
        "expand",
        "expand_as",
        "flatten",
        "flip",
        "float",
        "log",
        "log_softmax",
        "long",
        "masked_fill",
        "matmul",
        "max",
        "mean",
        "min",
        "mm",
        "mul",
        "narrow",
        "neg",
        "permute",
        "pow",
        "prod",
        "relu",
        "repeat",
        "reshape",
        "reshape_as",
        "roll",
        "rsqrt",
        "select",
        "sigmoid",
        "sin",
        "size",
        "softmax",
        "split",
        "sqrt",
        "square",
        "squeeze",
        "std",
        "sub",
        "sum",
        "t",
        "tanh",
        "tile",
        "transpose",
        "type_as",
        "unbind",
        "unsqueeze",
        "var",
        "view",
        "view_as",
    ]
)
#: The tensor attributes a forward may read: `x.shape[0]`.
ATTRIBUTES = frozenset({"shape", "ndim"})
#: Names that qualify a listed function: `torch.cat`, `F.gelu`.
QUALIFIERS = frozenset({"torch", "F"})


@dataclass(frozen=True)
class Const:
    """A literal: `1`, `-0.5`, `True`, `None`, `...`."""

    value: object  # int, float, bool, None or Ellipsis
    loc: Location


@dataclass(frozen=True)
class Ref:
    """A name the forward reads: an input, or a value assigned earlier."""

    name: str  # an input or an earlier value
    loc: Location


@dataclass(frozen=True)
class Seq:
    """A tuple or list display, `(a, b)` or `[a, b]`: arguments of `cat`, `stack`, `permute`..."""

    items: tuple
    is_list: bool  # written with brackets: a list, else a tuple
    loc: Location


@dataclass(frozen=True)
class SliceExpr:
    """`lower:upper:step` inside brackets; a missing part is None.

    Only in an index: `out[:, -1]`, `x[..., 1:3]`.
    """

    lower: Expr | None
    upper: Expr | None
    step: Expr | None
    loc: Location


@dataclass(frozen=True)
class ChildCall:
    """A call of a child, or of a child's own child by position or name: `conv1(x)`, `net[0](x)`."""

    path: tuple  # ("net", 0, "hidden"): a child, then its children by position or name
    args: tuple
    kwargs: tuple  # ((name, Expr), ...)
    loc: Location


@dataclass(frozen=True)
class FunctionCall:
    """A call of a listed function, bare or qualified: `cat(...)`, `torch.cat(...)`, `F.gelu(...)`.

    `target` is the dotted path it resolves to, from FUNCTIONS; nothing else can be reached.
    """

    name: str
    target: str  # dotted path from FUNCTIONS
    args: tuple
    kwargs: tuple
    loc: Location


@dataclass(frozen=True)
class MethodCall:
    """A listed tensor method called on a value: `x.flatten(1)`, `x.transpose(1, 2)`."""

    obj: Expr
    method: str
    args: tuple
    kwargs: tuple
    loc: Location


@dataclass(frozen=True)
class AttrGet:
    """A listed tensor attribute: `x.shape`, `x.ndim`."""

    obj: Expr
    attr: str  # one of ATTRIBUTES
    loc: Location


@dataclass(frozen=True)
class IndexGet:
    """Indexing a value: `state[0]`, `out[:, -1]`, `x.shape[0]`."""

    obj: Expr
    index: Expr  # a value, a SliceExpr, or a tuple (Seq) of them
    loc: Location


@dataclass(frozen=True)
class BinaryOp:
    """`left op right` for `+ - * / @`; `inplace` when written `a += b` (compiled out of place)."""

    op: str  # one of OPERATORS' values
    left: Expr
    right: Expr
    loc: Location
    inplace: bool = False  # `out += identity`: Python's in-place operator, as the hand-written forward runs it


@dataclass(frozen=True)
class Negate:
    """Unary minus: `-x`."""

    operand: Expr
    loc: Location


Expr = Const | Ref | Seq | SliceExpr | ChildCall | FunctionCall | MethodCall | AttrGet | IndexGet | BinaryOp | Negate
Target = str | tuple  # a name, or a (nested) tuple of names


@dataclass(frozen=True)
class Assign:
    """`target = value`, or `a, (b, c) = value`: unpacking a child's tuple output (an LSTM's)."""

    target: Target
    value: Expr
    loc: Location


@dataclass(frozen=True)
class ForwardProgram:
    """A forward that passed every check: statements, the returned expression, where it came from."""

    text: str
    inputs: tuple
    body: tuple  # Assign, ...
    result: Expr
    children: tuple  # every child name the block has, in order
    used: frozenset  # the children the forward calls
    location: Location  # the text's first character
    where: str = ""  # the dotted place in the spec, for problems found when compiling


def show_path(path) -> str:
    """`net[0]['hidden']`: a child path as the forward text writes it."""
    return str(path[0]) + "".join(f"[{key!r}]" for key in path[1:])


def to_python(program: ForwardProgram, *, self_name: str = "self") -> str:
    """The forward as a method of a hand-written class: `def forward(self, x):` and its body.

    Children become `self.conv1(...)`, functions `torch.cat(...)` / `F.gelu(...)`
    (the caller imports `torch` and `torch.nn.functional as F`), and `dropout`
    gets `training=self.training`, as the compiled forward does.
    """
    w = _PythonWriter(self_name)
    lines = [f"def forward({self_name}, {', '.join(program.inputs)}):"]
    lines += [
        f"    {_target(a.target)} {a.value.op}= {w.expr(a.value.right, 1 if a.value.op in '+-' else 2, True)}"
        if isinstance(a.value, BinaryOp) and a.value.inplace
        else f"    {_target(a.target)} = {w.expr(a.value)}"
        for a in program.body
    ]
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

    def args(self, call, extra=()) -> str:
        parts = [self.expr(a) for a in call.args] + [f"{k}={self.expr(v)}" for k, v in call.kwargs] + list(extra)
        return ", ".join(parts)

    def child(self, path) -> str:
        text = f"{self.s}.{path[0]}"
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
        if isinstance(e, IndexGet):
            return f"{self.expr(e.obj, 9)}[{self.index(e.index)}]"
        if isinstance(e, Negate):
            return _paren(f"-{self.expr(e.operand, 3)}", 3, parent, right)
        if isinstance(e, BinaryOp):
            rank = 1 if e.op in "+-" else 2
            text = f"{self.expr(e.left, rank)} {e.op} {self.expr(e.right, rank, True)}"
            return _paren(text, rank, parent, right)
        return self.index(e) if isinstance(e, SliceExpr) else repr(e)


def _paren(text, rank, parent, right):
    needs = rank < parent or (right and rank == parent) or (parent == 9)
    return f"({text})" if needs else text
