"""`digits-heldout`: scikit-learn's bundled 8x8 digits, train 0-4, test 5-9 (always works offline).

The split has no validation part: models are trained for the whole budget without model selection.
"""

from siamese_bench.datasets.splits_builtin import digits_heldout
from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol

PROTOCOL = register(
    Protocol(
        name="digits-heldout",
        version=1,
        dataset="digits",
        image_size=None,
        split=lambda data, data_dir: digits_heldout(),
        description="sklearn 8x8 digits: train digits 0-4, 3/5-way K-shot on digits 5-9 (offline smoke test)",
        ways=(3, 5),
        shots=(1,),
        n_query=5,
        episodes=1000,
    )
)
