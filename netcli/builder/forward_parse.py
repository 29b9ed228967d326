"""Read a custom block's `forward:` text into a checked program, never running it.

The text is Python syntax, so `ast` reads it, but only the small fixed subset of
SPEC §1.6 is accepted: everything else is refused here, located in the YAML
file, before anything is built or run. Nothing in the text is ever evaluated;
forward_graph.py turns the checked program into code. This module imports no
torch, so `netcli validate` can check a forward without paying for torch.
"""

from __future__ import annotations

import ast
import builtins
import re
import warnings
from collections.abc import Iterable

from netcli.builder.forward_ir import (
    ATTRIBUTES,
    CHOICES,
    DTYPES,
    FUNCTIONS,
    METHODS,
    QUALIFIERS,
    Assign,
    AttrGet,
    BinaryOp,
    ChildCall,
    Const,
    DtypeConst,
    Expr,
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
    Target,
    TensorGet,
    show_path,
)
from netcli.core.errors import Location, NetcliError, Problem, did_you_mean

MAX_CHARS = 100_000
MAX_DEPTH = 64
OPERATORS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.MatMult: "@",
    ast.FloorDiv: "//",
    ast.Mod: "%",
}
COMPARISONS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}

_DESCRIBE = {
    ast.Import: "an import",
    ast.ImportFrom: "an import",
    ast.For: "a loop",
    ast.AsyncFor: "a loop",
    ast.While: "a loop",
    ast.If: "a conditional",
    ast.IfExp: "a conditional",
    ast.With: "a with block",
    ast.AsyncWith: "a with block",
    ast.FunctionDef: "a function definition",
    ast.AsyncFunctionDef: "a function definition",
    ast.ClassDef: "a class definition",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.NamedExpr: "walrus (:=)",
    ast.Try: "try/except",
    ast.Raise: "raise",
    ast.Assert: "assert",
    ast.Delete: "del",
    ast.Global: "global",
    ast.Nonlocal: "nonlocal",
    ast.Pass: "pass",
    ast.Break: "break",
    ast.Continue: "continue",
    ast.Compare: "a comparison",
    ast.BoolOp: "and/or",
    ast.JoinedStr: "an f-string",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.Starred: "star-arguments",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.AnnAssign: "an annotation",
}
_CONTROL = "Python control flow stays in registered types"


class _Refused(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


def _dunder(name: str) -> bool:
    return name.startswith("__") or name.endswith("__")


class _Reader:
    def __init__(self, text, inputs, children, source, line, column, where, tensors=()):
        self.text, self.source, self.line, self.column, self.where = text, source, line, column, where
        self.lines = re.split(r"\r\n|\r|\n", text) if isinstance(text, str) else []
        self.tensors = tuple(tensors)  # Parameter/Buffer children: values, not modules to call
        self.inputs, self.children = tuple(inputs), tuple(c for c in children if c not in self.tensors)
        self.loops: list[str] = []  # the names of the loops around the statement being read
        self.kinds: dict[str, str] = {}  # bound name -> "value" (known at run time) or "const"
        self.assigned_at: dict[str, int] = {}  # every name the text assigns -> first line
        self.used: set[str] = set()

    # -- locations and refusals --

    def loc(self, node=None, lineno=None, char=None) -> Location:
        if self.line is None:
            return Location(self.source)
        if node is not None:
            lineno = node.lineno
            raw = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
            char = len(raw.encode("utf-8")[: node.col_offset].decode("utf-8", "replace"))
        return Location(self.source, self.line + (lineno or 1) - 1, (self.column or 1) + (char or 0))

    def refuse(self, node, message, hint=None):
        raise _Refused(Problem(message, self.where, self.loc(node), hint))

    def refuse_construct(self, node):
        what = _DESCRIBE.get(type(node), type(node).__name__)
        hint = (
            _CONTROL
            if isinstance(node, (ast.For, ast.While, ast.If, ast.IfExp, ast.Compare, ast.BoolOp, ast.AsyncFor, ast.Try))
            else None
        )
        self.refuse(node, f"{what} is not allowed in a forward", hint)

    # -- the whole text --

    def read(self) -> ForwardProgram:
        start = self.loc(lineno=1, char=0)
        self.check_names(start)
        tree = self.parse(start)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.assigned_at.setdefault(node.id, node.lineno)
        problems: list[Problem] = []
        body: list[Assign] = []
        result = None
        for stmt in tree.body:
            try:
                if result is not None:
                    self.refuse(stmt, "nothing may follow the return", "the return is the last line")
                if isinstance(stmt, ast.Return):
                    if stmt.value is None:
                        self.refuse(stmt, "the return needs a value", "return out")
                    result = self.expr(stmt.value, 0)
                else:
                    body.append(self.statement(stmt))
            except _Refused as exc:
                problems.append(exc.problem)
                if isinstance(stmt, ast.Return):
                    result = Const(None, self.loc(stmt))
                self.bind_all(stmt)
        if result is None and not problems:
            last = max((n for n, s in enumerate(self.lines, 1) if s.strip()), default=1)
            problems.append(
                Problem(
                    "the forward has no return", self.where, self.loc(lineno=last, char=0), "end it with `return VALUE`"
                )
            )
        if problems:
            raise NetcliError(problems)
        return ForwardProgram(
            self.text, self.inputs, tuple(body), result, self.children, frozenset(self.used), start, self.where
        )

    def check_names(self, start):
        seen: set[str] = set()
        for name in self.inputs:
            problem = None
            if not isinstance(name, str) or not name.isidentifier() or name in _KEYWORDS or _dunder(name):
                problem = f"input {name!r} is not a usable Python name"
            elif name in seen:
                problem = f"input {name!r} is named twice"
            elif name in self.children:
                problem = f"input {name!r} has the name of a child"
            elif name in QUALIFIERS or name in _GENERATED_CODE_NAMES:
                problem = f"input {name!r} would hide `{name}`"
            if problem:
                raise NetcliError(Problem(problem, self.where, start, "rename it in `inputs:`"))
            seen.add(name)
            self.kinds[name] = "value"

    def parse(self, start) -> ast.Module:
        if not isinstance(self.text, str) or not self.text.strip():
            raise NetcliError(Problem("the forward is empty", self.where, start, "write e.g. `return conv1(x)`"))
        if len(self.text) > MAX_CHARS:
            raise NetcliError(Problem(f"the forward is longer than {MAX_CHARS} characters", self.where, start))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ast.parse(self.text, mode="exec")
        except SyntaxError as exc:
            at = self.loc(lineno=exc.lineno, char=(exc.offset or 1) - 1) if exc.lineno else start
            raise NetcliError(Problem(f"not valid Python: {exc.msg}", self.where, at)) from None
        except (RecursionError, MemoryError, ValueError, OverflowError):
            raise NetcliError(Problem("the forward is nested too deeply to read", self.where, start)) from None

    def bind_all(self, stmt):
        """After a refused statement, treat the names it assigns as bound, so one mistake is one error."""
        for node in ast.walk(stmt):
            if (
                isinstance(node, ast.Name)
                and isinstance(node.ctx, ast.Store)
                and node.id not in self.children
                and node.id not in QUALIFIERS
                and node.id != "self"
            ):
                self.kinds.setdefault(node.id, "value")

    # -- statements --

    def statement(self, stmt) -> Assign:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                self.refuse(stmt, "assign one target at a time", "a = ... then b = a")
            value = self.expr(stmt.value, 0)
            target = self.target(stmt.targets[0], value)
            return Assign(target, value, self.loc(stmt))
        if isinstance(stmt, ast.AugAssign):
            op = OPERATORS.get(type(stmt.op))
            if op is None:
                self.refuse(stmt, "only += -= *= /= @= are allowed")
            if not isinstance(stmt.target, ast.Name):
                self.refuse(stmt.target, "only a plain name can be updated in place", f"out {op}= x")
            left = self.name(stmt.target, 0)
            value = BinaryOp(op, left, self.operand(stmt.value, 0), self.loc(stmt), inplace=True)
            return Assign(self.target(stmt.target, value), value, self.loc(stmt))
        if isinstance(stmt, ast.Expr):
            self.refuse(stmt, "a bare expression does nothing here", "assign it (y = ...) or return it")
        if isinstance(stmt, ast.For):
            return self.loop(stmt)
        if isinstance(stmt, ast.If):
            return self.if_present(stmt)
        if isinstance(stmt, ast.Return):
            self.refuse(stmt, "return only at the end of the forward, outside loops and ifs")
        self.refuse_construct(stmt)

    def loop(self, stmt) -> Loop:
        """`for block in blocks:` over a child container; the body is unrolled when compiled (SPEC 1.8)."""
        if stmt.orelse:
            self.refuse(stmt, "a loop has no else: here")
        var = stmt.target
        if not isinstance(var, ast.Name):
            self.refuse(var, "loop over one name: for block in blocks:")
        if var.id in self.kinds or var.id in self.children or var.id in QUALIFIERS or var.id in self.loops:
            self.refuse(var, f"{var.id!r} is already a name here", "give the loop's item another name")
        path = self.child_path(stmt.iter)
        if path is None:
            self.refuse(
                stmt.iter,
                "a loop runs over a child ModuleList or Sequential: for block in blocks:",
                "zip, enumerate and range are not needed: the loop is unrolled over the container's items",
            )
        self.used.add(path[0])
        self.loops.append(var.id)
        try:
            body = tuple(self.statement(s) for s in stmt.body)
        finally:
            self.loops.pop()
        return Loop(var.id, path, body, self.loc(stmt))

    def if_present(self, stmt) -> IfPresent:
        """`if downsample is not None:`, the one conditional: decided per use when the forward is compiled."""
        test = stmt.test
        if not (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.IsNot)
            and isinstance(test.left, ast.Name)
            and test.left.id in self.children
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value is None
        ):
            self.refuse(
                stmt,
                "the one conditional a forward may have is `if CHILD is not None:`",
                "a child a use may leave out (a param that defaults to null); " + _CONTROL,
            )
        self.used.add(test.left.id)
        body = tuple(self.statement(s) for s in stmt.body)
        orelse = tuple(self.statement(s) for s in stmt.orelse)
        return IfPresent(test.left.id, body, orelse, self.loc(stmt))

    def target(self, node, value) -> Target:
        if isinstance(node, ast.Name):
            name = node.id
            if _dunder(name):
                self.refuse(node, f"dunder names are not allowed: {name!r}")
            if name in self.children:
                self.refuse(node, f"{name!r} is the name of a child", "give the value another name")
            if name in QUALIFIERS or name == "self":
                self.refuse(node, f"{name!r} cannot be assigned", "give the value another name")
            const = isinstance(value, Const) or (isinstance(value, Ref) and self.kinds.get(value.name) == "const")
            self.kinds[name] = "const" if const else "value"
            return name
        if isinstance(node, (ast.Tuple, ast.List)):
            items = value.items if isinstance(value, Seq) else None
            if items is not None and len(items) != len(node.elts):
                self.refuse(node, f"{len(node.elts)} names for {len(items)} values")
            return tuple(self.target(elt, items[i] if items is not None else None) for i, elt in enumerate(node.elts))
        if isinstance(node, ast.Starred):
            self.refuse(node, "star-unpacking is not allowed", "name each part: a, b = ...")
        if isinstance(node, (ast.Subscript, ast.Attribute)):
            self.refuse(node, "only names can be assigned, not parts of a tensor or attributes")
        self.refuse_construct(node)

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
            op = COMPARISONS.get(type(node.ops[0]))
            if len(node.ops) != 1 or op is None:
                self.refuse(
                    node, "one comparison at a time: < <= > >= == !=", "a < b gives a bool tensor; combine with &"
                )
            return BinaryOp(op, self.operand(node.left, depth), self.operand(node.comparators[0], depth), loc)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub):
                self.refuse(node, "only unary minus is allowed")
            inner = self.operand(node.operand, depth)
            if isinstance(inner, Const):
                return Const(-inner.value, loc)
            return Negate(inner, loc)
        if isinstance(node, ast.Subscript):
            path = self.child_path(node)
            if path is not None:
                self.refuse(node, f"{show_path(path)} is a module: call it", f"{show_path(path)}(...)")
            obj = self.value_of(node.value, depth, "indexed")
            return IndexGet(obj, self.index(node.slice, depth), loc)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Slice):
            self.refuse(node, "a slice belongs inside [ ]")
        self.refuse_construct(node)

    def constant(self, node) -> Const:
        value = node.value
        if isinstance(value, str):
            self.refuse(
                node,
                "a string can only name a child's child (net['hidden'](x)) or a listed choice "
                "(interpolate(x, scale_factor=2, mode='nearest'))",
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
        if name in self.tensors:
            self.used.add(name)
            return TensorGet((name,), self.loc(node))
        if name == "inf":
            return Const(float("inf"), self.loc(node))
        if name in self.loops:
            self.refuse(node, f"{name!r} is a module of the loop: call it", f"{name}(...)")
        if _dunder(name):
            self.refuse(node, f"dunder names are not allowed: {name!r}")
        if name in self.children:
            self.refuse(node, f"child {name!r} is a module: call it", f"{name}(...)")
        if name in FUNCTIONS:
            self.refuse(node, f"{name!r} is a function: call it", f"{name}(...)")
        if name == "self":
            self.refuse(node, "a forward has no `self`", "call children by name: conv1(x)")
        if name in QUALIFIERS:
            self.refuse(node, f"`{name}` only qualifies a listed function", f"{name}.cat(...)")
        if name in self.assigned_at:
            self.refuse(
                node, f"{name!r} is used before it is assigned (line {self.loc(lineno=self.assigned_at[name]).line})"
            )
        if name in _BUILTINS:
            self.refuse(
                node,
                f"Python's {name!r} is not available in a forward",
                "a forward calls children and the listed tensor functions only",
            )
        choices = [*self.kinds, *self.children, *FUNCTIONS]
        self.refuse(
            node,
            f"unknown name {name!r}",
            did_you_mean(name, choices) or "use an input, an earlier value, a child or a listed function",
        )

    def operand(self, node, depth) -> Expr:
        expr = self.expr(node, depth)
        if isinstance(expr, Seq) or (isinstance(expr, Const) and (expr.value is None or isinstance(expr.value, bool))):
            self.refuse(node, "arithmetic needs tensors or numbers")
        return expr

    def value_of(self, node, depth, what) -> Expr:
        expr = self.expr(node, depth)
        if isinstance(expr, (Const, Seq)) or (isinstance(expr, Ref) and self.kinds.get(expr.name) == "const"):
            self.refuse(node, f"only tensors can be {what}")
        return expr

    def index(self, node, depth) -> Expr:
        if isinstance(node, ast.Tuple):
            return Seq(tuple(self.index_item(e, depth) for e in node.elts), False, self.loc(node))
        return self.index_item(node, depth)

    def index_item(self, node, depth) -> Expr:
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.operand(p, depth + 1) for p in (node.lower, node.upper, node.step)]
            return SliceExpr(*parts, self.loc(node))
        if isinstance(node, ast.Constant) and (node.value is Ellipsis or node.value is None):
            return Const(node.value, self.loc(node))
        return self.operand(node, depth + 1)

    def attribute(self, node, depth) -> Expr:
        attr = node.attr
        if _dunder(attr):
            self.refuse(node, f"dunder names are not allowed: {attr!r}")
        base = node.value
        if (
            isinstance(base, ast.Name)
            and base.id not in self.kinds
            and base.id not in self.children
            and base.id not in QUALIFIERS
        ):
            self.name(base, depth)  # refuses `self`, builtins and unknown names, saying why
        if isinstance(base, ast.Name) and base.id == "torch" and base.id not in self.kinds and attr in DTYPES:
            return DtypeConst(attr, self.loc(node))
        if isinstance(base, ast.Name) and base.id in QUALIFIERS and base.id not in self.kinds:
            if attr in FUNCTIONS:
                self.refuse(node, f"{base.id}.{attr} is a function: call it")
            self.refuse(node, f"{base.id}.{attr} is not an allowed function", did_you_mean(attr, FUNCTIONS))
        if attr in ATTRIBUTES:
            return AttrGet(self.value_of(base, depth, "asked for ." + attr), attr, self.loc(node))
        path = self.child_path(base)
        if (
            path is not None and attr not in METHODS
        ):  # a child's parameter or buffer, `enc.weight` (checked when compiled)
            self.used.add(path[0])
            return TensorGet((*path, attr), self.loc(node))
        if attr in METHODS:
            self.refuse(node, f".{attr} is a method: call it", f".{attr}(...)")
        self.refuse(
            node,
            f"attribute .{attr} is not allowed",
            did_you_mean(attr, sorted(ATTRIBUTES | METHODS)) or "allowed: .shape, .ndim and the listed methods",
        )

    def child_path(self, node):
        """("net", 0, "hidden") for `net[0]['hidden']` when `net` is a child; None when not a child."""
        keys = []
        while isinstance(node, ast.Subscript) or (
            isinstance(node, ast.Attribute)
            and node.attr not in METHODS
            and node.attr not in ATTRIBUTES
            and self.child_path(node.value) is not None
        ):  # a loop, not recursion: chains can be long
            if isinstance(node, ast.Attribute):  # transformer.wte: a named child's child, as transformer['wte']
                keys.append(ast.Constant(node.attr))
            else:
                keys.append(node.slice)
            node = node.value
        known = node.id in self.children or node.id in self.loops if isinstance(node, ast.Name) else False
        if not (known and node.id not in self.kinds):
            return None
        path = [node.id]
        for key in reversed(keys):
            if (
                isinstance(key, ast.UnaryOp)
                and isinstance(key.op, ast.USub)
                and isinstance(key.operand, ast.Constant)
                and type(key.operand.value) is int
            ):
                path.append(-key.operand.value)
            elif isinstance(key, ast.Constant) and type(key.value) in (int, str):
                path.append(key.value)
            else:
                self.refuse(
                    key, "a child's child is picked by a number or a quoted name", "net[0](x) or net['hidden'](x)"
                )
        return tuple(path)

    def call(self, node, depth) -> Expr:
        func, loc = node.func, self.loc(node)
        path = self.child_path(func)
        if path is not None:
            args, kwargs = self.arguments(node, depth)
            self.used.add(path[0])
            return ChildCall(path, args, kwargs, loc)
        if isinstance(func, ast.Name) and func.id in FUNCTIONS and func.id not in self.kinds:
            args, kwargs = self.arguments(node, depth, func.id)
            return FunctionCall(func.id, FUNCTIONS[func.id], args, kwargs, loc)
        if isinstance(func, ast.Attribute):
            base, attr = func.value, func.attr
            if isinstance(base, ast.Name) and base.id in QUALIFIERS and base.id not in self.kinds and attr in FUNCTIONS:
                args, kwargs = self.arguments(node, depth, attr)
                return FunctionCall(attr, FUNCTIONS[attr], args, kwargs, loc)
            path = self.child_path(base)
            if path is not None and attr not in METHODS:  # transformer.wte(idx): a child's child by name
                args, kwargs = self.arguments(node, depth)
                self.used.add(path[0])
                return ChildCall((*path, attr), args, kwargs, loc)
            if path is not None and len(path) > 1:  # enc.weight.t(): a method of a child's tensor
                args, kwargs = self.arguments(node, depth)
                self.used.add(path[0])
                return MethodCall(TensorGet(path, self.loc(base)), attr, args, kwargs, loc)
            if (
                attr in METHODS
                and not _dunder(attr)
                and self.child_path(base) is None
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
            self.expr(func.value, depth)  # an unknown name is the better message
        self.refuse(func, "only children and the listed functions can be called")

    def arguments(self, node, depth, function=None):
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.refuse(arg, "star-arguments are not allowed", "pass each argument")
            args.append(self.expr(arg, depth))
        kwargs, seen = [], set()
        for kw in node.keywords:
            if kw.arg is None:
                self.refuse(kw, "**-arguments are not allowed", "pass each keyword")
            if _dunder(kw.arg):
                self.refuse(kw, f"dunder names are not allowed: {kw.arg!r}")
            if kw.arg in seen:
                self.refuse(kw, f"keyword {kw.arg!r} is given twice")
            seen.add(kw.arg)
            choices = CHOICES.get((function, kw.arg)) if function else None
            if choices and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                if kw.value.value not in choices:
                    self.refuse(
                        kw.value,
                        f"{function}'s {kw.arg} is one of {', '.join(repr(c) for c in choices)}, "
                        f"not {kw.value.value!r}",
                        did_you_mean(kw.value.value, choices),
                    )
                kwargs.append((kw.arg, Const(kw.value.value, self.loc(kw.value))))
                continue
            kwargs.append((kw.arg, self.expr(kw.value, depth)))
        return tuple(args), tuple(kwargs)


_KEYWORDS = frozenset(__import__("keyword").kwlist)
# names the generated forward reads as globals: an input (a parameter) of that name would hide them
_GENERATED_CODE_NAMES = frozenset({"self", "inf", "nan", "device", "NoneType", "slice", "getattr", "Ellipsis"})
_BUILTINS = frozenset(dir(builtins))


def parse_forward(
    text: str,
    *,
    inputs: Iterable[str] = ("x",),
    children: Iterable[str] = (),
    source: str = "",
    line: int | None = None,
    column: int | None = None,
    where: str = "",
    tensors: Iterable[str] = (),
) -> ForwardProgram:
    """Check a `forward:` text against SPEC §1.6 and return it as a program; never runs it.

    `source`, `line` and `column` locate the text's first character in the YAML file
    (1-based, as `Location` has them): every problem is then reported at the exact
    FILE:LINE:COL inside the text. `children` are the block's child names in order.
    Raises NetcliError carrying every problem found.
    """
    return _Reader(text, inputs, children, source, line, column, where, tensors).read()
