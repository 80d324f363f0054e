"""Checkpoints from `run --checkpoints`, and the `evaluate` / `predict` commands on them (digits, offline)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from siamese_bench import checkpoint, runner
from siamese_bench.cli import build_parser


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = build_parser().parse_args(
        [
            "run",
            "--preset",
            "smoke",
            "--out",
            str(out),
            "--train-pairs",
            "256",
            "--episodes",
            "20",
            "--devices",
            "cpu",
            "--no-throughput",
            "--quiet",
            "--checkpoints",
            "--save-pairs",
            "8",
            "--heads",
            "koch,contrastive",
            "--seeds",
            "0,1",
        ]
    )
    runner.run(runner.config_from_args(args))
    return out


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "siamese_bench", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_checkpoint_round_trip_and_pair_pictures(ckpt_dir):
    path = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_koch_cpu_seed0.pt"
    assert path.stat().st_mode & 0o777 == 0o644  # readable by collaborators
    model, meta = checkpoint.load(path)
    assert meta["backbone"] == "small-cnn" and meta["head"] == "koch" and meta["image_size"] == 8
    assert not model.training
    pngs = sorted((ckpt_dir / "pairs").glob("*.png"))
    assert len(pngs) == 8 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_evaluate_command(ckpt_dir):
    r = cli(
        "evaluate",
        "--checkpoint",
        ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt",
        "--episodes",
        "30",
        "--ways",
        "3",
    )
    assert r.returncode == 0, r.stderr
    assert "3-way 1-shot: accuracy" in r.stdout and "prototype" in r.stdout


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluate_by_default_repeats_the_runs_rows(ckpt_dir, seed):
    """Without options, evaluate scores the run's own test episodes (its seed, count and cells): the same
    accuracies and episode hashes as the run's accuracy.csv."""
    from siamese_bench.results import read_csv

    r = cli(
        "evaluate",
        "--checkpoint",
        ckpt_dir / "checkpoints" / f"digits-heldout_small-cnn_koch_cpu_seed{seed}.pt",
    )
    assert r.returncode == 0, r.stderr
    rows = [x for x in read_csv(ckpt_dir / "accuracy.csv") if x["head"] == "koch" and x["seed"] == str(seed)]
    assert len(rows) == 2  # smoke's 3-way and 5-way 1-shot cells
    for row in rows:
        line = (
            f"  {row['n_way']}-way {row['k_shot']}-shot: accuracy {100 * float(row['accuracy']):.2f}% ± "
            f"{100 * float(row['ci95']):.2f} ({row['episodes']} episodes, hash {row['episodes_hash']}, "
        )
        assert line in r.stdout, (line, r.stdout)
    assert r.stdout.count("-way ") == 2 and f"episodes seed {seed}" in r.stdout


def test_evaluate_on_another_part_of_the_split(ckpt_dir):
    ckpt = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    runs = {
        part: cli("evaluate", "--checkpoint", ckpt, "--episodes", "30", "--ways", "3", "--part", part)
        for part in ("test", "train")
    }
    for part, r in runs.items():
        assert r.returncode == 0, r.stderr
        assert f"part {part} (5 classes of" in r.stdout and "3-way 1-shot: accuracy" in r.stdout
    # the training digits and the held-out digits are other classes: other episodes, other numbers
    assert runs["test"].stdout.splitlines()[1] != runs["train"].stdout.splitlines()[1]
    r = cli("evaluate", "--checkpoint", ckpt, "--part", "holdout")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--part holdout" in r.stderr and "train" in r.stderr and "test" in r.stderr


def test_predict_recovers_gallery_images(ckpt_dir, tmp_path):
    d = load_digits()
    gallery = tmp_path / "gallery"
    for c in (5, 6, 7):
        idx = np.flatnonzero(d.target == c)[:3]
        (gallery / str(c)).mkdir(parents=True)
        for i in idx:
            Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).save(gallery / str(c) / f"{i}.png")
    # a query identical to a gallery image of class 6: its own class must win
    query = next((gallery / "6").iterdir())
    r = cli(
        "predict",
        "--checkpoint",
        ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt",
        "--gallery",
        gallery,
        query,
    )
    assert r.returncode == 0, r.stderr
    path, label, score = r.stdout.strip().split("\t")
    assert path == str(query) and label == "6" and float(score) <= 0


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    r = cli("evaluate", "--checkpoint", tmp_path / "nope.pt")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = cli("predict", "--checkpoint", bad, "--gallery", tmp_path, bad)
    assert r.returncode == 2 and "not a readable siamese_bench checkpoint" in r.stderr
    assert "weights_only" not in r.stderr  # none of torch's pickle advice


def _edited(src, dst, **changes):
    import torch

    doc = torch.load(src, map_location="cpu", weights_only=True)
    doc.update(changes)
    torch.save(doc, dst)
    return dst


def test_evaluate_refuses_a_checkpoint_of_another_split_or_protocol_version(ckpt_dir, tmp_path):
    """Scored on today's test classes, a model trained on another split could be tested on its own training
    classes: refused, naming both splits and the version that wrote it."""
    src = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    for changes, shown in (
        ({"split_hash": "deadbeefdeadbeef"}, "split deadbeefdeadbeef"),
        ({"protocol_version": 0}, "version 0"),
    ):
        r = cli("evaluate", "--checkpoint", _edited(src, tmp_path / "x.pt", **changes), "--episodes", "5")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert shown in r.stderr and "may include classes the model trained on" in r.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--episodes", "1"), "--episodes 1: must be >= 2"),
        (("--seed", "-5"), "--seed -5: seeds must be >= 0"),
    ],
)
def test_evaluate_refuses_numbers_no_run_uses(ckpt_dir, argv, message):
    ckpt = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    r = cli("evaluate", "--checkpoint", ckpt, *argv)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_a_folder_given_as_checkpoint_is_named_as_one(ckpt_dir):
    r = cli("evaluate", "--checkpoint", ckpt_dir)
    assert r.returncode == 2 and "is a folder; name a .pt file in it" in r.stderr


def test_weights_that_do_not_fit_and_unknown_devices_are_clear_errors(ckpt_dir, tmp_path):
    src = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    wrong = _edited(src, tmp_path / "w.pt", backbone="conv4")
    r = cli("evaluate", "--checkpoint", wrong, "--episodes", "5")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "its weights do not fit conv4+contrastive" in r.stderr
    r = cli("evaluate", "--checkpoint", src, "--device", "tpu")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "use cpu or cuda" in r.stderr


def test_checkpoints_of_another_dtype_get_their_own_name(tmp_path, monkeypatch):
    """float32 keeps the short name; a bfloat16 run into the same folder does not overwrite it."""
    from types import SimpleNamespace

    from siamese_bench import cell

    saved = []
    monkeypatch.setattr(checkpoint, "save", lambda path, *a, **k: saved.append(path.name))
    runner_ = cell.CellRunner(SimpleNamespace(out=tmp_path))
    proto = SimpleNamespace(name="digits-heldout")
    for dtype in ("float32", "bfloat16-amp"):
        group = {"protocol": proto, "backbone": "small-cnn", "head": "koch", "device": "cpu", "dtype": dtype}
        runner_.save_checkpoint(None, {**group, "seed": 0}, None, None)
    assert saved == [
        "digits-heldout_small-cnn_koch_cpu_seed0.pt",
        "digits-heldout_small-cnn_koch_cpu_bfloat16-amp_seed0.pt",
    ]
