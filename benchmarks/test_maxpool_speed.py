"""Max-pooling on the CPU: the package's `MaxPool2d` (backbones/maxpool.py) side by side with `nn.MaxPool2d`.

Groups (one pytest-benchmark table each, one torch thread):
  pool-layer   forward + backward of one pool on small-cnn's first activation (256, 32, 26, 26), NCHW float32.
  train-step   one training step (forward, loss, backward, Adam) of a backbone + head on pre-made images,
               with the package's pools and with the same model's pools swapped for nn.MaxPool2d: small-cnn +
               koch (batch 128 pairs = 256 images of 28x28) and conv4 + contrastive (64 pairs of 28x28).
The two sides compute bit-identical numbers (tests/backbones/test_maxpool.py); only the time differs.
Run: pytest benchmarks/test_maxpool_speed.py --benchmark-only -q
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from siamese_bench import allocator
from siamese_bench.backbones.maxpool import MaxPool2d, with_nn_maxpool
from siamese_bench.model import SiameseModel
from siamese_bench.train import compute_only_step

RESULTS: dict[str, float] = {}  # benchmark name -> median seconds


@pytest.fixture(scope="module", autouse=True)
def summary(show):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    allocator.keep_freed_memory()  # what `run` applies
    yield
    torch.set_num_threads(threads)
    lines = [f"[maxpool benchmark] torch threads: 1; allocator: {allocator.state()}"]
    for key in ("pool-layer", "small-cnn+koch", "conv4+contrastive"):
        ref, new = RESULTS.get(f"{key}/nn.MaxPool2d"), RESULTS.get(f"{key}/MaxPool2d")
        if ref and new:
            lines.append(
                f"{key}: nn.MaxPool2d {ref * 1e3:.1f} ms, MaxPool2d {new * 1e3:.1f} ms (median): "
                f"{ref / new:.2f}x"
            )
    show(lines)


SIDES = {"nn.MaxPool2d": lambda: nn.MaxPool2d(2), "MaxPool2d": lambda: MaxPool2d(2)}


@pytest.mark.parametrize("side", list(SIDES))
def test_pool_layer(benchmark, side):
    benchmark.group = "pool-layer: (256, 32, 26, 26) NCHW float32, forward + backward"
    pool = SIDES[side]()
    x = torch.randn(256, 32, 26, 26, generator=torch.Generator().manual_seed(0), requires_grad=True)
    grad = torch.randn(256, 32, 13, 13, generator=torch.Generator().manual_seed(1))

    def step():
        (g,) = torch.autograd.grad(pool(x), x, grad)
        return g

    benchmark.pedantic(step, rounds=15, iterations=1, warmup_rounds=2)
    RESULTS[f"pool-layer/{side}"] = benchmark.stats.stats.median


MODELS = {  # key -> (backbone, head, pairs per batch)
    "small-cnn+koch": ("small-cnn", "koch", 128),
    "conv4+contrastive": ("conv4", "contrastive", 64),
}


@pytest.mark.parametrize("side", list(SIDES))
@pytest.mark.parametrize("key", list(MODELS))
def test_train_step(benchmark, key, side):
    backbone, head, pairs = MODELS[key]
    benchmark.group = f"train-step: {key}, {pairs} pairs of 28x28, NCHW float32"
    torch.manual_seed(0)
    model = SiameseModel.build(backbone, head, in_channels=1, image_size=28)
    if side == "nn.MaxPool2d":
        model = with_nn_maxpool(model)[0]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert pools and all(isinstance(m, MaxPool2d) == (side == "MaxPool2d") for m in pools)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2 * pairs, 1, 28, 28, generator=gen)
    same = torch.arange(pairs) % 2 == 0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = benchmark.pedantic(
        compute_only_step, args=(model, x, (same,), opt), rounds=10, iterations=1, warmup_rounds=2
    )
    assert torch.isfinite(torch.as_tensor(loss)).all()
    RESULTS[f"{key}/{side}"] = benchmark.stats.stats.median
