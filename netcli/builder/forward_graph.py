"""Turn a checked forward program into the block's real `forward`, compiled once.

The program becomes a torch.fx Graph whose nodes call the block's own children
(`net[0](x)` is the submodule `net.0`), the listed torch functions and tensor
methods; fx writes that graph out as straight-line Python, and that function
becomes `forward` of the block's class. A call then costs what a hand-written
forward costs (no interpretation per call), the module prints and saves like a
hand-written class with the same children, and torch.jit.trace, torch.export
and ONNX export see ordinary module code.
"""

from __future__ import annotations

import builtins
import importlib
import keyword
import operator
import re
import types
import weakref

from torch import fx, nn

from netcli.builder.custom_block import CustomBlock, block_class  # noqa: F401  (block_class: forward.py's API)
from netcli.builder.forward_ir import (
    ATTRIBUTES,
    DTYPES,
    FUNCTIONS,
    METHODS,
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
    show_path,
)
from netcli.core.errors import Location, NetcliError, Problem, did_you_mean

_OPERATORS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "@": operator.matmul,
    "//": operator.floordiv,
    "%": operator.mod,
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
    "@": operator.imatmul,
    "//": operator.ifloordiv,
    "%": operator.imod,
}
_LITERALS = (bool, int, float, str, type(None), type(Ellipsis))  # a str only as a checked choice (CHOICES)
# fx writes a child name that is not an identifier as getattr(self.net, "NAME"): a name
# that could end that string literal must never reach the generated code; nor may a
# keyword, which fx would write as self.net.class.
_UNSAFE_IN_CODE = re.compile(r'["\\]')
_DROPOUT = "torch.nn.functional.dropout"

# generated forward's code object -> (its source lines, node name -> where in the text);
# weak, so a network that is dropped takes its entries with it
_ORIGINS: weakref.WeakKeyDictionary[types.CodeType, tuple[list[str], dict[str, Location]]] = weakref.WeakKeyDictionary()


def compile_forward(program: ForwardProgram, root: nn.Module) -> nn.Module:
    """Give `root` (its children already registered, in order) the forward `program` describes.

    The forward is generated once and set on root's class, so every instance of a
    definition shares it; an instance whose children resolve differently (say
    `net[-1]` over Sequentials of different lengths) gets a subclass of the same
    name. Returns root. Raises NetcliError, located in the forward text, when a
    child the program calls is not there (`net[5]` of a 3-child Sequential).
    """
    graph, origins = _Emitter(program, root).build()
    python = graph.python_code(root_module="self")
    source = python.src
    cls = type(root)
    if cls.__dict__.get("_netcli_source") == source:
        return root
    if issubclass(cls, CustomBlock) and cls is not CustomBlock and "_netcli_source" not in cls.__dict__:
        target = cls
    else:
        variants = cls.__dict__.get("_netcli_variants")
        if variants is None:
            variants = {}
            cls._netcli_variants = variants
        if source not in variants:
            variants[source] = type(
                cls.__name__, (cls,), {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
            )
        root.__class__ = target = variants[source]
        if "_netcli_source" in target.__dict__:
            return root
    # fx wrote the code, from a graph whose every node is a checked child call, an allow-listed function or
    # method, or a literal (forward_parse refuses the rest; child names that could break out of fx's
    # string literals are refused, `_UNSAFE_IN_CODE`): no text of the spec is compiled. It is compiled once, as fx
    # compiles a GraphModule's, and set on the class.
    target.forward = _forward_of(python)
    target._netcli_source = source
    target._netcli_program = program
    target._netcli_calls = tuple(n.target for n in graph.nodes if n.op == "call_module")  # see call_bound.py
    _ORIGINS[target.forward.__code__] = (source.splitlines(), origins)
    return root


def _forward_of(python):
    """The forward fx's generated code defines (fx's own loader: its source shows in tracebacks)."""
    try:
        from torch.fx.graph_module import _forward_from_src
    except ImportError:  # another torch: compile it here (tracebacks then show no source line)
        namespace: dict = dict(python.globals)
        exec(compile(python.src, "<netcli forward>", "exec", dont_inherit=True), namespace)
        return namespace["forward"]
    return _forward_from_src(python.src, python.globals)


def compiled_program(module: nn.Module) -> ForwardProgram | None:
    """The program a module's forward was compiled from (for `netcli code`), or None."""
    return getattr(type(module), "_netcli_program", None)


def dataflow(module: nn.Module) -> fx.Graph | None:
    """The fx graph of a custom block's compiled forward, or None for any other module.

    `netcli plot` draws it: its placeholders, child calls, functions, methods and
    output, and the edges between them (a skip connection is an edge past the
    children). The graph is made again from the stored program, against this
    instance's children, exactly as `compile_forward` made it.
    """
    program = compiled_program(module)
    return None if program is None else _Emitter(program, module).build()[0]


def failure_location(exc: BaseException) -> Location | None:
    """Where in the forward text the statement was that raised `exc`, or None if no forward did.

    For the builder's trial run: a shape mismatch in `conv2(out)` can then be
    reported at that call's FILE:LINE:COL instead of as a traceback.
    """
    found = None
    tb = exc.__traceback__
    while tb is not None:
        origin = _ORIGINS.get(tb.tb_frame.f_code)
        if origin is not None:
            lines, where = origin
            text = lines[tb.tb_lineno - 1] if 0 < tb.tb_lineno <= len(lines) else ""
            match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", text)
            if match and match.group(1) in where:
                found = where[match.group(1)]  # the innermost forward wins
        tb = tb.tb_next
    return found


class _Emitter:
    """Walk a program once, adding one fx node per call, operator, index or attribute."""

    def __init__(self, program: ForwardProgram, root: nn.Module):
        self.program, self.root = program, root
        self.graph = fx.Graph()
        self.env: dict[str, object] = {}
        self.origins: dict[str, Location] = {}
        self.problems: list[Problem] = []
        self.loops: dict[str, tuple] = {}  # a loop's name -> the path of the item it stands for now

    def build(self):
        for name in self.program.inputs:
            if not name.isidentifier():
                raise ValueError(f"not a checked program: input {name!r}")
            self.env[name] = self.graph.placeholder(name)
        self.statements(self.program.body)
        result = self.expr(self.program.result)
        if self.problems:
            raise NetcliError(self.problems)
        self.graph.output(result)
        self.graph.lint()
        return self.graph, self.origins

    def statements(self, body) -> None:
        for stmt in body:
            if isinstance(stmt, Loop):  # unrolled: one copy of the body per item of the container
                container = self.module_at(self.substitute(stmt.path), stmt.loc)
                if container is None:
                    continue
                if not isinstance(container, (nn.ModuleList, nn.Sequential)):
                    self.problem(
                        f"{show_path(stmt.path)} is a {type(container).__name__}: a loop runs over a ModuleList "
                        "or Sequential",
                        stmt.loc,
                    )
                    continue
                for i in range(len(container)):
                    self.loops[stmt.var] = (*self.substitute(stmt.path), i)
                    self.statements(stmt.body)
                self.loops.pop(stmt.var, None)
            elif isinstance(stmt, IfPresent):
                present = self.root._modules.get(stmt.name) is not None
                self.statements(stmt.body if present else stmt.orelse)
            else:
                assert isinstance(stmt, Assign)
                name = stmt.target if isinstance(stmt.target, str) else None
                self.bind(stmt.target, self.expr(stmt.value, name))

    def substitute(self, path) -> tuple:
        """A path as the graph reaches it: a loop's name replaced by the item it stands for."""
        if path and path[0] in self.loops:
            return (*self.loops[path[0]], *path[1:])
        return tuple(path)

    def module_at(self, path, loc):
        """The submodule a child path reaches, or None (a located problem recorded)."""
        target = self.resolve(path, loc)
        if target == "_missing":
            return None
        module = self.root
        for part in target.split(".") if target else ():
            module = module._modules[part]
        return module

    def tensor(self, path, loc, name):
        """A get_attr node for a Parameter/Buffer the block (`pos_embed`) or a child (`enc.weight`) holds."""
        *steps, attr = path
        module = self.module_at(tuple(steps), loc) if steps else self.root
        if module is None:
            return "_missing"
        held = {
            **{k: v for k, v in module._parameters.items() if v is not None},
            **{k: v for k, v in module._buffers.items() if v is not None},
        }
        if not isinstance(attr, str) or attr not in held or _UNSAFE_IN_CODE.search(attr) or keyword.iskeyword(attr):
            where = show_path(tuple(steps)) if steps else "the block"
            return self.problem(
                f"{where} holds no parameter or buffer {attr!r}",
                loc,
                did_you_mean(str(attr), list(held), listing=8) or (f"it holds {', '.join(held)}" if held else None),
            )
        target = ".".join([self.resolve(tuple(steps), loc), attr]) if steps else attr
        return self.node("get_attr", target, (), {}, name, loc)

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
        """The fx argument for `e`: a Node, or a literal (tuple, slice, number, None)."""
        if isinstance(e, Const):
            if not isinstance(e.value, _LITERALS):
                raise TypeError(f"not a checked program: literal {e.value!r}")
            return e.value
        if isinstance(e, Ref):
            return self.env[e.name]
        if isinstance(e, Seq):
            items = [self.expr(i) for i in e.items]
            return items if e.is_list else tuple(items)
        if isinstance(e, SliceExpr):
            return slice(*(None if p is None else self.expr(p) for p in (e.lower, e.upper, e.step)))
        if isinstance(e, ChildCall):
            target = self.resolve(self.substitute(e.path), e.loc)
            args, kwargs = self.arguments(e)
            return self.node("call_module", target, args, kwargs, name, e.loc)
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
        if isinstance(e, TensorGet):
            return self.tensor(self.substitute(e.path), e.loc, name)
        if isinstance(e, DtypeConst):
            import torch

            if e.name not in DTYPES or not isinstance(getattr(torch, e.name, None), torch.dtype):
                raise ValueError(f"not a checked program: dtype {e.name!r}")
            return getattr(torch, e.name)
        raise ValueError(f"not a checked program: {type(e).__name__}")

    def arguments(self, e):
        return [self.expr(a) for a in e.args], {k: self.expr(v) for k, v in e.kwargs}

    def resolve(self, path, loc) -> str:
        """`("net", 0)` -> "net.0", the qualified name fx calls; a missing child is a located problem."""
        module, names = self.root, []
        for i, key in enumerate(path):
            shown = show_path(path[:i]) if i else "the block"
            children = list(module._modules)
            if isinstance(key, int) and not isinstance(key, bool):
                if not isinstance(module, (nn.Sequential, nn.ModuleList)):
                    return self.problem(
                        f"{shown} is a {type(module).__name__}, not a Sequential or ModuleList",
                        loc,
                        "pick its child by name: net['name']",
                    )
                if not -len(children) <= key < len(children):
                    return self.problem(f"{shown} has {len(children)} children: [{key}] is out of range", loc)
                key = children[key]
            elif key not in module._modules:
                return self.problem(f"{shown} has no child {key!r}", loc, did_you_mean(key, children, listing=8))
            if (
                module._modules[key] is None
                or _UNSAFE_IN_CODE.search(key)
                or not key.isprintable()
                or keyword.iskeyword(key)
            ):
                return self.problem(f"child {show_path(path[: i + 1])} cannot be called from a forward", loc)
            module = module._modules[key]
            names.append(key)
        return ".".join(names)

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
