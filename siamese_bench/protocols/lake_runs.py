"""`lake-runs`: Lake et al.'s official 20-way within-alphabet one-shot task (all_runs.zip, 400 trials).

Train on the 30 background alphabets at 28x28 (CPU-friendly; `lake-runs-105` is the same protocol at the
native 105x105, Koch et al.'s resolution, for the koch backbone on a GPU); select models on the 10
evaluation alphabets NOT used by the runs; test on exactly the 20 official runs (20 episodes of 20 test images
each, every test image matched against its run's 20 training images). The runs are located in the evaluation set at the native
105x105 (exact pixel matching), so the trials are the same 400 whatever the protocol's image size. Koch et al.
(2015) report 92.0% on this task (at 105x105); `koch2015` is their random 20-way within-alphabet setup.
"""

import dataclasses

from siamese_bench.datasets.splits_builtin import omniglot_lake
from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol

NATIVE_SIZE = 105  # the resolution of all_runs.zip and of the Omniglot zips


def official_runs(data, split, data_dir, n_way: int, k_shot: int):
    """The 400 official trials as 20 Episodes (20-way 1-shot, 1 query per class) over data["evaluation"].

    data["evaluation"] may be resized: the runs are then matched against the native 105x105 evaluation set
    (load_omniglot(data_dir), from its tensor cache), whose images are in the same order.
    """
    from siamese_bench.datasets.lake_runs import lake_runs_as_episodes, load_lake_runs
    from siamese_bench.datasets.omniglot import load_omniglot

    if (n_way, k_shot) != (20, 1):
        raise ValueError(
            f"lake-runs is 20-way 1-shot only (its 400 official trials); got {n_way}-way {k_shot}-shot"
        )
    evaluation = data["evaluation"]
    native = None
    if tuple(evaluation.image_shape[1:]) != (NATIVE_SIZE, NATIVE_SIZE):
        native = load_omniglot(data_dir)["evaluation"]
    runs = load_lake_runs(data_dir)
    episodes = lake_runs_as_episodes(evaluation.to("cpu"), runs, native=native, split_hash=split.hash)
    return episodes.to(evaluation.device)


PROTOCOL = register(
    Protocol(
        name="lake-runs",
        version=1,
        dataset="omniglot",
        image_size=28,
        split=lambda data, data_dir: omniglot_lake(data),
        description=(
            "Omniglot 28x28: Lake et al.'s 400 official 20-way within-alphabet one-shot trials "
            "(matched at 105x105)"
        ),
        ways=(20,),
        shots=(1,),
        n_query=1,
        episodes=20,
        within_group=True,
        fixed_episodes=official_runs,
    )
)

PROTOCOL_105 = register(
    dataclasses.replace(
        PROTOCOL,
        name="lake-runs-105",
        image_size=NATIVE_SIZE,
        description=(
            "Omniglot 105x105 (native, as Koch et al. 2015): Lake et al.'s 400 official 20-way "
            "within-alphabet one-shot trials"
        ),
    )
)
