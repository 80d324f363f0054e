"""Result tables: the CSV schemas, atomic writes, the output-directory lock and the generated summary.

Every table is rewritten whole through a temporary file and `os.replace`, so a reader (or a run killed
mid-write) never sees half a CSV. Numbers are raw (accuracy as a fraction in 0..1); formatting happens only in
the generated `summary.md`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path


def file_stem(text: str) -> str:
    """`text` made safe as (part of) a file name on any OS: characters other than letters, digits and
    `._@+-` become `_` (registry names pass unchanged; `folder:data/faces@64` -> `folder_data_faces@64`)."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", text)


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


def rate_ratios(a: dict, b: dict) -> list[str]:
    """b / a for each of RATE_COLUMNS of two throughput rows, e.g. "1.07x"; "–" where either is empty or a's is
    0 (a parameter-free baseline has no training rate)."""
    return [
        f"{float(b[c]) / float(a[c]):.2f}x"
        if a[c] not in ("", None) and b[c] not in ("", None) and float(a[c])
        else "–"
        for c in RATE_COLUMNS
    ]


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that `path` always holds either the old or the new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


class Table:
    """An append-mostly CSV table kept in memory and rewritten atomically after every change."""

    def __init__(self, path: Path, columns: tuple[str, ...], key: tuple[str, ...]) -> None:
        self.path, self.columns, self.key = Path(path), columns, key
        self.rows = read_csv(self.path)
        if self.rows and set(self.rows[0]) != set(columns):
            missing = sorted(set(columns) - set(self.rows[0]))
            raise ValueError(
                f"{self.path} has a different schema (missing columns {missing}); "
                "write to a new --out directory or move the old file away"
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
            raise RuntimeError(
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
