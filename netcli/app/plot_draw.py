"""Walk a built network into a Picture: a node per block, a cluster per custom block or Sequential.

A custom block is drawn as its compiled forward has it (builder.forward.dataflow:
the torch.fx graph): its inputs, each child call, each function or operator
(`add`, `cat`, ...) and what it returns, with an edge wherever a value flows,
so a skip connection is an edge past the children and branches fan out from
one input into one `cat`. A Sequential (or a custom block without forward) is
a chain of its children. Any other module with children (torch's own
TransformerEncoderLayer, say) is one node: its dataflow is Python netcli does
not read.

A module holding tensors that is used at several places (`ref`), or called
twice by one forward, is one node with an edge in and out per use, labelled
with the place (`as 4`) or the call (`call 2`); parameters tied between two
different modules get a dashed edge between them. Labels say type, output
shape (from the trace of the example input) and parameter count; frozen and
placed blocks carry a mark the legend explains.
"""

from __future__ import annotations

import builtins
import operator
from collections import Counter
from dataclasses import dataclass, replace

from torch import fx, nn

from netcli.app.picture import BLOCK, FOLDED, FROZEN, INPUT, OP, OUTPUT, PARTLY_FROZEN, Cluster, Edge, Node, Picture
from netcli.app.summary import BlockRow, tied_groups
from netcli.app.summary_table import human_count
from netcli.builder.forward import dataflow
from netcli.core.qualnames import join

_OPERATORS = {
    operator.add: "add",
    operator.iadd: "add",
    operator.sub: "sub",
    operator.isub: "sub",
    operator.mul: "mul",
    operator.imul: "mul",
    operator.truediv: "div",
    operator.itruediv: "div",
    operator.matmul: "matmul",
    operator.imatmul: "matmul",
    operator.neg: "neg",
}


@dataclass
class Port:
    """How a drawn module is wired: the nodes each of its inputs flows into, and the node it returns from."""

    entries: list[list[str]]  # by input position
    names: list[str]  # the forward's input names, for a keyword argument
    output: str
    in_label: str | None = None  # on the edges into it (a shared module: which use)
    out_label: str | None = None

    def entry(self, key: int | str) -> list[str]:
        if isinstance(key, str):
            key = self.names.index(key) if key in self.names else 0
        return self.entries[min(key, len(self.entries) - 1)]


def shape_text(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _holds_tensors(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None or next(module.buffers(), None) is not None


def _sources(value) -> list[fx.Node]:
    """The fx nodes in an argument: a node, or nodes inside tuples, lists, dicts and slices."""
    found: list[fx.Node] = []

    def collect(n: fx.Node) -> fx.Node:
        found.append(n)
        return n

    fx.node.map_arg(value, collect)
    return found


def _op_label(node: fx.Node) -> str:
    if node.op == "call_method":
        return str(node.target)
    target = node.target
    if target in _OPERATORS:
        return _OPERATORS[target]
    if target is operator.getitem:
        index = node.args[1]
        return f"[{index}]" if isinstance(index, int) and not isinstance(index, bool) else "getitem"
    if target is builtins.getattr:
        return f".{node.args[1]}"
    return getattr(target, "__name__", str(target))


class Drawer:
    """Draws one network, once: the nodes, clusters and edges of its Picture."""

    def __init__(self, net: nn.Module, rows: list[BlockRow], depth: int | None, placed_as: dict[str, str]):
        self.net, self.depth, self.placed_as = net, depth, placed_as
        self.rows = {r.name: r for r in rows}
        self.places: dict[int, list[str]] = {}  # id(module) -> every name it has (several: shared)
        for name, module in net.named_modules(remove_duplicate=False):
            self.places.setdefault(id(module), []).append(name)
        self.ports: dict[int, Port] = {}  # id(module) -> its port, for a module holding tensors already drawn
        self.nodes: dict[str, Node] = {}
        self.block_nodes: dict[str, str] = {}  # module name -> the node it is drawn as
        self.containers: dict[str, Cluster] = {}
        self.edges: list[Edge] = []
        self.devices: list[str] = []

    # --- ids, nodes, edges --------------------------------------------------------------------------

    def uid(self, base: str) -> str:
        found, n = base, 1
        while found in self.nodes or found in self.containers:
            n += 1
            found = f"{base}#{n}"
        return found

    def add(self, cluster: Cluster, node: Node) -> Node:
        node.id = self.uid(node.id)
        self.nodes[node.id] = node
        cluster.nodes.append(node)
        return node

    def connect(self, src: str, dsts: list[str], *labels: str | None) -> None:
        label = " / ".join(dict.fromkeys(x for x in labels if x)) or None
        self.edges.extend(Edge(src, dst, label) for dst in dsts)

    # --- marks ----------------------------------------------------------------------------------------

    def frozen(self, name: str) -> str | None:
        row = self.rows.get(name)
        if row is None or not row.params or row.trainable == row.params:
            return None
        return FROZEN if row.trainable == 0 else PARTLY_FROZEN

    def device(self, name: str) -> str | None:
        """The `device:` of `name` or of its nearest placed ancestor, as the spec writes it."""
        parts = name.split(".") if name else []
        for n in range(len(parts), -1, -1):
            found = self.placed_as.get(".".join(parts[:n]))
            if found is not None:
                if found not in self.devices:
                    self.devices.append(found)
                return found
        return None

    def describe(self, module: nn.Module, name: str) -> list[str]:
        """`conv1: Conv2d`, its output shape, its parameters; a shared module names every place."""
        places = list(dict.fromkeys(self.places.get(id(module), [name])))
        shown = " = ".join(places) if len(places) > 1 else (name.rsplit(".", 1)[-1] or "(root)")
        lines = [f"{shown}: {type(module).__name__}"]
        row = self.rows.get(name)
        if row is not None and row.shape is not None:
            lines.append(shape_text(row.shape))
        if row is not None and row.params:
            lines.append(f"{human_count(row.params)} params")
        return lines

    # --- the walk -------------------------------------------------------------------------------------

    def folded(self, name: str) -> bool:
        return self.depth is not None and (name.count(".") + 1 if name else 0) >= self.depth

    def call(self, module: nn.Module, name: str, cluster: Cluster, calls: int = 1, k: int = 1) -> Port:
        """Draw the use of `module` at `name` (its k-th call of `calls` from one forward); return its port."""
        multi = len(set(self.places.get(id(module), [name]))) > 1
        holds = _holds_tensors(module)
        port = self.ports.get(id(module)) if holds else None
        if port is None:
            port = self.expand(module, name, cluster)
            if holds:
                self.ports[id(module)] = port
        label = f"as {name}" if multi else (f"call {k}" if calls > 1 else None)
        if label is None or not holds:
            return port
        if port.output in self.nodes and self.nodes[port.output].kind in (BLOCK, FOLDED):
            self.nodes[port.output].shared = True
        return replace(port, in_label=label if port.in_label is None else port.in_label, out_label=label)

    def expand(self, module: nn.Module, name: str, cluster: Cluster) -> Port:
        """A node for a leaf or a folded block; else a cluster with its forward or its chain."""
        graph = dataflow(module)
        children = bool(module._modules)
        # a forward without children still has its ops to show (`return relu(x) + x`)
        leaf = graph is None and (not children or not isinstance(module, nn.Sequential))
        if leaf or self.folded(name):
            node = self.add(
                cluster,
                Node(
                    name or "(root)",
                    self.describe(module, name),
                    FOLDED if children else BLOCK,
                    frozen=self.frozen(name),
                    device=self.device(name),
                ),
            )
            self.block_nodes[name] = node.id
            return Port([[node.id]], [], node.id)
        lines = self.describe(module, name)
        box = Cluster(
            self.uid(f"cluster_{name}"),
            "\n".join([lines[0], " · ".join(lines[1:])] if len(lines) > 1 else lines),
            frozen=self.frozen(name),
            device=self.device(name),
        )
        self.containers[box.id] = box
        cluster.clusters.append(box)
        if graph is not None:
            return self.forward(module, name, graph, box)
        return self.chain(module, name, box)

    def chain(self, module: nn.Module, name: str, box: Cluster) -> Port:
        first = last = None
        for child_name, child in module._modules.items():  # named_children() skips a second use
            if child is None:
                continue
            port = self.call(child, join(name, child_name), box)
            if last is None:
                first = port
            else:
                self.connect(last.output, port.entry(0), last.out_label, port.in_label)
            last = port
        if first is None or last is None:  # an empty Sequential: the identity
            node = self.add(box, Node(f"{name}:identity", ["identity"], OP))
            return Port([[node.id]], [], node.id)
        return Port(first.entries, first.names, last.output, first.in_label, last.out_label)

    def container(self, box: Cluster, name: str, target: str) -> Cluster:
        """The cluster a call of `target` (`blocks.0`) goes in: one per ModuleList or ModuleDict on the way."""
        parts = target.split(".")
        for n in range(1, len(parts)):
            qual = join(name, ".".join(parts[:n]))
            key = f"cluster_{qual}"
            inner = self.containers.get(key)
            if inner is None:
                module = self.net.get_submodule(qual)
                inner = self.containers[key] = Cluster(
                    key, self.describe(module, qual)[0], frozen=self.frozen(qual), device=self.device(qual)
                )
                box.clusters.append(inner)
            box = inner
        return box

    def forward(self, module: nn.Module, name: str, graph: fx.Graph, box: Cluster) -> Port:
        """The compiled forward's dataflow: inputs, child calls, functions and operators, what it returns."""
        prefix = f"{name}:" if name else ""
        env: dict[fx.Node, tuple[str, str | None] | None] = {}
        entries: list[list[str]] = []
        names: list[str] = []
        calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
        made: Counter = Counter()
        output = None
        for n in graph.nodes:
            if n.op == "placeholder":
                node = self.add(box, Node(prefix + n.name, [str(n.target)], INPUT))
                env[n] = (node.id, None)
                entries.append([node.id])
                names.append(str(n.target))
            elif n.op == "call_module":
                target = str(n.target)
                made[target] += 1
                port = self.call_child(name, target, box, calls[target], made[target])
                for i, arg in enumerate(n.args):
                    self.feed(env, arg, port.entry(i), port.in_label)
                for key, arg in n.kwargs.items():
                    self.feed(env, arg, port.entry(key), port.in_label)
                env[n] = (port.output, port.out_label)
            elif n.op in ("call_function", "call_method"):
                node = self.add(box, Node(prefix + n.name, [_op_label(n)], OP))
                self.feed(env, (n.args, n.kwargs), [node.id])
                env[n] = (node.id, None)
            elif n.op == "output":
                output = self.add(box, Node(prefix + "return", ["return"], OUTPUT))
                self.feed(env, n.args, [output.id])
            else:  # get_attr (`self.training` for dropout): no tensor flows from it
                env[n] = None
        assert output is not None  # every fx graph ends in its output node
        return Port(entries, names, output.id)

    def call_child(self, name: str, target: str, box: Cluster, calls: int, k: int) -> Port:
        """Draw the child call `target` of block `name`; a child deeper than --depth folds into its ancestor."""
        qual = join(name, target)
        if self.depth is not None and qual.count(".") + 1 > self.depth:
            qual = ".".join(qual.split(".")[: self.depth])
            target = qual[len(name) + 1 :] if name else qual
        return self.call(self.net.get_submodule(qual), qual, self.container(box, name, target), calls, k)

    def feed(self, env: dict, arg, dsts: list[str], label: str | None = None) -> None:
        for source in _sources(arg):
            value = env.get(source)
            if value is not None:
                self.connect(value[0], dsts, value[1], label)

    def ties(self) -> None:
        """A dashed edge between two drawn nodes that hold the same tensor (and are not one shared node)."""
        drawn = self.block_nodes
        for group in tied_groups(self.net):
            owners = []
            for param in group:
                parts = param.split(".")[:-1]
                node = next(
                    (drawn[".".join(parts[:n])] for n in range(len(parts), -1, -1) if ".".join(parts[:n]) in drawn),
                    None,
                )
                if node is not None and node not in owners:
                    owners.append(node)
            local = group[0].rsplit(".", 1)[-1]
            self.edges.extend(Edge(owners[0], other, f"tied: {local}", tie=True) for other in owners[1:])


def draw(
    net: nn.Module,
    rows: list[BlockRow],
    *,
    title: str,
    inputs: list[str],
    depth: int | None,
    placed_as: dict[str, str] | None = None,
    top: str = "",
) -> Picture:
    """The Picture of `net`, or of its block `top`: `rows` from the summary, `inputs` the input shapes as text."""
    drawer = Drawer(net, rows, depth, placed_as or {})
    root = Cluster("cluster_root", title)
    module = net.get_submodule(top)
    graph = None if drawer.folded(top) else dataflow(module)
    row = drawer.rows.get(top)
    result = [shape_text(row.shape)] if row is not None and row.shape is not None else []
    if graph is not None:  # the block's own forward: its inputs and output are the picture's
        port = drawer.forward(module, top, graph, root)
        for node_ids, text in zip(port.entries, inputs, strict=False):
            drawer.nodes[node_ids[0]].lines.append(text)
        drawer.nodes[port.output].lines = ["output", *result]
    else:
        starts = [drawer.add(root, Node("input", ["input", text], INPUT)) for text in inputs]
        starts = starts or [drawer.add(root, Node("input", ["input"], INPUT))]
        # the drawn Sequential is the picture, not a box in it
        chained = isinstance(module, nn.Sequential) and module._modules and not drawer.folded(top)
        port = drawer.chain(module, top, root) if chained else drawer.expand(module, top, root)
        for i, start in enumerate(starts):
            drawer.connect(start.id, port.entry(i), port.in_label)
        end = drawer.add(root, Node("output", ["output", *result], OUTPUT))
        drawer.connect(port.output, [end.id], port.out_label)
    drawer.ties()
    return Picture(title, root, drawer.edges, drawer.devices)
