"""The summary's costs (issue 17): FLOPs/MACs by FlopCounterMode per block, memory, tied and frozen parameters."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from netcli.app.cost import count_network, example_inputs, measure
from netcli.app.summary import fold, summarize
from netcli.app.summary_table import parse_columns
from netcli.builder.validate import load_spec
from netcli.core.errors import NetcliError
from netcli.init.engine import build_model

TRANSFORMER = """\
input: [2, 16, 32]
model:
  - {TransformerEncoderLayer: {d_model: 32, nhead: 4, dim_feedforward: 64, batch_first: true}}
  - {TransformerEncoderLayer: {d_model: 32, nhead: 4, dim_feedforward: 64, batch_first: true}}
  - {Linear: [32, 10]}
"""

# 4 -> 8, then one 8 -> 8 layer inside two different blocks (nested ties: torchinfo 1.8 counts it twice)
NESTED_TIES = """\
input: [2, 4]
blocks:
  shared: {Linear: [8, 8]}
model:
  - Linear: [4, 8]
  - [{ref: shared}, ReLU]
  - [{ref: shared}, ReLU]
  - Linear: [8, 1]
"""


def summary_of(path, *, backward=False, sets=()):
    loaded = load_spec(str(path), sets)
    built = build_model(loaded, seed=0)
    shapes, note, cost = count_network(loaded, built, backward=backward)
    return summarize(
        built.net, shapes, note, shapes.get(""), built.inferred, cost=cost, input_shape=loaded.spec.input
    ), built


def rows(summary):
    return {r.name: r for r in summary.rows}


# --- FLOPs --------------------------------------------------------------------


def test_linear_stack_is_two_m_n_k(write_spec):
    """Linear(k, n) on a batch of m: one addmm of m*k*n multiply-adds; backward: grad input and grad weight."""
    sizes, m = [20, 64, 32, 10], 5
    spec = f"input: [{m}, {sizes[0]}]\nmodel:\n" + "".join(
        f"  - Linear: [{k}, {n}]\n  - ReLU\n" for k, n in itertools.pairwise(sizes)
    )
    summary, _ = summary_of(write_spec(spec), backward=True)
    layers = list(itertools.pairwise(sizes))
    assert summary.flops == sum(2 * m * k * n for k, n in layers)
    assert summary.macs == sum(m * k * n for k, n in layers)
    by_name = rows(summary)
    for i, (k, n) in enumerate(layers):
        assert by_name[str(2 * i)].flops == 2 * m * k * n
        assert by_name[str(2 * i + 1)].flops == 0  # ReLU: elementwise ops count nothing
    # the first layer's input takes no gradient: only its weight's (2mkn); the others: input and weight
    assert by_name["0"].backward_flops == 2 * m * 20 * 64
    assert summary.backward_flops == 2 * m * 20 * 64 + sum(4 * m * k * n for k, n in layers[1:])


def flop_counter_totals(net, x) -> tuple[int, int]:
    """FlopCounterMode's own totals for one forward, and for a forward and backward."""
    with FlopCounterMode(display=False) as forward:
        net(x)
    with FlopCounterMode(display=False) as both:
        net(x).sum().backward()
    return forward.get_total_flops(), both.get_total_flops()


def test_transformer_totals_equal_flop_counter_modes_own(write_spec):
    path = write_spec(TRANSFORMER)
    summary, built = summary_of(path, backward=True)
    forward, both = flop_counter_totals(built.net, torch.zeros(2, 16, 32))
    assert summary.flops == forward > 0
    assert summary.flops + summary.backward_flops == both
    # attention's matmuls are counted, not only the weight-bearing layers
    assert "aten.bmm" in summary.flops_by_op or any("attention" in op for op in summary.flops_by_op)
    by_name = rows(summary)
    assert by_name[""].flops == summary.flops
    assert sum(by_name[str(i)].flops for i in range(3)) == summary.flops
    assert by_name["0"].flops == sum(by_name[f"0.{c}"].flops for c in ("self_attn", "linear1", "linear2"))


def test_counting_moves_no_rng_and_leaves_no_grad(write_spec):
    summary_path = write_spec(TRANSFORMER)
    loaded = load_spec(str(summary_path))
    built = build_model(loaded, seed=0)
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    count_network(loaded, built, backward=True)
    assert torch.equal(torch.rand(3), expected)
    assert all(p.grad is None for p in built.net.parameters())


def test_a_module_called_twice_counts_at_each_place(root):
    """shared.yaml's one Linear(8, 8) runs at 2 and at 4: each row its own call, the total both."""
    summary, _ = summary_of(root / "configs/shared.yaml")
    by_name = rows(summary)
    assert by_name["2"].flops == by_name["4"].flops == 2 * 2 * 8 * 8
    assert summary.flops == 2 * 2 * (4 * 8 + 8 * 8 + 8 * 8 + 8 * 1)


def test_data_dependent_block_is_counted_on_real_values(root):
    """chimera's FixedHiddenMLP has a `while` on a tensor: meta cannot run it; the built network can."""
    summary, _ = summary_of(root / "configs/chimera.yaml")
    assert summary.flops and "data-dependent" in summary.shape_note
    by_name = rows(summary)
    assert by_name["2.linear"].flops == 2 * (2 * 2 * 20 * 20)  # the reused linear layer, called twice


def test_no_input_shape_counts_nothing(write_spec):
    summary, _ = summary_of(write_spec("model: [{Linear: [4, 8]}]\n"))
    assert summary.flops is None and all(r.flops is None for r in summary.rows)
    assert summary.as_json()["flops"] is None


# --- parameters ------------------------------------------------------------------


def test_tied_counted_once_where_torchinfo_counts_twice(write_spec):
    torchinfo = pytest.importorskip("torchinfo")
    summary, built = summary_of(write_spec(NESTED_TIES))
    unique = sum(p.numel() for p in built.net.parameters())
    assert summary.total_params == unique == 4 * 8 + 8 + 8 * 8 + 8 + 8 + 1 == 121
    theirs = torchinfo.summary(built.net, input_size=(2, 4), verbose=0)
    assert theirs.total_params == 121 + 2 * 72  # torchinfo 1.8 counts the tied layer's 72 three times
    by_name = rows(summary)
    assert by_name["1"].tied_with == ["2.0"] and by_name["2.0"].tied_with == ["1.0"]
    assert summary.total_bytes == 121 * 4
    assert ["1.0.weight", "2.0.weight"] in summary.tied


def test_totals_are_the_sum_over_unique_parameters(root):
    summary, built = summary_of(root / "configs/shared.yaml")
    unique = {id(p): p for p in built.net.parameters()}
    assert summary.total_params == sum(p.numel() for p in unique.values()) == 121
    assert sum(r.params for r in summary.rows if r.depth == 1) == 121 + 72  # the rows show the tie twice
    assert summary.rows[0].params == 121


def test_frozen_block_is_not_trainable(root):
    summary, _ = summary_of(root / "configs/frozen.yaml", backward=True)
    by_name = rows(summary)
    assert by_name["0"].trainable == 0 and by_name["0"].params == 20 * 256 + 256
    assert by_name["2"].trainable == by_name["2"].params == 256 * 10 + 10
    assert summary.frozen_params == 20 * 256 + 256
    assert summary.trainable_params == summary.total_params - summary.frozen_params
    assert by_name["0"].backward_flops == 0  # no weight gradient, and its input takes none


def test_memory_columns(root):
    summary, _ = summary_of(root / "configs/mlp.yaml")
    by_name = rows(summary)
    assert by_name["0"].param_bytes == (20 * 256 + 256) * 4
    assert by_name["0"].activation_bytes == 2 * 256 * 4 and by_name["2"].activation_bytes == 2 * 10 * 4
    assert summary.activation_bytes == (2 * 256 + 2 * 256 + 2 * 10) * 4  # the leaves' outputs


# --- folding and columns ------------------------------------------------------------


def test_depth_folds_rows_and_keeps_totals(root):
    summary, _ = summary_of(root / "configs/rgnet.yaml")
    folded = fold(summary, 1)
    assert {r.depth for r in folded.rows} == {0, 1}
    assert folded.total_params == summary.total_params and folded.flops == summary.flops
    assert folded.rows[1].flops == sum(r.flops for r in summary.rows if r.name.startswith("0.") and r.depth == 2)


def test_columns_parse():
    assert parse_columns("shape, params,FLOPs") == ["shape", "params", "flops"]
    assert parse_columns("all")[0] == "shape"
    with pytest.raises(NetcliError, match="unknown column 'flop2'.*did you mean 'flops'"):
        parse_columns("flop2")


# --- example inputs -------------------------------------------------------------


def test_example_inputs_forms():
    (x,) = example_inputs([2, 4], "meta")
    assert x.shape == (2, 4) and x.is_meta
    (t,) = example_inputs({"shape": [2, 16], "dtype": "int64", "high": 100}, "meta")
    assert t.dtype == torch.int64
    a, b = example_inputs([{"shape": [2, 3]}, {"shape": [2], "dtype": "int64"}], "cpu")
    assert a.shape == (2, 3) and b.dtype == torch.int64


def test_measure_reports_the_failing_block_instead_of_raising():
    net = nn.Sequential(nn.Linear(4, 8), nn.Linear(5, 1))
    cost = measure(net, (torch.zeros(2, 4),))
    assert cost.error is not None and cost.blocks["0"].flops == 2 * 2 * 4 * 8


# --- the resnet18 spec (custom blocks) ------------------------------------------------


def _resnet18(root):
    return root / "configs/resnet18.yaml"


def test_resnet18_totals_equal_flop_counter_mode(root):
    path = _resnet18(root)
    summary, built = summary_of(path, sets=["input=[1, 3, 224, 224]"])
    with FlopCounterMode(display=False) as counter:
        built.net(torch.zeros(1, 3, 224, 224))
    assert summary.flops == counter.get_total_flops()
    assert summary.macs == pytest.approx(1.82e9, rel=0.01)  # torchvision's 1.81 GMACs, plus the fc layer
    assert summary.total_params == 11_689_512


# --- any size, on meta --------------------------------------------------------------

BIG = """\
# about 70B parameters: 116 layers of (8192 -> 28672 -> 8192, two 8192 x 8192), a 32000-way head
input: [1, 2048, 8192]
blocks:
  layer:
    - {Linear: {in_features: 8192, out_features: 28672, bias: false}}
    - SiLU
    - {Linear: {in_features: 28672, out_features: 8192, bias: false}}
    - {Linear: {in_features: 8192, out_features: 8192, bias: false}}
    - {Linear: {in_features: 8192, out_features: 8192, bias: false}}
    - {LayerNorm: 8192}
model:
  - {use: layer, repeat: 116}
  - {Linear: [8192, 32000, false]}
"""


@pytest.mark.slow
def test_seventy_billion_parameters_summarize_in_seconds_under_1gb(write_spec):
    path = write_spec(BIG)
    script = textwrap.dedent(f"""
        import sys, time
        start = time.perf_counter()
        from netcli.cli.script import main
        sys.argv = ["netcli", "build", {str(path)!r}, "--device", "meta", "--backward", "--json"]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        # VmHWM is this process's own peak. ru_maxrss is not: Linux folds the parent's (pytest's) peak into it at exec.
        peak_kib = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
        print(time.perf_counter() - start, peak_kib, file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    seconds, max_rss_kib = result.stderr.split()[-2:]
    data = json.loads(result.stdout)
    params = 116 * (2 * 8192 * 28672 + 2 * 8192 * 8192 + 2 * 8192) + 8192 * 32000
    assert data["total_params"] == params > 70e9
    assert data["flops"] == 2 * 2048 * (params - 116 * 2 * 8192)  # every weight multiplies every token
    assert float(seconds) < 30 and int(max_rss_kib) < 1 << 20, (seconds, max_rss_kib)  # VmHWM is in KiB


def test_a_run_that_stops_on_meta_gives_lower_bounds(root, run_cli):
    """On meta nothing has values: chimera's `while` stops the run; what ran before it is counted, marked partial."""
    data = json.loads(run_cli("build", root / "configs/chimera.yaml", "--device", "meta", "--json").out)
    assert data["partial"] and data["flops"] > 0
    by_name = {b["name"]: b for b in data["blocks"]}
    assert by_name["2"]["partial"] and not by_name["1"]["partial"]
    assert by_name["1"]["flops"] == 2 * 2 * 16 * 20
    text = run_cli("build", root / "configs/chimera.yaml", "--device", "meta").out
    assert "compute: at least" in text and "≥" in text


def test_cli_depth_columns_backward(root, run_cli):
    text = run_cli("build", root / "configs/rgnet.yaml", "--depth", "1", "--columns", "params,flops").out
    header = text.splitlines()[1].split()
    assert header == ["block", "params", "FLOPs"]
    assert "block 0" not in text and "├─ 0: Sequential" in text
    data = json.loads(run_cli("build", root / "configs/rgnet.yaml", "--depth", "1", "--backward", "--json").out)
    assert {b["depth"] for b in data["blocks"]} == {0, 1} and data["backward_flops"] > 0
    assert "FLOPs (fwd+bwd)" in run_cli("build", root / "configs/rgnet.yaml", "--backward").out
    bad = run_cli("build", root / "configs/rgnet.yaml", "--columns", "shape,flps")
    assert bad.code == 2 and bad.err.startswith("--columns: unknown column 'flps' (did you mean 'flops'?)")
    assert run_cli("build", root / "configs/rgnet.yaml", "--depth", "-1").code == 2


def test_transformer_encoder_config_totals_equal_flop_counter_mode(root):
    """configs/transformer_encoder.yaml (token ids in, a custom block's forward with mean): the same totals."""
    path = root / "configs/transformer_encoder.yaml"
    summary, built = summary_of(path, backward=True)
    forward, both = flop_counter_totals(built.net, torch.zeros(2, 16, dtype=torch.int64))
    assert summary.flops == forward > 0
    assert summary.flops + summary.backward_flops == both
