"""Command line: `python -m siamese_bench {run,ls,data,evaluate,predict,reproduce,compare,readme,summarize}`.

Each subcommand parses its flags here and hands off to one module; errors a user can fix (missing data,
unknown names, impossible episodes, no CUDA) print one line that says what is wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path


def _csv(kind):
    def parse(text: str):
        try:
            # spaces around items are dropped ("koch, triplet"), and so are repeats (each cell runs once)
            return tuple(dict.fromkeys(kind(x.strip()) for x in text.split(",") if x.strip()))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__}, got {text!r}"
            ) from None

    return parse


def _protocols(text: str) -> tuple[str, ...]:
    """`run --protocols`: `_csv(str)`, and a clear error for a folder:/csv: path with a comma in it (commas
    separate the protocols: "folder:/a/cats,dogs" would be folder:/a/cats and a protocol named "dogs")."""
    from siamese_bench.datasets.own import is_own
    from siamese_bench.protocols import PROTOCOLS

    items = _csv(str)(text)
    for prev, item in zip(items, items[1:], strict=False):
        if is_own(prev) and not is_own(item) and item not in PROTOCOLS:
            raise argparse.ArgumentTypeError(
                f"{item!r} follows {prev!r}: commas separate protocols, so a path cannot contain one; if the "
                f"path is {prev},{item}, rename it or link it under a name without a comma (ln -s)"
            )
    return items


def _data_dir(text: str) -> Path | None:
    """--data-dir "" (e.g. an unset shell variable) means not given, as an empty $SIAMESE_BENCH_DATA does;
    Path("") would be the current directory."""
    return Path(text) if text else None


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=_data_dir,
        help="dataset directory (default: $SIAMESE_BENCH_DATA, else the checkout's data/ folder, or "
        "~/.cache/siamese_bench/data for an installed copy)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m siamese_bench",
        description="Benchmark Siamese networks for one-shot image recognition on MNIST and Omniglot.",
        epilog="Run `python -m siamese_bench COMMAND --help` for the options of one command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="train and evaluate a grid, write CSVs and summary.md (default: the quick preset)",
        description="Train and evaluate protocols x backbones x heads x devices x ways x shots x seeds. "
        "Each finished cell is written to OUT/accuracy.csv at once; re-running the same command resumes, "
        "skipping finished cells (a run that would train finished cells with other settings is refused) and "
        "continuing an interrupted training from its snapshot (--snapshot-every). Ctrl-C or SIGTERM (`kill`, "
        "`timeout`) stops it resumably (exit 130, or 143 for SIGTERM). "
        "--protocols/--backbones/--heads pick the preset's cells with those names (each keeping its grid's "
        "training settings); names the preset lacks replace those of every grid. Other flags override every "
        "grid.",
    )
    run.add_argument("--preset", default="quick", help="named grid (see `ls`; default: quick)")
    run.add_argument(
        "--protocols",
        type=_protocols,
        help="protocols, e.g. vinyals,mnist-heldout; folder:PATH[@SIZE] or csv:FILE[@SIZE] benchmarks your "
        "own images (PATH/<class>/<image>, or a CSV of path,label[,group] rows; resized to SIZE, default 28; "
        "pinned class split 60/20/20; default --out results/folder-<name> or results/csv-<name>)",
    )
    run.add_argument(
        "--datasets",
        type=_csv(str),
        help="datasets, each run with its protocol (`ls datasets` says which: mnist -> mnist-heldout, "
        "omniglot -> vinyals, digits -> digits-heldout, ...)",
    )
    run.add_argument("--backbones", type=_csv(str), help="e.g. small-cnn,conv4")
    run.add_argument("--heads", type=_csv(str), help="e.g. koch,contrastive,triplet")
    run.add_argument(
        "--devices",
        type=_csv(str),
        help="cpu,cuda (default: the preset's: cpu, plus cuda when present; paper: cuda; smoke: cpu)",
    )
    run.add_argument("--ways", type=_csv(int), help="N of N-way episodes, e.g. 5,20")
    run.add_argument("--shots", type=_csv(int), help="K of K-shot episodes, e.g. 1,5")
    run.add_argument(
        "--episodes",
        type=int,
        help="test episodes per cell, 2 to 1,000,000 (default: the preset's, else the protocol's 1000; the "
        "lake-runs protocols always score Lake's 20 official runs and ignore it)",
    )
    run.add_argument("--seeds", type=_csv(int), help="training and episode seeds, e.g. 0,1,2")
    run.add_argument(
        "--train-pairs",
        type=int,
        help="training budget in pairs (triplets for triplet heads); 0 = evaluate without training",
    )
    run.add_argument("--batch-size", type=int, help="training pairs per step")
    run.add_argument("--lr", type=float, help="learning rate")
    run.add_argument(
        "--val-every",
        type=int,
        metavar="N",
        help="validate every this many training pairs on episodes of the protocol's validation split, keeping "
        "the weights of the best check; 0 = once, after the last step (default: the preset's, e.g. 5000; "
        "paper: 50000 or 100000)",
    )
    run.add_argument(
        "--val-episodes",
        type=int,
        metavar="N",
        help="validation episodes per check (default: the preset's, e.g. 200; paper: 500)",
    )
    run.add_argument(
        "--distort",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Koch-style affine distortions while training (--no-distort turns off a preset's, e.g. paper's "
        "koch grid; default: as the preset says)",
    )
    run.add_argument(
        "--amp",
        choices=["none", "bf16"],
        default="none",
        help="bf16: autocast the training forward to bfloat16 (~2-3x faster on CPUs with AVX512-BF16/AMX; "
        "slower on other CPUs; on an H200 the launch-bound 28x28 small-cnn and conv4 steps gained nothing, and "
        "with --channels-last the ResNets trained 2.2-2.4x faster at batch 512: results/throughput-cuda-bf16); "
        "results rows say dtype bfloat16-amp",
    )
    run.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last (NHWC) memory format for model and inputs (faster convolutions on CPU and GPU)",
    )
    run.add_argument(
        "--forward-chunk",
        type=int,
        default=0,
        metavar="N",
        help="training forward in chunks of N images (e.g. 64: faster on CPUs, where a whole 2x128-image batch "
        "overflows the caches); backbones with BatchNorm ignore it (their batch statistics would change)",
    )
    run.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the backbone for training (the training pairs/s include the compilation; "
        "evaluation and throughput rows run it uncompiled)",
    )
    run.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads (default: torch's, one per core). CPU results depend on it: a run repeats bit "
        "for bit only with the same count (reproduce uses the recorded one); config.json records it, and a "
        "results folder keeps one count for its CPU cells",
    )
    run.add_argument(
        "--snapshot-every",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="save a training group's whole state under OUT/snapshots every SECONDS of training (default "
        "600; 0 = never): re-running an interrupted run continues that training where it stopped, with the "
        "same batches (on a CPU the same final weights); the snapshot goes when the group's rows are written",
    )
    run.add_argument("--no-throughput", action="store_true", help="skip the throughput table")
    run.add_argument(
        "--throughput-only",
        action="store_true",
        help="measure only the throughput table of the grid's backbone x head x device, on synthetic images "
        "of each protocol's image shape (as its dataset's loader declares it; your own images are loaded once to "
        "learn theirs): no data is read otherwise, no training and no "
        "evaluation, so accuracy.csv gets no rows",
    )
    run.add_argument(
        "--throughput-batch-sizes",
        type=_csv(int),
        metavar="B,...",
        help="training batch sizes (pairs) of the throughput table, e.g. 128,512 (default: the preset's)",
    )
    run.add_argument(
        "--checkpoints", action="store_true", help="save each trained model under OUT/checkpoints"
    )
    run.add_argument("--save-pairs", type=int, default=0, metavar="N", help="PNG grid of N evaluated pairs")
    run.add_argument("--offline", action="store_true", help="never download missing datasets; fail instead")
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="re-run cells and throughput measurements whose row says error (without it, they are kept)",
    )
    run.add_argument("--out", type=Path, help="output directory (default: results/<preset>/)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="list the training groups and cells this command would run (and which OUT already holds, or has "
        "a training snapshot of), then stop without writing anything",
    )
    _add_data_dir(run)

    ls = sub.add_parser("ls", help="list datasets, protocols, backbones, heads and presets")
    ls.add_argument(
        "kind",
        nargs="?",
        metavar="KIND",
        help="list only this kind: datasets, protocols, backbones, heads or presets (default: all of them)",
    )

    data = sub.add_parser("data", help="fetch or verify datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for name, text, what in (
        (
            "verify",
            "check the files: counts and checksums",
            "omniglot-vinyals and omniglot-mnist check the files they read); your own images as "
            "folder:PATH[@SIZE] or csv:FILE[@SIZE] (decoded, split and counted)",
        ),
        ("fetch", "download (online)", "omniglot-vinyals and omniglot-mnist fetch the files they read)"),
    ):
        p = dsub.add_parser(name, help=text)
        p.add_argument(
            "datasets", nargs="*", help=f"datasets, as `ls datasets` lists them (default: all; {what}"
        )
        _add_data_dir(p)

    ev = sub.add_parser("evaluate", help="evaluate a saved checkpoint on a protocol's test episodes")
    ev.add_argument(
        "--checkpoint", type=Path, required=True, help="a .pt file written by `run --checkpoints`"
    )
    ev.add_argument("--protocol", help="default: the protocol it was trained on")
    ev.add_argument(
        "--ways",
        type=_csv(int),
        help="N of N-way episodes, e.g. 5,20 (default: the run's, else the protocol's)",
    )
    ev.add_argument(
        "--shots",
        type=_csv(int),
        help="K of K-shot episodes, e.g. 1,5 (default: the run's, else the protocol's)",
    )
    ev.add_argument(
        "--episodes",
        type=int,
        help="test episodes per cell, 2 to 1,000,000 (default: the run's count for its own protocol's test "
        "part, else the protocol's)",
    )
    ev.add_argument(
        "--seed",
        type=int,
        help="seed of the test episodes (default: the checkpoint's seed, as its run drew them)",
    )
    ev.add_argument(
        "--part",
        default="test",
        help="the split part to draw episodes from: test (default: the benchmark's unseen classes), val or "
        "train; e.g. mnist-heldout's val part is digits 0-4 (the training digits) on the test file's images, "
        "so `--part val` against `--part test` separates learning the training classes from transfer",
    )
    ev.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    _add_data_dir(ev)

    pr = sub.add_parser("predict", help="nearest gallery class for each image (one-shot prediction)")
    pr.add_argument(
        "--checkpoint", type=Path, required=True, help="a .pt file written by `run --checkpoints`"
    )
    pr.add_argument(
        "--gallery", type=Path, required=True, help="folder of class folders (one or more images)"
    )
    pr.add_argument("images", nargs="+", type=Path, help="image files to classify")
    pr.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    pr.add_argument(
        "--invert", action="store_true", help="invert images (dark ink on white -> bright on dark)"
    )

    rp = sub.add_parser(
        "reproduce",
        help="re-run a committed results directory and compare cell by cell",
        description="Re-runs the configuration recorded in RESULTS/config.json into a fresh directory and "
        "compares: an accuracy reproduces when it lies within --tolerance times the recorded 95% CI and the "
        "test episodes are bit-identical; throughput is reported as a ratio. Exit 1 when a cell does not "
        "reproduce or cannot be re-run here (e.g. CUDA cells without a GPU: listed as 'not re-run'); cells "
        "recorded as 'skipped' hold no result: they are listed and leave the exit code alone. Ctrl-C (exit 130) "
        "or SIGTERM (exit 143) names the partial re-run's folder: --out that folder resumes it. It runs with the recorded torch thread count; on the recorder's CPU model and library versions "
        "CPU cells then repeat bit for bit "
        "('identical'); on other hardware they move by training noise.",
    )
    rp.add_argument(
        "results", type=Path, nargs="?", default=Path("results/quick"), help="default: results/quick"
    )
    rp.add_argument("--protocols", type=_csv(str), help="only these protocols")
    rp.add_argument("--backbones", type=_csv(str), help="only these backbones")
    rp.add_argument("--heads", type=_csv(str), help="only these heads")
    rp.add_argument("--devices", type=_csv(str), help="only these devices")
    rp.add_argument("--seeds", type=_csv(int), help="only these seeds")
    rp.add_argument("--ways", type=_csv(int), help="only these N-way settings")
    rp.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        metavar="K",
        help="accept |now - recorded| <= K recorded CIs (default 1; raise it on other hardware, whose "
        "training noise the CI does not cover)",
    )
    rp.add_argument("--no-throughput", action="store_true", help="skip the throughput comparison")
    rp.add_argument("--out", type=Path, help="where the new run goes (default: a temporary directory)")
    rp.add_argument("--quiet", action="store_true", help="no progress output")
    _add_data_dir(rp)

    cp = sub.add_parser(
        "compare",
        help="compare two results directories cell by cell on the same test episodes (paired tests)",
        description="Matches the cells of A and B (protocol, backbone, head, N-way, K-shot, seed, and device / "
        "dtype unless each directory has one that differs: then that is what is compared) that were scored on "
        "the same test episodes, and prints B - A per cell with a paired-bootstrap 95% CI and McNemar's test "
        "from the per-episode results both runs stored. E.g. `compare results/quick results/quick-cpu-bf16`.",
    )
    cp.add_argument("a", type=Path, metavar="A", help="results directory A (e.g. results/quick)")
    cp.add_argument("b", type=Path, metavar="B", help="results directory B (e.g. results/quick-cpu-bf16)")

    rd = sub.add_parser(
        "readme",
        help="regenerate the README's results section from results/*/accuracy.csv and throughput.csv",
    )
    rd.add_argument(
        "--check", action="store_true", help="exit 1 if the README is out of date, change nothing"
    )

    sm = sub.add_parser("summarize", help="regenerate summary.md from a results directory's CSVs")
    sm.add_argument(
        "out",
        type=Path,
        metavar="DIR",
        help="a results directory written by `run` (e.g. results/quick): its summary.md is rewritten from its "
        "accuracy.csv, throughput.csv and config.json",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from siamese_bench import commands
    from siamese_bench.protocols.folder import folder_protocol

    # your own images are listed (and their split pinned) afresh by each command: a script calling main()
    # again after editing a folder must not be served the protocol of the images as they were
    folder_protocol.cache_clear()
    stoppable = args.command in (
        "run",
        "reproduce",
    )  # SIGTERM stops them as Ctrl-C does: resumably, and said so
    previous = signal.signal(signal.SIGTERM, commands.terminate) if stoppable else None
    try:
        return getattr(commands, args.command)(args)
    except commands.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly, as other command-line tools do, and point stdout
        # at /dev/null so that flushing it at exit raises no second error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except KeyboardInterrupt as stop:  # Ctrl-C: 130; SIGTERM (run and reproduce only): 143
        if stoppable:
            print(
                "\ninterrupted: finished cells are saved, and so is the training in progress up to its last "
                "snapshot (OUT/snapshots/); re-run the same command to resume",
                file=sys.stderr,
            )
        else:  # files are written atomically: an interrupted write leaves the old file or none
            print(f"\ninterrupted: {args.command} stopped; no file is left half-written", file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    finally:
        if stoppable:
            signal.signal(signal.SIGTERM, previous)
