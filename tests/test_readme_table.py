"""The README's generated results section: a throughput-only folder shows its table, without an accuracy one."""

from pathlib import Path
from types import SimpleNamespace

import pytest

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


def test_results_folders_are_ordered_quick_standard_paper_then_by_name():
    names = ["zeta", "paper", "quick-cuda", "standard", "alpha", "quick", "paper-cuda"]
    got = [p.name for p in sorted((Path(n) for n in names), key=readme_table._order)]
    assert got == ["quick", "quick-cuda", "standard", "paper", "paper-cuda", "alpha", "zeta"]


def test_render_needs_both_markers():
    with pytest.raises(ValueError, match="lacks the markers"):
        readme_table.render(f"text\n{readme_table.BEGIN}\nno end marker\n")


def test_check_fails_on_a_stale_section_and_writes_nothing(tmp_path, monkeypatch, capsys):
    stale = f"intro\n{readme_table.BEGIN}\nold numbers\n{readme_table.END}\n"
    (tmp_path / "README.md").write_text(stale)
    monkeypatch.setattr(readme_table, "REPO", tmp_path)
    assert readme_table.command(SimpleNamespace(check=True)) == 1
    assert "out of date" in capsys.readouterr().out
    assert (tmp_path / "README.md").read_text() == stale
