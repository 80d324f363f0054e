"""Keep freed CPU memory in the process between training steps (glibc malloc settings).

A training step on a CPU allocates and frees the same large buffers every step (the first convolution's output
for a batch of 256 28x28 images is 22 MB). glibc hands blocks above its mmap threshold back to the kernel on
free and trims the heap above its trim threshold, so every step page-faults those megabytes in again, and
zero-filling them (`fill_`) pays the faults. `keep_freed_memory()` raises both thresholds with `mallopt`:
blocks up to 32 MiB (glibc's largest mmap threshold on 64-bit) come from the heap, and up to 1 GiB of freed
heap stays with the process. Only where buffers live changes, not what is computed: results are bit-identical.
The README's speed paragraph gives the measured gain (benchmarks/test_train_speed.py run with
SIAMESE_BENCH_MALLOC=default and without).

`python -m siamese_bench run` calls it once per process; config.json records the outcome. On a C library
other than glibc, or with the environment variable SIAMESE_BENCH_MALLOC=default (the process keeps glibc's
own behaviour, and returns freed memory to the system), it does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # bytes; glibc's maximum on 64-bit (4 * 1024 * 1024 * sizeof(long))
TRIM_THRESHOLD = 2**30  # bytes of free memory at the top of the heap kept before trimming

_state: str | None = None  # what keep_freed_memory() did, for config.json


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see module docstring). Idempotent; True when glibc accepted both
    settings, False on other C libraries (nothing changed)."""
    global _state
    if _state is not None:
        return _state.startswith("glibc")
    if os.environ.get("SIAMESE_BENCH_MALLOC", "").strip() == "default":
        _state = "default (SIAMESE_BENCH_MALLOC=default)"
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _state = f"default ({platform.system()} {platform.libc_ver()[0] or 'libc'}: not glibc, unchanged)"
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = (
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
    _state = (
        f"glibc mallopt: mmap_threshold {MMAP_THRESHOLD >> 20} MiB, trim_threshold {TRIM_THRESHOLD >> 20} MiB"
        if ok
        else "default (glibc refused mallopt)"
    )
    return ok


def state() -> str:
    """How this process's allocator is set: the mallopt settings, or "default"."""
    return _state or "default"
