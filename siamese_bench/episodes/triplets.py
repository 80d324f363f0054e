"""Triplet sampling (`sample_triplets` -> `TripletBatch`), built on the helpers of pairs.py.

Each triplet: an anchor image, a different image of the anchor's class (positive) and an image of another
class (negative). Strategies, hard negatives (and their fallback rule) and determinism are as in pairs.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from siamese_bench.episodes.index import ClassIndex
from siamese_bench.episodes.pairs import (
    _check_batch_size,
    _check_classes,
    _check_generator,
    _draw_classes,
    _draw_image,
    _draw_other_class,
    _draw_other_image,
    _hard_count,
    _rand_ints,
    _randperm,
    class_weights,
    to_device,
)


@dataclass(frozen=True, eq=False)
class TripletBatch:
    """B triplets, all (B,) int64: anchor / positive / negative image indices into the ImageSet,
    anchor_class / negative_class global class ids (ImageSet label values; positive_class == anchor_class)."""

    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    anchor_class: torch.Tensor
    negative_class: torch.Tensor

    def __len__(self) -> int:
        return self.anchor.shape[0]

    def to(self, device: str | torch.device) -> TripletBatch:
        return TripletBatch(
            *(
                t.to(device)
                for t in (self.anchor, self.positive, self.negative, self.anchor_class, self.negative_class)
            )
        )


def sample_triplets(
    index: ClassIndex,
    batch_size: int,
    generator: torch.Generator,
    strategy: str = "uniform",
    class_probs: Sequence[float] | torch.Tensor | None = None,
    hard_negatives: float = 0.0,
) -> TripletBatch:
    """`batch_size` triplets on `index.device`; anchor classes follow `strategy` (see pairs.py).

    A fraction `hard_negatives` of the triplets (rounded to the nearest count, halves up; in random
    positions) takes its negative from the anchor's group. Raises ValueError like `sample_pairs` (single-image classes, < 2 classes, bad options).
    """
    batch_size = _check_batch_size(batch_size, even=False)
    _check_generator(generator)
    weights = class_weights(index, strategy, class_probs)
    _check_classes(index, weights)
    n_hard = _hard_count(hard_negatives, batch_size)
    host = index.host
    r = _rand_ints(generator, (5, batch_size))
    hard = None
    if n_hard:  # hard triplets at random positions
        hard = _randperm(generator, batch_size) < n_hard
    cls = _draw_classes(host, r[0], generator, weights)
    anchor, first = _draw_image(host, cls, r[1])
    positive = _draw_other_image(host, cls, first, r[2])
    other = _draw_other_class(host, cls, r[3], generator, weights, hard)
    negative, _ = _draw_image(host, other, r[4])
    ids = host.class_ids
    return TripletBatch(*to_device(index.device, anchor, positive, negative, ids[cls], ids[other]))
