"""Make the example input of `run`: from `input:`, `rand:2,20`, or a tensor file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcli.core.errors import NetcliError, first_line
from netcli.io.format import NUMPY

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
    if not path.is_file():  # a folder, or a FIFO or device whose first read would block or never end
        raise NetcliError(
            f"--input {text}: not a regular file (a folder, FIFO, device or socket)",
            hint="give a .npy, .safetensors or torch file",
        )
    return InputText(text, path=path, key=key)


def make_input(
    texts: str | Sequence[str] | None,
    spec_input,
    device,
    names: Sequence[str] | None = None,
    *,
    given: list[list[Given]] | None = None,
):
    """Return the input: the `--input` options if given, else one drawn as the spec's `input:` describes.

    A shape is `torch.rand` of it, as the hand-written `X = torch.rand(2, 20)`;
    an entry with a dtype and range is drawn in it (`example_tensor`); several
    entries give a tuple, the inputs of a forward that takes several. `names`
    are the forward's inputs (see `arrange`); `given`: the files already read.
    """
    import torch

    if not texts:
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
    made: list[Any] = []
    for g in arrange(given if given is not None else read_inputs(texts), names):
        if g.tensor is None:
            generator, shape = g.source.generator, g.source.shape
            assert generator is not None and shape is not None  # parse_input gives both, or a file
            _ensure_room(device, list(shape), f"--input {g.source.text}")
            made.append(getattr(torch, generator)(*shape, device=device))
        else:
            made.append(g.tensor.to(device))  # its own dtype: int64 token ids stay ids
    return made[0] if len(made) == 1 else tuple(made)


@dataclass
class Given:
    """One forward input as `--input` gave it: a generator (`rand:2,20`, drawn later) or a tensor from a file."""

    source: InputText
    tensor: Any = None  # None: drawn from source.generator
    name: str | None = None  # the name it had in its file

    @property
    def shape(self) -> list[int]:
        return list(self.source.shape or ()) if self.tensor is None else list(self.tensor.shape)


def read_inputs(texts: str | Sequence[str]) -> list[list[Given]]:
    """Read each `--input` (files through the checks every torch file gets); one list of tensors per option."""
    out = []
    for text in [texts] if isinstance(texts, str) else texts:
        source = parse_input(text)
        if source.generator is not None:
            out.append([Given(source)])
        else:
            assert source.path is not None  # not a generator: a file
            tensors = load_tensors(source.path, source.key)
            out.append([Given(source, t, name) for name, t in tensors.items()])
    return out


def arrange(given: list[list[Given]], names: Sequence[str] | None) -> list[Given]:
    """The forward's inputs, in order: one per `--input`, or one file's tensors by their names.

    `names` are the forward's inputs (None where they are not known: then the
    inputs are passed in the order given). A file holding several tensors fills
    the inputs by name when its names are exactly the forward's; otherwise each
    `--input` must hold one tensor, and there must be one per input.
    """
    listed = f" ({', '.join(names)})" if names else ""
    if len(given) == 1 and len(given[0]) > 1:
        stored = {g.name: g for g in given[0]}
        label = given[0][0].source.text
        if names and set(stored) == set(names):
            return [stored[n] for n in names]
        if list(stored) == [str(i) for i in range(len(stored))] and (not names or len(names) == len(stored)):
            return list(given[0])  # a list or tuple of tensors: the inputs in order
        raise NetcliError(
            f"--input {label}: holds {len(stored)} tensors ({', '.join(map(str, list(stored)[:10]))}), "
            + (f"not the forward's inputs{listed}" if names else "and the forward's inputs are not known"),
            hint=f"name the tensors after the inputs{listed}, or give one per input: --input {label}:KEY",
        )
    for option in given:
        if len(option) != 1:
            label = option[0].source.text if option else "FILE"
            keys = ", ".join(map(str, [g.name for g in option][:10]))
            raise NetcliError(
                f"--input {label}: holds {len(option)} tensors; name one as {label}:KEY", hint=f"keys: {keys}"
            )
    flat = [option[0] for option in given]
    if names and len(flat) != len(names):
        raise NetcliError(
            f"the forward takes {len(names)} input{'s' if len(names) != 1 else ''}{listed}; --input gave {len(flat)}",
            hint="give --input once per input, in that order, or one .safetensors file whose tensors are named "
            + " and ".join(names),
        )
    return flat


def input_set(given: list[Given]) -> str:
    """The `--set input=...` that makes the given inputs the ones shape inference and the shape check use.

    Float32 inputs are their shapes; other dtypes an entry with the dtype (and,
    for integers, the range of the values given, so ids drawn for the check are
    ids the network takes).
    """
    entries = []
    for g in given:
        t = g.tensor
        if t is None or str(t.dtype) == "torch.float32":
            entries.append(f"[{', '.join(map(str, g.shape))}]")
            continue
        dtype = str(t.dtype).removeprefix("torch.")
        extra = ""
        if not (t.is_floating_point() or dtype == "bool") and t.numel():
            extra = f", low: {int(t.min())}, high: {int(t.max()) + 1}"
        elif not (t.is_floating_point() or dtype == "bool"):
            extra = ", high: 1"
        entries.append(f"{{shape: [{', '.join(map(str, g.shape))}], dtype: {dtype}{extra}}}")
    return "input=" + (entries[0] if len(entries) == 1 else f"[{', '.join(entries)}]")


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


def load_tensors(path: Path, key: str | None = None) -> dict:
    """The tensors of a .npy, .safetensors or torch file, by name (`key`: that one only).

    Torch and safetensors files are opened as checkpoints are (`read_single`):
    the zip, pickle and size checks run before torch.load, one door for every
    torch file netcli reads.
    """
    import torch

    label = str(path)
    if path.suffix.lower() == NUMPY:
        import numpy as np

        try:
            value = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise NetcliError(
                f"{label}: cannot read a tensor from it: {first_line(exc)}", hint="give a .npy file holding an array"
            ) from exc
        if not isinstance(value, np.ndarray):
            raise NetcliError(f"{label}: holds several arrays (.npz)", hint="save one array with np.save")
        tensors = {"": torch.from_numpy(value)}
    else:
        from netcli.io.tensorfile import read_single

        ckpt = read_single(path)  # a plain read, each tensor its own aligned buffer (never a memory map)
        tensors = {name: ckpt.tensor(stored) for name, stored in ckpt.names.items()}
        if ckpt.kind == "tensor":
            tensors = {"": next(iter(tensors.values()))} if tensors else {}
        elif not tensors:
            raise NetcliError(
                f"{label}: holds no tensor", hint="save a tensor, a list of tensors or a dict of them with torch.save"
            )
    if key is None:
        return tensors
    if key not in tensors:
        raise NetcliError(f"{label}: has no tensor '{key}'", hint=f"it holds {', '.join(map(str, tensors))}")
    return {key: tensors[key]}


def load_tensor_file(path: Path, key: str | None = None):
    """Read one tensor from a .npy, .pt/.pth or .safetensors file (safely); the file must hold one, or name it."""
    tensors = load_tensors(path, key)
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise NetcliError(
        f"{path}: holds {len(tensors)} tensors; name one as {path}:KEY",
        hint=f"keys: {', '.join(list(map(str, tensors))[:10])}",
    )
