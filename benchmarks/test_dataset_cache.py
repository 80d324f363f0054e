"""Omniglot load time: the first decode of the 32,460 PNGs (once, pedantic rounds=1) vs a cached load.

A cached load (memory-mapped .pt, source checksums recomputed as in a new process) should take well under a
second. Both runs use a private cache folder, so the user's cache is neither used nor touched. Skipped when
the Omniglot zips are not found ($SIAMESE_BENCH_DATA or the checkout's data/).

    SIAMESE_BENCH_DATA=/path/to/data pytest benchmarks/test_dataset_cache.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from siamese_bench.datasets import store
from siamese_bench.datasets.omniglot import load_omniglot


def _data_dir() -> Path | None:
    for d in [os.environ.get(store.ENV_DATA, ""), str(Path(__file__).resolve().parents[1] / "data")]:
        if d and all(
            (Path(d) / "omniglot" / n).is_file() for n in ("images_background.zip", "images_evaluation.zip")
        ):
            return Path(d)
    return None


DATA = _data_dir()
pytestmark = pytest.mark.skipif(
    DATA is None, reason="Omniglot zips not found: set SIAMESE_BENCH_DATA=/path/to/data"
)


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    old = os.environ.get(store.ENV_CACHE)
    os.environ[store.ENV_CACHE] = str(d)
    store.clear_memory_cache()
    yield d
    store.clear_memory_cache()
    if old is None:
        os.environ.pop(store.ENV_CACHE, None)
    else:
        os.environ[store.ENV_CACHE] = old


def _load_cold():
    store.clear_memory_cache()
    return load_omniglot(DATA)


def test_omniglot_first_decode(benchmark, private_cache):
    sets = benchmark.pedantic(_load_cold, rounds=1, iterations=1)
    assert len(sets["background"]) == 19280 and len(sets["evaluation"]) == 13180
    assert len(list(private_cache.glob("omniglot-*.pt"))) == 1


def test_omniglot_cached_load(benchmark, private_cache):
    if not list(private_cache.glob("omniglot-*.pt")):
        _load_cold()  # when run alone: build the cache first (not timed)
    sets = benchmark(_load_cold)  # memo cleared each round: disk load + source checksums, as a new process
    assert len(sets["background"]) == 19280
    benchmark.extra_info["target"] = "well under 1 s"
