"""Evaluation throughput: embed-once `evaluate_episodes` side by side with naive per-pair scoring.

Group eval-20way-1shot (one round = 20 episodes of 20-way 1-shot, 1 query per class, small-cnn + koch head,
28x28 images, batch 512): `naive_pairwise_accuracy` (a Python loop over episodes; each episode's 20 x 20
(query, support) pairs go through the network as two separate forward passes, then head.similarity) vs
`evaluate_episodes` (each distinct image embedded once, all pairs scored with head.score) (target: >= 5x
episodes/s).

Data: synthetic uint8 images, 100 classes x 20 images of 28x28 (Omniglot at the Vinyals size; content does not
change the speed). Torch runs on one thread; the summary compares the fastest round of each side.
Run: pytest benchmarks/test_eval_speed.py --benchmark-only -q
"""

from __future__ import annotations

import pytest
import torch

from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.episodes.episodes import Episodes, sample_episodes
from siamese_bench.episodes.index import ClassIndex, gather
from siamese_bench.evaluate import evaluate_episodes
from siamese_bench.model import SiameseModel

N_WAY, K_SHOT, N_QUERY, EPISODES = 20, 1, 1, 20
GROUP = "eval-20way-1shot: small-cnn + koch, 28x28, 20 episodes per round"
RESULTS: dict[str, float] = {}  # key -> episodes per second of the fastest round
ACCURACY: dict[str, float] = {}


def naive_pairwise_accuracy(model: SiameseModel, images: torch.Tensor, episodes: Episodes) -> float:
    """Reference only: mean episode accuracy with a Python loop over episodes and per-pair scoring.

    Per episode: all N*Q x N*K (query, support) pairs, embedded as two separate forward passes (queries
    repeated, supports tiled), head.similarity per pair, mean over the K shots, argmax over classes.
    """
    n, k, q = episodes.n_way, episodes.k_shot, episodes.n_query
    labels = torch.arange(n).repeat_interleave(q)
    was_training = model.training
    model.eval()
    accs = []
    with torch.no_grad():
        for e in range(episodes.support.shape[0]):
            qi = episodes.query[e].repeat_interleave(n * k)  # (NQ * NK,)
            si = episodes.support[e].repeat(n * q)
            sim = model.head.similarity(model.embed(gather(images, qi)), model.embed(gather(images, si)))
            scores = sim.view(n * q, n, k).mean(-1)
            accs.append((scores.argmax(-1) == labels).float().mean())
    model.train(was_training)
    return float(torch.stack(accs).mean())


@pytest.fixture(scope="module")
def setup():
    gen = torch.Generator().manual_seed(0)
    classes, per = 100, 20
    ds = ImageSet(
        "synthetic-omniglot28",
        torch.randint(0, 256, (classes * per, 1, 28, 28), dtype=torch.uint8, generator=gen),
        torch.arange(classes).repeat_interleave(per),
        tuple(f"A/character{c:03d}" for c in range(classes)),
        torch.zeros(classes, dtype=torch.int64),
        ("A",),
    )
    eps = sample_episodes(ClassIndex.build(ds), N_WAY, K_SHOT, N_QUERY, EPISODES, seed=0)
    torch.manual_seed(0)
    model = SiameseModel.build("small-cnn", "koch", in_channels=1, image_size=28)
    return model, ds.images, eps


@pytest.fixture(scope="module", autouse=True)
def summary(show):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread keeps the rounds comparable
    yield
    torch.set_num_threads(threads)
    lines = ["[eval benchmark] data: synthetic 100 classes x 20 images, (1, 28, 28) uint8; torch threads: 1"]
    if all(k in RESULTS for k in ("naive", "embed-once")):
        n, v = RESULTS["naive"], RESULTS["embed-once"]
        verdict = "meets" if v >= 5 * n else "MISSES"
        lines.append(
            f"20-way 1-shot episodes/s (fastest rounds): naive per-pair {n:,.1f}, embed-once {v:,.1f}: {v / n:.1f}x "
            f"({verdict} the 5x target); accuracy naive {ACCURACY['naive']:.4f}, "
            f"embed-once {ACCURACY['embed-once']:.4f}"
        )
    show(lines)


def _record(benchmark, key: str, accuracy: float) -> None:
    stats = benchmark.stats.stats
    RESULTS[key] = EPISODES / stats.min
    ACCURACY[key] = accuracy
    benchmark.extra_info.update(
        {
            "episodes_per_round": EPISODES,
            "episodes_per_s_best": RESULTS[key],
            "episodes_per_s_median": EPISODES / stats.median,
            "accuracy": accuracy,
        }
    )


def test_naive_per_pair(benchmark, setup):
    model, images, eps = setup
    benchmark.group = GROUP
    acc = benchmark.pedantic(naive_pairwise_accuracy, args=(model, images, eps), rounds=3, warmup_rounds=1)
    _record(benchmark, "naive", acc)


def test_embed_once(benchmark, setup):
    model, images, eps = setup
    benchmark.group = GROUP
    res = benchmark.pedantic(evaluate_episodes, args=(model, images, eps), rounds=5, warmup_rounds=1)
    _record(benchmark, "embed-once", res.accuracy)
    if "naive" in ACCURACY:  # same episodes, same model: the same predictions up to float rounding
        assert abs(res.accuracy - ACCURACY["naive"]) <= 0.02
