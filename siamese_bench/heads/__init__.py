"""Heads: turn two (or three) embeddings into a training loss and a similarity score.

Registry `HEADS` maps a name to a factory `(dim: int, **options) -> Head` (see base.py for the interface):

    name         what                                                   objective  metric
    koch         weighted L1 |ea - eb| -> logit, BCE (Koch et al. 2015)  pair       False
    contrastive  Euclidean distance, contrastive loss (Hadsell 2006)     pair       True
    triplet      squared Euclidean, triplet loss + mining (FaceNet 2015) triplet    True
    product      ea * eb -> MLP -> logit, BCE                            pair       False
    concat       cat(ea, eb) -> MLP -> 2 logits, cross-entropy (asym.)   pair       False
    l2           -squared Euclidean distance, no parameters (eval only)  pair       True
    cosine       cosine similarity, no parameters (eval only)            pair       True
"""

from __future__ import annotations

from collections.abc import Callable

from siamese_bench.registry import Registry

HEADS: Registry[Callable[..., Head]] = Registry("head")

from siamese_bench.heads import concat, contrastive, koch, nearest, product, triplet  # noqa: E402  (self-registering)
from siamese_bench.heads.base import Head  # noqa: E402

__all__ = ["HEADS", "Head", "concat", "contrastive", "koch", "nearest", "product", "triplet"]
