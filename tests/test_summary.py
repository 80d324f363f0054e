"""summary.py: the accuracy table's aggregation rule (seeds of one protocol version and split only)."""

import pytest

from siamese_bench.summary import accuracy_table, own_images_lines


def _row(seed, accuracy, version="1", split="aaaa"):
    return {
        "protocol": "vinyals",
        "protocol_version": version,
        "split_hash": split,
        "backbone": "conv4",
        "head": "koch",
        "device": "cpu",
        "dtype": "float32",
        "n_way": "5",
        "k_shot": "1",
        "seed": str(seed),
        "accuracy": str(accuracy),
        "ci95": "0.01",
        "verification_accuracy": "0.8",
        "roc_auc": "0.9",
        "train_pairs_per_s": "100",
        "status": "ok",
    }


def test_seeds_aggregate_within_one_protocol_version_and_split_only():
    same = accuracy_table([_row(0, 0.8), _row(1, 0.9)])
    assert same.count("| vinyals |") == 1 and "| 85.0 |" in same and "| 2 |" in same
    mixed = accuracy_table([_row(0, 0.8), _row(1, 0.9, version="2", split="bbbb")])
    assert "| vinyals v1 (split aaaa) |" in mixed and "| vinyals v2 (split bbbb) |" in mixed
    assert "| 85.0 |" not in mixed  # never averaged across versions


def test_heads_are_compared_on_two_or_more_shared_episodes_only(tmp_path):
    """A paired comparison needs at least 2 episodes: a folder with one-episode cells (older runs allowed
    --episodes 1) still gets its summary, without that comparison."""
    import torch

    from siamese_bench.summary import paired_comparisons, per_episode_path

    def rows(episodes):
        out = []
        for head, correct in (
            ("koch", [[True, False], [True, True]]),
            ("triplet", [[False, False], [True, False]]),
        ):
            r = {**_row(0, 0.5), "head": head, "episodes": str(episodes), "episodes_hash": "h"}
            path = per_episode_path(tmp_path, r)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(torch.tensor(correct[:episodes]), path)
            out.append(r)
        return out

    assert "koch − triplet" in paired_comparisons(tmp_path, rows(2), n_boot=50)
    assert (
        paired_comparisons(tmp_path, rows(1), n_boot=50)
        == "_No pair of heads was scored on the same episodes._"
    )


def test_error_rows_stay_out_of_the_seed_groups_and_two_seeds_get_a_std():
    from siamese_bench.summary import failures

    rows = [_row(0, 0.8), _row(1, 0.9), {**_row(2, 0.0), "status": "error", "accuracy": "", "error": "boom"}]
    table = accuracy_table(rows)
    assert "| 85.0 |" in table and "| 2 |" in table  # mean and seed count of the ok rows only
    assert "| 7.1 |" in table  # the seed std (sample std of 80 and 90 points) with two seeds
    skipped = {**_row(3, 0.0), "status": "skipped", "error": "no CUDA"}
    listed = failures([*rows, skipped])
    assert "- error: vinyals conv4 koch cpu 5-way 1-shot: boom" in listed and "- skipped: " in listed


def test_heads_scored_on_other_episodes_are_not_compared(tmp_path):
    import torch

    from siamese_bench.summary import paired_comparisons, per_episode_path

    rows = []
    for head, hash_ in (("koch", "h1"), ("triplet", "h2")):
        r = {**_row(0, 0.5), "head": head, "episodes": "2", "episodes_hash": hash_}
        path = per_episode_path(tmp_path, r)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.tensor([[True, False], [True, True]]), path)
        rows.append(r)
    assert (
        paired_comparisons(tmp_path, rows, n_boot=50) == "_No pair of heads was scored on the same episodes._"
    )


def test_the_throughput_table_shows_measured_rows_in_batch_order():
    from siamese_bench.summary import throughput_table

    def row(batch, status="ok"):
        return {
            "backbone": "conv4",
            "head": "koch",
            "device": "cpu",
            "dtype": "float32",
            "image_size": "28",
            "batch_size": str(batch),
            "train_pairs_per_s": "100",
            "eval_images_per_s": "10",
            "eval_episodes_per_s": "1",
            "peak_memory_mb": "",
            "status": status,
        }

    table = throughput_table([row(512), row(64), row(128, "error")])
    lines = [x for x in table.splitlines() if x.startswith("| conv4")]
    assert [x.split(" | ")[5] for x in lines] == ["64", "512"]  # numeric order; the failed row left out


def test_own_images_are_named_with_their_folder_and_split():
    """A folder: protocol's name is the path as typed (maybe relative): the summary names the folder itself,
    the size and the split (which digests the images)."""
    own = dict(_row(0, 0.8), protocol="folder:mine@16", dataset="folder:/home/u/mine", image_size="16")
    assert own_images_lines([_row(0, 0.8), own, dict(own, seed="1", split_hash="bbbb")]) == [
        "- folder:mine@16: images folder:/home/u/mine at 16x16, split aaaa, bbbb"
    ]


def _folder(path, config=None, rows=None):
    """A results folder written here: accuracy.csv of `rows` (one cell by default), config.json when given."""
    from siamese_bench.results import ACCURACY_COLUMNS, write_csv

    path.mkdir(parents=True, exist_ok=True)
    write_csv(path / "accuracy.csv", rows or [_row(0, 0.8)], ACCURACY_COLUMNS)
    if config is not None:
        (path / "config.json").write_text(config)
    return path


def test_a_config_json_of_another_shape_is_an_error_naming_it(tmp_path, capsys):
    """Valid JSON of the wrong shape stopped summarize with an AttributeError and a traceback."""
    from siamese_bench.cli import main

    for text, says in (
        ("[]", "config.json cannot be read (a JSON list, not an object); restore it"),
        (
            '{"environment": "x"}',
            "config.json has a field of another shape than `run` writes (AttributeError",
        ),
        ('{"grids": [{"protocols": 1}]}', "config.json has a field of another shape than `run` writes"),
    ):
        folder = _folder(tmp_path / "out", text)
        assert main(["summarize", str(folder)]) == 2
        err = capsys.readouterr().err
        assert f"error: {folder / 'config.json'}" in err and says in err and "Traceback" not in err


def test_without_config_json_the_gpus_are_unknown(tmp_path):
    """Without config.json the summary said "no GPU", which nothing recorded."""
    from siamese_bench.summary import write_summary

    text = write_summary(_folder(tmp_path / "out")).read_text()
    assert "- hardware: ? (? threads); GPUs: ?" in text and "no GPU" not in text
    folder = _folder(tmp_path / "gpu", '{"environment": {"gpus": []}}')
    assert "threads); no GPU" in write_summary(folder).read_text()  # recorded as none


def test_the_grid_line_states_the_training_pairs_the_rows_record():
    """--train-pairs 2000 trains 2,048 pairs (whole batches of 128), which the rows record; the summary said
    2,000. Parameter-free cells (0 pairs) and cells of other grids do not count."""
    from siamese_bench.summary import settings_lines

    grid = dict(protocols=["vinyals"], backbones=["conv4", "pixels"], heads=["koch", "l2"], seeds=[0, 1])
    grid.update(train_pairs=2000, batch_size=128, lr=0.001, val_every=500, val_episodes=20)
    cfg = {"grids": [grid]}
    rows = [
        {**_row(0, 0.8), "train_pairs": "2048"},
        {**_row(1, 0.8), "train_pairs": "2048"},
        {**_row(0, 0.5), "backbone": "pixels", "head": "l2", "train_pairs": "0"},
        {**_row(2, 0.8), "train_pairs": "4096"},  # seed 2: not of this grid
    ]
    (line,) = settings_lines(cfg, rows)[1:]
    assert ": 2,048 training pairs (2,000 asked, whole batches of 128), batch 128," in line
    assert ": 2,000 training pairs, batch 128," in settings_lines(cfg)[1]  # no rows: the budget asked
    rows[0]["train_pairs"] = rows[1]["train_pairs"] = "2000"
    assert ": 2,000 training pairs, batch 128," in settings_lines(cfg, rows)[1]  # rows record what was asked


def test_an_unreadable_per_episode_file_is_an_error_naming_it(tmp_path):
    """A per_episode/*.pt cut short (a copy) stopped summarize and compare with torch's "PytorchStreamReader
    failed reading zip archive" and a traceback naming no file."""
    import torch

    from siamese_bench.summary import paired_comparisons, per_episode_path

    rows = [{**_row(0, 0.5), "head": h, "episodes": "2", "episodes_hash": "h"} for h in ("koch", "triplet")]
    for r in rows:
        path = per_episode_path(tmp_path, r)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.ones(2, 5, dtype=torch.bool), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{path}: not a readable per-episode correctness file") as err:
        paired_comparisons(tmp_path, rows, n_boot=50)
    assert f"delete it and re-run its cell (delete the cell's row from {tmp_path / 'accuracy.csv'}" in str(
        err.value
    )
    torch.save({"not": "a tensor"}, path)
    with pytest.raises(ValueError, match="holds a dict, not an .episodes, queries. bool tensor"):
        paired_comparisons(tmp_path, rows, n_boot=50)


def test_a_folder_whose_grids_flags_changed_says_so_in_its_heading():
    """config.json names the preset a run started from; a folder run with grid flags (other protocols,
    seeds, budgets...) is not that preset's grid, and its heading says so (summary.md and the README)."""
    from siamese_bench.readme_table import _kind
    from siamese_bench.summary import changed_by_flags, preset_label

    def cfg(*commands, preset="quick"):
        runs = [{"command": c} for c in commands[:-1]]
        return {"preset": preset, "runs": runs, "environment": {"command": commands[-1]}}

    plain = cfg("python -m siamese_bench run --devices cuda --amp bf16 --channels-last --out results/q")
    assert not changed_by_flags(plain)
    assert preset_label(plain, "q") == " (preset quick)" and _kind(plain, "q") == " (preset `quick`)"
    for flag in (
        "--protocols vinyals",
        "--seeds 0,1",
        "--train-pairs=150000",
        "--no-distort",
        "--val-every 1",
    ):
        changed = cfg(f"python -m siamese_bench run {flag} --out results/x")
        assert changed_by_flags(changed), flag
        assert preset_label(changed, "x") == " (preset quick, changed by flags)"
        assert _kind(changed, "x") == " (preset `quick`, changed by flags)"
    # an earlier run of the folder counts too (config.json's runs)
    assert changed_by_flags(cfg("python -m siamese_bench run --heads koch", "python -m siamese_bench run"))
    # the folder named after its preset
    assert preset_label(cfg("python -m siamese_bench run"), "quick") == ""
    assert _kind(cfg("python -m siamese_bench run"), "quick") == " preset"
    assert _kind(cfg("python -m siamese_bench run --seeds 1"), "quick") == " preset (changed by flags)"
    # a path that merely contains a flag's name is not that flag
    assert not changed_by_flags(cfg("python -m siamese_bench run --out results/--seeds"))


def test_a_failed_throughput_row_is_listed_as_a_measurement_with_its_batch_size():
    from siamese_bench.summary import failures

    row = {
        "backbone": "conv4",
        "head": "koch",
        "device": "cpu",
        "dtype": "float32",
        "image_size": "28",
        "batch_size": "64",
        "status": "error",
        "error": "ValueError: boom",
    }
    assert failures([row]) == (
        "- error: throughput of conv4+koch on cpu float32, 28x28 images, batch size 64: ValueError: boom"
    )


def _plotted_folder(path):
    """A results folder with one ok cell that has a training throughput (so `plot` draws it)."""
    path.mkdir()
    return [{**_row(0, 0.8), "n_way": "5", "k_shot": "1"}]


def test_an_interrupted_picture_write_leaves_the_old_picture_and_no_temp_file(tmp_path, interrupt_savefig):
    """Ctrl-C while the PNG is written: the old picture stays, no temp file is left, and the temp file a kill on
    the spot would leave is one that `remove_stale_temps` removes."""
    from siamese_bench import summary
    from siamese_bench.results import remove_stale_temps

    out = tmp_path / "run"
    rows = _plotted_folder(out)
    png = summary.plot(out, rows)
    assert png == out / "accuracy_vs_throughput.png" and png.read_bytes()[:4] == b"\x89PNG"
    old = png.read_bytes()
    temps = interrupt_savefig(out)
    with pytest.raises(KeyboardInterrupt):
        summary.plot(out, rows)
    assert sorted(p.name for p in out.iterdir()) == ["accuracy_vs_throughput.png"]
    assert png.read_bytes() == old
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / temps[0]).write_bytes(b"")
    assert [p.name for p in remove_stale_temps(tmp_path / "killed")] == temps
