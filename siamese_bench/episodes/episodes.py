"""N-way K-shot evaluation episodes: the `Episodes` record, `sample_episodes`, save/load and a fingerprint.

Episodes are sampled with their own CPU generator seeded by `seed`, vectorised over all episodes, so a seed
names the same episodes on every machine and every device. Classes (N of C) and images (K+Q of a class) are
drawn without replacement by Floyd's algorithm run on all rows at once: N (or K+Q) tensor steps whatever the
number of episodes, and random numbers and memory proportional to E*N*(K+Q), not to E*C or E*N*max_count
(MNIST classes hold ~6000 images). Saving them and comparing `episodes_fingerprint` proves two methods saw
the same episodes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from siamese_bench.datasets.store import atomic_torch_save
from siamese_bench.episodes.index import ClassIndex, as_int

FORMAT = "siamese_bench.episodes"
FORMAT_VERSION = 2  # 2: index tensors stored as int32 (half the size of version 1's int64); both load
READABLE_VERSIONS = (1, 2)
_HIGH = 2**62  # random integers lie in [0, 2**62): `r % n` is unbiased to within n / 2**62


@dataclass(frozen=True, eq=False)
class Episodes:
    """E episodes of an N-way K-shot task with Q queries per class.

    support: (E, N*K) int64 image indices into the ImageSet, class-major (class 0's K shots, then class 1's)
    query:   (E, N*Q) int64 image indices, class-major
    classes: (E, N) int64 global class ids (ImageSet label values) in episode order
    seed, split_hash, within_group, same_positions: provenance (how the episodes were drawn; seed -1 = not
    sampled here).
    """

    support: torch.Tensor
    query: torch.Tensor
    classes: torch.Tensor
    n_way: int
    k_shot: int
    n_query: int
    seed: int
    split_hash: str = ""
    within_group: bool = False
    same_positions: bool = False

    def __post_init__(self) -> None:
        e = self.classes.shape[0] if self.classes.ndim == 2 else -1
        expected = {
            "support": (self.support, (e, self.n_way * self.k_shot)),
            "query": (self.query, (e, self.n_way * self.n_query)),
            "classes": (self.classes, (e, self.n_way)),
        }
        for name, (t, shape) in expected.items():
            if t.dtype != torch.int64 or tuple(t.shape) != shape:
                raise ValueError(
                    f"Episodes.{name} must be int64 of shape {shape} for n_way={self.n_way}, "
                    f"k_shot={self.k_shot}, n_query={self.n_query}; got {t.dtype} {tuple(t.shape)}"
                )

    def __len__(self) -> int:
        return self.classes.shape[0]

    @property
    def device(self) -> torch.device:
        return self.support.device

    def support_labels(self) -> torch.Tensor:
        """(N*K,) int64 episode-local labels of the support columns: arange(N).repeat_interleave(K)."""
        return torch.arange(self.n_way, device=self.device).repeat_interleave(self.k_shot)

    def query_labels(self) -> torch.Tensor:
        """(N*Q,) int64 episode-local labels of the query columns: arange(N).repeat_interleave(Q)."""
        return torch.arange(self.n_way, device=self.device).repeat_interleave(self.n_query)

    def to(self, device: str | torch.device) -> Episodes:
        return Episodes(
            self.support.to(device),
            self.query.to(device),
            self.classes.to(device),
            self.n_way,
            self.k_shot,
            self.n_query,
            self.seed,
            self.split_hash,
            self.within_group,
            self.same_positions,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write to `path` atomically (temp file in the same folder, fsync, then os.replace; mode 0644)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "support": _compact(self.support),
            "query": _compact(self.query),
            "classes": _compact(self.classes),
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "n_query": self.n_query,
            "seed": self.seed,
            "split_hash": self.split_hash,
            "within_group": self.within_group,
            "same_positions": self.same_positions,
            "fingerprint": episodes_fingerprint(self),
        }
        atomic_torch_save(blob, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Episodes:
        """Read a file written by `save` (on CPU).

        FileNotFoundError when missing; ValueError when it is not an episodes file, was written by another
        format version, or its content does not match its stored fingerprint.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"episodes file {path} does not exist; sample and save episodes first")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(
                f"{path}: not a readable episodes file ({err}); delete it and sample again"
            ) from err
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"{path}: not a siamese_bench episodes file (no format tag {FORMAT!r})")
        if blob.get("version") not in READABLE_VERSIONS:
            raise ValueError(
                f"{path}: episodes format version {blob.get('version')!r}, this code reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}; delete it and sample again with this version"
            )
        try:
            blob.setdefault("same_positions", False)  # files written before it existed
            for key, kind in _FIELDS:  # exact types: bool("False") is True, int(5.5) is 5
                if type(blob[key]) is not kind:
                    raise TypeError(f"{key} is {blob[key]!r}, not {kind.__name__}")
            ep = cls(
                _wide(blob["support"]),
                _wide(blob["query"]),
                _wide(blob["classes"]),
                *(blob[key] for key, _ in _FIELDS),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise ValueError(f"{path}: corrupt episodes file ({err!r}); delete it and sample again") from err
        if episodes_fingerprint(ep) != blob.get("fingerprint"):
            raise ValueError(
                f"{path}: content does not match its stored fingerprint; delete it and sample again"
            )
        return ep


_FIELDS = (
    ("n_way", int),
    ("k_shot", int),
    ("n_query", int),
    ("seed", int),
    ("split_hash", str),
    ("within_group", bool),
    ("same_positions", bool),
)


def _compact(t: torch.Tensor) -> torch.Tensor:
    """An int64 index tensor as int32 on CPU for the file (int64 kept if a value does not fit)."""
    t = t.cpu()
    fits = t.numel() == 0 or (int(t.min()) >= -(2**31) and int(t.max()) < 2**31)
    return t.to(torch.int32) if fits else t


def _wide(t) -> torch.Tensor:
    """A stored index tensor back as int64 (a non-integer one is left for the shape check to refuse)."""
    if isinstance(t, torch.Tensor) and t.dtype in (torch.int32, torch.int64):
        return t.to(torch.int64)
    return t


def episodes_fingerprint(ep: Episodes) -> str:
    """sha256 (hex) of the episode shape and the support / query / classes tensors (not of provenance), so
    equal fingerprints mean the very same episodes on any machine or device."""
    h = hashlib.sha256(f"episodes:{len(ep)},{ep.n_way},{ep.k_shot},{ep.n_query}".encode())
    for t in (ep.support, ep.query, ep.classes):
        h.update(t.detach().to("cpu", torch.int64).contiguous().numpy().astype("<i8", copy=False).tobytes())
    return h.hexdigest()


def sample_episodes(
    index: ClassIndex,
    n_way: int,
    k_shot: int,
    n_query: int,
    n_episodes: int,
    seed: int,
    within_group: bool = False,
    *,
    split_hash: str = "",
    same_positions: bool = False,
) -> Episodes:
    """`n_episodes` N-way K-shot episodes with Q queries per class, on `index.device`.

    Per episode: N distinct classes of the index (within_group: all from one group, the group drawn uniformly
    among the groups with >= N classes), then K + Q distinct images per class, the first K as support and the
    rest as queries (so support and query never share an image). Class order within an episode is random.
    same_positions: instead, K + Q distinct positions per episode (below the smallest class count), the same
    for every class of the episode: the i-th image of each class is at the same position in its class's list.
    Omniglot lists each character's images in drawer order, so there the supports of an episode all come from
    the same drawer(s) and the queries from others, as in Lake et al.'s official runs.
    Deterministic in (index content, N, K, Q, E, seed, within_group, same_positions).

    Raises ValueError: N < 2, K < 1, Q < 1, E < 1, a seed that is not an int in [0, 2**64) (-1 marks episodes
    not sampled here), a non-bool within_group, N above the number of classes, K + Q above the images of the
    smallest class, or within_group with no group of >= N classes.
    """
    checked = []
    for name, value, low in (
        ("n_way", n_way, 2),
        ("k_shot", k_shot, 1),
        ("n_query", n_query, 1),
        ("n_episodes", n_episodes, 1),
    ):
        checked.append(as_int(value))
        if checked[-1] is None or checked[-1] < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    n_way, k_shot, n_query, n_episodes = checked  # Python ints (NumPy integers are fine)
    given, seed = seed, as_int(seed)
    if seed is None or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {given!r}")
    for name, flag in (("within_group", within_group), ("same_positions", same_positions)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    num = index.num_classes
    if num < 2:
        raise ValueError(
            f"{index.name} has only {num} class; episodes need at least 2 classes (n_way >= 2): "
            "build the index with more classes"
        )
    if n_way > num:
        raise ValueError(
            f"n_way={n_way} but {index.name} has only {num} classes; "
            f"use n_way <= {num} or a larger split part"
        )
    counts = index.counts.cpu()
    need = k_shot + n_query
    smallest = int(counts.argmin())
    if int(counts[smallest]) < need:
        raise ValueError(
            f"k_shot + n_query = {need} but class {index.class_names[smallest]!r} of {index.name} has only "
            f"{int(counts[smallest])} images; lower k_shot or n_query (in `run`: --shots; a protocol fixes its "
            f"queries per class) or drop classes with fewer than {need} images"
        )
    if within_group:
        _, group_of, group_size = torch.unique(index.groups.cpu(), return_inverse=True, return_counts=True)
        eligible = torch.nonzero(group_size >= n_way).squeeze(1)
        if eligible.numel() == 0:
            biggest = int(group_size.argmax())
            gid = int(index.groups.cpu()[group_of == biggest][0])
            raise ValueError(
                f"within_group episodes need a group with >= n_way={n_way} classes, but the largest group of "
                f"{index.name} ({index.group_names[gid]!r}) has {int(group_size[biggest])}; lower n_way"
            )
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if within_group:
        # local classes sorted by group; episode e draws positions in its group's run of that list
        by_group = torch.argsort(group_of, stable=True)
        group_start = torch.cumsum(group_size, 0) - group_size
        which = torch.randint(eligible.numel(), (n_episodes,), generator=gen)
        pick = eligible[which]  # (E,) the group of each episode (index into group_size)
        pos = _sample_distinct(group_size[pick], n_way, gen)  # (E, N) positions within the group
        cls = by_group[group_start[pick][:, None] + pos]
    else:
        cls = _sample_distinct(torch.full((n_episodes,), num), n_way, gen)  # (E, N) local class ids
    if same_positions:  # (E, 1, K+Q): one set of positions per episode, shared by its classes
        pos = _sample_distinct(counts[smallest].expand(n_episodes), need, gen)[:, None, :]
    else:
        pos = _sample_distinct(counts[cls].reshape(-1), need, gen).view(
            n_episodes, n_way, need
        )  # (E, N, K+Q)
    dev = index.device
    cls, pos = cls.to(dev), pos.to(dev)
    images = index.order[index.offsets[cls][..., None] + pos]  # (E, N, K+Q) image indices
    return Episodes(
        support=images[..., :k_shot].reshape(n_episodes, n_way * k_shot),
        query=images[..., k_shot:].reshape(n_episodes, n_way * n_query),
        classes=index.class_ids[cls],
        n_way=n_way,
        k_shot=k_shot,
        n_query=n_query,
        seed=seed,
        split_hash=split_hash,
        within_group=within_group,
        same_positions=same_positions,
    )


def _sample_distinct(sizes: torch.Tensor, m: int, generator: torch.Generator) -> torch.Tensor:
    """(R, m) int64: per row r, m distinct integers in [0, sizes[r]) (sizes: (R,) int64, all >= m), every
    m-subset equally likely and in uniformly random order.

    Floyd's algorithm vectorised over rows: step i draws t uniform in [0, n - m + i] and keeps it unless
    already taken, else takes n - m + i (which no earlier step could draw); then the m values are shuffled
    (random int64 keys, stable argsort). A loop of m tensor steps, each over all rows.
    """
    rows = sizes.shape[0]
    r = torch.randint(_HIGH, (rows, m), generator=generator)
    top = sizes[:, None] - m + torch.arange(m)  # (R, m): n - m + i
    draws = r % (top + 1)
    out = torch.empty(rows, m, dtype=torch.int64)
    out[:, 0] = draws[:, 0]
    for i in range(1, m):
        taken = (out[:, :i] == draws[:, i : i + 1]).any(1)
        out[:, i] = torch.where(taken, top[:, i], draws[:, i])
    keys = torch.randint(_HIGH, (rows, m), generator=generator)
    return out.gather(1, keys.argsort(dim=1, stable=True))
