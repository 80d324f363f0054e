"""The README's generated results section: a throughput-only folder shows its table, without an accuracy one."""

from siamese_bench import readme_table, runner
from siamese_bench.cli import build_parser


def _run(out, *extra):
    argv = ["run", "--preset", "smoke", "--out", str(out), "--quiet", "--devices", "cpu", "--throughput-only"]
    runner.run(runner.config_from_args(build_parser().parse_args([*argv, *extra])))


def test_a_throughput_only_folder_is_listed_with_its_table_alone(tmp_path):
    out = tmp_path / "results" / "throughput-cpu"
    _run(out, "--heads", "koch")
    _run(out, "--backbones", "pixels", "--heads", "l2")  # a second run into the folder: both are listed
    text = readme_table.section(tmp_path / "results")
    assert "### `throughput-cpu` (throughput only)" in text
    assert "throughput only (`run --throughput-only`)" in text
    assert "    - digits-heldout x small-cnn x koch" in text and "    - digits-heldout x pixels x l2" in text
    assert "| small-cnn | koch | cpu |" in text and "| pixels | l2 | cpu |" in text
    assert "| protocol | backbone | head |" not in text  # no (empty) accuracy table
    assert "<details>" not in text  # the throughput table is the folder's result, not folded away


def test_private_folders_are_left_out(tmp_path):
    """Runs on your own images and the offline smoke preset's output are not results the README lists."""
    for name in ("smoke", "folder-mine", "csv-labels", "throughput-cpu"):
        _run(tmp_path / "results" / name, "--heads", "koch")
    text = readme_table.section(tmp_path / "results")
    assert "### `throughput-cpu`" in text
    assert "`smoke`" not in text and "folder-mine" not in text and "csv-labels" not in text
