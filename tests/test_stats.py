"""core/stats.py against hand-computed values: sign test, permutation test, t and Wilson intervals, bootstrap."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from nbplayground.core import stats as S
from nbplayground.core.errors import BadParameterError

NAN = float("nan")


def rows(values):
    return {f"r{i}": v for i, v in enumerate(values)}


def brute_force_p(diffs):
    """Two-sided p of the mean over all 2**n sign flips: share of flips with |sum| ≥ |observed sum|."""
    observed = abs(sum(diffs))
    flips = itertools.product((1, -1), repeat=len(diffs))
    extreme = sum(abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - 1e-12 for signs in flips)
    return extreme / 2 ** len(diffs)


def test_every_pair_better_by_exactly_one():
    r = S.paired(rows([0.0] * 10), rows([1.0] * 10))
    assert (r.n, r.mean_diff, r.low, r.high) == (10, 1.0, 1.0, 1.0)
    assert r.p_value == 2 * 0.5**10 == 0.001953125
    assert r.test == "exact sign test"
    assert (r.wins, r.losses, r.n_ties, r.only_a, r.only_b) == (10, 0, 0, 0, 0)
    assert "unlikely to be noise" in r.note
    # B − A: swapping the variants flips the sign and keeps the p-value
    s = S.paired(rows([1.0] * 10), rows([0.0] * 10))
    assert (s.mean_diff, s.low, s.high, s.p_value, s.wins, s.losses) == (-1.0, -1.0, -1.0, 0.001953125, 0, 10)


def test_no_difference_on_any_row():
    r = S.paired(rows([0.5, 1.0, 0.0, 0.25] * 3), rows([0.5, 1.0, 0.0, 0.25] * 3))
    assert (r.n, r.mean_diff, r.low, r.high, r.p_value) == (12, 0.0, 0.0, 0.0, 1.0)
    assert r.n_ties == 12
    assert r.note.startswith("no difference on any row")


def test_known_p_value_nine_better_one_worse():
    r = S.paired(rows([0.0] * 10), rows([1.0] * 9 + [-1.0]))
    assert r.test == "exact sign test"
    assert r.p_value == pytest.approx(2 * (1 + 10) / 1024, rel=1e-12)  # 0.021484375
    assert r.mean_diff == pytest.approx(0.8)
    assert (r.wins, r.losses) == (9, 1)
    assert r.low is not None and r.high is not None and r.low <= 0.8 <= r.high


def test_pass_fail_scores_with_float_noise_use_the_sign_test_and_drop_ties():
    # 0.3 - 0.2 and 0.1 - 0.0 differ in the last bits; still "the same size"
    a = rows([0.2] * 7 + [0.0] * 2 + [0.5] * 3)
    b = rows([0.3] * 7 + [0.1] * 1 + [-0.1] * 1 + [0.5] * 3)
    r = S.paired(a, b)
    assert r.test == "exact sign test"
    assert (r.wins, r.losses, r.n_ties, r.n) == (8, 1, 3, 12)
    assert r.p_value == pytest.approx(2 * (1 + 9) / 512, rel=1e-12)  # binomial over the 9 rows that differ
    assert "3 ties left out" in r.test_detail


def test_continuous_permutation_test_matches_enumerating_all_sign_flips():
    diffs = [0.31, -0.12, 0.74, 0.25, 1.13, -0.41, 0.05, 0.92]
    a = rows([1.0] * 8)
    b = rows([1.0 + d for d in diffs])
    r = S.paired(a, b)
    assert r.test == "paired permutation test"
    assert "exact over all 2^8" in r.test_detail
    exact = brute_force_p([b[k] - a[k] for k in a])
    assert 0.01 < exact < 0.5  # a case where the count matters, not a boundary
    assert r.p_value == pytest.approx(exact, rel=1e-9)
    assert r.mean_diff == pytest.approx(sum(diffs) / 8)


def test_monte_carlo_permutation_test_is_close_to_exact_and_reproducible():
    rng = np.random.default_rng(7)
    diffs = [float(x) for x in rng.normal(0.3, 1.0, size=15)]
    signs = np.array(list(itertools.product((1, -1), repeat=15)))  # 2^15 > 20,000: scipy samples
    exact = float(np.mean(np.abs(signs @ np.array(diffs)) >= abs(sum(diffs)) - 1e-12))
    r = S.paired(rows([0.0] * 15), rows(diffs), seed=3)
    assert r.test == "paired permutation test" and "Monte Carlo" in r.test_detail
    se = math.sqrt(exact * (1 - exact) / S.PERMUTATION_RESAMPLES)
    assert abs(r.p_value - exact) < 5 * se + 1e-4
    assert S.paired(rows([0.0] * 15), rows(diffs), seed=3).p_value == r.p_value


def test_many_rows_use_the_paired_t_test_and_t_interval_and_are_fast():
    rng = np.random.default_rng(0)
    n = 10_000
    a = rng.normal(size=n)
    b = a + rng.normal(0.05, 1.0, size=n)
    S.paired(rows([0.0, 1.0, 2.0]), rows([1.0, 1.5, 2.2]))  # scipy imported outside the timing
    start = time.perf_counter()
    r = S.paired(rows(a.tolist()), rows(b.tolist()))
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, elapsed  # ~0.02 s measured; generous for a loaded box
    assert r.test == "paired t-test" and r.interval_method.startswith("Student t")
    d = b - a
    t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
    from scipy.stats import t as student

    assert r.p_value == pytest.approx(2 * student.sf(abs(t), n - 1), rel=1e-6)
    half = student.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)
    assert (r.low, r.high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)


def test_t_interval_against_the_textbook_formula():
    # mean 5, s = sqrt(32/7), t(0.975, 7) = 2.364624 (t table): 5 ± 2.364624 · 2.138090 / sqrt(8) = 5 ± 1.787488
    r = S.mean_interval([2, 4, 4, 4, 5, 5, 7, 9])
    assert (r.n, r.mean) == (8, 5.0)
    assert r.low == pytest.approx(3.212512, abs=1e-5) and r.high == pytest.approx(6.787488, abs=1e-5)
    assert str(r) == "5 [3.213, 6.787] (n=8, 95% Student t)"
    r99 = S.mean_interval([2, 4, 4, 4, 5, 5, 7, 9], confidence=0.99)  # t(0.995, 7) = 3.499483
    assert r99.high == pytest.approx(5 + 3.499483 * math.sqrt(32 / 7) / math.sqrt(8), abs=1e-5)


def test_mean_interval_drops_nan_and_needs_two_values():
    r = S.mean_interval([1.0, NAN, None, 3.0, math.inf])
    assert (r.n, r.mean) == (2, 2.0)
    assert S.mean_interval([4.0, NAN]).to_dict() == {
        "n": 1, "mean": 4.0, "low": None, "high": None, "method": "Student t", "confidence": 0.95}  # fmt: skip
    assert S.mean_interval([]).mean is None
    assert (S.mean_interval([0.7] * 5).low, S.mean_interval([0.7] * 5).high) == (0.7, 0.7)


def test_wilson_interval_against_published_values():
    r = S.proportion_interval(8, 10)
    assert r.mean == 0.8
    assert r.low == pytest.approx(0.4902, abs=5e-5) and r.high == pytest.approx(0.9433, abs=5e-5)
    zero = S.proportion_interval(0, 10)  # Wilson 0/10: [0, 0.2775]
    assert zero.low == pytest.approx(0.0, abs=1e-12) and zero.high == pytest.approx(0.2775, abs=5e-5)
    assert S.proportion_interval(0, 0).to_dict()["mean"] is None
    with pytest.raises(BadParameterError, match="successes"):
        S.proportion_interval(11, 10)


def test_repeats_are_averaged_per_row_first():
    assert S.per_row_means({"r1": [1.0, 1.0, 1.0], "r2": [0.0], "r3": [0.0, NAN, 1.0, None], "r4": [NAN]}) == {
        "r1": 1.0, "r2": 0.0, "r3": 0.5}  # fmt: skip
    # r0 ran 3 times in B (1, 0, 0 → 1/3): it counts once, and as a loss against A's 0.5
    a = S.per_row_means({"r0": [0.5], **{f"r{i}": [0.0] for i in range(1, 7)}})
    b = S.per_row_means({"r0": [1.0, 0.0, 0.0], **{f"r{i}": [1.0, 1.0] for i in range(1, 7)}})
    r = S.paired(a, b)
    assert (r.n, r.wins, r.losses) == (7, 6, 1)
    assert r.mean_diff == pytest.approx((6 * 1.0 + (1 / 3 - 0.5)) / 7)


def test_rows_in_one_variant_only_and_nan_are_left_out_and_counted():
    a = {**rows([0.0] * 8), "only-a": 1.0, "nan-in-a": NAN, "none-in-b": 0.0}
    b = {**rows([1.0] * 8), "only-b": 0.0, "nan-in-a": 1.0, "none-in-b": None}
    r = S.paired(a, b, labels=("v1", "v2"))
    assert (r.n, r.only_a, r.only_b) == (8, 2, 2)
    assert (r.mean_diff, r.p_value) == (1.0, 2 * 0.5**8)
    assert r.note.endswith("(2 rows scored only in v1 and 2 rows scored only in v2 left out)")
    assert r.note.startswith("v2 − v1 = +1")
    assert str(r).startswith("v2 − v1 = +1 [+1, +1], p = 0.00781 (exact sign test, n=8: 8 better")
    empty = S.paired({"x": 1.0}, {"y": 1.0})
    assert (empty.n, empty.mean_diff, empty.p_value) == (0, None, None)
    assert empty.note.startswith("no row is scored in both A and B")


def test_too_few_rows_says_so_and_still_computes_p():
    r = S.paired(rows([0.0] * 3), rows([1.0] * 3))
    assert r.p_value == 0.25
    assert r.note == "too few rows to tell (n=3; need ≥ 6 for p < 0.05)"
    tied = S.paired(rows([0.0] * 7), rows([1.0] * 5 + [0.0] * 2))
    assert tied.p_value == 0.0625
    assert tied.note == "too few rows to tell (5 of 7 rows differ; need ≥ 6 that differ for p < 0.05)"
    six = S.paired(rows([0.0] * 6), rows([1.0] * 6))
    assert six.p_value == 0.03125 and "too few" not in six.note
    assert (S.min_rows_for(0.95), S.min_rows_for(0.99)) == (6, 8)
    assert S.paired(rows([0.0]), rows([1.0])).low is None  # one row: no interval


def test_bootstrap_interval_contains_the_mean_and_is_reproducible():
    rng = np.random.default_rng(11)
    a = rng.uniform(0, 1, size=40)
    b = np.clip(a + rng.normal(0.1, 0.3, size=40), 0, 1)
    r = S.paired(rows(a.tolist()), rows(b.tolist()), seed=5)
    assert r.interval_method == "paired bootstrap (BCa, 10,000 resamples, seed 5)"
    assert r.low < r.mean_diff < r.high
    again = S.paired(rows(a.tolist()), rows(b.tolist()), seed=5)
    assert (again.low, again.high, again.p_value) == (r.low, r.high, r.p_value)
    other = S.paired(rows(a.tolist()), rows(b.tolist()), seed=6)
    assert (other.low, other.high) != (r.low, r.high)
    # agrees with the t interval to within a tenth of its width on this well-behaved sample
    t = S.mean_interval((b - a).tolist())
    width = t.high - t.low
    assert abs(r.low - t.low) < 0.1 * width and abs(r.high - t.high) < 0.1 * width


def test_bootstrap_falls_back_to_percentile_when_bca_is_undefined(monkeypatch):
    import scipy.stats

    real = scipy.stats.bootstrap

    def no_bca(*args, **kw):
        res = real(*args, **kw)
        if kw.get("method") == "BCa":
            return SimpleNamespace(confidence_interval=SimpleNamespace(low=NAN, high=NAN),
                                   bootstrap_distribution=res.bootstrap_distribution)  # fmt: skip
        return res

    monkeypatch.setattr(scipy.stats, "bootstrap", no_bca)
    r = S.paired(rows([0.0] * 10), rows([0.2, 0.5, -0.1, 0.9, 0.4, 0.3, 0.0, 0.6, 0.8, 0.1]))
    assert r.interval_method.startswith("paired bootstrap (percentile")
    assert r.low < r.mean_diff < r.high


def test_percentile_is_nan_safe():
    values = [*range(1, 101), NAN, None]
    assert S.percentile(values, 50) == 50.5
    assert S.percentile(values, 95) == pytest.approx(95.05)
    assert S.percentile([NAN], 50) is None
    with pytest.raises(BadParameterError, match="between 0 and 100"):
        S.percentile(values, 101)


def test_bad_confidence_is_refused():
    with pytest.raises(BadParameterError, match="confidence must be between 0 and 1"):
        S.paired(rows([0.0]), rows([1.0]), confidence=95)


def test_importing_the_module_does_not_import_numpy_or_scipy():
    code = "import sys, nbplayground.core.stats; print(sorted({'numpy', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
