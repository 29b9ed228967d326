"""netcli from Python (`netcli.build`, `load`, `save`, `initialize`, `spec_of`, `summary`): the commands' functions.

A spec stays the source of truth in a training script: these are the calls the
commands make (`load_spec`, `build_model`, `restore`, `save_checkpoint`,
`describe`), with a spec given as a path, a dict or YAML text, and errors
raised as `SpecError` (a ValueError) whose `problems` are the objects
`--json` prints. What `build` returns is a plain `nn.Module` that remembers
its spec (`netcli.builder.rebuild`): it saves with the spec inside, pickles
with its custom blocks, and can be initialized in place after `to_empty`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import torch
from torch import nn

from netcli.builder.builder import Built
from netcli.builder.rebuild import SpecOrigin, origin_of
from netcli.builder.validate import load_spec_text
from netcli.core.collector import paused_on_first_use
from netcli.core.errors import Location, NetcliError, Problem, SpecError
from netcli.init.engine import build_model
from netcli.specfile.loading import LoadedSpec, resolve_spec_source

__all__ = ["SpecError", "build", "initialize", "load", "save", "spec_of", "summary", "summary_data"]

# A spec: the path of a YAML file, YAML text, or the document as a dict (what yaml.safe_load gives).
SpecLike: TypeAlias = "str | os.PathLike[str] | Mapping[str, Any]"
Device: TypeAlias = "str | torch.device | None"

DICT = "<dict>"  # the name problems of a spec given as a dict are reported under
_CACHE_SIZE = 16
# (text, source, sets, plugins) -> the checked spec: a later build of the same spec skips reading and
# checking it again, and reuses its checked calls and compiled forwards (the file is still read each time)
_loaded: OrderedDict[tuple[Any, ...], LoadedSpec] = OrderedDict()


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Raise what the commands report as `FILE:LINE:COL: ...` as SpecError, with the same problems.

    The first call of the process also runs with the cyclic collector paused (core.collector).
    """
    try:
        with paused_on_first_use():
            yield
    except NetcliError as exc:
        for problem in exc.problems:  # a dict has no lines: the place in it is the problem's `path`
            if problem.location.source == DICT:
                problem.location = Location(DICT)
        raise SpecError(exc.problems) from None


def build(
    spec: SpecLike,
    *,
    seed: int | None = None,
    set: Mapping[str, Any] | Sequence[str] | None = None,  # noqa: A002  (the commands' --set)
    device: Device = None,
    fast_init: bool = False,
    rules: Sequence[str] = (),
    plugins: Sequence[str] = (),
    input_shape: Sequence[int] | None = None,
) -> nn.Module:
    """Build the network a spec describes and initialize it, as `netcli save SPEC` does before writing.

    With a seed the values equal hand-written PyTorch's under `torch.manual_seed(seed)`
    (`fast_init=True`: the one-pass values of `--fast-init` instead). `set` is
    `{"vars.num_classes": 10}` or `["vars.num_classes=10"]`; `rules` are extra
    `--rule` texts run after the spec's `init:`; `input_shape` replaces `input:`
    (the shape the sizes the spec leaves out are inferred from). `device="meta"` builds without memory,
    for `fully_shard` / `to_empty` and then `initialize`.
    """
    sets = _sets(set)
    if input_shape is not None:  # as `run --input` does: the shape is the spec's `input:`, checked and embedded
        sets += (f"input=[{', '.join(str(int(n)) for n in input_shape)}]",)
    with _user_errors():
        loaded = _load(spec, sets, _texts(plugins))
        built = build_model(loaded, device=_device(device), seed=seed, rules=_texts(rules), fast_init=fast_init)
    return built.net


def load(
    path: str | os.PathLike[str], *, spec: SpecLike | None = None, device: Device = None, strict: bool = True
) -> nn.Module:
    """Rebuild a network from a checkpoint and load its tensors, as `netcli load FILE [SPEC]` does.

    Every format the commands read: one .safetensors (its spec inside), the
    Hugging Face sharded layout (a folder or its index), a DCP folder, a .pt
    state_dict (with `spec`). `strict=False` loads the tensors that fit, keeps
    the spec's initialization for the others, and warns naming what it skipped.
    """
    from netcli.app.restore import restore

    with _user_errors():
        loaded = _load(spec, (), ()) if spec is not None else None
        built, report = restore(os.fspath(path), loaded, device=_device(device), strict=strict)
    if report.spec_note:
        warnings.warn(f"netcli.load: {report.spec_note}", stacklevel=2)
    if report.skipped:
        warnings.warn(f"netcli.load: skipped {'; '.join(report.skipped)}", stacklevel=2)
    net: nn.Module = built.net
    return net


def save(net: nn.Module, path: str | os.PathLike[str], *, max_shard_size: str | None = None) -> None:
    """Write `net`'s tensors with the spec it was built from inside, atomically, as `netcli save` does.

    `.safetensors` (tied tensors stored once, the resolved spec in its
    metadata), `.pt`/`.pth`/`.params` (a plain state_dict); with
    `max_shard_size` ("5GB"), `path` is a folder of the Hugging Face sharded
    layout. A network sharded with FSDP2 is written as a DCP folder by every rank.
    """
    from netcli.app import sharded
    from netcli.io.checkpoint_save import save_checkpoint

    with _user_errors():
        built = _built(net)
        if max_shard_size is not None or sharded.is_sharded(built):
            sharded.save(built, os.fspath(path), max_shard_size=max_shard_size)
        else:
            save_checkpoint(built, path)


def initialize(net: nn.Module, *, seed: int | None = None, rules: Sequence[str] | None = None) -> nn.Module:
    """Initialize in place a network built on meta and then allocated (`to_empty`, after `fully_shard` or not).

    The values are those `netcli save SPEC --fast-init --seed SEED` writes,
    bit for bit, whatever the world size (each tensor drawn in chunks seeded by
    its name; a shard draws only its chunks). `seed` defaults to the spec's
    `seed:`; `rules` to those the network was built with. Returns `net`.
    """
    from netcli.builder.preflight import infer_sizes
    from netcli.init.inplace import initialize_allocated

    with _user_errors():
        built = _built(net)
        origin = _origin(built.net)
        loaded = built.loaded
        seed = seed if seed is not None else loaded.spec.seed
        shape = origin.input_shape if origin.input_shape is not None else loaded.spec.inputs
        initialize_allocated(
            built.net,
            loaded,
            seed,
            infer_sizes(loaded, shape),
            origin.rules if rules is None else _texts(rules),
        )
    return net


def spec_of(net: nn.Module) -> dict[str, Any]:
    """The resolved spec (after `set` and `${vars}`) `net` was built or loaded from, as a new dict."""
    import yaml

    with _user_errors():
        data = yaml.safe_load(_origin(_unwrap(net)).text)
    return data if isinstance(data, dict) else {"model": data}


def summary(
    net_or_spec: nn.Module | SpecLike,
    *,
    depth: int | None = None,
    backward: bool = False,
    set: Mapping[str, Any] | Sequence[str] | None = None,  # noqa: A002  (the commands' --set)
    plugins: Sequence[str] = (),
    device: Device = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The summary `netcli build SPEC --json` prints, as data: a row per block, the totals, ties, costs.

    For a network, its own tensors (frozen ones, a changed dtype) with the
    shapes and costs of its spec's `input:`; for a spec, the network it builds.
    """
    with _user_errors():
        if isinstance(net_or_spec, nn.Module):
            from netcli.builder.preflight import infer_sizes

            built = _built(net_or_spec)
            shape = _origin(built.net).input_shape
            built.inferred = infer_sizes(built.loaded, shape if shape is not None else built.loaded.spec.inputs)
        else:
            loaded = _load(net_or_spec, _sets(set), _texts(plugins))
            built = build_model(loaded, device=_device(device), seed=seed)
        return summary_data(built, backward=backward, depth=depth)


def summary_data(built: Built, *, backward: bool = False, depth: int | None = None) -> dict[str, Any]:
    """`build --json`'s object for a built network: its name, device, rows and totals."""
    from netcli.app.building import described

    return described(built, backward=backward, depth=depth).as_json()


# ---------------------------------------------------------------- specs and networks


def _load(spec: SpecLike, sets: tuple[str, ...], plugins: tuple[str, ...]) -> LoadedSpec:
    """Read and check a spec (path, YAML text or dict); the same spec again comes from the cache."""
    text, source = _spec_text(spec)
    key = (text, source, sets, plugins)
    loaded = _loaded.get(key)
    if loaded is None:
        loaded = load_spec_text(text, source, sets, plugins)
        _loaded[key] = loaded
        if len(_loaded) > _CACHE_SIZE:
            _loaded.popitem(last=False)
    else:
        _loaded.move_to_end(key)
    return loaded


def _spec_text(spec: SpecLike) -> tuple[str, str]:
    """(YAML text, the name problems are reported under) for a path, YAML text or a dict."""
    if isinstance(spec, Mapping):
        import yaml

        try:
            return yaml.safe_dump(_plain(spec), sort_keys=False, allow_unicode=True), DICT
        except yaml.YAMLError as exc:
            raise NetcliError(
                Problem(f"cannot be written as YAML: {exc}", location=Location(DICT), hint="a spec holds data only")
            ) from None
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise NetcliError(
            Problem(f"a spec is a path, YAML text or a dict, not a {type(spec).__name__}", location=Location("spec"))
        )
    if _is_yaml_text(spec):
        return spec, "<text>"
    text, source, _ = resolve_spec_source(spec)
    return text, source


def _is_yaml_text(spec: str) -> bool:
    """A string is YAML text when it has several lines, a `key: value` or a flow collection; else a path."""
    if "\n" in spec or spec.lstrip().startswith(("{", "[")):
        return True
    if ": " not in spec and not spec.rstrip().endswith(":"):
        return False
    with contextlib.suppress(OSError, ValueError):
        if Path(spec).is_file():
            return False
    return True


def _plain(data: Any) -> Any:
    """Mappings as dicts and tuples as lists, so that yaml.safe_dump writes them."""
    if isinstance(data, Mapping):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(value) for value in data]
    return data


def _sets(given: Mapping[str, Any] | Sequence[str] | None) -> tuple[str, ...]:
    """--set texts from `{"vars.hidden": 64}` (values written as JSON, which YAML reads) or "PATH=VALUE" texts."""
    import json

    if given is None:
        return ()
    if isinstance(given, Mapping):
        return tuple(f"{key}={json.dumps(_plain(value))}" for key, value in given.items())
    return _texts(given)


def _texts(given: Sequence[str] | str) -> tuple[str, ...]:
    return (given,) if isinstance(given, str) else tuple(given)


def _device(device: Device) -> str | None:
    return None if device is None else str(device)


def _unwrap(net: nn.Module) -> nn.Module:
    """The module itself under torch.compile's OptimizedModule or DDP's wrapper."""
    while True:
        inner = net.__dict__.get("_modules", {}).get("_orig_mod") or (
            net.module if type(net).__name__ == "DistributedDataParallel" else None
        )
        if not isinstance(inner, nn.Module):
            return net
        net = inner


def _origin(net: nn.Module) -> SpecOrigin:
    origin = origin_of(net)
    if origin is None:
        raise NetcliError(
            f"this {type(net).__name__} was not built by netcli: it has no spec",
            hint="build it with netcli.build or netcli.load; any module's tensors: torch.save(net.state_dict(), path)",
        )
    return origin


def _built(net: nn.Module) -> Built:
    """The Built the commands work on, for a network built (or loaded) by netcli."""
    module = _unwrap(net)
    loaded = _origin(module).spec()
    first: torch.Tensor | None = next(iter(module.parameters()), None)
    if first is None:
        first = next(iter(module.buffers()), None)
    return Built(module, loaded, first.device if first is not None else torch.device("cpu"))
