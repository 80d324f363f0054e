"""Verification-pair sampling (`sample_pairs` -> `PairBatch`) and the class/image drawing helpers that the
triplet sampler shares.

Everything is vectorised over the batch. Random numbers come from the caller's `torch.Generator` (created on
its device); the integer arithmetic that maps them to image indices runs in NumPy on the host copy of the
index (`ClassIndex.host`): a batch is a few hundred integers, where a NumPy op costs ~1 us and a torch op
~3 us on a CPU (and a kernel launch on a GPU). Only the finished indices move to the index's device, in one
copy. So a CPU generator with a given seed yields bit-identical batches whether the index lives on CPU or
CUDA, and the images themselves stay on the device (`gather`).

Strategies choose the anchor class:
  "uniform"       every class equally often;
  "proportional"  in proportion to its number of images (i.e. like drawing a random image);
  "custom"        given probabilities `class_probs` (C,), normalised here.
The negative's class is drawn from the same distribution with the anchor's class removed.

Hard negatives: a fraction `hard_negatives` of the negatives (rounded to the nearest integer count, halves
up: 0.5 of 5 negatives is 3, of 1 negative 1; the same count in every batch) is drawn from the anchor's group
(Omniglot: alphabet), again by the strategy's weights. Fallback rule: when the anchor's group holds no other
class with nonzero probability, that negative is drawn as an ordinary negative (any other class); a split
where no anchor can have a same-group negative behaves like hard_negatives=0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from siamese_bench.episodes.index import ClassIndex, HostIndex, as_int

STRATEGIES = ("uniform", "proportional", "custom")
_HIGH = 2**62  # random integers in [0, 2**62); `r % n` is then unbiased to within n / 2**62


@dataclass(frozen=True, eq=False)
class PairBatch:
    """B verification pairs: a, b (B,) int64 image indices into the ImageSet; same (B,) bool, exactly B/2 True
    (in random positions). `joined` (2B,): a's indices then b's, when the sampler made them (`PairStream`
    does, for all its batches at once); read it through `ab()`."""

    a: torch.Tensor
    b: torch.Tensor
    same: torch.Tensor
    joined: torch.Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.a.shape[0]

    def ab(self) -> torch.Tensor:
        """(2B,) int64: a's indices, then b's, the index of one `gather` of both sides (a training step's
        images): `joined`, or torch.cat of a and b (a torch call, about 8 us on a CPU, that a stream's batches
        skip)."""
        return torch.cat([self.a, self.b]) if self.joined is None else self.joined

    def to(self, device: str | torch.device) -> PairBatch:
        return PairBatch(self.a.to(device), self.b.to(device), self.same.to(device))


def sample_pairs(
    index: ClassIndex,
    batch_size: int,
    generator: torch.Generator,
    strategy: str = "uniform",
    class_probs: Sequence[float] | torch.Tensor | None = None,
    hard_negatives: float = 0.0,
) -> PairBatch:
    """`batch_size` pairs, exactly half positive (same class, two different images) and half negative (two
    classes), shuffled so that position carries no label. Tensors are on `index.device`.

    Raises ValueError for an odd or non-positive batch size, a bad generator / strategy / class_probs /
    hard_negatives, a class with nonzero probability that has a single image (it cannot form a positive), or
    fewer than two classes with nonzero probability (no negatives).
    """
    batch_size, weights, n_hard = check_pair_args(
        index, batch_size, generator, strategy, class_probs, hard_negatives
    )
    half = batch_size // 2
    host = index.host
    r = _rand_ints(generator, (4, batch_size))
    # a random permutation labels positions: perm < B/2 positive, the rest negative (the first n_hard of
    # those hard), so exactly half are positive and position carries no label
    perm = _randperm(generator, batch_size)
    same = perm < half
    hard = (perm >= half) & (perm < half + n_hard) if n_hard else None
    cls = _draw_classes(host, r[0], generator, weights)
    a, first = _draw_image(host, cls, r[1])
    other = _draw_other_class(host, cls, r[2], generator, weights, hard)
    b = _draw_other_image(host, np.where(same, cls, other), first, r[3], only=same)
    a, b, same = to_device(index.device, a, b, same)
    return PairBatch(a, b, same)


# ---------------------------------------------------------------------------------------------------------
# helpers shared with triplets.py


def check_pair_args(
    index: ClassIndex,
    batch_size: int,
    generator: torch.Generator,
    strategy: str,
    class_probs: Sequence[float] | torch.Tensor | None,
    hard_negatives: float,
) -> tuple[int, torch.Tensor | None, int]:
    """`sample_pairs`' argument checks (ValueError as documented there); returns the batch size (a Python
    int), the anchor-class weights (None: uniform) and the number of hard negatives per batch."""
    batch_size = _check_batch_size(batch_size, even=True)
    _check_generator(generator)
    weights = class_weights(index, strategy, class_probs)
    _check_classes(index, weights)
    return batch_size, weights, _hard_count(hard_negatives, batch_size // 2)


def class_weights(
    index: ClassIndex, strategy: str, class_probs: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor | None:
    """Anchor-class probabilities (C,) float64 on index.device, or None for "uniform" (fast integer path)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown sampling strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy != "custom":
        if class_probs is not None:
            raise ValueError(f"class_probs is only used with strategy='custom', got strategy={strategy!r}")
        if strategy == "uniform":
            return None
        return index.counts.double() / index.num_images
    if class_probs is None:
        raise ValueError("strategy='custom' needs class_probs: one probability per class of the index")
    if _is_bool(class_probs) or (
        isinstance(class_probs, (list, tuple)) and any(_is_bool(v) for v in class_probs)
    ):
        raise ValueError(
            "class_probs must be numbers (one probability per class), got booleans; for a mask of allowed "
            "classes pass it as floats, e.g. mask.double()"
        )
    try:
        p = torch.as_tensor(class_probs, dtype=torch.float64).to(index.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"class_probs must be numbers, one per class of {index.name} ({err})") from err
    if p.ndim != 1 or p.shape[0] != index.num_classes:
        raise ValueError(
            f"class_probs must have shape ({index.num_classes},) (one entry per class of {index.name}), "
            f"got {tuple(p.shape)}"
        )
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError("class_probs must be finite and non-negative")
    total = float(p.sum())
    if not math.isfinite(total):
        raise ValueError(f"class_probs sum to {total} (overflow); scale them down, e.g. divide by their max")
    if total <= 0:
        raise ValueError("class_probs must have a positive sum (at least one class with probability > 0)")
    return p / total


def _check_batch_size(batch_size: int, even: bool) -> int:
    """`batch_size` as a Python int (a NumPy integer is fine), checked positive (and even when `even`)."""
    given, batch_size = batch_size, as_int(batch_size)
    if batch_size is None or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {given!r}")
    if even and batch_size % 2:
        fix = f"{batch_size + 1} or {batch_size - 1}" if batch_size > 1 else f"{batch_size + 1}"
        raise ValueError(
            f"batch_size must be even (half positive, half negative pairs), got {batch_size}; use {fix}"
        )
    return batch_size


def _is_bool(x: object) -> bool:
    """True for a bool, a NumPy bool, or a bool tensor / array."""
    return isinstance(x, (bool, np.bool_)) or (
        isinstance(x, (torch.Tensor, np.ndarray)) and x.dtype in (torch.bool, np.bool_)
    )


def _check_generator(generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"generator must be a torch.Generator, e.g. torch.Generator().manual_seed(0), "
            f"got {type(generator).__name__}"
        )


def _hard_count(hard_negatives: float, n_neg: int) -> int:
    try:
        if _is_bool(hard_negatives) or isinstance(hard_negatives, (str, bytes)):  # float() takes them
            raise TypeError
        frac = float(hard_negatives)
    except (TypeError, ValueError, RuntimeError):  # None, a list, a tensor of several values: not a number
        frac = math.nan
    if not 0.0 <= frac <= 1.0:
        raise ValueError(
            f"hard_negatives must be a number, the fraction of the negatives in [0, 1], got {hard_negatives!r}"
        )
    # nearest count, halves up (2.5 -> 3), of the fraction as written: in binary floating point 0.29 * 50 is
    # 14.499999999999998, which would round down
    return math.floor(Fraction(repr(frac)) * n_neg + Fraction(1, 2))


def _check_classes(index: ClassIndex, weights: torch.Tensor | None) -> None:
    """Every class that can be drawn as an anchor must have >= 2 images (positives), and at least two classes
    must be drawable (negatives)."""
    if weights is None:
        if index.num_classes < 2:
            raise ValueError(
                f"{index.name}: negatives need at least 2 classes, the index has {index.num_classes}"
            )
        if index.min_count >= 2:
            return
        small = index.counts < 2
    else:
        live = weights > 0
        n_live = int(live.sum())
        if n_live < 2:
            raise ValueError(
                f"{index.name}: negatives need at least 2 classes with nonzero probability, got {n_live}"
            )
        small = (index.counts < 2) & live
    if bool(small.any()):
        bad = torch.nonzero(small).squeeze(1).tolist()
        name = index.class_names[bad[0]]
        raise ValueError(
            f"{index.name}: class {name!r} has a single image and cannot give a positive pair "
            f"({len(bad)} such class(es)); drop it from the split or give it probability 0 "
            "(strategy='custom')"
        )


def _rand_ints(generator: torch.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random int64 in [0, 2**62) drawn with `generator` (on its device), as a host array."""
    return torch.randint(_HIGH, shape, generator=generator, device=generator.device).cpu().numpy()


def _randperm(generator: torch.Generator, n: int) -> np.ndarray:
    """A random permutation of 0..n-1 drawn with `generator`, as a host int64 array."""
    return torch.randperm(n, generator=generator, device=generator.device).cpu().numpy()


def to_device(device: torch.device, *arrays: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Host arrays (each (n,), int64 or bool) as tensors on `device`: zero-copy on CPU, otherwise one
    host-to-device copy of them stacked as int64 (bool arrays come back as bool)."""
    if device.type == "cpu":
        return tuple(torch.from_numpy(a) for a in arrays)
    stacked = torch.from_numpy(np.stack([a.astype(np.int64, copy=False) for a in arrays]))
    moved = stacked.to(device, non_blocking=False)
    return tuple(m.bool() if a.dtype == np.bool_ else m for a, m in zip(arrays, moved, strict=True))


def _draw_classes(
    host: HostIndex, r: np.ndarray, generator: torch.Generator, weights: torch.Tensor | None
) -> np.ndarray:
    """(n,) local class ids: uniform `r % C` (weights None; r: random ints (n,)) or drawn by `weights` (C,)
    with the generator."""
    if weights is None:
        return r % host.num_classes
    n = r.shape[0]
    return (
        torch.multinomial(weights.to(generator.device), n, replacement=True, generator=generator)
        .cpu()
        .numpy()
    )


def _draw_image(host: HostIndex, cls: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(images, positions), both (n,): image at position `r % counts[c]` of each local class c in `cls`."""
    pos = r % host.counts[cls]
    return host.order[host.offsets[cls] + pos], pos


def _draw_other_image(
    host: HostIndex,
    cls: np.ndarray,
    first: np.ndarray,
    r: np.ndarray,
    only: np.ndarray | None = None,
) -> np.ndarray:
    """(n,) image indices of local classes `cls` at a position other than `first` (n,): drawn from counts-1
    positions and shifted past `first` (needs counts >= 2). With `only` (n,) bool, that applies where True;
    elsewhere any position of the class is drawn."""
    counts = host.counts[cls]
    if only is None:
        pos = r % (counts - 1)
        pos += pos >= first
    else:
        pos = r % (counts - only)
        pos += (pos >= first) & only
    return host.order[host.offsets[cls] + pos]


def _draw_other_class(
    host: HostIndex,
    cls: np.ndarray,
    r: np.ndarray,
    generator: torch.Generator,
    weights: torch.Tensor | None,
    hard: np.ndarray | None = None,
) -> np.ndarray:
    """(n,) local class ids != cls. Uniform (weights None, no hard): `r % (C-1)` shifted past the anchor.
    Otherwise one multinomial draw per row of an (n, C) weight matrix: weights (or ones) with the anchor
    zeroed and, in rows where `hard` (n,) bool is True, classes of other groups zeroed too, unless that
    leaves no class (fallback: an ordinary negative)."""
    if weights is None and hard is None:
        o = r % (host.num_classes - 1)
        o += o >= cls
        return o
    n, num = cls.shape[0], host.num_classes
    base = torch.ones(num, dtype=torch.float64) if weights is None else weights.cpu()
    w = base.expand(n, num).clone()
    c = torch.from_numpy(cls)
    w[torch.arange(n), c] = 0
    if hard is not None:
        groups = torch.from_numpy(host.groups)
        mates = w * (groups[None, :] == groups.index_select(0, c)[:, None])
        use = torch.from_numpy(hard)[:, None] & (mates > 0).any(1, keepdim=True)
        w = torch.where(use, mates, w)
    picked = torch.multinomial(w.to(generator.device), 1, generator=generator).squeeze(1)
    return picked.cpu().numpy()
