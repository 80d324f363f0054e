"""Statistics for result tables: 95% confidence intervals, McNemar's test, a paired bootstrap, seed spread.

Everything here runs on plain numpy/`math` (scipy is a test-only dependency; the tests check these against
scipy). Inputs may be torch tensors, numpy arrays or sequences; they are converted to float64 / bool numpy.

- `mean_ci95(acc)`: mean of per-episode accuracies and the normal-approximation half width
  1.96 * std(ddof=1) / sqrt(n) (NaN half width when n < 2).
- `mcnemar(correct_a, correct_b)`: paired test on the same queries; exact two-sided binomial test when the
  discordant count b + c is < 25, otherwise chi-square with continuity correction, (|b - c| - 1)^2 / (b + c).
- `paired_bootstrap(acc_a, acc_b, n_boot, seed)`: mean per-episode difference, percentile 95% CI and a
  two-sided p-value from the null distribution obtained by centring the differences.
- `across_seed_std(values)`: sample standard deviation (ddof=1) of one number over training seeds.
- `format_p(p, n_boot)`: a p-value for a table, saying "≤" at a bootstrap's smallest attainable value and "<"
  where a tail probability underflowed to 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray | Sequence[float]

Z95 = 1.96  # two-sided 95% normal quantile used by `mean_ci95`
EXACT_BELOW = 25  # McNemar uses the exact binomial test when the discordant count is below this


def _as_float64(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per episode/seed), got shape {arr.shape}")
    return arr


def _as_bool(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one entry per query), got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got values outside {{0, 1}}")
        arr = arr.astype(bool)
    return arr


def mean_ci95(x: ArrayLike) -> tuple[float, float]:
    """Mean and 95% half width of per-episode accuracies x (n,): 1.96 * std(ddof=1) / sqrt(n).

    The normal approximation over episodes (what few-shot papers report as "+-"). For n < 2 the half width
    is NaN (undefined), never 0. An empty input raises ValueError.
    """
    arr = _as_float64(x, "mean_ci95 input")
    n = arr.shape[0]
    if n == 0:
        raise ValueError("mean_ci95: need at least one value, got an empty array")
    mean = float(arr.mean())
    if n < 2:
        return mean, math.nan
    return mean, float(Z95 * arr.std(ddof=1) / math.sqrt(n))


def chi2_sf_1dof(x: float) -> float:
    """Survival function of the chi-square distribution with 1 degree of freedom: erfc(sqrt(x / 2))."""
    if x <= 0:
        return 1.0
    return math.erfc(math.sqrt(x / 2.0))


def format_p(p: float, n_boot: int | None = None) -> str:
    """`p` with three significant digits, without claiming more than the test can tell: a bootstrap p-value
    (`n_boot` resamples) at its floor 1 / (n_boot + 1) is an upper bound ("≤0.0005" for 2,000), and a tail
    probability that underflowed to 0 is "<1e-300" (float64 cannot tell it apart from 0)."""
    if n_boot is not None and p <= 1.0 / (n_boot + 1.0) * (1 + 1e-9):
        return f"≤{1.0 / (n_boot + 1.0):.1g}"
    if p == 0.0:
        return "<1e-300"
    return f"{p:.3g}"


def binom_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n trials under p = 1/2: min(1, 2 * P(X <= min(k, n - k)))."""
    if n == 0:
        return 1.0
    m = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(m + 1))
    return min(1.0, 2.0 * tail / 2.0**n)


def mcnemar(correct_a: ArrayLike, correct_b: ArrayLike) -> tuple[float, float]:
    """McNemar's test of two methods scored on the same queries. Returns (statistic, p_value).

    correct_a, correct_b: (n,) bool, whether each method got query i right (e.g. `EvalResult.correct`
    flattened; both must come from the same frozen episodes). Only discordant queries count:
    b = a right & b wrong, c = a wrong & b right.
      b + c < 25:  exact two-sided binomial test; statistic = min(b, c) (as statsmodels reports it).
      otherwise:   chi-square with continuity correction, statistic = (|b - c| - 1)^2 / (b + c), 1 dof.
    With no discordant pair the methods are indistinguishable: (0.0, 1.0).
    """
    a = _as_bool(correct_a, "mcnemar correct_a")
    b_ = _as_bool(correct_b, "mcnemar correct_b")
    if a.shape != b_.shape:
        raise ValueError(
            f"mcnemar: correct_a and correct_b must score the same queries, got shapes {a.shape} "
            f"and {b_.shape}"
        )
    b = int(np.count_nonzero(a & ~b_))
    c = int(np.count_nonzero(~a & b_))
    n = b + c
    if n < EXACT_BELOW:
        return float(min(b, c)), binom_two_sided_half(b, n)
    stat = (abs(b - c) - 1.0) ** 2 / n
    return float(stat), chi2_sf_1dof(stat)


def paired_bootstrap(
    acc_a: ArrayLike, acc_b: ArrayLike, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float, float, float]:
    """Paired bootstrap over episodes of the mean accuracy difference a - b.

    acc_a, acc_b: (n,) per-episode accuracies of two methods on the SAME episodes (paired by position).
    Resamples episode indices with replacement `n_boot` times (numpy PCG64 seeded with `seed`).
    Returns (mean_diff, ci_low, ci_high, p_value):
      mean_diff: mean(a - b);
      ci_low/high: 2.5th / 97.5th percentiles of the resampled mean differences;
      p_value: two-sided, from the differences centred to mean 0 (the null):
        (1 + #{|mean*_0| >= |mean_diff|}) / (n_boot + 1), so it is never exactly 0.
    """
    a = _as_float64(acc_a, "paired_bootstrap acc_a")
    b = _as_float64(acc_b, "paired_bootstrap acc_b")
    if a.shape != b.shape:
        raise ValueError(
            f"paired_bootstrap: acc_a and acc_b must be paired per episode, got shapes {a.shape} "
            f"and {b.shape}"
        )
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"paired_bootstrap: need at least 2 paired episodes, got {n}")
    if n_boot < 1:
        raise ValueError(f"paired_bootstrap: n_boot must be >= 1, got {n_boot}")
    d = a - b
    mean = float(d.mean())
    centred = d - mean
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    null = np.empty(n_boot)
    chunk = max(1, 2**22 // n)  # bound the (chunk, n) index matrix to ~32 MB
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        boot[start:stop] = d[idx].mean(axis=1)
        null[start:stop] = centred[idx].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    # a tiny tolerance so that floating-point noise in the null means does not decide ties
    extreme = np.count_nonzero(np.abs(null) >= abs(mean) - 1e-12)
    p = (1.0 + extreme) / (n_boot + 1.0)
    return mean, float(low), float(high), float(p)


def across_seed_std(values: ArrayLike) -> float:
    """Sample standard deviation (ddof=1) of one metric over training seeds; NaN for fewer than 2 seeds."""
    arr = _as_float64(values, "across_seed_std input")
    if arr.shape[0] < 2:
        return math.nan
    return float(arr.std(ddof=1))
