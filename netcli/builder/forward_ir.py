"""The forward language: what a `forward:` may call, and the checked program as plain data.

forward_parse.py reads text into these objects, forward_graph.py compiles them
into a module's forward, and forward_python.py writes them back as the plain
PyTorch a person would write (for `netcli code`). No torch here: checking a spec must
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
    "arange",
    "argmax",
    "argmin",
    "baddbmm",
    "bmm",
    "cat",
    "chunk",
    "clamp",
    "concat",
    "cos",
    "cumsum",
    "div",
    "einsum",
    "erf",
    "exp",
    "eye",
    "flatten",
    "flip",
    "full",
    "full_like",
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
    "ones",
    "ones_like",
    "outer",
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
    "tril",
    "triu",
    "unbind",
    "unsqueeze",
    "var",
    "where",
    "zeros",
    "zeros_like",
]
_FUNCTIONAL = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "celu",
    "cosine_similarity",
    "dropout",
    "elu",
    "embedding",
    "gelu",
    "glu",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "interpolate",
    "layer_norm",
    "leaky_relu",
    "linear",
    "logsigmoid",
    "max_pool1d",
    "max_pool2d",
    "mish",
    "normalize",
    "one_hot",
    "pad",
    "pairwise_distance",
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
        "all",
        "amax",
        "amin",
        "any",
        "argmax",
        "argmin",
        "bmm",
        "bool",
        "chunk",
        "clamp",
        "clone",
        "contiguous",
        "cos",
        "cumsum",
        "detach",
        "dim",
        "div",
        "exp",
        "expand",
        "expand_as",
        "flatten",
        "flip",
        "float",
        "gather",
        "half",
        "int",
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
        "to",
        "transpose",
        "tril",
        "triu",
        "type_as",
        "unbind",
        "unsqueeze",
        "var",
        "view",
        "view_as",
    ]
)
#: The tensor attributes a forward may read: `x.shape[0]`, `device=x.device`, `.to(x.dtype)`.
ATTRIBUTES = frozenset({"shape", "ndim", "device", "dtype"})
#: torch dtypes a forward may name, as `torch.NAME` (`dtype=torch.long`).
DTYPES = frozenset(
    {
        "bool",
        "bfloat16",
        "float16",
        "float32",
        "float64",
        "half",
        "float",
        "double",
        "int8",
        "int16",
        "int32",
        "int64",
        "long",
        "int",
        "uint8",
    }
)
#: Keyword arguments that take one of a few strings: (function, keyword) -> the choices.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("interpolate", "mode"): ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact"),
    ("pad", "mode"): ("constant", "reflect", "replicate", "circular"),
    ("gelu", "approximate"): ("none", "tanh"),
}
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


@dataclass(frozen=True)
class TensorGet:
    """A tensor the block holds, read as a value: a Parameter/Buffer child (`pos_embed`) or a child's (`enc.weight`).

    Resolved when the forward is compiled: the last step must name a parameter or
    buffer of the module the steps before it reach; it is read, never assigned.
    """

    path: tuple  # ("pos_embed",), ("enc", "weight"), ("blocks", 0, "weight")
    loc: Location


@dataclass(frozen=True)
class DtypeConst:
    """A torch dtype written in a forward: `torch.long`, `torch.float32` (for `dtype=` and `.to(...)`)."""

    name: str  # an attribute of torch that is a torch.dtype
    loc: Location


Expr = (
    Const
    | Ref
    | Seq
    | SliceExpr
    | ChildCall
    | FunctionCall
    | MethodCall
    | AttrGet
    | IndexGet
    | BinaryOp
    | Negate
    | TensorGet
    | DtypeConst
)
Target = str | tuple  # a name, or a (nested) tuple of names


@dataclass(frozen=True)
class Assign:
    """`target = value`, or `a, (b, c) = value`: unpacking a child's tuple output (an LSTM's)."""

    target: Target
    value: Expr
    loc: Location


@dataclass(frozen=True)
class Loop:
    """`for block in blocks:` over a child ModuleList (or Sequential): unrolled when the forward is compiled.

    In the body, the loop's name calls the current item (`block(x)`) or reads its
    tensors (`block.weight`); at run time there is no loop, one call per item.
    """

    var: str
    path: tuple  # the container child, as ChildCall paths are written
    body: tuple  # statements
    loc: Location


@dataclass(frozen=True)
class IfPresent:
    """`if downsample is not None:` on a child a use may leave out (a module-valued param set to null).

    Decided when the forward is compiled, per use: the branch that applies is
    compiled, the other is not.
    """

    name: str
    body: tuple
    orelse: tuple
    loc: Location


Statement = Assign | Loop | IfPresent


@dataclass(frozen=True)
class ForwardProgram:
    """A forward that passed every check: statements, the returned expression, where it came from."""

    text: str
    inputs: tuple
    body: tuple  # Statement, ...
    result: Expr
    children: tuple  # every child name the block has, in order
    used: frozenset  # the children the forward calls
    location: Location  # the text's first character
    where: str = ""  # the dotted place in the spec, for problems found when compiling


def show_path(path) -> str:
    """`net[0]['hidden']`: a child path as the forward text writes it."""
    return str(path[0]) + "".join(f"[{key!r}]" for key in path[1:])
