"""concat head: concatenation of the two embeddings followed by an MLP with 2 outputs.

    logits = Linear(hidden, 2)(ReLU(Linear(2 * dim, hidden)(cat(ea, eb))))     (hidden default 128)
    loss   = cross-entropy with class 1 = same class (target same.long())
    similarity = logits[:, 1] - logits[:, 0]  (log-odds of same class; P(same) = sigmoid of it = softmax[:, 1])

NOT symmetric: similarity(ea, eb) != similarity(eb, ea) in general, because the first layer weighs the two
halves differently. score(q, s) always puts the query first: score[e, i, j] = similarity(q[e, i], s[e, j]).

score uses a closed form: the first layer splits as W_a ea + W_b eb + b, so q @ W_a^T (E, Q, H) and
s @ W_b^T (E, S, H) are computed once and broadcast-added in chunks over episodes, so the (E, Q, S, H) hidden
activations never exceed `score_chunk_elements` elements at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese_bench.heads import HEADS
from siamese_bench.heads.base import Head


@HEADS.register("concat")
class ConcatHead(Head):
    """(B, D), (B, D) -> 2 logits (B, 2) from cat(ea, eb); similarity = log-odds of same (asymmetric)."""

    objective = "pair"
    metric = False
    about = "cat(ea, eb) -> MLP -> 2 logits, cross-entropy on pairs (asymmetric in a and b)"

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__(dim)
        if hidden < 1:
            raise ValueError(f"ConcatHead: hidden must be >= 1, got {hidden}")
        self.hidden = hidden
        self.fc1 = nn.Linear(2 * dim, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def logits(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B, 2) logits; column 1 = same class."""
        return self.fc2(F.relu(self.fc1(torch.cat([ea, eb], dim=-1))))

    def loss(self, ea: torch.Tensor, eb: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy; same (B,) bool, True = same class = class 1."""
        self.check_pair(ea, eb, same)
        return F.cross_entropy(self.logits(ea, eb), same.long())

    def similarity(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B,) log-odds that ea and eb are of the same class."""
        self.check_embeddings(ea, eb)
        logits = self.logits(ea, eb)
        return logits[:, 1] - logits[:, 0]

    def score(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """q (E, Q, D), s (E, S, D) -> (E, Q, S) with score[e, i, j] = similarity(q[e, i], s[e, j])."""
        self.check_score(q, s)
        E, Q, _ = q.shape
        S = s.shape[1]
        w = self.fc1.weight.to(q.dtype)
        ha = q @ w[:, : self.dim].T + self.fc1.bias.to(q.dtype)  # (E, Q, H)
        hb = s @ w[:, self.dim :].T  # (E, S, H)
        per_episode = max(1, Q * S * self.hidden)
        chunk = max(1, self.score_chunk_elements // per_episode)
        out = []
        for start in range(0, E, chunk):
            h = F.relu(ha[start : start + chunk, :, None] + hb[start : start + chunk, None])  # (e, Q, S, H)
            logits = self.fc2(h)
            out.append(logits[..., 1] - logits[..., 0])
        return torch.cat(out) if out else q.new_empty(0, Q, S)
