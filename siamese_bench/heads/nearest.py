"""Parameter-free nearest-neighbour heads `l2` and `cosine`: evaluation-only baselines.

    l2      similarity = -||ea - eb||^2 (negative squared Euclidean distance); score = -cdist(q, s)^2
    cosine  similarity = <ea / ||ea||, eb / ||eb||> (cosine similarity, 0 for a zero vector);
            score = normalised q @ normalised s^T

Both are metric heads (metric=True), so N-way K-shot evaluation with K > 1 scores each query against the
class mean embedding ("prototype" aggregation): with the `pixels` backbone this is the pixel-space
1-nearest-neighbour baseline (K = 1) and the prototype (mean image) method (K > 1). With a trained backbone
they score its embeddings without a learned head.

They have no parameters: `loss` raises ValueError. Run them with train_pairs 0 (`--train-pairs 0`); the
runner then trains nothing (a model without trainable parameters is never trained).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from siamese_bench.heads import HEADS
from siamese_bench.heads.base import Head


class _NearestHead(Head):
    """Shared part: objective "pair", metric, and a loss that refuses to train."""

    objective = "pair"
    metric = True
    trainable = False
    registry_name: ClassVar[str] = ""

    def loss(self, *args: torch.Tensor) -> torch.Tensor:
        """Always raises: there is nothing to train."""
        raise ValueError(
            f"head {self.registry_name!r} ({type(self).__name__}) has no parameters to train; use "
            "train_pairs 0 (--train-pairs 0) to evaluate it as a fixed baseline, or pick a trainable head "
            "(e.g. contrastive) to train the backbone"
        )


@HEADS.register("l2")
class L2Head(_NearestHead):
    """Negative squared Euclidean distance: (B, D), (B, D) -> (B,); no parameters."""

    registry_name = "l2"
    about = "negative squared Euclidean distance; no parameters: evaluation only (--train-pairs 0)"

    def similarity(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) -||ea - eb||^2."""
        self.check_embeddings(ea, eb)
        return -(ea - eb).pow(2).sum(-1)

    def score(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """q (E, Q, D), s (E, S, D) -> (E, Q, S) negative squared Euclidean distances (torch.cdist squared).

        For more than 25 rows cdist uses its matrix-product path: distances between near-identical vectors
        carry an absolute error of about sqrt(float eps) * ||x|| (irrelevant for ranking).
        """
        self.check_score(q, s)
        return -torch.cdist(q, s).square()


@HEADS.register("cosine")
class CosineHead(_NearestHead):
    """Cosine similarity: (B, D), (B, D) -> (B,) in [-1, 1]; no parameters."""

    registry_name = "cosine"
    about = "cosine similarity; no parameters: evaluation only (--train-pairs 0)"

    def similarity(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) cosine similarity (0 when either vector is zero)."""
        self.check_embeddings(ea, eb)
        return (F.normalize(ea, dim=-1) * F.normalize(eb, dim=-1)).sum(-1)

    def score(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """q (E, Q, D), s (E, S, D) -> (E, Q, S) cosine similarities (one batched matmul)."""
        self.check_score(q, s)
        return F.normalize(q, dim=-1) @ F.normalize(s, dim=-1).transpose(1, 2)
