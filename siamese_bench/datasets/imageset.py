"""`ImageSet`: the in-memory form every dataset loader returns.

Images are uint8 with bright ink on a dark background (MNIST's convention; Omniglot is inverted on load so
that models transfer between the two). Labels index `class_names`; `groups` maps each class to a group
(Omniglot: its alphabet), so within-alphabet episodes and same-alphabet hard negatives are possible.
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass, field

import torch


def as_int(value: object) -> int | None:
    """`value` as a Python int when it is an integer (int, NumPy integer, any numbers.Integral) other than a
    bool, else None: what the loaders and samplers accept wherever they ask for an int."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return operator.index(value)
    return None


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A labelled image collection.

    images: (N, C, H, W) uint8, C = 1 (grayscale) or 3 (RGB).
    labels: (N,) int64 in [0, len(class_names)).
    class_names: one unique name per class, e.g. "Gurmukhi/character42" or "7".
    groups: (len(class_names),) int64 group id of each class, indexing `group_names`.
    group_names: e.g. alphabet names; a single group "all" when the source has none.
    extra: optional per-image int64 tensors, e.g. {"drawer": (N,)}.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    groups: torch.Tensor
    group_names: tuple[str, ...]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"{self.name}: images must be uint8 (N, C, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        if self.labels.shape != (n,):
            raise ValueError(f"{self.name}: labels must have shape ({n},), got {tuple(self.labels.shape)}")
        if self.groups.shape != (len(self.class_names),):
            raise ValueError(f"{self.name}: groups must have one entry per class")
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"{self.name}: class names must be unique")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: str | torch.device) -> ImageSet:
        """The same set with every tensor moved to `device` (once; sampling then gathers there)."""
        return ImageSet(
            self.name,
            self.images.to(device),
            self.labels.to(device),
            self.class_names,
            self.groups.to(device),
            self.group_names,
            {k: v.to(device) for k, v in self.extra.items()},
        )

    def class_ids(self, names: list[str] | tuple[str, ...]) -> torch.Tensor:
        """(len(names),) int64 ids of the named classes; an unknown name raises, naming it."""
        lookup = {c: i for i, c in enumerate(self.class_names)}
        missing = [c for c in names if c not in lookup]
        if missing:
            raise KeyError(f"{self.name}: unknown classes {missing[:5]} ({len(missing)} in all)")
        return torch.tensor([lookup[c] for c in names], dtype=torch.int64)

    def group_of(self, class_name: str) -> str:
        return self.group_names[int(self.groups[self.class_names.index(class_name)])]
