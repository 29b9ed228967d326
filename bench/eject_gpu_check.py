"""Check `netcli code` on a machine with a GPU: the written file builds on the devices netcli builds on.

    python bench/eject_gpu_check.py

For specs that place blocks on devices (configs/devices.yaml: auto:0 and auto:1;
a custom block on cuda; a chain whose middle block is on cuda; a spec with
`device: cuda` and init rules), the written `build(seed)` must give the same
print, the same values on the same devices (drawn from the CUDA generator where
netcli draws from it) and the same outputs as netcli's default path. Exit 1 on
the first failure; without a GPU, say so and exit 0.
"""
from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

from netcli.app.eject import eject
from netcli.builder.validate import load_spec, load_spec_text
from netcli.init.engine import build_model
from netcli.io.inputs import make_input

ROOT = Path(__file__).resolve().parents[1]
SPECS = {
    "placed_chain": """
input: [4, 20]
model:
  - Linear: [20, 32]
  - {Sequential: [{Linear: [32, 32]}, ReLU], device: cuda}
  - Linear: [32, 5]
init: ["xavier:1", "normal(std=0.02):Linear"]
""",
    "cuda_block": """
input: [2, 3, 8, 8]
device: cuda
blocks:
  Unit:
    params: {planes: 8}
    children:
      conv: {Conv2d: {out_channels: "${planes}", kernel_size: 3, padding: 1, bias: false}}
      bn: BatchNorm2d
    forward: |
      return relu(bn(conv(x)))
model:
  - {use: Unit}
  - {use: Unit, with: {planes: 16}}
init: [{init: kaiming_normal, args: {mode: fan_out}, target: Conv2d}]
""",
    "placed_child": """
input: [2, 16]
model:
  class: Split
  children:
    a: {Linear: [16, 16], device: cuda}
    b: {Linear: [16, 16]}
  forward: |
    return b(a(x))
""",
}


def load_module(text: str, name: str):
    folder = Path(tempfile.mkdtemp())
    path = folder / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(name: str, loaded, seed: int = 0) -> None:
    module = load_module(eject(loaded), f"ejected_{name}")
    built = build_model(loaded, seed=seed)
    ours, theirs = module.build(seed), built.net
    assert str(ours) == str(theirs), f"{name}: print differs"
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b), f"{name}: keys differ"
    for key in b:
        assert a[key].device == b[key].device, f"{name}: {key} on {a[key].device}, netcli's on {b[key].device}"
        assert torch.equal(a[key], b[key]), f"{name}: {key} differs"
    torch.manual_seed(1)
    x = make_input(None, loaded.spec.input, built.device)  # as `netcli run` makes it
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        y1, y2 = ours(x), theirs(x)
    assert y1.device == y2.device and torch.allclose(y1, y2, atol=1e-6), f"{name}: outputs differ"
    devices = sorted({str(t.device) for t in a.values()})
    print(f"ok  {name}: {len(a)} tensors on {', '.join(devices)}, output on {y1.device}", flush=True)


def main() -> int:
    if not torch.cuda.is_available():
        print("no GPU: nothing to check")
        return 0
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    print(torch.__version__, torch.cuda.get_device_name(0), flush=True)
    try:
        check("devices.yaml", load_spec(str(ROOT / "configs" / "devices.yaml")))
        check("residual.yaml on cuda", load_spec(str(ROOT / "configs" / "residual.yaml"), ["device=cuda"]))
        for name, text in SPECS.items():
            check(name, load_spec_text(text, f"{name}.yaml"), seed=3)
    except AssertionError as exc:
        print(f"FAIL {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
