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
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from siamese_bench import allocator, provenance
from siamese_bench.presets import PRESETS, Grid, cell_settings, select_grids
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


def _recorded_config(config_path: Path, tables: tuple[Table, ...]) -> dict | None:
    """The config.json of a directory being resumed; None when it cannot be read but no table has rows (it is
    then written anew). Unreadable beside rows, it is a UserError: it records the settings those rows were
    made with, and without them a resume could silently mix rows of other settings into the table."""
    from siamese_bench.commands import UserError

    try:
        doc = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
        return doc
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        rows = sum(len(t.rows) for t in tables)
        if not rows:
            return None
        raise UserError(
            f"{config_path} cannot be read ({err}), and {config_path.parent} holds {rows} row(s) made with the "
            "settings it records, which a resume must compare with this run's; restore it (e.g. `git checkout "
            f"-- {config_path}` when it is committed), or move {config_path.parent} away or write this run "
            "to another --out directory"
        ) from None


def _check_same_kind(config: RunConfig, doc: dict, acc: Table) -> None:
    """Refuse a `--throughput-only` run into a directory of a full run and vice versa: config.json would then
    describe only the last kind, and the summary of a throughput-only table leaves accuracy rows out."""
    from siamese_bench.commands import UserError

    recorded = bool(doc.get("throughput_only", False))
    if recorded == config.throughput_only or not (acc.rows or recorded):
        return
    what = "a throughput-only table" if recorded else f"{len(acc.rows)} accuracy row(s) of a full run"
    raise UserError(
        f"{config.out} holds {what}; write this {'full' if recorded else 'throughput-only'} run to another "
        "--out directory"
    )


def _recorded_settings(doc: dict) -> dict[tuple, tuple]:
    """(protocol, backbone, head, device, dtype, seed) -> the `Grid.settings` it was run with, from config.json:
    each run's grids on that run's available devices and dtype (a run recorded without them: the top-level
    ones, the latest run's; without per-run grids: the top-level grids). A later run's settings win: a run
    writes a cell only where no finished row has other settings (`_check_resume_settings`), so a later run that
    differs replaced rows that were errors, skipped or absent. KeyError or TypeError: another version's."""
    return {key: settings for key, settings, _ in _recorded_cells(doc)}


def _recorded_cells(doc: dict) -> Iterator[tuple[tuple, tuple, int | None]]:
    """(cell key, Grid.settings, torch CPU threads) for every cell each run in config.json asked for, in run
    order (see `_recorded_settings`); threads None where the record does not say."""
    runs = doc.get("runs") or []
    if not (runs and all(r.get("grids") for r in runs)):
        runs = [{"grids": doc["grids"], "cpu_threads": _threads_of(doc)}]
    for run in runs:
        devices = run.get("devices") or [d.rstrip("?") for d in doc["devices"]]
        dtype = run.get("dtype") or _dtype_of(doc.get("amp", "none"))
        threads = _threads_of(run)
        grids = [Grid.from_json(g) for g in run["grids"]]
        for (protocol, backbone, head, seed), settings in cell_settings(grids, strict=False).items():
            for device in devices:
                yield (protocol, backbone, head, device, dtype, seed), settings, threads


def _threads_of(record: dict) -> int | None:
    """The torch CPU thread count of a config.json run entry (`cpu_threads`, or the count in its `machine`
    text, as entries written before `cpu_threads` have it) or of a whole config.json (its environment's)."""
    if record.get("cpu_threads") is not None:
        return int(record["cpu_threads"])
    found = re.search(r"\((\d+) threads\)", record.get("machine") or "")
    if found:
        return int(found.group(1))
    env = record.get("environment") or {}
    return None if env.get("cpu_threads") is None else int(env["cpu_threads"])


def _check_same_threads(config: RunConfig, doc: dict, acc: Table, groups: list[dict]) -> None:
    """Refuse to train CPU cells into a folder whose finished CPU cells were trained with another torch thread
    count: CPU results depend on it (a run repeats bit for bit only with the same count), and `reproduce`
    re-runs a folder with the one count config.json records."""
    from siamese_bench.commands import UserError

    now = config.threads or torch.get_num_threads()
    trains_cpu = any(
        g["device"] == "cpu"
        and not g["unavailable"]
        and any(_to_run(acc.get(base_row(g, n, k)), config) for n, k in g["cells"])
        for g in groups
    )
    if not trains_cpu:
        return
    try:
        recorded = {key: threads for key, _, threads in _recorded_cells(doc)}
    except (TypeError, KeyError, AttributeError):  # a config.json of another version
        return
    for row in acc.rows:
        if row["device"] != "cpu" or row["status"] != "ok":
            continue
        key = (row["protocol"], row["backbone"], row["head"], "cpu", row["dtype"], int(row["seed"]))
        then = recorded.get(key)
        if then is not None and then != now:
            raise UserError(
                f"{config.out} holds CPU cells trained with {then} torch thread(s) (e.g. "
                f"{'/'.join(map(str, key[:3]))} seed {key[5]}), and this run would train CPU cells with {now}: "
                "CPU results depend on the thread count, so the folder would mix them (and reproduce re-runs "
                f"it with one count). Add --threads {then}, or write this run to another --out directory"
            )


def _check_resume_settings(out: Path, doc: dict, groups: list[dict], done) -> None:
    """Refuse to resume into a directory whose finished cells were made with other training settings than this
    run asks for: re-running would skip them, and the table would silently answer a different question.
    done(group) says whether any cell of the group has a finished (status ok) row: error and skipped rows are
    re-run, so their settings do not matter. The recorded settings: `_recorded_settings` of config.json."""
    from siamese_bench.commands import UserError

    try:
        recorded = _recorded_settings(doc)
    except (TypeError, KeyError, AttributeError):  # a config.json of another version
        return
    for group in groups:
        name = (group["protocol"].name, group["backbone"], group["head"], group["seed"])
        key = (*name[:3], group["device"], group["dtype"], group["seed"])
        want = group["grid"].settings
        if key in recorded and recorded[key] != want and done(group):
            diff = ", ".join(
                f"{n} {a!r} (recorded) vs {b!r} (now)"
                for n, a, b in zip(Grid.SETTINGS, recorded[key], want, strict=True)
                if a != b
            )
            raise UserError(
                f"{out} already holds {'/'.join(map(str, name))} (protocol/backbone/head/seed) on "
                f"{group['device']} {group['dtype']} made with other settings: {diff}. Resuming would skip "
                "those cells; write this run to a new --out directory (or delete the folder to start over)"
            )


def _check_own_images_unchanged(out: Path, groups: list[dict], rows) -> None:
    """Refuse to resume a run on your own images (folder:/csv: protocols) when their split changed since its
    finished cells: images or classes were added, removed, renamed or edited (the split hash digests them).
    The finished cells would be kept and the new ones scored on other images, in one table. rows(group) gives the recorded rows of the group's cells (or None)."""
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
                f"then, {now} now: images or classes added, removed, renamed or edited); write this run to a new --out "
                "directory (or delete that folder to start over)"
            )


def config_from_args(args) -> RunConfig:
    """Resolve the preset and the CLI overrides into a RunConfig, validating every name up front."""
    from siamese_bench.backbones import BACKBONES
    from siamese_bench.commands import UserError
    from siamese_bench.heads import HEADS
    from siamese_bench.protocols import DATASET_PROTOCOL, get_protocol

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
        _check_numbers(g)
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
        extra = sorted(
            set(cell_settings(grids, strict=False)) - set(cell_settings(preset.grids, strict=False))
        )
        if extra:
            raise UserError(
                f"this run has cells that are not in the {args.preset} preset (e.g. "
                f"{'/'.join(map(str, extra[0]))}, protocol/backbone/head/seed), and without --out it would add "
                f"them to {out}, the preset's results folder; name a folder for them, e.g. --out results/mine"
            )
    _check_out(out)
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


def _check_numbers(g: Grid) -> None:
    """A UserError naming the flag for a value of a grid (after the flags were applied) that no run can use."""
    from siamese_bench.commands import UserError

    if not g.seeds:
        raise UserError("--seeds: give at least one seed, e.g. --seeds 0")
    for s in g.seeds:
        if s < 0:
            raise UserError(f"--seeds {s}: seeds must be >= 0")
    if g.episodes is not None and g.episodes < 2:
        raise UserError(
            f"--episodes {g.episodes}: must be >= 2, as the 95% CI is over episodes (omit it for the "
            "protocol's default)"
        )
    if g.train_pairs < 0:
        raise UserError(f"--train-pairs {g.train_pairs}: must be >= 0 (0 = evaluate without training)")
    if g.batch_size < 2 or g.batch_size % 2:
        raise UserError(
            f"--batch-size {g.batch_size}: must be even and >= 2 (half positive, half negative pairs)"
        )
    if not (math.isfinite(g.lr) and g.lr > 0):
        raise UserError(f"--lr {g.lr}: must be a finite number > 0, e.g. --lr 1e-3")


def _check_out(out: Path) -> None:
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
            below = "not a folder" if path == out else "so no folder can be made below it"
            raise UserError(f"--out {out}: {path} is a file, {below}; choose another --out folder")


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
    return _dtype_of(config.amp)


def _dtype_of(amp: str) -> str:
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


def plan(config: RunConfig) -> str:
    """What `run` would do with this config (`run --dry-run`), one line per training group: its cells, budget,
    and whether config.out holds them already or a snapshot of its training. Reads, never writes."""
    from siamese_bench.cell import CellRunner

    path = config.out / "accuracy.csv"
    acc = Table(path, ACCURACY_COLUMNS, CELL_KEY) if path.is_file() else None
    snapshot_path = CellRunner(config).snapshot_path
    groups, lines, todo, total, skipped = expand(config), [], 0, 0, 0
    config_path = config.out / "config.json"
    if acc is not None and config_path.exists():  # the checks a real run makes before it starts
        thr = Table(config.out / "throughput.csv", THROUGHPUT_COLUMNS, THROUGHPUT_KEY)
        doc = _recorded_config(config_path, (acc, thr))
        if doc is not None:
            _check_resumable(config, doc, acc, groups)
    for gi, g in enumerate(groups, 1):
        cells = g["cells"]
        pending = sum(_to_run(acc.get(base_row(g, n, k)) if acc else None, config) for n, k in cells)
        done = len(cells) - pending
        total += len(cells)
        if g["unavailable"]:
            skipped += pending
        else:
            todo += pending
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
        config_path, wrote, failed = config.out / "config.json", 0, 0
        doc = _recorded_config(config_path, (acc, thr)) if config_path.exists() else None
        fresh = doc is None  # no config.json, or an unreadable one beside no rows: written anew
        earlier = [] if fresh else _earlier_runs(doc)
        started = provenance.timestamp()
        if fresh:
            write_json(config_path, _config_doc(config, None, [], started))
        groups = expand(config)
        if not fresh:
            _check_resumable(config, doc, acc, groups)
            _check_own_images_unchanged(
                config.out, groups, lambda g: [acc.get(base_row(g, n, k)) for n, k in g["cells"]]
            )
        runner = CellRunner(config)
        counts = {"wrote": 0, "failed_throughput": 0}
        try:
            _run_groups(config, groups, runner, acc, thr, counts)
        except BaseException:  # Ctrl-C or a crash: record the run that wrote rows, for the next resume
            if counts["wrote"]:
                wall = time.perf_counter() - start
                doc = _config_doc(config, wall, earlier, started, counts["wrote"], interrupted=True)
                write_json(config_path, doc)
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
        if wrote or fresh:
            write_json(config_path, _config_doc(config, wall, earlier, started, wrote))
        summary = write_summary(config.out, published_lookup())
    if print_summary and not config.quiet:
        print(summary.read_text())
    written = "throughput.csv" if config.throughput_only else "accuracy.csv, throughput.csv"
    _log(config, f"wrote {config.out}/{written}, summary.md in {wall:.0f} s")
    if not wrote and not fresh and not failed and not config.quiet:
        print(
            f"nothing was run: every cell of this grid is already in {config.out} (written by the runs its "
            "config.json lists). To measure them on this machine, write to another folder (add e.g. --out "
            f"results/mine), or re-run and compare with `python -m siamese_bench reproduce {config.out}`",
            file=sys.stderr,
        )
    failures = [
        f"{n} {what} failed: see the error column of {path}"
        for n, what, path in (
            (failed, "cell(s)", acc.path),
            (counts["failed_throughput"], "throughput measurement(s)", thr.path),
        )
        if n
    ]
    if failures:
        print("; ".join(failures) + "; fix and re-run with --retry-failed", file=sys.stderr)
        return 1
    return 0


def _run_groups(config: RunConfig, groups: list[dict], runner, acc: Table, thr: Table, counts: dict) -> None:
    """Run every group's missing cells (and then the throughput table), writing each row as it comes and
    counting in `counts` the rows written ("wrote") and the throughput measurements that failed
    ("failed_throughput") as it goes, so that an interrupted run still knows what it wrote."""
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
                counts["wrote"] += 1
            _log(config, f"{label}: skipped ({group['unavailable']})")
            continue
        _log(config, f"{label}: {len(todo)} cell(s) to run")
        for row in runner.run_group(group, todo):
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
            thr.put(trow)
            counts["wrote"] += 1
            counts["failed_throughput"] += trow["status"] == "error"
            _log(config, f"    {_throughput_text(trow)}")


def _check_resumable(config: RunConfig, doc: dict, acc: Table, groups: list[dict]) -> None:
    """The checks of a run into a folder that already has a config.json (`doc`): same kind of run, and no
    finished cell recorded with other settings (`run` and `run --dry-run` alike)."""
    _check_same_kind(config, doc, acc)
    _check_resume_settings(config.out, doc, groups, lambda g: _finished(acc, g))
    _check_same_threads(config, doc, acc, groups)


def _finished(acc: Table, group: dict) -> bool:
    """Whether any cell of the group has a finished row (status ok) in the accuracy table."""
    rows = (acc.get(base_row(group, n, k)) for n, k in group["cells"])
    return any(r is not None and r["status"] == "ok" for r in rows)


def _config_doc(
    config: RunConfig,
    wall: float | None,
    earlier: list[dict],
    started: str,
    rows_written: int = 0,
    interrupted: bool = False,
) -> dict:
    """The resolved config and this run's environment, plus `runs`: one entry per run that wrote rows into
    this directory (a resumed grid keeps the provenance of its earlier parts; a run stopped by Ctrl-C or an
    error is marked `interrupted`, so that the next resume checks its rows' settings too), and their total
    wall time."""
    doc = dataclasses.asdict(config)
    out = config.out.resolve()
    doc["out"] = str(out.relative_to(REPO)) if out.is_relative_to(REPO) else str(out)
    doc["data_dir"] = str(config.data_dir) if config.data_dir else None
    env = provenance.environment()
    doc["environment"] = env
    doc["wall_seconds"] = None if wall is None else round(wall, 1)
    devices = [d for d, reason in _devices(config) if reason is None]
    this = _run_entry(env, started, rows_written, doc["wall_seconds"], doc["grids"], devices, _dtype(config))
    if interrupted:
        this["interrupted"] = True
    doc["runs"] = [*earlier, this] if wall is not None else list(earlier)
    walls = [r["wall_seconds"] for r in doc["runs"]]
    doc["wall_seconds_total"] = round(sum(walls), 1) if walls and None not in walls else None
    return doc


def _run_entry(
    env: dict,
    started: str | None,
    rows_written: int | None,
    wall: float | None,
    grids: list | None = None,
    devices: list[str] | None = None,
    dtype: str | None = None,
) -> dict:
    """One entry of config.json's `runs`, from a run's environment record, resolved grids (the cells and
    training settings that run asked for), the devices it had and its dtype (None for runs recorded before
    these were kept per run)."""
    gpus = env.get("gpus")
    return {
        "grids": grids,
        "devices": devices,
        "dtype": dtype,
        "started": started,
        "command": env.get("command"),
        "git_hash": env.get("git_hash"),
        "torch": env.get("torch"),
        "cpu_threads": env.get("cpu_threads"),
        "machine": f"{env.get('cpu')} ({env.get('cpu_threads')} threads)"
        + (f", GPUs: {', '.join(gpus)}" if gpus else ""),
        "rows_written": rows_written,
        "wall_seconds": wall,
    }


def _earlier_runs(doc: dict) -> list[dict]:
    """The `runs` recorded in an existing config.json; for one written before runs were recorded, a single
    entry rebuilt from its environment and wall time."""
    if "runs" in doc:
        return list(doc["runs"])
    if doc.get("wall_seconds") is None:
        return []
    return [_run_entry(doc.get("environment", {}), None, None, doc["wall_seconds"])]


def error_text(exc: BaseException) -> str:
    """One line for the CSV: the exception type and message. The traceback goes to stderr for an unexpected
    error; a ValueError names a problem with the cell's settings or data (e.g. more ways than test classes),
    whose traceback would only bury that line (SIAMESE_BENCH_DEBUG=1 prints it anyway)."""
    if not isinstance(exc, ValueError) or os.environ.get("SIAMESE_BENCH_DEBUG") == "1":
        traceback.print_exception(exc, file=sys.stderr)
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
