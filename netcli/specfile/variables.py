"""`${name}` in a spec: replaced by `vars.name` (a whole value keeps its type; inside text it is text).

References multiply text the way YAML aliases do (a variable used twice in a
variable used twice...), so the expansion is bounded as it is made.
"""

from __future__ import annotations

from typing import Any

from netcli.core.errors import Problem, did_you_mean
from netcli.specfile.arithmetic import (
    REFERENCE,
    ExpressionError,
    Unknown,
    compute,
    is_plain_name,
    names,
    parse,
    partial,
)
from netcli.specfile.params import param_names
from netcli.specfile.schema import is_block
from netcli.specfile.yamldoc import Document, Path, render_path

MAX_EXPANDED = 4 << 20  # after ${} substitution: 4 Mi characters and values (a spec is at most 1 MiB)


class _TooBig(Exception):
    pass


class _Shadowed(Exception):
    """A name that is a param of the block around it: filled in per use (spec/params.py), not from vars."""


def substitute_vars(doc: Document) -> list[Problem]:
    """Replace `${name}` by `vars.name` everywhere but in `vars` itself; return the problems."""
    data = doc.data
    if not isinstance(data, dict):
        return []
    variables = data.get("vars") or {}
    if not isinstance(variables, dict):
        return []  # the schema reports it
    expander = _Expander(doc, variables)
    for key in list(data):
        if key == "vars":
            continue
        try:
            data[key] = expander.resolve(data[key], (key,))
        except _TooBig as exc:
            at = exc.args[0]
            expander.problems.append(
                Problem(
                    f"${{...}} variables expand the spec to more than {MAX_EXPANDED:,} characters and values",
                    render_path(at),
                    doc.locate(at),
                    "variables that use each other several times multiply; write it out, or use blocks and use",
                )
            )
            break
    return expander.problems


class _Expander:
    """One pass of substitution over a document: the variables, the budget spent, the problems found."""

    def __init__(self, doc: Document, variables: dict):
        self.doc, self.variables = doc, variables
        self.problems: list[Problem] = []
        self.spent = 0  # characters and values made so far

    def spend(self, amount: int, path: Path) -> None:
        self.spent += amount
        if self.spent > MAX_EXPANDED:
            raise _TooBig(path)

    def lookup(self, name: str, path: Path, seen: tuple[str, ...] = (), shadow: frozenset = frozenset()) -> Any:
        if name.partition(".")[0] in shadow:
            raise _Shadowed(name)
        value: Any = self.variables
        for part in name.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                raise KeyError(name)
        if name in seen:
            raise RecursionError(" -> ".join(seen + (name,)))
        return self.resolve(value, path, seen + (name,))

    def resolve(self, value: Any, path: Path, seen: tuple[str, ...] = (), shadow: frozenset = frozenset()) -> Any:
        if isinstance(value, dict):
            self.spend(len(value), path)
            inner = shadow
            if path[:1] in (("blocks",), ("model",)) and is_block(value) and "params" in value:
                inner = shadow | frozenset(param_names(value))  # a block's params shadow the vars
            return {k: self.resolve(v, path + (k,), seen, shadow if k == "params" else inner) for k, v in value.items()}
        if isinstance(value, list):
            self.spend(len(value), path)
            return [self.resolve(v, path + (i,), seen, shadow) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            self.spend(len(value) if isinstance(value, str) else 1, path)
            return value
        try:
            return self.text(value, path, seen, shadow)
        except KeyError as exc:
            name = exc.args[0]
            hint = did_you_mean(name, [*self.variables, *self.params_at(path)]) or (
                f"define it under vars:, or pass --set vars.{name}=VALUE"
            )
            self.problems.append(
                Problem(f"undefined variable '${{{name}}}'", render_path(path), self.doc.locate(path), hint)
            )
        except RecursionError as exc:
            self.problems.append(
                Problem(f"variables refer to each other in a cycle: {exc}", render_path(path), self.doc.locate(path))
            )
        except ExpressionError as exc:
            self.problems.append(
                Problem(
                    f"{value!r}: {exc}",
                    render_path(path),
                    self.doc.locate(path),
                    "${...} takes numbers, names, + - * / // % **, parentheses, min() and max()",
                )
            )
        return value

    def text(self, value: str, path: Path, seen: tuple[str, ...], shadow: frozenset) -> Any:
        """A string with references: a whole `${x}` is x's value, with its type; inside text, its text."""
        whole = REFERENCE.fullmatch(value)
        if whole:
            return self.reference(whole.group(1), path, seen, shadow)

        def one(m):
            found = self.reference(m.group(1), path, seen, shadow)
            return found if isinstance(found, str) and found.startswith("${") else self.text_of(found, path)

        text = REFERENCE.sub(one, value)
        self.spend(len(text), path)
        return text

    def reference(self, inner: str, path: Path, seen: tuple[str, ...], shadow: frozenset) -> Any:
        """The value of one `${...}`: a variable with its type, or an expression's number.

        A param of the block around it is bound per use: its reference stays
        as written, with the variables it could already give written in.
        """
        if is_plain_name(inner):
            try:
                return self.lookup(inner.strip(), path, seen, shadow)
            except _Shadowed:
                return "${" + inner + "}"
        tree = parse(inner)
        for name in names(tree):  # a name neither a var nor a param of the block around it is a typo
            if name.partition(".")[0] not in shadow:
                self.lookup(name, path, seen, shadow)

        def look(name: str) -> Any:
            try:
                return self.lookup(name, path, seen, shadow)
            except _Shadowed:
                raise Unknown(name) from None

        try:
            return compute(tree, look)
        except Unknown:
            return "${" + partial(tree, look) + "}"

    def params_at(self, path: Path) -> list[str]:
        """The params of the blocks around `path` (a misspelt name may be one of them)."""
        found: list[str] = []
        value: Any = self.doc.data
        for part in path:
            if isinstance(value, dict) and is_block(value):
                found += param_names(value)
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                break
        return found

    def text_of(self, value: Any, path: Path) -> str:
        if isinstance(value, (dict, list)):  # str() of a big structure is big text too
            self.spend(len(value), path)
        return str(value)
