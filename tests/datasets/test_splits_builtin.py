"""Built-in splits: disjointness (incl. the "heldout" mode), counts, and hashes stable across processes.

The Omniglot builders are tested on stand-in ImageSets with the real class names (one image per class, from
the alphabet table), and again on the real data."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from siamese_bench.datasets import splits_builtin as sb
from siamese_bench.datasets.imageset import ImageSet
from siamese_bench.datasets.vinyals import ALPHABETS
from siamese_bench.splits import LAKE_RUN_ALPHABETS, ClassSplit, SplitPart

PINNED = {  # change only on purpose: these hashes go into every result row
    "mnist_standard": "47e936c2571cf124",
    "mnist_heldout": "283a08c90036601c",
    "digits_heldout": "3086939b6a46443c",
    "vinyals_split": "64bd5bb04dcb70b9",
}


def stand_in(subset: str) -> ImageSet:
    """An ImageSet with the real Omniglot class and alphabet names of `subset`, one 1x1 image per class."""
    alphabets = sorted(a for a, _ in ALPHABETS[subset])
    sizes = dict(ALPHABETS[subset])
    classes = [(a, f"{a}/character{c:02d}") for a in alphabets for c in range(1, sizes[a] + 1)]
    n = len(classes)
    return ImageSet(
        f"omniglot-{subset}",
        torch.zeros(n, 1, 1, 1, dtype=torch.uint8),
        torch.arange(n),
        tuple(c for _, c in classes),
        torch.tensor([alphabets.index(a) for a, _ in classes]),
        tuple(alphabets),
    )


@pytest.fixture(scope="module")
def fake_omni():
    return {"background": stand_in("background"), "evaluation": stand_in("evaluation")}


def test_mnist_standard():
    sp = sb.mnist_standard()
    assert sp.part_names == ("train", "test") and sp.disjoint == "images"
    assert sp.part("train").subset == "train" and sp.part("test").subset == "test"
    assert sp.part("test").classes == tuple("0123456789")


def test_mnist_heldout():
    sp = sb.mnist_heldout()
    assert sp.disjoint == "heldout"
    assert [(k, p.subset, p.classes) for k, p in sp.parts] == [
        ("train", "train", tuple("01234")),
        ("val", "test", tuple("01234")),
        ("test", "test", tuple("56789")),
    ]


def test_heldout_mode_rejects_leaks():
    digits = tuple("01234")
    with pytest.raises(ValueError, match="parts 'train' and 'test' share 1 class"):
        ClassSplit(
            "x",
            "mnist",
            (("train", SplitPart("train", digits)), ("test", SplitPart("test", ("4", "5")))),
            "heldout",
        )
    with pytest.raises(ValueError, match="parts 'train' and 'val' share 5 class"):  # same subset: same images
        ClassSplit(
            "x",
            "mnist",
            (("train", SplitPart("train", digits)), ("val", SplitPart("train", digits))),
            "heldout",
        )
    with pytest.raises(ValueError, match="disjoint must be"):
        ClassSplit("x", "mnist", (("train", SplitPart("train", digits)),), "nonsense")


def test_digits_heldout():
    sp = sb.digits_heldout()
    assert sp.part("train").classes == tuple("01234") and sp.part("test").classes == tuple("56789")
    assert {p.subset for _, p in sp.parts} == {"all"} and sp.disjoint == "classes"


def test_omniglot_background_evaluation(fake_omni):
    sp = sb.omniglot_background_evaluation(fake_omni)
    assert sp.disjoint == "groups"
    assert len(sp.part("train").classes) == 964 and len(sp.part("test").classes) == 659
    assert sp.part("train").subset == "background" and sp.part("test").subset == "evaluation"


def test_omniglot_lake(fake_omni):
    sp = sb.omniglot_lake(fake_omni)
    sizes = dict(ALPHABETS["evaluation"])
    n_test = sum(sizes[a] for a in LAKE_RUN_ALPHABETS)
    assert n_test == 382
    assert len(sp.part("test").classes) == n_test and len(sp.part("val").classes) == 659 - n_test
    assert {c.split("/")[0] for c in sp.part("test").classes} == set(LAKE_RUN_ALPHABETS)
    assert not {c.split("/")[0] for c in sp.part("val").classes} & set(LAKE_RUN_ALPHABETS)
    assert len(sp.part("train").classes) == 964


def test_omniglot_builders_need_the_dict(fake_omni):
    with pytest.raises(ValueError, match="missing \\['evaluation'\\]"):
        sb.omniglot_lake({"background": fake_omni["background"]})


def test_hashes_pinned_and_stable_across_processes(tmp_path):
    here = {name: getattr(sb, name)().hash for name in ("mnist_standard", "mnist_heldout", "digits_heldout")}
    here["vinyals_split"] = sb.vinyals_split(tmp_path).hash  # no files there: the built-in definition
    assert here == PINNED
    code = (
        "from siamese_bench.datasets import splits_builtin as sb\n"
        "for n in ('mnist_standard', 'mnist_heldout', 'digits_heldout'): print(n, getattr(sb, n)().hash)\n"
        f"print('vinyals_split', sb.vinyals_split({str(tmp_path)!r}).hash)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert dict(line.split() for line in out.stdout.strip().splitlines()) == PINNED


OMNIGLOT_PINNED = {  # change only on purpose: in every Omniglot result row and in frozen episode file names
    "omniglot_lake": "5f4d85235c39071e",
    "omniglot_background_evaluation": "7bd77c211a19533e",
}


def test_omniglot_hashes_pinned(fake_omni):
    """The stand-ins carry the real class and alphabet names, so these are the real splits' hashes (the
    real-data test below checks that they agree)."""
    assert {name: getattr(sb, name)(fake_omni).hash for name in OMNIGLOT_PINNED} == OMNIGLOT_PINNED


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_omniglot_splits_match_stand_ins(omniglot, omniglot28, fake_omni, real_data_dir):
    for build in (sb.omniglot_lake, sb.omniglot_background_evaluation):
        assert build(omniglot).hash == build(omniglot28).hash == build(fake_omni).hash
    assert sb.vinyals_split(real_data_dir).hash == PINNED["vinyals_split"]  # from the official files


def test_omniglot_lake_refuses_an_evaluation_set_without_a_run_alphabet(fake_omni):
    """A renamed or missing Lake run alphabet must be an error, not a silently smaller test part."""
    ev = fake_omni["evaluation"]
    gone = LAKE_RUN_ALPHABETS[0]
    renamed = tuple("Renamed" if g == gone else g for g in ev.group_names)
    ev2 = ImageSet(ev.name, ev.images, ev.labels, ev.class_names, ev.groups, renamed)
    with pytest.raises(ValueError, match=f"alphabets \\['{gone}'\\] are not in the evaluation set"):
        sb.omniglot_lake({"background": fake_omni["background"], "evaluation": ev2})
