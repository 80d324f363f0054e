"""The grid runner behind `python -m siamese_bench run`.

A *cell* is (protocol, backbone, head, device, dtype, n_way, k_shot, seed) and yields one row of
accuracy.csv. Cells that share everything but (n_way, k_shot) share one trained model (a *group*). Each
row is written atomically as soon as its cell finishes, so an interrupted run keeps every finished cell (and
the training in progress up to its last snapshot: snapshot.py), and re-running the same command skips the
cells already in the table. A failing cell becomes a row with status=error and the message; the run goes on.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from siamese_bench import allocator, provenance, resume
from siamese_bench.presets import PRESETS, Grid, cell_settings, select_grids
from siamese_bench.results import (
    ACCURACY_COLUMNS,
    CELL_KEY,
    THROUGHPUT_COLUMNS,
    THROUGHPUT_KEY,
    OutputLock,
    Table,
    remove_stale_temps,
    write_json,
)

REPO = Path(__file__).resolve().parents[1]


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


def config_from_args(args) -> RunConfig:
    """Resolve the preset and the CLI overrides into a RunConfig, validating every name up front."""
    from siamese_bench.backbones import BACKBONES
    from siamese_bench.commands import UserError
    from siamese_bench.heads import HEADS
    from siamese_bench.protocols import DATASET_PROTOCOL, get_protocol

    preset = PRESETS.get(args.preset)
    lists = (
        "protocols",
        "datasets",
        "backbones",
        "heads",
        "devices",
        "ways",
        "shots",
        "throughput_batch_sizes",
    )
    refuse_empty_lists(args, lists, "for the preset's")
    overrides: dict = {}
    protocols = args.protocols
    if args.datasets:
        unknown = [d for d in args.datasets if d not in DATASET_PROTOCOL]
        if unknown:
            raise UserError(
                f"unknown dataset {unknown[0]!r} for --datasets; valid: {', '.join(DATASET_PROTOCOL)} "
                "(or name protocols with --protocols)"
            )
        protocols = tuple(
            dict.fromkeys((protocols or ()) + tuple(DATASET_PROTOCOL[d] for d in args.datasets))
        )
    grids = select_grids(preset.grids, protocols, args.backbones, args.heads)
    for field, value in (
        ("ways", args.ways),
        ("shots", args.shots),
        ("seeds", args.seeds),
        ("episodes", args.episodes),
        ("train_pairs", args.train_pairs),
        ("batch_size", args.batch_size),
        ("lr", args.lr),
        ("val_every", args.val_every),
        ("val_episodes", args.val_episodes),
    ):
        if value is not None:
            overrides[field] = value
    if args.distort is not None:  # --distort / --no-distort; absent: each grid's own setting
        overrides["distort"] = args.distort
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
            _check_fixed_shape(get_protocol(p), g)
        for b in g.backbones:
            BACKBONES.get(b)
        for h in g.heads:
            HEADS.get(h)
        check_episode_shape(g.ways, g.shots)
        _check_numbers(g)
    devices = args.devices or preset.devices
    for d in devices:
        # cpu, cuda or cuda:N ("cuda?", a preset's default, is CUDA where present); a row's device names its
        # cell, so "cpu:0" (the same device as "cpu") would start a second set of cells
        if not re.fullmatch(r"(cpu|cuda(:\d+)?)\??", d):
            raise UserError(f"unknown device {d!r}; valid: cpu, cuda (or cuda:N, N a GPU number)")
    explicit_cuda = [d for d in devices if d.startswith("cuda") and not d.endswith("?")]
    if not torch.cuda.is_available() and all(d.startswith("cuda") and d.endswith("?") for d in devices):
        # "cuda?" alone adds no group without a GPU: the run would write an empty folder and exit 0
        raise UserError(
            f"--devices {','.join(devices)} runs CUDA cells where a GPU is present, and "
            "torch.cuda.is_available() is False here (no GPU or a CPU-only torch build), so no cell would "
            "run; use --devices cpu (or cpu,cuda? for the CPU plus CUDA where present)"
        )
    dry_run = getattr(args, "dry_run", False)  # a plan of a GPU grid may be read on a machine without one
    if explicit_cuda and not torch.cuda.is_available() and len(devices) == len(explicit_cuda) and not dry_run:
        raise UserError(
            f"CUDA was requested (--devices {','.join(explicit_cuda)}) but torch.cuda.is_available() is False: "
            "no GPU or a CPU-only torch build; use --devices cpu"
        )
    if torch.cuda.is_available():
        for d in explicit_cuda:
            if ":" in d and int(d.split(":")[1]) >= torch.cuda.device_count():
                raise UserError(
                    f"--devices {d}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0 "
                    "(cuda:0); name one of them, or cuda for the current one"
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
    if args.save_pairs < 0:
        raise UserError(f"--save-pairs {args.save_pairs}: must be >= 0 (0 = no picture of pairs)")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be >= 1 (omit it for torch's default)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if args.threads is not None and args.threads > cores:
        print(
            f"warning: --threads {args.threads} is more than the {cores} core(s) this process may use: threads "
            "then wait for each other, and training can be many times slower",
            file=sys.stderr,
        )
    if not args.snapshot_every >= 0:
        raise UserError(f"--snapshot-every {args.snapshot_every}: seconds must be >= 0 (0 = no snapshots)")
    out = Path(args.out) if args.out is not None else _default_out(args.preset, grids)
    if args.out is None and out == results_root() / args.preset:
        measured = () if args.no_throughput else batch_sizes
        _refuse_cells_outside_preset(preset, out, grids, devices, args.amp, measured)
    check_out_folder(out)
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


def grid_cells(grids, devices, amp: str) -> set[tuple]:
    """The accuracy rows `grids` make on `devices` ("cuda?" counts as cuda) with `--amp amp`, as `expand` lays
    them out, each as (protocol, backbone, head, device, dtype, n_way, k_shot, seed): what identifies a row
    (CELL_KEY; the dataset comes with the protocol)."""
    config = RunConfig("", tuple(grids), tuple(d.rstrip("?") for d in devices), Path(), amp=amp)
    return {
        (g["protocol"].name, g["backbone"], g["head"], g["device"], g["dtype"], n, k, g["seed"])
        for g in expand(config)
        for n, k in g["cells"]
    }


def _refuse_cells_outside_preset(preset, out: Path, grids, devices, amp: str, batch_sizes) -> None:
    """A UserError when a run without --out, into the preset's results folder `out`, would add rows the preset
    does not make: an accuracy cell (any of protocol, backbone, head, device, dtype, ways, shots, seed) or a
    throughput batch size (`batch_sizes`: those this run measures) that is not the preset's."""
    from siamese_bench.commands import UserError

    extra = sorted(
        grid_cells(grids, devices, amp) - grid_cells(preset.grids, preset.devices, "none"),
        key=str,
    )
    if extra:
        protocol, backbone, head, device, dtype, n, k, seed = extra[0]
        cell = f"{protocol} {backbone}+{head} on {device} {dtype}, {n}-way {k}-shot, seed {seed}"
        what = f"cells that are not in the {preset.name} preset (e.g. {cell})"
    elif set(batch_sizes) - set(preset.throughput_batch_sizes):
        sizes = ", ".join(map(str, sorted(set(batch_sizes) - set(preset.throughput_batch_sizes))))
        what = (
            f"throughput rows that are not in the {preset.name} preset (batch size {sizes}; the preset measures "
            f"{', '.join(map(str, preset.throughput_batch_sizes))})"
        )
    else:
        return
    raise UserError(
        f"this run has {what}, and without --out it would add them to {out}, the preset's results folder; "
        "name a folder for them, e.g. --out results/mine"
    )


# the largest seed a run can use: training seeds its generators with seed, seed + 1 and seed + 2 (TrainConfig
# takes seeds below 2**63 - 2), the test episodes use seed + 1000 (cell.TEST_SEED_OFFSET) and the verification
# pairs seed + 3000, both below torch's 2**64
MAX_SEED = 2**63 - 3
# the most test episodes per cell (`run --episodes`, `evaluate --episodes`): they are drawn at once, in memory;
# the 95% CI over a million episodes is already under 0.1 points
MAX_EPISODES = 1_000_000


def check_episode_count(episodes: int | None) -> None:
    """A UserError for an --episodes count no run (or evaluation) can use: below 2, or above MAX_EPISODES."""
    from siamese_bench.commands import UserError

    if episodes is not None and episodes < 2:
        raise UserError(
            f"--episodes {episodes}: must be >= 2, as the 95% CI is over episodes (omit it for the "
            "protocol's default)"
        )
    if episodes is not None and episodes > MAX_EPISODES:
        raise UserError(
            f"--episodes {episodes}: must be at most {MAX_EPISODES:,}, as the episodes are drawn at once, in "
            f"memory (the 95% CI over {MAX_EPISODES:,} episodes is under 0.1 points); e.g. --episodes 1000"
        )


def _check_numbers(g: Grid) -> None:
    """A UserError naming the flag for a value of a grid (after the flags were applied) that no run can use."""
    from siamese_bench.commands import UserError

    if not g.seeds:
        raise UserError("--seeds: give at least one seed, e.g. --seeds 0")
    for s in g.seeds:
        if s < 0:
            raise UserError(f"--seeds {s}: seeds must be >= 0")
        if s > MAX_SEED:
            raise UserError(
                f"--seeds {s}: seeds must be between 0 and {MAX_SEED} (2**63 - 3: training also seeds with "
                "seed + 2, and the test episodes with seed + 1000)"
            )
    check_episode_count(g.episodes)
    if g.train_pairs < 0:
        raise UserError(f"--train-pairs {g.train_pairs}: must be >= 0 (0 = evaluate without training)")
    if g.batch_size < 2 or g.batch_size % 2:
        raise UserError(
            f"--batch-size {g.batch_size}: must be even and >= 2 (half positive, half negative pairs)"
        )
    if not (math.isfinite(g.lr) and g.lr > 0):
        raise UserError(f"--lr {g.lr}: must be a finite number > 0, e.g. --lr 1e-3")
    if g.val_every < 0:
        raise UserError(f"--val-every {g.val_every}: must be >= 0 (0 = validate once, after the last step)")
    if g.val_episodes < 1:
        raise UserError(f"--val-episodes {g.val_episodes}: must be >= 1, e.g. --val-episodes 200")


def check_out_folder(out: Path) -> None:
    """A UserError unless `out` can be the results folder: not the bare current directory (`--out ''` or
    `--out .`, which would scatter the results among whatever is there), not a file nor below one."""
    from siamese_bench.commands import UserError

    if out == Path("."):
        raise UserError(
            "--out '' (or '.') names the current directory, where the results would mix with whatever is there; "
            "name a results folder (e.g. --out results/mine), or give the current directory's full path if "
            "you mean it"
        )
    for path in (out, *out.parents):
        if path.is_dir():
            return
        if path.exists() or path.is_symlink():
            what = "a file" if path.exists() else f"a broken link (to {os.readlink(path)})"
            below = "not a folder" if path == out else "so no folder can be made below it"
            raise UserError(f"--out {out}: {path} is {what}, {below}; choose another --out folder")


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


def refuse_empty_lists(args, names, omitted: str) -> None:
    """A UserError for a comma-separated flag given as an empty list (`--heads ""`, e.g. an unset shell
    variable, or `--ways ,`): omitting the flag, not an empty value, asks for the default (`omitted` says
    which: run, evaluate and reproduce each have theirs)."""
    from siamese_bench.commands import UserError

    for name in names:
        if getattr(args, name, None) == ():
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag}: the list is empty; give at least one value, or omit {flag} {omitted}")


def check_episode_shape(ways, shots) -> None:
    """A UserError naming the flag for --ways / --shots values no episode can have (`run`, `evaluate`)."""
    from siamese_bench.commands import UserError

    for n in ways or ():
        if n < 2:
            raise UserError(f"--ways {n}: an episode needs at least 2 classes")
    for k in shots or ():
        if k < 1:
            raise UserError(f"--shots {k}: K must be at least 1")


def _check_fixed_shape(proto, grid: Grid) -> None:
    """A UserError, before any data is loaded, when --ways / --shots ask a protocol with fixed test trials
    (Lake's official runs) for an episode shape those trials do not have (it was an error row after loading)."""
    from siamese_bench.commands import UserError

    if proto.fixed_episodes is None:
        return
    for flag, asked, fixed in (("--ways", grid.ways, proto.ways), ("--shots", grid.shots, proto.shots)):
        bad = [v for v in asked or () if v not in fixed]
        if bad:
            shape = f"{'/'.join(map(str, proto.ways))}-way {'/'.join(map(str, proto.shots))}-shot"
            raise UserError(
                f"{flag} {','.join(map(str, bad))}: {proto.name} is scored on fixed trials that are {shape} "
                f"only; drop {flag}, or leave {proto.name} out with --protocols"
            )


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
    return dtype_of(config.amp)


def dtype_of(amp: str) -> str:
    """The dtype column of the rows of a run with this --amp."""
    return "bfloat16-amp" if amp == "bf16" else "float32"


def _to_run(old: dict | None, config: RunConfig, available: bool = True) -> bool:
    """Whether a cell whose recorded row is `old` (None: none) runs now: a new cell; one skipped for want of
    its device, once the device is available (the row is replaced); and with --retry-failed one that failed."""
    if old is None:
        return True
    if old["status"] == "skipped":
        return available
    return config.retry_failed and old["status"] == "error"


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
        "episodes": proto.episodes if grid.episodes is None else grid.episodes,
        "seed": group["seed"],
        "train_pairs": grid.train_pairs,
        "git_hash": provenance.git_hash(),
        "torch_version": torch.__version__,
    }


def _pairs_text(asked: int, batch: int) -> str:
    """The training pairs a group trains, as its rows will record them: whole batches (train rounds up)."""
    if not asked:
        return "untrained"
    trained = math.ceil(asked / batch) * batch
    extra = f" ({asked:,} asked, whole batches of {batch})" if trained != asked else ""
    return f"{trained:,} training pairs{extra}"


def plan(config: RunConfig) -> str:
    """What `run` would do with this config (`run --dry-run`), one line per training group: its cells, budget,
    and whether config.out holds them already or a snapshot of its training. Reads, never writes."""
    from siamese_bench.cell import CellRunner

    path = config.out / "accuracy.csv"
    acc = Table(path, ACCURACY_COLUMNS, CELL_KEY) if path.is_file() else None
    snapshot_path = CellRunner(config).snapshot_path
    groups, lines, todo, total, skipped = expand(config), [], 0, 0, 0
    config_path = config.out / "config.json"
    if acc is not None:  # the checks a real run makes before it starts
        thr = Table(config.out / "throughput.csv", THROUGHPUT_COLUMNS, THROUGHPUT_KEY)
        doc = resume.recorded_config(config_path, (acc, thr))
        if doc is not None:
            resume.check_resumable(config, doc, acc, groups)
    if config.throughput_only:  # no cells: one throughput row per model and image size
        shapes = dict.fromkeys(
            (g["protocol"].name, g["backbone"], g["head"], g["device"], g["dtype"], g["unavailable"])
            for g in groups
        )
        for si, (proto, backbone, head, device, dtype, unavailable) in enumerate(shapes, 1):
            sizes = ", ".join(map(str, config.throughput_batch_sizes))
            state = f"skipped ({unavailable})" if unavailable else f"throughput at batch size(s) {sizes}"
            lines.append(f"[{si}/{len(shapes)}] {proto} {backbone}+{head} {device} {dtype}: {state}")
        lines.append(
            f"--throughput-only: {len(shapes)} model(s) x image size(s), no accuracy cells (rows already in "
            "throughput.csv are kept, failed ones too unless --retry-failed), into "
            f"{config.out}; nothing was written (--dry-run)"
        )
        return "\n".join(lines)
    for gi, g in enumerate(groups, 1):
        cells = g["cells"]
        rows = [acc.get(base_row(g, n, k)) if acc else None for n, k in cells]
        pending = sum(_to_run(r, config) for r in rows)
        failed = sum(r is not None and r["status"] == "error" and not _to_run(r, config) for r in rows)
        done = len(cells) - pending - failed
        total += len(cells)
        if g["unavailable"]:
            skipped += pending
        else:
            todo += pending
        what = ", ".join(f"{n}-way {k}-shot" for n, k in cells)
        if g["unavailable"]:
            state = f"skipped ({g['unavailable']})"
        else:
            state = (
                f"{done}/{len(cells)} done"
                + (f", {failed} failed (--retry-failed runs them again)" if failed else "")
                + (", training snapshot waiting" if snapshot_path(g).is_file() else "")
            )
        budget = _pairs_text(g["grid"].train_pairs, g["grid"].batch_size)
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


def run(config: RunConfig, print_summary: bool = True, advice: bool = True) -> int:
    """Run the grid (resuming into config.out) with config.threads torch threads, restored afterwards.
    `advice`: end with what to do next when nothing was run or cells failed (what `run` prints; `reproduce`,
    which gives its own verdicts, turns it off)."""
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, print_summary, advice)
    finally:
        torch.set_num_threads(threads)


def _run(config: RunConfig, print_summary: bool, advice: bool = True) -> int:
    from siamese_bench.cell import CellRunner
    from siamese_bench.protocols.published import published_lookup
    from siamese_bench.summary import write_summary

    start = time.perf_counter()
    allocator.keep_freed_memory()  # CPU steps stop page-faulting their buffers in again (bit-identical)
    config.out.mkdir(parents=True, exist_ok=True)
    with OutputLock(config.out):
        stale = remove_stale_temps(config.out)  # a killed run's half-written files (their targets are whole)
        if stale:
            names = ", ".join(str(p.relative_to(config.out)) for p in stale)
            _log(
                config,
                f"removed {len(stale)} temp file(s) of an interrupted write from {config.out}: {names}",
            )
        acc = Table(config.out / "accuracy.csv", ACCURACY_COLUMNS, CELL_KEY)
        thr = Table(config.out / "throughput.csv", THROUGHPUT_COLUMNS, THROUGHPUT_KEY)
        # config.json describes the run that wrote the rows: a resume that finds every cell done must not
        # replace the recorded git hash, hardware and wall time with its own
        config_path, wrote, failed = config.out / "config.json", 0, 0
        doc = resume.recorded_config(config_path, (acc, thr))
        fresh = doc is None  # no config.json, or an unreadable one, beside no rows: written anew
        earlier = [] if fresh else resume.earlier_runs(doc)
        started = provenance.timestamp()
        if fresh:
            write_json(config_path, resume.config_doc(config, None, [], started))
        groups = expand(config)
        if not fresh:
            resume.check_resumable(config, doc, acc, groups)
        runner = CellRunner(config)
        counts = {"wrote": 0}

        def record_interrupted(rows: int) -> None:
            """Record this run in config.json as interrupted after `rows` rows: before each row it writes (a
            run killed on the spot, by SIGKILL or a power cut, runs no handler but still has its rows'
            settings recorded) and on Ctrl-C or a crash."""
            wall = time.perf_counter() - start
            doc = resume.config_doc(config, wall, earlier, started, rows, interrupted=True)
            write_json(config_path, doc)

        try:
            _run_groups(
                config, groups, runner, acc, thr, counts, lambda: record_interrupted(counts["wrote"] + 1)
            )
        except BaseException:  # Ctrl-C or a crash: record the run that wrote rows, for the next resume
            if counts["wrote"]:
                record_interrupted(counts["wrote"])
            raise
        wall, wrote = time.perf_counter() - start, counts["wrote"]
        # every cell of this grid whose row is an error, whether it failed now or in an earlier run that this
        # one skipped (without --retry-failed): the folder is not complete, and the exit code says so
        failed = (
            0
            if config.throughput_only
            else sum(
                (acc.get(base_row(g, n, k)) or {}).get("status") == "error"
                for g in groups
                for n, k in g["cells"]
            )
        )
        # likewise every throughput row of this run's models and batch sizes that is an error
        failed_throughput = (
            sum((thr.get(key) or {}).get("status") == "error" for key in runner.throughput_keys())
            if config.throughput
            else 0
        )
        if wrote or fresh:
            write_json(config_path, resume.config_doc(config, wall, earlier, started, wrote))
        summary = write_summary(config.out, published_lookup())
    if print_summary and not config.quiet:
        print(summary.read_text())
    tables = (thr.path,) if config.throughput_only else (acc.path, thr.path)
    written = "".join(f"{p.name}, " for p in tables if p.is_file())  # --no-throughput: no throughput.csv
    _log(config, f"wrote {config.out}/{written}summary.md in {wall:.0f} s")
    failures = [
        f"{n} {what} failed: see the error column of {path}"
        for n, what, path in (
            (failed, "cell(s)", acc.path),
            (failed_throughput, "throughput measurement(s)", thr.path),
        )
        if n
    ]
    if advice and not wrote and not fresh and not failures and not config.quiet:
        print(
            f"nothing was run: every cell of this grid is already in {config.out} (written by the runs its "
            "config.json lists). To measure them on this machine, write to another folder (add e.g. --out "
            f"results/mine), or re-run and compare with `python -m siamese_bench reproduce {config.out}`",
            file=sys.stderr,
        )
    if failures and advice:
        instead = [
            text
            for n, text in (
                (
                    failed,
                    "a cell whose episodes its protocol cannot make, e.g. more ways than test classes, "
                    "needs other --ways or --shots",
                ),
                (
                    failed_throughput,
                    "a throughput measurement that cannot succeed as asked, e.g. of a backbone made for larger "
                    "images or at a batch size that does not fit in memory, needs other --backbones or "
                    "--throughput-batch-sizes",
                ),
            )
            if n
        ]
        print(
            "; ".join(failures) + f"; fix the cause and re-run with --retry-failed ({'; '.join(instead)} "
            "instead)",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _run_groups(
    config: RunConfig, groups: list[dict], runner, acc: Table, thr: Table, counts: dict, before_row
) -> None:
    """Run every group's missing cells (and then the throughput table), writing each row as it comes (after
    calling `before_row()`) and counting in `counts` the rows written ("wrote") as it goes, so that an
    interrupted run still knows what it wrote."""
    cells_total, done = sum(len(g["cells"]) for g in groups), 0
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
        available = not group["unavailable"]
        todo = [
            (n, k) for n, k in group["cells"] if _to_run(acc.get(base_row(group, n, k)), config, available)
        ]
        if not todo:
            done += len(group["cells"])
            what = f"skipped ({group['unavailable']})" if group["unavailable"] else "skipped"
            _log(config, f"{label}: {len(group['cells'])} cell(s) already in {acc.path.name}, {what}")
            if available:  # a run stopped between the group's last row and its snapshot's removal left it
                runner._drop_snapshot(group)
            if config.throughput and available:  # its throughput rows, unless measured: a resume after the
                runner.note_shape(group)  # cells but before (or during) the throughput table measures them
            continue
        if group["unavailable"]:
            for n, k in todo:
                before_row()
                acc.put(
                    {
                        **base_row(group, n, k),
                        "status": "skipped",
                        "error": group["unavailable"],
                        "timestamp": provenance.timestamp(),
                    }
                )
                counts["wrote"] += 1
            _log(config, f"{label}: skipped ({group['unavailable']})")
            continue
        _log(config, f"{label}: {len(todo)} cell(s) to run")
        for row in runner.run_group(group, todo):
            before_row()
            acc.put(row)
            done += 1
            counts["wrote"] += 1
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
            before_row()
            thr.put(trow)
            counts["wrote"] += 1
            _log(config, f"    {_throughput_text(trow)}")


def error_text(exc: BaseException) -> str:
    """One line for the CSV: the exception type and message. The traceback goes to stderr for an unexpected
    error; a ValueError names a problem with the cell's settings or data (e.g. more ways than test classes),
    whose traceback would only bury that line (SIAMESE_BENCH_DEBUG=1 prints it anyway)."""
    if not isinstance(exc, ValueError) or os.environ.get("SIAMESE_BENCH_DEBUG") == "1":
        traceback.print_exception(exc, file=sys.stderr)
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
