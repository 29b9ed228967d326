"""Write a Picture as a Mermaid flowchart, for wherever Markdown renders Mermaid (code hosts, docs sites).

The nodes and edges are the DOT text's, one for one. Mermaid ids must be
plain words, so nodes are `n1`, `n2`, ... and clusters `c1`, ...; each label is
quoted, with the characters Mermaid or HTML would read (`"`, `<`, `>`, `&`,
`#`) written as entities, and a line break as `<br/>`.
"""

from __future__ import annotations

import json

from netcli.app.picture import (
    FOLDED,
    FROZEN,
    FROZEN_FILL,
    INPUT,
    OP,
    OUTPUT,
    PARTLY_FILL,
    SHARED_COLOR,
    Cluster,
    Node,
    Picture,
)

_ENTITIES = {"&": "#amp;", "#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;"}
_SHAPES = {OP: ('(["', '"])'), INPUT: ('(["', '"])'), OUTPUT: ('(["', '"])'), FOLDED: ('[["', '"]]')}


def text(label: str) -> str:
    """A quoted Mermaid label: entities for the characters it would read, <br/> between lines."""
    escaped = "".join(_ENTITIES.get(c, c) for c in label.replace("\r", ""))
    return escaped.replace("\n", "<br/>")


class _Ids:
    def __init__(self) -> None:
        self.nodes: dict[str, str] = {}
        self.clusters = 0

    def node(self, node_id: str) -> str:
        return self.nodes.setdefault(node_id, f"n{len(self.nodes) + 1}")

    def cluster(self) -> str:
        self.clusters += 1
        return f"c{self.clusters}"


def _node_line(ids: _Ids, node: Node, indent: str) -> str:
    start, end = _SHAPES.get(node.kind, ('["', '"]'))
    return f"{indent}{ids.node(node.id)}{start}{text(chr(10).join(node.lines))}{end}"


def _cluster(ids: _Ids, cluster: Cluster, indent: str, out: list[str], styles: list[str], picture: Picture) -> None:
    cid = ids.cluster()
    out.append(f'{indent}subgraph {cid}["{text(cluster.label)}"]')
    for node in cluster.nodes:
        out.append(_node_line(ids, node, indent + "  "))
    for sub in cluster.clusters:
        _cluster(ids, sub, indent + "  ", out, styles, picture)
    out.append(f"{indent}end")
    color = picture.device_color(cluster.device)
    if cluster.frozen or color:
        fill = FROZEN_FILL if cluster.frozen == FROZEN else PARTLY_FILL if cluster.frozen else "transparent"
        styles.append(f"  style {cid} fill:{fill}" + (f",stroke:{color},stroke-width:2px" if color else ""))


def to_mermaid(picture: Picture) -> str:
    """The Mermaid text of `picture`: `flowchart TB`, subgraphs for clusters, classes for the marks."""
    ids = _Ids()
    out = ["---", f"title: {json.dumps(picture.title)}", "---", "flowchart TB"]  # JSON's string is YAML's
    styles: list[str] = []
    for node in picture.root.nodes:
        out.append(_node_line(ids, node, "  "))
    for cluster in picture.root.clusters:
        _cluster(ids, cluster, "  ", out, styles, picture)
    legend = picture.legend()
    if legend:
        cid = ids.cluster()
        out.append(f'  subgraph {cid}["legend"]')
        out.extend(_node_line(ids, node, "    ") for node in legend)
        out.append("  end")
    for edge in picture.edges:
        arrow = "-.-" if edge.tie else "-->"
        label = f'|"{text(edge.label)}"|' if edge.label else ""
        out.append(f"  {ids.node(edge.src)} {arrow}{label} {ids.node(edge.dst)}")
    out.append(f"  classDef frozen fill:{FROZEN_FILL}")
    out.append(f"  classDef partly fill:{PARTLY_FILL}")
    out.append(f"  classDef shared stroke:{SHARED_COLOR},stroke-width:3px")
    out.append("  classDef op fill:#f2f2f2,font-size:11px")
    marked: dict[str, list[str]] = {}
    for node in picture.all_nodes() + legend:
        mid = ids.node(node.id)
        if node.frozen:
            marked.setdefault("frozen" if node.frozen == FROZEN else "partly", []).append(mid)
        if node.shared:
            marked.setdefault("shared", []).append(mid)
        if node.kind == OP:
            marked.setdefault("op", []).append(mid)
        color = picture.device_color(node.device)
        if color is not None:
            styles.append(f"  style {mid} stroke:{color},stroke-width:2px")
    out.extend(f"  class {','.join(members)} {name}" for name, members in marked.items())
    out.extend(styles)
    return "\n".join(out) + "\n"
