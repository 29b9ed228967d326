"""What `netcli plot` draws, as plain data: nodes, clusters, edges and a legend.

plot.py fills a Picture from a built network; plot_dot.py and plot_mermaid.py
write the same Picture as DOT and as Mermaid, so the two texts always have the
same nodes and edges. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The kinds of node, each drawn in its own shape:
BLOCK = "block"  # a module with no children drawn (a leaf, or a block folded by --depth)
FOLDED = "folded"  # a block with children that --depth folded into one node
OP = "op"  # a function, method or operator of a custom block's forward (add, cat, flatten, ...)
INPUT = "input"  # an input of the network or of a custom block's forward
OUTPUT = "output"  # what the network or a custom block's forward returns
LEGEND = "legend"  # an entry of the legend

# Marks, each with its fill (frozen) or outline (shared, device) and a legend entry.
FROZEN, PARTLY_FROZEN, SHARED = "frozen", "partly frozen", "shared"
FROZEN_FILL, PARTLY_FILL = "#cfe2f3", "#e8f0f8"
SHARED_COLOR = "#6a3d9a"
DEVICE_COLORS = ("#d62728", "#2ca02c", "#ff7f0e", "#1f77b4", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


@dataclass
class Node:
    id: str  # unique in the picture; a block's is its qualified name (`layer1.0.conv1`)
    lines: list[str]  # the label, one entry a line: "conv1: Conv2d", "[2, 64, 112, 112]", "9.41K params"
    kind: str = BLOCK
    frozen: str | None = None  # FROZEN or PARTLY_FROZEN
    device: str | None = None  # the `device:` of the nearest placed block, as the spec writes it
    shared: bool = False  # one module used at several places: its tensors are tied


@dataclass
class Cluster:
    """A box around a custom block (its forward's dataflow), a Sequential (a chain) or a container."""

    id: str
    label: str
    nodes: list[Node] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    frozen: str | None = None
    device: str | None = None


@dataclass
class Edge:
    src: str
    dst: str
    label: str | None = None
    tie: bool = False  # no dataflow: two blocks that hold the same tensor (drawn dashed, no arrow)


@dataclass
class Picture:
    title: str
    root: Cluster  # its nodes and clusters are drawn at the top level; its label is the picture's title
    edges: list[Edge] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # in first-seen order: the n-th takes DEVICE_COLORS[n]

    def device_color(self, device: str | None) -> str | None:
        if device is None:
            return None
        return DEVICE_COLORS[self.devices.index(device) % len(DEVICE_COLORS)]

    def all_nodes(self) -> list[Node]:
        found: list[Node] = []

        def walk(cluster: Cluster) -> None:
            found.extend(cluster.nodes)
            for inner in cluster.clusters:
                walk(inner)

        walk(self.root)
        return found

    def legend(self) -> list[Node]:
        """One legend node per mark the picture uses (none when it uses none)."""
        nodes = self.all_nodes()
        entries = []
        if any(n.frozen == FROZEN for n in nodes):
            entries.append(Node("legend:frozen", ["frozen (no gradients)"], LEGEND, frozen=FROZEN))
        if any(n.frozen == PARTLY_FROZEN for n in nodes):
            entries.append(Node("legend:partly", ["partly frozen"], LEGEND, frozen=PARTLY_FROZEN))
        if any(n.shared for n in nodes):
            entries.append(Node("legend:shared", ["shared: one module, tied tensors"], LEGEND, shared=True))
        if any(e.tie for e in self.edges):
            entries.append(Node("legend:tied", ["dashed line: tied parameters"], LEGEND))
        entries += [Node(f"legend:device:{d}", [f"device: {d}"], LEGEND, device=d) for d in self.devices]
        return entries
