"""The README's generated results section: a throughput-only folder shows its table, without an accuracy one."""

import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from siamese_bench import readme_table, runner
from siamese_bench.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


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
    for name in ("mine", "mine-gpu"):  # the README's `--out results/mine`: your own measurements
        shutil.copytree(tmp_path / "results" / "throughput-cpu", tmp_path / "results" / name)
    text = readme_table.section(tmp_path / "results")
    assert "### `throughput-cpu`" in text
    assert "`smoke`" not in text and "folder-mine" not in text and "csv-labels" not in text
    assert "`mine`" not in text and "mine-gpu" not in text


def test_the_private_folders_are_git_ignored():
    """What `readme` leaves out is what git ignores, so following the README's `--out results/mine` leaves
    `git status` and `readme --check` clean."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a checkout")
    names = ["smoke", "mine", *(f"{p}x" for p in readme_table.PRIVATE_PREFIXES)]
    for name in names:
        assert name in readme_table.PRIVATE_NAMES or name.startswith(readme_table.PRIVATE_PREFIXES)
    paths = [f"results/{name}/accuracy.csv" for name in names]
    r = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert sorted(r.stdout.split()) == sorted(paths), r.stderr
    assert subprocess.run(["git", "check-ignore", "results/quick/accuracy.csv"], cwd=REPO).returncode == 1


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
    (tmp_path / "pyproject.toml").write_text("")  # a checkout, with no results folder yet
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(readme_table, "REPO", tmp_path)  # its results/ too, not only its README
    assert readme_table.command(SimpleNamespace(check=True)) == 1
    assert "out of date" in capsys.readouterr().out
    assert (tmp_path / "README.md").read_text() == stale


def test_an_installed_copy_is_told_that_readme_needs_a_checkout(tmp_path, monkeypatch):
    """Installed (`pip install .`), the package sits in site-packages: readme said "No such file or
    directory: .../site-packages/README.md"; it now says what it needs."""
    from siamese_bench.commands import UserError

    monkeypatch.setattr(readme_table, "REPO", tmp_path / "site-packages")
    with pytest.raises(UserError, match="not a checkout; run it in a clone"):
        readme_table.command(SimpleNamespace(check=True))


def _folder(path, config):
    """A results folder written here: one finished cell in accuracy.csv, and `config` as config.json."""
    from siamese_bench.results import ACCURACY_COLUMNS, write_csv

    row = dict(
        protocol="vinyals", backbone="conv4", head="koch", device="cpu", dtype="float32", n_way=5, k_shot=1
    )
    path.mkdir(parents=True)
    write_csv(path / "accuracy.csv", [{**row, "seed": 0, "accuracy": 0.8, "status": "ok"}], ACCURACY_COLUMNS)
    (path / "config.json").write_text(config)
    return path


def test_rows_and_config_json_are_checked_as_summarize_checks_them(tmp_path):
    """readme read the CSVs unchecked (a hand-edited accuracy `abc` showed as "–") and named no file for a
    config.json cut short ("Expecting value: line 1 column 2")."""
    folder = _folder(tmp_path / "results" / "quick", '{"environment": {"gpus": []}}')
    assert "| cpu | 5-way 1-shot | 80.0 |" in readme_table.section(tmp_path / "results")
    text = (folder / "accuracy.csv").read_text()
    (folder / "accuracy.csv").write_text(text.replace(",0.8,", ",abc,"))
    with pytest.raises(
        ValueError, match=f"{folder / 'accuracy.csv'} line 2: accuracy 'abc' of a finished cell"
    ):
        readme_table.section(tmp_path / "results")
    (folder / "accuracy.csv").write_text(text + text.splitlines()[1] + "\n")  # a row twice
    with pytest.raises(ValueError, match=f"{folder / 'accuracy.csv'} line 3: the same key as line 2"):
        readme_table.section(tmp_path / "results")
    (folder / "accuracy.csv").write_text(text)
    for config, says in (
        ('{"environment": {', "cannot be read (Expecting"),
        ("[]", "cannot be read (a JSON list, not an object)"),
        ('{"environment": "x"}', "has a field of another shape than `run` writes"),
    ):
        (folder / "config.json").write_text(config)
        with pytest.raises(ValueError, match=f"{folder / 'config.json'} {re.escape(says)}.*restore it"):
            readme_table.section(tmp_path / "results")


def test_gpus_are_unknown_without_a_recorded_environment(tmp_path):
    _folder(tmp_path / "results" / "quick", "{}")
    text = readme_table.section(tmp_path / "results")
    assert "? (? threads), GPUs: ?; wall time" in text and "no GPU" not in text
