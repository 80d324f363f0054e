"""koch head: the weighted L1 siamese head of Koch, Zemel & Salakhutdinov 2015.

    logit = w . |ea - eb| + b          (nn.Linear(dim, 1) on the component-wise L1 distance)
    loss  = BCE with logits, target same (True = same class -> 1)
    similarity = logit (the log-odds of same class; P(same) = sigmoid(logit)). Ranking and verification use
    the logit, since float32 sigmoid saturates to exactly 0 or 1 and would turn confident scores into ties.

score(q, s) uses a closed form instead of materialising |q - s| of shape (E, Q, S, D) (D is 4096 for the
Koch backbone): splitting w into w+ = relu(w) and w- = relu(-w),

    w . |q - s| = ||w+ * q - w+ * s||_1 - ||w- * q - w- * s||_1

so two batched L1 `torch.cdist` calls give all pairs with O(E (Q + S) D) extra memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese_bench.heads import HEADS
from siamese_bench.heads.base import Head


@HEADS.register("koch")
class KochHead(Head):
    """Weighted-L1 head: (B, D), (B, D) -> logit (B,); similarity = logit (log-odds of same class)."""

    objective = "pair"
    metric = False
    about = "weighted L1 |ea - eb| -> logit, binary cross-entropy on pairs (Koch et al. 2015)"

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.fc = nn.Linear(dim, 1)

    def logits(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) logits."""
        return self.fc((ea - eb).abs()).squeeze(-1)

    def loss(self, ea: torch.Tensor, eb: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Mean BCE-with-logits; same (B,) bool, True = same class."""
        self.check_pair(ea, eb, same)
        return F.binary_cross_entropy_with_logits(self.logits(ea, eb), same.to(ea.dtype))

    def similarity(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) log-odds of same class (sigmoid gives the probability)."""
        self.check_embeddings(ea, eb)
        return self.logits(ea, eb)

    def score(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """q (E, Q, D), s (E, S, D) -> (E, Q, S) logits, via two weighted L1 cdists."""
        self.check_score(q, s)
        w = self.fc.weight[0].to(q.dtype)
        wp, wn = w.clamp(min=0), (-w).clamp(min=0)
        l1 = torch.cdist(q * wp, s * wp, p=1) - torch.cdist(q * wn, s * wn, p=1)
        return l1 + self.fc.bias.to(q.dtype)
