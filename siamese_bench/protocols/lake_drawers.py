"""`lake-drawers`: random trials built like Lake et al.'s official one-shot runs, 1,000 of them instead of 20.

Lake's 20 official runs (`lake-runs`) are 20-way 1-shot within one alphabet, and each run takes all 20 of its
training images from one drawer and all 20 test images from another (in all_runs.zip, every run's supports
share one drawer and its queries another; the runs use drawers 1-8 of 20). With 400 trials their accuracy
carries a wide confidence interval. This protocol draws 1,000 trials of the same shape from the same 10 run
alphabets: an alphabet, 20 of its characters, and two distinct drawers (uniform over the 20); each
character's support is its drawing by the first drawer and its query its drawing by the second (sampler option
`same_positions`: Omniglot lists each character's drawings in drawer order, which the split checks). So the
only difference from `koch2015` is that the drawers are paired as in the official runs, where `koch2015`
takes every image from a random drawer of its own.

Train on the 30 background alphabets; select models on the other 10 evaluation alphabets (random 5-way 1-shot
episodes, as every protocol); the split is `lake-runs`' (`omniglot_lake`). At 28x28 (CPU-friendly);
`lake-drawers-105` is the same at the native 105x105. No published number applies: Koch et al.'s 92.0% is for
the 400 official trials.
"""

import dataclasses

import torch

from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.datasets.splits_builtin import omniglot_lake
from siamese_bench.episodes.index import ClassIndex
from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol
from siamese_bench.splits import ClassSplit


def drawer_paired_split(data: dict[str, ImageSet], data_dir=None) -> ClassSplit:
    """`omniglot_lake(data)`, after checking that position p of each character in the evaluation set's
    `ClassIndex` (the order `same_positions` episodes draw from) is its drawing by drawer p."""
    ev = data["evaluation"]
    drawer = ev.extra.get("drawer")
    if drawer is None:
        raise ValueError(
            "lake-drawers needs Omniglot's drawer of every image (ImageSet.extra['drawer']); load Omniglot "
            "with siamese_bench.datasets.load_dataset('omniglot'), which records it"
        )
    index = ClassIndex.build(ev)
    position = torch.arange(index.order.numel()) - index.offsets.cpu().repeat_interleave(index.counts.cpu())
    if not torch.equal(drawer.cpu()[index.order.cpu()], position):
        raise ValueError(
            "lake-drawers: the Omniglot evaluation set does not list each character's drawings in drawer order "
            "(drawer 1 first), so paired-drawer trials cannot be drawn; load it with "
            "siamese_bench.datasets.load_dataset('omniglot'), which sorts them"
        )
    return omniglot_lake(data)


PROTOCOL = register(
    Protocol(
        name="lake-drawers",
        version=1,
        dataset="omniglot",
        image_size=28,
        split=drawer_paired_split,
        description=(
            "Omniglot 28x28: 1000 random trials shaped like Lake et al.'s official runs (20-way 1-shot within "
            "one of the 10 run alphabets, all supports by one drawer, all queries by another)"
        ),
        ways=(20,),
        shots=(1,),
        n_query=1,
        episodes=1000,
        within_group=True,
        same_positions=True,
    )
)

PROTOCOL_105 = register(
    dataclasses.replace(
        PROTOCOL,
        name="lake-drawers-105",
        image_size=105,
        description=(
            "Omniglot 105x105 (native, as Koch et al. 2015): 1000 random trials shaped like Lake et al.'s "
            "official runs (20-way 1-shot within a run alphabet, supports by one drawer, queries by another)"
        ),
    )
)
