"""What a built network remembers of its spec, so that it pickles, deep-copies and saves as itself.

`tag` gives a network (and each run-time class in it) a `SpecOrigin`: the
loaded spec it was built from, with what the build was given (input shape,
extra init rules, the plugins its types come from). That reference is
picklable: it pickles as the resolved spec's text, and a process that
unpickles it rebuilds the spec's classes from that text, once per pickle, on
the meta device (no memory, no random draws). Deep copies keep the same
origin and classes.

`torch.save(net)` then works for a network with custom blocks, and
`netcli.save(net, ...)` / `netcli.spec_of(net)` find the spec a network was
built from even after `copy.deepcopy` or a pickle round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from netcli.builder.custom_block import Rebuilt
from netcli.specfile.loading import LoadedSpec

ATTRIBUTE = "_netcli_origin"  # the network's own attribute (in its __dict__: pickled and copied with it)


class SpecOrigin:
    """The spec a network was built from: a loaded spec in this process, its resolved text in a pickle."""

    def __init__(
        self,
        loaded: LoadedSpec | None,
        *,
        text: str | None = None,
        source: str = "<pickled>",
        plugins: Sequence[str] = (),
        input_shape: Any = None,
        rules: Sequence[str] = (),
    ):
        self._loaded = loaded
        self._text = text
        self.source = source
        self.plugins = tuple(plugins)
        self.input_shape = input_shape
        self.rules = tuple(rules)
        self.classes: dict[str, type[Any]] = {}  # module name -> its run-time class, in this process

    @property
    def text(self) -> str:
        """The resolved spec (after --set and ${vars}), as YAML: what a checkpoint embeds."""
        if self._text is None:
            assert self._loaded is not None
            self._text = self._loaded.resolved_text
        return self._text

    def spec(self) -> LoadedSpec:
        """The loaded spec: the one built from, or the resolved text read again (once) after a pickle."""
        if self._loaded is None:
            from netcli.builder.validate import load_spec_text

            # embedded: the spec's own `plugins:` are imported only as named in `plugins`, which the
            # original build recorded (the modules its registered types came from)
            self._loaded = load_spec_text(self.text, self.source, (), self.plugins, embedded=True)
        return self._loaded

    def class_at(self, name: str) -> type[Any]:
        """The run-time class of the module `name`; after a pickle, from a build of the spec on meta."""
        cls = self.classes.get(name)
        if cls is None:
            loaded = self.spec()
            from netcli.builder.builder import build_network
            from netcli.builder.preflight import infer_sizes

            shape = self.input_shape if self.input_shape is not None else loaded.spec.inputs
            with torch.random.fork_rng(devices=[]):
                built = build_network(loaded, torch.device("meta"), infer_sizes(loaded, shape))
            record_classes(built.net, self)
            cls = self.classes.get(name)
            if cls is None:
                raise TypeError(f"the spec {self.source} builds no custom block at '{name}'")
        return cls

    def __reduce__(self) -> Any:
        return (
            _origin_from,
            (self.text, self.source, self.plugins, self.input_shape, self.rules),
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> SpecOrigin:
        return self  # immutable as far as a copy can tell: copies of a network share their spec

    def __copy__(self) -> SpecOrigin:
        return self


def _origin_from(
    text: str, source: str, plugins: tuple[str, ...], input_shape: Any, rules: tuple[str, ...]
) -> SpecOrigin:
    return SpecOrigin(None, text=text, source=source, plugins=plugins, input_shape=input_shape, rules=rules)


def instance_of(origin: SpecOrigin, name: str) -> Any:
    """A new, empty instance of the class at `name` in `origin`'s spec (pickle then restores its state)."""
    cls = origin.class_at(name)
    return object.__new__(cls)  # as pickle's copyreg.__newobj__; run-time block classes define no __new__


def record_classes(net: nn.Module, origin: SpecOrigin) -> None:
    """Give each run-time class in `net` a reference to `origin` (the first one it gets stays)."""
    for name, module in net.named_modules():
        cls = type(module)
        if isinstance(module, Rebuilt):
            origin.classes.setdefault(name, cls)
            if "_netcli_rebuild" not in cls.__dict__:
                cls._netcli_rebuild = (instance_of, (origin, name))


def tag(net: nn.Module, loaded: LoadedSpec, *, input_shape: Any = None, rules: Sequence[str] = ()) -> SpecOrigin:
    """Record on `net` (and its run-time classes) the spec it was built from; return that origin."""
    from netcli import registry

    plugins = list(loaded.spec.plugins)
    for module in net.modules():
        where = type(module).__module__
        if (
            where not in plugins
            and not where.startswith(("torch.", "netcli."))
            and registry.types.entry_of(type(module)) is not None
        ):
            plugins.append(where)  # a plugin's type: its module registers it when imported
    origin = SpecOrigin(
        loaded,
        source=f"{loaded.doc.source}:spec",  # where a rebuild from the resolved text reports a problem
        plugins=plugins,
        input_shape=input_shape,
        rules=rules,
    )
    record_classes(net, origin)
    net.__dict__[ATTRIBUTE] = origin
    return origin


def origin_of(net: nn.Module) -> SpecOrigin | None:
    """The spec `net` was built from, or None for a network netcli did not build."""
    found = net.__dict__.get(ATTRIBUTE)
    return found if isinstance(found, SpecOrigin) else None
