"""The README's generated results section: a throughput-only folder shows its table, without an accuracy one."""

from siamese_bench import readme_table, runner
from siamese_bench.cli import build_parser


def test_a_throughput_only_folder_is_listed_with_its_table_alone(tmp_path):
    out = tmp_path / "results" / "throughput-cpu"
    args = build_parser().parse_args(
        ["run", "--preset", "smoke", "--out", str(out), "--quiet", "--devices", "cpu", "--throughput-only"]
    )
    runner.run(runner.config_from_args(args))
    text = readme_table.section(tmp_path / "results")
    assert "### `throughput-cpu` (preset `smoke`)" in text
    assert "throughput only (`run --throughput-only`)" in text
    assert "| backbone | head | device | dtype | image | batch |" in text
    assert "| protocol | backbone | head |" not in text  # no (empty) accuracy table
    assert "<details>" not in text  # the throughput table is the folder's result, not folded away
