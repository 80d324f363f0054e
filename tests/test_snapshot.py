"""Mid-training snapshots (siamese_bench.snapshot): an interrupted `train` resumes to the same weights."""

from __future__ import annotations

import math

import pytest
import torch

from siamese_bench.datasets.digits import load_digits
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.episodes.index import ClassIndex
from siamese_bench.model import SiameseModel
from siamese_bench.snapshot import Snapshots
from siamese_bench.train import TrainConfig, train


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return load_digits()["all"]


class Interrupt:
    """A progress callback that raises KeyboardInterrupt (Ctrl-C) once training has seen `at` pairs, and
    remembers the pairs of every call."""

    def __init__(self, at: float = math.inf) -> None:
        self.at, self.calls = at, []

    def __call__(self, pairs, total, loss, pairs_per_s) -> None:
        self.calls.append(pairs)
        if pairs >= self.at:
            raise KeyboardInterrupt


def _train(digits, head, config, snapshots=None, progress=None):
    torch.manual_seed(0)
    model = SiameseModel.build("small-cnn", head, in_channels=1, image_size=8)
    train_index = ClassIndex.build(digits, ["0", "1", "2", "3", "4", "5"])
    val_index = ClassIndex.build(digits, ["6", "7", "8", "9"])
    result = train(
        model, digits.images, train_index, config, val=val_index, progress=progress, snapshots=snapshots
    )
    return model, result


def _same_history(a, b) -> bool:
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y))
        for ha, hb in zip(a, b, strict=True)
        for x, y in zip(ha, hb, strict=True)
    )


@pytest.mark.parametrize(
    "head, extra",
    [
        ("koch", {}),  # Adam, cosine schedule, validation-chosen best weights
        ("triplet", {"distort": True, "optimizer": "sgd", "schedule": "step", "patience": 100}),
    ],
)
def test_an_interrupted_training_resumes_to_the_same_weights_and_history(digits, tmp_path, head, extra):
    config = TrainConfig(
        batch_size=32, train_pairs=32 * 24, log_every=64, val_every=256, val_episodes=20, val_way=4, **extra
    )
    whole, expected = _train(digits, head, config)

    snaps = Snapshots(tmp_path / "s.pt", every_s=1e-9, identity={"test": head})
    with pytest.raises(KeyboardInterrupt):
        _train(digits, head, config, snaps, Interrupt(at=512))  # Ctrl-C at the log point of 512 pairs
    assert snaps.path.is_file()  # the snapshot of the log point before (448 pairs) is there

    resumed = Interrupt()
    model, result = _train(digits, head, config, snaps, resumed)
    assert resumed.calls[0] == 512  # it went on after 448 pairs, not from the start
    assert result.pairs_seen == expected.pairs_seen == 768
    assert _same_history(result.history, expected.history)
    assert (result.best_step, result.best_val_accuracy) == (expected.best_step, expected.best_val_accuracy)
    for name, value in whole.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_a_run_without_snapshots_writes_none_and_a_long_interval_saves_nothing(digits, tmp_path):
    config = TrainConfig(batch_size=32, train_pairs=256, log_every=64, val_every=0, val_way=4)
    snaps = Snapshots(tmp_path / "s.pt", every_s=3600)
    _train(digits, "contrastive", config, snaps)
    assert not snaps.path.exists()


def test_a_snapshot_of_other_settings_or_an_unreadable_one_is_set_aside_with_the_reason(tmp_path):
    heard = []
    path = tmp_path / "s.pt"
    Snapshots(path, identity={"lr": 0.001, "git_hash": "abc"}).save({"step": 3})
    assert Snapshots(path, identity={"lr": 0.001, "git_hash": "abc"}).load() == {"step": 3}
    assert Snapshots(path, identity={"lr": 0.01, "git_hash": "abc"}, say=heard.append).load() is None
    assert "lr: 0.001 then, 0.01 now" in heard[-1] and "training from the start" in heard[-1]
    path.write_bytes(b"half a file")
    assert Snapshots(path, say=heard.append).load() is None
    assert "cannot be read" in heard[-1]
    torch.save({"something": "else"}, path)
    assert Snapshots(path, say=heard.append).load() is None
    assert "not a siamese_bench snapshot" in heard[-1]


def test_a_snapshot_that_cannot_be_written_is_reported_and_training_goes_on(digits, tmp_path):
    heard = []
    blocked = tmp_path / "file"
    blocked.write_text("a file where the snapshot folder should be")
    snaps = Snapshots(blocked / "snapshots" / "s.pt", every_s=1e-9, say=heard.append)
    config = TrainConfig(batch_size=32, train_pairs=256, log_every=64, val_every=0, val_way=4)
    _, result = _train(digits, "koch", config, snaps)
    assert result.pairs_seen == 256
    assert heard and all("could not write snapshot" in h and "training goes on" in h for h in heard)


def test_the_interval_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="must be > 0"):
        Snapshots(tmp_path / "s.pt", every_s=0)


def test_a_snapshot_of_another_version_or_with_a_setting_more_or_less_is_set_aside(tmp_path):
    heard = []
    path = tmp_path / "s.pt"
    Snapshots(path, identity={"lr": 0.001}).save({"step": 3})
    assert Snapshots(path, identity={"lr": 0.001, "threads": 2}, say=heard.append).load() is None
    assert "threads: None then, 2 now" in heard[-1]  # a setting recorded now, not then
    Snapshots(path, identity={"lr": 0.001, "threads": 2}).save({"step": 3})
    assert Snapshots(path, identity={"lr": 0.001}, say=heard.append).load() is None
    assert "threads: 2 then, None now" in heard[-1]  # a setting recorded then, not now
    doc = torch.load(path, weights_only=True)
    torch.save({**doc, "version": 2}, path)
    assert Snapshots(path, identity={"lr": 0.001, "threads": 2}, say=heard.append).load() is None
    assert "has format v2, this version reads v1" in heard[-1]
    torch.save(doc, path)
    assert Snapshots(path, identity={"lr": 0.001, "threads": 2}, say=heard.append).load() == {"step": 3}
    assert heard[-1] == f"resuming the training saved in {path} after step 3"


def test_a_snapshot_holding_arbitrary_python_objects_is_never_unpickled(tmp_path):
    """Snapshots load with weights_only: a file that would run other code on unpickling (here a harmless
    Fraction, outside torch's allow-list) is set aside, not resumed."""
    from fractions import Fraction

    from siamese_bench.snapshot import FORMAT, FORMAT_VERSION

    heard = []
    path = tmp_path / "s.pt"
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "identity": {}, "state": {"step": Fraction(1, 3)}}
    torch.save(doc, path)
    assert Snapshots(path, say=heard.append).load() is None
    assert "cannot be read" in heard[-1]


def test_a_resumed_training_keeps_counting_checks_toward_patience(digits, tmp_path, monkeypatch):
    """Checks without improvement before the interruption still count: the resumed run stops early at the
    same step as an uninterrupted one."""
    from types import SimpleNamespace

    from siamese_bench import train as train_mod

    def scripted(accuracies):
        it = iter(accuracies)
        monkeypatch.setattr(
            train_mod, "evaluate_episodes", lambda *a, **k: SimpleNamespace(accuracy=next(it))
        )

    config = TrainConfig(batch_size=32, train_pairs=256, log_every=32, val_every=32, val_way=4, patience=3)
    scripted([0.5, 0.4, 0.3, 0.2])
    _, whole = _train(digits, "koch", config)
    assert whole.stopped_early and whole.pairs_seen == 128  # checks at 64, 96, 128 without improvement

    snaps = Snapshots(tmp_path / "s.pt", every_s=1e-9)
    scripted([0.5, 0.4, 0.3])
    with pytest.raises(KeyboardInterrupt):
        _train(digits, "koch", config, snaps, Interrupt(at=96))  # the snapshot after 64 pairs is kept
    scripted([0.3, 0.2, 0.1, 0.1, 0.1])
    _, resumed = _train(digits, "koch", config, snaps)
    assert resumed.stopped_early and resumed.pairs_seen == 128 and resumed.best_step == 32


def test_a_resumed_training_counts_the_seconds_trained_before_the_interruption(digits, tmp_path):
    config = TrainConfig(batch_size=32, train_pairs=128, log_every=32, val_every=0, val_way=4)
    snaps = Snapshots(tmp_path / "s.pt", every_s=1e-9)
    with pytest.raises(KeyboardInterrupt):
        _train(digits, "contrastive", config, snaps, Interrupt(at=96))
    doc = torch.load(snaps.path, weights_only=True)
    doc["state"]["train_seconds"] = 1e6  # as if the interrupted run had trained for eleven days
    torch.save(doc, snaps.path)
    _, result = _train(digits, "contrastive", config, snaps)
    assert result.pairs_seen == 128 and result.seconds >= 1e6 and result.pairs_per_s <= 128 / 1e6
