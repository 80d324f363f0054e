"""triplet head: the triplet loss of FaceNet (Schroff, Kalenichenko & Philbin, CVPR 2015) with mining.

Distance: squared Euclidean d(x, y) = ||x - y||^2, on L2-normalised embeddings when normalize=True (the
default, as in FaceNet; d is then in [0, 4] and the default margin 0.2 is FaceNet's alpha).

    loss = mean over mined triplets of relu(d(a, p) - d(a, n) + margin)

Mining (`mining=`):
- "random": the given triplets (ea[i], ep[i], en[i]) as they are (default; the sampler already draws them
  at random).
- "semi-hard": FaceNet semi-hard negatives with the TensorFlow `triplet_semihard_loss` definition, over the
  mining batch X = cat(ea, ep, en) with labels y = cat(la, la, ln) (3B embeddings): for every ordered
  anchor-positive pair (i, j), i != j, y_i == y_j, the negative is the closest k with y_k != y_i and
  d(i, k) > d(i, j) (semi-hard: farther than the positive, the loss still positive only while
  d(i, k) < d(i, j) + margin); if no negative is farther than the positive, the easiest negative
  (largest d(i, k)) is used. The loss is the mean over all anchor-positive pairs.
- "batch-hard": Hermans, Beyer & Leibe 2017 ("In Defense of the Triplet Loss"), over the same mining batch:
  every embedding of X is an anchor, with its hardest positive (largest d to another embedding of its
  class) and hardest negative (smallest d to another class); anchors with no other embedding of their
  class in X are skipped. The loss is the mean over anchors (squared distances here, like the rest of the
  head; Hermans et al. use the plain Euclidean distance).

similarity = -d(ea, eb); score = -squared cdist (both after normalisation when normalize=True).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from siamese_bench.heads import HEADS
from siamese_bench.heads.base import Head

MINING = ("random", "semi-hard", "batch-hard")


def pairwise_sq_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(..., N, D), (..., M, D) -> (..., N, M) squared Euclidean distances, clamped at 0."""
    xx = x.pow(2).sum(-1, keepdim=True)
    yy = y.pow(2).sum(-1, keepdim=True).transpose(-1, -2)
    return (xx + yy - 2 * x @ y.transpose(-1, -2)).clamp(min=0)


@HEADS.register("triplet")
class TripletHead(Head):
    """Triplet-loss head (parameter-free): ea, ep, en (B, D), la, ln (B,) int64 -> scalar."""

    objective = "triplet"
    metric = True
    about = "squared Euclidean on L2-normalised embeddings, triplet loss on triplets, margin 0.2 (FaceNet 2015); random triplets (semi-hard / batch-hard mining from Python: TripletHead(dim, mining=...))"

    def __init__(self, dim: int, margin: float = 0.2, normalize: bool = True, mining: str = "random") -> None:
        super().__init__(dim)
        if not margin > 0:
            raise ValueError(f"TripletHead: margin must be > 0, got {margin}")
        if mining not in MINING:
            raise ValueError(f"TripletHead: unknown mining {mining!r}; valid: {', '.join(MINING)}")
        self.margin = float(margin)
        self.normalize = bool(normalize)
        self.mining = mining

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalise along the last dim when normalize=True, else identity."""
        return F.normalize(x, dim=-1) if self.normalize else x

    def loss(
        self, ea: torch.Tensor, ep: torch.Tensor, en: torch.Tensor, la: torch.Tensor, ln: torch.Tensor
    ) -> torch.Tensor:
        """Mean triplet loss with the configured mining (see the module docstring)."""
        self.check_triplet(ea, ep, en, la, ln)
        ea, ep, en = self.embed(ea), self.embed(ep), self.embed(en)
        if self.mining == "random":
            d_ap = (ea - ep).pow(2).sum(-1)
            d_an = (ea - en).pow(2).sum(-1)
            return (d_ap - d_an + self.margin).clamp(min=0).mean()
        x = torch.cat([ea, ep, en])
        y = torch.cat([la, la, ln])
        d = pairwise_sq_dist(x, x)  # (3B, 3B)
        same = y[:, None] == y[None, :]
        eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
        pos = same & ~eye
        neg = ~same
        if self.mining == "semi-hard":
            i, j = pos.nonzero(as_tuple=True)  # all ordered anchor-positive pairs, P of them
            d_ap = d[i, j]  # (P,)
            row = d[i]  # (P, 3B)
            row_neg = neg[i]
            outside = row_neg & (row > d_ap[:, None])
            inf = torch.finfo(d.dtype).max
            closest_outside = torch.where(outside, row, torch.full_like(row, inf)).min(-1).values
            easiest = torch.where(row_neg, row, torch.full_like(row, -inf)).max(-1).values
            d_an = torch.where(outside.any(-1), closest_outside, easiest)
            return (d_ap - d_an + self.margin).clamp(min=0).mean()
        # batch-hard
        has_pos = pos.any(-1)
        zero = torch.zeros_like(d)
        hardest_pos = torch.where(pos, d, zero).max(-1).values  # d >= 0, so masked zeros never win
        inf = torch.finfo(d.dtype).max
        hardest_neg = torch.where(neg, d, torch.full_like(d, inf)).min(-1).values
        per = (hardest_pos - hardest_neg + self.margin).clamp(min=0)
        return per[has_pos].mean()

    def similarity(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) negative squared Euclidean distance (after normalisation if on)."""
        self.check_embeddings(ea, eb)
        return -(self.embed(ea) - self.embed(eb)).pow(2).sum(-1)

    def score(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """q (E, Q, D), s (E, S, D) -> (E, Q, S) negative squared distances (after normalisation if on)."""
        self.check_score(q, s)
        return -pairwise_sq_dist(self.embed(q), self.embed(s))

    def extra_repr(self) -> str:
        opts = f"margin={self.margin}, normalize={self.normalize}, mining={self.mining!r}"
        return f"{super().extra_repr()}, {opts}"
