"""The Python that `netcli code` writes: a few expression and statement forms, laid out as ruff format would.

Expressions are small trees (`Call`, `Attr`, `Items`, `Code`), so a long line can
be split the way ruff (and black) split it: first the contents of the last
bracket on one line of their own, else one item per line with a trailing comma;
list and tuple displays always one item per line. Statements are plain data
rendered with four-space indents. Nothing here imports torch.
"""

from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any

LINE = 88
INDENT = "    "


@dataclass(frozen=True)
class Code:
    """Text that is never split: a name, a literal, a short comprehension."""

    text: str


@dataclass(frozen=True)
class Attr:
    """`obj.name`."""

    obj: Any  # an expression: a Code name or another node
    name: str


@dataclass(frozen=True)
class Call:
    """`func(args, name=value)`; func is dotted text or an expression (a method call)."""

    func: Any
    args: tuple = ()
    kwargs: tuple = ()  # ((name, expr), ...)


@dataclass(frozen=True)
class Items:
    """A list `[a, b]` or tuple `(a, b)` display."""

    items: tuple
    brackets: str = "[]"


@dataclass(frozen=True)
class Inferred:
    """A size shape inference filled in: written as its number, or as a factory's parameter."""

    value: Any
    arg: str  # the constructor argument it fills (in_features, num_features, ...)


@dataclass(frozen=True)
class Gen:
    """A generator expression `(element for i in range(4))`, never split; `star` unpacks it: `*(...)`."""

    element: Any
    loop: str
    star: bool = False
    bare: bool = False  # the sole argument of a call: no parentheses of its own


@dataclass(eq=False)
class Deferred:
    """A call whose arguments are known only once every use has been seen (a block factory)."""

    func: str
    args: list = field(default_factory=list)
    kwargs: list = field(default_factory=list)  # [(name, expr), ...]
    body: Any = None  # what the factory builds at this call, to tell calls apart before the arguments are known


Expr = Code | Attr | Call | Items | Inferred | Gen | Deferred


def flat(e: Any) -> str:
    """Render an expression on one line."""
    if isinstance(e, Code):
        return e.text
    if isinstance(e, Inferred):
        return flat(literal(e.value))
    if isinstance(e, Attr):
        return f"{flat(e.obj)}.{e.name}"
    if isinstance(e, (Call, Deferred)):
        return f"{_func(e)}({', '.join(_arg_texts(e))})"
    if isinstance(e, Gen):
        text = f"{flat(e.element)} {e.loop}"
        return text if e.bare else f"{'*' if e.star else ''}({text})"
    if isinstance(e, Items):
        inner = ", ".join(flat(i) for i in e.items)
        single = "," if e.brackets == "()" and len(e.items) == 1 else ""
        return f"{e.brackets[0]}{inner}{single}{e.brackets[1]}"
    raise TypeError(f"not an expression: {e!r}")


def _func(e: Any) -> str:
    return e.func if isinstance(e.func, str) else flat(e.func)


def _parts(e: Any) -> list[tuple[str, Any]]:
    """The items inside a call's or display's brackets, each as (prefix, expression)."""
    if isinstance(e, Items):
        return [("", i) for i in e.items]
    if isinstance(e, Deferred):
        return [("", a) for a in e.args] + [(f"{k}=", v) for k, v in e.kwargs]
    return [("", a) for a in e.args] + [(f"{k}=", v) for k, v in e.kwargs]


def _arg_texts(e: Any) -> list[str]:
    return [p + flat(v) for p, v in _parts(e)]


def lay_out(prefix: str, e: Any, suffix: str, indent: str) -> list[str]:
    """Return the lines of `prefix + e + suffix` at `indent`, split as ruff format splits them."""
    one = indent + prefix + flat(e) + suffix
    if len(one) > LINE and isinstance(e, Gen):  # the element on lines of its own, then the loop
        if e.bare:
            return [*lay_out(prefix, e.element, "", indent), indent + e.loop + suffix]
        inner = indent + INDENT
        opener = indent + prefix + ("*" if e.star else "") + "("
        return [opener, *lay_out("", e.element, "", inner), inner + e.loop, indent + ")" + suffix]
    if len(one) <= LINE or not isinstance(e, (Call, Items, Deferred)) or not _parts(e):
        return [one]
    if isinstance(e, Items):
        opener, closer = e.brackets[0], e.brackets[1]
    else:
        opener, closer = _func(e) + "(", ")"
    head, tail, inner = indent + prefix + opener, indent + closer + suffix, indent + INDENT
    parts = _parts(e)
    if not isinstance(e, Items):
        body = ", ".join(p + flat(v) for p, v in parts)
        if len(inner) + len(body) <= LINE:
            return [head, inner + body, tail]
        if len(parts) == 1:  # one argument: split it in turn, no comma added
            return [head, *lay_out(parts[0][0], parts[0][1], "", inner), tail]
    lines = [head]
    for p, v in parts:
        lines += lay_out(p, v, ",", inner)
    return lines + [tail]


# --- literals -------------------------------------------------------------------


def string(text: str) -> str:
    """A string literal in ruff's preferred double quotes."""
    body = repr(text)
    if body.startswith("'") and '"' not in text:
        return '"' + body[1:-1].replace("\\'", "'") + '"'
    return body


def literal(value: Any) -> Expr:
    """The Python expression for a spec value (numbers, text, lists, tuples, dtypes)."""
    if isinstance(value, bool) or value is None:
        return Code(repr(value))
    if isinstance(value, int):
        return Code(repr(value))
    if isinstance(value, float):
        if math.isnan(value):
            return Code("math.nan")
        if math.isinf(value):
            return Code("math.inf" if value > 0 else "-math.inf")
        return Code(repr(value))
    if isinstance(value, str):
        return Code(string(value))
    if isinstance(value, list):
        return Items(tuple(literal(v) for v in value), "[]")
    if isinstance(value, tuple):
        return Items(tuple(literal(v) for v in value), "()")
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return Code("{" + ", ".join(f"{string(k)}: {flat(literal(v))}" for k, v in value.items()) + "}")
    kind = type(value).__module__ + "." + type(value).__qualname__
    if kind == "torch.dtype":
        return Code(str(value))  # torch.float64
    if kind == "torch.device":
        return Call("torch.device", (Code(string(str(value))),))
    raise ValueError(f"cannot write the value {value!r} ({kind}) as Python")


def identifier(name: str, taken: set[str] | None = None) -> str:
    """A Python name for a spec name: other characters become `_`; a keyword or a taken name gets a suffix.

    The name is NFKC-normalized first, as Python reads it (`ﬁ` is `fi`), so two
    names Python would take for one are told apart by `taken`.
    """
    import unicodedata

    text = "".join(c if c.isalnum() or c == "_" else "_" for c in unicodedata.normalize("NFKC", str(name))) or "block"
    if text[0].isdigit():
        text = "_" + text
    if not text.isidentifier():
        text = "block"
    base, n = text, 1
    while keyword.iskeyword(text) or (taken is not None and text in taken):
        n += 1
        text = f"{base}_{n}"
    if taken is not None:
        taken.add(text)
    return text


def is_identifier(name: str) -> bool:
    return str(name).isidentifier() and not keyword.iskeyword(str(name))


# --- statements -----------------------------------------------------------------


@dataclass
class Assign:
    target: str
    value: Any


@dataclass
class Return:
    value: Any


@dataclass
class Do:
    """An expression statement: `net.register_forward_pre_hook(...)`."""

    value: Any


@dataclass
class Block:
    """A compound statement: `with ...:`, `for ... in ...:`, `if ...:` (head_prefix + head + ':')."""

    keyword_prefix: str  # "with ", "for name in ", "if "
    head: Any
    body: list


@dataclass
class Comment:
    text: str


@dataclass
class Text:
    """Lines written as they are (a class copied out of a template), indented by the caller."""

    text: str


@dataclass
class Def:
    """A function or a class: `def name(params):` / `class Name(Base):`, a docstring, a body."""

    head: str  # "def block1()" or "class MLP(nn.Module)"; with `params`, just "def block1"
    doc: str | None
    body: list
    params: list | None = None  # the parameters' texts, laid out as a call's arguments when long


def docstring(doc: str, indent: str) -> list[str]:
    """A docstring: one line when it fits, else its lines (long ones wrapped) and closing quotes of their own.

    Every line is escaped (`doc_text`): a docstring holds spec names, file names
    and --set values, and any of them could otherwise close it and write code.
    """
    import textwrap

    lines = [doc_text(line) for line in doc.strip().splitlines()]
    if len(lines) == 1 and len(indent) + len(lines[0]) + 6 <= LINE:
        return [f'{indent}"""{lines[0]}"""']
    width = LINE - len(indent)
    wrapped: list[str] = []
    for i, line in enumerate(lines):
        room = width - 3 if i == 0 else width
        if len(line) <= room or line.startswith(" "):
            wrapped.append(line)
        else:
            wrapped += textwrap.wrap(line, room, break_long_words=False, break_on_hyphens=False)
    out = [f'{indent}"""{wrapped[0]}']
    out += [(indent + line).rstrip() for line in wrapped[1:]]
    return out + [f'{indent}"""']


_DOC_UNSAFE = re.compile(r'\\|"(?=")|"$|[^\t\S ]|[^\w\s!-/:-@\[-`{-~]')


def doc_text(line: str) -> str:
    """One line of a docstring, safe inside triple double quotes: it reads back as exactly `line`.

    Backslashes are doubled; a quote followed by another, or at the end, is
    escaped (no run of quotes can close the string); characters that are not
    printable (controls, line and paragraph separators, bidi overrides) are
    written as escapes, so nothing ends the line or hides text.
    """

    def escape(m: re.Match) -> str:
        ch = m.group()
        if ch == "\\" or ch == '"':
            return "\\" + ch
        return ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")

    return _DOC_UNSAFE.sub(escape, line)


def _printable(line: str) -> str:
    """A comment's line with what is not printable (a NUL, a bidi override) written as an escape."""
    return "".join(c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode("ascii") for c in line)


def statements(body: list, indent: str) -> list[str]:
    """Render statements; a nested function or class (and the comment above it) is set off by a blank line."""
    out: list[str] = []
    for i, stmt in enumerate(body):
        starts = isinstance(stmt, (Def, Text)) or (
            isinstance(stmt, Comment) and i + 1 < len(body) and isinstance(body[i + 1], Def)
        )
        if starts and i > 0 and not isinstance(body[i - 1], Comment):
            out.append("")
        out += statement(stmt, indent)
    return out


def statement(stmt: Any, indent: str) -> list[str]:
    if isinstance(stmt, Assign):
        return lay_out(f"{stmt.target} = ", stmt.value, "", indent)
    if isinstance(stmt, Return):
        return lay_out("return ", stmt.value, "", indent)
    if isinstance(stmt, Do):
        return lay_out("", stmt.value, "", indent)
    if isinstance(stmt, Comment):
        return [f"{indent}# {_printable(line)}".rstrip() for line in stmt.text.splitlines()]
    if isinstance(stmt, Text):
        return [(indent + line).rstrip() if line.strip() else "" for line in stmt.text.strip("\n").splitlines()]
    if isinstance(stmt, Block):
        return lay_out(stmt.keyword_prefix, stmt.head, ":", indent) + statements(stmt.body, indent + INDENT)
    if isinstance(stmt, Def):
        if stmt.params is None:
            lines = [f"{indent}{stmt.head}:"]
        else:
            lines = lay_out("", Call(stmt.head, tuple(Code(p) for p in stmt.params)), ":", indent)
        if stmt.doc:
            lines += docstring(stmt.doc, indent + INDENT)
            if stmt.head.startswith("class ") and stmt.body:
                lines.append("")
        return lines + statements(stmt.body, indent + INDENT)
    raise TypeError(f"not a statement: {stmt!r}")


def module_text(doc: str, imports: list[str], top: list) -> str:
    """A whole module: its docstring, imports, then top-level definitions two blank lines apart."""
    lines = docstring(doc, "") + [""]
    lines += imports
    for stmt in top:
        lines += ["", ""] + statement(stmt, "")
    return "\n".join(lines) + "\n"


def sort_imports(stdlib: set[str], third_party: set[str]) -> list[str]:
    """Import lines in isort's order: sections apart, `import x` before `from x import y`, by module."""

    def key(line: str) -> tuple:
        parts = line.split()
        return (parts[0] == "from", parts[1].lower(), line)

    sections = [sorted(stdlib, key=key), sorted(third_party, key=key)]
    out: list[str] = []
    for section in sections:
        if section:
            if out:
                out.append("")
            out += section
    return out
