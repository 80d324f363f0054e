"""`python -m siamese_bench compare A B`: two results directories, cell by cell, on the same test episodes.

For questions such as "does bfloat16 change the accuracy?" (results/quick against results/quick-cpu-bf16),
"CPU against CUDA" or "this commit against that one". Cells are matched on protocol, backbone, head, N-way,
K-shot and seed, plus device and dtype unless those are one fixed value in each directory that differs
between them (then they are what is compared). A matched pair counts only when its test episodes are the same
(equal `episodes_hash`); each is then tested with the per-episode correctness both runs stored
(per_episode/*.pt): the difference B - A in points with a paired-bootstrap 95% CI and p-value over episodes,
and McNemar's test over queries. These cover the test episodes only, not retraining noise: for that, compare
the differences with the `seed std` of a multi-seed run. Throughput rows that both directories measured (same
backbone, head, image size and batch size; device and dtype as above) are shown as B / A ratios.
"""

from __future__ import annotations

from pathlib import Path

from siamese_bench import stats
from siamese_bench.results import rate_ratios, read_table
from siamese_bench.summary import markdown_table, paired_test, per_episode_path

MATCH = ("protocol", "backbone", "head", "n_way", "k_shot", "seed")
VARYING = ("device", "dtype")


def _rows(directory: Path, table: str) -> list[dict]:
    """The status-ok rows of DIRECTORY/TABLE (none when the file is absent); a missing directory is an error."""
    if not (Path(directory) / "config.json").is_file():
        raise FileNotFoundError(
            f"{Path(directory) / 'config.json'} not found; point at a results directory written by `run`"
        )
    # read as `run` reads it: a hand-edited table is an error naming the file and line, not a KeyError
    return [r for r in read_table(directory, table) if r["status"] == "ok"]


def match_columns(a: list[dict], b: list[dict], base: tuple[str, ...] = MATCH) -> tuple[str, ...]:
    """`base` plus each of device / dtype except where each side has one value and the two differ."""
    extra = tuple(
        c
        for c in VARYING
        if not (len({r[c] for r in a}) == len({r[c] for r in b}) == 1 and a[0][c] != b[0][c])
    )
    return base + extra


def compare(dir_a: Path, dir_b: Path, n_boot: int = 2000) -> tuple[str, dict]:
    """(markdown report, counts) of B against A: accuracy cells (see the module docstring) and throughput rows
    (B / A ratios), each where both directories have such rows."""
    a, b = _rows(dir_a, "accuracy.csv"), _rows(dir_b, "accuracy.csv")
    ta, tb = _rows(dir_a, "throughput.csv"), _rows(dir_b, "throughput.csv")
    if not (a and b) and not (ta and tb):
        raise ValueError(f"{dir_a} and {dir_b} have no finished accuracy cells or throughput rows in common")

    def hashes(*tables: list[dict]) -> str:
        return ", ".join(sorted({r["git_hash"] for t in tables for r in t}))

    head = f"A = {dir_a} (git {hashes(a, ta)}), B = {dir_b} (git {hashes(b, tb)})."
    parts, counts = [head], {"compared": 0, "throughput_rows": 0}
    if a and b:
        text, counts = _accuracy(dir_a, dir_b, a, b, n_boot)
        parts += ["", "## Accuracy", "", text]
    if ta and tb:
        text, counts["throughput_rows"] = _throughput(ta, tb)
        parts += ["", "## Throughput", "", text]
    return "\n".join(parts), counts


def _throughput(a: list[dict], b: list[dict]) -> tuple[str, int]:
    """B / A for every throughput row both have (same backbone, head, image size, batch size and, unless that is
    what differs, device and dtype)."""
    cols = match_columns(a, b, ("backbone", "head", "image_size", "batch_size"))
    by_b = {tuple(r[c] for c in cols): r for r in b}
    lines = []
    for ra in a:
        rb = by_b.get(tuple(ra[c] for c in cols))
        if rb is None:
            continue
        lines.append(
            [
                f"{ra['backbone']}+{ra['head']}",
                f"{ra['image_size']}",
                f"{ra['batch_size']}",
                f"{ra['device']} {ra['dtype']}",
                f"{rb['device']} {rb['dtype']}",
                *rate_ratios(ra, rb),
            ]
        )
    if not lines:
        return f"No throughput row of A has one in B (matched on {', '.join(cols)}).", 0
    header = [
        "model",
        "image",
        "batch",
        "A",
        "B",
        "train pairs/s B/A",
        "eval images/s B/A",
        "eval episodes/s B/A",
    ]
    note = "Ratios of single measurements: read them against the run-to-run spread of the machine."
    return "\n".join([markdown_table(header, lines), "", note]), len(lines)


def _accuracy(dir_a: Path, dir_b: Path, a: list[dict], b: list[dict], n_boot: int) -> tuple[str, dict]:
    cols = match_columns(a, b)
    shows_sides = len(cols) < len(MATCH) + len(VARYING)  # device or dtype differs: show each side's
    by_b = {tuple(r[c] for c in cols): r for r in b}
    lines, diffs, other_episodes, missing, single = [], [], 0, 0, 0
    order = ("protocol", "backbone", "head", "device", "dtype", "n_way", "k_shot", "seed")
    for ra in sorted(
        a, key=lambda r: tuple(int(r[c]) if c in ("n_way", "k_shot", "seed") else r[c] for c in order)
    ):
        rb = by_b.get(tuple(ra[c] for c in cols))
        if rb is None:
            continue
        if ra["episodes_hash"] != rb["episodes_hash"]:
            other_episodes += 1
            continue
        if int(ra["episodes"]) < 2:  # one episode: no interval over episodes (`run` refuses --episodes 1)
            single += 1
            continue
        pa, pb = per_episode_path(dir_a, ra), per_episode_path(dir_b, rb)
        if not (pa.is_file() and pb.is_file()):
            missing += 1
            continue
        diff, lo, hi, p_boot, p_mcn = paired_test(pb, pa, n_boot)  # B - A
        diffs.append((diff, lo, hi))
        side = [f"{ra['device']} {ra['dtype']}", f"{rb['device']} {rb['dtype']}"] if shows_sides else []
        lines.append(
            [
                ra["protocol"],
                f"{ra['backbone']}+{ra['head']}",
                f"{ra['n_way']}-way {ra['k_shot']}-shot",
                str(ra["seed"]),
                *side,
                f"{100 * float(ra['accuracy']):.2f}",
                f"{100 * float(rb['accuracy']):.2f}",
                f"{100 * diff:+.2f}",
                f"[{100 * lo:+.2f}, {100 * hi:+.2f}]",
                stats.format_p(p_boot, n_boot),
                stats.format_p(p_mcn),
            ]
        )
    counts = {
        "throughput_rows": 0,
        "compared": len(lines),
        "b_higher": sum(lo > 0 for _, lo, _ in diffs),
        "b_lower": sum(hi < 0 for _, _, hi in diffs),
        "other_episodes": other_episodes,
        "missing_per_episode": missing,
        "single_episode": single,
    }
    notes = (
        [f"{other_episodes} matched cell(s) left out: scored on other episodes."] if other_episodes else []
    )
    notes += [f"{missing} matched cell(s) left out: per_episode/*.pt missing on one side."] if missing else []
    notes += [f"{single} matched cell(s) left out: one test episode, no interval."] if single else []
    if not lines:
        what = (
            "No matched cell of A and B could be compared"
            if missing or single
            else "No cell of A and B was scored on the same episodes"
            if other_episodes
            else "No cell of A has one in B"
        )
        return "\n".join([f"{what} (matched on {', '.join(cols)}).", *notes]), counts
    header = ["protocol", "model", "task", "seed"]
    header += ["A", "B"] if shows_sides else []
    header += ["A %", "B %", "B − A (pts)", "95% CI", "p (paired bootstrap)", "p (McNemar)"]
    mean = 100 * sum(d for d, _, _ in diffs) / len(diffs)
    text = [
        f"Cells matched on {', '.join(cols)}, same test episodes in each pair.",
        "",
        markdown_table(header, lines),
        "",
        f"{counts['compared']} cell(s) compared; mean B − A {mean:+.2f} points; the 95% CI excludes 0 in "
        f"{counts['b_higher']} (B higher) and {counts['b_lower']} (B lower). The CIs and p-values cover the test "
        "episodes only (not retraining noise), and are not corrected for testing many cells.",
    ]
    return "\n".join([*text, *notes]), counts


def command(args) -> int:
    report, _ = compare(Path(args.a), Path(args.b))
    print(report)
    return 0
