"""`python -m siamese_bench reproduce [results/<preset>]`: re-run a committed results directory and compare.

The recorded configuration (config.json) is run again into a fresh directory; then, cell by cell, an
accuracy reproduces when |new - recorded| <= the recorded 95% CI half-width, and the test episodes must be
bit-identical (same episodes hash). Throughput is reported as new / recorded, never pass/fail (it depends
on the machine). Exit code 1 when a cell does not reproduce or a recorded cell cannot be run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path

from siamese_bench.presets import recorded_grids
from siamese_bench.results import CELL_KEY, THROUGHPUT_KEY, key_of, rate_ratios, read_csv


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
    """Only the named cells: each argument, when given, keeps the grid entries it lists."""

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
            ways=keep(g.ways, ways) if g.ways is not None else g.ways,
        )
        if g2.protocols and g2.backbones and g2.heads and g2.seeds and (g2.ways is None or g2.ways):
            grids.append(g2)
    if not grids:
        raise ValueError("the restriction leaves no cell to reproduce; check the names against accuracy.csv")
    devs = keep(config.devices, None if devices is None else {*devices, *(d + "?" for d in devices)})
    return dataclasses.replace(config, grids=tuple(grids), devices=devs or config.devices)


def compare(
    recorded_dir: Path, new_dir: Path, cells: set | None = None, tolerance: float = 1.0
) -> tuple[list[list[str]], bool]:
    """(table rows, all reproduced) comparing recorded accuracy.csv rows with the new run's.

    A cell reproduces when its test episodes are identical and |new - recorded| <= tolerance * recorded CI;
    its verdict says "identical" when the accuracy is bit-for-bit the same (same CPU model and libraries).
    """
    new = {key_of(r, CELL_KEY): r for r in read_csv(Path(new_dir) / "accuracy.csv")}
    rows, ok_all = [], True
    for old in read_csv(Path(recorded_dir) / "accuracy.csv"):
        k = key_of(old, CELL_KEY)
        if cells is not None and k not in cells:
            continue
        if old["status"] == "skipped":
            continue
        label = f"{old['protocol']} {old['backbone']}+{old['head']} {old['device']} {old['n_way']}w{old['k_shot']}s seed {old['seed']}"
        r = new.get(k)
        if r is None or r["status"] != "ok":
            ok_all = False
            why = "not run" if r is None else f"{r['status']}: {r['error']}"
            rows.append([label, old["accuracy"], "–", "–", "–", f"FAIL ({why})"])
            continue
        a_old, a_new, ci = float(old["accuracy"]), float(r["accuracy"]), float(old["ci95"] or "nan")
        same_eps, identical = old["episodes_hash"] == r["episodes_hash"], a_new == a_old
        passed = same_eps and (identical or (not math.isnan(ci) and abs(a_new - a_old) <= tolerance * ci))
        ok_all &= passed
        if not same_eps:
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
                f"{100 * a_old:.2f}",
                f"{100 * a_new:.2f}",
                f"±{100 * ci:.2f}",
                f"{float(r['train_pairs_per_s']) / float(old['train_pairs_per_s']):.2f}x",
                verdict,
            ]
        )
    return rows, ok_all


def throughput_ratios(recorded_dir: Path, new_dir: Path) -> list[list[str]]:
    new = {key_of(r, THROUGHPUT_KEY): r for r in read_csv(Path(new_dir) / "throughput.csv")}
    out = []
    for old in read_csv(Path(recorded_dir) / "throughput.csv"):
        r = new.get(key_of(old, THROUGHPUT_KEY))
        if r is None or r["status"] != "ok" or old["status"] != "ok":
            continue
        out.append(
            [f"{old['backbone']}+{old['head']} {old['device']} b{old['batch_size']}", *rate_ratios(old, r)]
        )
    return out


def command(args) -> int:
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
    config = restrict(config, args.protocols, args.backbones, args.heads, args.devices, args.seeds, args.ways)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="siamese_bench_reproduce_"))
    config = dataclasses.replace(
        config,
        out=out,
        quiet=args.quiet,
        throughput=not args.no_throughput,
        data_dir=args.data_dir or config.data_dir,
    )
    runner.run(config, print_summary=False)
    print(hardware_line(args.results, out))
    if not config.throughput_only:
        cells = {key_of(base, CELL_KEY) for base in _cell_rows(config)}
        rows, ok = compare(args.results, out, cells, args.tolerance)
        print(
            markdown_table(
                ["cell", "recorded %", "now %", "recorded CI", "train speed now/recorded", "verdict"], rows
            )
        )
    thr = throughput_ratios(args.results, out) if config.throughput else []
    if thr:
        print()
        print(markdown_table(["throughput cell", "train pairs/s", "eval images/s", "eval episodes/s"], thr))
    if config.throughput_only:
        print(f"\nthroughput re-measured, as ratios new / recorded (never pass/fail); new run in {out}")
        return 0
    print(f"\n{'all cells reproduced' if ok else 'SOME CELLS DID NOT REPRODUCE'} (new run in {out})")
    if not ok:
        print(
            "Training repeats bit for bit only on the same CPU model with the same library versions (CUDA "
            "training is not bit-deterministic even on one GPU); elsewhere a cell moves by training noise, "
            "often several CIs (the CI covers the test episodes only). Compare the move with the 'seed std' "
            "column of the summary, or accept it with --tolerance K (K recorded CIs)."
        )
    return 0 if ok else 1


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
