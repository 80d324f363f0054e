"""The runner: resume after an interruption, error rows, CUDA skip rows (in-process, on digits). The resume
checks of resume.py are tested here too, through `run` and `run --dry-run`, where users meet them."""

import argparse
import dataclasses
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamese_bench import cell, runner
from siamese_bench.cli import build_parser
from siamese_bench.commands import UserError
from siamese_bench.presets import PRESETS
from siamese_bench.results import read_csv


def config(tmp_path, *extra, throughput=False):
    """The smoke preset into tmp_path: 128 training pairs, 20 test episodes, on the CPU, quiet, without the
    throughput table unless `throughput`."""
    args = build_parser().parse_args(
        [
            "run",
            "--preset",
            "smoke",
            "--out",
            str(tmp_path),
            "--train-pairs",
            "128",
            "--episodes",
            "20",
            *([] if throughput else ["--no-throughput"]),
            "--quiet",
            "--devices",
            "cpu",
            *extra,
        ]
    )
    return runner.config_from_args(args)


def test_a_per_episode_file_killed_mid_write_leaves_no_truncated_file(tmp_path, monkeypatch):
    """The per-episode results (what `compare` tests) are written atomically like every other file: a write
    stopped half-way leaves nothing under the final name."""
    real = torch.save

    def half_then_stop(obj, f, *a, **k):
        if not (isinstance(obj, torch.Tensor) and obj.dtype == torch.bool):  # per-episode: correct or not
            return real(obj, f, *a, **k)
        if hasattr(f, "write"):
            f.write(b"PK\x03\x04 half")
        else:
            Path(f).write_bytes(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_then_stop)
    with pytest.raises(KeyboardInterrupt):
        runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"))
    assert (tmp_path / "per_episode").is_dir() and not list((tmp_path / "per_episode").iterdir())


def test_interrupted_run_keeps_finished_cells_and_resumes(tmp_path, monkeypatch):
    real = cell.CellRunner.run_group

    def interrupted(self, group, cells):
        for i, row in enumerate(real(self, group, cells)):
            if group["head"] == "contrastive" and i == 1:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the second group
            yield row

    monkeypatch.setattr(cell.CellRunner, "run_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run(config(tmp_path))
    first = read_csv(tmp_path / "accuracy.csv")
    assert len(first) == 3 and all(r["status"] == "ok" for r in first)
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written temp file left
    monkeypatch.setattr(cell.CellRunner, "run_group", real)
    runner.run(config(tmp_path))
    rows = read_csv(tmp_path / "accuracy.csv")
    assert len(rows) == 4
    assert rows[:3] == first  # finished cells were skipped, not re-run


def test_a_run_interrupted_mid_training_continues_from_its_snapshot(tmp_path, monkeypatch):
    """Ctrl-C in the middle of a group's training, then the same command: training goes on from the group's
    snapshot, the rows equal an uninterrupted run's, and the snapshot is gone once they are written."""
    argv = ("--heads", "koch", "--ways", "3", "--train-pairs", "3840", "--snapshot-every", "1e-9")
    runner.run(config(tmp_path / "whole", *argv))
    expected = read_csv(tmp_path / "whole" / "accuracy.csv")

    real_train, calls = cell.train, []

    def train_until_ctrl_c(*args, **kwargs):
        def progress(pairs, total, loss, rate):
            calls.append(pairs)
            if len(calls) == 2:
                raise KeyboardInterrupt

        return real_train(*args, **{**kwargs, "progress": progress})

    out = tmp_path / "interrupted"
    monkeypatch.setattr(cell, "train", train_until_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runner.run(config(out, *argv))
    assert not (out / "accuracy.csv").exists() or not read_csv(out / "accuracy.csv")
    assert len(list((out / "snapshots").glob("*.pt"))) == 1
    resumed = []
    monkeypatch.setattr(
        cell, "train", lambda *a, **kw: real_train(*a, **{**kw, "progress": lambda p, *_: resumed.append(p)})
    )
    runner.run(config(out, *argv))
    assert resumed[0] == calls[1]  # on from the snapshot of the log point before the interruption
    rows = read_csv(out / "accuracy.csv")
    same = ("accuracy", "ci95", "best_val_accuracy", "episodes_hash", "verification_accuracy", "roc_auc")
    assert [{k: r[k] for k in same} for r in rows] == [{k: r[k] for k in same} for r in expected]
    assert not (out / "snapshots").exists()


def test_a_snapshot_left_by_a_stop_after_the_groups_last_row_goes_with_the_next_run(tmp_path, monkeypatch):
    """Ctrl-C (or a kill) after a group's last row is written but before its snapshot is deleted: the next run
    finds every cell done and must not keep the (possibly large) snapshot for ever."""
    argv = ("--heads", "koch", "--train-pairs", "3840", "--snapshot-every", "1e-9")
    real_log = runner._log

    def log_then_ctrl_c(config, msg):
        real_log(config, msg)
        if "(2/2 cells)" in msg:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_log", log_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        runner.run(config(tmp_path, *argv))
    assert len(read_csv(tmp_path / "accuracy.csv")) == 2
    assert len(list((tmp_path / "snapshots").glob("*.pt"))) == 1
    monkeypatch.setattr(runner, "_log", real_log)
    runner.run(config(tmp_path, *argv))
    assert not (tmp_path / "snapshots").exists()


def test_dry_run_lists_groups_cells_and_what_is_done_and_writes_nothing(tmp_path, capsys):
    from siamese_bench.cli import main

    out = tmp_path / "run"
    argv = ["run", "--preset", "smoke", "--out", str(out), "--train-pairs", "128", "--episodes", "20"]
    assert main([*argv, "--no-throughput", "--quiet", "--devices", "cpu", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert (
        "[1/2] digits-heldout small-cnn+koch cpu float32 seed 0: 128 training pairs; 3-way 1-shot, "
        "5-way 1-shot; 0/2 done"
    ) in text
    assert "2 training group(s), 4 cell(s), 4 to run" in text and not out.exists()

    runner.run(config(out, "--heads", "koch"))
    snapshot = out / "snapshots" / "digits-heldout_small-cnn_contrastive_cpu_float32_seed0.pt"
    snapshot.parent.mkdir()
    snapshot.touch()
    before = sorted(p.name for p in out.rglob("*"))
    assert main([*argv, "--no-throughput", "--quiet", "--devices", "cpu", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert (
        "small-cnn+koch cpu float32 seed 0: 128 training pairs; 3-way 1-shot, 5-way 1-shot; 2/2 done" in text
    )
    assert (
        "small-cnn+contrastive cpu float32 seed 0" in text and "0/2 done, training snapshot waiting" in text
    )
    assert "2 training group(s), 4 cell(s), 2 to run" in text
    assert sorted(p.name for p in out.rglob("*")) == before


def test_dry_run_of_a_gpu_grid_without_a_gpu_shows_the_plan(tmp_path, capsys, monkeypatch):
    from siamese_bench.cli import main

    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    argv = ["run", "--preset", "smoke", "--devices", "cuda", "--out", str(tmp_path / "gpu")]
    assert main(argv) == 2  # a real run is refused up front
    assert "CUDA was requested" in capsys.readouterr().err
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "small-cnn+koch cuda float32 seed 0" in out and "skipped (CUDA not available" in out
    assert "2 training group(s), 4 cell(s), 0 to run, 4 skipped (device unavailable)" in out
    assert not (tmp_path / "gpu").exists()


def test_a_failing_group_becomes_error_rows_and_the_run_goes_on(tmp_path, monkeypatch):
    from siamese_bench.train import NonFiniteLossError

    real_train = cell.train

    def train(model, *a, **k):
        if model.head.metric:
            raise NonFiniteLossError("training loss became nan")
        return real_train(model, *a, **k)

    monkeypatch.setattr(cell, "train", train)
    runner.run(config(tmp_path))
    rows = read_csv(tmp_path / "accuracy.csv")
    bad = [r for r in rows if r["head"] == "contrastive"]
    good = [r for r in rows if r["head"] == "koch"]
    assert len(bad) == 2 and all(r["status"] == "error" and "NonFiniteLossError" in r["error"] for r in bad)
    assert len(good) == 2 and all(r["status"] == "ok" for r in good)
    assert "NonFiniteLossError" in (tmp_path / "summary.md").read_text()
    # --retry-failed re-runs only the error rows
    monkeypatch.setattr(cell, "train", real_train)
    runner.run(config(tmp_path, "--retry-failed"))
    assert all(r["status"] == "ok" for r in read_csv(tmp_path / "accuracy.csv"))


def _no_training(*args, **kwargs):
    raise AssertionError("trained although no cell of the group can be evaluated")


def test_impossible_way_is_an_error_row_naming_the_limit_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setattr(cell, "train", _no_training)
    runner.run(config(tmp_path, "--ways", "6", "--heads", "koch"))
    (row,) = read_csv(tmp_path / "accuracy.csv")
    assert row["status"] == "error" and "n_way=6" in row["error"] and "only 5 classes" in row["error"]
    assert row["split_hash"] and not row["train_seconds"]  # the split is named; nothing was trained


def test_a_group_with_one_impossible_way_trains_once_for_the_others(tmp_path, monkeypatch):
    real_train, calls = cell.train, []

    def train(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(cell, "train", train)
    runner.run(config(tmp_path, "--ways", "2,6", "--heads", "koch"))
    rows = {int(r["n_way"]): r for r in read_csv(tmp_path / "accuracy.csv")}
    assert len(calls) == 1
    assert rows[2]["status"] == "ok" and float(rows[2]["accuracy"]) > 0
    assert rows[6]["status"] == "error" and "n_way=6" in rows[6]["error"]
    assert rows[6]["train_pairs"] == rows[2]["train_pairs"] == "128"


def test_threads_are_applied_recorded_and_restored(tmp_path):
    import torch

    from siamese_bench.commands import UserError

    before = torch.get_num_threads()
    seen = []
    real = cell.train

    def train(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cell, "train", train)
        runner.run(config(tmp_path, "--threads", "1", "--heads", "koch"))
    doc = json.loads((tmp_path / "config.json").read_text())
    assert seen == [1] and doc["threads"] == 1 and doc["environment"]["cpu_threads"] == 1
    assert torch.get_num_threads() == before
    with pytest.raises(UserError, match="--threads 0: must be >= 1"):
        config(tmp_path, "--threads", "0")


def test_default_out_is_the_checkout_results_or_the_working_directory(tmp_path, monkeypatch):
    args = build_parser().parse_args(["run", "--preset", "smoke"])
    assert runner.config_from_args(args).out == runner.REPO / "results" / "smoke"
    monkeypatch.setattr(runner, "REPO", tmp_path / "site-packages")  # an installed package: no pyproject.toml
    monkeypatch.chdir(tmp_path)
    assert runner.config_from_args(args).out == tmp_path / "results" / "smoke"


def test_odd_batch_size_is_refused(tmp_path):
    from siamese_bench.commands import UserError

    with pytest.raises(UserError, match="must be even"):
        config(tmp_path, "--batch-size", "7")


def test_snapshot_interval_is_checked_and_zero_saves_none(tmp_path, monkeypatch):
    from siamese_bench.commands import UserError

    with pytest.raises(UserError, match="--snapshot-every -1.0: seconds must be >= 0"):
        config(tmp_path, "--snapshot-every", "-1")
    assert config(tmp_path).snapshot_every == 600.0
    seen = []
    real_train = cell.train
    monkeypatch.setattr(cell, "train", lambda *a, **kw: seen.append(kw["snapshots"]) or real_train(*a, **kw))
    runner.run(config(tmp_path, "--heads", "koch", "--snapshot-every", "0"))
    assert seen == [None]


def test_negative_forward_chunk_is_refused_and_a_chunk_reaches_the_run(tmp_path):
    from siamese_bench.commands import UserError

    with pytest.raises(UserError, match="--forward-chunk -1: must be >= 0"):
        config(tmp_path, "--forward-chunk", "-1")
    assert config(tmp_path, "--forward-chunk", "64").forward_chunk == 64


def test_run_options_reach_the_training_config(tmp_path, monkeypatch):
    seen = []
    real_train = cell.train

    def train(model, images, index, cfg, *a, **k):
        seen.append((cfg.forward_chunk, cfg.channels_last, cfg.amp))
        return real_train(model, images, index, cfg, *a, **k)

    monkeypatch.setattr(cell, "train", train)
    runner.run(config(tmp_path, "--forward-chunk", "64", "--channels-last", "--heads", "koch"))
    assert seen and set(seen) == {(64, True, "none")}


def test_cli_namespace_defaults_are_complete():
    args = build_parser().parse_args(["run"])
    assert isinstance(args, argparse.Namespace) and args.preset == "quick"


def test_bf16_amp_on_cpu_trains_and_says_so(tmp_path):
    """--amp bf16 --channels-last is accepted on CPU; every row records the bfloat16-amp dtype."""
    runner.run(config(tmp_path, "--amp", "bf16", "--channels-last", "--heads", "contrastive"))
    rows = read_csv(tmp_path / "accuracy.csv")
    assert rows and all(r["status"] == "ok" and r["dtype"] == "bfloat16-amp" for r in rows)
    assert all(r["device"] == "cpu" for r in rows)


def test_bf16_on_a_cpu_without_bf16_instructions_warns(tmp_path, monkeypatch, capsys):
    from siamese_bench import provenance

    monkeypatch.setattr(provenance, "cpu_has_bf16", lambda: False)
    config(tmp_path, "--amp", "bf16")
    assert "without AVX512-BF16 or AMX" in capsys.readouterr().err
    monkeypatch.setattr(provenance, "cpu_has_bf16", lambda: True)
    config(tmp_path, "--amp", "bf16")
    assert capsys.readouterr().err == ""


def test_a_resume_with_nothing_to_do_keeps_the_recorded_provenance(tmp_path):
    """Re-running a finished grid (e.g. the README command in a checkout with committed results) must not
    replace the git hash, hardware and wall time of the run that produced the rows."""
    runner.run(config(tmp_path), print_summary=False)
    recorded = (tmp_path / "config.json").read_text()
    doc = json.loads(recorded)
    doc["environment"]["git_hash"], doc["wall_seconds"] = "0123456789ab", 123.4  # as if from another run
    (tmp_path / "config.json").write_text(json.dumps(doc))
    runner.run(config(tmp_path), print_summary=False)
    assert json.loads((tmp_path / "config.json").read_text()) == doc
    assert "0123456789ab" in (tmp_path / "summary.md").read_text()


def test_a_resumed_grid_keeps_every_run_in_its_history(tmp_path):
    """A grid finished over two runs (interrupted, or extended) records both runs and their total wall time;
    the summary shows the total."""
    runner.run(config(tmp_path, "--heads", "koch"), print_summary=False)
    first = json.loads((tmp_path / "config.json").read_text())
    assert [r["rows_written"] for r in first["runs"]] == [len(read_csv(tmp_path / "accuracy.csv"))]
    assert first["wall_seconds_total"] == first["wall_seconds"] == first["runs"][0]["wall_seconds"]
    runner.run(config(tmp_path, "--heads", "koch,contrastive"), print_summary=False)
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["runs"][0] == first["runs"][0] and len(doc["runs"]) == 2
    assert doc["runs"][1]["git_hash"] == doc["environment"]["git_hash"] and doc["runs"][1]["rows_written"] > 0
    assert doc["wall_seconds_total"] == round(first["wall_seconds"] + doc["wall_seconds"], 1)
    assert "over 2 runs" in (tmp_path / "summary.md").read_text()
    runner.run(config(tmp_path, "--heads", "koch,contrastive"), print_summary=False)  # nothing to do
    assert json.loads((tmp_path / "config.json").read_text()) == doc


def test_a_grid_made_by_two_different_commands_records_and_reproduces_both(tmp_path):
    """Each run keeps its own grids: the summary says which command made which cells, and `reproduce` re-runs
    all of them, not only the latest command's."""
    from siamese_bench.reproduce import load_config

    runner.run(config(tmp_path, "--heads", "contrastive"), print_summary=False)
    runner.run(config(tmp_path, "--heads", "koch", "--train-pairs", "256"), print_summary=False)
    doc = json.loads((tmp_path / "config.json").read_text())
    assert [(g["heads"], g["train_pairs"]) for r in doc["runs"] for g in r["grids"]] == [
        (["contrastive"], 128),
        (["koch"], 256),
    ]
    assert [(g.heads, g.train_pairs) for g in load_config(tmp_path).grids] == [
        (("contrastive",), 128),
        (("koch",), 256),
    ]
    summary = (tmp_path / "summary.md").read_text()
    assert "digits-heldout x small-cnn x contrastive, seeds 0: 128 training pairs" in summary
    assert "digits-heldout x small-cnn x koch, seeds 0: 256 training pairs" in summary


def test_resuming_with_other_training_settings_is_refused_before_anything_runs(tmp_path):
    from siamese_bench.commands import UserError

    runner.run(config(tmp_path, "--heads", "koch"), print_summary=False)
    before = (tmp_path / "accuracy.csv").read_text()
    with pytest.raises(
        UserError, match=r"digits-heldout/small-cnn/koch/0 .*train_pairs 128 \(recorded\) vs 256"
    ):
        runner.run(
            config(tmp_path, "--heads", "koch,contrastive", "--train-pairs", "256"), print_summary=False
        )
    assert (tmp_path / "accuracy.csv").read_text() == before
    # other cells with other settings are fine: nothing recorded would be skipped
    runner.run(config(tmp_path, "--heads", "contrastive", "--train-pairs", "256"), print_summary=False)
    assert {r["head"] for r in read_csv(tmp_path / "accuracy.csv")} == {"koch", "contrastive"}


def test_training_cpu_cells_with_another_thread_count_into_a_folder_is_refused(tmp_path):
    """CPU results depend on the torch thread count: a folder keeps one, so that reproduce (which re-runs
    with the recorded count) can repeat every cell. Entries written before `cpu_threads` was recorded give
    it in their `machine` text."""
    import json

    from siamese_bench.commands import UserError

    runner.run(config(tmp_path, "--heads", "koch", "--threads", "1"), print_summary=False)
    before = (tmp_path / "accuracy.csv").read_text()
    with pytest.raises(UserError, match=r"trained with 1 torch thread\(s\).* with 2: .*Add --threads 1"):
        runner.run(
            config(tmp_path, "--heads", "koch", "--seeds", "0,1", "--threads", "2"), print_summary=False
        )
    assert (tmp_path / "accuracy.csv").read_text() == before
    # nothing to train on the CPU (every cell done): nothing mixed, nothing refused
    runner.run(config(tmp_path, "--heads", "koch", "--threads", "2"), print_summary=False)
    # an older config.json: the count from the run entry's machine text
    path = tmp_path / "config.json"
    doc = json.loads(path.read_text())
    assert [r["cpu_threads"] for r in doc["runs"]] == [1]
    del doc["runs"][0]["cpu_threads"]
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"trained with 1 torch thread"):
        runner.run(config(tmp_path, "--heads", "contrastive", "--threads", "2"), print_summary=False)
    runner.run(config(tmp_path, "--heads", "koch", "--seeds", "0,1", "--threads", "1"), print_summary=False)
    assert {r["seed"] for r in read_csv(tmp_path / "accuracy.csv")} == {"0", "1"}


def test_rows_of_another_layout_chunking_or_compile_into_a_folder_are_refused(tmp_path):
    """config.json records --channels-last, --forward-chunk and --compile once per folder (reproduce re-runs
    with them): a run with other values was let in, and its rows mixed with the folder's unmarked."""
    import json

    from siamese_bench.commands import UserError

    runner.run(config(tmp_path, "--heads", "koch", "--channels-last"), print_summary=False)
    before = (tmp_path / "accuracy.csv").read_text()
    for extra, said in (
        ((), r"made with --channels-last, and this run asks for no --channels-last \(NCHW\)"),
        (
            ("--channels-last", "--forward-chunk", "8"),
            r"made with no --forward-chunk, .* asks for --forward-chunk 8",
        ),
        (("--channels-last", "--compile"), r"made with no --compile, and this run asks for --compile"),
    ):
        with pytest.raises(UserError, match=said + r".*another --out directory"):
            runner.run(config(tmp_path, "--heads", "contrastive", *extra), print_summary=False)
    assert (tmp_path / "accuracy.csv").read_text() == before
    runner.run(config(tmp_path, "--heads", "contrastive", "--channels-last"), print_summary=False)
    assert {r["head"] for r in read_csv(tmp_path / "accuracy.csv")} == {"koch", "contrastive"}
    # an older config.json records forward_chunk null (as results/standard's does): the default, no chunks
    path = tmp_path / "config.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "channels_last": False, "forward_chunk": None}))
    runner.run(config(tmp_path, "--heads", "koch,contrastive", "--seeds", "0,1"), print_summary=False)


def _grids(*argv):
    args = build_parser().parse_args(["run", *argv, "--devices", "cpu", "--out", "unused"])
    return runner.config_from_args(args).grids


def test_protocols_in_the_preset_keep_their_own_grid_settings():
    # the paper preset's vinyals grid (2M pairs, lr 1e-3, no distortions), not its first grid's (koch at
    # 105x105: 1.5M pairs, lr 1e-4, distortions)
    (g,) = _grids("--preset", "paper", "--protocols", "vinyals", "--backbones", "conv4")
    paper = {x.protocols: x for x in PRESETS.get("paper").grids}
    assert g == dataclasses.replace(paper[("vinyals",)], backbones=("conv4",))
    assert (g.train_pairs, g.lr, g.distort) == (2_000_000, 1e-3, False)


def test_backbones_in_the_preset_narrow_it_and_drop_grids_without_them():
    grids = _grids("--preset", "standard", "--backbones", "pixels", "--heads", "cosine")
    assert {g.protocols for g in grids} == {
        ("mnist-heldout",),
        ("vinyals",),
        ("lake-runs",),
        ("mnist-transfer", "mnist-pairs"),
    }
    assert all(g.backbones == ("pixels",) and g.heads == ("cosine",) and g.train_pairs == 0 for g in grids)


def test_names_the_preset_lacks_replace_them_in_every_grid():
    (g,) = _grids(
        "--protocols", "lake-runs"
    )  # quick has no lake-runs: first grid's settings, protocol's ways
    first = PRESETS.get("quick").grids[0]
    assert g.protocols == ("lake-runs",) and g.ways is None and g.train_pairs == first.train_pairs
    grids = _grids("--backbones", "resnet18")
    assert len(grids) == 2 and all(g.backbones == ("resnet18",) for g in grids)


def test_datasets_run_their_protocols_once_each():
    from siamese_bench.commands import UserError

    grids = _grids("--preset", "standard", "--datasets", "omniglot,omniglot-vinyals,omniglot-mnist")
    assert sorted({p for g in grids for p in g.protocols}) == ["mnist-transfer", "vinyals"]
    (g,) = _grids("--datasets", "omniglot-runs", "--protocols", "lake-runs")
    assert g.protocols == ("lake-runs",)
    with pytest.raises(UserError, match="unknown dataset 'cifar' for --datasets; valid: mnist, omniglot, "):
        _grids("--datasets", "cifar")


def test_one_cell_from_two_grids_with_different_settings_is_refused():
    from siamese_bench.commands import UserError

    # names standard lacks replace them everywhere: its trained mnist-heldout grid (30k pairs) and its
    # untrained pixel-baseline grid (0 pairs) would both hold mnist-heldout x resnet18 x product
    with pytest.raises(
        UserError, match="mnist-heldout/resnet18/product/0 .*two grids with different settings"
    ):
        _grids("--preset", "standard", "--backbones", "resnet18", "--heads", "product")
    # a head the preset has narrows instead, dropping the baseline grids: no conflict
    grids = _grids("--preset", "standard", "--backbones", "resnet18", "--heads", "koch")
    assert len(grids) == 5 and all(g.train_pairs > 0 for g in grids)


def throughput_config(tmp_path, *extra):
    args = build_parser().parse_args(
        ["run", "--preset", "smoke", "--out", str(tmp_path), "--quiet", "--devices", "cpu", *extra]
    )
    return runner.config_from_args(args)


def test_throughput_only_measures_every_model_without_training_or_evaluating(tmp_path, monkeypatch):
    def no_cells(*args, **kwargs):
        raise AssertionError("--throughput-only must not train or evaluate a cell")

    monkeypatch.setattr(cell.CellRunner, "run_group", no_cells)
    runner.run(throughput_config(tmp_path, "--throughput-only", "--throughput-batch-sizes", "16,32"))
    rows = read_csv(tmp_path / "throughput.csv")
    assert {(r["backbone"], r["head"], r["batch_size"]) for r in rows} == {
        ("small-cnn", h, b) for h in ("koch", "contrastive") for b in ("16", "32")
    }
    assert all(r["status"] == "ok" and float(r["train_pairs_per_s"]) > 0 for r in rows)
    assert {r["image_size"] for r in rows} == {"8"}  # the protocol's image shape (digits: 8x8)
    assert not (tmp_path / "accuracy.csv").exists()
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["throughput_only"] is True and doc["throughput_batch_sizes"] == [16, 32]
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith(f"# siamese_bench throughput: {tmp_path.name}")
    assert "throughput only" in summary and "One-shot accuracy" not in summary
    assert "| small-cnn | koch | cpu | float32 | 8 | 32 |" in summary
    # a re-run measures nothing again: every row is there
    monkeypatch.setattr("siamese_bench.throughput.measure", no_cells)
    runner.run(throughput_config(tmp_path, "--throughput-only", "--throughput-batch-sizes", "16,32"))
    assert read_csv(tmp_path / "throughput.csv") == rows


def test_throughput_only_and_a_full_run_never_share_a_directory(tmp_path):
    from siamese_bench.commands import UserError

    full, tput = tmp_path / "full", tmp_path / "tput"
    runner.run(config(full, "--heads", "koch", "--ways", "3"))
    with pytest.raises(
        UserError, match="accuracy row.*of a full run; write this throughput-only run to another"
    ):
        runner.run(throughput_config(full, "--throughput-only"))
    runner.run(
        throughput_config(tput, "--throughput-only", "--heads", "koch", "--throughput-batch-sizes", "16")
    )
    with pytest.raises(UserError, match="holds a throughput-only table; write this full run to another"):
        runner.run(config(tput, "--heads", "koch", "--ways", "3"))
    assert len(read_csv(full / "accuracy.csv")) == 1 and len(read_csv(tput / "throughput.csv")) == 1


def test_throughput_only_options_are_checked(tmp_path):
    from siamese_bench.commands import UserError

    with pytest.raises(UserError, match="--throughput-only and --no-throughput contradict"):
        config(tmp_path, "--throughput-only")  # config() passes --no-throughput
    with pytest.raises(UserError, match="--throughput-batch-sizes 64,7: each must be even"):
        throughput_config(tmp_path, "--throughput-batch-sizes", "64,7")
    assert throughput_config(tmp_path).throughput_batch_sizes == PRESETS.get("smoke").throughput_batch_sizes


def test_an_episodes_file_that_holds_other_episodes_than_its_name_is_refused(tmp_path):
    """A frozen test-episode file copied or renamed from another cell (here: drawn with another seed) is not
    scored silently: the cell becomes an error row that names the difference."""
    from siamese_bench.episodes import Episodes

    runner.run(config(tmp_path / "a", "--heads", "koch", "--ways", "3"))
    (src,) = (tmp_path / "a" / "episodes").glob("*.pt")
    ep = Episodes.load(src)
    other = dataclasses.replace(ep, seed=ep.seed + 1)
    other.save(tmp_path / "b" / "episodes" / src.name)
    runner.run(config(tmp_path / "b", "--heads", "koch", "--ways", "3"))
    (row,) = read_csv(tmp_path / "b" / "accuracy.csv")
    assert row["status"] == "error"
    assert (
        f"seed {ep.seed + 1} (this cell needs {ep.seed})" in row["error"]
        and "delete it to redraw" in row["error"]
    )


def _ok_rows(self, group, cells):
    """A stand-in for CellRunner.run_group that scores every cell 0.5 without training (e.g. on a device
    the test machine lacks)."""
    for n, k in cells:
        yield {**runner.base_row(group, n, k), "status": "ok", "accuracy": 0.5, "ci95": 0.1, "timestamp": "t"}


def _as_older_config(folder, *drop: str, **values) -> dict:
    """Rewrite folder/config.json as an older version wrote it: without the top-level keys `drop`, with
    `values` set. Returns the rewritten document."""
    path = folder / "config.json"
    doc = json.loads(path.read_text())
    for key in drop:
        del doc[key]
    doc.update(values)
    path.write_text(json.dumps(doc))
    return doc


def test_resume_settings_are_kept_per_device_and_dtype(tmp_path):
    """bf16 and float32 cells are different cells: each keeps its own settings, and re-running the float32
    command is not refused for the bf16 cells' budget."""
    from siamese_bench.commands import UserError

    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3", "--amp", "bf16"), print_summary=False)
    f32 = ("--heads", "koch", "--ways", "3", "--train-pairs", "256")
    runner.run(config(tmp_path, *f32), print_summary=False)
    runner.run(config(tmp_path, *f32), print_summary=False)  # the same command again: nothing to do
    with pytest.raises(
        UserError, match=r"koch/0 .*on cpu bfloat16-amp .*train_pairs 128 \(recorded\) vs 256 \(now\)"
    ):
        runner.run(config(tmp_path, *f32, "--amp", "bf16"), print_summary=False)
    rows = read_csv(tmp_path / "accuracy.csv")
    assert sorted((r["dtype"], r["train_pairs"]) for r in rows) == [
        ("bfloat16-amp", "128"),
        ("float32", "256"),
    ]


def test_an_unreadable_config_json_refuses_a_resume_naming_it(tmp_path):
    from siamese_bench.commands import UserError

    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    path = tmp_path / "config.json"
    path.write_text(path.read_text()[:300])  # truncated
    before = (tmp_path / "accuracy.csv").read_text()
    for argv in (("--train-pairs", "256"), ()):
        with pytest.raises(UserError, match=f"{path} cannot be read .*restore it.*another --out"):
            runner.run(config(tmp_path, "--heads", "koch", "--ways", "3", *argv), print_summary=False)
    assert (tmp_path / "accuracy.csv").read_text() == before
    # an unreadable config.json beside no rows is simply written anew
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{")
    runner.run(config(empty, "--heads", "koch", "--ways", "3"), print_summary=False)
    assert json.loads((empty / "config.json").read_text())["runs"]


def test_a_config_json_that_is_not_an_object_refuses_a_resume_naming_it(tmp_path):
    """Valid JSON of another shape (a list) beside rows is as unreadable as a truncated file: a UserError
    naming it, not a crash on its first lookup."""
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    path = tmp_path / "config.json"
    path.write_text("[]")
    with pytest.raises(UserError, match=r"cannot be read \(a JSON list, not an object\)"):
        runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)


def test_a_config_json_of_an_older_version_is_still_checked(tmp_path):
    """A config.json written before `throughput_only` and `runs` were recorded is a full run's, and its
    top-level grids still say what its rows were made with; so does it after a resume added a run entry
    (the rebuilt entry of the older run has no grids)."""
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    path = tmp_path / "config.json"
    doc = _as_older_config(tmp_path, "throughput_only", "runs")
    assert ", 0 to run" in runner.plan(config(tmp_path, "--heads", "koch", "--ways", "3"))
    with pytest.raises(UserError, match=r"koch/0 .*train_pairs 128 \(recorded\) vs 256 \(now\)"):
        runner.plan(config(tmp_path, "--heads", "koch", "--ways", "3", "--train-pairs", "256"))
    threads = doc["environment"]["cpu_threads"]  # the older run's torch thread count
    with pytest.raises(UserError, match=f"trained with {threads} torch thread"):
        runner.plan(
            config(
                tmp_path, "--heads", "koch", "--ways", "3", "--seeds", "0,1", "--threads", str(threads + 1)
            )
        )
    runner.run(config(tmp_path, "--heads", "contrastive", "--ways", "3"), print_summary=False)
    assert [r["grids"] is None for r in json.loads(path.read_text())["runs"]] == [True, False]
    with pytest.raises(UserError, match=r"contrastive/0 .*train_pairs 128 \(recorded\) vs 256 \(now\)"):
        runner.plan(config(tmp_path, "--heads", "contrastive", "--ways", "3", "--train-pairs", "256"))


def test_the_thread_count_compared_is_this_runs_and_failed_cells_hold_none(tmp_path, monkeypatch):
    """--threads N is compared with the recorded count (not the count torch has before the run applies N);
    and CPU cells that failed hold no count: their retry may train with another one."""
    import torch

    n = torch.get_num_threads() + 1
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3", "--threads", str(n)), print_summary=False)
    runner.plan(config(tmp_path, "--heads", "koch", "--ways", "3", "--seeds", "0,1", "--threads", str(n)))

    def failed_rows(self, group, cells):
        for n_way, k in cells:
            yield {**runner.base_row(group, n_way, k), "status": "error", "error": "boom", "timestamp": "t"}

    failed = tmp_path / "failed"
    monkeypatch.setattr(cell.CellRunner, "run_group", failed_rows)
    runner.run(config(failed, "--heads", "koch", "--ways", "3", "--threads", "1"), print_summary=False)
    assert "1 to run" in runner.plan(
        config(failed, "--heads", "koch", "--ways", "3", "--threads", "2", "--retry-failed")
    )


def test_a_run_stopped_before_writing_a_row_records_no_run(tmp_path, monkeypatch):
    """The config.json a fresh run writes before its first row has no `runs` entry; a run stopped before
    any row leaves it so, and the run that then writes the rows is the folder's one run, with its wall time."""

    def stopped(self, group, cells):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(cell.CellRunner, "run_group", stopped)
    with pytest.raises(KeyboardInterrupt):
        runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["runs"] == [] and doc["wall_seconds_total"] is None
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    doc = json.loads((tmp_path / "config.json").read_text())
    assert [r["rows_written"] for r in doc["runs"]] == [1]
    assert doc["wall_seconds_total"] is not None
    assert doc["wall_seconds_total"] == doc["runs"][0]["wall_seconds"]


def test_an_older_config_json_without_a_wall_time_adds_no_run_entry(tmp_path, monkeypatch):
    """A config.json from before `runs` were recorded, of a run that never finished (no wall time): no entry
    is rebuilt from it, so the resume's own entry and wall time are the folder's total."""
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    path = tmp_path / "config.json"
    _as_older_config(tmp_path, "runs", wall_seconds=None)
    runner.run(config(tmp_path, "--heads", "koch,contrastive", "--ways", "3"), print_summary=False)
    doc = json.loads(path.read_text())
    assert [r["rows_written"] for r in doc["runs"]] == [1]
    assert doc["wall_seconds_total"] is not None
    assert doc["wall_seconds_total"] == doc["runs"][0]["wall_seconds"]


def test_run_entries_without_devices_use_the_recorded_devices_less_the_optional_mark(tmp_path, monkeypatch):
    """Run entries written before devices were kept per run: the cells are on the top-level devices, where an
    optional GPU is "cuda?" but its rows say "cuda"; their settings are still compared."""
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    argv = ("--heads", "koch", "--ways", "3", "--devices", "cuda?")
    runner.run(config(tmp_path, *argv), print_summary=False)
    path = tmp_path / "config.json"
    doc = json.loads(path.read_text())
    assert doc["devices"] == ["cuda?"]
    for run in doc["runs"]:
        del run["devices"]
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"koch/0 .*on cuda float32 .*train_pairs 128 \(recorded\) vs 256"):
        runner.plan(config(tmp_path, *argv, "--train-pairs", "256"))


def test_a_config_json_without_the_settings_of_its_rows_is_not_compared(tmp_path, monkeypatch):
    """A config.json of another version, without grids: nothing to compare the settings with, no crash."""
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    _as_older_config(tmp_path, "runs", "grids")
    assert ", 0 to run" in runner.plan(config(tmp_path, "--heads", "koch", "--ways", "3"))


def test_a_truncated_last_row_is_dropped_with_a_warning_and_its_cell_re_run(tmp_path, capsys):
    runner.run(config(tmp_path, "--heads", "koch"), print_summary=False)
    path = tmp_path / "accuracy.csv"
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, -1) + 120])  # the last row cut off after 120 characters
    capsys.readouterr()
    runner.run(config(tmp_path, "--heads", "koch", "--retry-failed"), print_summary=False)
    err = capsys.readouterr().err
    assert (
        f"{path}" in err
        and "truncated last row" in err
        and "digits-heldout/digits/small-cnn/koch/cpu/float32/5/1/0" in err
    )
    rows = read_csv(path)
    assert sorted(r["n_way"] for r in rows) == ["3", "5"] and all(r["status"] == "ok" for r in rows)
    assert "- None" not in (tmp_path / "summary.md").read_text()


def test_skipped_cells_run_once_their_device_is_available(tmp_path, monkeypatch):
    argv = ("--heads", "koch", "--ways", "3", "--devices", "cpu,cuda")
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    runner.run(config(tmp_path, *argv), print_summary=False)
    rows = {r["device"]: r for r in read_csv(tmp_path / "accuracy.csv")}
    assert rows["cuda"]["status"] == "skipped" and rows["cpu"]["status"] == "ok"
    config_json = (tmp_path / "config.json").read_text()
    runner.run(config(tmp_path, *argv), print_summary=False)  # still no GPU: nothing new to record
    assert (tmp_path / "config.json").read_text() == config_json

    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    text = runner.plan(config(tmp_path, *argv))
    assert "koch cuda float32 seed 0: 128 training pairs; 3-way 1-shot; 0/1 done" in text
    assert "2 cell(s), 1 to run" in text
    runner.run(config(tmp_path, *argv), print_summary=False)
    rows = read_csv(tmp_path / "accuracy.csv")
    assert sorted((r["device"], r["status"]) for r in rows) == [("cpu", "ok"), ("cuda", "ok")]


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--lr", "nan"), "--lr nan: must be a finite number > 0"),
        (("--lr", "-1"), "--lr -1.0: must be a finite number > 0"),
        (("--lr", "inf"), "--lr inf: must be a finite number > 0"),
        (("--episodes", "0"), "--episodes 0: must be >= 2"),
        (("--episodes", "1"), "--episodes 1: must be >= 2, as the 95% CI is over episodes"),
        (("--episodes", "-5"), "--episodes -5: must be >= 2"),
        (("--train-pairs", "-1"), "--train-pairs -1: must be >= 0"),
        (("--batch-size", "0"), "--batch-size 0: must be even"),
        (("--seeds", "-1"), "--seeds -1: seeds must be >= 0"),
        (("--save-pairs", "-1"), "--save-pairs -1: must be >= 0"),
        (("--val-every", "-1"), "--val-every -1: must be >= 0 (0 = validate once, after the last step)"),
        (("--val-episodes", "0"), "--val-episodes 0: must be >= 1"),
    ],
)
def test_bad_numbers_are_refused_up_front_naming_the_flag(tmp_path, argv, message):
    from siamese_bench.commands import UserError

    with pytest.raises(UserError, match=re.escape(message)):
        config(tmp_path, *argv)


def test_more_threads_than_cores_warns(tmp_path, capsys):
    config(tmp_path, "--threads", "4096")
    assert "warning: --threads 4096 is more than the" in capsys.readouterr().err
    config(tmp_path, "--threads", "1")
    assert "warning" not in capsys.readouterr().err


def test_validation_flags_set_every_grid_and_reach_the_training(tmp_path, monkeypatch, digit_folder):
    """--val-every / --val-episodes override the preset's validation cadence (as --train-pairs does its budget):
    in the grids, in config.json, and in the TrainConfig and validation episodes of each cell."""
    assert {(g.val_every, g.val_episodes) for g in config(tmp_path).grids} == {(512, 50)}  # the preset's
    spec = f"folder:{digit_folder(tmp_path / 'mine')}@16"  # a protocol with a validation part
    argv = ["run", "--protocols", spec, "--heads", "contrastive", "--train-pairs", "256", "--episodes", "30"]
    argv += ["--devices", "cpu", "--quiet", "--no-throughput", "--out", str(tmp_path / "out")]

    def cfg(*extra):
        return runner.config_from_args(build_parser().parse_args([*argv, *extra]))

    first = cfg("--val-every", "64", "--val-episodes", "7")
    assert all((g.val_every, g.val_episodes) == (64, 7) for g in first.grids)
    seen = []
    real_train = cell.train

    def spy(model, images, index, tcfg, val=None, **kw):
        seen.append((tcfg.val_every, tcfg.val_episodes, None if val is None else len(val)))
        return real_train(model, images, index, tcfg, val=val, **kw)

    monkeypatch.setattr(cell, "train", spy)
    runner.run(first, print_summary=False)
    assert seen == [(64, 7, 7)]
    doc = json.loads((tmp_path / "out" / "config.json").read_text())
    assert {(g["val_every"], g["val_episodes"]) for g in doc["grids"]} == {(64, 7)}
    # a finished cell is not re-run with another validation cadence, which would select other weights
    with pytest.raises(UserError, match="val_every"):
        runner.run(cfg("--val-every", "32", "--val-episodes", "7"), print_summary=False)


def test_episodes_given_is_used_as_is(tmp_path):
    (group, *_) = runner.expand(config(tmp_path, "--episodes", "2"))
    assert runner.base_row(group, 3, 1)["episodes"] == 2


def test_a_run_with_failed_cells_exits_1_and_its_error_rows_never_block_a_retry(
    tmp_path, monkeypatch, capsys
):
    from siamese_bench.cli import main
    from siamese_bench.train import NonFiniteLossError

    def diverge(*a, **k):
        raise NonFiniteLossError("training loss became nan")

    argv = ["run", "--preset", "smoke", "--out", str(tmp_path), "--episodes", "20", "--quiet"]
    argv += ["--no-throughput", "--devices", "cpu", "--heads", "koch"]
    real_train = cell.train
    monkeypatch.setattr(cell, "train", diverge)
    assert main([*argv, "--train-pairs", "128"]) == 1
    err = capsys.readouterr().err
    assert (
        f"2 cell(s) failed: see the error column of {tmp_path / 'accuracy.csv'}; fix the cause and re-run "
        "with --retry-failed (a cell whose episodes its protocol cannot make, e.g. more ways than test classes, "
        "needs other --ways or --shots instead)"
    ) in err
    # the same command again skips the error rows: still exit 1, saying so (without --quiet it does not say
    # "nothing was run": test_a_re_run_that_skips_error_rows_says_they_failed_not_that_nothing_was_run)
    assert main([*argv, "--train-pairs", "128"]) == 1
    err = capsys.readouterr().err
    assert "2 cell(s) failed" in err and "--retry-failed" in err
    monkeypatch.setattr(cell, "train", real_train)
    # other settings: the recorded cells are only errors, so nothing would be skipped
    assert main([*argv, "--train-pairs", "256", "--retry-failed"]) == 0
    assert main([*argv, "--train-pairs", "256", "--retry-failed"]) == 0  # and again: nothing to do
    rows = read_csv(tmp_path / "accuracy.csv")
    assert [(r["status"], r["train_pairs"]) for r in rows] == [("ok", "256")] * 2
    assert main([*argv, "--train-pairs", "128"]) == 2  # the ok rows are of 256 pairs
    assert "train_pairs 256 (recorded) vs 128 (now)" in capsys.readouterr().err


def test_an_impossible_way_makes_the_run_exit_1(tmp_path, monkeypatch, capsys):
    from siamese_bench.cli import main

    monkeypatch.setattr(cell, "train", _no_training)
    argv = ["run", "--preset", "smoke", "--out", str(tmp_path), "--episodes", "20", "--quiet"]
    monkeypatch.delenv("SIAMESE_BENCH_DEBUG", raising=False)
    assert main([*argv, "--no-throughput", "--devices", "cpu", "--heads", "koch", "--ways", "50"]) == 1
    err = capsys.readouterr().err
    assert "1 cell(s) failed" in err
    assert "Traceback" not in err  # a cell's ValueError is one line (row and log), not a traceback
    (row,) = read_csv(tmp_path / "accuracy.csv")
    assert row["error"].startswith("ValueError: n_way=50")


def test_out_must_name_a_folder(tmp_path, monkeypatch):
    from siamese_bench.commands import UserError

    monkeypatch.chdir(tmp_path)
    for out in ("", "."):
        with pytest.raises(UserError, match="--out .* names the current directory"):
            config(out)
    picture = tmp_path / "x.png"
    picture.write_bytes(b"png")
    with pytest.raises(UserError, match=f"--out {picture}: {picture} is a file"):
        config(picture)
    with pytest.raises(UserError, match=f"--out {picture / 'run'}: {picture} is a file"):
        config(picture / "run")
    assert not list(tmp_path.glob("*.csv"))


def test_an_interrupted_resume_is_recorded_so_its_rows_keep_their_settings(tmp_path, monkeypatch):
    """A resume that adds cells and is stopped after writing some: config.json records that run (marked
    interrupted), so a later run with other settings for those cells is refused instead of mixing rows."""
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"))
    real = cell.CellRunner.run_group

    def stopped(self, group, cells):
        yield from real(self, group, cells)
        raise KeyboardInterrupt  # after the group's rows are written

    monkeypatch.setattr(cell.CellRunner, "run_group", stopped)
    with pytest.raises(KeyboardInterrupt):
        runner.run(config(tmp_path, "--heads", "contrastive", "--ways", "3", "--train-pairs", "256"))
    doc = json.loads((tmp_path / "config.json").read_text())
    assert [r.get("interrupted", False) for r in doc["runs"]] == [False, True]
    monkeypatch.setattr(cell.CellRunner, "run_group", real)
    with pytest.raises(UserError, match="train_pairs 256 \\(recorded\\) vs 512 \\(now\\)"):
        runner.run(config(tmp_path, "--heads", "contrastive", "--ways", "3", "--train-pairs", "512"))
    runner.run(config(tmp_path, "--heads", "contrastive", "--ways", "3", "--train-pairs", "256"))  # resumes


_KILLED_AFTER_ITS_ROWS = """
import os, signal, sys
from siamese_bench import cell
from siamese_bench.cli import main
from siamese_bench.runner import base_row


def killed(self, group, cells):  # the group's rows, then SIGKILL: no handler runs, nothing is cleaned up
    for n, k in cells:
        yield {**base_row(group, n, k), "status": "ok", "accuracy": 0.5, "ci95": 0.1, "timestamp": "t"}
    os.kill(os.getpid(), signal.SIGKILL)


cell.CellRunner.run_group = killed
sys.exit(main(sys.argv[1:]))
"""


def _run_killed_after_its_rows(tmp_path, *argv) -> None:
    """`run` in a child process, as the test's config() would, killed with SIGKILL after its first group's rows
    are written."""
    args = [
        "run",
        "--preset",
        "smoke",
        "--out",
        str(tmp_path),
        "--episodes",
        "20",
        "--no-throughput",
        "--quiet",
    ]
    child = subprocess.run([sys.executable, "-c", _KILLED_AFTER_ITS_ROWS, *args, *argv], capture_output=True)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()


def test_a_resume_killed_on_the_spot_is_recorded_so_its_rows_keep_their_settings(tmp_path, monkeypatch):
    """As for Ctrl-C, but for a kill no handler sees (SIGKILL, a power cut): config.json records the run
    before each row it writes, so a later run with other settings for those cells is refused."""
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    _run_killed_after_its_rows(tmp_path, "--heads", "contrastive", "--ways", "3", "--train-pairs", "256")
    assert len(read_csv(tmp_path / "accuracy.csv")) == 2
    doc = json.loads((tmp_path / "config.json").read_text())
    assert [(r["rows_written"], r.get("interrupted", False)) for r in doc["runs"]] == [(1, False), (1, True)]
    with pytest.raises(UserError, match="train_pairs 256 \\(recorded\\) vs 512 \\(now\\)"):
        runner.run(config(tmp_path, "--heads", "contrastive", "--ways", "3", "--train-pairs", "512"))
    runner.run(config(tmp_path, "--heads", "contrastive", "--ways", "3", "--train-pairs", "256"))  # resumes


def test_a_run_removes_the_temp_files_a_killed_run_left_and_says_so(tmp_path, monkeypatch, capsys):
    """A run killed mid-write (SIGKILL) leaves its temp files; the next run into the folder deletes them (the
    snapshots folder can then go with its last snapshot) instead of letting them pile up."""
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    (tmp_path / "snapshots").mkdir(parents=True)
    stale = [
        tmp_path / ".accuracy.csv.k2_x9abc.tmp",
        tmp_path / "snapshots" / ".digits_seed0.pt.0a1b2c3d.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half")
    runner.run(dataclasses.replace(config(tmp_path, "--heads", "koch", "--ways", "3"), quiet=False), False)
    assert not any(path.exists() for path in stale)
    err = capsys.readouterr().err
    assert f"removed 2 temp file(s) of an interrupted write from {tmp_path}: " in err
    assert ".accuracy.csv.k2_x9abc.tmp" in err and len(read_csv(tmp_path / "accuracy.csv")) == 1


def test_without_out_cells_outside_the_preset_are_refused_and_a_finished_grid_says_so(
    tmp_path, monkeypatch, capsys
):
    """Without --out a run writes to results/<preset>/ (the committed results): cells the preset does not
    have are refused there, and a grid already finished says that nothing was run and how to run it."""
    monkeypatch.setattr(runner, "results_root", lambda: tmp_path)
    argv = ["run", "--preset", "smoke", "--train-pairs", "128", "--episodes", "20", "--no-throughput"]
    argv += ["--devices", "cpu", "--heads", "koch", "--ways", "3"]
    with pytest.raises(UserError, match="not in the smoke preset .* --out results/mine"):
        runner.config_from_args(build_parser().parse_args([*argv[:-4], "--heads", "cosine", "--ways", "3"]))
    config_ = runner.config_from_args(build_parser().parse_args(argv))
    assert config_.out == tmp_path / "smoke"
    runner.run(config_)
    out = capsys.readouterr()
    # --no-throughput: the closing line names the files written, without throughput.csv
    assert f"wrote {tmp_path / 'smoke'}/accuracy.csv, summary.md in" in out.out + out.err
    runner.run(config_)
    assert "nothing was run: every cell of this grid is already in" in capsys.readouterr().err


def test_dry_run_makes_the_settings_check_of_a_real_run(tmp_path):
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"))
    with pytest.raises(UserError, match="train_pairs 128 \\(recorded\\) vs 256 \\(now\\)"):
        runner.plan(config(tmp_path, "--heads", "koch", "--ways", "3", "--train-pairs", "256"))


def test_a_groups_snapshot_is_named_by_its_cell_and_records_what_it_must_match(tmp_path):
    """One snapshot file per protocol/backbone/head/device/dtype/seed, and an identity holding everything a
    resumed training must share with the interrupted one."""
    from types import SimpleNamespace

    import torch

    from siamese_bench.train import TrainConfig

    runner_ = cell.CellRunner(SimpleNamespace(out=tmp_path, snapshot_every=60.0, quiet=True))
    proto = SimpleNamespace(name="digits-heldout", version=1)
    paths = set()
    for dtype in ("float32", "bfloat16-amp"):
        for seed in (0, 1):
            group = {
                "protocol": proto,
                "backbone": "small-cnn",
                "head": "koch",
                "device": "cpu",
                "dtype": dtype,
            }
            snaps = runner_.snapshots(
                {**group, "seed": seed}, TrainConfig(), SimpleNamespace(hash="h"), (9, 1, 8, 8)
            )
            paths.add(snaps.path)
    assert len(paths) == 4 and all(p.parent == tmp_path / "snapshots" for p in paths)
    assert snaps.every_s == 60.0 and snaps.say is None
    assert set(snaps.identity) == {
        "protocol",
        "model",
        "device",
        "train_config",
        "split_hash",
        "images",
        "git_hash",
        "code",
        "torch",
        "threads",
    }
    assert snaps.identity["device"] == "cpu bfloat16-amp" and snaps.identity["images"] == (9, 1, 8, 8)
    assert snaps.identity["threads"] == torch.get_num_threads()
    assert snaps.identity["train_config"] == dataclasses.asdict(TrainConfig())
    off = cell.CellRunner(SimpleNamespace(out=tmp_path, snapshot_every=0, quiet=True))
    assert off.snapshots({**group, "seed": 0}, TrainConfig(), SimpleNamespace(hash="h"), (9, 1, 8, 8)) is None


def test_a_frozen_episodes_file_must_match_every_field_its_name_stands_for(tmp_path):
    import torch

    from siamese_bench.protocols import get_protocol

    runner_ = cell.CellRunner(config(tmp_path))
    proto = get_protocol("digits-heldout")
    data, split, parts = runner_.parts(proto, "cpu")

    def episodes():
        return runner_.episodes(proto, data, split, parts["test"], 3, 1, 20, 0)

    ep = episodes()
    (path,) = (tmp_path / "episodes").glob("*.pt")
    assert torch.equal(episodes().query, ep.query)  # read back as drawn
    for changes, shown in (
        ({"seed": ep.seed + 1}, f"seed {ep.seed + 1} (this cell needs {ep.seed})"),
        ({"split_hash": "0" * 16}, "split '0000000000000000'"),
        ({"within_group": True}, "within_group True (this cell needs False)"),
        ({"same_positions": True}, "same_positions True (this cell needs False)"),
        ({"query": ep.query[:, :3], "n_query": 1}, "n_query 1 (this cell needs 5)"),
        ({"support": ep.support.repeat(1, 2), "k_shot": 2}, "k_shot 2 (this cell needs 1)"),
        ({"support": ep.support[:10], "query": ep.query[:10], "classes": ep.classes[:10]}, "episodes 10"),
    ):
        dataclasses.replace(ep, **changes).save(path)
        with pytest.raises(ValueError, match=re.escape(f"holds other episodes than its name says: {shown}")):
            episodes()


def test_throughput_rows_measure_each_shape_once_and_failed_ones_only_with_retry_failed(
    tmp_path, monkeypatch
):
    """A failed throughput row is kept, as a failed cell is, and measured again only with --retry-failed."""
    from types import SimpleNamespace

    from siamese_bench import throughput

    calls = []

    def measure(row, channels, **kwargs):
        calls.append((row["dtype"], row["batch_size"], channels, kwargs["amp"]))
        return {**row, "status": "ok"}

    monkeypatch.setattr(throughput, "measure", measure)

    class Recorded:  # float32 at 16 measured, at 32 failed
        def get(self, row):
            if row["dtype"] == "float32":
                return {"status": "ok" if row["batch_size"] == 16 else "error"}
            return None

    for retry_failed in (False, True):
        calls.clear()
        cfg = SimpleNamespace(
            out=tmp_path,
            throughput_batch_sizes=(16, 32),
            channels_last=False,
            forward_chunk=0,
            retry_failed=retry_failed,
        )
        runner_ = cell.CellRunner(cfg)
        for seed, dtype in ((0, "float32"), (1, "float32"), (0, "bfloat16-amp")):  # two seeds: one shape
            group = {"backbone": "small-cnn", "head": "koch", "device": "cpu", "dtype": dtype, "seed": seed}
            runner_._add_shape(group, 1, 8)
        logged = []
        rows = list(runner_.throughput_rows(Recorded(), logged.append))
        bf16 = [("bfloat16-amp", 16, 1, True), ("bfloat16-amp", 32, 1, True)]
        assert calls == ([("float32", 32, 1, False)] if retry_failed else []) + bf16
        assert [r["image_size"] for r in rows] == [8] * len(calls)
        kept = "throughput: small-cnn+koch cpu float32 8x8, batch 32: failed earlier, kept (--retry-failed"
        assert (kept in "\n".join(logged)) is not retry_failed
        assert [k["batch_size"] for k in runner_.throughput_keys()] == [16, 32, 16, 32]


def test_one_model_and_size_in_grayscale_and_colour_warns_that_one_is_not_measured(tmp_path, monkeypatch):
    """throughput.csv has no channel count: a grayscale and a colour protocol at one size share a row. The first
    is measured; the other is named in a warning instead of being skipped silently."""
    from types import SimpleNamespace

    from siamese_bench import throughput

    calls = []
    monkeypatch.setattr(throughput, "measure", lambda row, channels, **kw: calls.append(channels) or row)
    cfg = SimpleNamespace(out=tmp_path, throughput_batch_sizes=(16,), channels_last=False, forward_chunk=0)
    runner_ = cell.CellRunner(cfg)
    group = {"backbone": "pixels", "head": "l2", "device": "cpu", "dtype": "float32", "seed": 0}
    for channels in (3, 1):
        runner_._add_shape(group, channels, 28)

    class Empty:
        def get(self, row):
            return None

    with pytest.warns(
        UserWarning,
        match=r"pixels\+l2 cpu float32 28x28 is measured on 3-channel images only .* its "
        r"1-channel cells are not measured separately",
    ):
        rows = list(runner_.throughput_rows(Empty()))
    assert calls == [3] and len(rows) == 1


def test_a_parameter_free_model_is_never_trained_whatever_the_budget(tmp_path):
    """pixels + l2 has nothing to train: with a training budget it is scored as it is (0 pairs), not made
    an error row by an optimizer without parameters."""
    runner.run(config(tmp_path, "--backbones", "pixels", "--heads", "l2", "--ways", "3"), print_summary=False)
    (row,) = read_csv(tmp_path / "accuracy.csv")
    assert row["status"] == "ok", row["error"]
    assert row["train_pairs"] == "0" and float(row["accuracy"]) > 1 / 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--ways", "1"), "--ways 1: an episode needs at least 2 classes"),
        (("--shots", "0"), "--shots 0: K must be at least 1"),
        (("--threads", "0"), "--threads 0: must be >= 1"),
        (("--throughput-batch-sizes", "0"), "--throughput-batch-sizes 0: each must be even and >= 2"),
    ],
)
def test_episode_shapes_and_counts_no_run_can_use_are_refused_naming_the_flag(tmp_path, argv, message):
    """The boundaries of the up-front checks: one way, zero shots, zero threads and zero-pair throughput
    batches are refused before anything runs (2 ways, 1 shot, 1 thread and batches of 2 are accepted)."""
    with pytest.raises(UserError, match=re.escape(message)):
        config(tmp_path, *argv)
    flag, bad = argv
    config(tmp_path, flag, {"--ways": "2", "--shots": "1", "--threads": "1"}.get(flag, "2"))


def test_bf16_on_a_cpu_of_unknown_instructions_does_not_warn(tmp_path, monkeypatch, capsys):
    """Without /proc/cpuinfo cpu_has_bf16() is None (unknown): no warning, as it may well be fast there."""
    from siamese_bench import provenance

    monkeypatch.setattr(provenance, "cpu_has_bf16", lambda: None)
    config(tmp_path, "--amp", "bf16")
    assert capsys.readouterr().err == ""


def test_threads_equal_to_the_cores_do_not_warn(tmp_path, capsys):
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    config(tmp_path, "--threads", str(cores))
    assert "warning" not in capsys.readouterr().err
    config(tmp_path, "--threads", str(cores + 1))
    assert f"warning: --threads {cores + 1} is more than the {cores} core(s)" in capsys.readouterr().err


def test_a_snapshot_interval_that_is_not_a_number_is_refused(tmp_path):
    with pytest.raises(UserError, match="--snapshot-every nan: seconds must be >= 0"):
        config(tmp_path, "--snapshot-every", "nan")


def test_offline_reaches_the_dataset_loading(tmp_path):
    """--offline turns off downloads of missing datasets; without it they are fetched."""
    assert config(tmp_path).download is True
    assert config(tmp_path, "--offline").download is False


def test_an_empty_seed_list_is_refused(tmp_path):
    """`--seeds ,` parses to no seeds, which would make a grid of no cells that silently runs nothing."""
    with pytest.raises(UserError, match="--seeds: give at least one seed"):
        config(tmp_path, "--seeds", ",")


def test_out_says_whether_it_is_a_file_or_below_one_and_refuses_a_dangling_link(tmp_path):
    """A file as --out is "not a folder"; a path below a file says no folder can be made there; a symlink
    to nothing (where mkdir would fail) is refused as a broken link."""
    picture = tmp_path / "x.png"
    picture.write_bytes(b"png")
    with pytest.raises(UserError, match="is a file, not a folder"):
        config(picture)
    with pytest.raises(UserError, match="is a file, so no folder can be made below it"):
        config(picture / "run")
    dangling = tmp_path / "gone"
    dangling.symlink_to(tmp_path / "missing")
    with pytest.raises(UserError, match=re.escape(f"--out {dangling}: {dangling} is a broken link (to")):
        config(dangling)


def test_the_progress_line_of_a_throughput_row_of_a_parameter_free_model_says_nothing_to_train():
    """A model without parameters (pixels + l2) has train_pairs_per_s None: its progress line must not try
    to format it (which would stop a run without --quiet), and an error row shows its message."""
    row = {
        "status": "ok",
        "train_pairs_per_s": None,
        "eval_images_per_s": 1234.4,
        "eval_episodes_per_s": 5.25,
    }
    assert runner._throughput_text(row) == "nothing to train, eval 1,234 images/s, 5.2 episodes/s"
    row["train_pairs_per_s"] = 2000.0
    assert runner._throughput_text(row).startswith("train 2,000.0 pairs/s, eval")
    assert runner._throughput_text({"status": "error", "error": "boom"}) == "error: boom"


def test_optional_cuda_is_absent_without_a_gpu_and_present_with_one(tmp_path, monkeypatch):
    """The optional device "cuda?" (the presets' default) adds no groups, and so no skipped rows, on a
    machine without a GPU."""
    argv = ("--heads", "koch", "--ways", "3", "--devices", "cpu,cuda?")
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    groups = runner.expand(config(tmp_path, *argv))
    assert [(g["device"], g["unavailable"]) for g in groups] == [("cpu", None)]
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: True)
    groups = runner.expand(config(tmp_path, *argv))
    assert [(g["device"], g["unavailable"]) for g in groups] == [("cpu", None), ("cuda", None)]


def test_error_rows_are_run_again_only_with_retry_failed(tmp_path, monkeypatch):
    """Without --retry-failed a re-run leaves a group's error rows alone (no training, still exit 1)."""
    calls = []

    def failing_rows(self, group, cells):
        calls.append(list(cells))
        for n, k in cells:
            yield {**runner.base_row(group, n, k), "status": "error", "error": "X: boom", "timestamp": "t"}

    monkeypatch.setattr(cell.CellRunner, "run_group", failing_rows)
    argv = ("--heads", "koch")
    assert runner.run(config(tmp_path, *argv), print_summary=False) == 1
    assert calls == [[(3, 1), (5, 1)]]
    assert runner.run(config(tmp_path, *argv), print_summary=False) == 1
    assert len(calls) == 1
    # the dry run says they failed (not "done"), and that --retry-failed would run them
    assert "0/2 done, 2 failed (--retry-failed runs them again)" in runner.plan(config(tmp_path, *argv))
    plan = runner.plan(config(tmp_path, *argv, "--retry-failed"))
    assert plan.splitlines()[0].endswith("; 0/2 done")
    assert runner.run(config(tmp_path, *argv, "--retry-failed"), print_summary=False) == 1
    assert calls == [[(3, 1), (5, 1)]] * 2


def test_a_re_run_that_skips_error_rows_says_they_failed_not_that_nothing_was_run(
    tmp_path, monkeypatch, capsys
):
    def failing_rows(self, group, cells):
        for n, k in cells:
            yield {**runner.base_row(group, n, k), "status": "error", "error": "X: boom", "timestamp": "t"}

    monkeypatch.setattr(cell.CellRunner, "run_group", failing_rows)
    loud = dataclasses.replace(config(tmp_path, "--heads", "koch"), quiet=False)
    assert runner.run(loud, print_summary=False) == 1
    capsys.readouterr()
    assert runner.run(loud, print_summary=False) == 1
    err = capsys.readouterr().err
    assert "2 cell(s) failed" in err and "nothing was run" not in err


def test_a_folder_whose_config_json_was_lost_is_not_resumed(tmp_path, monkeypatch):
    """Rows without a config.json (deleted, or copied without it): their settings are unknown, so a resume could
    mix rows of other settings into the table and record this run's settings as theirs. Refused, naming the
    file, for a real run and a dry run alike; nothing is written."""
    from siamese_bench.commands import UserError

    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    assert runner.run(config(tmp_path, "--heads", "koch"), print_summary=False) == 0
    (tmp_path / "config.json").unlink()
    before = (tmp_path / "accuracy.csv").read_text()
    for attempt in (runner.run, runner.plan):
        with pytest.raises(
            UserError, match=r"config.json is missing, and .* holds \d+ row\(s\) made with the settings"
        ):
            attempt(config(tmp_path, "--heads", "koch", "--train-pairs", "256"))
    assert (tmp_path / "accuracy.csv").read_text() == before and not (tmp_path / "config.json").exists()


def test_a_run_that_only_records_skipped_cells_is_recorded_in_config_json(tmp_path, monkeypatch):
    """Skip rows are rows this run wrote: config.json gets a run entry for them, as for any other row."""
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    runner.run(config(tmp_path, "--heads", "koch", "--ways", "3"), print_summary=False)
    runner.run(
        config(tmp_path, "--heads", "koch", "--ways", "3", "--devices", "cpu,cuda"), print_summary=False
    )
    rows = read_csv(tmp_path / "accuracy.csv")
    assert sorted((r["device"], r["status"]) for r in rows) == [("cpu", "ok"), ("cuda", "skipped")]
    runs = json.loads((tmp_path / "config.json").read_text())["runs"]
    assert [r["rows_written"] for r in runs] == [1, 1]


def test_an_error_text_is_one_line_of_at_most_500_characters(monkeypatch):
    monkeypatch.delenv("SIAMESE_BENCH_DEBUG", raising=False)
    assert runner.error_text(ValueError("bad\nsplit")) == "ValueError: bad split"
    assert runner.error_text(ValueError("x" * 1000)) == ("ValueError: " + "x" * 1000)[:500]


@pytest.mark.parametrize(
    "field, value",
    [
        ("train_pairs", 1),
        ("batch_size", 2),
        ("lr", 0.5),
        ("val_every", 1),
        ("val_episodes", 1),
        ("distort", True),
        ("episodes", 2),
    ],
)
def test_each_training_or_test_setting_tells_two_grids_of_one_cell_apart(field, value):
    """Every field a cell is trained or tested with is a setting: two grids holding one cell that differ in
    any of them are refused (the second grid's cell would silently get the first's)."""
    from siamese_bench.presets import Grid, cell_settings

    a = Grid(("vinyals",), ("conv4",), ("koch",))
    b = dataclasses.replace(a, **{field: value})
    with pytest.raises(ValueError, match="vinyals/conv4/koch/0 .*two grids with different settings"):
        cell_settings((a, b))
    assert cell_settings((a, b), strict=False) == {("vinyals", "conv4", "koch", 0): a.settings}


def test_naming_every_protocol_of_the_preset_narrows_to_all_of_them_in_the_presets_order():
    """--protocols listing exactly the preset's protocols keeps every grid with its own settings (it is a
    narrowing, not a replacement), and a narrowing keeps the grid's order of names, not the flag's."""
    quick = PRESETS.get("quick").grids
    assert _grids("--protocols", "vinyals,mnist-heldout") == quick
    assert all(g.heads == ("koch", "triplet") for g in _grids("--heads", "triplet,koch"))


def test_protocols_the_preset_lacks_get_their_own_ways_shots_and_episodes():
    """The smoke preset's grid fixes ways 3,5, shot 1 and 200 episodes for digits; another protocol named
    with --protocols takes its own defaults for all three, keeping only the training settings."""
    (g,) = _grids("--preset", "smoke", "--protocols", "vinyals")
    smoke = PRESETS.get("smoke").grids[0]
    assert (g.ways, g.shots, g.episodes) == (None, None, None)
    assert (g.train_pairs, g.val_every, g.val_episodes) == (smoke.train_pairs, 512, 50)


def test_cpu_presets_add_cuda_when_present_and_the_paper_preset_requires_it(tmp_path, monkeypatch):
    """quick and standard run on the CPU plus CUDA when present; paper is a GPU grid: without a GPU it is
    refused with the no-CUDA message instead of silently running nothing."""

    def resolved(*argv):
        return runner.config_from_args(build_parser().parse_args(["run", *argv, "--out", str(tmp_path)]))

    assert resolved("--preset", "quick").devices == ("cpu", "cuda?")
    assert resolved("--preset", "standard").devices == ("cpu", "cuda?")
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="CUDA was requested"):
        resolved("--preset", "paper")


@pytest.mark.parametrize(
    "flag", ["--heads", "--backbones", "--protocols", "--datasets", "--devices", "--ways", "--shots"]
)
def test_an_empty_list_is_refused_rather_than_running_nothing_or_the_defaults(tmp_path, flag):
    """`--heads ""` (e.g. an unset shell variable) made a grid of no cells that wrote an empty results folder
    with exit 0; `--datasets ""`, `--devices ""` and `--ways ""` silently ran the preset's instead."""
    with pytest.raises(UserError, match=f"{flag}: the list is empty"):
        config(tmp_path / "out", flag, "")
    with pytest.raises(UserError, match="--throughput-batch-sizes: the list is empty"):
        config(tmp_path / "out", "--throughput-batch-sizes", ",")
    assert not (tmp_path / "out").exists()


def test_a_new_seed_with_other_settings_than_the_finished_seeds_is_refused(tmp_path, monkeypatch):
    """The summary averages a cell's seeds: a seed trained with other settings beside finished ones would be
    averaged with them as if it were one more seed of the same setting."""
    from siamese_bench.commands import UserError

    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    runner.run(config(tmp_path, "--heads", "koch", "--lr", "0.001"), print_summary=False)
    before = (tmp_path / "accuracy.csv").read_text()
    with pytest.raises(
        UserError,
        match=r"digits-heldout/small-cnn/koch \(protocol/backbone/head\) on cpu float32 seed 0 made with other "
        r"settings than this run's seed 1: lr 0.001 \(recorded\) vs 0.01 \(now\)\. The summary would average",
    ):
        runner.run(config(tmp_path, "--heads", "koch", "--seeds", "1", "--lr", "0.01"), print_summary=False)
    assert (tmp_path / "accuracy.csv").read_text() == before
    # the recorded settings for the new seed, or other settings for another head: nothing mixed
    runner.run(config(tmp_path, "--heads", "koch", "--seeds", "1", "--lr", "0.001"), print_summary=False)
    runner.run(
        config(tmp_path, "--heads", "contrastive", "--seeds", "1", "--lr", "0.01"), print_summary=False
    )
    assert {(r["head"], r["seed"]) for r in read_csv(tmp_path / "accuracy.csv")} == {
        ("koch", "0"),
        ("koch", "1"),
        ("contrastive", "1"),
    }


def _recording_measure(measured: list, what):
    """A stand-in for throughput.measure that appends what(row, channels) to `measured` and returns an ok row."""

    def measure(row, channels, *args, **kwargs):
        measured.append(what(row, channels))
        speeds = {"train_pairs_per_s": 1.0, "eval_images_per_s": 2.0, "eval_episodes_per_s": 3.0}
        return {**row, "status": "ok", **speeds}

    return measure


def test_a_resume_measures_the_throughput_rows_an_earlier_run_left_out(tmp_path, monkeypatch):
    """Every cell done but the throughput table not (the run was stopped during it, or ran --no-throughput):
    a re-run measures the missing rows, and only those."""
    from siamese_bench import throughput

    measured = []
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    monkeypatch.setattr(
        throughput, "measure", _recording_measure(measured, lambda row, channels: row["head"])
    )

    def run(heads, *extra):
        argv = ("--ways", "3", "--heads", heads, "--throughput-batch-sizes", "16", *extra)
        assert runner.run(config(tmp_path, *argv, throughput=True), print_summary=False) == 0

    run("koch,contrastive", "--no-throughput")
    assert measured == [] and not (tmp_path / "throughput.csv").exists()
    run("koch")
    assert measured == ["koch"]
    run("koch,contrastive")
    assert measured == ["koch", "contrastive"]
    run("koch,contrastive")
    assert measured == ["koch", "contrastive"]
    assert sorted(r["head"] for r in read_csv(tmp_path / "throughput.csv")) == ["contrastive", "koch"]


def test_a_finished_grid_measures_its_throughput_rows_without_reading_any_data(tmp_path, monkeypatch):
    """A resume whose cells are all done needs only the image shape of each model's protocol for its
    throughput rows: it reads no dataset (it used to load MNIST, and offline without the files it stopped with
    a missing-data error after saying every cell was already there)."""
    from siamese_bench import throughput

    def no_data(self, proto, device):
        raise AssertionError(f"read {proto.dataset}")

    measured = []
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    monkeypatch.setattr(cell.CellRunner, "data", no_data)
    monkeypatch.setattr(
        throughput, "measure", _recording_measure(measured, lambda row, ch: (row["image_size"], ch))
    )
    argv = (
        "--protocols",
        "mnist-heldout",
        "--heads",
        "koch",
        "--ways",
        "3",
        "--throughput-batch-sizes",
        "16",
    )
    assert runner.run(config(tmp_path, *argv, "--no-throughput"), print_summary=False) == 0
    assert runner.run(config(tmp_path, *argv, throughput=True), print_summary=False) == 0
    assert measured == [(28, 1)]
    assert [r["image_size"] for r in read_csv(tmp_path / "throughput.csv")] == ["28"]


@pytest.mark.parametrize("device", ["cpu:0", "gpu", "cuda:x", "cuda:", "CUDA", "cpu?x"])
def test_a_device_other_than_cpu_cuda_or_cuda_n_is_refused(tmp_path, device):
    """`cpu:0` was accepted and wrote rows whose device `cpu:0` started a second set of cells beside `cpu`."""
    args = build_parser().parse_args(
        ["run", "--preset", "smoke", "--devices", device, "--out", str(tmp_path)]
    )
    with pytest.raises(UserError, match=re.escape(f"unknown device {device!r}; valid: cpu, cuda (or cuda:N")):
        runner.config_from_args(args)


def test_the_no_gpu_message_names_the_devices_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = build_parser().parse_args(
        ["run", "--preset", "smoke", "--devices", "cuda:1", "--out", str(tmp_path)]
    )
    with pytest.raises(UserError, match=re.escape("CUDA was requested (--devices cuda:1) but")):
        runner.config_from_args(args)


def test_a_gpu_number_the_machine_does_not_have_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    argv = ["run", "--preset", "smoke", "--out", str(tmp_path), "--devices"]
    with pytest.raises(
        UserError, match=re.escape("--devices cuda:2: this machine has 2 GPU(s), numbered from 0")
    ):
        runner.config_from_args(build_parser().parse_args([*argv, "cpu,cuda:2"]))
    assert runner.config_from_args(build_parser().parse_args([*argv, "cuda:1"])).devices == ("cuda:1",)


@pytest.mark.parametrize(("flag", "value"), [("--ways", "5"), ("--shots", "1,5")])
def test_a_shape_lakes_fixed_trials_lack_is_refused_before_loading(tmp_path, flag, value):
    """`--ways 5` on lake-runs was listed as a cell to run, then became an error row once the data was loaded."""
    argv = ["run", "--preset", "quick", "--protocols", "lake-runs", "--out", str(tmp_path), flag, value]
    bad = "5" if flag == "--shots" else value
    with pytest.raises(
        UserError, match=re.escape(f"{flag} {bad}: lake-runs is scored on fixed trials that are")
    ):
        runner.config_from_args(build_parser().parse_args(argv))
    argv[-1] = "20" if flag == "--ways" else "1"  # the trials' own shape is accepted
    assert runner.config_from_args(build_parser().parse_args(argv)).grids


def test_dry_run_states_the_pairs_a_group_trains_and_a_throughput_only_plan_has_no_cells(tmp_path, capsys):
    """The dry run said "20,000 training pairs" where the rows record 20,096 (whole batches of 128), and a
    --throughput-only plan listed and counted accuracy cells that such a run never runs."""
    from siamese_bench.cli import main

    argv = ["run", "--preset", "smoke", "--out", str(tmp_path / "run"), "--devices", "cpu", "--dry-run"]
    assert main([*argv, "--train-pairs", "200", "--batch-size", "64"]) == 0
    text = capsys.readouterr().out
    assert (
        "small-cnn+koch cpu float32 seed 0: 256 training pairs (200 asked, whole batches of 64); 3-way"
        in text
    )
    assert main([*argv, "--throughput-only"]) == 0
    text = capsys.readouterr().out
    assert "[1/2] digits-heldout small-cnn+koch cpu float32: throughput at batch size(s) 64" in text
    assert "--throughput-only: 2 model(s) x image size(s), no accuracy cells" in text
    assert "cell(s)" not in text and "-way" not in text and not (tmp_path / "run").exists()


def test_no_distort_turns_off_a_presets_distortions_and_distort_turns_them_on(tmp_path):
    """`--distort` could only turn distortions on: the paper preset's koch grid could not be run without them."""
    argv = ["run", "--preset", "paper", "--protocols", "koch2015", "--out", str(tmp_path), "--dry-run"]
    distort = [g.distort for g in runner.config_from_args(build_parser().parse_args(argv)).grids]
    assert distort == [True]
    off = runner.config_from_args(build_parser().parse_args([*argv, "--no-distort"]))
    assert [g.distort for g in off.grids] == [False]
    smoke = ["run", "--preset", "smoke", "--out", str(tmp_path)]
    assert not runner.config_from_args(build_parser().parse_args(smoke)).grids[0].distort
    assert runner.config_from_args(build_parser().parse_args([*smoke, "--distort"])).grids[0].distort


@pytest.mark.parametrize(
    ("argv", "cell"),
    [
        (("--shots", "2"), "digits-heldout small-cnn+koch on cpu float32, 3-way 2-shot, seed 0"),
        (("--ways", "2"), "digits-heldout small-cnn+koch on cpu float32, 2-way 1-shot, seed 0"),
        (("--amp", "bf16"), "digits-heldout small-cnn+koch on cpu bfloat16-amp, 3-way 1-shot, seed 0"),
        (("--devices", "cpu,cuda"), "digits-heldout small-cnn+koch on cuda float32, 3-way 1-shot, seed 0"),
        (("--seeds", "1"), "digits-heldout small-cnn+koch on cpu float32, 3-way 1-shot, seed 1"),
    ],
)
def test_without_out_other_ways_shots_dtype_devices_or_seeds_than_the_presets_are_refused(
    tmp_path, monkeypatch, argv, cell
):
    """Without --out a run writes into results/<preset>/: every cell (its ways, shots, dtype and device too, not
    only its names and seed) must be one of the preset's, else the run is refused before anything is written."""
    monkeypatch.setattr(runner, "results_root", lambda: tmp_path)
    base = ["run", "--preset", "smoke", "--no-throughput", "--devices", "cpu", "--heads", "koch"]

    def resolve(*extra):
        return runner.config_from_args(build_parser().parse_args([*base, *extra]))

    assert resolve("--ways", "3").out == tmp_path / "smoke"  # the preset's cells, on fewer ways
    with pytest.raises(
        UserError, match=re.escape(f"not in the smoke preset (e.g. {cell}), and without --out")
    ):
        resolve(*argv)
    assert resolve(*argv, "--out", str(tmp_path / "mine")).out == tmp_path / "mine"
    assert not (tmp_path / "smoke").exists()


def test_without_out_throughput_batch_sizes_other_than_the_presets_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "results_root", lambda: tmp_path)
    base = ["run", "--preset", "smoke", "--devices", "cpu", "--throughput-batch-sizes", "32"]
    with pytest.raises(
        UserError, match=r"throughput rows that are not in the smoke preset \(batch size 32; the "
    ):
        runner.config_from_args(build_parser().parse_args(base))
    runner.config_from_args(build_parser().parse_args([*base, "--no-throughput"]))  # measures none


def test_new_ways_of_a_finished_model_with_other_settings_are_refused(tmp_path, monkeypatch):
    """A model (protocol/backbone/head/device/dtype/seed) with finished cells keeps its settings for its other
    ways and shots too: trained anew with other settings they would sit beside the finished ones, and
    config.json would then record the new settings for all of them."""
    monkeypatch.setattr(cell.CellRunner, "run_group", _ok_rows)
    first = ("--heads", "contrastive", "--amp", "bf16", "--train-pairs", "256")  # 3- and 5-way
    runner.run(config(tmp_path, *first), print_summary=False)
    before = (tmp_path / "accuracy.csv").read_text()
    with pytest.raises(
        UserError,
        match=r"small-cnn/contrastive/0 \(protocol/backbone/head/seed\) on cpu bfloat16-amp made with other "
        r"settings: train_pairs 256 \(recorded\) vs 512 \(now\)",
    ):
        runner.run(config(tmp_path, *first, "--ways", "2", "--train-pairs", "512"), print_summary=False)
    assert (tmp_path / "accuracy.csv").read_text() == before
    # the recorded settings for the new way are fine, and the first command still finds everything done
    runner.run(config(tmp_path, *first, "--ways", "2"), print_summary=False)
    assert runner.run(config(tmp_path, *first), print_summary=False) == 0
    rows = read_csv(tmp_path / "accuracy.csv")
    assert sorted(r["n_way"] for r in rows) == ["2", "3", "5"]


def test_seeds_and_episodes_beyond_what_a_cell_can_use_are_refused_with_the_range(tmp_path):
    """The largest seed is the largest every seed of a cell takes: training's (TrainConfig, up to seed + 2),
    the test episodes' (seed + TEST_SEED_OFFSET) and the verification pairs' (seed + 3 * TEST_SEED_OFFSET)."""
    from siamese_bench.train import TrainConfig

    TrainConfig(seed=runner.MAX_SEED)
    with pytest.raises(ValueError, match="TrainConfig.seed"):
        TrainConfig(seed=runner.MAX_SEED + 1)
    assert runner.MAX_SEED + 3 * cell.TEST_SEED_OFFSET < 2**64
    assert config(tmp_path, "--seeds", str(runner.MAX_SEED)).grids[0].seeds == (runner.MAX_SEED,)
    for seed in (runner.MAX_SEED + 1, 2**63 - 1):
        message = f"--seeds {seed}: seeds must be between 0 and {runner.MAX_SEED} (2**63 - 3"
        with pytest.raises(UserError, match=re.escape(message)):
            config(tmp_path, "--seeds", f"0,{seed}")
    config(tmp_path, "--episodes", str(runner.MAX_EPISODES))
    with pytest.raises(UserError, match=r"--episodes 100000000000: must be at most 1,000,000"):
        config(tmp_path, "--episodes", "100000000000")


def test_a_kept_failed_throughput_row_still_makes_the_run_exit_1_until_retried(tmp_path, monkeypatch, capsys):
    """A failed throughput measurement is kept by a re-run, as a failed cell is (exit 1, with advice that fits
    a throughput row), and measured again with --retry-failed."""
    from siamese_bench import throughput
    from siamese_bench.cli import main

    measured = []

    def measure(row, *a, **k):
        measured.append(row["batch_size"])
        if len(measured) == 1:
            return {**row, "status": "error", "error": "RuntimeError: out of memory"}
        return {**row, "status": "ok", "eval_images_per_s": 1.0, "eval_episodes_per_s": 1.0}

    monkeypatch.setattr(throughput, "measure", measure)
    argv = [
        "run",
        "--preset",
        "smoke",
        "--out",
        str(tmp_path),
        "--quiet",
        "--devices",
        "cpu",
        "--heads",
        "koch",
    ]
    argv += ["--throughput-only", "--throughput-batch-sizes", "16"]
    for _ in range(2):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert (
            f"1 throughput measurement(s) failed: see the error column of {tmp_path / 'throughput.csv'}"
            in err
        )
        assert "more ways than test classes" not in err
        assert (
            "fix the cause and re-run with --retry-failed (a throughput measurement that cannot succeed"
            in err
        )
    assert measured == [16]
    assert main([*argv, "--retry-failed"]) == 0
    assert measured == [16, 16]
    assert [r["status"] for r in read_csv(tmp_path / "throughput.csv")] == ["ok"]


def test_optional_cuda_alone_without_a_gpu_is_refused_as_running_nothing(tmp_path, monkeypatch):
    """--devices cuda? ("CUDA where present") and nothing else, without a GPU: no cell would run, and the run
    would write an empty folder and exit 0; it is refused (exit 2) instead, the dry run too."""
    from siamese_bench.cli import main

    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    for extra in ((), ("--dry-run",)):
        with pytest.raises(
            UserError, match=r"--devices cuda\? runs CUDA cells where a GPU is present, .*no cell "
        ):
            config(tmp_path / "out", "--devices", "cuda?", *extra)
    argv = ["run", "--preset", "smoke", "--devices", "cuda?", "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 2
    assert not (tmp_path / "out").exists()
    assert [d for d, _ in runner._devices(config(tmp_path / "out", "--devices", "cpu,cuda?"))] == ["cpu"]
