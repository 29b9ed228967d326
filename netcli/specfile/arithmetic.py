"""Arithmetic inside `${...}`: `${dim * 4}`, `${dim // heads}`, `${(image // patch) ** 2 + 1}` (SPEC §1.8).

The text is read with `ast` and only numbers, names, `+ - * / // % **`,
unary minus, parentheses and `min`/`max` calls are accepted; it is computed
here, node by node, never evaluated as Python. Names are looked up by the
caller (vars, or a block's params); a name it cannot give yet (a param bound
per use) leaves the expression for later, with the names it could give
written in as numbers. Sizes are bounded before they are computed: `9 ** 9 ** 9`
is refused, not attempted.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from typing import Any

MAX_TEXT = 500  # characters inside one ${...}
MAX_NODES = 200  # syntax nodes of one expression
MAX_MAGNITUDE = 2**63  # a result beyond an int64 is refused
MAX_EXPONENT = 64

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
REFERENCE = re.compile(r"\$\{([^{}]*)\}")  # ${name} or ${expression}

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


class ExpressionError(ValueError):
    """An expression that is not arithmetic netcli computes, or whose value cannot be computed; says why."""


class Unknown(Exception):
    """A name the lookup cannot give now (a param of the block around it)."""


def is_plain_name(text: str) -> bool:
    """True for `${name}` or `${a.b}`, the form that is a variable's value with its type."""
    return NAME.fullmatch(text.strip()) is not None


def parse(text: str) -> ast.expr:
    """Read the inside of `${...}` as an expression of the allowed forms; ExpressionError says what is not."""
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"the expression is longer than {MAX_TEXT} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"'{text.strip()}' is not an expression: {exc.msg}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"the expression has more than {MAX_NODES} parts")
    for node in nodes:
        _check(node)
    return tree.body


def _check(node: ast.AST) -> None:
    if isinstance(node, ast.Expression | ast.Load | ast.operator | ast.unaryop):
        if isinstance(node, ast.operator) and type(node) not in _BINARY:
            raise ExpressionError("only + - * / // % ** are allowed")
        if isinstance(node, ast.unaryop) and not isinstance(node, ast.USub | ast.UAdd):
            raise ExpressionError("only - and + are allowed before a value")
        return
    if isinstance(node, ast.BinOp | ast.UnaryOp | ast.Name):
        return
    if isinstance(node, ast.Attribute):
        if not isinstance(node.value, ast.Name | ast.Attribute):
            raise ExpressionError("only a variable's dotted name may have a '.'")
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"{node.value!r} is not a number")
        return
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in ("min", "max")) or node.keywords or not node.args:
            raise ExpressionError("the only functions are min(...) and max(...)")
        return
    raise ExpressionError(f"'{ast.unparse(node)}' is not arithmetic (numbers, names, + - * / // % **, min, max)")


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    assert isinstance(node, ast.Name)
    return node.id


def names(tree: ast.expr) -> list[str]:
    """The variable names an expression reads, in order (`min`/`max` are not names)."""
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Name | ast.Attribute):
            out.append(dotted(node))
            return
        if isinstance(node, ast.Call):
            for arg in node.args:
                visit(arg)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def compute(tree: ast.expr, lookup: Callable[[str], Any]) -> int | float:
    """The value of a checked expression; `lookup(name)` gives a name's value or raises KeyError / Unknown."""
    if isinstance(tree, ast.Constant):
        value = tree.value
        assert isinstance(value, int | float)  # parse() admits only numbers
        return value
    if isinstance(tree, ast.Name | ast.Attribute):
        value = lookup(dotted(tree))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExpressionError(f"'{dotted(tree)}' is {value!r}, not a number")
        return value
    if isinstance(tree, ast.UnaryOp):
        value = compute(tree.operand, lookup)
        return -value if isinstance(tree.op, ast.USub) else +value
    if isinstance(tree, ast.Call):
        assert isinstance(tree.func, ast.Name)  # parse() admits only min(...) and max(...)
        values = [compute(a, lookup) for a in tree.args]
        return min(values) if tree.func.id == "min" else max(values)
    assert isinstance(tree, ast.BinOp)
    left, right = compute(tree.left, lookup), compute(tree.right, lookup)
    if isinstance(tree.op, ast.Pow):
        if abs(right) > MAX_EXPONENT or (abs(left) > 1 and abs(right) * int(max(abs(left), 2)).bit_length() > 64):
            raise ExpressionError(f"{left} ** {right} is too large (a value must fit an int64)")
    try:
        value = _BINARY[type(tree.op)](left, right)
    except ZeroDivisionError:
        raise ExpressionError(f"'{ast.unparse(tree)}' divides by zero") from None
    except OverflowError:
        raise ExpressionError(f"'{ast.unparse(tree)}' is too large") from None
    if isinstance(value, complex):
        raise ExpressionError(f"'{ast.unparse(tree)}' is not a real number")
    if abs(value) > MAX_MAGNITUDE:
        raise ExpressionError(f"'{ast.unparse(tree)}' is {value:.3g}, too large (a value must fit an int64)")
    return value


def partial(tree: ast.expr, lookup: Callable[[str], Any]) -> str:
    """The expression's text with every name `lookup` can give written in as its number (the rest kept)."""

    class Fill(ast.NodeTransformer):
        def _fill(self, node: ast.expr) -> ast.expr:
            try:
                value = lookup(dotted(node))
            except (KeyError, Unknown):
                return node
            if isinstance(value, bool) or not isinstance(value, int | float):
                return node
            return ast.copy_location(ast.Constant(value), node)

        def visit_Name(self, node: ast.Name) -> ast.expr:
            return self._fill(node)

        def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
            return self._fill(node)

        def visit_Call(self, node: ast.Call) -> ast.expr:
            node.args = [self.visit(a) for a in node.args]
            return node

    return ast.unparse(Fill().visit(ast.parse(ast.unparse(tree), mode="eval")).body)


def referenced_names(text: str) -> set[str]:
    """Every variable name the `${...}` references in `text` read (a malformed expression reads none)."""
    found: set[str] = set()
    for m in REFERENCE.finditer(text):
        if is_plain_name(m.group(1)):
            found.add(m.group(1).strip())
            continue
        try:
            found.update(names(parse(m.group(1))))
        except ExpressionError:
            pass
    return found
