"""`ClassIndex` (images grouped by class, for vectorised sampling) and `gather` (indices -> float images).

A `ClassIndex` is built once per split part: it restricts an `ImageSet` to a list of classes and stores the
image indices of each class contiguously, so that "image j of local class c" is `order[offsets[c] + j]`.
Every sampler in this folder draws local class ids in [0, C) and positions in [0, counts[c]) and maps them
through the index; nothing loops over samples in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from siamese_bench.datasets.imageset import ImageSet, as_int


@dataclass(frozen=True, eq=False)
class HostIndex:
    """`ClassIndex` tables as host NumPy int64 arrays (same meaning and shapes: order (M,), offsets / counts /
    class_ids / groups (C,))."""

    order: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray
    class_ids: np.ndarray
    groups: np.ndarray

    @property
    def num_classes(self) -> int:
        return self.counts.shape[0]


@dataclass(frozen=True, eq=False)
class ClassIndex:
    """Image indices of an `ImageSet` grouped by class, restricted to C selected classes.

    order:       (M,) int64 image indices into the ImageSet, class 0's images first, then class 1's, ...
                 (within a class in increasing image index).
    offsets:     (C,) int64 start of each class in `order`.
    counts:      (C,) int64 number of images of each class (all >= 1).
    class_ids:   (C,) int64 global class ids (ImageSet label values) of the local classes 0..C-1.
    groups:      (C,) int64 global group ids (indexing the ImageSet's `group_names`).
    class_names: (C,) names of the local classes (for error messages).
    group_names: the ImageSet's group names (indexed by `groups`).
    name:        what the index covers, e.g. "omniglot/background" or a split part (for error messages).

    All tensors live on one device (the ImageSet's when built).
    """

    order: torch.Tensor
    offsets: torch.Tensor
    counts: torch.Tensor
    class_ids: torch.Tensor
    groups: torch.Tensor
    class_names: tuple[str, ...]
    group_names: tuple[str, ...]
    name: str

    @classmethod
    def build(
        cls,
        ds: ImageSet,
        classes: Sequence[str] | Sequence[int] | torch.Tensor | None = None,
        *,
        name: str | None = None,
    ) -> ClassIndex:
        """Index `ds` restricted to `classes` (names, or global ids; None = every class, in id order).

        Local class c is `classes[c]`. Raises ValueError for unknown names, out-of-range or repeated ids,
        an empty selection, a selected class without images, or labels / groups of `ds` that are not integer
        ids indexing its class_names / group_names.
        """
        label = name if name is not None else ds.name
        class_ids = _resolve_classes(ds, classes, label)
        num = class_ids.numel()
        if num == 0:
            raise ValueError(f"{label}: no classes selected; pass at least one class name or id")
        if torch.unique(class_ids).numel() != num:
            ids = class_ids.tolist()
            dup = sorted({c for c in ids if ids.count(c) > 1})
            raise ValueError(
                f"{label}: classes listed more than once: {[ds.class_names[c] for c in dup[:5]]}; "
                "list each class once"
            )
        labels = _check_ids(ds.labels, ds.num_classes, f"{label}: label", ds.name, "class_names")
        groups = _check_ids(ds.groups, len(ds.group_names), f"{label}: group id", ds.name, "group_names")
        device = ds.device
        class_ids = class_ids.to(device)
        # global label -> local class id (-1 = not selected)
        lut = torch.full((ds.num_classes,), -1, dtype=torch.int64, device=device)
        lut[class_ids] = torch.arange(num, dtype=torch.int64, device=device)
        local = lut[labels]
        keep = torch.nonzero(local >= 0).squeeze(1)
        local_kept = local[keep]
        order = keep[torch.argsort(local_kept, stable=True)]
        counts = torch.bincount(local_kept, minlength=num)
        empty = torch.nonzero(counts == 0).squeeze(1)
        if empty.numel():
            bad = [ds.class_names[int(class_ids[i])] for i in empty[:5].tolist()]
            raise ValueError(
                f"{label}: class {bad[0]!r} has no images ({empty.numel()} empty class(es): {bad}); "
                "drop empty classes from the selection"
            )
        offsets = torch.cumsum(counts, 0) - counts
        return cls(
            order=order,
            offsets=offsets,
            counts=counts,
            class_ids=class_ids,
            groups=groups.to(device)[class_ids],
            class_names=tuple(ds.class_names[i] for i in class_ids.tolist()),
            group_names=ds.group_names,
            name=label,
        )

    @property
    def num_classes(self) -> int:
        return self.counts.shape[0]

    @property
    def num_images(self) -> int:
        return self.order.shape[0]

    @property
    def device(self) -> torch.device:
        return self.order.device

    def to(self, device: str | torch.device) -> ClassIndex:
        """The same index with every tensor on `device`."""
        return ClassIndex(
            self.order.to(device),
            self.offsets.to(device),
            self.counts.to(device),
            self.class_ids.to(device),
            self.groups.to(device),
            self.class_names,
            self.group_names,
            self.name,
        )

    @cached_property
    def host(self) -> HostIndex:
        """The integer tables as host NumPy arrays (zero-copy for a CPU index; copied once otherwise), for the
        samplers' per-batch index arithmetic."""
        return HostIndex(
            *(t.cpu().numpy() for t in (self.order, self.offsets, self.counts, self.class_ids, self.groups))
        )

    @cached_property
    def min_count(self) -> int:
        """Images in the smallest class (computed once; a Python int, so checks need no device sync)."""
        return int(self.counts.min())

    def images_of(self, c: int) -> torch.Tensor:
        """(counts[c],) image indices of local class `c`."""
        start = int(self.offsets[c])
        return self.order[start : start + int(self.counts[c])]


def _resolve_classes(ds: ImageSet, classes, label: str) -> torch.Tensor:
    """Global class ids (K,) int64 on CPU for `classes` (None, names, or ids)."""
    if classes is None:
        return torch.arange(ds.num_classes, dtype=torch.int64)
    if isinstance(classes, torch.Tensor):
        if classes.dtype.is_floating_point or classes.dtype == torch.bool or classes.ndim != 1:
            raise ValueError(
                f"{label}: class ids must be a 1-D integer tensor, got {classes.dtype} {tuple(classes.shape)}"
            )
        ids = classes.to("cpu", torch.int64)
    else:
        if isinstance(classes, (set, frozenset)):
            raise ValueError(
                f"{label}: classes must be an ordered list (local class c is classes[c]), got a "
                f"{type(classes).__name__}, whose order changes from run to run; pass sorted(classes)"
            )
        if isinstance(classes, str):
            raise ValueError(
                f"{label}: classes must be a list of names or ids, got the single string {classes!r}; "
                f"pass [{classes!r}]"
            )
        classes = list(classes)
        if all(isinstance(c, str) for c in classes):
            lookup = {c: i for i, c in enumerate(ds.class_names)}
            missing = [c for c in classes if c not in lookup]
            if missing:
                raise ValueError(
                    f"{label}: unknown class names {missing[:5]} ({len(missing)} in all) in {ds.name}; "
                    f"known classes look like {list(ds.class_names[:3])}"
                )
            ids = torch.tensor([lookup[c] for c in classes], dtype=torch.int64)
        elif None not in (ints := [as_int(c) for c in classes]):
            ids = torch.tensor(ints, dtype=torch.int64)
        else:
            raise ValueError(
                f"{label}: classes must be all names (str) or all global ids (integers, not bools), got "
                f"{sorted({type(c).__name__ for c in classes})}"
            )
    bad = ids[(ids < 0) | (ids >= ds.num_classes)]
    if bad.numel():
        raise ValueError(
            f"{label}: class ids {bad[:5].tolist()} out of range for {ds.name} with {ds.num_classes} classes "
            f"(valid: 0..{ds.num_classes - 1})"
        )
    return ids


def _check_ids(ids: torch.Tensor, n: int, what: str, ds_name: str, names: str) -> torch.Tensor:
    """`ids` (labels or groups of ImageSet `ds_name`) as int64 after checking they are integers in [0, n),
    indexing its `names`; a negative id would otherwise wrap to the last class or group, silently."""
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(f"{what}s of {ds_name} must be integers indexing its {names}, got {ids.dtype}")
    ids = ids.long()
    if ids.numel():
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= n:
            raise ValueError(
                f"{what} {lo if lo < 0 else hi} of {ds_name} is out of range for its {n} {names} "
                f"(valid: 0..{n - 1})"
            )
    return ids


def gather(images: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] for image indices `idx`.

    images: (N, C, H, W) uint8 (an ImageSet's `.images`); idx: (B,) or any shape (...) of int64 (or int32)
    indices in [0, N) (moved to images' device). Returns (..., C, H, W) float32: one index_select, then
    float / 255. Raises TypeError for a non-tensor or a non-uint8 `images` (float images would be divided by
    255 a second time) or non-integer indices, and ValueError for indices out of range (on the CPU; on a GPU
    an out-of-range index stops the kernel with a device-side assert).
    """
    if not isinstance(images, torch.Tensor) or not isinstance(idx, torch.Tensor):
        hint = "; pass imageset.images" if hasattr(images, "images") else ""
        raise TypeError(
            f"gather: images and idx must be torch.Tensors, got {type(images).__name__} and "
            f"{type(idx).__name__}{hint}"
        )
    if images.dtype != torch.uint8 or images.ndim < 1:
        raise TypeError(
            f"gather: images must be the uint8 (N, C, H, W) tensor of an ImageSet, got {images.dtype} "
            f"{tuple(images.shape)}; it returns them as float / 255 itself"
        )
    if idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"gather: idx must hold int64 image indices, got {idx.dtype}")
    # One call per training step, and each torch call costs microseconds: a (B,) index already on the images'
    # device skips the reshape, the move and the view (about a tenth of a 128-pair MNIST gather, 2-core CPU).
    flat = idx if idx.ndim == 1 else idx.reshape(-1)
    if flat.device != images.device:  # asynchronously only to a GPU (a copy to the CPU must end before use)
        flat = flat.to(images.device, non_blocking=images.device.type != "cpu")
    try:  # out-of-range indices: torch's IndexError (CPU), explained here; no extra pass on the hot path
        rows = images.index_select(0, flat)
    except IndexError:
        lo, hi, n = int(flat.min()), int(flat.max()), images.shape[0]
        raise ValueError(
            f"gather: image index {lo if lo < 0 else hi} out of range for {n} images (valid: 0..{n - 1}); "
            "were the indices drawn from an index of another ImageSet?"
        ) from None
    out = rows.float().div_(255)
    return out if idx.ndim == 1 else out.view(*idx.shape, *images.shape[1:])
