"""`lake-runs`: Lake et al.'s official 20-way within-alphabet one-shot task (all_runs.zip, 400 trials).

Train on the 30 background alphabets at 105x105; select models on the 10 evaluation alphabets NOT used by
the runs; test on exactly the 20 official runs (20 episodes of 20 test images each, every test image
matched against its run's 20 training images). Koch et al. (2015) report 92.0% on this task.
"""

from siamese_bench.datasets.splits_builtin import omniglot_lake
from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol


def official_runs(data, split, data_dir, n_way: int, k_shot: int):
    """The 400 official trials as 20 Episodes (20-way 1-shot, 1 query per class) over the evaluation set."""
    from siamese_bench.datasets.lake_runs import lake_runs_as_episodes, load_lake_runs

    if (n_way, k_shot) != (20, 1):
        raise ValueError(
            f"lake-runs is 20-way 1-shot only (its 400 official trials); got {n_way}-way {k_shot}-shot"
        )
    evaluation = data["evaluation"]
    runs = load_lake_runs(data_dir)
    return lake_runs_as_episodes(evaluation.to("cpu"), runs, split_hash=split.hash).to(evaluation.device)


PROTOCOL = register(
    Protocol(
        name="lake-runs",
        version=1,
        dataset="omniglot",
        image_size=105,
        split=lambda data, data_dir: omniglot_lake(data),
        description="Omniglot 105x105: Lake et al.'s 400 official 20-way within-alphabet one-shot trials",
        ways=(20,),
        shots=(1,),
        n_query=1,
        episodes=20,
        within_group=True,
        fixed_episodes=official_runs,
    )
)
