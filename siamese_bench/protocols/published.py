"""Published results shipped as data (`published.csv`), with source, table and protocol.

Only rows whose protocol, N-way and K-shot equal ours are ever put beside our numbers; `compare=yes` marks
the Siamese result of each paper, the one the summary's "published" column shows.
"""

from __future__ import annotations

import csv
from importlib import resources


def published_rows() -> list[dict[str, str]]:
    with resources.files("siamese_bench.protocols").joinpath("published.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def published_lookup() -> dict[tuple[str, int, int], tuple[float, str]]:
    """(protocol, n_way, k_shot) -> (accuracy %, "method, source table") for the compare=yes rows."""
    out: dict[tuple[str, int, int], tuple[float, str]] = {}
    for r in published_rows():
        if r["compare"] != "yes":
            continue
        key = (r["protocol"], int(r["n_way"]), int(r["k_shot"]))
        if key in out:
            raise ValueError(f"published.csv has two compare=yes rows for {key}")
        out[key] = (float(r["accuracy_pct"]), f"{r['method']}, {r['cite']} {r['table']}")
    return out
