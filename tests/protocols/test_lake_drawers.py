"""`lake-drawers`: random trials shaped like Lake et al.'s official runs (supports by one drawer, queries by
another), on the real Omniglot; and the split's check of the drawer order."""

import subprocess
import sys

import pytest
import torch

from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.episodes.episodes import sample_episodes
from siamese_bench.episodes.index import ClassIndex
from siamese_bench.protocols import PROTOCOLS
from siamese_bench.protocols.lake_drawers import drawer_paired_split
from siamese_bench.results import read_csv
from siamese_bench.splits import LAKE_RUN_ALPHABETS


@pytest.mark.realdata
def test_official_runs_pair_their_drawers(real_data_dir, omniglot):
    """What the protocol copies: each official run takes its 20 supports from one drawer and its 20 queries
    from another."""
    p = PROTOCOLS.get("lake-runs-105")
    ep = p.fixed_episodes(omniglot, p.split(omniglot, real_data_dir), real_data_dir, 20, 1)
    drawer = omniglot["evaluation"].extra["drawer"]
    s, q = drawer[ep.support], drawer[ep.query]  # (20 runs, 20)
    assert bool((s == s[:, :1]).all()) and bool((q == q[:, :1]).all())
    assert bool((s[:, 0] != q[:, 0]).all())


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["lake-drawers", "lake-drawers-105"])
def test_trials_pair_drawers_within_one_run_alphabet(real_data_dir, omniglot, omniglot28, name):
    p = PROTOCOLS.get(name)
    data = omniglot28 if p.image_size == 28 else omniglot
    split = p.split(data, real_data_dir)
    assert split.hash == PROTOCOLS.get("lake-runs").split(omniglot28, real_data_dir).hash
    part = split.part("test")
    ds = data[part.subset]
    index = ClassIndex.build(ds, part.classes, name=f"{name}/test")
    ep = sample_episodes(
        index,
        20,
        1,
        p.n_query,
        p.episodes,
        seed=0,
        within_group=p.within_group,
        split_hash=split.hash,
        same_positions=p.same_positions,
    )
    drawer = ds.extra["drawer"]
    s, q = drawer[ep.support], drawer[ep.query]  # (1000, 20)
    assert bool((s == s[:, :1]).all()) and bool((q == q[:, :1]).all())  # one drawer each, as in the runs
    assert bool((s[:, 0] != q[:, 0]).all())
    assert set(s[:, 0].tolist()) == set(range(20)) == set(q[:, 0].tolist())  # any of the 20 drawers
    groups = ds.groups[ep.classes]
    assert bool((groups == groups[:, :1]).all())
    assert {ds.group_names[int(g)] for g in groups[:, 0]} == set(LAKE_RUN_ALPHABETS)
    assert torch.equal(ds.labels[ep.support], ep.classes) and torch.equal(ds.labels[ep.query], ep.classes)


def test_the_split_refuses_images_out_of_drawer_order(monkeypatch):
    """Paired drawers rely on each character listing its drawings in drawer order: a set where two drawings
    of a character swapped places, or one without drawers, is refused before any episode is drawn."""
    from siamese_bench.protocols import lake_drawers

    monkeypatch.setattr(lake_drawers, "omniglot_lake", lambda data: "the lake-runs split")
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 0])  # class 0's fourth drawing listed last

    def evaluation(drawers):
        extra = {} if drawers is None else {"drawer": torch.tensor(drawers)}
        images = torch.zeros(7, 1, 2, 2, dtype=torch.uint8)
        return ImageSet("ev", images, labels, ("a", "b"), torch.tensor([0, 0]), ("g",), extra)

    assert drawer_paired_split({"evaluation": evaluation([0, 1, 2, 0, 1, 2, 3])}) == "the lake-runs split"
    with pytest.raises(ValueError, match="does not list each character's drawings in drawer order"):
        drawer_paired_split({"evaluation": evaluation([1, 0, 2, 0, 1, 2, 3])})
    with pytest.raises(ValueError, match="needs Omniglot's drawer of every image"):
        drawer_paired_split({"evaluation": evaluation(None)})


@pytest.mark.realdata
def test_run_and_evaluate_score_the_same_paired_drawer_trials(real_data_dir, tmp_path):
    """End to end: a tiny lake-drawers run freezes paired-drawer episodes, and `evaluate` of its checkpoint
    draws the very same ones (same episodes hash and accuracy as the run's row)."""
    out = tmp_path / "run"
    env_args = ["--data-dir", str(real_data_dir)]
    base = [sys.executable, "-m", "siamese_bench"]
    r = subprocess.run(
        [
            *base,
            "run",
            "--protocols",
            "lake-drawers",
            "--backbones",
            "small-cnn",
            "--heads",
            "contrastive",
            "--train-pairs",
            "128",
            "--episodes",
            "30",
            "--no-throughput",
            "--quiet",
            "--checkpoints",
            "--out",
            str(out),
            *env_args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    (row,) = read_csv(out / "accuracy.csv")
    assert (row["protocol"], row["n_way"], row["n_query"], row["episodes"]) == (
        "lake-drawers",
        "20",
        "1",
        "30",
    )
    (frozen,) = (out / "episodes").glob("lake-drawers-v1-*.pt")
    from siamese_bench.episodes import Episodes

    assert Episodes.load(frozen).same_positions
    (ckpt,) = (out / "checkpoints").glob("*.pt")
    e = subprocess.run(
        [*base, "evaluate", "--checkpoint", str(ckpt), *env_args], capture_output=True, text=True, timeout=600
    )
    assert e.returncode == 0, e.stderr
    assert f"hash {row['episodes_hash']}" in e.stdout, e.stdout
    assert f"accuracy {100 * float(row['accuracy']):.2f}%" in e.stdout


@pytest.mark.realdata
def test_the_28_and_105_protocols_draw_the_same_trials(real_data_dir, omniglot, omniglot28):
    """The two sizes share split, classes and image order, so a seed names the same trials at both."""
    eps = []
    for name, data in (("lake-drawers", omniglot28), ("lake-drawers-105", omniglot)):
        p = PROTOCOLS.get(name)
        part = p.split(data, real_data_dir).part("test")
        index = ClassIndex.build(data[part.subset], part.classes)
        eps.append(sample_episodes(index, 20, 1, 1, 100, seed=3, within_group=True, same_positions=True))
    for field in ("support", "query", "classes"):
        assert torch.equal(getattr(eps[0], field), getattr(eps[1], field)), field
