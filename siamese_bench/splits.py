"""Pinned class splits with stable content hashes.

A split names, for each part (train / val / test), which subset of a dataset it draws from and which
classes. Nothing here touches a random number generator: every split is a fixed list, and its hash
(sha256 of the canonical JSON, first 16 hex digits) goes into every result row.

`disjoint` says what train/val/test must not share, and `check()` enforces it:
  "images"  parts come from different subsets (MNIST's train and test files; classes may repeat);
  "classes" no class in two parts (and for "char/rotNNN" classes, NNN three digits as in Vinyals' "rot090", no
            character in two parts);
  "groups"  no group (Omniglot alphabet) in two parts, hence no class either;
  "heldout" the "test" part shares no class with any other part, and parts that share a class draw from
            different subsets (MNIST held-out digits: train 0-4 from train, val 0-4 from test, test 5-9).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

# The ten evaluation alphabets of Lake et al.'s official 20-way one-shot runs (all_runs.zip).
LAKE_RUN_ALPHABETS = (
    "Atlantean",
    "Ge_ez",
    "Glagolitic",
    "Gurmukhi",
    "Kannada",
    "Malayalam",
    "Manipuri",
    "Old_Church_Slavonic_(Cyrillic)",
    "Tengwar",
    "Tibetan",
)


@dataclass(frozen=True)
class SplitPart:
    """One part of a split: `classes` (names) drawn from dataset subset `subset`."""

    subset: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class ClassSplit:
    name: str
    dataset: str
    parts: tuple[tuple[str, SplitPart], ...]  # ordered (part name, part), e.g. ("train", ...)
    disjoint: str  # "images" | "classes" | "groups" | "heldout"
    groups: tuple[tuple[str, str], ...] = ()  # (class, group) for every class, when disjoint == "groups"
    # digest of the images themselves, for your own images (protocols/folder.py): the hash then changes when
    # an image is added, removed, renamed or edited; "" for the built-in datasets, checked by checksums
    images: str = ""

    def __post_init__(self) -> None:
        if self.disjoint not in ("images", "classes", "groups", "heldout"):
            raise ValueError(f"split {self.name}: disjoint must be images, classes, groups or heldout")
        self.check()

    def part(self, name: str) -> SplitPart:
        for key, part in self.parts:
            if key == name:
                return part
        raise KeyError(f"split {self.name} has no part {name!r}; parts: {', '.join(self.part_names)}")

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.parts)

    @property
    def hash(self) -> str:
        doc = {
            "name": self.name,
            "dataset": self.dataset,
            "disjoint": self.disjoint,
            "parts": [[k, p.subset, list(p.classes)] for k, p in self.parts],
        }
        if self.images:
            doc["images"] = self.images
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def check(self) -> None:
        """Raise ValueError when two parts share what `disjoint` forbids (or a part is empty or named twice)."""
        for key, part in self.parts:
            if not part.classes:
                raise ValueError(f"split {self.name}: part {key!r} has no classes")
        keys = [k for k, _ in self.parts]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(
                f"split {self.name}: part {repeated[0]!r} is listed more than once ({keys}); "
                "each part name must be unique"
            )
        if self.disjoint == "groups":
            known = dict(self.groups)
            missing = [c for _, p in self.parts for c in p.classes if c not in known]
            if missing:
                raise ValueError(
                    f"split {self.name}: no group given for class {missing[0]!r} ({len(missing)} class(es) "
                    "without one); a split by groups lists (class, group) for every class of its parts"
                )
        named = dict(self.parts)
        if {"trainval", "train", "val"} <= named.keys():
            tv, tr, va = named["trainval"], named["train"], named["val"]
            if set(tv.classes) != set(tr.classes) | set(va.classes) or {tv.subset} != {tr.subset, va.subset}:
                raise ValueError(
                    f"split {self.name}: part 'trainval' must be parts 'train' and 'val' together (the same "
                    f"classes, from the same subset); it has {len(tv.classes)} classes from {tv.subset!r}, "
                    f"they have {len(set(tr.classes) | set(va.classes))} from {sorted({tr.subset, va.subset})}"
                )
        for i, (ka, pa) in enumerate(self.parts):
            for kb, pb in self.parts[i + 1 :]:
                if {ka, kb} in ({"train", "trainval"}, {"val", "trainval"}):
                    continue  # trainval is train + val by definition (checked above when all three exist)
                if self.disjoint == "images":
                    shared = {pa.subset} & {pb.subset}
                    what = "subset"
                elif self.disjoint == "heldout":
                    shared = set(pa.classes) & set(pb.classes)
                    if "test" not in (ka, kb) and pa.subset != pb.subset:
                        shared = set()  # same classes, different images: allowed outside the test part
                    what = "class"
                elif self.disjoint == "classes":
                    shared = {_character(c) for c in pa.classes} & {_character(c) for c in pb.classes}
                    what = "class"
                else:
                    g = known
                    shared = {g[c] for c in pa.classes} & {g[c] for c in pb.classes}
                    what = "group"
                if shared:
                    raise ValueError(
                        f"split {self.name}: parts {ka!r} and {kb!r} share {len(shared)} {what}(s), "
                        f"e.g. {sorted(shared)[:3]}; parts {keys} must be disjoint"
                    )


_ROTATION = re.compile(r"rot[0-9]{3}")  # the last name component of a rotated class: rot000 ... rot270


def _character(name: str) -> str:
    """'Alphabet/character01/rot090' -> 'Alphabet/character01' (rotations are one character); any other name
    (e.g. 'tools/rotor') as is."""
    head, _, tail = name.rpartition("/")
    return head if head and _ROTATION.fullmatch(tail) else name


def by_groups(
    name: str, dataset: str, subset: str, class_groups: dict[str, str], parts: dict[str, tuple]
) -> ClassSplit:
    """A split of one subset by group: `parts` maps part name -> tuple of group names."""
    built = []
    for key, groups in parts.items():
        wanted = set(groups)
        unknown = wanted - set(class_groups.values())
        if unknown:
            raise ValueError(f"split {name}: unknown groups {sorted(unknown)}")
        classes = tuple(c for c in class_groups if class_groups[c] in wanted)
        built.append((key, SplitPart(subset, classes)))
    return ClassSplit(name, dataset, tuple(built), "groups", tuple(class_groups.items()))
