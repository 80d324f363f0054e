"""`Protocol`: what a result row means. Split, image size, episode shape and metric, under a version.

Two rows are comparable only when their protocol id, version and split hash agree: the summary aggregates
seeds only over such rows (and names version and split when a folder holds several). Published numbers are
matched by protocol id, N-way and K-shot: published.csv says to which of our protocols a paper's number
applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.splits import ClassSplit


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    dataset: str  # dataset registry name the images come from
    image_size: int | None  # images resized to image_size x image_size on load (None: native size)
    split: Callable[[dict[str, ImageSet], Path | None], ClassSplit]  # pinned class split
    description: str
    ways: tuple[int, ...] = (5, 20)  # default N for evaluation episodes
    shots: tuple[int, ...] = (1,)  # default K
    n_query: int = 5  # query images per class in each test episode
    episodes: int = 1000  # default number of test episodes
    within_group: bool = False  # test episodes drawn within one group (Omniglot alphabet)
    # every class of a test episode takes its images at the same positions (Omniglot: the same drawers)
    same_positions: bool = False
    val_way: int = 5  # validation episodes (model selection) are val_way-way 1-shot
    # Optional fixed test episodes (e.g. Lake's 400 official trials): (data, split, n_way, k_shot) -> Episodes
    fixed_episodes: Callable | None = None

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.version}"
