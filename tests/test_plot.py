"""`netcli plot`: the drawing has the nodes and edges the network has, compared with the hand-written twins.

The DOT text is read back with a small parser (the lines netcli writes: one
node or edge a line, clusters as nested `subgraph` blocks); what is expected
comes from the twins in tests/handwritten*.py: their module names, which
BasicBlock has a downsample, which Linear is one object used twice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import handwritten
import handwritten_nets
import pytest
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs"
_STRING = r'"((?:[^"\\]|\\.)*)"'
NODE = re.compile(rf"^\s*{_STRING} \[(.*)\];$")
EDGE = re.compile(rf"^\s*{_STRING} -> {_STRING}(?: \[(.*)\])?;$")
CLUSTER = re.compile(rf"^\s*subgraph {_STRING} {{$")
LABEL = re.compile(rf"label={_STRING}")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


@dataclass
class Dot:
    nodes: dict[str, str] = field(default_factory=dict)  # id -> label
    attrs: dict[str, str] = field(default_factory=dict)  # id -> its attribute text
    cluster_of: dict[str, str] = field(default_factory=dict)  # node id -> innermost cluster id
    parents: dict[str, str | None] = field(default_factory=dict)  # cluster id -> enclosing cluster id
    edges: list[tuple[str, str, str | None]] = field(default_factory=list)

    def into(self, node: str) -> list[str]:
        return [s for s, d, _ in self.edges if d == node]

    def out_of(self, node: str) -> list[str]:
        return [d for s, d, _ in self.edges if s == node]

    def network_nodes(self) -> list[str]:
        return [n for n in self.nodes if not n.startswith("legend:")]


def parse_dot(text: str) -> Dot:
    dot, stack = Dot(), []
    for line in text.splitlines():
        if m := CLUSTER.match(line):
            dot.parents[unquote(m.group(1))] = stack[-1] if stack else None
            stack.append(unquote(m.group(1)))
        elif line.strip() == "}" and stack:
            stack.pop()
        elif m := EDGE.match(line):
            label = LABEL.search(m.group(3) or "")
            dot.edges.append((unquote(m.group(1)), unquote(m.group(2)), unquote(label.group(1)) if label else None))
        elif m := NODE.match(line):
            node = unquote(m.group(1))
            assert node not in dot.nodes, f"node {node} declared twice"
            dot.nodes[node] = unquote(LABEL.search(m.group(2)).group(1))
            dot.attrs[node] = m.group(2)
            dot.cluster_of[node] = stack[-1] if stack else None
    assert not stack
    return dot


def plot(run_cli, *args) -> str:
    r = run_cli("plot", *map(str, args))
    assert r.code == 0, r.err
    return r.out


def test_resnet18_has_four_stages_of_two_blocks_each_with_its_add_and_skip_edge(run_cli):
    dot = parse_dot(plot(run_cli, CONFIG / "resnet18.yaml"))
    twin = handwritten_nets.resnet18()
    leaves = [name for name, m in twin.named_modules() if not list(m.children())]
    assert set(leaves) <= set(dot.nodes)  # every layer of torchvision's resnet18 is drawn, by its name
    stages = [c for c, parent in dot.parents.items() if parent is None and c.startswith("cluster_layer")]
    assert stages == ["cluster_layer1", "cluster_layer2", "cluster_layer3", "cluster_layer4"]
    blocks = [(n, m) for n, m in twin.named_modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8
    adds = [n for n, label in dot.nodes.items() if label == "add"]
    assert len(adds) == 8
    for name, block in blocks:
        stage = "cluster_" + name.split(".")[0]
        assert dot.parents[f"cluster_{name}"] == stage  # two blocks in each stage's box
        (add,) = [a for a in adds if dot.cluster_of[a] == f"cluster_{name}"]
        skip = f"{name}:x" if block.downsample is None else f"{name}.downsample.1"
        assert sorted(dot.into(add)) == sorted([f"{name}.bn2", skip])  # the main path and the skip edge
        if block.downsample is None:  # the block's input goes both into conv1 and past it, into the add
            assert sorted(dot.out_of(f"{name}:x")) == sorted([f"{name}.conv1", add])
        else:
            assert sorted(dot.out_of(f"{name}:x")) == sorted([f"{name}.conv1", f"{name}.downsample.0"])
    # the stages are chained: each stage's first block takes the previous stage's last block's result
    assert dot.into("layer2.0:x") == ["layer1.1:return"]
    assert dot.nodes["fc"].splitlines() == ["fc: Linear", "[2, 1000]", "513K params"]


def test_inception_has_four_branches_into_one_cat(run_cli):
    dot = parse_dot(plot(run_cli, CONFIG / "inception.yaml"))
    twin = handwritten_nets.googlenet_b3()
    for i, block in enumerate(twin):
        if not isinstance(block, handwritten_nets.Inception):
            assert dot.nodes[str(i)].startswith(f"{i}: {type(block).__name__}")
            continue
        (cat,) = [n for n, label in dot.nodes.items() if label == "cat" and dot.cluster_of[n] == f"cluster_{i}"]
        assert len(dot.into(cat)) == 4
        firsts = sorted(f"{i}.{name}" for name in ("p1_1", "p2_1", "p3_1", "p4_1"))
        assert sorted(dot.out_of(f"{i}:x")) == firsts  # the four branches fan out from the block's input

        def reaches(node, goal, seen=()):
            return node == goal or any(reaches(n, goal, (*seen, node)) for n in dot.out_of(node) if n not in seen)

        assert all(reaches(first, cat) for first in firsts)
        convs = [f"{i}.{n}" for n, m in block.named_children() if isinstance(m, nn.Conv2d)]
        assert set(convs) <= set(dot.nodes)
    assert dot.into("1:x") == ["0:return"]


def test_a_shared_module_is_one_node_used_from_two_places(run_cli):
    dot = parse_dot(plot(run_cli, CONFIG / "shared.yaml"))
    twin = handwritten.shared()
    linears = {id(m) for m in twin.modules() if isinstance(m, nn.Linear)}
    drawn = [n for n in dot.network_nodes() if ": Linear" in dot.nodes[n]]
    assert len(drawn) == len(linears) == 3
    assert twin[2] is twin[4] and dot.nodes["2"].startswith("2 = 4: Linear")
    assert "4" not in dot.nodes
    assert sorted((s, label) for s, d, label in dot.edges if d == "2") == [("1", "as 2"), ("3", "as 4")]
    assert sorted((d, label) for s, d, label in dot.edges if s == "2") == [("3", "as 2"), ("5", "as 4")]
    assert "peripheries=2" in dot.attrs["2"] and "legend:shared" in dot.nodes


def test_tied_parameters_of_two_modules_are_a_dashed_edge(run_cli, write_spec):
    # nanoGPT's weight tying, as SPEC-LANGUAGE.md writes it: self.wte.weight = self.lm_head.weight
    spec = write_spec(
        "input: {shape: [2, 6], dtype: int64, high: 50}\n"
        "model:\n  class: TinyLM\n  children:\n    wte: {Embedding: [50, 16]}\n"
        "    lm_head: {Linear: {in_features: 16, out_features: 50, bias: false}}\n"
        '  tie: ["wte.weight = lm_head.weight"]\n  forward: |\n    return lm_head(wte(x))\n'
    )
    dot = parse_dot(plot(run_cli, spec))
    assert ("wte", "lm_head", "tied: weight") in dot.edges and ("wte", "lm_head", None) in dot.edges
    assert dot.nodes["legend:tied"] == "dashed line: tied parameters"
    mermaid = plot(run_cli, spec, "--format", "mermaid")
    assert len(re.findall(r" -\.-\|", mermaid)) == 1


def test_frozen_and_placed_blocks_are_marked_with_a_legend(run_cli):
    frozen = parse_dot(plot(run_cli, CONFIG / "frozen.yaml"))
    twin = handwritten.frozen()
    for i, layer in enumerate(twin):
        marked = 'fillcolor="#cfe2f3"' in frozen.attrs[str(i)]
        assert marked == any(not p.requires_grad for p in layer.parameters())
    assert frozen.nodes["legend:frozen"] == "frozen (no gradients)"
    placed = parse_dot(plot(run_cli, CONFIG / "devices.yaml"))
    assert [n for n in placed.nodes if n.startswith("legend:")] == ["legend:device:auto:0", "legend:device:auto:1"]
    color = re.compile(r'color="(#[0-9a-f]{6})", penwidth=2')
    first, second = (color.search(placed.attrs[n]).group(1) for n in ("0.0", "1"))
    assert first != second and color.search(placed.attrs["legend:device:auto:0"]).group(1) == first
    assert color.search(placed.attrs["0.1"]).group(1) == first  # inside the placed Sequential


def test_depth_folds_deeper_blocks_into_one_node(run_cli):
    dot = parse_dot(plot(run_cli, CONFIG / "resnet18.yaml", "--depth", "2"))
    twin = handwritten_nets.resnet18()
    depth2 = [n for n, _ in twin.named_modules() if n.count(".") == 1 and n.startswith("layer")]
    assert all("box3d" in dot.attrs[n] for n in depth2) and len(depth2) == 8
    assert not any(n.startswith("layer1.0.") for n in dot.nodes) and "add" not in dot.nodes.values()
    whole = parse_dot(plot(run_cli, CONFIG / "resnet18.yaml", "--depth", "0"))
    assert whole.network_nodes() == ["input", "(root)", "output"]


def test_block_draws_one_block(run_cli):
    dot = parse_dot(plot(run_cli, CONFIG / "resnet18.yaml", "--block", "layer1"))
    assert dot.nodes["input"] == "input\n[2, 64, 56, 56]"
    assert sorted(c for c, p in dot.parents.items() if p is None) == ["cluster_layer1.0", "cluster_layer1.1"]
    assert not any(n.startswith(("layer2", "conv1", "fc")) for n in dot.nodes)


def test_mermaid_has_the_same_nodes_and_edges(run_cli):
    for name in ("resnet18", "inception", "shared", "frozen", "devices", "densenet_block", "lstm_lm"):
        dot = parse_dot(plot(run_cli, CONFIG / f"{name}.yaml"))
        mermaid = plot(run_cli, CONFIG / f"{name}.yaml", "--format", "mermaid")
        assert mermaid.splitlines()[3] == "flowchart TB"
        nodes = re.findall(r"^\s*(n\d+)[\[(]", mermaid, re.M)
        edges = re.findall(r"^\s*(n\d+) (?:-->|-\.-)(?:\|[^|]*\|)? (n\d+)$", mermaid, re.M)
        assert len(nodes) == len(set(nodes)) == len(dot.nodes), name
        assert len(edges) == len(dot.edges), name
        ids = dict(zip(nodes, dot.nodes, strict=True))  # both declare the nodes in the same order
        assert sorted((ids[s], ids[d]) for s, d in edges) == sorted((s, d) for s, d, _ in dot.edges), name


@needs_dot
def test_svg_is_well_formed_with_a_title_per_node(run_cli, tmp_path):
    out = tmp_path / "net.svg"
    r = run_cli("plot", CONFIG / "resnet18.yaml", "-o", out)
    assert r.code == 0, r.err
    svg = ET.parse(out).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    titles = [
        g.find("svg:title", ns).text for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"
    ]
    dot = parse_dot(plot(run_cli, CONFIG / "resnet18.yaml"))
    assert sorted(titles) == sorted(dot.nodes)
    for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
        r = run_cli("plot", CONFIG / "inception.yaml", "-o", tmp_path / f"net{suffix}")
        assert r.code == 0, r.err
        assert (tmp_path / f"net{suffix}").read_bytes().startswith(magic)


def test_a_checkpoint_plots_as_its_spec(run_cli, tmp_path):
    for name in ("inception", "shared", "frozen"):
        ckpt = tmp_path / f"{name}.safetensors"
        r = run_cli("save", CONFIG / f"{name}.yaml", "-o", ckpt)
        assert r.code == 0, r.err
        for fmt in ("dot", "mermaid"):
            spec = plot(run_cli, CONFIG / f"{name}.yaml", "--format", fmt)
            assert plot(run_cli, ckpt, "--format", fmt) == spec


def test_bad_input_is_exit_2(run_cli, tmp_path, write_spec):
    spec = CONFIG / "mlp.yaml"
    cases = [
        (("plot", tmp_path / "missing.yaml"), "missing.yaml"),
        (("plot", spec, "--format", "jpeg"), "unknown format 'jpeg'"),
        (("plot", spec, "-o", tmp_path / "net.jpg"), "cannot tell the format"),
        (("plot", spec, "--format", "png"), "-o net.png"),
        (("plot", CONFIG / "resnet18.yaml", "--block", "layer9"), "has no block 'layer9'"),
        (("plot", write_spec("input: [2, 5]\nmodel: [{Linear: [4, 8]}]\n")), "shapes stop fitting"),
        (("plot", spec, "-o", spec), "mlp.yaml"),
    ]
    for args, words in cases:
        r = run_cli(*args)
        assert r.code == 2, (args, r.err)
        assert words in r.err and "Traceback" not in r.err, (args, r.err)
    assert spec.read_text().startswith(("#", "input", "model", "name"))  # -o onto the spec kept it


def test_without_dot_pictures_are_exit_2_naming_graphviz_and_text_still_works(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}  # no `dot` on PATH
    cmd = [sys.executable, "-m", "netcli", "plot", str(CONFIG / "shared.yaml")]
    r = subprocess.run([*cmd, "-o", str(tmp_path / "x.svg")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "install graphviz" in r.stderr.lower() and "Traceback" not in r.stderr
    assert not (tmp_path / "x.svg").exists()
    for fmt in ("dot", "mermaid"):
        r = subprocess.run([*cmd, "--format", fmt], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0 and ("digraph" in r.stdout or "flowchart" in r.stdout), r.stderr


def test_help_imports_neither_torch_nor_graphviz():
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "netcli", "plot", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "typer" in names and "torch" not in names and "graphviz" not in names


def test_the_readme_picture_is_resnet18_layer1_as_plot_draws_it(run_cli):
    # its nodes are today's: a change to what plot draws shows here until the picture is drawn again with
    # `netcli plot configs/resnet18.yaml --block layer1 -o docs/resnet18_layer1.svg`
    svg = ET.parse(ROOT / "docs" / "resnet18_layer1.svg").getroot()
    svg_g = "{http://www.w3.org/2000/svg}g"
    titles = [g.find("{http://www.w3.org/2000/svg}title").text for g in svg.iter(svg_g) if g.get("class") == "node"]
    dot = parse_dot(plot(run_cli, CONFIG / "resnet18.yaml", "--block", "layer1"))
    assert sorted(titles) == sorted(dot.nodes)
    assert "docs/resnet18_layer1.svg" in (ROOT / "README.md").read_text()


def test_a_forward_without_children_shows_its_ops_and_a_spec_without_input_has_no_shapes(run_cli, write_spec):
    spec = write_spec(
        "input: [2, 4]\nblocks:\n  Act:\n    forward: |\n      return relu(x) + x\n"
        "model:\n  - Linear: [4, 4]\n  - use: Act\n"
    )
    dot = parse_dot(plot(run_cli, spec))
    (add,) = [n for n, label in dot.nodes.items() if label == "add"]
    assert sorted(dot.into(add)) == ["1:relu", "1:x"] and dot.cluster_of[add] == "cluster_1"
    bare = parse_dot(plot(run_cli, write_spec("model:\n  - Linear: [4, 8]\n  - ReLU\n", "bare.yaml")))
    assert bare.nodes == {"input": "input", "0": "0: Linear\n40 params", "1": "1: ReLU", "output": "output"}
