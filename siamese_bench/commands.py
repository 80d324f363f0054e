"""The subcommands behind the CLI; each takes the parsed argparse namespace and returns an exit code."""

from __future__ import annotations

import errno
import inspect
import os
import sys
from pathlib import Path

from siamese_bench.registry import UnknownNameError


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message (no traceback) and exits with 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a job scheduler) during `run` or `reproduce`: they stop as on Ctrl-C (finished
    cells kept, how to resume printed), with exit code 143 (128 + SIGTERM) instead of Ctrl-C's 130."""

    exit_code = 143


def terminate(signum, frame) -> None:
    """The SIGTERM handler the CLI installs for `run` and `reproduce`."""
    raise Terminated


def _user_errors():
    from siamese_bench.datasets.store import DatasetMissingError, DownloadError

    return (UserError, UnknownNameError, DatasetMissingError, DownloadError, FileNotFoundError, ValueError)


# a file that cannot be written or read for want of room or permission: the user's to fix, not a bug
_ROOM_OR_PERMISSION = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


def _guard(fn):
    """Turn fixable errors into UserError, unless SIAMESE_BENCH_DEBUG=1 asks for the traceback."""

    def wrapped(args):
        try:
            return fn(args)
        except _user_errors() as e:
            if os.environ.get("SIAMESE_BENCH_DEBUG") == "1" or isinstance(e, UserError):
                raise
            raise UserError(str(e)) from e
        except OSError as e:
            if os.environ.get("SIAMESE_BENCH_DEBUG") == "1" or e.errno not in _ROOM_OR_PERMISSION:
                raise
            raise UserError(
                f"{e.strerror}: {e.filename or '(no file named)'}; make room or fix the permissions (or choose "
                "another --out / --data-dir), then run the command again (a run resumes, keeping the rows it "
                "wrote)"
            ) from e

    wrapped.__doc__ = fn.__doc__
    return wrapped


def _results_dir(path: Path, flag: str) -> Path:
    """`path`, or a UserError naming the checkout's folder of that name when `path` is relative, missing here
    and there: `run` writes under the checkout's results/ wherever it is started, so `reproduce` (whose
    default is results/quick), `compare` and `summarize` started elsewhere would otherwise just say "not
    found"."""
    from siamese_bench.runner import results_root

    path = Path(path)
    there = results_root().parent / path
    if not path.is_absolute() and not path.exists() and there.is_dir() and there.resolve() != path.resolve():
        raise UserError(
            f"{flag}{path} is not in the current directory ({Path.cwd()}), but `run` writes its results under "
            f"{results_root()}: give {there}, or start the command in {results_root().parent}"
        )
    return path


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc or "").partition("\n")[0]


def listing() -> dict[str, list[str]]:
    from siamese_bench.backbones import BACKBONES
    from siamese_bench.datasets import ABOUT
    from siamese_bench.heads import HEADS
    from siamese_bench.presets import PRESETS
    from siamese_bench.protocols import PROTOCOLS

    return {
        "datasets": list(ABOUT),
        "protocols": PROTOCOLS.names(),
        "backbones": BACKBONES.names(),
        "heads": HEADS.names(),
        "presets": PRESETS.names(),
    }


@_guard
def ls(args) -> int:
    from siamese_bench.backbones import BACKBONES
    from siamese_bench.datasets import ABOUT
    from siamese_bench.heads import HEADS
    from siamese_bench.presets import PRESETS
    from siamese_bench.protocols import DATASET_PROTOCOL, PROTOCOLS

    kinds = listing()
    if args.kind:
        if args.kind not in kinds:
            raise UserError(f"unknown kind {args.kind!r}; valid kinds: {', '.join(kinds)}")
        kinds = {args.kind: kinds[args.kind]}
    for kind, names in kinds.items():
        print(f"{kind}:")
        for name in names:
            detail = ""
            if kind == "datasets":
                what, checks = ABOUT[name]
                detail = (
                    f"{what}; files: `data verify {' '.join(checks)}`; "
                    f"`run --datasets {name}` runs {DATASET_PROTOCOL[name]}"
                )
            elif kind == "protocols":
                p = PROTOCOLS.get(name)
                detail = f"v{p.version}  {p.description}"
            elif kind == "presets":
                detail = PRESETS.get(name).description
            elif kind == "backbones":
                detail = _first_line(BACKBONES.get(name).__doc__)  # a registered one of yours may have none
            elif kind == "heads":
                head = HEADS.get(name)
                detail = getattr(head, "about", "") or _first_line(head.__doc__)
            print(f"  {name:<16} {detail}".rstrip())
        if kind == "protocols":
            print(
                "  folder:PATH[@SIZE]  your own images, PATH/<class>/<image> (or <group>/<class>/<image>) at "
                "SIZExSIZE (default 28): a pinned class split, 5-way 1-shot (see --help of run)\n"
                "  csv:FILE[@SIZE]     the same for a CSV of path,label[,group] rows (paths relative to FILE)"
            )
    return 0


@_guard
def data(args) -> int:
    from siamese_bench import datasets

    names = args.datasets or None  # None: every dataset
    failed = None
    if args.data_command == "fetch":
        try:
            reports = datasets.fetch(names, args.data_dir)
        except datasets.FetchError as e:  # every dataset was tried: report them all, then fail
            reports, failed = e.reports, e.failed
    elif args.data_command == "verify":
        reports = datasets.verify_all(args.data_dir, names)
    else:
        raise UserError("choose an action: `data verify` or `data fetch`")
    where, reason = datasets.resolve_data_dir(args.data_dir)
    print(datasets.format_report(reports, header=f"data directory: {where} (chosen by: {reason})"))
    if failed:
        raise UserError(f"could not fetch {', '.join(failed)} (see their lines above)")
    return 0 if all(r.ok for r in reports) else 1


@_guard
def run(args) -> int:
    from siamese_bench import runner

    config = runner.config_from_args(args)
    if args.dry_run:
        print(runner.plan(config))
        return 0
    return runner.run(config)


@_guard
def summarize(args) -> int:
    from siamese_bench.protocols.published import published_lookup
    from siamese_bench.summary import write_summary

    out = _results_dir(args.out, "")
    if not out.is_dir():  # e.g. a typo (results/quik) or a CSV file named instead of its folder
        what = "is a file, not a results folder" if out.exists() else "does not exist"
        raise UserError(
            f"{out} {what} (so it has neither accuracy.csv nor throughput.csv); point at a results directory "
            "such as results/quick (or results/throughput-cpu, a throughput-only one)"
        )
    if not ((out / "accuracy.csv").exists() or (out / "throughput.csv").exists()):
        raise UserError(
            f"{out} has neither accuracy.csv nor throughput.csv; point at a results directory such as "
            "results/quick (or results/throughput-cpu, a throughput-only one)"
        )
    print(write_summary(args.out, published_lookup()))
    return 0


@_guard
def evaluate(args) -> int:
    from siamese_bench import checkpoint, runner

    runner.refuse_empty_lists(args, ("ways", "shots"), "for the run's cells")
    runner.check_episode_shape(args.ways, args.shots)
    return checkpoint.evaluate_command(args)


@_guard
def predict(args) -> int:
    from siamese_bench import checkpoint

    gallery = Path(args.gallery)
    if not gallery.is_dir():
        what = "is a file" if gallery.exists() else "does not exist"
        raise UserError(
            f"--gallery {gallery} {what}; give a folder of class folders, GALLERY/<class>/<image> (one or "
            "more images per class)"
        )
    return checkpoint.predict_command(args)


def eprint(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


@_guard
def reproduce(args) -> int:
    from siamese_bench import reproduce as rep
    from siamese_bench.runner import check_out_folder, refuse_empty_lists

    refuse_empty_lists(
        args, ("protocols", "backbones", "heads", "devices", "seeds", "ways"), "to keep every recorded cell"
    )
    _results_dir(args.results, "")
    if args.out is not None:  # as run refuses them: a file, a path below one, or the bare current directory
        check_out_folder(Path(args.out))
    return rep.command(args)


@_guard
def compare(args) -> int:
    from siamese_bench import compare as cmp

    _results_dir(args.a, "A: ")
    _results_dir(args.b, "B: ")
    return cmp.command(args)


@_guard
def readme(args) -> int:
    from siamese_bench import readme_table

    return readme_table.command(args)
