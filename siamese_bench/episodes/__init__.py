"""Sampling layer: class index and image gather (index.py), verification pairs (pairs.py; stream.py draws
the same batches many at a time), triplets (triplets.py) and N-way K-shot evaluation episodes
(episodes.py)."""

from siamese_bench.episodes.episodes import Episodes, episodes_fingerprint, sample_episodes
from siamese_bench.episodes.index import ClassIndex, gather
from siamese_bench.episodes.pairs import STRATEGIES, PairBatch, class_weights, sample_pairs
from siamese_bench.episodes.stream import PairStream
from siamese_bench.episodes.triplets import TripletBatch, sample_triplets

__all__ = [
    "STRATEGIES",
    "ClassIndex",
    "Episodes",
    "PairBatch",
    "PairStream",
    "TripletBatch",
    "class_weights",
    "episodes_fingerprint",
    "gather",
    "sample_episodes",
    "sample_pairs",
    "sample_triplets",
]
