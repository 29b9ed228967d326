"""Read a custom block's `forward:` text into a checked program, never running it.

The text is Python syntax, so `ast` reads it, but only the small fixed subset of
SPEC §1.6 is accepted: everything else is refused here, located in the YAML
file, before anything is built or run. Nothing in the text is ever evaluated;
forward_graph.py turns the checked program into code. This module imports no
torch, so `netcli validate` can check a forward without paying for torch.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable
from typing import NoReturn

from netcli.builder.forward_expr import OPERATORS, ExprReader, Refused, dunder
from netcli.builder.forward_ir import (
    Assign,
    BinaryOp,
    Const,
    Expr,
    For,
    ForwardProgram,
    If,
    Ref,
    Seq,
    Statement,
    Target,
)
from netcli.builder.forward_lang import QUALIFIERS
from netcli.core.errors import NetcliError, Problem, did_you_mean

MAX_CHARS = 100_000

_DESCRIBE = {
    ast.Import: "an import",
    ast.ImportFrom: "an import",
    ast.AsyncFor: "a loop",
    ast.While: "a loop",
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


class _Reader(ExprReader):
    """The statements and the whole text; expressions are ExprReader's."""

    def refuse_construct(self, node) -> NoReturn:
        what = _DESCRIBE.get(type(node), type(node).__name__)
        hint = _CONTROL if isinstance(node, (ast.While, ast.IfExp, ast.BoolOp, ast.AsyncFor, ast.Try)) else None
        self.refuse(node, f"{what} is not allowed in a forward", hint)

    # -- the whole text --

    def read(self) -> ForwardProgram:
        start = self.loc(lineno=1, char=0)
        self.check_names(start)
        tree = self.parse(start)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.assigned_at.setdefault(node.id, node.lineno)
        self.problems: list[Problem] = []
        returns = [i for i, stmt in enumerate(tree.body) if isinstance(stmt, ast.Return)]
        if returns and returns[0] < len(tree.body) - 1:  # the first return ends the text read here
            after = tree.body[returns[0] + 1]
            self.problems.append(
                Problem("nothing may follow the return", self.where, self.loc(after), "the return is the last line")
            )
            del tree.body[returns[0] + 1 :]
        lines: list[ast.stmt] = list(tree.body)
        last: ast.stmt | None = lines.pop() if lines else None
        body = self.statements(lines)
        result: Expr | None = None
        try:
            if last is None:
                pass
            elif not isinstance(last, ast.Return):
                body += self.statements([last])
            elif last.value is None:
                self.refuse(last, "the return needs a value", "return out")
            else:
                result = self.expr(last.value, 0)
        except Refused as exc:
            self.problems.append(exc.problem)
            result = Const(None, self.loc(last))
        problems = self.problems
        if result is None and not problems:
            last_line = max((n for n, s in enumerate(self.lines, 1) if s.strip()), default=1)
            problems.append(
                Problem(
                    "the forward has no return",
                    self.where,
                    self.loc(lineno=last_line, char=0),
                    "end it with `return VALUE`",
                )
            )
        if problems:
            raise NetcliError(problems)
        assert result is not None  # no return is a problem above
        return ForwardProgram(
            self.text, self.inputs, tuple(body), result, self.children, frozenset(self.used), start, self.where
        )

    def check_names(self, start):
        seen: set[str] = set()
        for name in self.inputs:
            problem = None
            if not isinstance(name, str) or not name.isidentifier() or name in _KEYWORDS or dunder(name):
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

    def statements(self, nodes) -> list[Statement]:
        """Read each statement; a refused one is recorded and the next one read (one mistake, one error)."""
        body = []
        for stmt in nodes:
            try:
                if isinstance(stmt, ast.Return):
                    self.refuse(stmt, "return only at the end of the forward", "not inside a loop or a conditional")
                body.append(self.statement(stmt))
            except Refused as exc:
                self.problems.append(exc.problem)
                self.bind_all(stmt)
        return body

    def statement(self, stmt) -> Statement:
        if isinstance(stmt, ast.For):
            return self.loop(stmt)
        if isinstance(stmt, ast.If):
            return self.conditional(stmt)
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                self.refuse(stmt, "assign one target at a time", "a = ... then b = a")
            value = self.expr(stmt.value, 0)
            target = self.target(stmt.targets[0], value)
            return Assign(target, value, self.loc(stmt))
        if isinstance(stmt, ast.AugAssign):
            op = OPERATORS.get(type(stmt.op))
            if op is None:
                self.refuse(stmt, "only += -= *= /= //= %= @= are allowed")
            if not isinstance(stmt.target, ast.Name):
                self.refuse(stmt.target, "only a plain name can be updated in place", f"out {op}= x")
            left = self.name(stmt.target, 0)
            value = BinaryOp(op, left, self.operand(stmt.value, 0), self.loc(stmt), inplace=True)
            return Assign(self.target(stmt.target, value), value, self.loc(stmt))
        if isinstance(stmt, ast.Expr):
            self.refuse(stmt, "a bare expression does nothing here", "assign it (y = ...) or return it")
        self.refuse_construct(stmt)

    def target(self, node, value) -> Target:
        if isinstance(node, ast.Name):
            name = node.id
            if dunder(name):
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
            if self.child_path(node) is not None:
                self.refuse(
                    node,
                    "a child's parameters and buffers can be read in a forward, never assigned",
                    "tie parameters with `tie:`",
                )
            self.refuse(node, "only names can be assigned, not parts of a tensor or attributes")
        self.refuse_construct(node)

    def loop(self, stmt) -> For:
        """`for block in blocks:` over a child that holds modules; unrolled when the forward is compiled."""
        if stmt.orelse:
            self.refuse(stmt.orelse[0], "a loop has no `else:` in a forward")
        if not isinstance(stmt.target, ast.Name):
            self.refuse(stmt.target, "a loop names one module at a time", "for block in blocks:")
        var = stmt.target.id
        if dunder(var):
            self.refuse(stmt.target, f"dunder names are not allowed: {var!r}")
        if var in self.children or var in self.loop_vars:
            what = "a child" if var in self.children else "an enclosing loop's variable"
            self.refuse(stmt.target, f"loop variable {var!r} has the name of {what}", "give it another name")
        if var in self.kinds or var in QUALIFIERS or var == "self":
            self.refuse(stmt.target, f"loop variable {var!r} has the name of a value", "give it another name")
        iterable, values = stmt.iter, False
        if (
            isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Attribute)
            and iterable.func.attr == "values"
            and not iterable.args
            and not iterable.keywords
        ):
            iterable, values = iterable.func.value, True
        path = self.child_path(iterable)
        if path is None:
            self.refuse(
                stmt.iter,
                "a loop runs over a child ModuleList or Sequential: for block in blocks:",
                "a ModuleDict's modules: for block in blocks.values():",
            )
        self.loop_vars.add(var)
        try:
            body = self.statements(stmt.body)
        finally:
            self.loop_vars.discard(var)
            self.loop_ended.add(var)
        return For(var, path, values, tuple(body), self.loc(stmt))

    def conditional(self, stmt) -> If:
        """`if downsample is not None:`, the one conditional: a child that may be null, decided when compiled."""
        test = stmt.test
        if not (
            isinstance(test, ast.Compare)
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.IsNot)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value is None
            and isinstance(test.left, ast.Name)
        ):
            self.refuse(
                stmt,
                "`if CHILD is not None:` is the one conditional a forward may have",
                "a child that may be null, decided when the forward is compiled; other control flow stays in "
                "registered types",
            )
        name = test.left.id
        if (name not in self.children and name not in self.optional) or name in self.kinds:
            self.refuse(
                stmt,
                f"{name!r} is not a child: `if CHILD is not None:` is the one conditional a forward may have",
                did_you_mean(name, self.children) or "a child (or a module-valued param) that may be null",
            )
        self.used.add(name)
        body = self.statements(stmt.body)
        orelse = self.statements(stmt.orelse)
        return If(name, tuple(body), tuple(orelse), self.loc(stmt))


_KEYWORDS = frozenset(__import__("keyword").kwlist)
# names the generated forward reads as globals: an input (a parameter) of that name would hide them
_GENERATED_CODE_NAMES = frozenset({"self", "inf", "nan", "device", "NoneType", "slice", "getattr", "Ellipsis"})


def parse_forward(
    text: str,
    *,
    inputs: Iterable[str] = ("x",),
    children: Iterable[str] = (),
    tensors: Iterable[str] = (),
    optional: Iterable[str] = (),
    source: str = "",
    line: int | None = None,
    column: int | None = None,
    where: str = "",
) -> ForwardProgram:
    """Check a `forward:` text against SPEC §1.6 and return it as a program; never runs it.

    `source`, `line` and `column` locate the text's first character in the YAML file
    (1-based, as `Location` has them): every problem is then reported at the exact
    FILE:LINE:COL inside the text. `children` are the block's child names in order;
    `tensors` those of them that are Parameter or Buffer children (read by name, `pos_embed`);
    `optional` the children this use leaves out (a null module-valued param), which
    only `if NAME is not None:` may name.
    Raises NetcliError carrying every problem found.
    """
    reader = _Reader(text, inputs, children, tensors, source, line, column, where)
    reader.optional = frozenset(optional) - frozenset(reader.children)
    return reader.read()
