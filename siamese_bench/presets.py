"""Named run presets (registry `PRESETS`): which grids `python -m siamese_bench run --preset NAME` runs.

A preset is a tuple of grids; each grid is protocols x backbones x heads x devices x ways x shots x seeds.
--protocols / --backbones / --heads narrow the preset to the cells with those names, each grid keeping its
own training settings (names the preset lacks replace the field in every grid instead: `select_grids`);
the other flags override the matching field of every grid.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from siamese_bench.registry import Registry


@dataclass(frozen=True)
class Grid:
    protocols: tuple[str, ...]
    backbones: tuple[str, ...]
    heads: tuple[str, ...]
    ways: tuple[int, ...] | None = None  # None: the protocol's default ways
    shots: tuple[int, ...] | None = None  # None: the protocol's default shots
    seeds: tuple[int, ...] = (0,)
    episodes: int | None = None  # test episodes per cell; None: the protocol's default (>= 1000)
    train_pairs: int = 20_000  # training budget in examples (pairs, or triplets for the triplet head)
    batch_size: int = 128  # training batch (pairs per step)
    lr: float = 1e-3  # Adam learning rate
    val_every: int = 5_000  # validate (5-way 1-shot on the validation split) every this many pairs
    val_episodes: int = 200  # validation episodes per check
    distort: bool = False  # Koch-style affine distortions during training

    # what a cell is trained and tested with besides its names: one cell, one set of these
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "train_pairs",
        "batch_size",
        "lr",
        "val_every",
        "val_episodes",
        "distort",
        "episodes",
    )

    @property
    def settings(self) -> tuple:
        return tuple(getattr(self, name) for name in self.SETTINGS)

    @classmethod
    def from_json(cls, doc: dict) -> Grid:
        """A grid from its config.json form (lists back to tuples). TypeError for unknown fields."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()})


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    grids: tuple[Grid, ...]
    devices: tuple[str, ...] = ("cpu", "cuda?")  # "cuda?" = CUDA when present, silently absent otherwise
    throughput_batch_sizes: tuple[int, ...] = (128,)
    notes: tuple[str, ...] = field(default=())


PRESETS: Registry[Preset] = Registry("preset")


def select_grids(
    grids: tuple[Grid, ...],
    protocols: tuple[str, ...] | None,
    backbones: tuple[str, ...] | None,
    heads: tuple[str, ...] | None,
) -> tuple[Grid, ...]:
    """A preset's grids as narrowed or replaced by --protocols / --backbones / --heads.

    For each of the three flags, in that order: when every name it lists occurs in some grid, it narrows:
    each grid keeps the listed names it has (with its own training settings, ways and shots) and grids left
    with none are dropped. Otherwise (a name the preset does not have) it replaces that field in every grid;
    --protocols then makes one grid from the first grid's training settings with the protocols' own ways,
    shots and episodes (the preset's grids were made for other protocols).
    """
    for name, wanted in (("protocols", protocols), ("backbones", backbones), ("heads", heads)):
        if wanted is None:
            continue
        present = {n for g in grids for n in getattr(g, name)}
        if set(wanted) <= present:
            narrowed = (
                dataclasses.replace(g, **{name: tuple(n for n in getattr(g, name) if n in wanted)})
                for g in grids
            )
            grids = tuple(g for g in narrowed if getattr(g, name))
        elif name == "protocols":
            grids = (dataclasses.replace(grids[0], protocols=wanted, ways=None, shots=None, episodes=None),)
        else:
            grids = tuple(dataclasses.replace(g, **{name: wanted}) for g in grids)
    return grids


def recorded_grids(config_doc: dict) -> tuple[Grid, ...]:
    """The grids a results folder was made with, from its config.json: every run's grids when every entry of
    `runs` recorded them, else the top-level grids (the latest run's). Duplicates are dropped."""
    runs = config_doc.get("runs") or []
    docs = [g for r in runs for g in r["grids"]] if runs and all(r.get("grids") for r in runs) else []
    return tuple(dict.fromkeys(Grid.from_json(g) for g in docs or config_doc["grids"]))


def cell_settings(grids: Iterable[Grid], strict: bool = True) -> dict[tuple, tuple]:
    """(protocol, backbone, head, seed) -> the `Grid.settings` it is trained with: the first grid's that holds
    it (a runner skips the later ones as done). strict: ValueError when two grids hold one cell with different
    settings (the second would silently get the first's)."""
    out: dict[tuple, tuple] = {}
    for g in grids:
        for key in itertools.product(g.protocols, g.backbones, g.heads, g.seeds):
            if out.setdefault(key, g.settings) != g.settings and strict:
                raise ValueError(
                    f"cell {'/'.join(map(str, key))} (protocol/backbone/head/seed) is in two grids with "
                    "different settings"
                )
    return out


_HEADS = ("koch", "contrastive", "triplet")

PRESETS.register("quick")(
    Preset(
        "quick",
        "MNIST held-out digits (small-cnn) and Omniglot/Vinyals at 28x28 (conv4), heads koch, contrastive "
        "and triplet, 1-shot; about six minutes on a 2-core CPU",
        (
            Grid(("mnist-heldout",), ("small-cnn",), _HEADS, ways=(5,), shots=(1,), train_pairs=20_000),
            Grid(("vinyals",), ("conv4",), _HEADS, ways=(5, 20), shots=(1,), train_pairs=30_000),
        ),
        notes=(
            "MNIST has 5 unseen test digits, so its one-shot task is 5-way only (20-way is impossible there).",
        ),
    )
)

PRESETS.register("smoke")(
    Preset(
        "smoke",
        "seconds-long offline check on scikit-learn's 8x8 digits (used by the tests)",
        (
            Grid(
                ("digits-heldout",),
                ("small-cnn",),
                ("koch", "contrastive"),
                ways=(3, 5),
                shots=(1,),
                episodes=200,
                train_pairs=1_024,
                val_every=512,
                val_episodes=50,
            ),
        ),
        devices=("cpu",),
        throughput_batch_sizes=(64,),
    )
)

_SEEDS = (0, 1, 2)
_BASELINE = dict(backbones=("pixels",), heads=("l2", "cosine"), seeds=(0,), train_pairs=0)

PRESETS.register("standard")(
    Preset(
        "standard",
        "every CPU-sized protocol: small-cnn / conv4 x koch / contrastive / triplet (3 seeds on the one-shot "
        "protocols), plus the pixel 1-NN baselines; 72 minutes on a 2-core CPU when recorded (results/standard)",
        (
            Grid(
                ("mnist-heldout",),
                ("small-cnn", "conv4"),
                _HEADS,
                shots=(1, 5),
                seeds=_SEEDS,
                train_pairs=30_000,
            ),
            Grid(("vinyals",), ("conv4",), _HEADS, seeds=_SEEDS, train_pairs=40_000),
            Grid(("lake-runs",), ("conv4",), _HEADS, seeds=_SEEDS, train_pairs=40_000),
            Grid(("mnist-transfer",), ("conv4",), _HEADS, seeds=(0,), train_pairs=40_000),
            Grid(("mnist-pairs",), ("small-cnn",), _HEADS, seeds=(0,), train_pairs=20_000),
            Grid(("mnist-heldout",), shots=(1, 5), **_BASELINE),
            Grid(("vinyals",), **_BASELINE),
            Grid(("lake-runs",), **_BASELINE),
            Grid(("mnist-transfer", "mnist-pairs"), **_BASELINE),
        ),
    )
)

PRESETS.register("paper")(
    Preset(
        "paper",
        "GPU budget: the koch backbone at 105x105 with Koch-style distortions on koch2015 and Lake's official "
        "runs (lake-runs-105), conv4 and resnet18 on vinyals; long training: about 2.5 hours on one H200 "
        "(extrapolated from results/paper-150k: about a tenth of the pairs, one seed, 6 minutes)",
        (
            Grid(
                ("koch2015", "lake-runs-105"),
                ("koch",),
                _HEADS,
                seeds=_SEEDS,
                train_pairs=1_500_000,
                lr=1e-4,
                distort=True,
                val_every=50_000,
                val_episodes=500,
            ),
            Grid(
                ("vinyals",),
                ("conv4", "resnet18"),
                _HEADS,
                seeds=_SEEDS,
                train_pairs=2_000_000,
                val_every=100_000,
                val_episodes=500,
            ),
        ),
        devices=("cuda",),
        throughput_batch_sizes=(128, 512),
    )
)
