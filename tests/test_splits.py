import pytest

from siamese_bench.splits import ClassSplit, SplitPart, by_groups


def test_hash_is_stable_and_content_sensitive():
    parts = (("train", SplitPart("s", ("a", "b"))), ("test", SplitPart("s", ("c",))))
    a = ClassSplit("x", "d", parts, "classes")
    assert a.hash == ClassSplit("x", "d", parts, "classes").hash
    assert len(a.hash) == 16
    other = ClassSplit(
        "x", "d", (("train", SplitPart("s", ("a",))), ("test", SplitPart("s", ("c",)))), "classes"
    )
    assert other.hash != a.hash


def test_shared_class_is_rejected():
    parts = (("train", SplitPart("s", ("a", "b"))), ("test", SplitPart("s", ("b",))))
    with pytest.raises(ValueError, match="'train' and 'test' share 1 class"):
        ClassSplit("x", "d", parts, "classes")


def test_rotations_of_one_character_cannot_straddle_parts():
    parts = (
        ("train", SplitPart("s", ("A/character01/rot000",))),
        ("test", SplitPart("s", ("A/character01/rot090",))),
    )
    with pytest.raises(ValueError, match="share 1 class"):
        ClassSplit("x", "d", parts, "classes")


def test_group_split_rejects_shared_alphabet():
    groups = {"A/c1": "A", "A/c2": "A", "B/c1": "B"}
    parts = (("train", SplitPart("s", ("A/c1",))), ("test", SplitPart("s", ("A/c2", "B/c1"))))
    with pytest.raises(ValueError, match="share 1 group"):
        ClassSplit("x", "d", parts, "groups", tuple(groups.items()))
    ok = by_groups("y", "d", "s", groups, {"train": ("A",), "test": ("B",)})
    assert ok.part("train").classes == ("A/c1", "A/c2") and ok.part("test").classes == ("B/c1",)


def test_empty_part_and_unknown_part():
    with pytest.raises(ValueError, match="part 'test' has no classes"):
        ClassSplit("x", "d", (("train", SplitPart("s", ("a",))), ("test", SplitPart("s", ()))), "classes")
    s = ClassSplit("x", "d", (("train", SplitPart("s", ("a",))),), "classes")
    with pytest.raises(KeyError, match="has no part 'val'"):
        s.part("val")


def _parts(**classes):
    return tuple((k, SplitPart("s", tuple(v))) for k, v in classes.items())


@pytest.mark.parametrize(
    "order",
    [
        ("train", "val", "trainval", "test"),
        ("trainval", "train", "val", "test"),
        ("trainval", "val", "train", "test"),
    ],
)
def test_trainval_may_repeat_train_and_val_in_any_order(order):
    classes = {"train": ("a",), "val": ("b",), "trainval": ("a", "b"), "test": ("c",)}
    split = ClassSplit("x", "d", _parts(**{k: classes[k] for k in order}), "classes")
    assert split.part("trainval").classes == ("a", "b")
    # but only train + val: a trainval with another class, or missing one, is refused
    for wrong in (("a", "b", "z"), ("a",)):
        bad = dict(classes, trainval=wrong)
        with pytest.raises(ValueError, match="'trainval' must be parts 'train' and 'val' together"):
            ClassSplit("x", "d", _parts(**{k: bad[k] for k in order}), "classes")
    # and it still may not share a class with the test part
    with pytest.raises(ValueError, match="and 'test' share 1 class"):
        ClassSplit("x", "d", _parts(train=("a",), val=("b",), trainval=("a", "b"), test=("b",)), "classes")


def test_group_split_names_a_class_without_a_group():
    with pytest.raises(ValueError, match="no group given for class 'a'"):
        ClassSplit("x", "d", _parts(train=("a",), test=("c",)), "groups", (("c", "C"),))


def test_rotations_are_one_character_but_other_characters_are_not():
    ok = ClassSplit(
        "s",
        "d",
        (
            ("train", SplitPart("x", ("A/char01", "A/char03/rot000"))),
            ("test", SplitPart("x", ("A/char02", "A/char04/rot000"))),
        ),
        "classes",
    )
    assert ok.part("test").classes == ("A/char02", "A/char04/rot000")  # other characters of one alphabet
    with pytest.raises(ValueError, match="share 1 class"):
        ClassSplit(
            "s",
            "d",
            (("train", SplitPart("x", ("A/char01/rot000",))), ("test", SplitPart("x", ("A/char01/rot090",)))),
            "classes",
        )


@pytest.mark.parametrize(
    "train, test",
    [("tools/rotor", "tools/rotary-saw"), ("A/rot", "A/rot1"), ("A/rot0900", "A/rotate")],
)
def test_only_a_rotation_suffix_makes_classes_one_character(train, test):
    """Was: any last name component starting with "rot" was taken for a rotation, so classes 'tools/rotor'
    and 'tools/rotary-saw' were one "character" and the split was refused as sharing a class."""
    s = ClassSplit("s", "d", _parts(train=(train,), test=(test,)), "classes")
    assert s.part("train").classes == (train,) and s.part("test").classes == (test,)


def test_by_groups_refuses_an_unknown_group():
    with pytest.raises(ValueError, match="unknown groups \\['Atlantis'\\]"):
        by_groups("s", "d", "x", {"A/c1": "A", "B/c2": "B"}, {"train": ("A",), "test": ("Atlantis",)})


def test_part_named_twice_is_rejected():
    """part('train') returned the first of two 'train' parts; the other was silently unreachable."""
    parts = (("train", SplitPart("s", ("a",))), ("train", SplitPart("s", ("b",))))
    with pytest.raises(ValueError, match="part 'train' is listed more than once"):
        ClassSplit("x", "d", parts, "classes")
