"""`mnist-heldout`: train on MNIST digits 0-4, one-shot 5-way K-shot on the unseen digits 5-9.

Model selection: 5-way 1-shot episodes on the test-file images of the training digits 0-4 (never on 5-9).
"""

from siamese_bench.datasets.splits_builtin import mnist_heldout
from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol

PROTOCOL = register(
    Protocol(
        name="mnist-heldout",
        version=1,
        dataset="mnist",
        image_size=None,
        split=lambda data, data_dir: mnist_heldout(),
        description="MNIST: train digits 0-4, 5-way K-shot on unseen digits 5-9 (test images)",
        ways=(5,),
        shots=(1, 5),
        n_query=5,
        episodes=1000,
    )
)
