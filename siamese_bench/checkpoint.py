"""Checkpoints (weights + the config that made them) and the `evaluate` / `predict` commands that use them.

A checkpoint is written by `run --checkpoints` as OUT/checkpoints/<protocol>_<backbone>_<head>_<device>_seed<S>.pt
(<device>_<dtype>_seed<S> for a dtype other than float32, e.g. `bfloat16-amp`), made a safe file name by
`results.file_stem` (your own images' protocols: `folder_<path>..._seed<S>-<8 hex>.pt`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from siamese_bench import provenance
from siamese_bench.datasets.store import atomic_torch_save
from siamese_bench.model import SiameseModel

FORMAT = "siamese_bench.checkpoint"
FORMAT_VERSION = 1


def save(path: Path, model: SiameseModel, group: dict, train_config, split) -> None:
    """Atomically write the weights with the backbone/head names, input shape, protocol, split and config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "backbone": group["backbone"],
        "head": group["head"],
        "in_channels": group.get("in_channels", 1),
        "image_size": group.get("image_size"),
        "protocol": group["protocol"].name,
        "dataset": group["protocol"].dataset,  # your own images: their resolved folder (CSV), however written
        "protocol_version": group["protocol"].version,
        "split_hash": split.hash,
        "seed": group["seed"],
        "test_cells": group.get("test_cells"),  # [[N-way, K-shot], ...] the run scored
        "test_episodes": group.get("test_episodes"),  # test episodes per cell in the run
        "train_config": dataclasses.asdict(train_config),
        "git_hash": provenance.git_hash(),
        "torch_version": str(torch.__version__),
    }
    atomic_torch_save(doc, path)


def load(path: Path, device: str = "cpu") -> tuple[SiameseModel, dict]:
    """(model in eval mode on `device`, metadata); a clear error for a missing or foreign file."""
    path = Path(path)
    if path.is_dir():  # a run's folder, or its checkpoints/ folder
        found = sorted(path.glob("*.pt")) or sorted(path.glob("checkpoints/*.pt"))
        raise ValueError(
            f"checkpoint {path} is a folder; name a .pt file, e.g. {found[0]}"
            + (f" ({len(found)} there)" if len(found) > 1 else "")
            if found
            else f"checkpoint {path} is a folder with no .pt file; `run --checkpoints` writes them under "
            "OUT/checkpoints/"
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; write one with `run --checkpoints`")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch's own message (pickle advice and all) would mislead here
        raise ValueError(
            f"{path} is not a readable siamese_bench checkpoint ({type(e).__name__}); checkpoints are the .pt "
            "files that `run --checkpoints` writes under OUT/checkpoints/"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a siamese_bench checkpoint (written by `run --checkpoints`)")
    if doc["version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format v{doc['version']}; this siamese_bench reads v{FORMAT_VERSION}"
        )
    try:
        model = SiameseModel.build(
            doc["backbone"], doc["head"], in_channels=doc["in_channels"], image_size=doc["image_size"]
        )
        model.load_state_dict(doc["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise ValueError(
            f"{path}: its weights do not fit {doc.get('backbone')}+{doc.get('head')} as this siamese_bench "
            f"builds it ({_first_problem(e)}); it was written at git {doc.get('git_hash', '?')}: evaluate it with that "
            "version, or train it again"
        ) from None
    return model.to(device).eval(), doc


def _first_problem(e: Exception) -> str:
    """One line on why a checkpoint's weights do not load: the missing field (KeyError), or the first detail of
    load_state_dict's message (its first line only says "Error(s) in loading state_dict for ...")."""
    if isinstance(e, KeyError):
        return f"it has no {e.args[0]!r} field"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        lines = lines[1:]
    return (lines[0][:300] + ("; ..." if len(lines) > 1 else "")) if lines else type(e).__name__


def _out_of_memory(e: BaseException) -> bool:
    """Whether `e` is an allocation failure: Python's MemoryError, CUDA's OutOfMemoryError, or the
    RuntimeError of torch's CPU allocator ("can't allocate memory")."""
    return isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError)) or "can't allocate memory" in str(e)


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: use cpu or cuda (cuda:N for one of several GPUs)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda: torch.cuda.is_available() is False (no GPU or CPU-only torch); use --device cpu"
        )


def _trained_spec(meta: dict) -> str:
    """The protocol the checkpoint was trained on; for your own images given by a relative path, their
    recorded resolved folder (CSV file) at the trained size, so that `evaluate` works from any directory."""
    from siamese_bench.datasets.own import is_own, parse

    name, dataset = meta["protocol"], meta.get("dataset")
    if not (is_own(name) and dataset):
        return name
    _, path, size = parse(name)
    return name if path.is_absolute() else f"{dataset}@{size}"


def _trained_on(proto, meta: dict) -> bool:
    """Whether `proto` is the protocol the checkpoint was trained on: the same name, or, for your own images,
    the same folder (CSV file) and image size however the path is written (`folder:./faces`, `folder:faces/`,
    an absolute path). Then its split must be the one trained on, and the run's test episodes are the default.
    A checkpoint written before the resolved folder was recorded resolves its protocol's path from here."""
    from siamese_bench.datasets.own import is_own, parse

    if not (is_own(proto.name) and is_own(meta["protocol"])):
        return proto.name == meta["protocol"]
    dataset = meta.get("dataset")
    if dataset is None:  # older checkpoint: its own name, or its path resolved from here
        if proto.name == meta["protocol"]:
            return True
        kind, path, _ = parse(meta["protocol"])
        dataset = f"{kind}:{path.resolve()}"
    # a relative name can mean another folder in another directory: the folder decides, not the name
    return proto.dataset == dataset and proto.image_size == meta.get("image_size")


def evaluate_command(args) -> int:
    from siamese_bench.cell import TEST_SEED_OFFSET
    from siamese_bench.datasets import load_dataset
    from siamese_bench.datasets.own import is_own
    from siamese_bench.episodes.episodes import episodes_fingerprint, sample_episodes
    from siamese_bench.episodes.index import ClassIndex
    from siamese_bench.evaluate import evaluate_episodes
    from siamese_bench.protocols import get_protocol
    from siamese_bench.runner import check_episode_count

    _check_device(args.device)
    check_episode_count(args.episodes)
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed {args.seed}: seeds must be >= 0")
    if args.seed is not None and args.seed + TEST_SEED_OFFSET >= 2**64:
        raise ValueError(
            f"--seed {args.seed}: seeds must be between 0 and {2**64 - 1 - TEST_SEED_OFFSET} (the episodes are "
            f"drawn with seed + {TEST_SEED_OFFSET}, and torch seeds are below 2**64)"
        )
    model, meta = load(args.checkpoint, args.device)
    proto = get_protocol(args.protocol or _trained_spec(meta))
    data = {
        k: v.to(args.device) for k, v in load_dataset(proto.dataset, args.data_dir, proto.image_size).items()
    }
    split = proto.split(data, args.data_dir)
    trained_on = _trained_on(proto, meta)
    if trained_on and (split.hash != meta.get("split_hash") or proto.version != meta.get("protocol_version")):
        if is_own(proto.name):
            raise ValueError(
                f"the images of {proto.name} changed since {args.checkpoint} was trained on them (split "
                f"{meta.get('split_hash')} then, {split.hash} now: images or classes added, removed, renamed or edited), so its "
                "test classes may include classes the model trained on; evaluate it on the images it was "
                "trained with, or train it again"
            )
        raise ValueError(
            f"{args.checkpoint} was trained on {proto.name} version {meta.get('protocol_version')} with split "
            f"{meta.get('split_hash')}, but this siamese_bench defines version {proto.version} with split "
            f"{split.hash}: its test classes may include classes the model trained on. Evaluate it with the "
            f"version that wrote it (git {meta.get('git_hash', '?')}), or train it again"
        )
    if args.part not in split.part_names:
        raise ValueError(
            f"--part {args.part}: protocol {proto.name}'s split has the parts {', '.join(split.part_names)}"
        )
    if proto.fixed_episodes is not None and args.part != "test":
        raise ValueError(
            f"--part {args.part}: protocol {proto.name} is scored on fixed published test episodes only; "
            "use --part test"
        )
    # defaults: the run's own test episodes (its seed, episode count and cells) when scoring the protocol and
    # part it was trained and scored on, so the accuracy repeats the run's row
    own = trained_on and args.part == "test"
    seed = args.seed if args.seed is not None else meta.get("seed", 0)
    cells = meta.get("test_cells") if own else None
    if cells and not (args.ways or args.shots):
        todo = [(n, k) for n, k in cells]
    else:  # a --ways or --shots given: the other from the run's cells, else from the protocol
        ways = args.ways or (sorted({n for n, _ in cells}) if cells else proto.ways)
        shots = args.shots or (sorted({k for _, k in cells}) if cells else proto.shots)
        todo = [(n, k) for n in ways for k in shots]
    n_episodes = args.episodes or (own and meta.get("test_episodes")) or proto.episodes
    part = split.part(args.part)
    ds = data[part.subset]
    if ds.image_shape[1] != meta["image_size"] or ds.image_shape[0] != meta["in_channels"]:
        raise ValueError(
            f"the checkpoint expects {meta['in_channels']}x{meta['image_size']}x{meta['image_size']} images but "
            f"protocol {proto.name} gives {'x'.join(map(str, ds.image_shape))}; choose a protocol with that size"
        )
    index = ClassIndex.build(ds, part.classes, name=f"{proto.name}/{args.part}")
    print(
        f"protocol {proto.id} split {split.hash}, part {args.part} ({index.num_classes} classes of "
        f"{part.subset}); checkpoint {args.checkpoint} ({meta['backbone']}+{meta['head']}, trained on "
        f"{meta['protocol']}); episodes seed {seed}"
    )
    if proto.fixed_episodes is not None and (args.episodes is not None or args.seed is not None):
        given = [f for f, v in (("--episodes", args.episodes), ("--seed", args.seed)) if v is not None]
        verb = "do" if len(given) > 1 else "does"
        print(
            f"note: {proto.name} is scored on its fixed published trials: {' and '.join(given)} {verb} not apply"
        )
    for n, k in todo:
        try:
            if proto.fixed_episodes is not None:
                ep = proto.fixed_episodes(data, split, args.data_dir, n, k)
            else:
                ep = sample_episodes(
                    index.to("cpu"),
                    n,
                    k,
                    proto.n_query,
                    n_episodes,
                    seed=seed + TEST_SEED_OFFSET,
                    within_group=proto.within_group,
                    split_hash=split.hash,
                    same_positions=proto.same_positions,
                ).to(args.device)
            r = evaluate_episodes(model, ds.images, ep)
        except (MemoryError, RuntimeError) as e:
            if not _out_of_memory(e):
                raise
            raise ValueError(
                f"{n}-way {k}-shot: {n_episodes:,} episodes do not fit in the memory of {args.device} "
                f"({_first_problem(e)}); ask for fewer with --episodes (e.g. --episodes 1000)"
            ) from None
        print(
            f"  {n}-way {k}-shot: accuracy {100 * r.accuracy:.2f}% ± {100 * r.ci95:.2f} "
            f"({len(ep)} episodes, hash {episodes_fingerprint(ep)[:16]}, {r.aggregation})"
        )
    return 0


def predict_command(args) -> int:
    from siamese_bench.datasets.folders import load_folder, load_images
    from siamese_bench.evaluate import embed_all

    _check_device(args.device)
    model, meta = load(args.checkpoint, args.device)
    size, ch = meta["image_size"], meta["in_channels"]
    gallery = load_folder(args.gallery, image_size=size, channels=ch, invert=args.invert).to(args.device)
    queries = load_images(args.images, image_size=size, channels=ch, invert=args.invert).to(args.device)
    g = embed_all(model, gallery.images, torch.arange(len(gallery), device=args.device))
    q = embed_all(model, queries, torch.arange(len(queries), device=args.device))
    n_cls = gallery.num_classes
    if n_cls == 1:
        print(
            f"note: the gallery {args.gallery} has one class ({gallery.class_names[0]}): every image is given it; "
            "only its score (how alike the model finds them) tells images apart. Add class folders to classify.",
            file=sys.stderr,
        )
    counts = torch.bincount(gallery.labels, minlength=n_cls).clamp(min=1).unsqueeze(0)
    with torch.no_grad():
        if model.metric:  # prototype: score against each class's mean embedding
            protos = (
                torch.zeros(n_cls, g.shape[1], device=g.device).index_add_(0, gallery.labels, g) / counts.T
            )
            scores = model.head.score(q.unsqueeze(0), protos.unsqueeze(0))[0]
        else:  # mean score over each class's gallery images
            s = model.head.score(q.unsqueeze(0), g.unsqueeze(0))[0]  # (Q, G)
            scores = (
                torch.zeros(len(queries), n_cls, device=g.device).index_add_(1, gallery.labels, s) / counts
            )
    best = scores.argmax(1)
    for path, c, sc in zip(args.images, best.tolist(), scores.max(1).values.tolist(), strict=True):
        print(f"{path}\t{gallery.class_names[c]}\t{sc:.4f}")
    return 0
