"""`mnist-transfer`: train on Omniglot (background), test 10-way one-shot on MNIST's test images.

The setup of Koch et al. (2015) Table 3 (they report 70.3% for the convolutional Siamese net over 400
trials). Images at 28x28; model selection on 5-way 1-shot episodes of the 10 Omniglot evaluation alphabets
outside Lake's runs (never on MNIST). Test: 1,000 episodes of 10-way 1-shot with one query per digit.
"""

from siamese_bench.protocols import register
from siamese_bench.protocols.base import Protocol
from siamese_bench.splits import LAKE_RUN_ALPHABETS, ClassSplit, SplitPart

DIGITS = tuple(str(d) for d in range(10))


def mnist_transfer_split(data, data_dir) -> ClassSplit:
    bg, ev = data["background"], data["evaluation"]
    val = tuple(c for c in ev.class_names if c.split("/")[0] not in LAKE_RUN_ALPHABETS)
    return ClassSplit(
        "mnist-transfer",
        "omniglot-mnist",
        (
            ("train", SplitPart("background", bg.class_names)),
            ("val", SplitPart("evaluation", val)),
            ("test", SplitPart("mnist-test", DIGITS)),
        ),
        "images",  # three different subsets: no image (and no class) is shared
    )


PROTOCOL = register(
    Protocol(
        name="mnist-transfer",
        version=1,
        dataset="omniglot-mnist",
        image_size=28,
        split=mnist_transfer_split,
        description="train on Omniglot background (28x28), 10-way 1-shot on MNIST test images (Koch et al. 2015 Table 3)",
        ways=(10,),
        shots=(1,),
        n_query=1,
        episodes=1000,
    )
)
