from types import SimpleNamespace

import pytest
import torch

from siamese_bench.datasets.vinyals import ALPHABETS
from siamese_bench.protocols import PROTOCOLS
from siamese_bench.protocols.published import published_lookup, published_rows
from siamese_bench.splits import LAKE_RUN_ALPHABETS
from siamese_bench.summary import accuracy_table


def test_every_protocol_is_versioned_and_described():
    assert {"mnist-heldout", "vinyals", "lake-runs", "digits-heldout"} <= set(PROTOCOLS.names())
    for name in PROTOCOLS.names():
        p = PROTOCOLS.get(name)
        assert p.version >= 1 and p.description and p.id == f"{name}@v{p.version}"


def test_offline_splits_are_pinned():
    for name in ("mnist-heldout", "digits-heldout"):
        p = PROTOCOLS.get(name)
        a, b = p.split(None, None), p.split(None, None)
        assert a.hash == b.hash
        test = set(a.part("test").classes)
        assert not test & set(a.part("train").classes)


def test_published_numbers_carry_source_and_protocol():
    rows = published_rows()
    assert all(
        r["cite"] and r["table"] and r["protocol"] in PROTOCOLS or r["protocol"] == "mnist-transfer"
        for r in rows
    )
    lookup = published_lookup()
    assert lookup[("lake-runs", 20, 1)][0] == 92.0 and lookup[("lake-runs-105", 20, 1)][0] == 92.0
    assert lookup[("vinyals", 20, 1)][0] == 88.0 and lookup[("vinyals", 5, 1)][0] == 96.7
    protonet = [
        r for r in rows if r["method"] == "Prototypical Nets" and r["n_way"] == "20" and r["k_shot"] == "1"
    ]
    assert protonet[0]["accuracy_pct"] == "96.0"


def _row(protocol, n_way, acc):
    return dict(
        protocol=protocol,
        backbone="conv4",
        head="koch",
        device="cpu",
        dtype="float32",
        n_way=str(n_way),
        k_shot="1",
        accuracy=str(acc),
        ci95="0.01",
        verification_accuracy="",
        roc_auc="",
        train_pairs_per_s="1",
        status="ok",
    )


def test_published_numbers_only_beside_the_same_protocol():
    table = accuracy_table([_row("vinyals", 20, 0.9), _row("mnist-heldout", 5, 0.5)], published_lookup())
    vin = next(line for line in table.splitlines() if line.startswith("| vinyals"))
    mn = next(line for line in table.splitlines() if line.startswith("| mnist-heldout"))
    assert "88.0" in vin and "+2.0" in vin
    assert mn.rstrip(" |").endswith("– | –")


@pytest.mark.realdata
def test_lake_runs_are_the_400_official_trials(real_data_dir, omniglot):
    p = PROTOCOLS.get("lake-runs")
    split = p.split(omniglot, real_data_dir)
    ep = p.fixed_episodes(omniglot, split, real_data_dir, 20, 1)
    assert ep.support.shape == (20, 20) and ep.query.shape == (20, 20)  # 400 test trials
    ev = omniglot["evaluation"]
    test_classes = set(ev.class_ids(split.part("test").classes).tolist())
    assert set(ep.classes.flatten().tolist()) <= test_classes
    alphabets = {ev.group_names[int(g)] for g in ev.groups[ep.classes.flatten()]}
    assert alphabets <= set(LAKE_RUN_ALPHABETS)
    val_alphabets = {c.split("/")[0] for c in split.part("val").classes}
    assert not val_alphabets & set(LAKE_RUN_ALPHABETS) and len(val_alphabets) == 10
    assert torch.equal(ev.labels[ep.query], ep.classes)  # query j answers support j
    with pytest.raises(ValueError, match="20-way 1-shot only"):
        p.fixed_episodes(omniglot, split, real_data_dir, 5, 1)


@pytest.mark.realdata
def test_mnist_transfer_trains_on_omniglot_and_tests_on_mnist(real_data_dir):
    from siamese_bench.datasets import load_dataset

    p = PROTOCOLS.get("mnist-transfer")
    data = load_dataset(p.dataset, real_data_dir, p.image_size)
    split = p.split(data, real_data_dir)
    assert [split.part(k).subset for k in ("train", "val", "test")] == [
        "background",
        "evaluation",
        "mnist-test",
    ]
    assert split.part("test").classes == tuple(str(d) for d in range(10))
    assert len(split.part("train").classes) == 964 and len(split.part("val").classes) < 659
    assert not {c.split("/")[0] for c in split.part("val").classes} & set(LAKE_RUN_ALPHABETS)
    assert data["mnist-test"].images.shape == (10000, 1, 28, 28) and data["background"].image_shape == (
        1,
        28,
        28,
    )


# Change only on purpose: these define the published protocol. Any edit here must come with a version bump of
# the protocol (rows of different settings must not be compared under one id).
# name: (version, dataset, image_size, ways, shots, n_query, episodes, within_group, val_way, has fixed_episodes,
#        same_positions)
PINNED_PROTOCOLS = {
    "digits-heldout": (1, "digits", None, (3, 5), (1,), 5, 1000, False, 5, False, False),
    "koch2015": (1, "omniglot", 105, (20,), (1,), 1, 1000, True, 5, False, False),
    "lake-drawers": (1, "omniglot", 28, (20,), (1,), 1, 1000, True, 5, False, True),
    "lake-drawers-105": (1, "omniglot", 105, (20,), (1,), 1, 1000, True, 5, False, True),
    "lake-runs": (1, "omniglot", 28, (20,), (1,), 1, 20, True, 5, True, False),
    "lake-runs-105": (1, "omniglot", 105, (20,), (1,), 1, 20, True, 5, True, False),
    "mnist-heldout": (1, "mnist", None, (5,), (1, 5), 5, 1000, False, 5, False, False),
    "mnist-pairs": (1, "mnist", None, (10,), (1,), 5, 1000, False, 5, False, False),
    "mnist-transfer": (1, "omniglot-mnist", 28, (10,), (1,), 1, 1000, False, 5, False, False),
    "vinyals": (1, "omniglot-vinyals", 28, (5, 20), (1, 5), 5, 1000, False, 5, False, False),
}


@pytest.mark.parametrize("name", sorted(PINNED_PROTOCOLS))
def test_builtin_protocol_settings_are_pinned(name):
    p = PROTOCOLS.get(name)
    got = (
        p.version,
        p.dataset,
        p.image_size,
        tuple(p.ways),
        tuple(p.shots),
        p.n_query,
        p.episodes,
        p.within_group,
        p.val_way,
        p.fixed_episodes is not None,
        p.same_positions,
    )
    assert got == PINNED_PROTOCOLS[name]


def test_every_registered_protocol_is_pinned():
    assert set(PROTOCOLS.names()) == set(PINNED_PROTOCOLS)


# Change only on purpose (with a protocol version bump): the split hash goes into every result row.
PINNED_SPLIT_HASHES = {
    "digits-heldout": ("digits", "3086939b6a46443c"),
    "mnist-heldout": ("mnist", "283a08c90036601c"),
    "mnist-pairs": ("mnist", "47e936c2571cf124"),
}


@pytest.mark.parametrize("name", sorted(PINNED_SPLIT_HASHES))
def test_offline_protocols_use_their_own_pinned_split(name):
    """Each offline protocol builds its documented split (mnist-pairs: MNIST's own train/test files;
    mnist-heldout: digits 0-4 / 5-9 of MNIST; digits-heldout: 0-4 / 5-9 of sklearn digits), over its dataset."""
    p = PROTOCOLS.get(name)
    split = p.split(None, None)
    assert (split.dataset, split.hash) == PINNED_SPLIT_HASHES[name]
    assert split.dataset == p.dataset


def _omniglot_names(subset):
    sizes = dict(ALPHABETS[subset])
    return tuple(f"{a}/character{c:02d}" for a in sorted(sizes) for c in range(1, sizes[a] + 1))


def test_mnist_transfer_split_is_pinned():
    """The split only reads the Omniglot class names, so the real names give the real split's hash (the same
    as on the real data): train 964 background, val the 277 characters of the 10 non-run evaluation
    alphabets, test the ten MNIST digits, disjoint "images" (three different subsets)."""
    names = {s: SimpleNamespace(class_names=_omniglot_names(s)) for s in ("background", "evaluation")}
    split = PROTOCOLS.get("mnist-transfer").split(names, None)
    assert (split.name, split.dataset, split.disjoint) == ("mnist-transfer", "omniglot-mnist", "images")
    assert [len(split.part(k).classes) for k in ("train", "val", "test")] == [964, 659 - 382, 10]
    assert split.hash == "31d74e7598872f27"


def test_vinyals_protocol_reads_the_split_files_of_the_given_data_dir(tmp_path):
    """The split comes from the data folder the run was given (its files are sha256-checked there), not from
    the default one."""
    bad = tmp_path / "omniglot" / "splits" / "vinyals" / "train.txt"
    bad.parent.mkdir(parents=True)
    bad.write_text("Latin/character01/rot000\n")
    with pytest.raises(ValueError, match="not the official"):
        PROTOCOLS.get("vinyals").split(None, tmp_path)
    assert PROTOCOLS.get("vinyals").split(None, tmp_path / "empty").hash == "64bd5bb04dcb70b9"


def test_published_lookup_labels_and_refuses_two_compared_rows_for_one_setting(monkeypatch):
    from siamese_bench.protocols import published

    acc, label = published_lookup()[("mnist-transfer", 10, 1)]
    assert acc == 70.3 and label == "Convolutional Siamese Net, Koch et al. 2015 Table 3"
    row = next(r for r in published_rows() if r["compare"] == "yes")
    monkeypatch.setattr(published, "published_rows", lambda: [row, dict(row, method="other")])
    with pytest.raises(ValueError, match="two compare=yes rows"):
        published_lookup()


def test_registered_protocols_cannot_be_edited_in_place():
    """A protocol is a pinned definition shared by every run in the process: changing one means a new
    Protocol (and version), never an attribute assignment."""
    import dataclasses

    p = PROTOCOLS.get("vinyals")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.episodes = 10
    assert PROTOCOLS.get("vinyals").episodes == 1000
