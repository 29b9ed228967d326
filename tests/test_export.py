"""`netcli export`: ONNX in onnxruntime, TorchScript and torch.export programs give the hand-written net's output."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from netcli.registry.chapter_blocks import FixedHiddenMLP, NestMLP

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def mlp(seed: int) -> nn.Module:
    """The chapter's net, built by hand under the same seed as `--seed`."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)).eval()


def run_onnx(path, x: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def test_onnx_round_trip_in_onnxruntime(run_cli, root, tmp_path):
    out = tmp_path / "mlp.onnx"
    result = run_cli("export", root / "configs/mlp.yaml", "--format", "onnx", "-o", out, "--seed", "0")
    assert result.code == 0, result.err
    assert "wrote" in result.out and "output [2, 10]" in result.out
    onnx.checker.check_model(onnx.load(str(out)))
    assert not (tmp_path / "mlp.onnx.data").exists()  # weights inside the one file
    net = mlp(0)
    x = torch.rand(2, 20)
    with torch.no_grad():
        expected = net(x)
    got = run_onnx(out, x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_onnx_keeps_named_children(run_cli, root, tmp_path):
    out = tmp_path / "named.onnx"
    assert run_cli("export", root / "configs/named.yaml", "-o", out, "--seed", "1").code == 0
    torch.manual_seed(1)
    net = nn.Sequential(OrderedDict(hidden=nn.Linear(20, 256), act=nn.ReLU(), output=nn.Linear(256, 10))).eval()
    x = torch.rand(2, 20)
    with torch.no_grad():
        assert torch.allclose(run_onnx(out, x), net(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fmt,name", [("torchscript", "mlp.pt"), ("exported", "mlp.pt2")])
def test_torchscript_and_exported_load_back_and_match(run_cli, root, tmp_path, fmt, name):
    out = tmp_path / name
    result = run_cli("export", root / "configs/mlp.yaml", "--format", fmt, "-o", out, "--seed", "2")
    assert result.code == 0, result.err
    loaded = torch.jit.load(str(out)) if fmt == "torchscript" else torch.export.load(str(out)).module()
    net = mlp(2)
    x = torch.rand(2, 20)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_format_follows_the_extension(run_cli, root, tmp_path):
    result = run_cli("export", root / "configs/mlp.yaml", "-o", tmp_path / "m.pt2", "--json")
    assert result.code == 0, result.err
    assert '"format": "exported"' in result.out
    bad = run_cli("export", root / "configs/mlp.yaml", "-o", tmp_path / "m.bin")
    assert bad.code == 2
    assert "cannot tell the export format" in bad.err and "--format" in bad.err


@pytest.mark.parametrize("fmt,name", [("onnx", "c.onnx"), ("exported", "c.pt2")])
def test_while_loop_block_is_named(run_cli, root, tmp_path, fmt, name):
    out = tmp_path / name
    result = run_cli("export", root / "configs/chimera.yaml", "--format", fmt, "-o", out)
    assert result.code == 2
    first = result.err.splitlines()[0]
    assert first.startswith(f"{root / 'configs/chimera.yaml'}:7:5: model[2]: block '2' (FixedHiddenMLP) cannot be exported")
    assert "control flow on tensor values" in first and "--format torchscript" in first
    assert "Traceback" not in result.err
    assert not out.exists()


def test_while_loop_block_exports_to_torchscript(run_cli, root, tmp_path):
    out = tmp_path / "chimera.pt"
    result = run_cli("export", root / "configs/chimera.yaml", "--format", "torchscript", "-o", out, "--seed", "4")
    assert result.code == 0, result.err
    assert "torch.jit.script" in result.out
    torch.manual_seed(4)
    chimera = nn.Sequential(NestMLP(), nn.Linear(16, 20), FixedHiddenMLP()).eval()
    x = torch.rand(2, 20)
    with torch.no_grad():
        assert torch.equal(torch.jit.load(str(out))(x), chimera(x))


def test_export_from_a_checkpoint(run_cli, root, tmp_path):
    ckpt = tmp_path / "mlp.safetensors"
    saved = run_cli("save", root / "configs/mlp.yaml", "-o", ckpt, "--seed", "5")
    assert saved.code == 0, saved.err
    out = tmp_path / "from_ckpt.onnx"
    result = run_cli("export", ckpt, "-o", out)
    assert result.code == 0, result.err
    net = mlp(5)
    x = torch.rand(2, 20)
    with torch.no_grad():
        assert torch.allclose(run_onnx(out, x), net(x), atol=1e-5, rtol=1e-4)


def test_meta_device_is_refused(run_cli, root, tmp_path):
    result = run_cli("export", root / "configs/mlp.yaml", "-o", tmp_path / "m.onnx", "--device", "meta")
    assert result.code == 2
    assert "meta device has no values" in result.err
