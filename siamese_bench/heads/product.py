"""product head: element-wise product of the two embeddings followed by a small MLP.

    logit = Linear(hidden, 1)(ReLU(Linear(dim, hidden)(ea * eb)))     (hidden default 128)
    loss  = BCE with logits, target same (True = same class)
    similarity = logit (log-odds of same class; P(same) = sigmoid(logit), which saturates in float32)

Symmetric in (ea, eb). score uses the generic chunked implementation of Head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese_bench.heads import HEADS
from siamese_bench.heads.base import Head


@HEADS.register("product")
class ProductHead(Head):
    """(B, D), (B, D) -> logit (B,) from ea * eb; similarity = logit."""

    objective = "pair"
    metric = False
    about = "ea * eb -> MLP -> logit, binary cross-entropy on pairs"

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__(dim)
        if hidden < 1:
            raise ValueError(f"ProductHead: hidden must be >= 1, got {hidden}")
        self.hidden = hidden
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def logits(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) logits."""
        return self.mlp(ea * eb).squeeze(-1)

    def loss(self, ea: torch.Tensor, eb: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Mean BCE-with-logits; same (B,) bool, True = same class."""
        self.check_pair(ea, eb, same)
        return F.binary_cross_entropy_with_logits(self.logits(ea, eb), same.to(ea.dtype))

    def similarity(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) log-odds of same class (sigmoid gives the probability)."""
        self.check_embeddings(ea, eb)
        return self.logits(ea, eb)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, hidden={self.hidden}"
