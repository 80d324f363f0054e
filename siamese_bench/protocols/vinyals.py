"""`vinyals`: Omniglot at 28x28 with 90-degree rotations as extra classes, the Vinyals et al. (2016) split.

Train on the 1028 x 4 train classes, select models on the 172 x 4 val classes, test 5/20-way 1/5-shot on
the 423 x 4 test classes (1,000 episodes, 5 queries per class), as in Matching Networks and ProtoNets.
"""

from siamese_bench.datasets.vinyals import vinyals_split
from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol

PROTOCOL = register(
    Protocol(
        name="vinyals",
        version=1,
        dataset="omniglot-vinyals",
        image_size=28,
        split=lambda data, data_dir: vinyals_split(data_dir),
        description="Omniglot 28x28 + rotations, Vinyals split; 5/20-way 1/5-shot on 423x4 test classes",
        ways=(5, 20),
        shots=(1, 5),
        n_query=5,
        episodes=1000,
    )
)
