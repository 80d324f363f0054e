import pytest
import torch

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
# name: (version, dataset, image_size, ways, shots, n_query, episodes, within_group, val_way, has fixed_episodes)
PINNED_PROTOCOLS = {
    "digits-heldout": (1, "digits", None, (3, 5), (1,), 5, 1000, False, 5, False),
    "koch2015": (1, "omniglot", 105, (20,), (1,), 1, 1000, True, 5, False),
    "lake-runs": (1, "omniglot", 28, (20,), (1,), 1, 20, True, 5, True),
    "lake-runs-105": (1, "omniglot", 105, (20,), (1,), 1, 20, True, 5, True),
    "mnist-heldout": (1, "mnist", None, (5,), (1, 5), 5, 1000, False, 5, False),
    "mnist-pairs": (1, "mnist", None, (10,), (1,), 5, 1000, False, 5, False),
    "mnist-transfer": (1, "omniglot-mnist", 28, (10,), (1,), 1, 1000, False, 5, False),
    "vinyals": (1, "omniglot-vinyals", 28, (5, 20), (1, 5), 5, 1000, False, 5, False),
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
    )
    assert got == PINNED_PROTOCOLS[name]


def test_every_registered_protocol_is_pinned():
    assert set(PROTOCOLS.names()) == set(PINNED_PROTOCOLS)
