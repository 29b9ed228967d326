"""Make the example input of `run`: from `input:`, `rand:2,20`, or a tensor file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netcli.core.errors import NetcliError, first_line
from netcli.io.format import NUMPY, SAFETENSORS

GENERATORS = ("rand", "randn", "ones", "zeros")


def parse_shape(text: str, label: str) -> list[int]:
    """Parse `2,20` into [2, 20]."""
    parts = [p for p in text.replace(" ", "").strip("[]()").split(",") if p]
    try:
        shape = [int(p) for p in parts]
    except ValueError:
        raise NetcliError(f"{label}: '{text}' is not a shape", hint="write e.g. rand:2,20") from None
    if not shape or any(s < 0 for s in shape):
        raise NetcliError(f"{label}: '{text}' is not a shape", hint="write e.g. rand:2,20")
    return shape


@dataclass(frozen=True)
class InputText:
    """What `--input TEXT` names: a generator and its shape (`rand:2,20`), or a tensor file (and a key in it)."""

    text: str
    generator: str | None = None
    shape: list[int] | None = None
    path: Path | None = None
    key: str | None = None


def parse_input(text: str) -> InputText:
    """Read `--input TEXT`: rand|randn|ones|zeros:SHAPE, or FILE, or FILE:KEY; raise if it is neither."""
    kind, sep, rest = text.partition(":")
    if sep and kind in GENERATORS:
        return InputText(text, kind, parse_shape(rest, f"--input {text}"))
    path, key = Path(text), None
    if not path.exists() and ":" in text:
        head, _, key = text.rpartition(":")
        path = Path(head)
    if not path.exists():
        raise NetcliError(
            f"--input {text}: no such file, and not {'/'.join(GENERATORS)}:SHAPE",
            hint="e.g. --input rand:2,20 or --input x.npy",
        )
    return InputText(text, path=path, key=key)


def make_input(text: str | None, spec_input, device):
    """Return the input: `--input` if given, else one drawn as the spec's `input:` describes.

    A shape is `torch.rand` of it, as the hand-written `X = torch.rand(2, 20)`;
    an entry with a dtype and range is drawn in it (`example_tensor`); several
    entries give a tuple, the inputs of a forward that takes several.
    """
    import torch

    if text is None:
        if spec_input is None:
            raise NetcliError(
                "no input: the spec has no 'input:' and no --input was given",
                hint="add input: [2, 20] to the spec, or pass --input rand:2,20",
            )
        _ensure_room(device, spec_input)
        if isinstance(spec_input, list) and all(isinstance(s, int) for s in spec_input):
            return torch.rand(*spec_input, device=device)
        entries = spec_input if isinstance(spec_input, list) else [spec_input]
        xs = tuple(torch.rand(*e, device=device) if isinstance(e, list) else example_tensor(e, device) for e in entries)
        return xs[0] if len(xs) == 1 else xs
    source = parse_input(text)
    if source.generator is not None:
        _ensure_room(device, list(source.shape), f"--input {text}")
        return getattr(torch, source.generator)(*source.shape, device=device)
    return load_tensor_file(source.path, source.key).to(device)


FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
_ITEM_BYTES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2}


def _ensure_room(device, spec_input, label: str | None = None) -> None:
    """Refuse an example input the device cannot hold before drawing it (`input: [100000, 100000, 10]`)."""
    from netcli.core.devices import ensure_room

    entries = (
        spec_input if isinstance(spec_input, list) and not all(isinstance(s, int) for s in spec_input) else [spec_input]
    )
    nbytes, shapes = 0, []
    for e in entries:
        shape, dtype = (e, "float32") if isinstance(e, list) else (list(e.shape), e.dtype)
        count = 1
        for s in shape:
            count *= int(s)
        nbytes += count * _ITEM_BYTES.get(dtype, 1)
        shapes.append(shape)
    what = label or ("the example input " + " and ".join(str(s) for s in shapes))
    ensure_room(
        device,
        nbytes,
        what,
        "give a smaller input (fewer samples in a batch), or --device meta to see the shapes without values",
    )


def example_tensor(entry, device):
    """Draw one example input as an `input:` entry (shape, dtype, low, high) describes it.

    Floats: `torch.rand` (uniform in [0, 1), the chapter's X), scaled to
    [low, high) when a range is given. Integers (token ids): uniform in
    [low, high). bool: fair coin flips.
    """
    import torch

    dtype = getattr(torch, entry.dtype)
    if entry.dtype in FLOAT_DTYPES:
        x = torch.rand(*entry.shape, dtype=dtype, device=device)
        if entry.low is None and entry.high is None:
            return x
        low = 0.0 if entry.low is None else float(entry.low)
        high = 1.0 if entry.high is None else float(entry.high)
        return x * (high - low) + low
    if entry.dtype == "bool":
        return torch.randint(0, 2, tuple(entry.shape), device=device).bool()
    return torch.randint(int(entry.low or 0), int(entry.high), tuple(entry.shape), dtype=dtype, device=device)


def call(net, x):
    """Run `net` on one input, or on several (a tuple: a forward that takes several inputs)."""
    return net(*x) if isinstance(x, tuple) else net(x)


def load_tensor_file(path: Path, key: str | None = None):
    """Read one tensor from a .npy, .pt/.pth or .safetensors file (safely)."""
    import torch

    suffix = path.suffix.lower()
    label = str(path)
    try:
        if suffix == NUMPY:
            import numpy as np

            return torch.from_numpy(np.load(path, allow_pickle=False))
        if suffix == SAFETENSORS:
            # Plain reads, not a memory map (a file truncated while mapped is SIGBUS), each tensor into
            # its own aligned buffer (BLAS results can differ in the last bit on unaligned inputs).
            from netcli.io.checkpoint import read_safetensors

            ckpt = read_safetensors(label)
            name = _pick({n: n for n in ckpt.infos}, key, label)
            return ckpt.tensor(name)
        value = torch.load(path, map_location="cpu", weights_only=True)
    except NetcliError:
        raise
    except Exception as exc:
        raise NetcliError(
            f"{label}: cannot read a tensor from it: {first_line(exc)}",
            hint="give a .npy, .pt or .safetensors file holding a tensor",
        ) from exc
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        return _pick(value, key, label)
    if isinstance(value, (list, tuple)) and key is not None and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    raise NetcliError(
        f"{label}: holds a {type(value).__name__}, not a tensor", hint="save a single tensor, or name one as FILE:KEY"
    )


def _pick(tensors: dict, key: str | None, label: str):
    if key is not None:
        if key not in tensors:
            raise NetcliError(f"{label}: has no tensor '{key}'", hint=f"it holds {', '.join(map(str, tensors))}")
        return tensors[key]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise NetcliError(
        f"{label}: holds {len(tensors)} tensors; name one as {label}:KEY",
        hint=f"keys: {', '.join(list(map(str, tensors))[:10])}",
    )
