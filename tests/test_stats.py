"""Tests for siamese_bench.stats against scipy (a test-only dependency) and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from siamese_bench import stats

scipy_stats = pytest.importorskip("scipy.stats")


def test_mean_ci95_matches_formula_and_accepts_tensors():
    x = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    mean, hw = stats.mean_ci95(x)
    assert mean == pytest.approx(0.6)
    assert hw == pytest.approx(1.96 * scipy_stats.sem(x))
    assert stats.mean_ci95(torch.tensor(x, dtype=torch.float32)) == pytest.approx((mean, hw), rel=1e-6)


def test_mean_ci95_single_value_has_nan_half_width_and_empty_raises():
    mean, hw = stats.mean_ci95([0.7])
    assert mean == pytest.approx(0.7) and math.isnan(hw)
    with pytest.raises(ValueError, match="at least one"):
        stats.mean_ci95([])
    with pytest.raises(ValueError, match="1-D"):
        stats.mean_ci95(np.zeros((2, 2)))


@pytest.mark.parametrize("x", [0.0, 0.5, 1.0, 3.84, 10.0, 30.0])
def test_chi2_sf_matches_scipy(x):
    assert stats.chi2_sf_1dof(x) == pytest.approx(scipy_stats.chi2.sf(x, 1), rel=1e-12, abs=1e-300)


def _paired(b: int, c: int, both: int = 7, neither: int = 3) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([True] * b + [False] * c + [True] * both + [False] * neither)
    bb = np.array([False] * b + [True] * c + [True] * both + [False] * neither)
    return a, bb


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 1), (10, 2), (5, 5), (0, 24), (12, 12)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    a, bb = _paired(b, c)
    stat, p = stats.mcnemar(a, bb)
    assert stat == min(b, c)
    expected = 1.0 if b + c == 0 else scipy_stats.binomtest(b, b + c, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(20, 5), (40, 30), (13, 12), (100, 60)])
def test_mcnemar_chi2_matches_scipy(b, c):
    a, bb = _paired(b, c)
    stat, p = stats.mcnemar(torch.from_numpy(a), torch.from_numpy(bb))
    expected_stat = (abs(b - c) - 1) ** 2 / (b + c)
    assert stat == pytest.approx(expected_stat)
    assert p == pytest.approx(scipy_stats.chi2.sf(expected_stat, 1), rel=1e-10)


def test_mcnemar_rejects_mismatched_or_non_boolean_inputs():
    with pytest.raises(ValueError, match="same queries"):
        stats.mcnemar(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="boolean"):
        stats.mcnemar(np.array([0.5, 1.0]), np.array([1, 0]))


def test_paired_bootstrap_ci_close_to_scipy_and_detects_a_difference():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 1.0, size=200)
    b = a - 0.05 + rng.normal(0, 0.05, size=200)
    mean, low, high, p = stats.paired_bootstrap(a, b, n_boot=4000, seed=3)
    assert mean == pytest.approx(float((a - b).mean()))
    ref = scipy_stats.bootstrap(
        (a - b,), np.mean, n_resamples=4000, method="percentile", random_state=np.random.default_rng(0)
    ).confidence_interval
    width = ref.high - ref.low
    assert low == pytest.approx(ref.low, abs=0.1 * width)
    assert high == pytest.approx(ref.high, abs=0.1 * width)
    assert p < 0.01
    # deterministic for a seed
    assert stats.paired_bootstrap(a, b, n_boot=4000, seed=3) == (mean, low, high, p)


def test_paired_bootstrap_no_difference_gives_large_p():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, size=100)
    b = a + rng.normal(0, 0.1, size=100)
    b -= (b - a).mean()  # exactly zero mean difference
    _, low, high, p = stats.paired_bootstrap(a, b, n_boot=2000, seed=0)
    assert low < 0 < high
    assert p > 0.9
    # the p-value agrees roughly with a paired t-test on shifted data
    b2 = b - 0.02
    _, _, _, p2 = stats.paired_bootstrap(a, b2, n_boot=4000, seed=0)
    assert p2 == pytest.approx(scipy_stats.ttest_rel(a, b2).pvalue, abs=0.03)


def test_paired_bootstrap_validates_inputs():
    with pytest.raises(ValueError, match="paired"):
        stats.paired_bootstrap([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="n_boot"):
        stats.paired_bootstrap([0.1, 0.2], [0.1, 0.3], n_boot=0)


def test_across_seed_std():
    assert stats.across_seed_std([0.5, 0.7, 0.9]) == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))
    assert math.isnan(stats.across_seed_std([0.5]))


def test_format_p_marks_the_bootstrap_floor_and_underflow_as_bounds():
    # a difference no centred resample reaches: p sits at its floor 1 / (n_boot + 1) -> an upper bound
    a, b = np.linspace(0.5, 1.0, 50), np.linspace(0.0, 0.5, 50)
    _, _, _, p = stats.paired_bootstrap(a, b, n_boot=2000, seed=0)
    assert p == 1 / 2001
    assert stats.format_p(p, 2000) == "≤0.0005"
    assert stats.format_p(p) == "0.0005"  # not a bootstrap p: printed as is
    # McNemar's chi-square tail underflows to 0 for a large discordant count: a bound, not 0
    _, p_mcn = stats.mcnemar(np.ones(5000, bool), np.zeros(5000, bool))
    assert p_mcn == 0.0 and stats.format_p(p_mcn) == "<1e-300"
    # ordinary values keep three significant digits
    assert stats.format_p(0.012345, 2000) == "0.0123"
    assert stats.format_p(2.97e-27) == "2.97e-27"
    assert stats.format_p(2 / 2001, 2000) == "0.001"


def test_paired_bootstrap_ci_is_the_95_percent_percentile_interval():
    # Tight check of the 2.5 / 97.5 percentiles: a 90% interval (5 / 95) moves each end by ~0.08 of the width,
    # well outside the 0.03-width tolerance; the Monte-Carlo error of 20,000 resamples is ~0.005 of the width.
    rng = np.random.default_rng(11)
    n = 1000
    a = rng.uniform(0.5, 1.0, size=n)
    b = a - 0.05 + rng.normal(0, 0.05, size=n)
    d = a - b
    mean, low, high, _ = stats.paired_bootstrap(a, b, n_boot=20_000, seed=1)
    ref = scipy_stats.bootstrap(
        (d,), np.mean, n_resamples=20_000, method="percentile", random_state=np.random.default_rng(12345)
    ).confidence_interval
    width = ref.high - ref.low
    assert low == pytest.approx(ref.low, abs=0.03 * width)
    assert high == pytest.approx(ref.high, abs=0.03 * width)
    # and against the analytic normal interval of a mean of n draws: mean +- 1.96 * std(ddof=0) / sqrt(n)
    half = 1.96 * d.std() / math.sqrt(n)
    assert low == pytest.approx(mean - half, abs=0.03 * 2 * half)
    assert high == pytest.approx(mean + half, abs=0.03 * 2 * half)


def test_a_paired_bootstrap_needs_two_episodes():
    import torch

    with pytest.raises(ValueError, match="need at least 2 paired episodes, got 1"):
        stats.paired_bootstrap(torch.tensor([1.0]), torch.tensor([0.0]), n_boot=10)
