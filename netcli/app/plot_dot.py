"""Write a Picture as Graphviz DOT text: one line per node and per edge, clusters as `subgraph cluster_...`.

Every id and label is a quoted DOT string with its quotes and backslashes
escaped, so a name from a spec cannot end the string or add attributes; a
line break inside a label is DOT's own `\\n`. The text needs no Graphviz to
write; `dot` renders it to SVG, PNG or PDF.
"""

from __future__ import annotations

from netcli.app.picture import (
    FOLDED,
    FROZEN,
    FROZEN_FILL,
    INPUT,
    LEGEND,
    OP,
    OUTPUT,
    PARTLY_FILL,
    SHARED_COLOR,
    Cluster,
    Node,
    Picture,
)

_FONT = 'fontname="Helvetica"'
_SHAPES = {
    OP: 'shape=ellipse, style="filled", fillcolor="#f2f2f2", fontsize=9',
    INPUT: 'shape=oval, style="filled", fillcolor="#fff2cc"',
    OUTPUT: 'shape=oval, style="filled", fillcolor="#fff2cc"',
    FOLDED: 'shape=box3d, style="filled"',
    LEGEND: 'shape=box, style="rounded,filled", fontsize=9',
}


def quote(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, line breaks as DOT's \\n."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def _fill(frozen: str | None) -> str:
    return FROZEN_FILL if frozen == FROZEN else PARTLY_FILL if frozen else "#ffffff"


def _node_line(picture: Picture, node: Node, indent: str) -> str:
    attrs = [f"label={quote(chr(10).join(node.lines))}"]
    if node.kind in _SHAPES:
        attrs.append(_SHAPES[node.kind])
    if node.kind not in (OP, INPUT, OUTPUT):
        attrs.append(f'fillcolor="{_fill(node.frozen)}"')
    color = picture.device_color(node.device)
    if node.shared:
        attrs.append(f'peripheries=2, color="{SHARED_COLOR}"')
    if color is not None:
        attrs.append(f'color="{color}", penwidth=2')
    return f"{indent}{quote(node.id)} [{', '.join(attrs)}];"


def _cluster(picture: Picture, cluster: Cluster, indent: str, out: list[str]) -> None:
    out.append(f"{indent}subgraph {quote(cluster.id)} {{")
    inner = indent + "  "
    style = '"rounded,filled"' if cluster.frozen else '"rounded"'
    color = picture.device_color(cluster.device) or "#888888"
    out.append(f"{inner}label={quote(cluster.label)}; labeljust=l; fontsize=11; style={style}; color={quote(color)};")
    if cluster.frozen:
        out.append(f'{inner}fillcolor="{_fill(cluster.frozen)}";')
    for node in cluster.nodes:
        out.append(_node_line(picture, node, inner))
    for sub in cluster.clusters:
        _cluster(picture, sub, inner, out)
    out.append(f"{indent}}}")


def to_dot(picture: Picture) -> str:
    """The DOT text of `picture` (a digraph, top to bottom)."""
    out = [
        "digraph netcli {",
        f"  graph [label={quote(picture.title)}, labelloc=t, fontsize=14, {_FONT}, rankdir=TB, newrank=true];",
        f'  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontsize=10, {_FONT}];',
        f'  edge [fontsize=9, {_FONT}, color="#444444"];',
    ]
    for node in picture.root.nodes:
        out.append(_node_line(picture, node, "  "))
    for cluster in picture.root.clusters:
        _cluster(picture, cluster, "  ", out)
    legend = picture.legend()
    if legend:
        out.append('  subgraph "cluster_legend" {')
        out.append('    label="legend"; style="rounded"; color="#bbbbbb"; fontsize=10;')
        out.extend(_node_line(picture, node, "    ") for node in legend)
        out.append("  }")
    for edge in picture.edges:
        attrs = []
        if edge.label:
            attrs.append(f"label={quote(edge.label)}")
        if edge.tie:
            attrs.append('style=dashed, dir=none, constraint=false, color="#6a3d9a"')
        tail = f" [{', '.join(attrs)}]" if attrs else ""
        out.append(f"  {quote(edge.src)} -> {quote(edge.dst)}{tail};")
    out.append("}")
    return "\n".join(out) + "\n"
