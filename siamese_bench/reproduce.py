"""`python -m siamese_bench reproduce [results/<preset>]`: re-run a committed results directory and compare.

The recorded configuration (config.json) is run again into a fresh directory (or `--out`), once per dtype the
recorded rows hold (float32, and bfloat16-amp via --amp bf16; config.json records only the last run's --amp; a
throughput-only folder is re-measured once per dtype its throughput table holds), on the devices the recorded
rows name; then, cell by cell, an accuracy reproduces when |new - recorded| <= --tolerance (default 1) times
the recorded 95% CI half-width, and the test episodes must be bit-identical (same episodes hash). Throughput
is reported as new / recorded, never pass/fail (it depends on the machine).

Every recorded cell that --protocols/--backbones/--heads/--devices/--seeds/--ways keep gets a verdict: one the
re-run could not make (a dtype reproduce cannot set, a device not available here, a cell outside the grids
config.json records) is listed as "not re-run" with the reason. A cell recorded as failed (status error)
reproduces when it fails with the same error again. A cell recorded as "skipped" (a device the recording
machine lacked) holds no result: it is listed as "skipped when recorded", nothing to re-run or compare.
The exit code says whether every recorded result was re-made and matched: 0 when every such cell reproduced
(skipped rows record no result, so they leave it alone); 1 when a cell does not reproduce or is not re-run
(a recorded result left unchecked, e.g. a CUDA cell without a GPU here); 2 (an error) when the restriction
keeps no recorded cell, or --out holds rows that no `reproduce` of this folder wrote; 130 when interrupted
by Ctrl-C, 143 by SIGTERM (`kill`, `timeout`): the partial re-run's folder is named, and `--out` that folder
resumes it (reproduce.json in it names the recorded folder, so that only its own re-run is resumed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
from pathlib import Path

from siamese_bench.presets import recorded_grids
from siamese_bench.results import (
    CELL_KEY,
    THROUGHPUT_KEY,
    key_of,
    rate_ratio,
    rate_ratios,
    read_table,
    write_json,
)

# verdicts no tolerance, nor training noise, explains: a cell scored on other episodes (or another split), one
# that fails now, or one recorded as failed that runs (or fails otherwise) now
NOT_NOISE = ("FAIL (split differs", "FAIL (episodes differ)", "FAIL (error", "FAIL (recorded as failed")


# In a re-run's folder: the recorded folder it re-runs (resolved), so that `--out` resumes only that re-run.
MARKER = "reproduce.json"

# The dtype column of a recorded row -> the `amp` setting that makes it again.
DTYPE_AMP = {"float32": "none", "bfloat16-amp": "bf16"}

# (accuracy.csv column, the `reproduce` option that restricts it, its name in messages)
RESTRICTIONS = (
    ("protocol", "--protocols", "protocols"),
    ("backbone", "--backbones", "backbones"),
    ("head", "--heads", "heads"),
    ("device", "--devices", "devices"),
    ("seed", "--seeds", "seeds"),
    ("n_way", "--ways", "N-ways"),
)


def load_config(results_dir: Path):
    """The RunConfig recorded in results_dir/config.json (with tuples restored)."""
    from siamese_bench.runner import RunConfig

    path = Path(results_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; point at a results directory written by `run` (e.g. results/quick)"
        )
    doc = json.loads(path.read_text())
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    kw = {k: v for k, v in doc.items() if k in fields}
    kw["grids"] = recorded_grids(doc)  # a grid finished over several runs: every run's grids
    for k in ("devices", "throughput_batch_sizes"):
        kw[k] = tuple(kw[k])
    kw["out"] = Path(kw["out"])
    kw["data_dir"] = Path(kw["data_dir"]) if kw.get("data_dir") else None
    if not kw.get("threads") and any(d.startswith("cpu") for d in kw["devices"]):
        # CPU numerics depend on the thread count: re-run with the recorder's (config.json from before
        # `--threads` existed records it only in the environment)
        kw["threads"] = doc.get("environment", {}).get("cpu_threads")
    return RunConfig(**kw)


def restrict(config, protocols=None, backbones=None, heads=None, devices=None, seeds=None, ways=None):
    """Only the named cells: each argument, when given, keeps the grid entries it lists. A device named in
    `devices` is then required (no "?": reported unavailable rather than silently left out). A grid that runs
    its protocols' own ways is split per protocol when `ways` is given, each keeping the wanted ones among its
    protocol's ways (so the re-run makes no cell the restriction leaves out)."""

    from siamese_bench.protocols import get_protocol

    def keep(values, wanted):
        return tuple(v for v in values if wanted is None or v in wanted)

    grids = []
    for g in config.grids:
        g2 = dataclasses.replace(
            g,
            protocols=keep(g.protocols, protocols),
            backbones=keep(g.backbones, backbones),
            heads=keep(g.heads, heads),
            seeds=keep(g.seeds, seeds),
        )
        if not (g2.protocols and g2.backbones and g2.heads and g2.seeds):
            continue
        if ways is None:
            grids.append(g2)
        elif g2.ways is not None:
            if listed := keep(g2.ways, ways):
                grids.append(dataclasses.replace(g2, ways=listed))
        else:  # the protocols' own ways: one grid per protocol, with the wanted ones among its ways
            for p in g2.protocols:
                own = keep(get_protocol(p).ways, ways)
                if own:
                    grids.append(dataclasses.replace(g2, protocols=(p,), ways=own))
    if not grids:
        raise ValueError("the restriction leaves no cell to reproduce; check the names against accuracy.csv")
    if devices is None:
        return dataclasses.replace(config, grids=tuple(grids))
    devs = tuple(d.rstrip("?") for d in keep(config.devices, {*devices, *(d + "?" for d in devices)}))
    if not devs:
        raise ValueError(
            f"--devices {','.join(devices)} leaves no recorded device; recorded devices: "
            f"{', '.join(config.devices)}"
        )
    return dataclasses.replace(config, grids=tuple(grids), devices=devs)


def recorded_rows(
    results_dir: Path, protocols=None, backbones=None, heads=None, devices=None, seeds=None, ways=None
) -> list[dict]:
    """The measured rows of results_dir/accuracy.csv (not the "skipped" ones) that the restriction keeps.

    ValueError when it keeps none, naming the option that emptied it and the values recorded there.
    """
    path = Path(results_dir) / "accuracy.csv"
    rows = [r for r in read_table(results_dir, "accuracy.csv") if r["status"] != "skipped"]
    if not rows:
        raise ValueError(
            f"{path} holds no measured cell (no rows, or only skipped ones): nothing to reproduce"
        )
    every, narrowed = rows, []
    given = (protocols, backbones, heads, devices, seeds, ways)
    for (column, flag, name), wanted in zip(RESTRICTIONS, given, strict=True):
        if wanted is None:
            continue
        names = [str(v).rstrip("?") for v in wanted]
        unknown = [n for n in names if n not in {r[column] for r in every}]
        if unknown:  # a typo among several names would otherwise silently drop its cells
            raise ValueError(
                f"{flag} {','.join(unknown)}: no recorded cell of {path} has "
                f"{'this' if len(unknown) == 1 else 'these'}; recorded {name}: {_values(every, column)}"
            )
        kept = [r for r in rows if r[column] in names]
        if not kept:
            among = f" (among the cells {', '.join(narrowed)} keep{'s' if len(narrowed) == 1 else ''})"
            raise ValueError(
                f"{flag} {','.join(names)} leaves no recorded cell of {path}; recorded {name}: "
                f"{_values(rows, column)}{among if narrowed else ''}"
            )
        rows, narrowed = kept, [*narrowed, flag]
    return rows


def skipped_rows(results_dir: Path, *which) -> list[dict]:
    """The rows of results_dir/accuracy.csv recorded as "skipped" (a device the recording machine lacked) that
    the restriction `which` (recorded_rows' protocols, ..., ways) keeps."""
    wanted = [None if w is None else {str(v).rstrip("?") for v in w} for w in which]
    return [
        r
        for r in read_table(results_dir, "accuracy.csv")
        if r["status"] == "skipped"
        and all(w is None or r[column] in w for (column, _, _), w in zip(RESTRICTIONS, wanted, strict=True))
    ]


def check_out(results: Path, out: Path) -> bool:
    """Refuse an --out whose rows no `reproduce` of `results` wrote: `results` itself (or a link to it), whose
    rows would be compared with themselves, or a folder of another run or of another folder's re-run, whose
    rows would be reported as re-run now. True when `out` holds an earlier (e.g. interrupted) re-run of
    `results`, which is resumed: its reproduce.json names `results`."""
    fix = "choose an empty or new --out (or none: a temporary folder)"
    if out.exists() and out.samefile(results):
        raise ValueError(
            f"--out {out} is the recorded folder {results} itself: its rows would be compared with themselves, "
            f"and nothing re-run; {fix}"
        )
    if not any((out / name).exists() for name in ("accuracy.csv", "throughput.csv", "config.json")):
        return False
    try:
        source = json.loads((out / MARKER).read_text()).get("source")
    except (OSError, ValueError, AttributeError):  # no reproduce.json (or not one reproduce wrote)
        source = None
    if source == str(Path(results).resolve()):
        return True
    if source:
        raise ValueError(f"--out {out} holds a re-run of {source}, not of {results}: {fix}")
    try:
        command = json.loads((out / "config.json").read_text())["environment"]["command"]
        made_by = f" (its config.json records `{command}`)"
    except (OSError, ValueError, KeyError, TypeError):
        made_by = ""
    raise ValueError(
        f"--out {out} holds rows no `reproduce` of {results} wrote{made_by}: they would be reported as re-run "
        f"now; {fix}"
    )


def _values(rows: list[dict], column: str) -> str:
    """The distinct values of `column` in `rows`, sorted (numbers by value), comma-separated."""
    return ", ".join(
        sorted({r[column] for r in rows}, key=lambda v: (0, int(v), "") if v.isdigit() else (1, 0, v))
    )


def reruns(config, rows: list[dict]) -> list:
    """The RunConfigs that make the recorded `rows` again: one per recorded dtype reproduce can set (amp from
    DTYPE_AMP), each restricted to the protocols, backbones, heads, seeds and N-ways of that dtype's rows and
    run on exactly their devices. Rows of another dtype, or outside config.json's grids, get no RunConfig."""
    out = []
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        if dtype not in DTYPE_AMP:
            continue
        mine = [r for r in rows if r["dtype"] == dtype]

        def values(column, mine=mine):
            return list(dict.fromkeys(r[column] for r in mine))

        try:
            sub = restrict(
                config,
                protocols=values("protocol"),
                backbones=values("backbone"),
                heads=values("head"),
                seeds={int(s) for s in values("seed")},
                ways={int(n) for n in values("n_way")},
            )
        except ValueError:  # none of them is in a recorded grid: compare lists them as not re-run
            continue
        out.append(dataclasses.replace(sub, amp=DTYPE_AMP[dtype], devices=tuple(values("device"))))
    return out


def compare(
    recorded_dir: Path,
    new_dir: Path,
    cells: set | None = None,
    tolerance: float = 1.0,
    planned: set | None = None,
) -> tuple[list[list[str]], bool]:
    """(table rows, all reproduced) comparing recorded accuracy.csv rows (those whose key is in `cells`, when
    given) with the new run's.

    A cell reproduces when its test episodes are identical and |new - recorded| <= tolerance * recorded CI;
    its verdict says "identical" when the accuracy is bit-for-bit the same (same CPU model and libraries), and
    "split differs" when the split hash changed (for your own images: they were edited since).
    A recorded cell the new run did not make is "not re-run (why)"; `planned`, the keys the re-run asked for,
    tells a cell outside config.json's grids from one the run left out. Either verdict makes "all" False.
    A cell recorded as failed reproduces when it fails with the same error; one recorded as skipped is listed
    ("skipped when recorded: nothing to compare") and leaves "all" alone: it holds no result.
    """
    from siamese_bench.datasets.own import is_own

    new = {key_of(r, CELL_KEY): r for r in read_table(new_dir, "accuracy.csv")}
    rows, ok_all = [], True
    for old in read_table(recorded_dir, "accuracy.csv"):
        k = key_of(old, CELL_KEY)
        if cells is not None and k not in cells:
            continue
        dtype = "" if old["dtype"] == "float32" else f" {old['dtype']}"
        label = (
            f"{old['protocol']} {old['backbone']}+{old['head']} {old['device']}{dtype} "
            f"{old['n_way']}w{old['k_shot']}s seed {old['seed']}"
        )
        if old["status"] == "skipped":  # a device the recording machine lacked: no result to re-run
            rows.append(
                [label, "–", "–", "–", "–", f"skipped when recorded ({old['error']}): nothing to compare"]
            )
            continue
        recorded = f"{100 * float(old['accuracy']):.2f}" if old["accuracy"] else "–"
        r = new.get(k)
        if old["status"] == "error" and r is not None and r["status"] != "skipped":
            if r["status"] == "ok":
                verdict = f"FAIL (recorded as failed: {old['error']}; runs now)"
            elif r["error"] == old["error"]:
                verdict = f"recorded as failed, and fails the same way now: {old['error']}"
            else:
                verdict = f"FAIL (recorded as failed: {old['error']}; fails otherwise now: {r['error']})"
            ok_all &= not verdict.startswith("FAIL")
            now = f"{100 * float(r['accuracy']):.2f}" if r["accuracy"] else "–"
            rows.append([label, recorded, now, "–", "–", verdict])
            continue
        if r is None or r["status"] != "ok":
            ok_all = False
            if r is None:
                verdict = f"not re-run ({_not_rerun_reason(old, planned)})"
            elif r["status"] == "skipped":  # the runner skips only a device it cannot use
                verdict = f"not re-run (device {old['device']}: {r['error']})"
            else:
                verdict = f"FAIL ({r['status']}: {r['error']})"
            rows.append([label, recorded, "–", "–", "–", verdict])
            continue
        a_old, a_new, ci = float(old["accuracy"]), float(r["accuracy"]), float(old["ci95"] or "nan")
        same_split = old["split_hash"] == r["split_hash"]
        same_eps, identical = same_split and old["episodes_hash"] == r["episodes_hash"], a_new == a_old
        passed = same_eps and (identical or (not math.isnan(ci) and abs(a_new - a_old) <= tolerance * ci))
        ok_all &= passed
        if not same_split:  # other classes or images: other episodes too
            changed = "; the images changed" if is_own(old["protocol"]) else ""
            verdict = f"FAIL (split differs: {old['split_hash']} recorded, {r['split_hash']} now{changed})"
        elif not same_eps:
            verdict = "FAIL (episodes differ)"
        elif identical:
            verdict = "identical"
        elif passed:
            verdict = "ok"
        else:
            verdict = f"FAIL ({abs(a_new - a_old) / ci:.1f} CIs off)" if ci > 0 else "FAIL (outside CI)"
        rows.append(
            [
                label,
                recorded,
                f"{100 * a_new:.2f}",
                f"±{100 * ci:.2f}",
                rate_ratio(old, r, "train_pairs_per_s"),
                verdict,
            ]
        )
    return rows, ok_all


def _not_rerun_reason(old: dict, planned: set | None) -> str:
    """Why the new run has no row for the recorded row `old`."""
    if old["dtype"] not in DTYPE_AMP:
        return (
            f"recorded with dtype {old['dtype']}, which reproduce cannot set; it re-runs "
            f"{' and '.join(DTYPE_AMP)} cells"
        )
    if planned is not None and key_of(old, CELL_KEY) not in planned:
        return (
            "its protocol/backbone/head/seed/N-way is in none of the grids config.json records; re-run it with "
            "`run` and check it with `compare`"
        )
    return "the new run has no row for it"


def verdict_line(rows: list[list[str]], out: Path) -> str:
    """The last line: "all cells reproduced", or how many did not reproduce and how many were not re-run; and
    how many were recorded as failed (and failed the same way again) or skipped when recorded."""

    def count(verdict: str) -> int:
        return sum(r[-1].startswith(verdict) for r in rows)

    fails, skipped, unrecorded = count("FAIL"), count("not re-run"), count("skipped when recorded")
    parts = [f"SOME CELLS DID NOT REPRODUCE ({fails} of {len(rows)})"] if fails else []
    if skipped:
        parts.append(f"{skipped} of {len(rows)} recorded cells not re-run (the verdicts say why)")
    if not parts:
        again = count("recorded as failed")
        parts.append(
            ("all measured cells reproduced" if unrecorded else "all cells reproduced")
            + (f" ({again} of them recorded as failed, failing the same way again)" if again else "")
        )
    if unrecorded:
        parts.append(
            f"{unrecorded} of {len(rows)} recorded cells skipped when recorded (no result to compare)"
        )
    return f"{'; '.join(parts)} (new run in {out})"


def throughput_ratios(recorded_dir: Path, new_dir: Path) -> list[list[str]]:
    new = {key_of(r, THROUGHPUT_KEY): r for r in read_table(new_dir, "throughput.csv")}
    out = []
    for old in read_table(recorded_dir, "throughput.csv"):
        r = new.get(key_of(old, THROUGHPUT_KEY))
        if r is None or r["status"] != "ok" or old["status"] != "ok":
            continue
        out.append(
            [f"{old['backbone']}+{old['head']} {old['device']} b{old['batch_size']}", *rate_ratios(old, r)]
        )
    return out


def command(args) -> int:
    """Re-run, compare and print; the exit code is the module docstring's (0, 1, or 130/143 when interrupted)."""
    from siamese_bench import runner
    from siamese_bench.summary import markdown_table

    if not args.tolerance >= 0:  # also refuses NaN
        raise ValueError(f"--tolerance is a number of CIs >= 0, got {args.tolerance}")
    config = load_config(args.results)
    if config.throughput_only and args.no_throughput:
        raise ValueError(
            f"{args.results} holds a throughput table only (run --throughput-only): with --no-throughput there "
            "is nothing to reproduce; drop --no-throughput"
        )
    which = (args.protocols, args.backbones, args.heads, args.devices, args.seeds, args.ways)
    skipped = []
    if config.throughput_only:  # one re-measurement per recorded dtype, as for cells
        rows, base = [], restrict(config, *which)
        recorded = read_table(args.results, "throughput.csv")
        dtypes = [d for d in dict.fromkeys(r["dtype"] for r in recorded) if d in DTYPE_AMP]
        plans = [dataclasses.replace(base, amp=DTYPE_AMP[d]) for d in dtypes] or [base]
    else:
        rows = recorded_rows(args.results, *which)
        if not args.no_throughput:  # a malformed throughput.csv is refused now, not after the re-run
            read_table(args.results, "throughput.csv")
        plans, skipped = reruns(config, rows), skipped_rows(args.results, *which)
    if args.out and check_out(args.results, Path(args.out)):
        print(
            f"resuming the re-run of {args.results} in {args.out}, which an earlier `reproduce` of it started "
            f"(the cells it holds are kept; delete {args.out} to start over)",
            file=sys.stderr,
        )
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="siamese_bench_reproduce_"))
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, {"source": str(Path(args.results).resolve())})
    plans = [
        dataclasses.replace(
            plan,
            out=out,
            quiet=args.quiet,
            throughput=not args.no_throughput,
            data_dir=args.data_dir or config.data_dir,
        )
        for plan in plans
    ]
    try:
        for plan in plans:
            runner.run(plan, print_summary=False, advice=False)  # the verdicts below say what happened
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (commands.Terminated, exit 143)
        print(interrupted_text(out, resumable=args.out is not None), file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    if plans:  # else every recorded cell is listed as not re-run, and nothing ran here
        print(hardware_line(args.results, out))
    if not config.throughput_only:
        planned = {key_of(base, CELL_KEY) for plan in plans for base in _cell_rows(plan)}
        cells = {key_of(r, CELL_KEY) for r in [*rows, *skipped]}
        table, ok = compare(args.results, out, cells, args.tolerance, planned)
        print(
            markdown_table(
                ["cell", "recorded %", "now %", "recorded CI", "train speed now/recorded", "verdict"], table
            )
        )
    thr = throughput_ratios(args.results, out) if not args.no_throughput else []
    if thr:
        print()
        print(markdown_table(["throughput cell", "train pairs/s", "eval images/s", "eval episodes/s"], thr))
    if config.throughput_only:
        print(f"\nthroughput re-measured, as ratios new / recorded (never pass/fail); new run in {out}")
        return 0
    print(f"\n{verdict_line(table, out)}")
    if any(r[-1].startswith("FAIL") and not r[-1].startswith(NOT_NOISE) for r in table):
        print(
            "Training repeats bit for bit only on the same CPU model with the same library versions (CUDA "
            "training is not bit-deterministic even on one GPU); elsewhere a cell moves by training noise, "
            "often several CIs (the CI covers the test episodes only). Compare the move with the 'seed std' "
            "column of the summary, or accept it with --tolerance K (K recorded CIs)."
        )
    return 0 if ok else 1


def interrupted_text(out: Path, resumable: bool) -> str:
    """What Ctrl-C prints: where the partial re-run is, and how to resume it (cells it finished are kept)."""
    if resumable:
        return (
            f"\ninterrupted: the partial re-run is in {out} (its finished cells are kept); re-run the same "
            "command to resume it, or delete that folder to start over"
        )
    return (
        f"\ninterrupted: the partial re-run is in {out}; a new `reproduce` starts over in a new temporary folder, "
        f"so add --out {out} to the same command to resume this one instead (or delete it)"
    )


def hardware_line(recorded_dir: Path, new_dir: Path) -> str:
    """Two lines naming the recorded and the current machine (CPU, GPUs, torch), from the two config.json."""

    def where(d: Path) -> str:
        path = Path(d) / "config.json"
        env = json.loads(path.read_text()).get("environment", {}) if path.is_file() else {}
        gpus = ", ".join(env.get("gpus") or []) or "no GPU"
        return f"{env.get('cpu', '?')}, {gpus}, torch {env.get('torch', '?')}"

    old, new = where(recorded_dir), where(new_dir)
    return (
        f"recorded on: {old}\nnow on:      {new}" + ("" if old == new else "  (a different machine)") + "\n"
    )


def _cell_rows(config):
    from siamese_bench.runner import base_row, expand

    for group in expand(config):
        for n, k in group["cells"]:
            yield base_row(group, n, k)
