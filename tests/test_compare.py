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


def _directory(out, accuracy_rows, throughput_rows=()):
    """A results directory written here: config.json, the two CSVs in the given row order, and per-episode
    correctness files (each accuracy row's "correct": an (episodes, queries) bool list)."""
    import json

    import torch

    from siamese_bench.results import ACCURACY_COLUMNS, THROUGHPUT_COLUMNS, write_csv
    from siamese_bench.summary import per_episode_path

    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({}))
    base = dict(protocol="p", backbone="b", head="h", device="cpu", dtype="float32", n_way=5, k_shot=1)
    rows = []
    for r in accuracy_rows:
        row = {**base, "episodes_hash": "e", "status": "ok", "git_hash": "g", **r}
        rows.append(row)
        if "correct" not in row:  # an error row: no correctness file
            continue
        correct = torch.tensor(row.pop("correct"))
        row["accuracy"], row["episodes"] = float(correct.float().mean()), correct.shape[0]
        path = per_episode_path(out, row)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(correct, path)
    write_csv(out / "accuracy.csv", rows, ACCURACY_COLUMNS)
    thr = [
        {
            "backbone": "b",
            "head": "h",
            "device": "cpu",
            "dtype": "float32",
            "image_size": 8,
            "batch_size": 16,
            "status": "ok",
            "git_hash": "g",
            **t,
        }
        for t in throughput_rows
    ]
    write_csv(out / "throughput.csv", thr, THROUGHPUT_COLUMNS)
    return out


def test_differences_counts_and_ratios_are_b_against_a_cell_by_cell(tmp_path):
    """Known per-episode correctness: each matched cell's B - A, the mean over the compared cells, the CI
    counts, seeds and dtypes kept apart, and throughput as B / A."""
    yes, no = [[True] * 5] * 20, [[False] * 5] * 20
    mixed, flipped = [[i % 2 == 0] * 5 for i in range(20)], [[i % 2 == 1] * 5 for i in range(20)]
    a = _directory(
        tmp_path / "a",
        [
            {"seed": 0, "correct": no},
            {"seed": 1, "correct": yes},
            {"seed": 2, "correct": no},
            {"seed": 3, "correct": no},  # not in B: not compared
            {"seed": 4, "correct": mixed},
            {"seed": 5, "status": "error"},  # failed in both: not a cell to compare
        ],
        [{"train_pairs_per_s": 100, "eval_images_per_s": 0, "eval_episodes_per_s": 50}],
    )
    b = _directory(
        tmp_path / "b",
        [
            {"seed": 1, "correct": no, "dtype": "bfloat16-amp"},  # first: B holds two dtypes
            {"seed": 0, "correct": yes},
            {"seed": 1, "correct": no},
            {"seed": 2, "correct": yes},
            {"seed": 4, "correct": flipped},
            {"seed": 5, "status": "error"},
            {"seed": 0, "correct": no, "dtype": "bfloat16-amp"},  # last: never paired with A's float32 cells
        ],
        [{"train_pairs_per_s": 200, "eval_images_per_s": 7, "eval_episodes_per_s": 25}],
    )
    report, counts = compare(a, b, n_boot=200)
    assert counts["compared"] == 4 and counts["b_higher"] == 2 and counts["b_lower"] == 1
    for seed, diff in ((0, "+100.00"), (1, "-100.00"), (2, "+100.00"), (4, "+0.00")):
        assert f"| 5-way 1-shot | {seed} |" in report and f"| {diff} |" in report
    line = {s: next(x for x in report.splitlines() if f"| 5-way 1-shot | {s} |" in x) for s in (0, 1, 2, 4)}
    assert "| 0.00 | 100.00 | +100.00 |" in line[0] and "| 100.00 | 0.00 | -100.00 |" in line[1]
    assert "mean B − A +25.00 points" in report  # (100 - 100 + 100 + 0) / 4 compared cells
    assert "left out" not in report and counts["missing_per_episode"] == 0
    assert "| 2.00x | – | 0.50x |" in report  # B / A; A's eval images/s is 0: no ratio


def test_a_cell_with_one_side_s_per_episode_file_missing_is_counted_not_compared(tmp_path):
    yes, no = [[True] * 5] * 4, [[False] * 5] * 4
    a = _directory(tmp_path / "a", [{"seed": 0, "correct": no}, {"seed": 1, "correct": no}])
    b = _directory(tmp_path / "b", [{"seed": 0, "correct": yes}, {"seed": 1, "correct": yes}])
    from siamese_bench.summary import per_episode_path

    per_episode_path(b, {**read_csv(b / "accuracy.csv")[1]}).unlink()
    report, counts = compare(a, b, n_boot=50)
    assert counts["compared"] == 1 and counts["missing_per_episode"] == 1
    assert "1 matched cell(s) left out: per_episode/*.pt missing on one side." in report


def test_a_one_episode_cell_is_counted_and_left_out_not_an_error(tmp_path):
    """A hand-made folder's cell of one episode has no interval over episodes: compare once stopped with the
    bootstrap's ValueError; it now leaves the cell out and says so (as the summary's comparison does)."""
    a = _directory(
        tmp_path / "a", [{"seed": 0, "correct": [[False] * 5]}, {"seed": 1, "correct": [[True]] * 3}]
    )
    b = _directory(
        tmp_path / "b", [{"seed": 0, "correct": [[True] * 5]}, {"seed": 1, "correct": [[False]] * 3}]
    )
    report, counts = compare(a, b, n_boot=50)
    assert counts["compared"] == 1 and counts["single_episode"] == 1
    assert "1 matched cell(s) left out: one test episode, no interval." in report


def test_no_common_cell_or_no_per_episode_file_is_said_as_such(tmp_path):
    """Directories without a cell in common, or whose matched cells lack per_episode/*.pt, were both reported
    as "No cell of A and B was scored on the same episodes", which sends one looking for an episode mismatch."""
    no = [[False] * 5] * 4
    a = _directory(tmp_path / "a", [{"seed": 0, "correct": no}])
    b = _directory(tmp_path / "b", [{"seed": 1, "correct": no}])
    report, counts = compare(a, b, n_boot=50)
    assert counts["compared"] == 0 and "No cell of A has one in B (matched on protocol" in report
    c = _directory(tmp_path / "c", [{"seed": 0, "correct": no}])
    from siamese_bench.summary import per_episode_path

    per_episode_path(c, read_csv(c / "accuracy.csv")[0]).unlink()
    report, counts = compare(a, c, n_boot=50)
    assert counts["missing_per_episode"] == 1 and "scored on the same episodes" not in report
    assert "1 matched cell(s) left out: per_episode/*.pt missing on one side." in report


def test_a_hand_edited_table_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    """A results CSV with a column deleted by hand stopped compare with KeyError and a traceback; it is read
    as `run` and `summarize` read it: exit 2 with a line naming the file and what is wrong."""
    no = [[False] * 5] * 4
    a = _directory(tmp_path / "a", [{"seed": 0, "correct": no}])
    b = _directory(tmp_path / "b", [{"seed": 0, "correct": no}])
    lines = [line.split(",") for line in (b / "accuracy.csv").read_text().splitlines()]
    gone = lines[0].index("status")
    (b / "accuracy.csv").write_text("".join(",".join(x[:gone] + x[gone + 1 :]) + "\n" for x in lines))
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert (
        "accuracy.csv has a different schema (missing columns ['status'])" in err and "Traceback" not in err
    )


def test_a_row_copied_twice_is_an_error_not_a_cell_counted_twice(tmp_path, capsys):
    """`tail -1 B/accuracy.csv >> B/accuracy.csv` made compare report 3 cells for 2."""
    no = [[False] * 5] * 4
    a = _directory(tmp_path / "a", [{"seed": 0, "correct": no}, {"seed": 1, "correct": no}])
    b = _directory(tmp_path / "b", [{"seed": 0, "correct": no}, {"seed": 1, "correct": no}])
    text = (b / "accuracy.csv").read_text()
    (b / "accuracy.csv").write_text(text + text.splitlines()[-1] + "\n")
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert f"{b / 'accuracy.csv'} line 4: the same key as line 3" in err and "Traceback" not in err


def test_a_per_episode_file_cut_short_is_a_clear_error(tmp_path, capsys):
    """A truncated per_episode/*.pt stopped compare with torch's "PytorchStreamReader failed reading zip
    archive" and a traceback; it is named, with the way to replace it."""
    no = [[False] * 5] * 4
    a = _directory(tmp_path / "a", [{"seed": 0, "correct": no}])
    b = _directory(tmp_path / "b", [{"seed": 0, "correct": no}])
    from siamese_bench.summary import per_episode_path

    path = per_episode_path(b, read_csv(b / "accuracy.csv")[0])
    path.write_bytes(path.read_bytes()[:100])
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: not a readable per-episode correctness file" in err
    assert "delete it and re-run its cell" in err and "Traceback" not in err
