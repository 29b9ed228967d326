"""Write a module's `forward` in the spec's forward language, from its torch.fx graph (children as leaves).

torch.fx runs `forward` once on proxies, recording each child call, function,
method and attribute read; the graph is then written back as the forward
language's text: values used once are nested into their user, as a person
writes `relu(bn1(conv1(x)))`, the others get a name. What the language cannot
say (control flow on values, a function outside the allowed list, a Python
object as an argument) is an error naming the class, the line of its
`forward` and the construct.
"""

from __future__ import annotations

import inspect
import keyword
import operator
import traceback
from typing import Any

from netcli.builder.forward_lang import ATTRIBUTES, FUNCTIONS, METHODS
from netcli.core.errors import Location, NetcliError, Problem

_INFIX = {
    operator.add: "+",
    operator.sub: "-",
    operator.mul: "*",
    operator.truediv: "/",
    operator.matmul: "@",
    operator.floordiv: "//",
    operator.mod: "%",
    operator.lt: "<",
    operator.le: "<=",
    operator.gt: ">",
    operator.ge: ">=",
    operator.eq: "==",
    operator.ne: "!=",
}
_INLINE_WIDTH = 72  # a nested expression longer than this gets a name of its own
_RETURN_WIDTH = 100  # ... unless it is what the forward returns


def _functions() -> dict[Any, str]:
    """The allowed functions by identity: torch.cat -> "cat", F.relu -> "relu"."""
    import importlib

    found: dict[Any, str] = {}
    for bare, dotted in FUNCTIONS.items():
        module, _, attr = dotted.rpartition(".")
        fn = getattr(importlib.import_module(module), attr, None)
        if fn is not None:
            found.setdefault(fn, bare)
    return found


def _source_line(cls: type, exc_or_trace: Any) -> tuple[str, int]:
    """The file and line of `cls.forward` that a traceback or an fx stack trace points into (column: the line's)."""
    try:
        file = inspect.getsourcefile(cls) or "?"
    except TypeError:
        file = "?"
    line = 0
    if isinstance(exc_or_trace, BaseException):
        for frame in traceback.extract_tb(exc_or_trace.__traceback__):
            if frame.filename == file:
                line = frame.lineno or 0
    elif isinstance(exc_or_trace, str):
        for text in exc_or_trace.splitlines():
            text = text.strip()
            if text.startswith(f'File "{file}", line '):
                line = int(text.split(", line ")[1].split(",")[0])
    if not line:
        try:
            line = inspect.getsourcelines(getattr(cls, "forward"))[1]  # noqa: B009 (a Module's, typed as type)
        except (OSError, TypeError):
            line = 0
    return file, line


def refuse(cls: type, where: Any, construct: str, hint: str | None = None) -> NetcliError:
    file, line = _source_line(cls, where)
    return NetcliError(
        Problem(
            f"{cls.__name__}.forward: {construct}",
            location=Location(file, line, 1) if line else Location(file),
            hint=hint or f"keep {cls.__name__} as a plugin type (--leaf {cls.__name__}), or rewrite that line",
        )
    )


def _in_assert() -> bool:
    """True when the truth value being asked for is an `assert`'s condition (read from the caller's bytecode)."""
    import dis
    import sys

    frame: Any = sys._getframe(2)
    while frame is not None and ("torch/fx" in frame.f_code.co_filename or frame.f_code.co_name == "_in_assert"):
        frame = frame.f_back
    if frame is None:
        return False
    code = list(dis.get_instructions(frame.f_code))
    for i, ins in enumerate(code):
        if ins.offset == frame.f_lasti:
            following = code[i + 1 : i + 2]
            return "IF_TRUE" in ins.opname and bool(following) and following[0].opname == "LOAD_ASSERTION_ERROR"
    return False


def trace(module: Any):
    """The fx graph of `module.forward` with every submodule a leaf; a located error where fx cannot trace it."""
    import torch.fx as fx

    class Leaves(fx.Tracer):
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            return True

        def create_args_for_root(self, root_fn: Any, is_module: bool, concrete_args: Any = None) -> Any:
            """`forward(self, x, *args)`: the network's inputs are the named ones; *args and **kwargs are empty."""
            fn, args = super().create_args_for_root(root_fn, is_module, concrete_args)
            out = []
            for arg in args:
                node = getattr(arg, "node", None)
                if node is not None and node.op == "placeholder" and str(node.target).startswith("**"):
                    self.graph.erase_node(node)
                    arg = {}
                elif node is not None and node.op == "placeholder" and str(node.target).startswith("*"):
                    self.graph.erase_node(node)
                    arg = ()
                out.append(arg)
            return fn, out

        def to_bool(self, obj: Any) -> bool:
            if _in_assert():  # `assert t <= block_size`: a check, not computation; the spec leaves it out
                return True
            return super().to_bool(obj)

    tracer = Leaves()
    tracer.record_stack_traces = True
    try:
        return tracer.trace(module)
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "control flow" in text or "iteration" in text or "bool" in text:
            construct = "Python control flow on tensor values, which the forward language cannot say"
        else:
            construct = f"torch.fx cannot trace it ({type(exc).__name__}: {text})"
        raise refuse(type(module), exc, construct) from None


class ForwardWriter:
    """Turn one traced graph into forward text; `children` are the names the block's children have."""

    def __init__(self, cls: type, graph: Any, tensors: set[str]):
        self.cls = cls
        self.graph = graph
        self.tensors = tensors  # Parameter/Buffer children the forward may name
        self.functions = _functions()
        self.exprs: dict[Any, str] = {}
        self.lines: list[str] = []
        self.inputs: list[str] = []
        self.taken: set[str] = set()
        self.inlined: set[Any] = set()  # nodes written inside their user's expression

    def write(self) -> tuple[list[str], str]:
        """Return (inputs, forward text)."""
        nodes = list(self.graph.nodes)
        for node in nodes:
            if node.op == "placeholder":
                if node.args:  # a default value
                    raise refuse(self.cls, None, f"the input '{node.target}' has a default value")
                name = str(node.target).lstrip("*")
                self.inputs.append(name)
                self.exprs[node] = name
                self.taken.add(name)
            elif node.op == "output":
                self.lines.append(f"return {self._returned(node.args[0], node)}")
            else:
                text = self._expr(node)
                users = list(node.users)
                if not users:
                    if _pure(node):  # `b, t = idx.size()` with b unused: nothing to write
                        continue
                    raise refuse(self.cls, node.stack_trace, f"a value that is computed and never used ({text})")
                returned = users[0].op == "output" and len(text) <= _RETURN_WIDTH
                if len(users) == 1 and (len(text) <= _INLINE_WIDTH or returned):
                    self.exprs[node] = text
                    self.inlined.add(node)
                else:
                    name = self._fresh()
                    self.lines.append(f"{name} = {text}")
                    self.exprs[node] = name
        return self.inputs, "\n".join(self.lines) + "\n"

    def _fresh(self) -> str:
        n = len([t for t in self.taken if t.startswith("out")])
        name = "out" if n == 0 else f"out{n}"
        while name in self.taken:
            n += 1
            name = f"out{n}"
        self.taken.add(name)
        return name

    def _needs_parens(self, node: Any) -> bool:
        return node.op == "call_function" and (node.target in _INFIX or node.target is operator.neg)

    def _returned(self, value: Any, node: Any) -> str:
        if isinstance(value, tuple | list):
            return ", ".join(self._arg(v, node) for v in value)
        return self._arg(value, node)

    def _arg(self, value: Any, node: Any) -> str:
        """An argument: a value of the graph, or a constant the language can write."""
        import torch.fx as fx

        if isinstance(value, fx.Node):
            return self.exprs[value]
        if isinstance(value, bool) or value is None:
            return repr(value)
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, str):
            return repr(value)
        if isinstance(value, tuple | list):
            items = ", ".join(self._arg(v, node) for v in value)
            if isinstance(value, list):
                return f"[{items}]"
            return f"({items},)" if len(value) == 1 else f"({items})"
        if isinstance(value, slice):
            return self._slice(value, node)
        import torch

        if isinstance(value, torch.dtype):  # dtype=torch.long
            return str(value)
        if isinstance(value, torch.device):
            raise refuse(
                self.cls,
                node.stack_trace,
                f"a fixed device ({value}) is not a value the forward language can write",
                "write device=x.device",
            )
        if value is Ellipsis:
            return "..."
        raise refuse(
            self.cls,
            node.stack_trace,
            f"the argument {value!r} ({type(value).__name__}) is not a value the forward language can write",
        )

    def _slice(self, s: slice, node: Any) -> str:
        parts = ["" if p is None else self._arg(p, node) for p in (s.start, s.stop, s.step)]
        text = f"{parts[0]}:{parts[1]}"
        return text + (f":{parts[2]}" if parts[2] else "")

    def _call(self, head: str, node: Any, fn: Any = None) -> str:
        defaults = _defaults(fn)
        args = [self._arg(a, node) for a in node.args]
        args += [
            f"{k}={self._arg(v, node)}"
            for k, v in node.kwargs.items()
            if not (k in defaults and type(defaults[k]) is type(v) and defaults[k] == v) and not k.startswith("_")
        ]
        return f"{head}({', '.join(args)})"

    def _child(self, target: str) -> str:
        first, *rest = target.split(".")
        text = first
        for part in rest:
            text += f"[{part}]" if part.isdigit() else f"[{part!r}]"
        return text

    def _expr(self, node: Any) -> str:
        if node.op == "call_module":
            return self._call(self._child(node.target), node)
        if node.op == "get_attr":
            first, *rest = node.target.split(".")
            if not rest and first not in self.tensors:
                raise refuse(self.cls, node.stack_trace, f"it reads the attribute self.{first}")
            return ".".join([self._child(first), *rest]) if rest else first
        if node.op == "call_method":
            if node.target not in METHODS:
                raise refuse(
                    self.cls, node.stack_trace, f"the tensor method .{node.target}() is not in the forward language"
                )
            this, *rest = node.args
            head = f"{self._operand(this, node)}.{node.target}"
            return self._call(head, _Args(node, rest))
        if node.op == "call_function":
            return self._function(node)
        raise refuse(self.cls, node.stack_trace, f"an fx node of kind {node.op}")

    def _operand(self, value: Any, node: Any) -> str:
        import torch.fx as fx

        text = self._arg(value, node)
        if isinstance(value, fx.Node) and value in self.inlined and self._needs_parens(value):
            return f"({text})"
        return text

    def _function(self, node: Any) -> str:
        fn = node.target
        if fn in _INFIX:
            left, right = node.args
            return f"{self._operand(left, node)} {_INFIX[fn]} {self._operand(right, node)}"
        if fn is operator.neg:
            return f"-{self._operand(node.args[0], node)}"
        if fn is operator.getitem:
            this, index = node.args
            items = index if isinstance(index, tuple) else (index,)
            inside = ", ".join(self._slice(i, node) if isinstance(i, slice) else self._arg(i, node) for i in items)
            return f"{self._operand(this, node)}[{inside}]"
        if fn is getattr:
            this, attr = node.args
            if attr not in ATTRIBUTES:
                raise refuse(self.cls, node.stack_trace, f"it reads the tensor attribute .{attr}")
            return f"{self._operand(this, node)}.{attr}"
        name = self.functions.get(fn)
        method = getattr(fn, "__name__", None)
        if name is None and method in METHODS and node.args:  # F.log_softmax(x, 1) is x.log_softmax(1)
            this, *rest = node.args
            return self._call(f"{self._operand(this, node)}.{method}", _Args(node, rest), fn)
        if name is None:
            shown = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
            module = getattr(fn, "__module__", None) or ""
            raise refuse(
                self.cls,
                node.stack_trace,
                f"it calls {module + '.' if module else ''}{shown}, which is not in the forward language's "
                "list of functions",
            )
        return self._call(name, node, fn)


def _pure(node: Any) -> bool:
    """A node whose value nobody needs can be left out: reading a size, an item, an attribute."""
    if node.op == "call_function":
        return node.target in (operator.getitem, getattr, operator.neg) or node.target in _INFIX
    return node.op == "call_method" and node.target in ("size", "dim")


def _defaults(fn: Any) -> dict[str, Any]:
    """A function's keyword defaults (fx records `relu(x, inplace=False)` where the code wrote `relu(x)`)."""
    if fn is None:
        return {}
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not p.empty}


class _Args:
    """A node seen with other positional arguments (a method call without its receiver)."""

    def __init__(self, node: Any, args: list):
        self.args = tuple(args)
        self.kwargs = node.kwargs
        self.stack_trace = node.stack_trace


def forward_text(module: Any, tensors: set[str]) -> tuple[list[str], str]:
    """Return (input names, forward text) of `module`, its children called as leaves."""
    graph = trace(module)
    inputs, text = ForwardWriter(type(module), graph, tensors).write()
    for name in inputs:
        if keyword.iskeyword(name):
            raise refuse(type(module), None, f"the input '{name}' is a Python keyword")
    return inputs, text
