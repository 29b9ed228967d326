"""Rebuild a network from a checkpoint: its spec (given, or the one inside the file), then its tensors."""

from __future__ import annotations

from collections.abc import Iterable

from netcli.builder.validate import load_spec, load_spec_text
from netcli.core.errors import Location, NetcliError, Problem
from netcli.init.engine import build_model
from netcli.init.fastinit import uninitialized
from netcli.io.checkpoint import read_checkpoint
from netcli.io.checkpoint_load import load_into
from netcli.io.format import META_SHA256
from netcli.specfile.loading import LoadedSpec


def restore(
    path,
    spec: str | LoadedSpec | None = None,
    *,
    sets: Iterable[str] = (),
    plugins: Iterable[str] = (),
    device: str | None = None,
    strict: bool = True,
    seed: int | None = None,
):
    """Rebuild the network from SPEC (or the spec inside the file), load the tensors; return (Built, LoadReport)."""
    ckpt = read_checkpoint(path)
    note = None
    if spec is None:
        loaded = embedded_spec(ckpt, path, sets, plugins)
    else:  # a spec file, or one the caller loaded already (netcli.load's dict or text)
        loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec, sets, plugins)
        named = loaded.doc.source if isinstance(spec, LoadedSpec) else spec
        embedded = ckpt.metadata.get(META_SHA256)
        if embedded is not None and embedded != loaded.sha256:
            note = (
                f"{named} differs from the spec saved in {path} (sha256 {embedded[:12]}); "
                f"its tensors were checked against {named}"
            )
    if strict:  # every tensor will be overwritten: allocate once, draw nothing, take the file's tensors
        with uninitialized():
            built = build_model(loaded, device=device, seed=seed, fast_init=True)
    else:  # the tensors the file lacks keep the spec's initialization
        built = build_model(loaded, device=device, seed=seed)
    report = load_into(built, ckpt, strict=strict, assign=strict)
    report.spec_note = note
    return built, report


def embedded_spec(ckpt, path, sets: Iterable[str] = (), plugins: Iterable[str] = ()):
    """The spec saved inside the checkpoint `ckpt` (read from `path`), loaded as data from whoever wrote the file."""
    text = ckpt.spec_text
    if text is None:
        what = "a plain torch state_dict" if ckpt.format == "torch" else "a safetensors file netcli did not write"
        raise NetcliError(
            Problem(
                f"holds no spec to rebuild the network from ({what})",
                location=Location(str(path)),
                hint=f"name the spec: netcli load {path} SPEC",
            )
        )
    return load_spec_text(text, f"{path}:spec", sets, plugins, embedded=True)


def load_checkpoint(
    path,
    spec: str | None = None,
    *,
    sets: Iterable[str] = (),
    plugins: Iterable[str] = (),
    device: str | None = None,
    strict: bool = True,
):
    """Rebuild the network from SPEC or from the spec embedded in the file, and load its tensors."""
    built, _ = restore(path, spec, sets=sets, plugins=plugins, device=device, strict=strict)
    return built
