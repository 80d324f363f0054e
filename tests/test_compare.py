"""compare: two results directories, cell by cell, on the same test episodes (in-process, on digits)."""

import pytest

from siamese_bench import runner
from siamese_bench.cli import build_parser, main
from siamese_bench.compare import compare, match_columns
from siamese_bench.results import read_csv

SMOKE = ["run", "--preset", "smoke", "--train-pairs", "128", "--quiet", "--devices", "cpu"]


def _run(out, *extra):
    no_throughput = [] if "--throughput-only" in extra else ["--no-throughput"]
    argv = [*SMOKE, *no_throughput, "--out", str(out), *extra]
    runner.run(runner.config_from_args(build_parser().parse_args(argv)))
    return out


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("fp32"), "--episodes", "20")


def test_a_directory_against_itself_differs_nowhere(fp32):
    report, counts = compare(fp32, fp32)
    assert counts["compared"] == 4 and counts["b_higher"] == counts["b_lower"] == 0
    assert report.count("| +0.00 | [+0.00, +0.00] |") == 4


def test_a_dtype_that_differs_between_the_directories_is_what_is_compared(fp32, tmp_path, capsys):
    bf16 = _run(tmp_path / "bf16", "--episodes", "20", "--amp", "bf16", "--channels-last")
    a, b = read_csv(fp32 / "accuracy.csv"), read_csv(bf16 / "accuracy.csv")
    assert "dtype" not in match_columns(a, b) and "device" in match_columns(a, b)
    _, counts = compare(fp32, bf16)
    assert counts["compared"] == 4
    assert main(["compare", str(fp32), str(bf16)]) == 0
    out = capsys.readouterr().out
    by_key = {(r["head"], r["n_way"]): r for r in b}
    for r in a:  # every line shows both accuracies and B - A in points
        rb = by_key[r["head"], r["n_way"]]
        diff = 100 * (float(rb["accuracy"]) - float(r["accuracy"]))
        assert f"| cpu float32 | cpu bfloat16-amp | {100 * float(r['accuracy']):.2f} |" in out
        assert f"| {diff:+.2f} |" in out


def test_cells_scored_on_other_episodes_are_left_out_and_counted(fp32, tmp_path):
    other = _run(tmp_path / "other", "--episodes", "30")
    report, counts = compare(fp32, other)
    assert counts["compared"] == 0 and counts["other_episodes"] == 4
    assert "No cell of A and B was scored on the same episodes" in report


def test_a_missing_directory_is_a_clear_error(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nothing"), str(tmp_path)]) == 2
    assert "config.json not found; point at a results directory" in capsys.readouterr().err


def test_throughput_tables_are_compared_as_ratios(tmp_path):
    argv = ("--throughput-only", "--throughput-batch-sizes", "16")
    a = _run(tmp_path / "a", *argv)
    b = _run(tmp_path / "b", *argv, "--amp", "bf16", "--channels-last")
    report, counts = compare(a, a)
    assert counts == {"compared": 0, "throughput_rows": 2} and "## Accuracy" not in report
    assert report.count("| 1.00x | 1.00x | 1.00x |") == 2
    report, counts = compare(a, b)
    assert counts["throughput_rows"] == 2
    assert "| small-cnn+koch | 8 | 16 | cpu float32 | cpu bfloat16-amp |" in report
    with pytest.raises(ValueError, match="no finished accuracy cells or throughput rows in common"):
        compare(a, _run(tmp_path / "acc", "--episodes", "20"))
