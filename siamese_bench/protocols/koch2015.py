"""`koch2015`: the Koch, Zemel & Salakhutdinov (2015) Omniglot setup with random within-alphabet trials.

Omniglot at the native 105x105. Train on the 30 background alphabets, select models on the 10 evaluation
alphabets not used by Lake's official runs, test on 1,000 random 20-way 1-shot episodes (1 query per class)
drawn within one alphabet of the 10 run alphabets (splits.LAKE_RUN_ALPHABETS), the split `omniglot_lake`.
Koch et al.'s published 92.0% is for the 400 official trials: that number belongs to `lake-runs` /
`lake-runs-105`, not here.

Drawers are mixed: every image of an episode (support or query) comes from a random drawer of its
character, while Lake's official runs (the 400 trials of Koch et al.'s 92.0%) take all 20 supports of a run
from one drawer and all 20 queries from another. Version 1 keeps the mixed drawers of the committed results;
the official trials are `lake-runs-105`, and random trials with paired drawers `lake-drawers-105`.
"""

from siamese_bench.datasets.splits_builtin import omniglot_lake
from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol

PROTOCOL = register(
    Protocol(
        name="koch2015",
        version=1,
        dataset="omniglot",
        image_size=105,
        split=lambda data, data_dir: omniglot_lake(data),
        description=(
            "Omniglot 105x105, Koch et al. 2015 setup: train background, val 10 non-run evaluation alphabets, "
            "1000 random 20-way 1-shot within-alphabet episodes on the 10 run alphabets (drawers mixed, unlike Lake's "
            "runs)"
        ),
        ways=(20,),
        shots=(1,),
        n_query=1,
        episodes=1000,
        within_group=True,
    )
)
