"""Head: the base class of all heads (the interface every trainer and protocol relies on).

    objective: "pair" (trained on PairBatch) or "triplet" (trained on TripletBatch)
    metric:    True when similarity = -distance (prototypes are meaningful)
    loss(ea, eb, same)            pair heads:    ea, eb (B, D) float, same (B,) bool -> scalar
    loss(ea, ep, en, la, ln)      triplet heads: ea, ep, en (B, D) float, la, ln (B,) int64 -> scalar
    similarity(ea, eb)            (B, D), (B, D) -> (B,), higher = more alike
    score(q, s)                   q (E, Q, D), s (E, S, D) -> (E, Q, S) with
                                  score[e, i, j] == similarity(q[e, i], s[e, j])

`score` has a generic implementation here: all (query, support) pairs are gathered and passed to
`similarity` in chunks of at most `score_chunk_elements` gathered elements per operand, so memory stays
bounded for any E, Q, S, D. Heads with a cheaper closed form override it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class Head(nn.Module):
    """Base class; subclasses set `objective`, `metric` and implement `loss` and `similarity`."""

    objective: ClassVar[str] = "pair"
    metric: ClassVar[bool] = False
    #: False for a head whose loss refuses to train (the parameter-free l2 / cosine baselines)
    trainable: ClassVar[bool] = True
    #: one line for `ls heads`: the similarity, the loss and what it trains on
    about: ClassVar[str] = ""
    #: per-operand element budget for chunked score computation (float32: 4 bytes each)
    score_chunk_elements: ClassVar[int] = 1 << 24

    def __init__(self, dim: int) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(
                f"{type(self).__name__}: dim must be a positive int (the backbone out_dim), got {dim!r}"
            )
        self.dim = dim

    # ----- interface -------------------------------------------------------------------------------------
    def loss(self, *args: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def similarity(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """q (E, Q, D), s (E, S, D) -> (E, Q, S): similarity of every query with every support embedding."""
        self.check_score(q, s)
        E, Q, D = q.shape
        S = s.shape[1]
        n = E * Q * S
        out = q.new_empty(n)
        chunk = max(1, self.score_chunk_elements // D)
        for start in range(0, n, chunk):
            flat = torch.arange(start, min(start + chunk, n), device=q.device)
            e = flat // (Q * S)
            i = (flat // S) % Q
            j = flat % S
            out[start : start + chunk] = self.similarity(q[e, i], s[e, j])
        return out.view(E, Q, S)

    # ----- input checks (ValueError / TypeError naming the head and the fix) -------------------------------
    def check_embeddings(self, *embs: torch.Tensor) -> None:
        name = type(self).__name__
        first = embs[0]
        for x in embs:
            if x.dim() != 2 or x.shape[1] != self.dim or not x.is_floating_point():
                raise ValueError(
                    f"{name}(dim={self.dim}) expects float embeddings of shape (B, {self.dim}); got dtype "
                    f"{x.dtype} shape {tuple(x.shape)} (build the head with dim=backbone.out_dim, and make the backbone "
                    "return (B, out_dim) float embeddings: flatten its output, and set out_dim to their size)"
                )
            if x.shape != first.shape:
                raise ValueError(
                    f"{name}: embedding batches differ in shape: {tuple(first.shape)} vs {tuple(x.shape)}"
                )

    def check_pair(self, ea: torch.Tensor, eb: torch.Tensor, same: torch.Tensor) -> None:
        """ea, eb (B, D) float; same (B,) bool with True = same class."""
        self.check_embeddings(ea, eb)
        name = type(self).__name__
        if same.dtype != torch.bool:
            raise TypeError(
                f"{name}.loss: `same` must be a bool tensor with True = same class (got dtype {same.dtype}); "
                "convert with `labels_a == labels_b` (0/1 float labels are refused because tutorials "
                "disagree on whether 0 means similar or dissimilar)"
            )
        if same.shape != (ea.shape[0],):
            raise ValueError(f"{name}.loss: `same` must have shape ({ea.shape[0]},), got {tuple(same.shape)}")

    def check_triplet(
        self, ea: torch.Tensor, ep: torch.Tensor, en: torch.Tensor, la: torch.Tensor, ln: torch.Tensor
    ) -> None:
        """ea, ep, en (B, D) float; la, ln (B,) integer labels with la != ln everywhere."""
        self.check_embeddings(ea, ep, en)
        name = type(self).__name__
        B = ea.shape[0]
        for label, t in (("la", la), ("ln", ln)):
            if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
                raise TypeError(f"{name}.loss: {label} must be an integer class-label tensor, got {t.dtype}")
            if t.shape != (B,):
                raise ValueError(f"{name}.loss: {label} must have shape ({B},), got {tuple(t.shape)}")
        if bool((la == ln).any()):
            raise ValueError(
                f"{name}.loss: {int((la == ln).sum())} triplet(s) have a negative of the anchor's class "
                "(la == ln); negatives must come from another class"
            )

    def check_score(self, q: torch.Tensor, s: torch.Tensor) -> None:
        name = type(self).__name__
        for label, t in (("q", q), ("s", s)):
            if t.dim() != 3 or t.shape[2] != self.dim or not t.is_floating_point():
                raise ValueError(
                    f"{name}.score: {label} must be float (E, n, {self.dim}); got dtype {t.dtype} "
                    f"shape {tuple(t.shape)}"
                )
        if q.shape[0] != s.shape[0]:
            raise ValueError(
                f"{name}.score: q and s must have the same number of episodes E; "
                f"got {q.shape[0]} vs {s.shape[0]}"
            )

    def extra_repr(self) -> str:
        return f"dim={self.dim}, objective={self.objective!r}, metric={self.metric}"
