"""contrastive head: the contrastive loss of Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning
an Invariant Mapping" (CVPR 2006), on the Euclidean distance d = ||ea - eb||_2.

    loss = mean( same * d^2 + (1 - same) * relu(margin - d)^2 ) / 2          (margin default 1.0)

LABEL CONVENTION: `same` is a bool tensor, True = the pair is of the SAME class (pulled together),
False = different classes (pushed apart to at least `margin`). Float/int labels raise TypeError: the paper
uses Y = 0 for similar pairs while many tutorials use 1, so a numeric label is ambiguous.

similarity = -d, score = -torch.cdist (metric head: prototypes are meaningful). The distance is a safe square
root: exactly 0 at identical embeddings, with a zero (not NaN) gradient there.
"""

from __future__ import annotations

import torch

from siamese_bench.heads import HEADS
from siamese_bench.heads.base import Head


def safe_norm(diff: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B,) Euclidean norm with a finite (zero) gradient where diff == 0."""
    sq = diff.pow(2).sum(-1)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


@HEADS.register("contrastive")
class ContrastiveHead(Head):
    """Contrastive-loss head (parameter-free): (B, D), (B, D), same (B,) bool -> scalar."""

    objective = "pair"
    metric = True
    about = "Euclidean distance, contrastive loss on pairs, margin 1 (Hadsell et al. 2006)"

    def __init__(self, dim: int, margin: float = 1.0) -> None:
        super().__init__(dim)
        if not margin > 0:
            raise ValueError(f"ContrastiveHead: margin must be > 0, got {margin}")
        self.margin = float(margin)

    def loss(self, ea: torch.Tensor, eb: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Hadsell et al. loss; same (B,) bool, True = same class (see the module docstring)."""
        self.check_pair(ea, eb, same)
        diff = ea - eb
        sq = diff.pow(2).sum(-1)  # d^2 without a square root: exact and smooth for positives
        d = safe_norm(diff)
        per = torch.where(same, sq, (self.margin - d).clamp(min=0).pow(2))
        return per.mean() / 2

    def similarity(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) negative Euclidean distance."""
        self.check_embeddings(ea, eb)
        return -safe_norm(ea - eb)

    def score(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """q (E, Q, D), s (E, S, D) -> (E, Q, S) negative Euclidean distances (torch.cdist).

        For more than 25 rows cdist uses its matrix-product path: fast, but distances between near-identical
        vectors carry an absolute error of about sqrt(float eps) * ||x|| (irrelevant for ranking).
        """
        self.check_score(q, s)
        return -torch.cdist(q, s)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}"
