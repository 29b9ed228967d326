"""Issue 26 (hardening, third round): one test per defect, named after its item.

Anything that could run code writes a canary file if it succeeds; anything that
could lose data checks the old bytes are still there; anything that could leak a
file checks its text is nowhere in the output. Every case ends with exit 0 or 2,
no traceback, in well under 15 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from test_hardening import SMALL, _rewrite_spec, _zip_bomb

SECRET = "netcli-secret-line-9f3c"


def _quick(run_cli, *args):
    """Run netcli; check it ends cleanly (0 or 2, no traceback) in under 15 s; return the result."""
    start = time.monotonic()
    result = run_cli(*args)
    assert time.monotonic() - start < 15, args
    assert result.code in (0, 2), (args, result.code, result.err)
    assert "Traceback" not in result.err + result.out, result.err
    return result


# --- 2. extends: reads only regular .yaml files, and never prints what it refused ------------


@pytest.mark.parametrize(
    "kind", ["passwd", "environ", "zero", "fifo", "link_to_proc", "folder.yaml", "nul", "not_a_spec"]
)
def test_2_extends_refuses_devices_and_proc(tmp_path, run_cli, kind):
    (tmp_path / "passwd").write_text(f"root:{SECRET}:0:0:root:/root:/bin/bash\n")
    (tmp_path / "not_a_spec.yaml").write_text(f"- [{SECRET}\n")  # YAML that fails to parse: never quoted
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "link_to_proc.yaml").symlink_to("/proc/self/environ")
    base = {
        "passwd": str(tmp_path / "passwd"),
        "environ": "/proc/self/environ",
        "zero": "/dev/zero",
        "fifo": "fifo.yaml",
        "link_to_proc": "link_to_proc.yaml",
        "folder.yaml": "folder.yaml",
        "nul": "a\\0b.yaml",
        "not_a_spec": "not_a_spec.yaml",
    }[kind]
    spec = tmp_path / "spec.yaml"
    spec.write_text(f'extends: "{base}"\n' + SMALL)
    for command in ("validate", "build"):
        result = _quick(run_cli, command, spec)
        assert result.code == 2, result.err
        assert SECRET not in result.err + result.out
        assert "SHELL=" not in result.err and "PATH=" not in result.err  # the environment is not shown
        assert "extends" in result.err or "not_a_spec.yaml" in result.err, result.err


def test_2_a_real_base_still_shows_its_line(tmp_path, run_cli):
    (tmp_path / "base.yml").write_text("input: [2, 4]\nmodel:\n  - Lnear: [4, 2]\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("extends: base.yml\n")
    result = _quick(run_cli, "validate", spec)
    assert result.code == 2 and f"{tmp_path / 'base.yml'}:3:5" in result.err and "- Lnear" in result.err, result.err


# --- 3c. a checkpoint's spec cannot extend files on the disk of whoever opens it -------------


def test_3c_an_embedded_spec_cannot_extend(tmp_path, run_cli):
    (tmp_path / "secret.yaml").write_text(f"blocks: {{{SECRET}: [ReLU]}}\nmodel: [{SECRET}]\n")
    spec = tmp_path / "net.yaml"
    spec.write_text(SMALL)
    ckpt = tmp_path / "net.safetensors"
    assert run_cli("save", spec, "-o", ckpt).code == 0
    _rewrite_spec(ckpt, lambda text: f"extends: {tmp_path / 'secret.yaml'}\n" + text)
    for args in (
        ("load", ckpt),
        ("inspect", ckpt),
        ("export", ckpt, "-o", tmp_path / "x.onnx"),
        ("code", ckpt),
        ("load", ckpt, "--input", "rand:2,4"),
    ):
        result = _quick(run_cli, *args)
        assert result.code == 2, (args, result.err)
        assert "cannot extend files" in result.err and SECRET not in result.err + result.out, result.err
    assert not (tmp_path / "x.onnx").exists()
    assert _quick(run_cli, "load", ckpt, spec).code == 0  # the user's own spec still loads it


# --- 3b. importing an ejected file runs nothing from the spec ---------------------------------


def _import_file(path, name):
    """Import the generated file at `path` as module `name` (a fresh one), return it."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(module)
    return module


INJECT = '"""; open("PWNED", "w"); """'


@pytest.mark.parametrize("where", ["name", "class_docstring", "file_name", "rule", "set_value"])
def test_3b_ejected_docstrings_run_no_code(tmp_path, run_cli, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    names = {"name": f"net{INJECT}", "class_docstring": "net"}
    second = f"B{INJECT}" if where == "class_docstring" else "B"
    spec_name = f"spec{INJECT}.yaml".replace("/", "") if where == "file_name" else "spec.yaml"
    text = (
        f"name: {names.get(where, 'net')!r}\ninput: [2, 4]\nvars: {{w: 4}}\n"
        "blocks:\n"
        "  A: {class: Foo, children: {l: {Linear: [4, '${w}']}}, forward: 'return l(x)'}\n"
        f"  {second!r}: {{class: Foo, children: {{l: {{Linear: [4, 4]}}, m: ReLU}}, forward: 'return m(l(x))'}}\n"
        f"model: [{{use: A}}, {{use: {second!r}}}]\n"
    )
    (tmp_path / spec_name).write_text(text)
    extra = {"rule": ("--rule", f"zeros:0.l.bias\r{INJECT}"), "set_value": ("--set", f"vars.w=4 #{INJECT}")}
    result = _quick(run_cli, "code", tmp_path / spec_name, "-o", tmp_path / "model.py", *extra.get(where, ()))
    if result.code == 0:
        module = _import_file(tmp_path / "model.py", "netcli_ejected_3b")
        assert not (tmp_path / "PWNED").exists()
        docs = [module.__doc__] + [v.__doc__ or "" for v in vars(module).values() if isinstance(v, type)]
        shown = " ".join(" ".join(docs).split())  # docstrings wrap at spaces
        assert INJECT in shown or where in ("rule", "set_value")  # the text is shown, as text
        module.build(0)
    assert not (tmp_path / "PWNED").exists()


def test_3b_names_python_reads_as_one_are_refused(write_spec, run_cli):
    for text in (
        "input: [2, 4]\nmodel: {Sequential: {fi: ReLU, \ufb01: Tanh}}\n",
        "input: [2, 4]\nblocks: {\ufb01: [ReLU]}\nmodel: [{use: \ufb01}]\n",
        "input: [2, 4]\nblocks: {B: {children: {\ufb01: ReLU}, forward: 'return \ufb01(x)'}}\nmodel: [{use: B}]\n",
    ):
        result = _quick(run_cli, "validate", write_spec(text))
        assert result.code == 2 and "NFKC" in result.err, result.err
        assert ":" in result.err.split(" ")[0]  # located: FILE:LINE:COL


def test_3b_an_infinite_forward_constant_is_written_as_one(tmp_path, write_spec, run_cli):
    import torch

    spec = write_spec(
        "input: [2, 4]\nblocks:\n  B: {children: {l: {Linear: [4, 4]}}, "
        "forward: 'return torch.clamp(l(x), max=1e999) * 0 + 1e999'}\nmodel: [{use: B}]\n"
    )
    result = _quick(run_cli, "code", spec, "-o", tmp_path / "model.py")
    assert result.code == 0, result.err
    net = _import_file(tmp_path / "model.py", "netcli_ejected_inf").build(0)
    out = net(torch.ones(2, 4))
    assert torch.equal(out, torch.full((2, 4), float("inf")))


# --- 3. netcli code CKPT ejects the spec saved in the checkpoint -----------------------------


def test_3_code_ejects_a_checkpoints_spec(tmp_path, run_cli, root):
    ckpt = tmp_path / "mlp.safetensors"
    assert run_cli("save", root / "configs" / "mlp.yaml", "-o", ckpt).code == 0
    before = ckpt.read_bytes()
    result = _quick(run_cli, "code", ckpt, "-o", tmp_path / "from_ckpt.py")
    assert result.code == 0, result.err
    assert _quick(run_cli, "code", root / "configs" / "mlp.yaml", "-o", tmp_path / "from_spec.py").code == 0
    a = _import_file(tmp_path / "from_ckpt.py", "netcli_from_ckpt").build(0)
    b = _import_file(tmp_path / "from_spec.py", "netcli_from_spec").build(0)
    assert str(a) == str(b) and list(a.state_dict()) == list(b.state_dict())
    assert _quick(run_cli, "code", ckpt, "-o", ckpt).code == 2  # never over the checkpoint it reads
    assert ckpt.read_bytes() == before


# --- 3. run/load inputs: dtypes, several inputs, by name, eval mode ---------------------------


def _net(root, name, seed=0):
    from netcli.builder.validate import load_spec
    from netcli.init.engine import build_model

    return build_model(load_spec(str(root / "configs" / name)), seed=seed).net


def test_3_run_input_keeps_the_files_dtype_and_eval(tmp_path, run_cli, root):
    import torch

    ids = torch.randint(0, 100, (5, 3))  # another shape than the spec's input: (8, 2)
    torch.save(ids, tmp_path / "ids.pt")
    for mode in ("eval", "train"):
        out = tmp_path / f"{mode}.pt"
        extra = ("--eval",) if mode == "eval" else ()
        result = _quick(
            run_cli,
            "run",
            root / "configs" / "lstm_lm.yaml",
            "--input",
            tmp_path / "ids.pt",
            "--seed",
            "0",
            "-o",
            out,
            *extra,
        )
        assert result.code == 0, result.err
        net = _net(root, "lstm_lm.yaml")
        if mode == "eval":
            want = net.eval()(ids)[0]  # as run does it: with autograd on
            assert torch.equal(torch.load(out, weights_only=True)[0], want)
        else:  # dropout is on: the result is not the eval one
            with torch.no_grad():
                assert not torch.equal(torch.load(out, weights_only=True)[0], net.eval()(ids)[0])


def test_3_several_inputs_in_order_or_by_name(tmp_path, run_cli, root):
    import torch
    from safetensors.torch import save_file

    src, tgt = torch.randint(0, 40, (2, 9)), torch.randint(0, 50, (2, 9))
    torch.save(src, tmp_path / "src.pt")
    torch.save(tgt, tmp_path / "tgt.pt")
    save_file({"dec_X": tgt, "enc_X": src}, str(tmp_path / "both.safetensors"))  # not in the forward's order
    net = _net(root, "seq2seq_gru.yaml").eval()
    with torch.no_grad():
        want = net(src, tgt)[0]
    spec = root / "configs" / "seq2seq_gru.yaml"
    for given in (
        ("--input", tmp_path / "src.pt", "--input", tmp_path / "tgt.pt"),
        ("--input", tmp_path / "both.safetensors"),
    ):
        out = tmp_path / "out.pt"
        result = _quick(run_cli, "run", spec, *given, "--seed", "0", "--eval", "-o", out)
        assert result.code == 0, result.err
        assert torch.equal(torch.load(out, weights_only=True)[0], want)
    # the other order is another input, not silently the same
    result = _quick(
        run_cli,
        "run",
        spec,
        "--input",
        tmp_path / "tgt.pt",
        "--input",
        tmp_path / "src.pt",
        "--seed",
        "0",
        "--eval",
        "-o",
        tmp_path / "swapped.pt",
    )
    assert result.code == 2 or not torch.equal(torch.load(tmp_path / "swapped.pt", weights_only=True)[0], want)


def test_3_a_missing_input_names_the_forwards_inputs(tmp_path, run_cli, root):
    import torch

    torch.save(torch.randint(0, 40, (2, 9)), tmp_path / "src.pt")
    ckpt = tmp_path / "s2s.safetensors"
    assert run_cli("save", root / "configs" / "seq2seq_gru.yaml", "-o", ckpt).code == 0
    for args in (("run", root / "configs" / "seq2seq_gru.yaml"), ("load", ckpt)):
        result = _quick(run_cli, *args, "--input", tmp_path / "src.pt")
        assert result.code == 2 and "takes 2 inputs (enc_X, dec_X)" in result.err, result.err
        result = _quick(
            run_cli,
            *args,
            "--input",
            tmp_path / "src.pt",
            "--input",
            tmp_path / "src.pt",
            "--input",
            tmp_path / "src.pt",
        )
        assert result.code == 2 and "--input gave 3" in result.err, result.err


def test_3_load_input_on_a_two_input_net(tmp_path, run_cli, root):
    import torch

    src, tgt = torch.randint(0, 40, (2, 9)), torch.randint(0, 50, (2, 9))
    torch.save([src, tgt], tmp_path / "pair.pt")  # a list of tensors: the inputs in order
    ckpt = tmp_path / "s2s.safetensors"
    assert run_cli("save", root / "configs" / "seq2seq_gru.yaml", "--seed", "3", "-o", ckpt).code == 0
    result = _quick(run_cli, "load", ckpt, "--input", tmp_path / "pair.pt", "--json")
    assert result.code == 0, result.err
    net = _net(root, "seq2seq_gru.yaml", seed=3).eval()  # load runs in eval mode
    with torch.no_grad():
        want = net(src, tgt)[0]
    import json

    got = json.loads(result.out)["outputs"][0]
    assert got["shape"] == [2, 9, 50] and torch.equal(torch.tensor(got["values"]), want)


# --- 4. one door for torch files: --input gets every check a checkpoint gets -----------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["bomb", "program", "dag", "sparse"])
def test_4_input_files_pass_the_checkpoint_checks(tmp_path, run_cli, root, kind):
    import torch

    path = tmp_path / f"{kind}.pt"
    marker = tmp_path / "PWNED"
    if kind == "bomb":
        _zip_bomb(path, copies=2000, size=64 << 20)
    elif kind == "program":
        torch.save({"x": torch.ones(2, 20), "y": _Payload(str(marker))}, path)
    elif kind == "dag":
        x: list = [torch.ones(2, 20)]
        for _ in range(60):
            x = [x, x]
        torch.save(x, path)
    else:
        torch.save(torch.eye(20)[:2].to_sparse(), path)
    for command in ("run", "export"):
        args = (root / "configs" / "mlp.yaml", "--input", path) + (
            ("-o", tmp_path / "m.onnx") if command == "export" else ()
        )
        result = _quick(run_cli, command, *args)  # the DAG (2**60 paths) is walked once: in time, 0 or 2
        if kind != "dag":
            assert result.code == 2 and str(path) in result.err, result.err
            said = {"bomb": "refusing to inflate it", "program": "would run code", "sparse": "plain dense tensors"}
            assert said[kind] in result.err, result.err
    assert not marker.exists()


# --- 3. a torch warning at the spec's line; an overflowing init argument; recurrent FLOPs -----


def test_3_a_torch_warning_is_reported_at_the_spec_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from test_hardening import ENV

    spec = tmp_path / "warn.yaml"
    spec.write_text(
        "input: [2, 3, 4]\nmodel:\n  - LSTM: {input_size: 4, hidden_size: 4, num_layers: 1, dropout: 0.5}\n"
    )
    netcli = str(Path(sys.executable).parent / "netcli")
    proc = subprocess.run([netcli, "run", str(spec)], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "Warning" in line]
    assert len(warned) == 1, proc.stderr  # once, though the network is built twice (the check, the run)
    assert warned[0].startswith(f"{spec}:3: UserWarning: model[0].LSTM: dropout option"), proc.stderr
    assert "builder" not in proc.stderr and "torch/nn" not in proc.stderr


@pytest.mark.parametrize("rule", ["const1e39:0", "normal(0, 1e39):0", "uniform(-1e39, 1):0"])
def test_3_an_init_argument_beyond_the_dtype_is_refused(write_spec, run_cli, rule):
    spec = write_spec(f'input: [2, 4]\nmodel: [{{Linear: [4, 2]}}]\ninit: ["{rule}"]\n')
    result = _quick(run_cli, "validate", spec)
    assert result.code == 2 and f"{spec}:3:8: init[0]:" in result.err and "float32" in result.err, result.err
    result = _quick(run_cli, "init", spec)
    assert result.code == 2 and "its values would be inf" in result.err
    ok = write_spec('input: [2, 4]\nmodel: [{Linear: [4, 2]}]\ninit: ["const3e38:0"]\n', "ok.yaml")
    assert _quick(run_cli, "init", ok).code == 0


def _handwritten_lstm_flops(lstm, x):
    """FlopCounterMode on an LSTM written out by hand: per layer and step, x @ W_ih.T + h @ W_hh.T."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    steps, batch = x.shape[0], x.shape[1]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        inp = x
        for layer in range(lstm.num_layers):
            w_ih, w_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
            h = torch.zeros(batch, lstm.hidden_size)
            c = torch.zeros(batch, lstm.hidden_size)
            outs = []
            for t in range(steps):
                i, f, g, o = (inp[t] @ w_ih.T + h @ w_hh.T).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            inp = torch.stack(outs)
    return counter.get_total_flops()


def test_3_summary_counts_lstm_flops(run_cli, root):
    import json

    import torch

    result = _quick(run_cli, "build", root / "configs" / "lstm_lm.yaml", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    rnn = next(b for b in data["blocks"] if b["name"] == "rnn")
    lstm = _net(root, "lstm_lm.yaml").rnn
    want = _handwritten_lstm_flops(lstm, torch.zeros(8, 2, lstm.input_size))
    assert rnn["flops"] == want > 0
    decoder = next(b for b in data["blocks"] if b["name"] == "decoder")
    assert data["flops"] == rnn["flops"] + decoder["flops"]  # the total and the root include it


# --- 3c. calls that multiply through nested forwards are bounded before anything runs --------


def _nested_calls_spec(levels: int, calls: int) -> str:
    lines = ["input: [2, 4]", "blocks:", "  B0: {children: {l: {Linear: [4, 4]}}, forward: 'return l(x)'}"]
    for i in range(1, levels + 1):
        body = "\\n".join(["x = c(x)"] * calls + ["return x"])
        lines.append(f'  B{i}: {{children: {{c: {{use: B{i - 1}}}}}, forward: "{body}"}}')
    return "\n".join(lines + [f"model: [{{use: B{levels}}}]"]) + "\n"


def test_3c_nested_forward_calls_are_bounded(write_spec, run_cli):
    spec = write_spec(_nested_calls_spec(4, 1000))  # 10^12 calls
    for command in ("validate", "build", "run"):
        result = _quick(run_cli, command, spec)
        assert result.code == 2, result.err
        assert f"{spec}:5:" in result.err and "blocks.B2.forward" in result.err, result.err.splitlines()[0]
        assert "calls more than 20,000 modules" in result.err
    ok = write_spec(_nested_calls_spec(2, 90), "ok.yaml")  # 16,291 calls: checked and run
    assert _quick(run_cli, "validate", ok).code == 0


# --- 5. found by the new fuzz: a damaged .distcp escaped as DCP's CheckpointException ----------


def test_5_a_damaged_distcp_file_is_a_clear_error(tmp_path, run_cli):
    from test_hardening_dcp import _dcp_folder

    folder = _dcp_folder(tmp_path, run_cli)
    shard = sorted(folder.glob("*.distcp"))[0]
    data = shard.read_bytes()
    shard.write_bytes(bytes(16) + data[16:])  # the zip's first header zeroed
    for args in (("show", folder), ("load", folder), ("convert", folder, "-o", tmp_path / "out.safetensors")):
        result = _quick(run_cli, *args)  # was: torch's CheckpointException (a BaseException) and its traceback
        if args[0] != "show":  # show lists the metadata; reading values fails
            assert result.code == 2 and "cannot read the DCP checkpoint" in result.err, result.err
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("where", ["show", "load", "checkpoint", "convert", "input"])
def test_4_a_fifo_or_device_given_as_a_tensor_file_is_refused_not_waited_on(tmp_path, root, where):
    """A FIFO named as a checkpoint or an --input blocked the first read forever (found beside the long
    fuzz's FIFO shard); a device never ends. Both are refused before they are opened."""
    fifo = tmp_path / "net.safetensors"
    os.mkfifo(fifo)
    spec = str(root / "configs/mlp.yaml")
    args = {
        "show": ["show", str(fifo)],
        "load": ["load", str(fifo)],
        "checkpoint": ["run", spec, "--checkpoint", str(fifo)],
        "convert": ["convert", str(fifo), "-o", str(tmp_path / "out.safetensors")],
        "input": ["run", spec, "--input", str(fifo)],
    }[where]
    result = subprocess.run([sys.executable, "-m", "netcli", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "not a regular file" in result.stderr and "Traceback" not in result.stderr
    device = subprocess.run([sys.executable, "-m", "netcli", "show", "/dev/zero"], capture_output=True, text=True,
                            timeout=60)
    assert device.returncode == 2 and "not a regular file" in device.stderr


@pytest.mark.parametrize("layer", ["{LSTM: {input_size: 4, hidden_size: 4, num_layers: 9223372036854775808}}",
                                   "{GRU: [4, 4, 100000]}",
                                   "{TransformerEncoder: {encoder_layer: {TransformerEncoderLayer: [4, 2]}, "
                                   "num_layers: 1000000000}}"])
def test_11_layers_stacked_by_num_layers_count_toward_the_module_limit(write_spec, run_cli, layer):
    """Found by CI's fuzz (a mutated lstm_lm.yaml): `num_layers: 2**63` made validate build an LSTM on meta
    without end; the layers an RNN or a Transformer stacks now count toward MAX_MODULES before anything is built."""
    path = write_spec(f"input: [2, 3, 4]\nmodel:\n  - {layer}\n")
    start = time.perf_counter()
    result = run_cli("validate", path)
    assert result.code == 2 and "more than 10,000 modules" in result.err, result.err
    assert time.perf_counter() - start < 15
