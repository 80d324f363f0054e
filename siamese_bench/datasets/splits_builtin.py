"""The built-in class splits (siamese_bench.splits.ClassSplit) of the bundled datasets.

Inside:
- `mnist_standard()`: train = the train file, test = the test file, all ten digits (disjoint "images").
- `mnist_heldout()`: train = digits 0-4 of the train file, val = digits 0-4 of the test file,
  test = digits 5-9 of the test file (disjoint "heldout": test classes are never seen in train/val; train
  and val share classes, not images).
- `omniglot_background_evaluation(omni)`: train = every background character, test = every evaluation
  character.
- `omniglot_lake(omni)`: train = background, val = evaluation characters of the 10 alphabets outside Lake's
  runs, test = evaluation characters of splits.LAKE_RUN_ALPHABETS (disjoint by alphabet).
- `vinyals_split(data_dir)`: re-exported from datasets.vinyals (1200 / 423 characters x 4 rotations).
- `digits_heldout()`: sklearn digits, train = 0-4, test = 5-9 (one subset "all"; disjoint "classes").
The Omniglot builders take the loaded {"background", "evaluation"} dict (any image size) for its class lists.
"""

from __future__ import annotations

from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.datasets.vinyals import vinyals_split
from siamese_bench.splits import LAKE_RUN_ALPHABETS, ClassSplit, SplitPart

DIGITS = tuple(str(d) for d in range(10))

__all__ = [
    "digits_heldout",
    "mnist_heldout",
    "mnist_standard",
    "omniglot_background_evaluation",
    "omniglot_lake",
    "vinyals_split",
]


def mnist_standard() -> ClassSplit:
    """MNIST's own train/test files, all ten digits in both (class names "0".."9")."""
    return ClassSplit(
        "mnist-standard",
        "mnist",
        (("train", SplitPart("train", DIGITS)), ("test", SplitPart("test", DIGITS))),
        "images",
    )


def mnist_heldout() -> ClassSplit:
    """Held-out digits: train 0-4 (train file), val 0-4 (test file), test 5-9 (test file)."""
    return ClassSplit(
        "mnist-heldout",
        "mnist",
        (
            ("train", SplitPart("train", DIGITS[:5])),
            ("val", SplitPart("test", DIGITS[:5])),
            ("test", SplitPart("test", DIGITS[5:])),
        ),
        "heldout",
    )


def _check_omniglot(omni: dict[str, ImageSet]) -> None:
    missing = {"background", "evaluation"} - set(omni)
    if missing:
        raise ValueError(
            "need the Omniglot dict from load_omniglot (keys background, evaluation); "
            f"missing {sorted(missing)}"
        )


def _class_groups(s: ImageSet) -> dict[str, str]:
    return {c: s.group_names[int(g)] for c, g in zip(s.class_names, s.groups.tolist(), strict=True)}


def omniglot_background_evaluation(omni: dict[str, ImageSet]) -> ClassSplit:
    """Lake's setting: train on all 964 background characters, test on all 659 evaluation characters."""
    _check_omniglot(omni)
    bg, ev = omni["background"], omni["evaluation"]
    groups = {**_class_groups(bg), **_class_groups(ev)}
    return ClassSplit(
        "omniglot-background-evaluation",
        "omniglot",
        (
            ("train", SplitPart("background", bg.class_names)),
            ("test", SplitPart("evaluation", ev.class_names)),
        ),
        "groups",
        tuple(groups.items()),
    )


def omniglot_lake(omni: dict[str, ImageSet]) -> ClassSplit:
    """train: background (964); val: evaluation alphabets not in LAKE_RUN_ALPHABETS (10 alphabets);
    test: the 10 LAKE_RUN_ALPHABETS of the evaluation set (the alphabets of the official 20-way runs)."""
    _check_omniglot(omni)
    bg, ev = omni["background"], omni["evaluation"]
    unknown = set(LAKE_RUN_ALPHABETS) - set(ev.group_names)
    if unknown:
        raise ValueError(f"omniglot_lake: alphabets {sorted(unknown)} are not in the evaluation set")
    ev_groups = _class_groups(ev)
    test = tuple(c for c in ev.class_names if ev_groups[c] in LAKE_RUN_ALPHABETS)
    val = tuple(c for c in ev.class_names if ev_groups[c] not in LAKE_RUN_ALPHABETS)
    groups = {**_class_groups(bg), **ev_groups}
    return ClassSplit(
        "omniglot-lake",
        "omniglot",
        (
            ("train", SplitPart("background", bg.class_names)),
            ("val", SplitPart("evaluation", val)),
            ("test", SplitPart("evaluation", test)),
        ),
        "groups",
        tuple(groups.items()),
    )


def digits_heldout() -> ClassSplit:
    """sklearn digits (one subset "all"): train digits 0-4, test digits 5-9."""
    return ClassSplit(
        "digits-heldout",
        "digits",
        (("train", SplitPart("all", DIGITS[:5])), ("test", SplitPart("all", DIGITS[5:]))),
        "classes",
    )
