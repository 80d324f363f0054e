"""Result tables: the CSV schemas, atomic writes and the output-directory lock (summary.md: summary.py).

Every table is rewritten whole through a temporary file and `os.replace`, so a reader (or a run killed
mid-write) never sees half a CSV. Numbers are raw (accuracy as a fraction in 0..1); formatting happens only in
the generated `summary.md`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

_STEM_MAX = 120  # characters of a stem: a deep folder's path must not exceed the usual 255-byte name limit


def file_stem(text: str, suffix: str = "") -> str:
    """`text` made safe as a file name on any OS, then `suffix` (e.g. ".pt"): characters other than letters,
    digits and `._@+-` become `_`, and then the name ends in 8 hex digits of the text's sha256, so that two
    texts practically never share a file (`folder:sub/d` and `folder:sub_d`, `fläche` and `flöche` would). A
    name longer than 120 characters keeps its first 111 and that hash. Short text without such characters
    (every registry name) passes unchanged: `folder:data/faces@64` -> `folder_data_faces@64-<8 hex>`,
    `mnist-heldout_conv4` -> itself."""
    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", text)
    if safe != text or len(safe) > _STEM_MAX:
        safe = safe[: _STEM_MAX - 9] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return safe + suffix


ACCURACY_COLUMNS = (
    "protocol",
    "protocol_version",
    "split_hash",
    "dataset",
    "image_size",
    "backbone",
    "head",
    "device",
    "dtype",
    "n_way",
    "k_shot",
    "n_query",
    "episodes",
    "episodes_hash",
    "aggregation",
    "seed",
    "accuracy",
    "ci95",
    "verification_accuracy",
    "roc_auc",
    "best_val_accuracy",
    "train_pairs",
    "train_seconds",
    "train_pairs_per_s",
    "status",
    "error",
    "git_hash",
    "torch_version",
    "timestamp",
)

THROUGHPUT_COLUMNS = (
    "backbone",
    "head",
    "device",
    "dtype",
    "image_size",
    "batch_size",
    "train_pairs_per_s",
    "eval_images_per_s",
    "eval_episodes_per_s",
    "peak_memory_mb",
    "repeats",
    "status",
    "error",
    "git_hash",
    "torch_version",
    "timestamp",
)

# The columns that identify one cell of the accuracy grid (resume skips rows whose key is present).
CELL_KEY = ("protocol", "dataset", "backbone", "head", "device", "dtype", "n_way", "k_shot", "seed")
THROUGHPUT_KEY = ("backbone", "head", "device", "dtype", "image_size", "batch_size")
RATE_COLUMNS = ("train_pairs_per_s", "eval_images_per_s", "eval_episodes_per_s")


def rate_ratio(a: dict, b: dict, column: str) -> str:
    """b / a of one rate column of two rows, e.g. "1.07x"; "–" where either is empty or a's is 0 (a
    parameter-free baseline, or a cell run with --train-pairs 0, has no training rate)."""
    x, y = a.get(column), b.get(column)
    return f"{float(y) / float(x):.2f}x" if x not in ("", None) and y not in ("", None) and float(x) else "–"


def rate_ratios(a: dict, b: dict) -> list[str]:
    """`rate_ratio` for each of RATE_COLUMNS of two throughput rows."""
    return [rate_ratio(a, b, c) for c in RATE_COLUMNS]


def _read_umask() -> int:
    """The process umask (os.umask can only be read by setting it: set and restore, once, at import)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: Path, write: Callable[[BinaryIO], object], mode: int | None = None) -> None:
    """Write `path` through `write(binary file)` so that it always holds either the old or the new content
    (temp file in the same folder, fsync, os.replace; never half-written). The file gets `mode`, by default the
    one a new file would (0o666 less the umask), not mkstemp's owner-only 0600: results are shared."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temp files `atomic_write` left in `folder` and below when a process was killed mid-write
    (SIGKILL or a power cut skip its cleanup; the target still holds its old content), and return their paths.
    Only for a folder whose `OutputLock` the caller holds: another writer's temp file would go too."""
    stale = [
        p
        for p in Path(folder).rglob(".*.tmp")
        if re.fullmatch(r"\..+\.[a-z0-9_]{8}\.tmp", p.name) and p.is_file() and not p.is_symlink()
    ]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write` of `text` as UTF-8 (newlines as given)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_csv(path: Path, rows: Iterable[dict], columns: tuple[str, ...]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows as dicts of strings; a missing file is an empty table."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def key_of(row: dict, key: tuple[str, ...] = CELL_KEY) -> tuple[str, ...]:
    return tuple(_cell(row.get(k)) for k in key)


STATUSES = ("ok", "error", "skipped")  # the status column of both tables
WHOLE_NUMBER_COLUMNS = {"n_way", "k_shot", "seed", "batch_size"}


def _row_problem(row: dict, columns: tuple[str, ...]) -> str | None:
    """What is wrong with one row as csv.DictReader read it, or None: a value missing (a short row gets None
    for the columns it lacks), one too many (kept under the key None), or an unknown status."""
    if None in row:
        extra = len(row[None])
        return f"{extra} value{'s' if extra > 1 else ''} more than the {len(columns)} columns"
    missing = [c for c in columns if row.get(c) is None]
    if missing:
        return f"{len(missing)} of its {len(columns)} values missing (from column {missing[0]!r} on)"
    if "status" in columns and row["status"] not in STATUSES:
        return f"status {row['status']!r} is none of {', '.join(STATUSES)}"
    for c in WHOLE_NUMBER_COLUMNS.intersection(columns):  # sorted, summed and matched as numbers
        if not re.fullmatch(r"\d+", row[c]):
            return f"{c} {row[c]!r} is not a whole number"
    if row.get("status") == "ok" and row.get("accuracy"):  # empty: a NaN, as written
        try:
            float(row["accuracy"])
        except ValueError:
            return f"accuracy {row['accuracy']!r} of a finished cell is not a number"
    return None


_REPORTED: set[tuple] = set()  # the truncated rows this process warned about


class Table:
    """An append-mostly CSV table kept in memory and rewritten atomically after every change.

    Reading it checks every row, since a resume skips the cells it finds: a truncated last row (a copy or
    write cut short) is dropped with a warning on stderr, so that its cell runs again; any other malformed
    row, or a second row with the same key, is a ValueError naming the file and line."""

    def __init__(self, path: Path, columns: tuple[str, ...], key: tuple[str, ...]) -> None:
        self.path, self.columns, self.key = Path(path), columns, key
        self.rows = self._read()

    def _read(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            self._check_header(reader.fieldnames)
            rows = [(reader.line_num, row) for row in reader]
        first: dict[tuple, int] = {}  # each key's line
        for i, (line, row) in enumerate(rows):
            problem = _row_problem(row, self.columns)
            if problem is None:
                key = key_of(row, self.key)
                if key not in first:
                    first[key] = line
                    continue
                raise ValueError(
                    f"{self.path} line {line}: the same key as line {first[key]} ({'/'.join(self.key)} = "
                    f"{'/'.join(key)}), so that result would count twice; delete one of the two lines (or both: "
                    "it is then re-run), or write to a new --out directory"
                )
            if i == len(rows) - 1 and None not in row and None in row.values():  # cut short
                key = key_of(row, self.key)
                if all(key):  # the row names its cell
                    what, then = f"cell {'/'.join(key)}", "that cell will be re-run"
                else:
                    text = ",".join(v for v in row.values() if v is not None)
                    what, then = (
                        repr(text[:60]) + ("..." if len(text) > 60 else ""),
                        "the cell it began, if any, will be re-run",
                    )
                seen = (str(self.path), self.path.stat().st_mtime_ns, line, what)
                if seen not in _REPORTED:  # once per process and file version (run and summary read it)
                    _REPORTED.add(seen)
                    print(
                        f"warning: {self.path}: dropped its truncated last row (line {line}, {what}: {problem}), "
                        f"as left by an interrupted write or copy; {then}",
                        file=sys.stderr,
                    )
                rows.pop()
                break
            raise ValueError(
                f"{self.path} line {line}: {problem}; repair or delete that line (its cell is then re-run), "
                "or write to a new --out directory"
            )
        return [row for _, row in rows]

    def _check_header(self, header: list[str] | None) -> None:
        if header is None or set(header) == set(self.columns):  # None: an empty file
            return
        missing = sorted(set(self.columns) - set(header))
        extra = sorted(set(header) - set(self.columns))
        what = (
            "; ".join(
                f"{name} columns {cols}" for name, cols in (("missing", missing), ("extra", extra)) if cols
            )
            or "a column twice"
        )
        raise ValueError(
            f"{self.path} has a different schema ({what}); write to a new --out directory or move the old "
            "file away"
        )

    def get(self, row: dict) -> dict | None:
        k = key_of(row, self.key)
        return next((r for r in self.rows if key_of(r, self.key) == k), None)

    def put(self, row: dict) -> None:
        """Insert or replace the row with the same key, then rewrite the file atomically."""
        k = key_of(row, self.key)
        self.rows = [r for r in self.rows if key_of(r, self.key) != k]
        self.rows.append({c: _cell(row.get(c)) for c in self.columns})
        write_csv(self.path, self.rows, self.columns)


SCHEMAS = {
    "accuracy.csv": (ACCURACY_COLUMNS, CELL_KEY),
    "throughput.csv": (THROUGHPUT_COLUMNS, THROUGHPUT_KEY),
}


def read_table(directory: Path, name: str) -> list[dict[str, str]]:
    """The rows of DIRECTORY/NAME ("accuracy.csv" or "throughput.csv"), read and checked as `run` reads them:
    a missing column, a malformed row or a second row with the same key is a ValueError naming the file and
    line (a truncated last row is dropped with a warning); a missing file is an empty table."""
    columns, key = SCHEMAS[name]
    return Table(Path(directory) / name, columns, key).rows


class OutputLock:
    """An exclusive lock on an output directory, so two runs cannot interleave their writes."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            from siamese_bench.commands import UserError

            raise UserError(
                f"another siamese_bench run (pid {holder}) is writing to {self.path.parent}; "
                "wait for it to finish or choose another --out directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def write_json(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
