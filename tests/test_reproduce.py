"""`reproduce` on a small subset of the committed quick preset, and the README's generated results table."""

import subprocess
import sys
from pathlib import Path

import pytest

from siamese_bench import readme_table
from siamese_bench.reproduce import compare, load_config, restrict
from siamese_bench.results import ACCURACY_COLUMNS, CELL_KEY, key_of, read_csv, write_csv

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "results" / "quick"


def test_committed_quick_config_round_trips():
    config = load_config(QUICK)
    assert config.preset == "quick" and len(config.grids) == 2
    sub = restrict(config, protocols={"mnist-heldout"}, heads={"contrastive"})
    assert [g.heads for g in sub.grids] == [("contrastive",)]
    with pytest.raises(ValueError, match="leaves no cell"):
        restrict(config, heads={"nope"})


def test_reproduce_uses_the_recorded_thread_count():
    """CPU numerics depend on torch's thread count: the committed quick run (made before `--threads` existed)
    recorded 2 threads in its environment, and a reproduction must use 2 on any machine."""
    import json

    doc = json.loads((QUICK / "config.json").read_text())
    assert "threads" not in doc and doc["environment"]["cpu_threads"] == 2
    assert load_config(QUICK).threads == 2


def test_compare_flags_a_cell_outside_the_ci_and_changed_episodes(tmp_path):
    rows = [r for r in read_csv(QUICK / "accuracy.csv") if r["status"] == "ok"][:2]
    write_csv(tmp_path / "accuracy.csv", rows, ACCURACY_COLUMNS)
    table, ok = compare(QUICK, tmp_path, None)
    assert not ok  # the cells missing from the new run cannot be reproduced
    keys = {(r["protocol"], r["head"], r["n_way"]) for r in rows}
    ok_rows = [t for t in table if t[-1] == "identical"]
    assert len(ok_rows) == len(keys)
    moved = [dict(r, accuracy=str(float(r["accuracy"]) + 2 * float(r["ci95"]))) for r in rows]
    moved[1]["episodes_hash"] = "0" * 16
    write_csv(tmp_path / "accuracy.csv", moved, ACCURACY_COLUMNS)
    verdicts = [t[-1] for t in compare(QUICK, tmp_path, None)[0]]
    assert "FAIL (2.0 CIs off)" in verdicts and "FAIL (episodes differ)" in verdicts
    cells = {key_of(r, CELL_KEY) for r in moved}
    verdicts = [t[-1] for t in compare(QUICK, tmp_path, cells, tolerance=2.5)[0]]
    assert verdicts == ["ok", "FAIL (episodes differ)"]  # a tolerance never excuses other episodes
    nudged = [dict(r, accuracy=str(float(r["accuracy"]) - 0.5 * float(r["ci95"]))) for r in rows]
    write_csv(tmp_path / "accuracy.csv", nudged, ACCURACY_COLUMNS)
    table, ok = compare(QUICK, tmp_path, cells)
    assert ok and [t[-1] for t in table] == ["ok", "ok"]


def test_reproduce_refuses_a_negative_tolerance(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "siamese_bench", "reproduce", str(QUICK), "--tolerance", "-1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "--tolerance" in r.stderr and "Traceback" not in r.stderr


def test_reproduce_of_a_throughput_only_folder_needs_the_throughput(tmp_path):
    from siamese_bench import runner
    from siamese_bench.cli import build_parser

    argv = ["run", "--preset", "smoke", "--out", str(tmp_path), "--quiet", "--devices", "cpu"]
    runner.run(runner.config_from_args(build_parser().parse_args([*argv, "--throughput-only"])))
    r = subprocess.run(
        [sys.executable, "-m", "siamese_bench", "reproduce", str(tmp_path), "--no-throughput"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "holds a throughput table only" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "siamese_bench",
            "reproduce",
            str(tmp_path),
            "--quiet",
            "--out",
            str(tmp_path / "new"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "| small-cnn+koch cpu b64 |" in r.stdout and "throughput re-measured" in r.stdout
    assert "| cell | recorded % |" not in r.stdout  # no (empty) accuracy comparison


@pytest.mark.realdata
def test_reproduce_a_quick_subset_on_cpu(real_data_dir, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "siamese_bench",
            "reproduce",
            str(QUICK),
            "--protocols",
            "mnist-heldout",
            "--heads",
            "contrastive",
            "--devices",
            "cpu",
            "--no-throughput",
            "--quiet",
            "--out",
            str(tmp_path),
            "--data-dir",
            str(real_data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all cells reproduced" in r.stdout
    old = next(
        x
        for x in read_csv(QUICK / "accuracy.csv")
        if x["head"] == "contrastive" and x["protocol"] == "mnist-heldout"
    )
    (new,) = read_csv(tmp_path / "accuracy.csv")
    assert new["episodes_hash"] == old["episodes_hash"]  # bit-identical test episodes
    assert abs(float(new["accuracy"]) - float(old["accuracy"])) <= float(old["ci95"])


def test_readme_results_section_matches_the_csvs():
    readme = (REPO / "README.md").read_text()
    assert readme_table.render(readme) == readme, "run `python -m siamese_bench readme` to regenerate it"


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (REPO / "results").glob("*/summary.md")))
def test_committed_summary_is_what_summarize_generates(folder, tmp_path):
    """summary.md is generated, never edited: regenerating it from the committed CSVs gives the same text."""
    import shutil

    from siamese_bench.protocols.published import published_lookup
    from siamese_bench.summary import write_summary

    src = REPO / "results" / folder
    shutil.copytree(src, tmp_path / folder, ignore=shutil.ignore_patterns("episodes", "*.png", "summary.md"))
    new = write_summary(tmp_path / folder, published_lookup()).read_text()
    assert new == (src / "summary.md").read_text(), (
        f"run `python -m siamese_bench summarize results/{folder}`"
    )
