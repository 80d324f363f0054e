"""Checkpoints from `run --checkpoints`, and the `evaluate` / `predict` commands on them (digits, offline)."""

import re
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
    ckpt = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    r = cli("predict", "--checkpoint", ckpt, "--gallery", gallery, query)
    assert r.returncode == 0, r.stderr
    path, label, score = r.stdout.strip().split("\t")
    assert path == str(query) and label == "6" and float(score) <= 0
    assert "has one class" not in r.stderr
    for c in ("5", "7"):  # a gallery of one class: the same answer, and a note that it says little
        for f in (gallery / c).iterdir():
            f.unlink()
        (gallery / c).rmdir()
    r = cli("predict", "--checkpoint", ckpt, "--gallery", gallery, query)
    assert r.returncode == 0 and r.stdout.strip().split("\t")[:2] == [str(query), "6"], r.stderr
    assert f"note: the gallery {gallery} has one class (6): every image is given it" in r.stderr


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
        (("--episodes", "100000000000"), "--episodes 100000000000: must be at most 1,000,000"),
        (("--seed", str(2**64 - 1000)), f"--seed {2**64 - 1000}: seeds must be between 0 and {2**64 - 1001}"),
    ],
)
def test_evaluate_refuses_numbers_no_run_uses(ckpt_dir, argv, message):
    ckpt = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    r = cli("evaluate", "--checkpoint", ckpt, *argv)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_a_folder_given_as_checkpoint_is_named_as_one(ckpt_dir, tmp_path):
    """The run's folder or its checkpoints/ folder: the message names a file that exists (it suggested
    checkpoints/checkpoints/*.pt for the latter)."""
    first = sorted((ckpt_dir / "checkpoints").glob("*.pt"))[0]
    r = cli("evaluate", "--checkpoint", ckpt_dir)
    assert r.returncode == 2 and f"is a folder; name a .pt file, e.g. {first}" in r.stderr
    for folder in (ckpt_dir, ckpt_dir / "checkpoints"):
        with pytest.raises(
            ValueError, match=re.escape(f"{folder} is a folder; name a .pt file, e.g. {first}")
        ):
            checkpoint.load(folder)
    with pytest.raises(
        ValueError, match="is a folder with no .pt file; `run --checkpoints` writes them under"
    ):
        checkpoint.load(tmp_path)


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


def test_a_checkpoint_of_another_format_or_version_is_named_as_such(ckpt_dir, tmp_path):
    import torch

    other = tmp_path / "other.pt"
    torch.save({"weights": [1, 2]}, other)  # readable, but not ours
    with pytest.raises(ValueError, match="is not a siamese_bench checkpoint"):
        checkpoint.load(other)
    src = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    with pytest.raises(ValueError, match="has checkpoint format v2; this siamese_bench reads v1"):
        checkpoint.load(_edited(src, tmp_path / "v2.pt", version=2))


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(checkpoint.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"--device cuda: torch.cuda.is_available\(\) is False"):
        checkpoint._check_device("cuda")
    checkpoint._check_device("cpu")


def test_evaluate_on_another_part_defaults_to_the_protocols_episode_count(ckpt_dir, capsys):
    """The run's own episode count (20 here) is the default only for the part it scored (test); another
    part gets the protocol's (digits-heldout: 1000)."""
    ckpt = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    for part, episodes in (("test", 20), ("train", 1000)):
        args = build_parser().parse_args(
            ["evaluate", "--checkpoint", str(ckpt), "--part", part, "--ways", "3"]
        )
        assert checkpoint.evaluate_command(args) == 0
        out = capsys.readouterr().out
        assert "3-way 1-shot: accuracy" in out and f"({episodes} episodes, hash" in out, (part, out)


def _hand_made(path, model, head, image_size=8, protocol="digits-heldout"):
    """A checkpoint of `model` (pixels backbone) as `run --checkpoints` writes one."""
    from types import SimpleNamespace

    from siamese_bench.train import TrainConfig

    group = {
        "backbone": "pixels",
        "head": head,
        "in_channels": 1,
        "image_size": image_size,
        "protocol": SimpleNamespace(name=protocol, version=1, dataset="digits"),
        "seed": 0,
    }
    checkpoint.save(path, model, group, TrainConfig(), SimpleNamespace(hash="0" * 16))
    return path


def test_weights_of_another_head_are_a_clear_error(ckpt_dir, tmp_path):
    src = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    with pytest.raises(
        ValueError, match=r"its weights do not fit small-cnn\+koch as this siamese_bench builds it"
    ):
        checkpoint.load(_edited(src, tmp_path / "h.pt", head="koch"))  # koch's fc weights are missing
    with pytest.raises(ValueError, match=r"builds it \(Missing key\(s\) in state_dict: .*head"):
        checkpoint.load(tmp_path / "h.pt")  # the detail, not torch's "Error(s) in loading state_dict for"
    import torch

    doc = torch.load(src, map_location="cpu", weights_only=True)
    del doc["state_dict"]
    torch.save(doc, tmp_path / "n.pt")
    with pytest.raises(
        ValueError,
        match=r"small-cnn\+contrastive as this siamese_bench builds it \(it has no 'state_dict' field\)",
    ):
        checkpoint.load(tmp_path / "n.pt")


def test_evaluate_refuses_a_protocol_of_another_image_size(tmp_path):
    from siamese_bench.model import SiameseModel

    model = SiameseModel.build("pixels", "l2", in_channels=1, image_size=16)
    path = _hand_made(tmp_path / "m.pt", model, "l2", image_size=16, protocol="another")
    args = build_parser().parse_args(
        ["evaluate", "--checkpoint", str(path), "--protocol", "digits-heldout", "--episodes", "5"]
    )
    with pytest.raises(ValueError, match="expects 1x16x16 images but protocol digits-heldout gives 1x8x8"):
        checkpoint.evaluate_command(args)


@pytest.mark.parametrize("head", ["koch", "l2"])
def test_predict_scores_the_class_mean_score_or_the_prototype(tmp_path, capsys, head):
    """A gallery of 1 image of one class and 4 of another: a pair head's class score is the mean of its
    scores with the class's images (not their sum), a metric head's the score with the mean embedding."""
    import torch

    from siamese_bench.datasets.folders import load_folder, load_images
    from siamese_bench.evaluate import embed_all
    from siamese_bench.model import SiameseModel

    d = load_digits()
    gallery = tmp_path / "gallery"
    for c, n in ((5, 1), (6, 4)):
        (gallery / str(c)).mkdir(parents=True)
        for i in np.flatnonzero(d.target == c)[:n]:
            Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).save(gallery / str(c) / f"{i}.png")
    query = tmp_path / "query.png"
    Image.fromarray((d.images[np.flatnonzero(d.target == 5)[1]] * 255 / 16).astype(np.uint8)).save(query)
    model = SiameseModel.build("pixels", head, in_channels=1, image_size=8)
    if head == "koch":  # logits around +10: summed instead of averaged, the 4-image class would win
        with torch.no_grad():
            model.head.fc.weight.fill_(-0.01)
            model.head.fc.bias.fill_(10.0)
    path = _hand_made(tmp_path / "model.pt", model, head)
    assert (
        checkpoint.predict_command(
            build_parser().parse_args(
                ["predict", "--checkpoint", str(path), "--gallery", str(gallery), str(query)]
            )
        )
        == 0
    )
    _, label, score = capsys.readouterr().out.strip().split("\t")

    g = load_folder(gallery, image_size=8, channels=1)
    with torch.no_grad():
        ge = embed_all(model, g.images, torch.arange(len(g)))
        qe = embed_all(model, load_images([query], image_size=8, channels=1), torch.arange(1))
        by_class = []
        for c in range(g.num_classes):
            members = ge[g.labels == c]
            if model.metric:
                by_class.append(float(model.head.similarity(qe, members.mean(0, keepdim=True))[0]))
            else:
                by_class.append(float(model.head.similarity(qe.expand_as(members), members).mean()))
    best = max(range(g.num_classes), key=by_class.__getitem__)
    assert label == g.class_names[best] and float(score) == pytest.approx(by_class[best], abs=2e-4)


def test_a_checkpoint_records_the_runs_test_cells_and_evaluate_scores_those(ckpt_dir, tmp_path, capsys):
    """The cells a run scored are recorded (smoke: 3- and 5-way 1-shot, 20 episodes), and evaluate's
    default is the recorded cells, not the protocol's."""
    src = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_koch_cpu_seed0.pt"
    _, meta = checkpoint.load(src)
    assert meta["test_cells"] == [[3, 1], [5, 1]] and meta["test_episodes"] == 20
    edited = _edited(src, tmp_path / "c.pt", test_cells=[[5, 1]])
    assert (
        checkpoint.evaluate_command(build_parser().parse_args(["evaluate", "--checkpoint", str(edited)])) == 0
    )
    out = capsys.readouterr().out
    assert out.count("-way ") == 1 and "5-way 1-shot: accuracy" in out and "(20 episodes" in out


def test_episodes_that_do_not_fit_in_memory_are_a_clear_error(ckpt_dir, monkeypatch, capsys):
    """An allocation failure while drawing or scoring the episodes is one line saying what to do (exit 2),
    not torch's traceback."""
    from siamese_bench.cli import main
    from siamese_bench.episodes import episodes

    def out_of_memory(*a, **k):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
            "to allocate 800000000000 bytes. Error code 12 (Cannot allocate memory)"
        )

    monkeypatch.setattr(episodes, "sample_episodes", out_of_memory)
    ckpt = ckpt_dir / "checkpoints" / "digits-heldout_small-cnn_contrastive_cpu_seed0.pt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--episodes", "900000", "--ways", "3"]) == 2
    err = capsys.readouterr().err
    assert "error: 3-way 1-shot: 900,000 episodes do not fit in the memory of cpu (" in err
    assert "can't allocate memory" in err and "ask for fewer with --episodes" in err
    assert "Traceback" not in err


def test_the_protocol_trained_on_is_known_by_its_folder_for_your_images(tmp_path, monkeypatch):
    """`evaluate` applies the trained split's checks and the run's episodes to the protocol trained on: for your
    own images the same folder and size however written, and not another folder of the same relative name."""
    from types import SimpleNamespace

    from siamese_bench.checkpoint import _trained_on, _trained_spec

    monkeypatch.chdir(tmp_path)
    here, there = tmp_path / "mine", tmp_path / "other" / "mine"

    def proto(name, folder, size=16):
        return SimpleNamespace(name=name, dataset=f"folder:{folder}", image_size=size)

    meta = {"protocol": "folder:mine@16", "dataset": f"folder:{here}", "image_size": 16}
    assert _trained_on(proto("folder:./mine@16", here), meta)
    assert _trained_on(proto(f"folder:{here}@16", here), meta)
    assert not _trained_on(proto("folder:mine@16", there), meta)  # the same name, run from another directory
    assert not _trained_on(proto("folder:./mine@28", here, 28), meta)
    assert _trained_spec(meta) == f"folder:{here}@16"  # evaluates from any directory
    old = {"protocol": "folder:mine@16", "image_size": 16}  # written before the folder was recorded
    assert _trained_on(proto("folder:mine@16", there), old) and _trained_on(
        proto("folder:./mine@16", here), old
    )
    assert _trained_spec(old) == "folder:mine@16"
    registry = {"protocol": "digits-heldout", "image_size": 8}
    assert _trained_on(SimpleNamespace(name="digits-heldout"), registry)
    assert not _trained_on(SimpleNamespace(name="mnist-heldout"), registry)
