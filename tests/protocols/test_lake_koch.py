"""Real-data tests of the Omniglot protocols `lake-runs` (at 28x28: the same 400 official trials as at
105x105) and `koch2015` (random 20-way 1-shot episodes within one run alphabet)."""

import subprocess
import sys

import pytest
import torch

from siamese_bench.episodes.episodes import sample_episodes
from siamese_bench.episodes.index import ClassIndex
from siamese_bench.protocols import PROTOCOLS
from siamese_bench.results import read_csv
from siamese_bench.splits import LAKE_RUN_ALPHABETS

pytestmark = pytest.mark.realdata


def test_protocol_fields():
    lake, koch = PROTOCOLS.get("lake-runs"), PROTOCOLS.get("koch2015")
    assert (lake.version, lake.image_size, lake.dataset) == (1, 28, "omniglot")
    assert (koch.id, koch.image_size, koch.dataset) == ("koch2015@v1", 105, "omniglot")
    assert (koch.ways, koch.shots, koch.n_query, koch.episodes) == ((20,), (1,), 1, 1000)
    assert koch.within_group and koch.fixed_episodes is None and "Koch" in koch.description


def test_lake_runs_at_28_are_the_same_trials_as_at_105(real_data_dir, omniglot, omniglot28):
    p = PROTOCOLS.get("lake-runs")
    split28, split105 = p.split(omniglot28, real_data_dir), p.split(omniglot, real_data_dir)
    assert split28.hash == split105.hash
    ep28 = p.fixed_episodes(omniglot28, split28, real_data_dir, 20, 1)
    ep105 = p.fixed_episodes(omniglot, split105, real_data_dir, 20, 1)
    assert ep28.support.shape == (20, 20) and ep28.query.shape == (20, 20)  # 400 trials
    for name in ("support", "query", "classes"):
        assert torch.equal(getattr(ep28, name), getattr(ep105, name)), name
    ev28 = omniglot28["evaluation"]
    assert tuple(ev28.image_shape) == (1, 28, 28)
    assert torch.equal(ev28.labels[ep28.query], ep28.classes)  # query j answers support j


def test_lake_runs_105_is_the_same_protocol_at_the_native_size(real_data_dir, omniglot, omniglot28):
    p28, p105 = PROTOCOLS.get("lake-runs"), PROTOCOLS.get("lake-runs-105")
    assert (p105.image_size, p105.version, p105.dataset, p105.ways, p105.shots) == (
        105,
        1,
        "omniglot",
        (20,),
        (1,),
    )
    split = p105.split(omniglot, real_data_dir)
    assert split.hash == p28.split(omniglot28, real_data_dir).hash
    ep105 = p105.fixed_episodes(omniglot, split, real_data_dir, 20, 1)
    ep28 = p28.fixed_episodes(omniglot28, split, real_data_dir, 20, 1)
    for name in ("support", "query", "classes"):
        assert torch.equal(getattr(ep105, name), getattr(ep28, name)), name


def test_koch2015_test_episodes_within_one_run_alphabet(real_data_dir, omniglot):
    p = PROTOCOLS.get("koch2015")
    split = p.split(omniglot, real_data_dir)
    assert split.hash == PROTOCOLS.get("lake-runs").split(omniglot, real_data_dir).hash
    part = split.part("test")
    ds = omniglot[part.subset]
    index = ClassIndex.build(ds, part.classes, name="koch2015/test")
    ep = sample_episodes(
        index, 20, 1, p.n_query, 200, seed=0, within_group=p.within_group, split_hash=split.hash
    )
    assert ep.support.shape == (200, 20) and ep.query.shape == (200, 20)
    groups = ds.groups[ep.classes]  # (E, 20)
    assert bool((groups == groups[:, :1]).all())  # every episode within one alphabet
    alphabets = {ds.group_names[int(g)] for g in groups[:, 0]}
    assert alphabets <= set(LAKE_RUN_ALPHABETS) and len(alphabets) > 1
    assert set(ep.classes.flatten().tolist()) <= set(ds.class_ids(part.classes).tolist())
    assert torch.equal(ds.labels[ep.support], ep.classes) and torch.equal(ds.labels[ep.query], ep.classes)
    assert not bool((ep.support == ep.query).any())
    val_alphabets = {c.split("/")[0] for c in split.part("val").classes}
    assert len(val_alphabets) == 10 and not val_alphabets & set(LAKE_RUN_ALPHABETS)


def test_lake_runs_episodes_carry_the_split_hash(real_data_dir, omniglot28):
    """The official trials are tagged with the split they were built under (a run checks the tag against
    its split before evaluating), like sampled episodes."""
    p = PROTOCOLS.get("lake-runs")
    split = p.split(omniglot28, real_data_dir)
    ep = p.fixed_episodes(omniglot28, split, real_data_dir, 20, 1)
    assert ep.split_hash == split.hash and ep.seed == -1 and ep.within_group


def test_evaluate_says_that_episodes_and_seed_do_not_apply_to_the_official_trials(real_data_dir, tmp_path):
    """lake-runs is scored on Lake's 400 fixed trials: `evaluate --episodes 50 --seed 3` scores the same 20
    runs as the recorded row, and says that those options do not apply (it said nothing)."""
    base = [sys.executable, "-m", "siamese_bench"]
    env_args = ["--data-dir", str(real_data_dir)]
    out = tmp_path / "out"
    r = subprocess.run(
        [
            *base,
            "run",
            "--protocols",
            "lake-runs",
            "--backbones",
            "pixels",
            "--heads",
            "l2",
            "--train-pairs",
            "0",
        ]
        + ["--no-throughput", "--quiet", "--checkpoints", "--out", str(out), *env_args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    (row,) = read_csv(out / "accuracy.csv")
    (ckpt,) = (out / "checkpoints").glob("*.pt")
    e = subprocess.run(
        [*base, "evaluate", "--checkpoint", str(ckpt), "--episodes", "50", "--seed", "3", *env_args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert e.returncode == 0, e.stderr
    assert "note: lake-runs is scored on its fixed published trials: --episodes and --seed do not apply" in (
        e.stdout
    )
    assert f"hash {row['episodes_hash']}" in e.stdout and "(20 episodes" in e.stdout
