"""`summary.md` (and `accuracy_vs_throughput.png`), generated from the CSVs of one results directory.

Never edit the output by hand: `python -m siamese_bench summarize DIR` regenerates it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch

from siamese_bench import stats
from siamese_bench.presets import Grid
from siamese_bench.results import atomic_write, atomic_write_text, file_stem, read_table

PER_EPISODE_DIR = "per_episode"


def _f(row: dict, key: str) -> float:
    try:
        return float(row.get(key, "") or "nan")
    except ValueError:
        return math.nan


def _pct(x: float, digits: int = 1) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.{digits}f}"


def _num(x: float, fmt: str) -> str:
    return "–" if math.isnan(x) else format(x, fmt)


def per_episode_path(out: Path, row: dict) -> Path:
    """Where the runner stores a cell's per-episode correctness (E, N*Q) bool tensor."""
    name = "_".join(
        str(row[k]) for k in ("protocol", "backbone", "head", "device", "dtype", "n_way", "k_shot", "seed")
    )
    return Path(out) / PER_EPISODE_DIR / file_stem(name, ".pt")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def accuracy_table(rows: list[dict], published: dict | None = None) -> str:
    """One line per (protocol, backbone, head, device, dtype, way, shot), seeds aggregated; rows of another
    protocol version or split hash are never aggregated together (the protocol column then names them)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    variants: dict[str, set] = defaultdict(set)
    for r in rows:
        if r["status"] == "ok":
            variant = (r.get("protocol_version", ""), r.get("split_hash", ""))
            variants[r["protocol"]].add(variant)
            k = (
                r["protocol"],
                r["backbone"],
                r["head"],
                r["device"],
                r["dtype"],
                int(r["n_way"]),
                int(r["k_shot"]),
                variant,
            )
            groups[k].append(r)
    out = []
    for k in sorted(groups):
        rs = groups[k]
        name = k[0]
        if len(variants[name]) > 1:
            name = f"{name} v{k[7][0]} (split {k[7][1]})"
        accs = [_f(r, "accuracy") for r in rs]
        mean = sum(accs) / len(accs)
        ci = sum(_f(r, "ci95") for r in rs) / len(rs)
        std = stats.across_seed_std(accs) if len(accs) > 1 else math.nan
        pub = (published or {}).get((rs[0]["protocol"], k[5], k[6]))
        line = [
            name,
            k[1],
            k[2],
            k[3] + ("" if k[4] == "float32" else f" ({k[4]})"),
            f"{k[5]}-way {k[6]}-shot",
            _pct(mean),
            _pct(ci),
            _pct(std),
            str(len(rs)),
            _pct(sum(_f(r, "verification_accuracy") for r in rs) / len(rs)),
            _num(sum(_f(r, "roc_auc") for r in rs) / len(rs), ".3f"),
            _num(sum(_f(r, "train_pairs_per_s") for r in rs) / len(rs), ".0f"),
        ]
        if published is not None:
            line += [
                f"{pub[0]:.1f} ({pub[1]})" if pub else "–",
                f"{100 * mean - pub[0]:+.1f}" if pub else "–",
            ]
        out.append(line)
    header = ["protocol", "backbone", "head", "device", "task", "accuracy %", "±95% CI", "seed std", "seeds"]
    header += ["verif. acc %", "ROC-AUC", "train pairs/s"]
    if published is not None:
        header += ["published % (source)", "delta"]
    return markdown_table(header, out)


def load_correct(path: Path) -> torch.Tensor:
    """A cell's per-episode correctness (an (episodes, queries) bool tensor) from `per_episode_path`; a file
    that is not one (cut short by a copy, overwritten) is a ValueError naming it and saying how to replace it."""
    try:
        correct = torch.load(path, map_location="cpu", weights_only=True)
        if not (isinstance(correct, torch.Tensor) and correct.dtype == torch.bool and correct.dim() == 2):
            raise ValueError(f"holds a {type(correct).__name__}, not an (episodes, queries) bool tensor")
    except Exception as err:  # torch's own message (zip archives, pickle advice) would not say which file
        raise ValueError(
            f"{path}: not a readable per-episode correctness file ({err}); delete it and re-run its cell (delete "
            f"the cell's row from {Path(path).parent.parent / 'accuracy.csv'} and run the same command into "
            "that folder again); without the file, compare leaves the cell out"
        ) from None
    return correct


def paired_test(path_a: Path, path_b: Path, n_boot: int = 2000) -> tuple[float, float, float, float, float]:
    """A - B from two cells' per-episode correctness files (same episodes): (mean accuracy difference, paired
    bootstrap 95% CI low, high, bootstrap p, McNemar p over queries)."""
    ca, cb = load_correct(path_a), load_correct(path_b)
    diff, lo, hi, p_boot = stats.paired_bootstrap(
        ca.float().mean(1), cb.float().mean(1), n_boot=n_boot, seed=0
    )
    _, p_mcn = stats.mcnemar(ca.flatten(), cb.flatten())
    return diff, lo, hi, p_boot, p_mcn


def paired_comparisons(out_dir: Path, rows: list[dict], n_boot: int = 2000) -> str:
    """Heads compared on the same episodes (same protocol, backbone, device, way, shot, seed)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["status"] == "ok":
            k = tuple(r[c] for c in ("protocol", "backbone", "device", "dtype", "n_way", "k_shot", "seed"))
            groups[k].append(r)
    lines = []
    for k in sorted(groups):
        rs = sorted(groups[k], key=lambda r: r["head"])
        for i, a in enumerate(rs):
            for b in rs[i + 1 :]:
                if a["episodes_hash"] != b["episodes_hash"] or int(a["episodes"]) < 2:
                    continue  # not the same episodes (or one episode, no interval): no paired comparison
                pa, pb = per_episode_path(out_dir, a), per_episode_path(out_dir, b)
                if not (pa.exists() and pb.exists()):
                    continue
                diff, lo, hi, p_boot, p_mcn = paired_test(pa, pb, n_boot)
                lines.append(
                    [
                        k[0],
                        k[1],
                        k[2],
                        f"{k[4]}-way {k[5]}-shot",
                        k[6],
                        f"{a['head']} − {b['head']}",
                        f"{100 * diff:+.1f}",
                        f"[{100 * lo:+.1f}, {100 * hi:+.1f}]",
                        stats.format_p(p_boot, n_boot),
                        stats.format_p(p_mcn),
                    ]
                )
    if not lines:
        return "_No pair of heads was scored on the same episodes._"
    header = [
        "protocol",
        "backbone",
        "device",
        "task",
        "seed",
        "heads",
        "Δ accuracy (pts)",
        "95% CI",
        "p (paired bootstrap)",
        "p (McNemar)",
    ]
    return markdown_table(header, lines)


def throughput_table(rows: list[dict]) -> str:
    out = []
    for r in sorted(rows, key=lambda r: (r["device"], r["backbone"], r["head"], int(r["batch_size"] or 0))):
        if r["status"] != "ok":
            continue
        mem = _f(r, "peak_memory_mb")
        out.append(
            [
                r["backbone"],
                r["head"],
                r["device"],
                r["dtype"],
                r["image_size"],
                r["batch_size"],
                _num(_f(r, "train_pairs_per_s"), ".0f"),
                f"{_f(r, 'eval_images_per_s'):.0f}",
                f"{_f(r, 'eval_episodes_per_s'):.1f}",
                "–" if math.isnan(mem) else f"{mem:.0f}",
            ]
        )
    header = [
        "backbone",
        "head",
        "device",
        "dtype",
        "image",
        "batch",
        "train pairs/s",
        "eval images/s",
        "eval 20w1s episodes/s",
        "peak MB",
    ]
    return markdown_table(header, out) if out else "_No throughput rows._"


def failures(rows: list[dict]) -> str:
    """Markdown bullets for the rows of accuracy.csv and throughput.csv that are not ok: the cell (protocol,
    model, device, episode shape) or the throughput measurement (model, device, dtype, image size, batch
    size), and the error."""
    bad = [r for r in rows if r["status"] != "ok"]
    if not bad:
        return "_None._"
    return "\n".join(f"- {r['status']}: {_failed_what(r)}: {r['error']}" for r in bad)


def _failed_what(row: dict) -> str:
    """What a row that is not ok stands for: a throughput row (it has a batch size) or an accuracy cell."""
    if "batch_size" in row:
        size = row["image_size"]
        return (
            f"throughput of {row['backbone']}+{row['head']} on {row['device']} {row['dtype']}, {size}x{size} "
            f"images, batch size {row['batch_size']}"
        )
    return f"{row['protocol']} {row['backbone']} {row['head']} {row['device']} {row['n_way']}-way {row['k_shot']}-shot"


def plot(out_dir: Path, rows: list[dict]) -> Path | None:
    """Accuracy against training throughput, one point per ok cell with a positive training throughput
    (untrained cells, e.g. --train-pairs 0 or the parameter-free pixels + l2/cosine baselines, have none and
    are left out; no plot when no cell remains). Needs the `plot` extra."""
    ok = [r for r in rows if r["status"] == "ok" and _f(r, "train_pairs_per_s") > 0]  # NaN > 0 is False
    if not ok:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in ok:
        x, y = _f(r, "train_pairs_per_s"), 100 * _f(r, "accuracy")
        ax.scatter(x, y, s=25)
        ax.annotate(f"{r['backbone']}+{r['head']} {r['n_way']}w{r['k_shot']}s", (x, y), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("training pairs / s (log)")
    ax.set_ylabel("one-shot accuracy (%)")
    ax.set_title("accuracy vs training throughput, one point per cell")
    ax.grid(alpha=0.3)
    path = Path(out_dir) / "accuracy_vs_throughput.png"
    try:
        fig.tight_layout()
        # atomically: an interrupted write leaves the old picture, and no temp file (or, killed on the spot,
        # one that `remove_stale_temps` recognises)
        atomic_write(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    finally:
        plt.close(fig)
    return path


def wall_text(cfg: dict) -> str:
    """The wall time, e.g. "123.4 s"; for a grid finished over several runs (resumed), e.g.
    "364.0 s over 2 runs (250.0 + 114.0 s)"."""
    runs = cfg.get("runs") or []
    if len(runs) < 2:
        return f"{cfg.get('wall_seconds', '?')} s"
    parts = " + ".join(f"{r['wall_seconds']}" for r in runs)
    return f"{cfg.get('wall_seconds_total', '?')} s over {len(runs)} runs ({parts} s)"


def _pairs_text(g: dict, rows: list[dict] | None) -> str:
    """The training pairs of a grid's cells as their rows record them (the budget rounded up to whole batches),
    e.g. "2,048 training pairs (2,000 asked, whole batches of 128)"; the asked budget alone without rows, or
    where the rows record it (parameter-free cells, which record 0, are not counted)."""
    asked, batch = g["train_pairs"], g["batch_size"]
    done = {
        int(_f(r, "train_pairs"))
        for r in rows or ()
        if r["status"] == "ok"
        and r["protocol"] in g["protocols"]
        and r["backbone"] in g["backbones"]
        and r["head"] in g["heads"]
        and int(r["seed"]) in g.get("seeds", ())
        and _f(r, "train_pairs") > 0  # NaN > 0 is False
    }
    if not done or done == {asked}:
        return f"{asked:,} training pairs"
    whole = f", whole batches of {batch}" if all(n % batch == 0 for n in done) else ""
    return f"{', '.join(f'{n:,}' for n in sorted(done))} training pairs ({asked:,} asked{whole})"


def _grid_line(g: dict, rows: list[dict] | None = None) -> str:
    cells = _cells_line(g)
    seeds = ", ".join(str(s) for s in g.get("seeds", ()))
    if not g.get("train_pairs"):
        return f"{cells}, seeds {seeds}: untrained (0 training pairs)"
    return (
        f"{cells}, seeds {seeds}: {_pairs_text(g, rows)}, batch {g['batch_size']}, "
        f"Adam lr {g['lr']:g}"
        + (", Koch distortions" if g.get("distort") else "")
        + f", validation every {g['val_every']:,} pairs on {g['val_episodes']} episodes"
    )


def _cells_line(g: dict) -> str:
    return f"{', '.join(g['protocols'])} x {', '.join(g['backbones'])} x {', '.join(g['heads'])}"


def settings_lines(cfg: dict, rows: list[dict] | None = None) -> list[str]:
    """Markdown bullets: the grids (cells and training settings) recorded in config.json, with the training
    pairs that `rows` (accuracy.csv's) record where those differ from the budget asked. A grid finished over
    several runs with different commands or grids lists each run's command and, where recorded, its grids
    (the latest command alone may not say how every cell was made). A throughput-only folder lists its cells
    (protocol x backbone x head) without training settings."""
    head, line = [], functools.partial(_grid_line, rows=rows)
    if cfg.get("throughput_only"):
        sizes = ", ".join(str(b) for b in cfg.get("throughput_batch_sizes", ()))
        head = [
            "- throughput only (`run --throughput-only`): no training or evaluation; synthetic images of each "
            f"protocol's image shape, training batches of {sizes} pairs"
        ]
        line = _cells_line
    runs = cfg.get("runs") or []
    if len({json.dumps([r.get("command"), r.get("grids")]) for r in runs}) < 2:
        lines = [f"  - {line(g)}" for g in cfg.get("grids", [])]
        return [*head, "- grids (config.json):", *lines] if lines else head
    lines = [*head, "- runs (config.json):"]
    for r in runs:
        lines.append(f"  - `{r.get('command', '?')}` at git `{r.get('git_hash', '?')}`")
        lines += [f"    - {line(g)}" for g in r.get("grids") or []]
    if not all(r.get("grids") for r in runs):
        lines.append("- grids of the latest run (config.json; earlier runs did not record theirs):")
        lines += [f"  - {line(g)}" for g in cfg.get("grids", [])]
    return lines


def own_images_lines(rows: list[dict]) -> list[str]:
    """Markdown bullets naming the images behind each folder:/csv: protocol of the rows (its name is the path
    as written on the command line): the folder or CSV file, the image size and the split hash (which digests
    the images), so that a summary says which images were benchmarked."""
    from siamese_bench.datasets.own import is_own

    seen: dict[str, tuple[str, str, set]] = {}
    for r in rows:
        if is_own(r["protocol"]) and r.get("split_hash"):
            seen.setdefault(r["protocol"], (r["dataset"], r["image_size"], set()))[2].add(r["split_hash"])
    return [
        f"- {name}: images {dataset} at {size}x{size}, split {', '.join(sorted(hashes))}"
        for name, (dataset, size, hashes) in sorted(seen.items())
    ]


# `run` flags that change a preset's grids: one per Grid field (--protocols ... --val-episodes, --distort),
# plus --datasets (protocols named by dataset) and --no-distort
GRID_FLAGS = frozenset(
    ["--datasets", "--no-distort", *("--" + f.name.replace("_", "-") for f in dataclasses.fields(Grid))]
)


def changed_by_flags(cfg: dict) -> bool:
    """Whether a recorded command of the folder (config.json's runs, else its environment) changed the
    preset's grids with flags: then the folder is not that preset's grid, though config.json names it."""
    commands = [r.get("command") or "" for r in cfg.get("runs") or []]
    commands.append(cfg.get("environment", {}).get("command") or "")
    return any(word.split("=")[0] in GRID_FLAGS for c in commands for word in c.split())


def preset_label(cfg: dict, name: str, quote: str = "") -> str:
    """What follows a results folder's name in a heading: the preset its grids came from (when that is
    another name) and whether flags changed them, e.g. " (preset `quick`, changed by flags)"."""
    preset, flags = cfg.get("preset"), "changed by flags" if changed_by_flags(cfg) else ""
    if preset not in (None, name):
        return f" (preset {quote}{preset}{quote}{', ' + flags if flags else ''})"
    return f" ({flags})" if flags else ""


def _title(out_dir: Path, cfg: dict) -> str:
    """The folder's name, and the preset its grid came from when that is another name (and flags changed)."""
    return out_dir.name + preset_label(cfg, out_dir.name)


def read_config(out_dir: Path) -> dict:
    """OUT_DIR/config.json ({} when there is none); one that is not a JSON object is a ValueError naming it."""
    path = Path(out_dir) / "config.json"
    if not path.exists():
        return {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(cfg, dict):
            raise ValueError(f"a JSON {type(cfg).__name__}, not an object")
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"{path} cannot be read ({e}); restore it (e.g. from git) or delete it") from None
    return cfg


def from_config(path: Path, make: Callable[..., list[str]], *args: object) -> list[str]:
    """make(*args), text made from the fields of config.json at `path`; a field of another shape than `run`
    writes (a hand edit, a file of another version) is a ValueError naming the file, not a traceback."""
    try:
        return make(*args)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"{path} has a field of another shape than `run` writes ({type(e).__name__}: {e}); restore it "
            "(e.g. from git) or delete it"
        ) from None


def gpu_text(env: dict) -> str:
    """The GPUs of an environment record: "GPUs: A, B", "no GPU", or "GPUs: ?" where it lacks them (no
    config.json)."""
    if "gpus" not in env:
        return "GPUs: ?"
    return f"GPUs: {', '.join(env['gpus'])}" if env["gpus"] else "no GPU"


def _header(out_dir: Path, cfg: dict, acc: list[dict]) -> list[str]:
    """summary.md's title and bullets: the command, environment, wall time and grids from config.json."""
    env = cfg.get("environment", {})
    return [
        f"# siamese_bench throughput: {out_dir.name}"
        if cfg.get("throughput_only")
        else f"# siamese_bench results: {_title(out_dir, cfg)}",
        "",
        "Generated by `python -m siamese_bench summarize` from the CSVs in this folder; do not edit.",
        "",
        f"- command: `{env.get('command', '?')}`",
        f"- git: `{env.get('git_hash', '?')}`; torch {env.get('torch', '?')}; python {env.get('python', '?')}",
        f"- hardware: {env.get('cpu', '?')} ({env.get('cpu_threads', '?')} threads); {gpu_text(env)}",
        f"- wall time: {wall_text(cfg)}",
        *settings_lines(cfg, acc),
    ]


def write_summary(out_dir: Path, published: dict | None = None) -> Path:
    out_dir = Path(out_dir)
    # read as a resume reads them: every row checked, a truncated last row left out with a warning
    acc, thr = read_table(out_dir, "accuracy.csv"), read_table(out_dir, "throughput.csv")
    cfg = read_config(out_dir)
    head = from_config(out_dir / "config.json", _header, out_dir, cfg, acc)
    png = plot(out_dir, acc)
    parts = [*head, *own_images_lines(acc), ""]
    if not cfg.get("throughput_only"):
        parts += [
            "## One-shot accuracy",
            "",
            "Mean over test episodes (95% CI = 1.96 standard errors over episodes, the normal approximation: "
            "over the 20 episodes of the lake-runs protocols a t interval would be 7% wider; with several seeds, "
            "the mean of the seeds' accuracies and the mean of their CIs; 'seed std' = standard deviation of "
            "the per-seed means). Verification accuracy and ROC-AUC are pair metrics on balanced "
            "held-out pairs, not one-shot accuracy.",
            "",
            accuracy_table(acc, published),
            "",
            "## Heads compared on the same episodes",
            "",
            paired_comparisons(out_dir, acc),
            "",
        ]
    parts += [
        "## Throughput",
        "",
        "Median of repeats after warm-up, device synchronised; pairs/s counts triplets for the triplet head. "
        "Episodes/s are drawn from a synthetic pool of 40 classes x 20 images (they share images: a larger "
        "test set runs slower). Peak memory is measured on CUDA only.",
        "",
        throughput_table(thr),
        "",
        "## Failed or skipped cells",
        "",
        failures(acc + thr),
        "",
    ]
    if png:
        parts += ["## Accuracy against throughput", "", f"![accuracy vs throughput]({png.name})", ""]
    path = out_dir / "summary.md"
    atomic_write_text(path, "\n".join(parts))
    return path
