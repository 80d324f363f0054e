"""The grid runner behind `python -m siamese_bench run`.

A *cell* is (protocol, backbone, head, device, dtype, n_way, k_shot, seed) and yields one row of
accuracy.csv. Cells that share everything but (n_way, k_shot) share one trained model (a *group*). Each
row is written atomically as soon as its cell finishes, so an interrupted run loses at most the cell in
progress, and re-running the same command skips the cells already in the table. A failing cell becomes a
row with status=error and the message; the run goes on.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from siamese_bench import allocator, provenance
from siamese_bench.presets import PRESETS, Grid, cell_settings, recorded_grids, select_grids
from siamese_bench.results import (
    ACCURACY_COLUMNS,
    CELL_KEY,
    THROUGHPUT_COLUMNS,
    THROUGHPUT_KEY,
    OutputLock,
    Table,
    write_json,
)

REPO = Path(__file__).resolve().parents[1]
DATASET_PROTOCOL = {"mnist": "mnist-heldout", "omniglot": "vinyals", "digits": "digits-heldout"}


@dataclass(frozen=True)
class RunConfig:
    preset: str
    grids: tuple[Grid, ...]
    devices: tuple[str, ...]  # "cuda?" = CUDA if present
    out: Path
    data_dir: Path | None = None
    amp: str = "none"  # "none" | "bf16" (autocast of the training forward, on every device of the run)
    channels_last: bool = False
    forward_chunk: int = 0  # TrainConfig.forward_chunk (0 = whole batches)
    compile: bool = False
    throughput: bool = True
    throughput_batch_sizes: tuple[int, ...] = (128,)
    # measure the throughput table only: no training or evaluation, accuracy.csv gets no rows
    throughput_only: bool = False
    checkpoints: bool = False
    save_pairs: int = 0
    retry_failed: bool = False
    quiet: bool = False
    download: bool = True  # fetch missing datasets from the official URLs (fails cleanly offline)
    # torch intra-op CPU threads (None: torch's default); CPU numerics depend on it
    threads: int | None = None
    # seconds of training between snapshots of a group's training state (OUT/snapshots/; 0 = none)
    snapshot_every: float = 600.0


def _check_same_kind(config: RunConfig, config_path: Path, acc: Table) -> None:
    """Refuse a `--throughput-only` run into a directory of a full run and vice versa: config.json would then
    describe only the last kind, and the summary of a throughput-only table leaves accuracy rows out."""
    from siamese_bench.commands import UserError

    try:
        recorded = bool(json.loads(config_path.read_text()).get("throughput_only", False))
    except (OSError, ValueError, AttributeError):
        return
    if recorded == config.throughput_only or not (acc.rows or recorded):
        return
    what = "a throughput-only table" if recorded else f"{len(acc.rows)} accuracy row(s) of a full run"
    raise UserError(
        f"{config.out} holds {what}; write this {'full' if recorded else 'throughput-only'} run to another "
        "--out directory"
    )


def _check_resume_settings(config_path: Path, groups: list[dict], done) -> None:
    """Refuse to resume into a directory whose finished cells were made with other training settings than this
    run asks for: re-running would skip them, and the table would silently answer a different question.
    done(group) says whether any cell of the group has a row. The recorded settings: `recorded_grids`."""
    from siamese_bench.commands import UserError

    try:
        grids = recorded_grids(json.loads(config_path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):  # unreadable, or a config.json of another version
        return
    recorded = cell_settings(grids, strict=False)
    for group in groups:
        key = (group["protocol"].name, group["backbone"], group["head"], group["seed"])
        want = group["grid"].settings
        if key in recorded and recorded[key] != want and done(group):
            diff = ", ".join(
                f"{n} {a!r} (recorded) vs {b!r} (now)"
                for n, a, b in zip(Grid.SETTINGS, recorded[key], want, strict=True)
                if a != b
            )
            raise UserError(
                f"{config_path.parent} already holds {'/'.join(map(str, key))} (protocol/backbone/head/seed) "
                f"made with other settings: {diff}. Resuming would skip those cells; write this run to a new "
                "--out directory (or delete the folder to start over)"
            )


def _check_own_images_unchanged(out: Path, groups: list[dict], rows) -> None:
    """Refuse to resume a run on your own images (folder:/csv: protocols) when their split changed since its
    finished cells: classes were added, removed or renamed. The finished cells would be kept and the new ones
    scored on another split, in one table. rows(group) gives the recorded rows of the group's cells (or None)."""
    from siamese_bench.commands import UserError
    from siamese_bench.datasets.own import is_own

    for group in groups:
        proto = group["protocol"]
        if not is_own(proto.name):
            continue
        now = proto.split({}, None).hash
        old = {r["split_hash"] for r in rows(group) if r and r.get("split_hash")}
        if old - {now}:
            raise UserError(
                f"the images of {proto.name} changed since {out} was written (split {', '.join(sorted(old))} "
                f"then, {now} now: classes added, removed or renamed); write this run to a new --out "
                "directory (or delete that folder to start over)"
            )


def config_from_args(args) -> RunConfig:
    """Resolve the preset and the CLI overrides into a RunConfig, validating every name up front."""
    from siamese_bench.backbones import BACKBONES
    from siamese_bench.commands import UserError
    from siamese_bench.heads import HEADS
    from siamese_bench.protocols import get_protocol

    preset = PRESETS.get(args.preset)
    overrides: dict = {}
    protocols = args.protocols
    if args.datasets:
        unknown = [d for d in args.datasets if d not in DATASET_PROTOCOL]
        if unknown:
            raise UserError(
                f"unknown dataset {unknown[0]!r} for --datasets; valid: {', '.join(DATASET_PROTOCOL)} "
                "(or name protocols with --protocols)"
            )
        protocols = (protocols or ()) + tuple(DATASET_PROTOCOL[d] for d in args.datasets)
    grids = select_grids(preset.grids, protocols, args.backbones, args.heads)
    for field, value in (
        ("ways", args.ways),
        ("shots", args.shots),
        ("seeds", args.seeds),
        ("episodes", args.episodes),
        ("train_pairs", args.train_pairs),
        ("batch_size", args.batch_size),
        ("lr", args.lr),
    ):
        if value is not None:
            overrides[field] = value
    if args.distort:
        overrides["distort"] = True
    grids = tuple(dataclasses.replace(g, **overrides) for g in grids)
    try:
        cell_settings(grids)
    except ValueError as err:
        raise UserError(
            f"{err} after the flags were applied; narrow the run with --protocols, --backbones or --heads so "
            "that each cell comes from one grid"
        ) from None
    for g in grids:
        for p in g.protocols:
            get_protocol(p)
        for b in g.backbones:
            BACKBONES.get(b)
        for h in g.heads:
            HEADS.get(h)
        for n in g.ways or ():
            if n < 2:
                raise UserError(f"--ways {n}: an episode needs at least 2 classes")
        for k in g.shots or ():
            if k < 1:
                raise UserError(f"--shots {k}: K must be at least 1")
        if g.train_pairs < 0:
            raise UserError(f"--train-pairs {g.train_pairs}: must be >= 0 (0 = evaluate without training)")
        if g.batch_size < 2 or g.batch_size % 2:
            raise UserError(f"--batch-size {g.batch_size}: must be even (half positive, half negative pairs)")
    devices = args.devices or preset.devices
    for d in devices:
        if d.rstrip("?").split(":")[0] not in ("cpu", "cuda"):
            raise UserError(f"unknown device {d!r}; valid: cpu, cuda (or cuda:N)")
    explicit_cuda = [d for d in devices if d.startswith("cuda") and not d.endswith("?")]
    dry_run = getattr(args, "dry_run", False)  # a plan of a GPU grid may be read on a machine without one
    if explicit_cuda and not torch.cuda.is_available() and len(devices) == len(explicit_cuda) and not dry_run:
        raise UserError(
            "CUDA was requested (--devices cuda) but torch.cuda.is_available() is False: "
            "no GPU or a CPU-only torch build; use --devices cpu"
        )
    if (
        args.amp == "bf16"
        and any(d.startswith("cpu") for d in devices)
        and provenance.cpu_has_bf16() is False
    ):
        print(
            "warning: --amp bf16 on a CPU without AVX512-BF16 or AMX: bfloat16 autocast is emulated there and "
            "usually slower than float32; drop --amp for CPU runs",
            file=sys.stderr,
        )
    if args.forward_chunk < 0:
        raise UserError(f"--forward-chunk {args.forward_chunk}: must be >= 0 (0 = whole batches)")
    if args.throughput_only and args.no_throughput:
        raise UserError("--throughput-only and --no-throughput contradict each other; drop one")
    batch_sizes = tuple(args.throughput_batch_sizes or preset.throughput_batch_sizes)
    if any(b < 2 or b % 2 for b in batch_sizes):
        raise UserError(
            f"--throughput-batch-sizes {','.join(map(str, batch_sizes))}: each must be even and >= 2 "
            "(half positive, half negative pairs)"
        )
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be >= 1 (omit it for torch's default)")
    if not args.snapshot_every >= 0:
        raise UserError(f"--snapshot-every {args.snapshot_every}: seconds must be >= 0 (0 = no snapshots)")
    out = args.out or _default_out(args.preset, grids)
    return RunConfig(
        preset=args.preset,
        grids=grids,
        devices=tuple(devices),
        out=Path(out),
        data_dir=args.data_dir,
        amp=args.amp,
        channels_last=args.channels_last,
        forward_chunk=args.forward_chunk,
        compile=args.compile,
        throughput=not args.no_throughput,
        throughput_batch_sizes=batch_sizes,
        throughput_only=args.throughput_only,
        checkpoints=args.checkpoints,
        save_pairs=args.save_pairs,
        retry_failed=args.retry_failed,
        quiet=args.quiet,
        download=not getattr(args, "offline", False),
        threads=args.threads,
        snapshot_every=args.snapshot_every,
    )


def _default_out(preset: str, grids) -> Path:
    """results/<preset>/, or results/folder-<name>/ (csv-<name>/) for a run on your own images, so that it
    never lands among the preset's committed results; results/ is `results_root()`."""
    from siamese_bench.datasets.own import is_own, parse

    own = sorted({p for g in grids for p in g.protocols if is_own(p)})
    if own:
        parsed = [parse(p) for p in own]
        return results_root() / "+".join(f"{kind}-{path.resolve().stem}" for kind, path, _ in parsed)
    return results_root() / preset


def results_root() -> Path:
    """The checkout's results/ (an editable install, as the README's commands make), else ./results of the
    working directory (an installed package must not write into site-packages)."""
    return REPO / "results" if (REPO / "pyproject.toml").is_file() else Path.cwd() / "results"


def _throughput_text(row: dict) -> str:
    """One progress line for a measured throughput row."""
    if row["status"] != "ok":
        return f"{row['status']}: {row['error']}"
    train = row.get("train_pairs_per_s")
    trained = f"train {train:,.1f} pairs/s" if train else "nothing to train"
    images, episodes = row["eval_images_per_s"], row["eval_episodes_per_s"]
    return f"{trained}, eval {images:,.0f} images/s, {episodes:,.1f} episodes/s"


def _log(config: RunConfig, msg: str) -> None:
    if not config.quiet:
        print(msg, file=sys.stderr, flush=True)


def _devices(config: RunConfig) -> list[tuple[str, str | None]]:
    """(device, reason it is unavailable or None)."""
    out = []
    for d in config.devices:
        name = d.rstrip("?")
        if name.startswith("cuda") and not torch.cuda.is_available():
            if d.endswith("?"):
                continue  # optional CUDA: absent without a GPU
            out.append((name, "CUDA not available (torch.cuda.is_available() is False)"))
        else:
            out.append((name, None))
    return out


def _dtype(config: RunConfig) -> str:
    return "bfloat16-amp" if config.amp == "bf16" else "float32"


def expand(config: RunConfig) -> list[dict]:
    """Every training group of the grid: the shared settings plus its list of (n_way, k_shot) cells."""
    from siamese_bench.protocols import get_protocol

    groups = []
    for grid in config.grids:
        for pname in grid.protocols:
            proto = get_protocol(pname)
            for device, reason in _devices(config):
                for backbone in grid.backbones:
                    for head in grid.heads:
                        for seed in grid.seeds:
                            groups.append(
                                dict(
                                    grid=grid,
                                    protocol=proto,
                                    device=device,
                                    unavailable=reason,
                                    dtype=_dtype(config),
                                    backbone=backbone,
                                    head=head,
                                    seed=seed,
                                    cells=[
                                        (n, k)
                                        for n in (grid.ways or proto.ways)
                                        for k in (grid.shots or proto.shots)
                                    ],
                                )
                            )
    return groups


def base_row(group: dict, n_way: int, k_shot: int) -> dict:
    proto, grid = group["protocol"], group["grid"]
    return {
        "protocol": proto.name,
        "protocol_version": proto.version,
        "dataset": proto.dataset,
        "image_size": proto.image_size,
        "backbone": group["backbone"],
        "head": group["head"],
        "device": group["device"],
        "dtype": group["dtype"],
        "n_way": n_way,
        "k_shot": k_shot,
        "n_query": 1 if proto.fixed_episodes else proto.n_query,
        "episodes": grid.episodes or proto.episodes,
        "seed": group["seed"],
        "train_pairs": grid.train_pairs,
        "git_hash": provenance.git_hash(),
        "torch_version": torch.__version__,
    }


def plan(config: RunConfig) -> str:
    """What `run` would do with this config (`run --dry-run`), one line per training group: its cells, budget,
    and whether config.out holds them already or a snapshot of its training. Reads, never writes."""
    from siamese_bench.cell import CellRunner

    path = config.out / "accuracy.csv"
    acc = Table(path, ACCURACY_COLUMNS, CELL_KEY) if path.is_file() else None
    snapshot_path = CellRunner(config).snapshot_path
    groups, lines, todo, total, skipped = expand(config), [], 0, 0, 0
    for gi, g in enumerate(groups, 1):
        cells = g["cells"]
        done = sum(acc is not None and acc.get(base_row(g, n, k)) is not None for n, k in cells)
        total += len(cells)
        if g["unavailable"]:
            skipped += len(cells) - done
        else:
            todo += len(cells) - done
        what = ", ".join(f"{n}-way {k}-shot" for n, k in cells)
        if config.throughput_only:
            state = "throughput only"
        elif g["unavailable"]:
            state = f"skipped ({g['unavailable']})"
        else:
            state = f"{done}/{len(cells)} done" + (
                ", training snapshot waiting" if snapshot_path(g).is_file() else ""
            )
        budget = f"{g['grid'].train_pairs:,} training pairs" if g["grid"].train_pairs else "untrained"
        lines.append(
            f"[{gi}/{len(groups)}] {g['protocol'].name} {g['backbone']}+{g['head']} {g['device']} {g['dtype']} "
            f"seed {g['seed']}: {budget}; {what}; {state}"
        )
    lines.append(
        f"{len(groups)} training group(s), {total} cell(s), {todo} to run"
        + (f", {skipped} skipped (device unavailable)" if skipped else "")
        + f", into {config.out}; nothing was written (--dry-run)"
    )
    return "\n".join(lines)


def run(config: RunConfig, print_summary: bool = True) -> int:
    """Run the grid (resuming into config.out) with config.threads torch threads, restored afterwards."""
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, print_summary)
    finally:
        torch.set_num_threads(threads)


def _run(config: RunConfig, print_summary: bool) -> int:
    from siamese_bench.cell import CellRunner
    from siamese_bench.protocols.published import published_lookup
    from siamese_bench.summary import write_summary

    start = time.perf_counter()
    allocator.keep_freed_memory()  # CPU steps stop page-faulting their buffers in again (bit-identical)
    config.out.mkdir(parents=True, exist_ok=True)
    with OutputLock(config.out):
        acc = Table(config.out / "accuracy.csv", ACCURACY_COLUMNS, CELL_KEY)
        thr = Table(config.out / "throughput.csv", THROUGHPUT_COLUMNS, THROUGHPUT_KEY)
        # config.json describes the run that wrote the rows: a resume that finds every cell done must not
        # replace the recorded git hash, hardware and wall time with its own
        config_path, wrote = config.out / "config.json", 0
        fresh = not config_path.exists()
        earlier = [] if fresh else _earlier_runs(config_path)
        started = provenance.timestamp()
        if fresh:
            write_json(config_path, _config_doc(config, None, [], started))
        groups = expand(config)
        if not fresh:
            _check_same_kind(config, config_path, acc)
            _check_resume_settings(
                config_path, groups, lambda g: any(acc.get(base_row(g, n, k)) for n, k in g["cells"])
            )
            _check_own_images_unchanged(
                config.out, groups, lambda g: [acc.get(base_row(g, n, k)) for n, k in g["cells"]]
            )
        cells_total = sum(len(g["cells"]) for g in groups)
        runner = CellRunner(config)
        done = 0
        for gi, group in enumerate(groups, 1):
            label = (
                f"[{gi}/{len(groups)}] {group['protocol'].name} {group['backbone']}+{group['head']} "
                f"{group['device']} seed {group['seed']}"
            )
            if config.throughput_only:  # only the shapes the throughput table measures
                if group["unavailable"]:
                    _log(config, f"{label}: skipped ({group['unavailable']})")
                else:
                    runner.note_shape(group)
                continue
            todo = []
            for n, k in group["cells"]:
                old = acc.get(base_row(group, n, k))
                if old is None or (config.retry_failed and old["status"] == "error"):
                    todo.append((n, k))
            if not todo:
                done += len(group["cells"])
                _log(config, f"{label}: {len(group['cells'])} cell(s) already in {acc.path.name}, skipped")
                continue
            if group["unavailable"]:
                for n, k in todo:
                    acc.put(
                        {
                            **base_row(group, n, k),
                            "status": "skipped",
                            "error": group["unavailable"],
                            "timestamp": provenance.timestamp(),
                        }
                    )
                    wrote += 1
                _log(config, f"{label}: skipped ({group['unavailable']})")
                continue
            _log(config, f"{label}: {len(todo)} cell(s) to run")
            for row in runner.run_group(group, todo):
                acc.put(row)
                done += 1
                wrote += 1
                status = (
                    f"accuracy {100 * float(row['accuracy']):.2f}% ± {100 * float(row['ci95']):.2f}"
                    if row["status"] == "ok"
                    else f"{row['status']}: {row['error']}"
                )
                _log(
                    config,
                    f"    {row['n_way']}-way {row['k_shot']}-shot: {status}  ({done}/{cells_total} cells)",
                )
        if config.throughput:
            for trow in runner.throughput_rows(thr, lambda msg: _log(config, msg)):
                thr.put(trow)
                wrote += 1
                _log(config, f"    {_throughput_text(trow)}")
        wall = time.perf_counter() - start
        if wrote or fresh:
            write_json(config_path, _config_doc(config, wall, earlier, started, wrote))
        summary = write_summary(config.out, published_lookup())
    if print_summary and not config.quiet:
        print(summary.read_text())
    written = "throughput.csv" if config.throughput_only else "accuracy.csv, throughput.csv"
    _log(config, f"wrote {config.out}/{written}, summary.md in {wall:.0f} s")
    return 0


def _config_doc(
    config: RunConfig, wall: float | None, earlier: list[dict], started: str, rows_written: int = 0
) -> dict:
    """The resolved config and this run's environment, plus `runs`: one entry per run that wrote rows into
    this directory (a resumed grid keeps the provenance of its earlier parts), and their total wall time."""
    doc = dataclasses.asdict(config)
    out = config.out.resolve()
    doc["out"] = str(out.relative_to(REPO)) if out.is_relative_to(REPO) else str(out)
    doc["data_dir"] = str(config.data_dir) if config.data_dir else None
    env = provenance.environment()
    doc["environment"] = env
    doc["wall_seconds"] = None if wall is None else round(wall, 1)
    this = _run_entry(env, started, rows_written, doc["wall_seconds"], doc["grids"])
    doc["runs"] = [*earlier, this] if wall is not None else list(earlier)
    walls = [r["wall_seconds"] for r in doc["runs"]]
    doc["wall_seconds_total"] = round(sum(walls), 1) if walls and None not in walls else None
    return doc


def _run_entry(
    env: dict, started: str | None, rows_written: int | None, wall: float | None, grids: list | None = None
) -> dict:
    """One entry of config.json's `runs`, from a run's environment record and resolved grids (the cells and
    training settings that run asked for; None for runs recorded before grids were kept per run)."""
    gpus = env.get("gpus")
    return {
        "grids": grids,
        "started": started,
        "command": env.get("command"),
        "git_hash": env.get("git_hash"),
        "torch": env.get("torch"),
        "machine": f"{env.get('cpu')} ({env.get('cpu_threads')} threads)"
        + (f", GPUs: {', '.join(gpus)}" if gpus else ""),
        "rows_written": rows_written,
        "wall_seconds": wall,
    }


def _earlier_runs(config_path: Path) -> list[dict]:
    """The `runs` recorded in an existing config.json; for one written before runs were recorded, a single
    entry rebuilt from its environment and wall time."""
    try:
        doc = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return []
    if "runs" in doc:
        return list(doc["runs"])
    if doc.get("wall_seconds") is None:
        return []
    return [_run_entry(doc.get("environment", {}), None, None, doc["wall_seconds"])]


def error_text(exc: BaseException) -> str:
    """One line for the CSV: the exception type and message (the traceback goes to stderr)."""
    traceback.print_exception(exc, file=sys.stderr)
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
