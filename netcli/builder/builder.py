"""Turn a checked spec into plain torch modules.

The result is what the equivalent hand-written code builds: `nn.Sequential`
of `OrderedDict` children and registered classes, created in declaration
order on their device, so `print(net)`, state_dict keys and seeded parameters
match. `ref` definitions are created first, in the order `blocks:` declares
them, as hand-written code creates `shared = nn.Linear(8, 8)` before the
network that uses it.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netcli import registry
from netcli.builder import blocks, inference
from netcli.builder.cache import build_cache, layer_key
from netcli.builder.diagnose import located_warnings
from netcli.builder.inferring import Inferring
from netcli.builder.meta import SkipMetaFills
from netcli.builder.param_ties import apply_ties
from netcli.builder.placement import link_devices
from netcli.builder.tensors import add_tensor
from netcli.core.devices import resolve_device
from netcli.core.errors import NetcliError
from netcli.core.qualnames import join
from netcli.specfile.loading import LoadedSpec, NodeAt, children_of, type_path
from netcli.specfile.schema import BlockNode, LayerNode, SequenceNode, TensorNode
from netcli.specfile.tree import Walker, block_members, list_items, referenced_definitions, repeat_names
from netcli.specfile.yamldoc import render_path

Path = tuple


@dataclass
class Built:
    """A built network and where each of its modules came from in the spec."""

    net: nn.Module
    loaded: LoadedSpec
    device: torch.device
    origins: dict[str, Path] = field(default_factory=dict)  # qualified module name -> document path
    devices: dict[str, torch.device] = field(default_factory=dict)  # module name -> device of a device: node
    inferred: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # module name -> arguments shape inference filled in
    init_report: list = field(default_factory=list)  # rules.Touched: what the init rules set
    # module name -> the device its spec node names, as written ("auto:1"); kept on meta too, where every
    # module is meta and `devices` is empty (`netcli plot` marks the placement from it)
    placed_as: dict[str, str] = field(default_factory=dict)


def build_network(
    loaded: LoadedSpec, dev: torch.device, inferred: dict[str, dict[str, Any]], builder: Builder | None = None
) -> Built:
    """Build the spec's modules on `dev` (each constructor draws its default init) and link devices."""
    builder = builder or Builder(loaded, dev)
    builder.inferred = inferred
    builder.create_shared()
    net = builder.build(loaded.spec.model, ("model",), dev, "")
    builder.tie(net, loaded.spec.tie, ("tie",))  # the top-level ties: after the whole network, in order
    if dev.type != "meta":  # on meta every block is meta: nothing to move
        link_devices(net, dev, builder.runs_on, dev)
    return Built(net, loaded, dev, builder.origins, builder.placed, inferred, placed_as=builder.placed_as)


class Builder(Walker[nn.Module], Inferring):
    """Creates each node's modules in declaration order; subclasses choose how a layer is created (`layer`).

    A client of the spec walker (specfile/tree.py): `build` handles a node's
    options and `dispatch` calls the `visit_*` method of its kind.
    """

    def __init__(self, loaded: LoadedSpec, device: torch.device, flow: inference.Flow | None = None):
        self.loaded = loaded
        self.device = device
        self.flow = flow  # on the inference pass: the tensor flowing in, on meta
        self.quiet = 0  # > 0 while building what the flow does not run in order (a custom block's children)
        self.inferred: dict[str, dict[str, Any]] = {}
        self.shared: dict[str, nn.Module] = {}
        self.origins: dict[str, Path] = {}
        self.placed: dict[str, torch.device] = {}
        self.placed_as: dict[str, str] = {}  # module name -> its node's `device:` as written
        self.runs_on: dict[int, torch.device] = {}  # id(module) -> device of a device: node (its intent, on meta)

    def create_shared(self) -> None:
        """Create each definition that some `ref` names, in declaration order."""
        cache = build_cache(self.loaded)
        if cache.referenced is None:
            cache.referenced = referenced_definitions(self.loaded)
        referenced = cache.referenced
        for name in self.loaded.spec.blocks:
            if name in referenced:
                self._shared(name)

    def _shared(self, name: str) -> nn.Module:
        if name not in self.shared:
            at = self.shared_definition(name)
            self.shared[name] = self.build(at.node, at.path, self.device, f"<{name}>")
        return self.shared[name]

    @property
    def flowing(self) -> inference.Flow | None:
        """The flow each block built runs on now (the inference pass, in order); None otherwise."""
        return self.flow if not self.quiet else None

    def build(self, node: Any, path: Path, device: torch.device, qualname: str) -> nn.Module:
        """Build one node (with its repeat, device and frozen options)."""
        if node.device is not None and self.device.type != "meta":  # on meta, everything is meta
            device = resolve_device(node.device)
        module: nn.Module
        if node.repeat is not None:
            with _on(device):
                module = nn.Sequential(
                    OrderedDict(
                        (n, self.dispatch(NodeAt(node, path), device, join(qualname, n))) for n in repeat_names(node)
                    )
                )
        else:
            module = self.dispatch(NodeAt(node, path), device, qualname)
        if node.device is not None:
            self.placed_as.setdefault(qualname, str(node.device))
            self.runs_on[id(module)] = device if self.device.type != "meta" else resolve_device(node.device)
            if self.device.type != "meta":
                self.placed[qualname] = device
        if node.frozen:
            module.requires_grad_(False)
        self.origins.setdefault(qualname, path)
        return module

    def visit_ref(self, at: NodeAt, device: torch.device, qualname: str) -> nn.Module:
        node = at.node
        fresh = node.ref not in self.shared
        module = self._shared(node.ref)
        if (flow := self.flowing) is not None and not fresh:  # a fresh one advanced the flow as it was built
            flow.advance(module, qualname)
        if self.flow is not None:  # the summary names a shared module by each place it is used
            own = f"<{node.ref}>"
            self.inferred.update(
                {
                    qualname + key[len(own) :]: values
                    for key, values in list(self.inferred.items())
                    if key == own or key.startswith(own + ".")
                }
            )
        return module

    def visit_use(self, at: NodeAt, bound: NodeAt, device: torch.device, qualname: str) -> nn.Module:
        return self.build(bound.node, bound.path, device, qualname)

    def visit_block(self, at: NodeAt, device: torch.device, qualname: str) -> nn.Module:
        return self.block(at.node, at.path, device, qualname)

    def visit_container(self, at: NodeAt, device: torch.device, qualname: str) -> nn.Module:
        return self.container(at.node, at.path, device, qualname)

    def visit_sequence(self, at: NodeAt, device: torch.device, qualname: str) -> nn.Module:
        children = OrderedDict()
        for name, child in children_of(at.node, at.path):
            children[name] = self.build(child.node, child.path, device, join(qualname, name))
        with _on(device):
            return nn.Sequential(children)

    def visit_layer(self, at: NodeAt, device: torch.device, qualname: str) -> nn.Module:
        return self.layer(at.node, at.path, device, qualname)

    def container(self, node: SequenceNode, path: Path, device: torch.device, qualname: str) -> nn.Module:
        """A ModuleList or ModuleDict (SPEC 1.8): its items created in order; nothing flows through it."""
        items = list_items(node, path) if node.container == "ModuleList" else children_of(node, path)
        self.quiet += 1  # the forward that loops over it decides what each item gets
        try:
            built = OrderedDict(
                (name, self.build(child.node, child.path, device, join(qualname, name))) for name, child in items
            )
        finally:
            self.quiet -= 1
        with _on(device):
            if node.container == "ModuleList":
                return nn.ModuleList(built.values())
            return nn.ModuleDict(built)

    def tensor(self, module: nn.Module, name: str, node: TensorNode, path: Path, device: torch.device) -> None:
        """Create a tensor child where `children:` writes it (the fast builder creates it on meta)."""
        try:
            add_tensor(module, name, node.holder, node.args, device)
        except NetcliError as exc:
            raise NetcliError(self.loaded.relocate(path + (node.holder,), exc.problems)) from None

    def tie(self, module: nn.Module, ties: list[str], path: Path) -> None:
        """Run a block's (or the network's) `tie:` entries, located at each entry on a problem."""
        if ties:
            apply_ties(module, ties, lambda i, message, hint: self.loaded.problem(path + (i,), message, hint))

    def children(self, module: nn.Module, node: BlockNode, path: Path, device: torch.device, qualname: str) -> None:
        """Create a block's children in the order `children:` writes them: modules, and tensors at their place.

        A module a param gives (`with: {downsample: [...]}`) is created first, at the use, as the
        argument of a hand-written `Bottleneck(..., downsample=nn.Sequential(...))` is, and registered
        at its place.
        """
        written = {name: (child, tensor) for name, child, tensor in block_members(node, path)}
        first = {
            name: self.build(written[name][0].node, written[name][0].path, device, join(qualname, name))
            for name in node.given_first
            if name in written
        }
        for name, (child, tensor) in written.items():
            if name in first:
                module.add_module(name, first[name])
            elif tensor is not None:
                self.tensor(module, name, tensor, child.path, device)
            else:
                module.add_module(name, self.build(child.node, child.path, device, join(qualname, name)))

    def block(self, node: BlockNode, path: Path, device: torch.device, qualname: str) -> nn.Module:
        """A custom block: its class, its children created in order, its forward compiled (SPEC 1.6).

        Without a forward it is a Sequential of its class, and the flow runs
        through its children in order. With one, the children are built first
        (quietly: the forward, not their order, says what flows into each) and
        then the whole block runs on the flowing tensor.
        """
        cls = blocks.block_class_for(build_cache(self.loaded), node, path)
        if node.forward is None:
            with _on(device):
                module = cls()
            self.children(module, node, path, device, qualname)
            self.tie(module, node.tie, path + ("tie",))
            return module
        program = blocks.program_for(self.loaded, node, path)
        with _on(device):
            module = cls()
        self.quiet += 1
        try:
            self.children(module, node, path, device, qualname)
        finally:
            self.quiet -= 1
        self.tie(module, node.tie, path + ("tie",))
        blocks.compile_once(build_cache(self.loaded), program, module)
        if (flow := self.flowing) is not None:
            flow.advance(module, qualname)
        return module

    def layer(self, node: LayerNode, path: Path, device: torch.device, qualname: str) -> nn.Module:
        plans = build_cache(self.loaded).plans
        key = layer_key(node.type, node.args, node.kwargs)  # alike layers share one plan
        found = plans.get(key)
        if found is None:
            cls = registry.get_type(node.type)
            found = plans[key] = (
                cls,
                inference.plan_arguments(registry.types.entry(node.type), node.args, node.kwargs),
            )
        cls, plan = found
        args, kwargs = node.args, node.kwargs
        if plan.missing:
            if self.flow is not None and self.quiet:  # inside a custom block: made when the forward calls it
                return blocks.Deferred(
                    lambda x: self._deferred(node, path, device, qualname, cls, plan, x), f"{node.type}, to be created"
                )
            values = self._infer(node, path, qualname, cls, plan)
            if values is None:  # reported; the inference pass goes on to find every such layer
                return nn.Identity()
            args, kwargs = plan.complete(values)
        elif plan.alternative is not None and (flow := self.flowing) is not None and flow.shape is not None:
            self._check_meaning(node, path, cls, plan, flow.shape)
        return self.create(node, path, device, qualname, cls, args, kwargs)

    def create(
        self, node: LayerNode, path: Path, device: torch.device, qualname: str, cls: type, args: list, kwargs: dict
    ) -> nn.Module:
        """Create one layer from its full constructor call (arguments that are nodes are built first)."""
        calls = build_cache(self.loaded).calls
        key = layer_key(node.type, args, kwargs)  # the checked call, the same in every build
        call = calls.get(key)
        if call is not None:
            args, kwargs = call
        nodes = {} if call is not None else blocks.module_arguments(cls, args, kwargs)
        if nodes:
            args, kwargs = list(args), dict(kwargs)
            self.quiet += 1  # built as arguments: the flow does not run through them
            try:
                for arg, value in nodes.items():
                    at = type_path(node, path) + (arg,)
                    built = self.build(self._argument_node(value, at), at, device, f"{qualname}.{arg}")
                    if isinstance(arg, int):
                        args[arg] = built
                    else:
                        kwargs[arg] = built
            finally:
                self.quiet -= 1
        if call is None:
            args, kwargs, problems = registry.bind_arguments(cls, args, kwargs)
            if problems:  # validate.check_spec reports these first; kept for direct callers
                raise NetcliError(self.loaded.relocate(type_path(node, path), [p for _, p in problems]))
            args, kwargs = blocks.as_tuples(cls, args, kwargs)
            if not nodes:
                calls[key] = (args, kwargs)
        try:
            at = type_path(node, path)
            place = lambda: (self.loaded.locate(at), render_path(at))  # noqa: E731  (asked only on a warning)
            with _on(device), _skip_meta_fills(device), located_warnings(place):
                module = cls(*args, **kwargs)
        except NetcliError:
            raise
        except Exception as exc:  # the constructor refused its arguments
            raise NetcliError(
                self.loaded.problem(
                    type_path(node, path),
                    f"{node.type}(...) failed: {type(exc).__name__}: {exc}",
                    "check the arguments against the constructor",
                )
            ) from exc
        if (flow := self.flowing) is not None:
            flow.advance(module, qualname)
        self.origins.setdefault(qualname, path)
        return module

    def _argument_node(self, value: Any, path: Path) -> Any:
        """The node written as a constructor argument, checked once per spec."""
        arguments = build_cache(self.loaded).arguments
        if path not in arguments:
            arguments[path] = blocks.parse_node(self.loaded, value, path)
        return arguments[path]


def _on(device: torch.device):
    """Create tensors on `device`: torch.device(...) as a context, unless it is already where they go.

    The context is a torch-function mode that every call in a constructor passes
    through; on the default device (the CPU, usually) it would only cost time.
    """
    if device == torch.get_default_device():
        return contextlib.nullcontext()
    return torch.device(device)


def _skip_meta_fills(device: torch.device):
    """On meta, skip the constructor's random fills (no values; normal_ alone costs ~1.7 s once)."""
    return SkipMetaFills(whole_inits=True) if device.type == "meta" else contextlib.nullcontext()
