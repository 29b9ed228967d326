"""Parse YAML safely into plain data plus the line/column of every value.

Only YAML's standard tags are accepted (no `!!python/...`), a key written twice
is an error, and size, depth and alias expansion are bounded so that no file
can hang or exhaust the machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from netcli.core.errors import Location, NetcliError, Problem

MAX_BYTES = 1 << 20  # 1 MiB: specs are short; anything larger is a mistake or an attack
MAX_DEPTH = 64  # nesting deeper than any real network description
MAX_NODES = 200_000  # values after alias expansion: stops "billion laughs" files early

_SAFE_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "binary")
}

Path = tuple  # a path into the document: keys and list indices


def render_path(path: Iterable[Any]) -> str:
    """Render a document path as `model[1].Linear`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class Document:
    """A parsed spec: its data, and where each value came from."""

    data: Any
    source: str
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    overrides: dict[Path, str] = field(default_factory=dict)  # path -> the --set that wrote it
    text: str = ""
    # path -> the file that wrote the value / the key, where it is not `source` (a base named by extends:)
    sources: dict[Path, str] = field(default_factory=dict)
    key_sources: dict[Path, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # a base's file -> its text (text is `source`'s)

    def locate(self, path: Path, *, key: bool = False) -> Location:
        """Return the location of `path`, or of its nearest located parent."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            if path[:n] in self.overrides:
                return Location(self.overrides[path[:n]])
        for n in range(len(path), -1, -1):
            prefix = path[:n]
            if key and n == len(path) and prefix in self.key_positions:
                return Location(self.key_sources.get(prefix, self.source), *self.key_positions[prefix])
            if prefix in self.positions:
                return Location(self.sources.get(prefix, self.source), *self.positions[prefix])
        return Location(self.source)

    def text_start(self, path: Path) -> Location:
        """Where the text of the string at `path` begins: after a `|`/`>` header or an opening quote.

        A `forward:` written as a `|` block keeps its lines, so a position in
        the string plus this location is a position in the file.
        """
        at = self.locate(path)
        if at.line is None or at.column is None or path not in self.positions:
            return at
        lines = self.texts.get(at.source, self.text).splitlines()  # the file that wrote it (extends:)
        row, col = at.line - 1, at.column - 1
        head = lines[row][col:] if row < len(lines) else ""
        if head[:1] in ("|", ">"):
            for n in range(row + 1, len(lines)):
                if lines[n].strip():
                    indent = len(lines[n]) - len(lines[n].lstrip(" "))
                    return Location(at.source, n + 1, indent + 1)
            return at
        if head[:1] in ("'", '"'):
            return Location(at.source, at.line, at.column + 1)
        return at


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    """Turn a composed YAML node graph into Python values, recording positions."""

    def __init__(self, source: str):
        self.source = source
        self.count = 0
        self.constructor = yaml.SafeLoader("")
        self.positions: dict[Path, tuple[int, int]] = {}
        self.key_positions: dict[Path, tuple[int, int]] = {}

    def fail(self, node: yaml.Node, message: str, hint: str | None = None) -> NetcliError:
        return NetcliError(Problem(message, location=Location(self.source, *_mark(node)), hint=hint))

    def walk(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(
                node,
                f"the document expands to more than {MAX_NODES} values",
                "YAML aliases (*name) multiply; write the structure out, or use blocks/use",
            )
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nesting deeper than {MAX_DEPTH} levels")
        if node.tag not in _SAFE_TAGS:
            raise self.fail(
                node, f"the tag '{node.tag}' is not allowed", "a spec is plain data; only standard YAML types are read"
            )
        self.positions.setdefault(path, _mark(node))
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(
                        key_node, "merge keys (<<) are not supported", "define a block under 'blocks:' and 'use' it"
                    )
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, "a key must be a plain value, not a list or mapping")
                key = self.walk(key_node, path + ("<key>",), depth + 1)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise self.fail(key_node, f"a key must be a string or number, not {type(key).__name__}")
                if key in out:
                    first = self.key_positions.get(path + (key,))
                    where = f" (first at line {first[0]})" if first else ""
                    raise self.fail(
                        key_node,
                        f"the key '{key}' is written twice{where}",
                        "a plain YAML loader would silently keep the last one; keep one",
                    )
                self.key_positions[path + (key,)] = _mark(key_node)
                out[key] = self.walk(value_node, path + (key,), depth + 1)
            return out
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self.fail(node, f"cannot read this value: {exc}") from exc


def parse_yaml(text: str, source: str) -> Document:
    """Parse `text` safely; raise NetcliError with a location on any problem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise NetcliError(
            Problem(
                f"the file is larger than {MAX_BYTES // 1024} KiB",
                location=Location(source),
                hint="a spec should be a short file",
            )
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise NetcliError(Problem(f"invalid YAML: {what}", location=loc)) from exc
    except yaml.reader.ReaderError as exc:  # a control character: located by its offset
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        raise NetcliError(
            Problem(
                f"invalid YAML: the character U+{code:04X} is not allowed in YAML",
                location=Location(source, line, column),
                hint='remove it, or write it as an escape in a "double-quoted" string',
            )
        ) from exc
    except yaml.YAMLError as exc:
        raise NetcliError(Problem(f"invalid YAML: {exc}", location=Location(source))) from exc
    except RecursionError as exc:
        raise NetcliError(Problem(f"nesting deeper than {MAX_DEPTH} levels", location=Location(source))) from exc
    if root is None:
        return Document(None, source, text=text)
    walker = _Walker(source)
    data = walker.walk(root, ())
    return Document(data, source, walker.positions, walker.key_positions, text=text)


def parse_value(text: str, source: str) -> Any:
    """Parse one YAML scalar or flow value (the VALUE of `--set PATH=VALUE`)."""
    return parse_yaml(text, source).data if text.strip() else ""
