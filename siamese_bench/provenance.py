"""Where a number came from: git hash, library versions, CPU/GPU model, the command line."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import torch

from siamese_bench import allocator

_PACKAGE = Path(__file__).resolve().parent
_REPO = _PACKAGE.parent


@cache
def git_hash() -> str:
    """The checkout's commit, suffixed "-dirty" when the package code (siamese_bench/) has uncommitted
    changes; "unknown" when the package is not the siamese_bench/ folder at the top of a git checkout (an
    installed copy, e.g. in site-packages or a tox environment, or a copy inside some other repository):
    git could not vouch for that copy's code. $SIAMESE_BENCH_GIT_HASH, when set, is recorded instead: for a
    copy of the tree on another machine whose .git is missing or stale, set it to the commit it came from (a
    full 40-digit hash is shortened to 12 digits, as the checkout's is)."""
    override = os.environ.get("SIAMESE_BENCH_GIT_HASH", "").strip()
    if override:
        return override[:12] if re.fullmatch(r"[0-9a-f]{40}", override) else override
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=_PACKAGE, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not top or Path(top).resolve() != _REPO:
            return "unknown"
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        # GIT_OPTIONAL_LOCKS=0: status must not refresh and rewrite the checkout's index. That write holds
        # .git/index.lock, which a Ctrl-C of the run (SIGINT to git, then subprocess's SIGKILL) or the timeout's
        # SIGKILL can leave behind, and every later git command in the checkout then fails on it
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "siamese_bench"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        ).stdout.strip()
        return head[:12] + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@cache
def code_hash() -> str:
    """sha256 (16 hex digits) of the package's Python sources (siamese_bench/**/*.py, paths and contents): it
    changes with any edit, committed or not, where the git hash says only "-dirty"."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@cache
def _cpuinfo(field: str) -> str | None:
    """The value of the first `field` line of /proc/cpuinfo (Linux), or None where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str] | None:
    """The CPU feature flags of /proc/cpuinfo (Linux), or None where they cannot be read."""
    flags = _cpuinfo("flags")
    return None if flags is None else frozenset(flags.split())


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool | None:
    """Whether the CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX-BF16), which make bf16 autocast
    fast; None if unknown (no /proc/cpuinfo)."""
    flags = cpu_flags() if flags is None else flags
    return None if flags is None else bool(flags & {"avx512_bf16", "amx_bf16"})


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def timestamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment() -> dict:
    import numpy
    import sklearn
    import torchvision

    return {
        "git_hash": git_hash(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_has_bf16(),
        "allocator": allocator.state(),
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "command": " ".join(["python -m siamese_bench", *sys.argv[1:]]),
    }
