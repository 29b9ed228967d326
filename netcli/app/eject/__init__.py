"""`netcli code`: write a spec's network as the plain PyTorch a person would write (SPEC 1.7).

The spec is walked the way the builder walks it (walk.py), so the code
creates the same modules in the same order: `ref` definitions first, as shared
objects; a `use` as a call of the definition's function or class; a list as
`nn.Sequential(...)`, named children through an `OrderedDict`; `repeat` as a
generator; `frozen` as `requires_grad_(False)`; a `device:` as modules created
under `with torch.device(...)` and a forward pre-hook that moves the inputs; a
custom block as its class (blocks.py). Sizes shape inference filled in
are written as numbers, read from a build on the meta device. `build(seed)`
seeds, builds and applies the init rules (init.py), so it returns what
netcli's default path returns.
"""

from __future__ import annotations

import io
import tokenize
from collections.abc import Sequence

from netcli import registry
from netcli.app.eject.blocks import write_block
from netcli.app.eject.containers import tie_statements, write_container
from netcli.app.eject.defs import definitions
from netcli.app.eject.init import init_function
from netcli.app.eject.layer import layer_call
from netcli.app.eject.source import (
    Assign,
    Block,
    Call,
    Code,
    Def,
    Do,
    Return,
    Text,
    module_text,
    sort_imports,
    statement,
    string,
)
from netcli.app.eject.walk import Piece, Writer
from netcli.core.devices import parse_device
from netcli.specfile.loading import LoadedSpec

HELPERS = {
    "try_gpu": '''
def try_gpu(i=0):
    """Return GPU i if it exists, else the CPU (D2L's try_gpu; netcli's auto:i)."""
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f"cuda:{i}")
    return torch.device("cpu")
''',
    "move_inputs_to": '''
def move_inputs_to(device):
    """Return a forward pre-hook that moves a block's inputs to `device` first."""

    def hook(module, args):
        return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)

    return hook
''',
}


def eject(
    loaded: LoadedSpec,
    *,
    seed: int | None = None,
    device: str | None = None,
    rules: Sequence[str] = (),
    spec_args: str = "",
) -> str:
    """Return the spec's network as the text of a standalone PyTorch module with a `build(seed)` function.

    `seed` (default: the spec's `seed:`) becomes build's default seed; `device`
    (default: the spec's `device:`) is where build creates the network; `rules`
    are `--rule` texts applied after the spec's `init:`. `spec_args` names the
    spec as the command line did (`configs/rgnet.yaml --set vars.hidden=16`),
    for the docstring. Raise NetcliError naming the block when a
    type cannot be written (a plugin class that cannot be imported by name).
    """
    import torch

    from netcli.builder.builder import build_network
    from netcli.builder.preflight import infer_sizes
    from netcli.init.rules import all_rules

    device = device if device is not None else loaded.spec.device
    if device is not None:
        parse_device(device)
    registry.ensure_loaded()
    rule_list = all_rules(loaded, rules)
    with torch.random.fork_rng(devices=[]):  # the meta build draws nothing; the caller's RNG stays as it was
        inferred = infer_sizes(loaded, getattr(loaded.spec, "inputs", loaded.spec.input))
        built = build_network(loaded, torch.device("meta"), inferred)
    writer = Writer(
        loaded, inferred, device, write_block=write_block, layer_call=layer_call, write_container=write_container
    )
    net_piece = writer.network()
    init = init_function(built.net, rule_list, writer.class_expr)
    seed = seed if seed is not None else loaded.spec.seed
    defs = definitions(writer)
    build = _build_function(writer, net_piece, seed, init is not None)  # before the helpers: it may need try_gpu
    top = _helpers(writer) + (init.helpers if init else []) + defs + ([init.function] if init else []) + [build]
    body = "\n".join(line for stmt in top for line in statement(stmt, ""))
    imports = _imports(body, {**writer.plugin_imports, **(init.imports if init else {})})
    return module_text(_docstring(loaded, spec_args, seed, writer), imports, top)


def write_code(
    loaded: LoadedSpec,
    output: str | None,
    *,
    seed: int | None = None,
    device: str | None = None,
    rules: Sequence[str] = (),
    spec_args: str = "",
) -> str:
    """Write the spec's network as PyTorch source to `output` (atomically), or return it when `output` is None.

    Refuses to write over the spec itself (the input is kept). Returns the text.
    """
    from netcli.core.atomic import atomic_write, refuse_overwriting_inputs

    refuse_overwriting_inputs(output, loaded.doc.source)
    text = eject(loaded, seed=seed, device=device, rules=rules, spec_args=spec_args)
    if output is not None:
        atomic_write(output, lambda path: path.write_text(text, encoding="utf-8"))
    return text


def command_args(
    spec: str | None,
    sets: Sequence[str] = (),
    plugins: Sequence[str] = (),
    rules: Sequence[str] = (),
    seed: int | None = None,
    device: str | None = None,
) -> str:
    """The arguments that name this network on a command line (`configs/x.yaml --set vars.h=16`), for the docstring."""
    import shlex

    parts = [spec] if spec else []
    parts += [f"--set {shlex.quote(s)}" for s in sets] + [f"--plugin {shlex.quote(p)}" for p in plugins]
    parts += [f"--rule {shlex.quote(r)}" for r in rules]
    parts += ([f"--seed {seed}"] if seed is not None else []) + ([f"--device {shlex.quote(device)}"] if device else [])
    return " ".join(parts)


def _helpers(w: Writer) -> list:
    out: list = [Text(source) for source in w.classes.values()]
    out += [Text(HELPERS[name]) for name in ("try_gpu", "move_inputs_to") if name in w.needs]
    return out


def _build_function(w: Writer, piece: Piece, seed: int | None, init: bool) -> Def:
    body: list = w.prologue + piece.stmts + [Assign("net", piece.expr)] + tie_statements("net", w.loaded.spec.tie)
    if w.device is not None and w.device != "cpu":
        body = [Block("with ", Call("torch.device", (w.device_expr(w.device),)), body)]
    head = [Block("if ", Code("seed is not None"), [Do(Call("torch.manual_seed", (Code("seed"),)))])]
    tail = [Do(Call("init_weights", (Code("net"),)))] if init else []
    doc = (
        "Return the network, built and initialized as netcli's default path does.\n\n"
        "With a seed, torch is seeded first: the values are then those that\n"
        "`netcli build --seed SEED` gives."
    )
    return Def(f"def build(seed={seed!r})", doc, head + body + tail + [Return(Code("net"))])


# --- the module around the functions --------------------------------------------------------


def _imports(body: str, plugin_imports: dict[str, str]) -> list[str]:
    """The imports the code uses: torch always, nn, F, OrderedDict, math and fnmatch where a name needs them."""
    names = {tok.string for tok in tokenize.generate_tokens(io.StringIO(body).readline) if tok.type == tokenize.NAME}
    stdlib, third = set(), {"import torch"}
    if "OrderedDict" in names:
        stdlib.add("from collections import OrderedDict")
    if "math" in names:
        stdlib.add("import math")
    if "fnmatch" in names:  # an `apply` rule's glob of parameter names
        stdlib.add("import fnmatch")
    if "nn" in names:
        third.add("from torch import nn")
    if "F" in names:
        third.add("import torch.nn.functional as F")
    third |= {f"{line}  # {comment}" for line, comment in plugin_imports.items()}
    return sort_imports(stdlib, third)


def _docstring(loaded: LoadedSpec, spec_args: str, seed: int | None, writer: Writer) -> str:
    import textwrap

    wrap = lambda text: textwrap.wrap(text, 84, break_long_words=False, break_on_hyphens=False)  # noqa: E731
    lines = wrap(f"{loaded.name}, written as plain PyTorch by `{' '.join(['netcli code', spec_args]).strip()}`.")
    lines += [""] + wrap(
        "build() reproduces netcli's default path: it creates the modules in the order netcli creates them "
        "and applies the spec's init rules with the same torch.nn.init calls on the same tensors, so under "
        "the same seed it returns the network `netcli build` builds: the same print, state_dict keys, "
        "values and outputs."
    )
    lines += [""] + wrap(
        "The values --fast-init gives are netcli's own (each tensor drawn from a seed of its own, not from "
        "torch's one random stream), so no plain torch code repeats them. To use them, save them with "
        f"`netcli save {spec_args + ' ' if spec_args else ''}--fast-init -o {loaded.name}.pt` and load "
        "the state_dict:"
    )
    saved = string(loaded.name + ".pt")
    lines += ["", "    net = build()", f"    net.load_state_dict(torch.load({saved}, weights_only=True))"]
    if writer.plugin_imports:
        modules = sorted({line.split()[1] for line in writer.plugin_imports})
        lines += [""] + wrap(
            f"Plugin types come from their own modules ({', '.join(modules)}), which "
            "register them with netcli when imported."
        )
    return "\n".join(lines)
