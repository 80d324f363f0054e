"""Throughput of one backbone x head x device x batch size on synthetic images of the protocol's shape.

Each number is the median of `repeats` timed runs after one warm-up run, with the device synchronised
before every clock read: training pairs/s through the real training loop (sampling, gather, one forward
over both sides, backward, step), evaluation images/s (embedding in eval mode) and 20-way 1-shot
evaluation episodes/s (embed-once scoring); parameter-free baselines have no training speed (empty).
Peak memory is CUDA's max_memory_allocated (empty on CPU).
"""

from __future__ import annotations

import statistics
import time

import torch

from siamese_bench import provenance
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.episodes.episodes import sample_episodes
from siamese_bench.episodes.index import ClassIndex
from siamese_bench.evaluate import embed_all, evaluate_episodes
from siamese_bench.model import SiameseModel
from siamese_bench.train import TrainConfig, train

# synthetic data: enough classes for 20-way episodes; the 50 timed episodes share images (about 750 distinct
# of 2,000), so episodes/s runs above what a test set of Omniglot's size gives (about 2.3x in one check)
N_CLASSES, PER_CLASS = 40, 20


def _timed(fn, device: torch.device, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - t)
    return out


def measure(
    row: dict,
    channels: int,
    amp: bool = False,
    channels_last: bool = False,
    forward_chunk: int = 0,
    repeats: int = 5,
    steps: int = 5,
    eval_episodes: int = 50,
) -> dict:
    """Fill in the throughput columns of `row` (backbone, head, device, dtype, image_size, batch_size)."""
    from siamese_bench.runner import error_text

    row = dict(row, repeats=repeats, git_hash=provenance.git_hash(), torch_version=torch.__version__)
    device = torch.device(row["device"])
    try:
        size, bs = int(row["image_size"]), int(row["batch_size"])
        gen = torch.Generator().manual_seed(0)
        n = N_CLASSES * PER_CLASS
        images = torch.randint(0, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8)
        labels = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
        ds = ImageSet(
            "synthetic",
            images,
            labels,
            tuple(map(str, range(N_CLASSES))),
            torch.zeros(N_CLASSES, dtype=torch.int64),
            ("all",),
        ).to(device)
        index = ClassIndex.build(ds)
        torch.manual_seed(0)
        model = SiameseModel.build(row["backbone"], row["head"], in_channels=channels, image_size=size).to(
            device
        )
        cfg = TrainConfig(
            batch_size=bs,
            train_pairs=bs * steps,
            val_every=0,
            schedule="none",
            amp="bf16" if amp else "none",
            channels_last=channels_last,
            forward_chunk=forward_chunk,
            log_every=10**9,
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # nothing to train: no parameters (pixels), or a head that scores without training (l2, cosine)
        trainable = model.head.trainable and any(p.requires_grad for p in model.parameters())
        train_t = _timed(lambda: train(model, ds.images, index, cfg), device, repeats) if trainable else None
        every = torch.arange(n, device=device)
        embed_t = _timed(lambda: embed_all(model, ds.images, every), device, repeats)
        ep = sample_episodes(index.to("cpu"), 20, 1, 1, eval_episodes, seed=0).to(device)
        eval_t = _timed(lambda: evaluate_episodes(model, ds.images, ep), device, repeats)
        row.update(
            train_pairs_per_s=bs * steps / statistics.median(train_t)
            if train_t
            else None,  # None: nothing to train
            eval_images_per_s=n / statistics.median(embed_t),
            eval_episodes_per_s=eval_episodes / statistics.median(eval_t),
            peak_memory_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            status="ok",
        )
    except Exception as exc:
        row.update(status="error", error=error_text(exc))
    row["timestamp"] = provenance.timestamp()
    return row
