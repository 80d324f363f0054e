"""`reproduce` on a small subset of the committed quick preset, and the README's generated results table."""

import json
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
    table, ok = compare(QUICK, tmp_path, cells)  # only the cells the new run has: each verdict counts
    assert [t[-1] for t in table] == ["FAIL (2.0 CIs off)", "FAIL (episodes differ)"] and not ok
    table, ok = compare(QUICK, tmp_path, cells, tolerance=2.5)
    assert [t[-1] for t in table] == [
        "ok",
        "FAIL (episodes differ)",
    ]  # a tolerance never excuses other episodes
    assert not ok
    write_csv(tmp_path / "accuracy.csv", [moved[0], rows[1]], ACCURACY_COLUMNS)
    assert compare(QUICK, tmp_path, cells, tolerance=2.5)[1]  # within 2.5 CIs, same episodes: reproduced
    assert not compare(QUICK, tmp_path, cells, tolerance=1.5)[1]  # 2 CIs off: not reproduced
    nudged = [dict(r, accuracy=str(float(r["accuracy"]) - 0.5 * float(r["ci95"]))) for r in rows]
    nudged[0]["train_pairs_per_s"] = str(2 * float(rows[0]["train_pairs_per_s"]))  # trained twice as fast now
    write_csv(tmp_path / "accuracy.csv", nudged, ACCURACY_COLUMNS)
    table, ok = compare(QUICK, tmp_path, cells)
    assert ok and [t[-1] for t in table] == ["ok", "ok"]
    assert [t[4] for t in table] == ["2.00x", "1.00x"]  # train speed now / recorded


def test_compare_names_a_changed_split(tmp_path):
    """Your own images edited since the recorded run: the verdict says the split (the images) changed, not
    just that the episodes differ."""
    rows = [r for r in read_csv(QUICK / "accuracy.csv") if r["status"] == "ok"][:2]
    recorded = [dict(r, protocol="folder:mine") for r in rows]
    write_csv(tmp_path / "recorded" / "accuracy.csv", recorded, ACCURACY_COLUMNS)
    changed = [recorded[0], dict(recorded[1], split_hash="f" * 16)]  # same episodes hash: still a FAIL
    write_csv(tmp_path / "new" / "accuracy.csv", changed, ACCURACY_COLUMNS)
    table, ok = compare(tmp_path / "recorded", tmp_path / "new", None)
    assert not ok and table[0][-1] == "identical"
    assert (
        table[1][-1]
        == f"FAIL (split differs: {rows[1]['split_hash']} recorded, {'f' * 16} now; the images changed)"
    )


def test_recorded_error_cells_are_reproduced_too_and_throughput_is_new_over_recorded(tmp_path):
    from siamese_bench.reproduce import recorded_rows, throughput_ratios
    from siamese_bench.results import THROUGHPUT_COLUMNS

    rows = [r for r in read_csv(QUICK / "accuracy.csv") if r["status"] == "ok"][:2]
    rows[1] = dict(rows[1], status="error", error="boom", accuracy="")
    write_csv(tmp_path / "accuracy.csv", rows, ACCURACY_COLUMNS)
    assert [r["status"] for r in recorded_rows(tmp_path)] == ["ok", "error"]  # an error gets a verdict too
    old = [r for r in read_csv(QUICK / "throughput.csv") if r["status"] == "ok"][:1]
    new = [dict(old[0], train_pairs_per_s=str(2 * float(old[0]["train_pairs_per_s"])))]
    (tmp_path / "new").mkdir()
    write_csv(tmp_path / "old.csv", old, THROUGHPUT_COLUMNS)
    write_csv(tmp_path / "throughput.csv", old, THROUGHPUT_COLUMNS)
    write_csv(tmp_path / "new" / "throughput.csv", new, THROUGHPUT_COLUMNS)
    (ratio,) = throughput_ratios(tmp_path, tmp_path / "new")
    assert ratio[1:] == ["2.00x", "1.00x", "1.00x"]


def test_reproduce_refuses_a_negative_tolerance(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "siamese_bench", "reproduce", str(QUICK), "--tolerance", "-1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "--tolerance" in r.stderr and "Traceback" not in r.stderr
    r = _cli("reproduce", QUICK, "--tolerance", "nan")
    assert r.returncode == 2 and "--tolerance is a number of CIs >= 0, got nan" in r.stderr


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "siamese_bench", *map(str, args)], capture_output=True, text=True
    )


def test_reproduce_of_a_throughput_only_folder_needs_the_throughput(tmp_path):
    from siamese_bench import runner
    from siamese_bench.cli import build_parser

    argv = ["run", "--preset", "smoke", "--out", str(tmp_path), "--quiet", "--devices", "cpu"]
    runner.run(runner.config_from_args(build_parser().parse_args([*argv, "--throughput-only"])))
    r = _cli("reproduce", tmp_path, "--no-throughput")
    assert r.returncode == 2 and "holds a throughput table only" in r.stderr and "Traceback" not in r.stderr
    r = _cli("reproduce", tmp_path, "--quiet", "--out", tmp_path / "new")
    assert r.returncode == 0, r.stderr
    assert "| small-cnn+koch cpu b64 |" in r.stdout and "throughput re-measured" in r.stdout
    assert "| cell | recorded % |" not in r.stdout  # no (empty) accuracy comparison


def test_reproduce_of_a_throughput_only_folder_remeasures_every_recorded_dtype(tmp_path):
    """A throughput-only folder measured with and without --amp bf16 (config.json keeps the last --amp) is
    re-measured at both dtypes."""
    from siamese_bench import runner
    from siamese_bench.cli import build_parser

    argv = ["run", "--preset", "smoke", "--out", str(tmp_path), "--quiet", "--devices", "cpu"]
    argv += ["--throughput-only", "--heads", "koch", "--throughput-batch-sizes", "16"]
    for amp in ("none", "bf16"):
        runner.run(runner.config_from_args(build_parser().parse_args([*argv, "--amp", amp])))
    dtypes = sorted(r["dtype"] for r in read_csv(tmp_path / "throughput.csv"))
    assert dtypes == ["bfloat16-amp", "float32"]
    r = _cli("reproduce", tmp_path, "--quiet", "--out", tmp_path / "new")
    assert r.returncode == 0, r.stderr
    assert sorted(r["dtype"] for r in read_csv(tmp_path / "new" / "throughput.csv")) == dtypes


def _record(out: Path, *flags: str) -> None:
    """A tiny smoke run (digits, 3-way, koch, 50 episodes) into `out`, with extra `run` flags."""
    from siamese_bench import runner
    from siamese_bench.cli import build_parser

    argv = ["run", "--preset", "smoke", "--out", str(out), "--quiet", "--devices", "cpu", "--ways", "3"]
    argv += ["--heads", "koch", "--episodes", "50", "--no-throughput", *flags]
    runner.run(runner.config_from_args(build_parser().parse_args(argv)), print_summary=False)


def _reproduce(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python -m siamese_bench reproduce ARGV`, run in this process."""
    from siamese_bench.cli import main

    rc = main(["reproduce", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def two_dtypes(tmp_path_factory):
    """A folder holding one cell recorded twice: float32, then (a second run) --amp bf16."""
    out = tmp_path_factory.mktemp("two_dtypes")
    _record(out, "--train-pairs", "64")
    _record(out, "--train-pairs", "64", "--amp", "bf16")
    assert sorted(r["dtype"] for r in read_csv(out / "accuracy.csv")) == ["bfloat16-amp", "float32"]
    return out


def test_reproduce_shows_no_speed_ratio_for_an_untrained_cell(tmp_path, capsys):
    """--train-pairs 0 rows (and the pixel baselines) have an empty train_pairs_per_s: "–", not a crash."""
    _record(tmp_path / "rec", "--train-pairs", "0")
    rc, out, err = _reproduce(capsys, str(tmp_path / "rec"), "--quiet", "--out", str(tmp_path / "new"))
    assert rc == 0, out + err
    assert "| – | identical |" in out and "all cells reproduced" in out


def test_reproduce_reruns_every_recorded_dtype(two_dtypes, tmp_path, capsys):
    """config.json records only the last run's --amp; the float32 rows of an earlier run are re-run too."""
    rc, out, err = _reproduce(capsys, str(two_dtypes), "--quiet", "--out", str(tmp_path / "new"))
    assert rc == 0, out + err
    assert (
        out.count("| identical |") == 2 and "cpu bfloat16-amp 3w1s" in out and "all cells reproduced" in out
    )
    assert sorted(r["dtype"] for r in read_csv(tmp_path / "new" / "accuracy.csv")) == [
        "bfloat16-amp",
        "float32",
    ]


def test_reproduce_lists_recorded_cells_it_cannot_rerun(two_dtypes, tmp_path, capsys):
    """A recorded dtype reproduce cannot make, or a cell outside config.json's grids, is "not re-run" (exit 1),
    never left out of the table under "all cells reproduced"."""
    import json
    import shutil

    rec = tmp_path / "rec"
    shutil.copytree(two_dtypes, rec)
    rows = read_csv(rec / "accuracy.csv")
    write_csv(
        rec / "accuracy.csv",
        [dict(r, dtype=r["dtype"].replace("bfloat16-amp", "float16")) for r in rows],
        ACCURACY_COLUMNS,
    )
    rc, out, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(tmp_path / "new"))
    assert rc == 1, out + err
    assert "| identical |" in out and "not re-run (recorded with dtype float16" in out
    assert "all cells reproduced" not in out and "1 of 2 recorded cells not re-run" in out
    doc = json.loads((rec / "config.json").read_text())
    for g in [*doc["grids"], *(g for r in doc["runs"] for g in r["grids"])]:
        g["heads"] = ["contrastive"]  # the recorded koch cells are in no recorded grid
    (rec / "config.json").write_text(json.dumps(doc))
    rc, out, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(tmp_path / "new2"))
    assert rc == 1 and out.count("| not re-run (") == 2 and "in none of the grids config.json" in out, (
        out + err
    )


def test_reproduce_refuses_a_restriction_that_leaves_no_recorded_cell(capsys):
    """results/quick has CPU cells only: --devices cuda must not re-run them, nor print an empty table."""
    rc, out, err = _reproduce(capsys, str(QUICK), "--devices", "cuda", "--no-throughput", "--quiet")
    assert rc == 2 and "--devices cuda" in err and "recorded devices: cpu" in err, out + err
    assert "reproduced" not in out
    rc, out, err = _reproduce(capsys, str(QUICK), "--protocols", "mnist-heldout", "--ways", "20", "--quiet")
    assert rc == 2 and "--ways 20 leaves no recorded cell" in err, out + err
    assert "recorded N-ways: 5 (among the cells --protocols keeps)" in err
    rc, out, err = _reproduce(capsys, str(QUICK), "--heads", "koch,contrastiv", "--quiet")
    assert (
        rc == 2
        and "--heads contrastiv: no recorded cell" in err
        and "heads: contrastive, koch, triplet" in err
    )


def test_reproduce_recorded_cuda_cells_without_cuda_are_not_rerun(two_dtypes, tmp_path, capsys, monkeypatch):
    import shutil

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rec = tmp_path / "rec"
    shutil.copytree(two_dtypes, rec)
    rows = read_csv(rec / "accuracy.csv")
    write_csv(rec / "accuracy.csv", [dict(r, device="cuda") for r in rows], ACCURACY_COLUMNS)
    rc, out, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(tmp_path / "new"))
    assert rc == 1, out + err
    assert out.count("not re-run (device cuda: CUDA not available") == 2 and "all cells reproduced" not in out


@pytest.mark.parametrize("resume", [False, True])
def test_interrupted_reproduce_names_its_partial_run(resume, tmp_path, capsys, monkeypatch):
    """Ctrl-C: the partial re-run's folder is named, and (without --out) that a new reproduce starts over."""
    from siamese_bench import reproduce, runner

    def interrupted(config, print_summary=True, advice=True):
        (config.out / "accuracy.csv").write_text("")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    new = tmp_path / "new"
    new.mkdir()
    monkeypatch.setattr(reproduce.tempfile, "mkdtemp", lambda prefix="": str(new))
    argv = [str(QUICK), "--protocols", "mnist-heldout", "--heads", "koch", "--quiet"]
    rc, out, err = _reproduce(capsys, *argv, *(["--out", str(new)] if resume else []))
    assert rc == 130 and str(new) in err, err
    if resume:
        assert "re-run the same command to resume" in err
    else:
        assert "starts over" in err and f"--out {new}" in err and "re-run the same command" not in err


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


def test_a_ways_restriction_narrows_grids_that_list_their_ways():
    import dataclasses

    config = load_config(Path(__file__).resolve().parents[1] / "results" / "standard")
    listed = dataclasses.replace(
        config, grids=tuple(dataclasses.replace(g, ways=(5, 20)) for g in config.grids)
    )
    assert {g.ways for g in restrict(listed, ways={5}).grids} == {(5,)}
    # grids that run their protocols' own ways: one grid per protocol among whose ways 5 is, with only 5
    # (lake-runs is 20-way, mnist-transfer and mnist-pairs 10-way: the re-run leaves them out)
    assert {g.ways for g in config.grids} == {None}
    own = restrict(config, ways={5})
    assert {g.ways for g in own.grids} == {(5,)} and all(len(g.protocols) == 1 for g in own.grids)
    assert {g.protocols[0] for g in own.grids} == {"mnist-heldout", "vinyals"}
    assert {g.protocols[0] for g in restrict(config, ways={20}).grids} == {"vinyals", "lake-runs"}


def test_recorded_grids_are_every_runs_grids_once_unless_a_run_lacks_them():
    """A grid finished over several runs is re-run with every run's grids (each once); when one run entry
    (of an older version) recorded no grids, the top-level grids are all that is known."""
    import dataclasses
    import json

    from siamese_bench.presets import Grid, recorded_grids

    a = Grid(("vinyals",), ("conv4",), ("koch",))
    b = dataclasses.replace(a, heads=("triplet",))
    ja, jb = (json.loads(json.dumps(dataclasses.asdict(g))) for g in (a, b))
    doc = {"grids": [jb], "runs": [{"grids": [ja]}, {"grids": [jb]}, {"grids": [ja]}]}
    assert recorded_grids(doc) == (a, b)
    doc["runs"].append({"wall_seconds": 1.0})  # an entry without grids
    assert recorded_grids(doc) == (b,)
    assert recorded_grids({"grids": [ja, ja]}) == (a,)


@pytest.mark.parametrize("table", ["accuracy.csv", "throughput.csv"])
def test_reproduce_refuses_a_hand_edited_table_before_it_re_runs(tmp_path, capsys, monkeypatch, table):
    """A recorded table with a column deleted by hand stopped reproduce with KeyError and a traceback (for
    throughput.csv only after the whole re-run); it is read as `run` reads it, up front: exit 2, one line."""
    import shutil

    from siamese_bench import runner

    folder = tmp_path / "quick"
    shutil.copytree(QUICK, folder)
    lines = [line.split(",") for line in (folder / table).read_text().splitlines()]
    gone = lines[0].index("status")
    (folder / table).write_text("".join(",".join(x[:gone] + x[gone + 1 :]) + "\n" for x in lines))
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("re-ran a folder it cannot compare"))
    rc, out, err = _reproduce(
        capsys, str(folder), "--heads", "koch", "--quiet", "--out", str(tmp_path / "new")
    )
    assert rc == 2 and f"{table} has a different schema (missing columns ['status'])" in err, out + err
    assert "Traceback" not in err


def test_reproduce_refuses_an_out_whose_rows_no_reproduce_of_this_folder_made(tmp_path, capsys, monkeypatch):
    """`--out` the recorded folder itself (or a link to it), a folder of another run, or the re-run of another
    folder: their rows were reported as "identical", "all cells reproduced", with nothing re-run. Only a folder
    an earlier `reproduce` of the same folder wrote (an interrupted one, say) is resumed."""
    import shutil

    from siamese_bench import runner

    rec = tmp_path / "rec"
    _record(rec, "--train-pairs", "64")
    shutil.copytree(rec, tmp_path / "older")  # an unrelated results folder, here with the very same rows
    shutil.copytree(rec, tmp_path / "other")  # another recorded folder
    (tmp_path / "link").symlink_to(rec)
    assert _reproduce(capsys, str(tmp_path / "other"), "--quiet", "--out", str(tmp_path / "rerun"))[0] == 0
    real_run = runner.run
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("re-ran into a refused --out"))
    for out, why in (
        (rec, f"--out {rec} is the recorded folder {rec} itself"),
        (tmp_path / "link", f"--out {tmp_path / 'link'} is the recorded folder {rec} itself"),
        (tmp_path / "older", "holds rows no `reproduce` of"),
        (tmp_path / "rerun", f"holds a re-run of {tmp_path / 'other'}, not of {rec}"),
    ):
        rc, stdout, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(out))
        assert rc == 2 and why in err and "choose an empty or new --out" in err, stdout + err
        assert "reproduced" not in stdout and "Traceback" not in err
    err = _reproduce(capsys, str(rec), "--out", str(tmp_path / "older"))[2]
    # what made them: the command config.json records (under pytest, "python -m siamese_bench" + pytest's argv)
    recorded = json.loads((tmp_path / "older" / "config.json").read_text())["environment"]["command"]
    assert f"(its config.json records `{recorded}`)" in err
    monkeypatch.setattr(runner, "run", real_run)
    rc, stdout, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(tmp_path / "new"))
    assert rc == 0 and "all cells reproduced" in stdout, stdout + err
    rc, stdout, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(tmp_path / "new"))  # a resume
    assert rc == 0 and "all cells reproduced" in stdout, stdout + err
    assert f"resuming the re-run of {rec} in {tmp_path / 'new'}" in err
    rc, stdout, err = _reproduce(capsys, str(rec), "--out", str(tmp_path / "new"))  # not --quiet
    assert rc == 0 and "nothing was run" not in err, err  # the runner's hint to `run` into --out


def test_a_recorded_error_cell_gets_its_own_verdict_and_no_tolerance_advice(tmp_path, capsys):
    """A cell recorded as failed (20-way on digits' 5 test classes) reproduces when it fails the same way;
    another error, or a run, now is a difference, but not one training noise or --tolerance explains."""
    rec = tmp_path / "rec"
    _record(rec, "--train-pairs", "64", "--ways", "3,20")
    assert [r["status"] for r in read_csv(rec / "accuracy.csv")] == ["ok", "error"]
    capsys.readouterr()  # what recording it printed
    rc, out, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(tmp_path / "new"))
    assert rc == 0, out + err
    assert "| recorded as failed, and fails the same way now: ValueError: n_way=20" in out
    assert "all cells reproduced (1 of them recorded as failed, failing the same way again)" in out
    assert "FAIL" not in out and "--tolerance" not in out
    assert "--retry-failed" not in err  # the runner's advice is for `run`; reproduce's verdicts say it here
    rows = read_csv(rec / "accuracy.csv")
    write_csv(rec / "accuracy.csv", [rows[0], dict(rows[1], error="boom")], ACCURACY_COLUMNS)
    table, ok = compare(rec, tmp_path / "new")
    assert not ok and table[1][-1].startswith(
        "FAIL (recorded as failed: boom; fails otherwise now: ValueError"
    )
    write_csv(rec / "accuracy.csv", [dict(rows[0], status="error", error="boom")], ACCURACY_COLUMNS)
    table, ok = compare(rec, tmp_path / "new")
    assert not ok and table[0][-1] == "FAIL (recorded as failed: boom; runs now)" and table[0][2] != "–"
    rc, out, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(tmp_path / "new2"))
    assert rc == 1 and "FAIL (recorded as failed: boom; runs now)" in out, out + err
    assert "SOME CELLS DID NOT REPRODUCE (1 of 1)" in out and "--tolerance" not in out


def test_recorded_skipped_cells_are_listed_and_leave_the_exit_code_alone(tmp_path, capsys, monkeypatch):
    """`run --devices cpu,cuda` without a GPU records skipped CUDA rows: they hold no result, so there is
    nothing to re-run or compare, but they are listed (not hidden under "all cells reproduced")."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rec = tmp_path / "rec"
    _record(rec, "--train-pairs", "64", "--devices", "cpu,cuda")
    assert [r["status"] for r in read_csv(rec / "accuracy.csv")] == ["ok", "skipped"]
    rc, out, err = _reproduce(capsys, str(rec), "--quiet", "--out", str(tmp_path / "new"))
    assert rc == 0, out + err
    assert out.count("| skipped when recorded (CUDA not available") == 1 and "nothing to compare |" in out
    assert "all measured cells reproduced; 1 of 2 recorded cells skipped when recorded" in out
    assert [r["device"] for r in read_csv(tmp_path / "new" / "accuracy.csv")] == ["cpu"]
    rc, out, err = _reproduce(capsys, str(rec), "--quiet", "--devices", "cpu", "--out", str(tmp_path / "new"))
    assert rc == 0 and "skipped when recorded" not in out and "all cells reproduced" in out, out + err


def test_sigterm_stops_reproduce_as_ctrl_c_does_and_names_the_partial_run(tmp_path):
    """`timeout N python -m siamese_bench reproduce ...` (SIGTERM): the temporary folder of the partial
    re-run, and how to resume it, are printed; exit 143."""
    import json
    import os
    import signal
    import time

    rec = tmp_path / "rec"
    _record(rec, "--train-pairs", "64")
    doc = json.loads((rec / "config.json").read_text())
    for g in [*doc["grids"], *(g for r in doc["runs"] for g in r["grids"])]:
        g["train_pairs"] = 10**8  # long enough to be stopped while training
    (rec / "config.json").write_text(json.dumps(doc))
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    cmd = [sys.executable, "-m", "siamese_bench", "reproduce", str(rec), "--no-throughput"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "tmp").glob("siamese_bench_reproduce_*/config.json")):
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.2)
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    (partial,) = (tmp_path / "tmp").glob("siamese_bench_reproduce_*")
    assert p.returncode == 143, out + err
    assert f"interrupted: the partial re-run is in {partial}" in err and f"--out {partial}" in err
    assert "Traceback" not in err
