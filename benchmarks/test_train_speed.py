"""Training throughput: `train` side by side with the classic tutorial loop and with compute-only steps.

Groups (one pytest-benchmark table each; one round = 10 steps of batch 128 = 1,280 pairs):
  train-vs-tutorial  small-cnn + koch head on MNIST-sized images, end to end:
                     `tutorial_train` (a per-pair Python generator making numpy float arrays, then the textbook
                     network -- conv, ReLU, pool; NCHW; float32 -- run as two separate forward passes per batch)
                     vs `train` in four configurations of the same model and weights: the default (float32,
                     NCHW, one forward over all 256 images), `channels_last=True` (float32, NHWC), that plus
                     `forward_chunk=64` (float32; four forwards of 64 images: a working set that fits the
                     caches), and `channels_last=True, amp="bf16"` (bfloat16 autocast: fast on CPUs with
                     AVX512-BF16 / AMX; numerics differ from float32) (target: >= 2x pairs/s).
                     Also `conv-ceiling`: the model's two float32 NCHW convolutions alone (forward and
                     backward with the gradients a training step needs, same shapes, nothing else): the
                     ceiling for any float32 NCHW step built on PyTorch's convolution kernels.
  train-overhead     the same model: `train` end to end vs `compute_only_step` on pre-made tensors (the same
                     forward/backward/step without sampling and gathering) (target: overhead <= 10%).

Real MNIST train is used when `load_mnist()` finds the files ($SIAMESE_BENCH_DATA or the checkout's data/);
otherwise synthetic uint8 tensors of the same size (content does not change the speed). Which one is
printed with the summary and stored in extra_info. Torch runs on one thread, and the summary compares the
fastest round of each side (the least disturbed on a shared machine); medians are in the tables. Both sides
run with the allocator setting that `run` applies (`siamese_bench.allocator.keep_freed_memory`).
Run: pytest benchmarks/test_train_speed.py --benchmark-only -q
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from siamese_bench import allocator
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.episodes.index import ClassIndex, gather
from siamese_bench.episodes.pairs import sample_pairs
from siamese_bench.model import SiameseModel
from siamese_bench.train import TrainConfig, compute_only_step, train

BATCH = 128
ROUND_STEPS = 10
ROUND_PAIRS = BATCH * ROUND_STEPS
ROUNDS = 7
RESULTS: dict[str, float] = {}  # benchmark key -> pairs per second of the fastest round
NOTES: list[str] = []


def tutorial_pairs(images_np: np.ndarray, labels_np: np.ndarray, rng: random.Random):
    """The classic tutorial generator (reference only): one (a, b, same) numpy float32 triple per pair."""
    classes = sorted(set(labels_np.tolist()))
    by_class = {c: list(np.flatnonzero(labels_np == c)) for c in classes}
    k = 0
    while True:
        c = rng.choice(classes)
        i = rng.choice(by_class[c])
        if k % 2 == 0:
            j = rng.choice(by_class[c])
            while j == i:
                j = rng.choice(by_class[c])
        else:
            c2 = rng.choice(classes)
            while c2 == c:
                c2 = rng.choice(classes)
            j = rng.choice(by_class[c2])
        yield (
            images_np[i].astype(np.float32) / 255.0,
            images_np[j].astype(np.float32) / 255.0,
            float(k % 2 == 0),
        )
        k += 1


class TutorialNet(nn.Module):
    """The tutorials' small MNIST Siamese CNN as they write it (reference only): conv, ReLU, then
    nn.MaxPool2d, NCHW float32. The same parameters (and state_dict keys) as the package's small-cnn, which
    pools before the ReLU with backbones/maxpool.py (the same numbers, faster)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.fc = nn.Sequential(nn.Linear(1600, 120), nn.ReLU(), nn.Linear(120, 84))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def tutorial_train(net: TutorialNet, head, pairs, steps: int, optimizer) -> float:
    """The classic tutorial loop (reference only): stack a batch from the generator, two forward passes."""
    loss = torch.zeros(())
    for _ in range(steps):
        a, b, y = zip(*(next(pairs) for _ in range(BATCH)), strict=True)
        xa = torch.from_numpy(np.stack(a))[:, None]
        xb = torch.from_numpy(np.stack(b))[:, None]
        same = torch.tensor(y) > 0.5
        optimizer.zero_grad()
        loss = head.loss(net(xa), net(xb), same)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def _say(line: str) -> None:
    print(line)
    NOTES.append(line)


@pytest.fixture(scope="module")
def mnist() -> tuple[ImageSet, str]:
    try:
        from siamese_bench.datasets.mnist import load_mnist

        ds = load_mnist()["train"]
        what = f"real MNIST train ({len(ds)} images)"
    except Exception as err:  # missing files: synthetic data of the same size, and say so
        gen = torch.Generator().manual_seed(0)
        n = 60000
        ds = ImageSet(
            "synthetic-mnist",
            torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen),
            torch.randint(0, 10, (n,), generator=gen),
            tuple(str(i) for i in range(10)),
            torch.zeros(10, dtype=torch.int64),
            ("digits",),
        )
        what = f"synthetic MNIST-sized (60000, 1, 28, 28) uint8 ({type(err).__name__}: no real MNIST)"
    _say(f"[train benchmark] data: {what}; torch threads: {torch.get_num_threads()}")
    return ds, what


def _model() -> SiameseModel:
    torch.manual_seed(0)
    return SiameseModel.build("small-cnn", "koch", in_channels=1, image_size=28)


def _record(benchmark, key: str, what: str) -> None:
    stats = benchmark.stats.stats
    RESULTS[key] = ROUND_PAIRS / stats.min
    benchmark.extra_info.update(
        {
            "data": what,
            "pairs_per_round": ROUND_PAIRS,
            "pairs_per_s_best": RESULTS[key],
            "pairs_per_s_median": ROUND_PAIRS / stats.median,
        }
    )


CONFIGS = {  # benchmark key -> TrainConfig overrides
    "train": {},
    "train-channels-last": {"channels_last": True},
    "train-fast-fp32": {"channels_last": True, "forward_chunk": 64},
    "train-bf16": {"channels_last": True, "amp": "bf16"},
    "train-overhead": {},
}


def _config(**overrides) -> TrainConfig:
    return TrainConfig(
        train_pairs=ROUND_PAIRS,
        batch_size=BATCH,
        schedule="none",
        val_every=0,
        log_every=ROUND_PAIRS,
        **overrides,
    )


@pytest.fixture(scope="module", autouse=True)
def summary(show):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread keeps the rounds comparable
    # the allocator setting that `run` applies, for both sides (the tutorial gains from it too: the
    # conservative comparison); it cannot be undone within a process
    allocator.keep_freed_memory()
    _say(f"[train benchmark] allocator (both sides): {allocator.state()}")
    yield
    torch.set_num_threads(threads)
    lines = list(NOTES)
    for key, what in (
        ("train", "train() float32"),
        ("train-channels-last", "train(channels_last) float32"),
        ("train-fast-fp32", "train(channels_last, forward_chunk=64) float32"),
        ("train-bf16", "train(channels_last, amp=bf16)"),
    ):
        if "tutorial" in RESULTS and key in RESULTS:
            t, v = RESULTS["tutorial"], RESULTS[key]
            verdict = "meets" if v >= 2 * t else "MISSES"
            lines.append(
                f"pairs/s (fastest rounds): tutorial loop {t:,.0f}, {what} {v:,.0f}: {v / t:.2f}x ({verdict} the 2x target)"
            )
    if "tutorial" in RESULTS and "conv-ceiling" in RESULTS:
        t, c = RESULTS["tutorial"], RESULTS["conv-ceiling"]
        lines.append(
            f"pairs/s (fastest rounds): tutorial loop {t:,.0f}, the two float32 NCHW convolutions alone {c:,.0f}: {c / t:.2f}x "
            "(no float32 NCHW train() with these kernels can exceed this ratio)"
        )
    keys = ("compute-only", "train-overhead")
    if all(k in RESULTS for k in keys):
        c, v = (RESULTS[k] for k in keys)
        overhead = c / v - 1
        verdict = "meets" if overhead <= 0.10 else "MISSES"
        lines.append(
            f"pairs/s (fastest rounds): compute-only {c:,.0f}, train() {v:,.0f}: overhead {overhead:.1%} "
            f"({verdict} the 10% target)"
        )
    show(lines)


def test_tutorial_loop(benchmark, mnist):
    ds, what = mnist
    benchmark.group = "train-vs-tutorial: small-cnn + koch, batch 128, 1280 pairs per round"
    model = _model()
    net = TutorialNet()
    net.load_state_dict(model.backbone.state_dict())  # the same weights as the package's small-cnn
    opt = torch.optim.Adam([*net.parameters(), *model.head.parameters()], lr=1e-3)
    pairs = tutorial_pairs(ds.images[:, 0].numpy(), ds.labels.numpy(), random.Random(0))
    loss = benchmark.pedantic(
        tutorial_train,
        args=(net, model.head, pairs, ROUND_STEPS, opt),
        rounds=ROUNDS,
        iterations=1,
        warmup_rounds=1,
    )
    assert np.isfinite(loss)
    _record(benchmark, "tutorial", what)


@pytest.mark.parametrize("key", list(CONFIGS))
def test_train_loop(benchmark, mnist, key):
    ds, what = mnist
    benchmark.group = (
        "train-overhead: small-cnn + koch, batch 128, 1280 pairs per round"
        if key == "train-overhead"
        else "train-vs-tutorial: small-cnn + koch, batch 128, 1280 pairs per round"
    )
    model = _model()
    index = ClassIndex.build(ds)
    config = _config(**CONFIGS[key])
    result = benchmark.pedantic(
        train, args=(model, ds.images, index, config), rounds=ROUNDS, iterations=1, warmup_rounds=1
    )
    assert result.pairs_seen == ROUND_PAIRS
    _record(benchmark, key, what)


def test_compute_only(benchmark, mnist):
    ds, what = mnist
    benchmark.group = "train-overhead: small-cnn + koch, batch 128, 1280 pairs per round"
    model = _model()
    index = ClassIndex.build(ds)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(ROUND_STEPS):
        b = sample_pairs(index, BATCH, gen)
        batches.append((gather(ds.images, b.ab()), (b.same,)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run():
        loss = torch.zeros(())
        for x, targets in batches:
            loss = compute_only_step(model, x, targets, opt)
        return float(loss)

    loss = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert np.isfinite(loss)
    _record(benchmark, "compute-only", what)


def test_conv_ceiling(benchmark, mnist):
    """The convolutions of a float32 NCHW training step and nothing else: conv1 on the (256, 1, 28, 28) batch
    (weight and bias gradients: the input needs none) and conv2 on a (256, 32, 13, 13) activation (input,
    weight and bias gradients), backward from fixed output gradients. Pooling, ReLU, the FC layers, the head,
    the optimizer and sampling all cost extra, so no train() that uses these kernels beats this rate."""
    ds, what = mnist
    benchmark.group = "train-vs-tutorial: small-cnn + koch, batch 128, 1280 pairs per round"
    conv1, conv2 = (m for m in _model().backbone.features if isinstance(m, nn.Conv2d))
    gen = torch.Generator().manual_seed(0)
    b = sample_pairs(ClassIndex.build(ds), BATCH, gen)
    x = gather(ds.images, b.ab())
    h = torch.rand(2 * BATCH, 32, 13, 13, generator=gen, requires_grad=True)
    with torch.no_grad():
        g1, g2 = torch.randn_like(conv1(x)), torch.randn_like(conv2(h))

    wanted = [conv1.weight, conv1.bias, h, conv2.weight, conv2.bias]

    def run():  # autograd.grad: fresh gradients, as after zero_grad(set_to_none=True); nothing accumulates
        grads = ()
        for _ in range(ROUND_STEPS):
            grads = torch.autograd.grad([conv1(x), conv2(h)], wanted, [g1, g2])
        return grads

    grads = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert [g.shape for g in grads] == [w.shape for w in wanted]
    assert all(bool(torch.isfinite(g).all()) for g in grads)
    _record(benchmark, "conv-ceiling", what)
