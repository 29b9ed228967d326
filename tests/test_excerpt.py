"""Errors show the offending YAML line with a caret under the column, after the one-line message."""
from __future__ import annotations

from netcli.core.errors import Location, Problem
from netcli.cli.excerpt import excerpt


def test_error_shows_the_line_and_a_caret(run_cli, write_spec):
    path = write_spec("input: [2, 4]\nmodel:\n  - Linear: {in_features: 4, out_feature: 3}\n  - ReLU\n")
    result = run_cli("build", path)
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0] == (f"{path}:3:30: model[0].Linear: unknown argument 'out_feature' "
                        "(did you mean 'out_features'?)")
    assert lines[1] == "  3 |   - Linear: {in_features: 4, out_feature: 3}"
    assert lines[2] == "    |                              ^"
    assert lines[1][lines[2].index("^"):].startswith("out_feature")


def test_every_problem_gets_its_own_excerpt(run_cli, write_spec):
    path = write_spec("model:\n  - Lnear\n  - {Linear: [4, 8]}\n  -   Rlu\n")
    err = run_cli("build", path).err
    assert "  2 |   - Lnear\n    |     ^\n" in err
    assert "  4 |   -   Rlu\n    |       ^\n" in err


def test_no_excerpt_without_a_file_position(tmp_path):
    assert excerpt(Problem("bad", location=Location("--set x=1"))) is None
    assert excerpt(Problem("bad", location=Location(str(tmp_path / "gone.yaml"), 1, 1))) is None
    spec = tmp_path / "s.yaml"
    spec.write_text("a:\tb\n")
    assert excerpt(Problem("bad", location=Location(str(spec), 1, 4))) == ("  1 | a:      b", "    |         ^")
    assert excerpt(Problem("bad", location=Location(str(spec), 9, 1))) is None


def test_validate_shows_excerpts_and_json_keeps_structured_problems(run_cli, write_spec):
    path = write_spec("model:\n  - Lnear\n")
    result = run_cli("validate", path)
    assert result.code == 2
    assert result.err.splitlines()[:3] == [f"{path}:2:5: model[0]: unknown type 'Lnear' (did you mean 'Linear'?)",
                                           "  2 |   - Lnear", "    |     ^"]
    import json
    data = json.loads(run_cli("validate", path, "--json").out)
    assert data[0]["problems"] == [{"file": str(path), "line": 2, "column": 5, "path": "model[0]",
                                    "message": "unknown type 'Lnear'", "hint": "did you mean 'Linear'?"}]
