"""The checked forward program as plain data (what may be named is forward_lang.py).

forward_parse.py reads text into these objects, forward_graph.py compiles them
into a module's forward, and forward_python.py writes them back as the plain
PyTorch a person would write (for `netcli code`). No torch here: checking a
spec must not pay for importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcli.core.errors import Location


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
    """A call of a child, or of a child's own child by position or name: `conv1(x)`, `net[0](x)`, `tr.wte(x)`.

    The path's head is a child or a loop variable. Whether each later step is a
    module, a parameter or a buffer is known only when the forward is compiled
    against the built block: `enc.weight.t()` (written as an attribute, ending
    in a listed method) then calls the method on the parameter.
    """

    path: tuple  # ("net", 0, "hidden"): a child, then its children by position or name
    args: tuple
    kwargs: tuple  # ((name, Expr), ...)
    loc: Location


@dataclass(frozen=True)
class ChildValue:
    """A tensor the block holds, read by name: `pos_embed`, `enc.weight`, `lm_head.weight`, `gamma`.

    A Parameter or Buffer child, or a child's parameter or buffer (fx `get_attr`):
    read, never assigned. Steps after the tensor index it or read a listed
    attribute (`pos_embed.shape[1]`), resolved when the forward is compiled.
    """

    path: tuple
    loc: Location


@dataclass(frozen=True)
class DType:
    """A torch dtype named in the text: `torch.long`, `float32` (one of forward_lang.DTYPES)."""

    name: str
    loc: Location


@dataclass(frozen=True)
class Choice:
    """A string a listed function takes as a choice: `mode="nearest"` (forward_lang.CHOICES)."""

    value: str
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
    """`left op right` for `+ - * / // % @` and one comparison; `inplace` when written `a += b`."""

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


Expr = (
    Const
    | Ref
    | Seq
    | SliceExpr
    | ChildCall
    | ChildValue
    | DType
    | Choice
    | FunctionCall
    | MethodCall
    | AttrGet
    | IndexGet
    | BinaryOp
    | Negate
)
Target = str | tuple  # a name, or a (nested) tuple of names


@dataclass(frozen=True)
class Assign:
    """`target = value`, or `a, (b, c) = value`: unpacking a child's tuple output (an LSTM's)."""

    target: Target
    value: Expr
    loc: Location


@dataclass(frozen=True)
class For:
    """`for block in blocks:` over a ModuleList or Sequential child (`.values()` of a ModuleDict).

    Unrolled when compiled: the body is emitted once per item, `var` naming that
    item; nothing loops at run time.
    """

    var: str
    path: tuple  # the container, as a ChildCall path (its head a child or an outer loop variable)
    values: bool  # written `blocks.values()`: a ModuleDict's modules
    body: tuple  # statements
    loc: Location


@dataclass(frozen=True)
class If:
    """`if downsample is not None:` (and `else:`): decided when compiled, by whether the block has that child."""

    name: str
    body: tuple
    orelse: tuple
    loc: Location


Statement = Assign | For | If


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
    """`net[0].hidden`: a child path as the forward text may write it."""
    return str(path[0]) + "".join(
        f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{key!r}]" for key in path[1:]
    )
