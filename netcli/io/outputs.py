"""Write a tensor (run's output) to .pt, .npy or .safetensors, atomically."""

from __future__ import annotations

from pathlib import Path

from netcli.core.atomic import atomic_write
from netcli.core.errors import NetcliError
from netcli.io.checkpoint_save import call_writer  # the libraries' write errors (a full disk) as OSError
from netcli.io.format import NUMPY, SAFETENSORS, TENSOR_SUFFIXES, TORCH_SUFFIXES


def save_output(tensor, dest: str) -> None:
    """Save `tensor` to `dest`; the format follows the extension.

    Several outputs (a tuple, nested as a forward returned them) go to a .pt as
    that structure, or to a .safetensors as `output.0`, `output.1.0`, ...
    """
    import torch

    suffix = Path(dest).suffix.lower()
    if not isinstance(tensor, torch.Tensor):
        flat = dict(_flatten(tensor, "output"))
        if suffix in TORCH_SUFFIXES:
            value = _detached(tensor)
            atomic_write(dest, lambda p: call_writer(p, torch.save, value, p))
            return
        if suffix == SAFETENSORS:
            from safetensors.torch import save_file

            atomic_write(dest, lambda p: call_writer(p, save_file, flat, str(p)))
            return
        raise NetcliError(
            f"--output {dest}: the forward returns {len(flat)} tensors, which a {suffix} file cannot hold",
            hint="write a .pt or .safetensors file",
        )
    value = tensor.detach().cpu()
    if suffix in TORCH_SUFFIXES:
        atomic_write(dest, lambda p: call_writer(p, torch.save, value, p))
    elif suffix == NUMPY:
        import numpy as np

        def write(p: Path) -> None:
            with open(p, "wb") as f:
                np.save(f, value.numpy())

        atomic_write(dest, lambda p: call_writer(p, write, p))
    elif suffix == SAFETENSORS:
        from safetensors.torch import save_file

        atomic_write(dest, lambda p: call_writer(p, save_file, {"output": value.contiguous()}, str(p)))
    else:
        raise NetcliError(
            f"--output {dest}: unknown format '{suffix}'", hint=f"use one of {', '.join(TENSOR_SUFFIXES)}"
        )


def _flatten(value, name: str):
    """(name, tensor) for each tensor in a nested tuple/list of outputs."""
    import torch

    if isinstance(value, torch.Tensor):
        yield name, value.detach().cpu().contiguous()
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{name}.{i}")


def _detached(value):
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(v) for v in value)
    return value
