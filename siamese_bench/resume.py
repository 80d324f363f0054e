"""config.json, the record of the runs that wrote a results folder, and the checks that a run may resume into
that folder (`run` and `run --dry-run` alike).

config.json holds the resolved RunConfig of the latest run, its environment (git hash, library versions,
hardware), and `runs`: one entry per run that wrote rows (its grids, devices, dtype, torch CPU threads,
command, wall time; `interrupted` when Ctrl-C, an error or a kill stopped it: a run is recorded so before
each row it writes). A resume is refused, before anything runs, when it would mix rows of another kind of run
(throughput-only vs full) or of another --channels-last, --forward-chunk or --compile, skip finished cells made
with other training settings or train other ways and shots of their model with other settings, train CPU cells
with another torch thread count beside finished ones, or score your own images after they changed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from siamese_bench import provenance
from siamese_bench.presets import Grid, cell_settings
from siamese_bench.results import Table

if TYPE_CHECKING:
    from siamese_bench.runner import RunConfig


def recorded_config(config_path: Path, tables: tuple[Table, ...]) -> dict | None:
    """The config.json of a directory being resumed; None when it is missing or cannot be read but no table has
    rows (it is then written anew). Missing or unreadable beside rows, it is a UserError: it records the settings those rows were
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
        problem = "is missing" if isinstance(err, FileNotFoundError) else f"cannot be read ({err})"
        raise UserError(
            f"{config_path} {problem}, and {config_path.parent} holds {rows} row(s) made with the "
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


def _check_same_execution(config: RunConfig, doc: dict, acc: Table) -> None:
    """Refuse to add rows to a folder whose rows were made with another --channels-last, --forward-chunk or
    --compile (config.json's top level; not recorded per run): its rows would mix numerics and speeds that no
    column tells apart, and `reproduce` re-runs a folder with the recorded values."""
    from siamese_bench.commands import UserError

    if not (acc.rows or doc.get("throughput_only")):
        return
    flags = {
        "channels_last": lambda v: "--channels-last" if v else "no --channels-last (NCHW)",
        "forward_chunk": lambda v: f"--forward-chunk {v}" if v else "no --forward-chunk",
        "compile": lambda v: "--compile" if v else "no --compile",
    }
    # absent or null in an older config.json: the default
    default = {"channels_last": False, "forward_chunk": 0, "compile": False}
    recorded = {k: doc.get(k) or default[k] for k in flags}
    diff = [
        (flags[k](recorded[k]), flags[k](getattr(config, k)))
        for k in flags
        if recorded[k] != getattr(config, k)
    ]
    if diff:
        raise UserError(
            f"{config.out} holds rows made with {', '.join(old for old, _ in diff)}, and this run asks for "
            f"{', '.join(new for _, new in diff)}; a folder keeps one setting of these, so that its rows compare "
            "and `reproduce` repeats them: run with the folder's, or write this run to another --out directory"
        )


def _recorded_cells(doc: dict) -> Iterator[tuple[tuple, tuple, int | None]]:
    """(cell key, Grid.settings, torch CPU threads) for every cell each run in config.json asked for: the key
    (protocol, backbone, head, device, dtype, seed), each run's grids on that run's available devices and dtype
    (a run recorded without them: the top-level ones, the latest run's; without per-run grids: the top-level
    grids); threads None where the record does not say. In run order, so that in a dict a later run's entry
    wins: a run writes a cell only where no finished row has other settings (`_check_resume_settings`), so a
    later run that differs replaced rows that were errors, skipped or absent. KeyError or TypeError: a
    config.json of another version."""
    from siamese_bench.runner import dtype_of

    runs = doc.get("runs") or []
    if not (runs and all(r.get("grids") for r in runs)):
        runs = [{"grids": doc["grids"], "cpu_threads": _threads_of(doc)}]
    for run in runs:
        devices = run.get("devices") or [d.rstrip("?") for d in doc["devices"]]
        dtype = run.get("dtype") or dtype_of(doc.get("amp", "none"))
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


def _check_same_threads(config: RunConfig, recorded: dict, acc: Table, groups: list[dict]) -> None:
    """Refuse to train CPU cells into a folder whose finished CPU cells were trained with another torch thread
    count (`recorded`: cell key -> threads): CPU results depend on it (a run repeats bit for bit only with the
    same count), and `reproduce` re-runs a folder with the one count config.json records."""
    from siamese_bench.commands import UserError
    from siamese_bench.runner import _to_run, base_row

    now = config.threads or torch.get_num_threads()
    trains_cpu = any(
        g["device"] == "cpu"
        and not g["unavailable"]
        and any(_to_run(acc.get(base_row(g, n, k)), config) for n, k in g["cells"])
        for g in groups
    )
    if not trains_cpu:
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


def _check_resume_settings(out: Path, recorded: dict, groups: list[dict], finished: set[tuple]) -> None:
    """Refuse to resume into a directory whose finished cells were made with other training settings than this
    run asks for (`recorded`: cell key -> Grid.settings; `finished`: the cell keys, seed as text, with a
    finished (status ok) row of any N-way K-shot): re-running would skip them, or train the group's other
    ways and shots with other settings beside them, and the table would silently answer a different question
    (and config.json would record this run's settings for the finished rows too). Error and skipped rows are
    re-run, so their settings do not matter. Also refused: a new seed of a protocol/backbone/head/device/dtype
    whose other seeds finished with other settings: the summary would average them as if they were seeds of
    one setting."""
    from siamese_bench.commands import UserError

    for group in groups:
        name = (group["protocol"].name, group["backbone"], group["head"], group["seed"])
        key = (*name[:3], group["device"], group["dtype"], group["seed"])
        want = group["grid"].settings
        if key in recorded and recorded[key] != want and (*key[:5], str(key[5])) in finished:
            raise UserError(
                f"{out} already holds {'/'.join(map(str, name))} (protocol/backbone/head/seed) on "
                f"{group['device']} {group['dtype']} made with other settings: {_diff(recorded[key], want)}. "
                "Resuming would skip those cells, or put cells of other settings beside them; run with the "
                "recorded settings, or write this run to a new --out directory (or delete the folder to start "
                "over)"
            )
        others = sorted(
            (k[-1], settings)
            for k, settings in recorded.items()
            if k[:5] == key[:5] and k[-1] != key[-1] and settings != want and (*k[:5], str(k[-1])) in finished
        )
        if others:
            seed, settings = others[0]
            raise UserError(
                f"{out} holds {'/'.join(map(str, name[:3]))} (protocol/backbone/head) on {group['device']} "
                f"{group['dtype']} seed {seed} made with other settings than this run's seed {group['seed']}: "
                f"{_diff(settings, want)}. The summary would average the two as seeds of one setting; run this "
                f"seed with the recorded settings, or write this run to a new --out directory"
            )


def _diff(recorded: tuple, want: tuple) -> str:
    """The Grid.SETTINGS that differ, e.g. "lr 0.001 (recorded) vs 0.01 (now)"."""
    return ", ".join(
        f"{n} {a!r} (recorded) vs {b!r} (now)"
        for n, a, b in zip(Grid.SETTINGS, recorded, want, strict=True)
        if a != b
    )


def _check_own_images_unchanged(out: Path, groups: list[dict], recorded: list[dict]) -> None:
    """Refuse to resume a run on your own images (folder:/csv: protocols) when their split changed since its
    finished cells: images or classes were added, removed, renamed or edited, or another siamese_bench decodes
    them differently (the split hash digests them and the decoder's version).
    The finished cells would be kept and the new ones scored on other images, in one table; so any recorded
    row of the protocol counts, also one of a cell this run does not make (another head or backbone)."""
    from siamese_bench.commands import UserError
    from siamese_bench.datasets.own import is_own

    for group in groups:
        proto = group["protocol"]
        if not is_own(proto.name):
            continue
        now = proto.split({}, None).hash
        # its rows, however its path was written then (folder:./faces, folder:faces/): the same resolved folder
        # (CSV file) at the same size
        images = (proto.dataset, str(proto.image_size))
        old = {
            r["split_hash"]
            for r in recorded
            if r.get("split_hash")
            and (r["protocol"] == proto.name or (r.get("dataset"), str(r.get("image_size"))) == images)
        }
        if old - {now}:
            raise UserError(
                f"the images of {proto.name} changed since {out} was written (split {', '.join(sorted(old))} "
                f"then, {now} now: images or classes added, removed, renamed or edited, or decoded differently by "
                "another siamese_bench version); write this run to a new --out "
                "directory (or delete that folder to start over)"
            )


def check_resumable(config: RunConfig, doc: dict, acc: Table, groups: list[dict]) -> None:
    """The checks of a run into a folder that already has a config.json (`doc`): same kind of run, no
    finished cell recorded with other settings or another CPU thread count, your own images unchanged (`run`
    and `run --dry-run` alike); a UserError naming the problem otherwise."""
    try:
        cells = list(_recorded_cells(doc))
    except (TypeError, KeyError, AttributeError):  # a config.json of another version: nothing to compare
        cells = []
    _check_same_kind(config, doc, acc)
    _check_same_execution(config, doc, acc)
    finished = {
        tuple(r[c] for c in ("protocol", "backbone", "head", "device", "dtype", "seed"))
        for r in acc.rows
        if r["status"] == "ok"
    }
    _check_resume_settings(config.out, {key: settings for key, settings, _ in cells}, groups, finished)
    _check_same_threads(config, {key: threads for key, _, threads in cells}, acc, groups)
    _check_own_images_unchanged(config.out, groups, acc.rows)


def config_doc(
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
    from siamese_bench.runner import REPO, _devices, _dtype

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


def earlier_runs(doc: dict) -> list[dict]:
    """The `runs` recorded in an existing config.json; for one written before runs were recorded, a single
    entry rebuilt from its environment and wall time."""
    if "runs" in doc:
        return list(doc["runs"])
    if doc.get("wall_seconds") is None:
        return []
    return [_run_entry(doc.get("environment", {}), None, None, doc["wall_seconds"])]
