"""`mnist-pairs`: pair verification on MNIST, the setup of the classic PyTorch Siamese tutorial.

Train on the training images (all ten digits), score balanced same/different pairs drawn from the test
images: the protocol's metric is the `verification_accuracy` / `roc_auc` columns. The one-shot columns
(10-way 1-shot on test images of the SAME digits, not novel classes) are reported too, but this is not a
one-shot-generalisation protocol. No validation part: no model selection.
"""

from siamese_bench.datasets.splits_builtin import mnist_standard
from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol

PROTOCOL = register(
    Protocol(
        name="mnist-pairs",
        version=1,
        dataset="mnist",
        image_size=None,
        split=lambda data, data_dir: mnist_standard(),
        description="MNIST pair verification (train images -> balanced test pairs); metric: verification_accuracy",
        ways=(10,),
        shots=(1,),
        n_query=5,
        episodes=1000,
    )
)
