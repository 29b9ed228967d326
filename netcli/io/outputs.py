"""Write a tensor (run's output) to .pt, .npy or .safetensors, atomically."""
from __future__ import annotations

from pathlib import Path

from netcli.core.atomic import atomic_write
from netcli.core.errors import NetcliError
from netcli.io.format import NUMPY, SAFETENSORS, TENSOR_SUFFIXES, TORCH_SUFFIXES
from netcli.io.checkpoint_save import call_writer  # the libraries' write errors (a full disk) as OSError



def save_output(tensor, dest: str) -> None:
    """Save `tensor` to `dest`; the format follows the extension."""
    import torch
    suffix = Path(dest).suffix.lower()
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
        raise NetcliError(f"--output {dest}: unknown format '{suffix}'",
                          hint=f"use one of {', '.join(TENSOR_SUFFIXES)}")
