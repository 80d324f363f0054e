"""One-shot (N-way K-shot) accuracy on frozen episodes, and pair verification metrics.

Embed once, score all at once: `evaluate_episodes` embeds every distinct image referenced by the episodes
exactly once (`torch.unique` over support and query indices), then scores chunks of episodes with the
head's `score(q (E, NQ, D), s (E, S, D)) -> (E, NQ, S)`, so no pair ever goes through the backbone twice.

K > 1 aggregation:
  "mean-score"  score every query against every shot, average the K scores of each class;
  "prototype"   score every query against each class's mean embedding (metric heads only: for heads whose
                score is a learned log-odds of "same", a mean embedding has no meaning). The mean is over the
                K embeddings as the backbone outputs them; a head that compares normalised embeddings
                (`cosine`, `triplet`) normalises that mean, not each shot before averaging;
  "auto"        "prototype" for metric heads, "mean-score" otherwise.
The prediction is the argmax over the N classes (ties go to the lowest class index).

`verification` reports same/different accuracy and ROC-AUC on a PairBatch. Every function here runs the
model in eval mode under no_grad and restores the caller's train/eval mode afterwards.
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from siamese_bench.stats import mean_ci95

AGGREGATIONS = ("auto", "mean-score", "prototype")
SCORE_CHUNK_ELEMENTS = 2**25  # bound on e * NQ * S * D per `head.score` call (~128 MB of float32)


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Result of `evaluate_episodes`.

    accuracy: mean per-episode accuracy (fraction in [0, 1]).
    ci95: 1.96 * std(ddof=1) / sqrt(E) over episodes (NaN for a single episode).
    per_episode: (E,) float64 accuracy of each episode (CPU).
    correct: (E, N*Q) bool per query (class-major, CPU), or None unless return_correct=True.
    aggregation: the aggregation actually used ("mean-score" or "prototype"; "auto" is resolved).
    """

    accuracy: float
    ci95: float
    per_episode: torch.Tensor
    correct: torch.Tensor | None
    aggregation: str


class _EvalMode:
    """Context manager: model.eval() + no_grad inside, the previous training flag restored on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        self.model.eval()

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)
        self.no_grad.__exit__(*exc)


def check_images(images: torch.Tensor, where: str) -> None:
    """TypeError / ValueError unless `images` is an ImageSet's uint8 (N, C, H, W) tensor (train, evaluate)."""
    if not isinstance(images, torch.Tensor):
        hint = " (pass imageset.images, not the ImageSet)" if hasattr(images, "images") else ""
        raise TypeError(
            f"{where}: images must be the uint8 (N, C, H, W) tensor of the ImageSet{hint}, got "
            f"{type(images).__name__}"
        )
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"{where}: images must be the uint8 (N, C, H, W) tensor of the ImageSet, got {images.dtype} "
            f"{tuple(images.shape)}"
        )


def _check_indices(idx: torch.Tensor, n: int, where: str) -> None:
    if idx.dtype != torch.int64:
        raise ValueError(f"{where}: image indices must be int64, got {idx.dtype}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(
            f"{where}: image indices must lie in [0, {n}) (the images tensor has {n} images), got range "
            f"[{int(idx.min())}, {int(idx.max())}]; were the episodes built for another ImageSet?"
        )


def check_model_device(model: nn.Module, images: torch.Tensor, where: str) -> None:
    """ValueError when the model's weights are not on the images' device (train, evaluate)."""
    param = next(itertools.chain(model.parameters(), model.buffers()), None)
    if param is not None and param.device != images.device:
        raise ValueError(
            f"{where}: model is on {param.device} but images are on {images.device}; move both to one device "
            "(model.to(device), imageset.to(device))"
        )


def _check_batch_size(batch_size: int, where: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an int >= 1, got {batch_size!r}")


def _embed(model: nn.Module, images: torch.Tensor, idx: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(M, D) float32 embeddings of images[idx] (no mode switching; caller handles eval/no_grad)."""
    idx = idx.to(images.device)
    parts = []
    for start in range(0, idx.shape[0], batch_size):
        x = images.index_select(0, idx[start : start + batch_size]).float().div_(255)
        parts.append(model.embed(x).float())
    if not parts:
        raise ValueError("embed_all: no indices given (idx is empty)")
    return torch.cat(parts)


def embed_all(
    model: nn.Module, images: torch.Tensor, idx: torch.Tensor, batch_size: int = 512
) -> torch.Tensor:
    """Embed images[idx] in eval mode without gradients.

    model: a SiameseModel (anything with `embed`); images: (N, C, H, W) uint8 on the model's device;
    idx: (M,) int64 image indices (meant to be unique: each is embedded once per occurrence).
    Returns (M, D) float32 on the images' device. The model's train/eval mode is restored afterwards.
    """
    check_images(images, "embed_all")
    if idx.ndim != 1:
        raise ValueError(f"embed_all: idx must be 1-D (M,), got shape {tuple(idx.shape)}")
    _check_indices(idx, images.shape[0], "embed_all")
    _check_batch_size(batch_size, "embed_all")
    check_model_device(model, images, "embed_all")
    with _EvalMode(model):
        return _embed(model, images, idx, batch_size)


def resolve_aggregation(aggregation: str, metric: bool) -> str:
    """Resolve "auto" ("prototype" for metric heads, else "mean-score"); "prototype" needs a metric head."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; valid: {', '.join(AGGREGATIONS)}")
    if aggregation == "auto":
        return "prototype" if metric else "mean-score"
    if aggregation == "prototype" and not metric:
        raise ValueError(
            "aggregation 'prototype' needs a metric head (score = -distance); this head scores pairs with a "
            "learned log-odds, for which a mean embedding is meaningless: use 'mean-score' or 'auto'"
        )
    return aggregation


def evaluate_episodes(
    model: nn.Module,
    images: torch.Tensor,
    episodes,
    aggregation: str = "auto",
    batch_size: int = 512,
    return_correct: bool = False,
) -> EvalResult:
    """N-way K-shot accuracy of `model` on frozen `episodes` (an `Episodes`).

    images: (N_img, C, H, W) uint8 on the model's device; episodes.support (E, N*K), episodes.query (E, N*Q)
    int64 image indices, class-major. Each distinct image is embedded once (batches of `batch_size`); then
    head.score over chunks of episodes; predictions are argmax over the N classes (see module docstring for
    the aggregation). Returns an EvalResult; `correct` only when return_correct=True.
    """
    check_images(images, "evaluate_episodes")
    if not all(hasattr(episodes, a) for a in ("support", "query", "n_way", "k_shot", "n_query")):
        raise TypeError(
            f"evaluate_episodes: episodes must be an Episodes (from sample_episodes or Episodes.load), got "
            f"{type(episodes).__name__}"
        )
    _check_batch_size(batch_size, "evaluate_episodes")
    check_model_device(model, images, "evaluate_episodes")
    head = model.head
    agg = resolve_aggregation(aggregation, bool(head.metric))
    n, k, q = int(episodes.n_way), int(episodes.k_shot), int(episodes.n_query)
    support, query = episodes.support, episodes.query
    e = support.shape[0]
    if support.shape != (e, n * k) or query.shape != (e, n * q) or e == 0:
        raise ValueError(
            f"evaluate_episodes: episodes must have support (E, N*K) = (E, {n * k}) and query (E, N*Q) = "
            f"(E, {n * q}) with E >= 1, got {tuple(support.shape)} and {tuple(query.shape)}"
        )
    device = images.device
    flat = torch.cat([support.reshape(-1), query.reshape(-1)]).to(device)
    _check_indices(flat, images.shape[0], "evaluate_episodes")
    uniq, inverse = torch.unique(flat, return_inverse=True)
    s_pos = inverse[: e * n * k].view(e, n * k)
    q_pos = inverse[e * n * k :].view(e, n * q)
    labels = torch.arange(n, device=device).repeat_interleave(q)  # (N*Q,)

    with _EvalMode(model):
        emb = _embed(model, images, uniq, batch_size)  # (U, D)
        d = emb.shape[1]
        targets = n if agg == "prototype" else n * k
        chunk = max(1, SCORE_CHUNK_ELEMENTS // max(1, n * q * targets * d))
        correct = []
        for start in range(0, e, chunk):
            qe = emb[q_pos[start : start + chunk]]  # (e', N*Q, D)
            se = emb[s_pos[start : start + chunk]]  # (e', N*K, D)
            if agg == "prototype":
                scores = head.score(qe, se.view(-1, n, k, d).mean(2))  # (e', N*Q, N)
            else:
                scores = head.score(qe, se).view(qe.shape[0], n * q, n, k).mean(3)  # (e', N*Q, N)
            correct.append(scores.argmax(-1) == labels)
        correct_t = torch.cat(correct).cpu()  # (E, N*Q) bool

    per_episode = correct_t.double().mean(1)
    mean, hw = mean_ci95(per_episode)
    return EvalResult(
        accuracy=mean,
        ci95=hw,
        per_episode=per_episode,
        correct=correct_t if return_correct else None,
        aggregation=agg,
    )


def best_threshold(similarity: torch.Tensor, same: torch.Tensor) -> float:
    """The threshold t maximising the accuracy of `similarity > t` against `same` (both (B,), on any device).

    Candidates are midpoints between consecutive distinct sorted similarities, plus one below the minimum
    and one above the maximum; ties in accuracy go to the lowest threshold. Vectorised (one sort). t is a
    float64 midpoint: apply it in float64 (`similarity.double() > t`), as `verification` does.
    """
    s = similarity.detach().double().flatten().cpu()
    y = same.detach().flatten().cpu().bool()
    if s.numel() == 0 or s.shape != y.shape:
        raise ValueError(f"best_threshold: need matching non-empty (B,) inputs, got {s.shape} and {y.shape}")
    order = torch.argsort(s)
    s, y = s[order], y[order]
    # threshold after position i (0..B): the first i sorted values are predicted "different"
    neg_below = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(~y, 0)])
    pos_total = int(y.sum())
    pos_below = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(y, 0)])
    correct = neg_below + (pos_total - pos_below)  # (B + 1,)
    valid = torch.ones_like(correct, dtype=torch.bool)
    valid[1:-1] = s[1:] > s[:-1]  # cannot split between equal values
    correct = torch.where(valid, correct, torch.full_like(correct, -1))
    i = int(torch.argmax(correct))
    if i == 0:
        return float(s[0]) - 1.0
    if i == s.numel():
        return float(s[-1]) + 1.0
    return float((s[i - 1] + s[i]) / 2)


def _pair_similarity(model: nn.Module, images: torch.Tensor, pairs, batch_size: int) -> torch.Tensor:
    """(B,) head.similarity of each pair, embedding each distinct image once (caller sets eval mode)."""
    a, b = pairs.a.reshape(-1), pairs.b.reshape(-1)
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(
            f"verification: pairs.a and pairs.b must be equal non-empty (B,), got {a.shape}, {b.shape}"
        )
    flat = torch.cat([a, b]).to(images.device)
    _check_indices(flat, images.shape[0], "verification")
    uniq, inverse = torch.unique(flat, return_inverse=True)
    emb = _embed(model, images, uniq, batch_size)
    m = a.shape[0]
    return model.head.similarity(emb[inverse[:m]], emb[inverse[m:]]).float()


def verification(
    model: nn.Module, images: torch.Tensor, pairs, threshold_pairs=None, batch_size: int = 512
) -> tuple[float, float]:
    """Same/different verification on `pairs` (a PairBatch: a, b (B,) int64, same (B,) bool).

    Returns (accuracy, roc_auc). ROC-AUC (sklearn.metrics.roc_auc_score) uses the head's similarity and needs
    no threshold. Accuracy predicts "same" when similarity > threshold:
      probability heads (head.metric False; similarity = log-odds of same): threshold 0, i.e. P(same) > 0.5;
      metric heads (similarity = -distance, no natural cut): the threshold maximising accuracy on the
        separate `threshold_pairs` batch (e.g. drawn from the validation classes), never on `pairs`
        themselves, so the accuracy is not optimistically biased. Required for metric heads.
    """
    from sklearn.metrics import roc_auc_score

    check_images(images, "verification")
    metric = bool(model.head.metric)
    if metric and threshold_pairs is None:
        raise ValueError(
            "verification: a metric head needs `threshold_pairs` (a separate PairBatch, e.g. from the "
            "validation classes) to choose its distance threshold; the test pairs are never used for that"
        )
    with _EvalMode(model):
        sim = _pair_similarity(model, images, pairs, batch_size)
        if metric:
            threshold = best_threshold(
                _pair_similarity(model, images, threshold_pairs, batch_size), threshold_pairs.same
            )
        else:
            threshold = 0.0  # log-odds 0 = probability 0.5
    same = pairs.same.reshape(-1).to(sim.device).bool()
    # in float64, where the threshold was chosen: a float64 midpoint between two adjacent float32 similarities
    # can round onto one of them in float32 and flip its pair
    accuracy = float(((sim.double() > threshold) == same).float().mean())
    y = same.cpu().numpy()
    if y.all() or not y.any():
        raise ValueError("verification: ROC-AUC needs both same and different pairs in `pairs`")
    auc = float(roc_auc_score(y, sim.cpu().numpy().astype(np.float64)))
    return accuracy, auc
