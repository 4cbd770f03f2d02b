"""Statistics for evaluations: intervals of means and pass rates, and paired comparisons of two variants.

Everything here is over plain numbers (one score per data row); the experiment layer turns frames into
these. Conventions:

- ``None``, NaN and ±inf are "no score": dropped everywhere, and ``n`` counts what is left.
- Repeats are averaged per row first (:func:`per_row_means`), so a row run 3 times counts once: the tests
  assume the *rows* are independent draws, not the calls.
- A paired comparison is over the rows scored in both variants; the difference is **B - A** ("how much
  better is B than A", higher scores being better). Rows scored in only one variant are left out and counted
  (``only_a``/``only_b``).

Which test :func:`paired` runs on the per-row differences:

- every non-zero difference has the same size (pass/fail-like scores: 0/1 checks, a yes/no judge): the
  exact two-sided **sign test** (``scipy.stats.binomtest``) over the rows that differ; ties carry no sign.
- otherwise the **paired permutation test** of the mean difference (``scipy.stats.permutation_test`` with
  ``permutation_type="samples"``: the differences' signs are flipped at random): exact over all 2**m sign
  flips when that is at most the 20,000 Monte Carlo resamples (m ≤ 14; exact then costs no more), else
  20,000 seeded Monte Carlo flips. Beyond 200 differing rows a **paired t-test** instead: scipy's Monte
  Carlo permutation test costs ~0.15 s per 200 rows, and at that size the t-test's p agrees with it.

The interval of the mean difference is a **paired bootstrap** (``scipy.stats.bootstrap`` with
``paired=True``; BCa, 10,000 seeded resamples; percentile when BCa is undefined), and beyond 1,000 rows the
Student t interval (the bootstrap costs ~0.1 s per 1,000 rows; the t interval is accurate at that size).
When every difference is the same the interval is that value exactly.

numpy and scipy are imported inside the functions: ``import scipy.stats`` alone takes about a second, and
importing this module must stay cheap for every surface that imports the core.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nbplayground.core.errors import BadParameterError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: Resamples of the paired bootstrap interval.
BOOTSTRAP_RESAMPLES = 10_000
#: Monte Carlo sign flips of the permutation test (exact enumeration when 2**m is at most this).
PERMUTATION_RESAMPLES = 20_000
#: Above this many paired rows the interval is the Student t interval instead of the bootstrap.
BOOTSTRAP_MAX_N = 1_000
#: Above this many differing rows the paired t-test replaces the Monte Carlo permutation test.
PERMUTATION_MAX_N = 200

SIGN_TEST = "exact sign test"
PERMUTATION_TEST = "paired permutation test"
T_TEST = "paired t-test"

# Elements per bootstrap/permutation batch: bounds memory (8 bytes each) for any n.
_BATCH_ELEMENTS = 2_000_000


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean (or a proportion) with its confidence interval.

    ``mean`` is ``None`` when there is no value; ``low``/``high`` are ``None`` when there are too few
    values for an interval (fewer than 2 for a mean, none for a proportion).
    """

    n: int
    mean: float | None
    low: float | None
    high: float | None
    method: str
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    def __str__(self) -> str:
        if self.mean is None:
            return f"no values (n=0, {self.method})"
        span = "" if self.low is None or self.high is None else f" [{_fmt(self.low)}, {_fmt(self.high)}]"
        return f"{_fmt(self.mean)}{span} (n={self.n}, {_pct(self.confidence)} {self.method})"


@dataclass(frozen=True, slots=True)
class Paired:
    """The paired comparison of variants A and B over the rows scored in both; difference = B - A.

    ``wins`` are the rows where B scored higher, ``losses`` where it scored lower, ``n_ties`` where they
    are equal. ``p_value`` is two-sided (``None`` only when no row is scored in both). ``note`` says in
    one sentence what the numbers mean, including when there are too few rows to tell.
    """

    n: int
    mean_diff: float | None
    low: float | None
    high: float | None
    p_value: float | None
    test: str
    test_detail: str
    interval_method: str
    n_ties: int
    wins: int
    losses: int
    only_a: int
    only_b: int
    note: str
    confidence: float = 0.95
    labels: tuple[str, str] = ("A", "B")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (``labels`` as a list)."""
        out = asdict(self)
        out["labels"] = list(self.labels)
        return out

    def __str__(self) -> str:
        a, b = self.labels
        if self.mean_diff is None:
            return f"{b} − {a}: {self.note}"
        span = "" if self.low is None or self.high is None else f" [{_fmt(self.low, True)}, {_fmt(self.high, True)}]"
        p = "" if self.p_value is None else f", p = {self.p_value:.3g}"
        return (
            f"{b} − {a} = {_fmt(self.mean_diff, True)}{span}{p} ({self.test}, n={self.n}: "
            f"{self.wins} better, {self.losses} worse, {self.n_ties} ties)"
        )


def _fmt(x: float, sign: bool = False) -> str:
    return f"{x:+.4g}" if sign and x != 0 else f"{x:.4g}"


def _pct(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise BadParameterError(
            f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}.", field="confidence"
        )


def _finite(values: Iterable[float | None]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def _t_interval(values: list[float], confidence: float) -> tuple[float, float]:
    """Student t interval of the mean: mean ± t(1 - alpha/2, n - 1) · s / √n (len(values) ≥ 2)."""
    from scipy import stats

    n = len(values)
    mean = math.fsum(values) / n
    if all(v == values[0] for v in values):
        return values[0], values[0]
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def mean_interval(values: Iterable[float | None], confidence: float = 0.95) -> Interval:
    """The mean of ``values`` with its Student t interval; NaN/None dropped, fewer than 2 → no interval."""
    _check_confidence(confidence)
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return Interval(0, None, None, None, "Student t", confidence)
    mean = math.fsum(xs) / n
    if n < 2:
        return Interval(n, mean, None, None, "Student t", confidence)
    low, high = _t_interval(xs, confidence)
    return Interval(n, mean, low, high, "Student t", confidence)


def proportion_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """A pass rate ``successes / n`` with its Wilson score interval (good at 0 %, 100 % and small n)."""
    _check_confidence(confidence)
    if n < 0 or not 0 <= successes <= n:
        raise BadParameterError(
            f"proportion_interval needs 0 ≤ successes ≤ n, got successes={successes!r}, n={n!r}.",
            field="successes",
        )
    if n == 0:
        return Interval(0, None, None, None, "Wilson score", confidence)
    from scipy import stats

    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(n, successes / n, float(ci.low), float(ci.high), "Wilson score", confidence)


def per_row_means(values: Mapping[str, Iterable[float | None]]) -> dict[str, float]:
    """Each row's repeats averaged into one score (NaN/None dropped; rows with no finite value left out)."""
    out: dict[str, float] = {}
    for key, scores in values.items():
        xs = _finite(scores)
        if xs:
            out[key] = math.fsum(xs) / len(xs)
    return out


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation) of the finite values; ``None`` when none."""
    if not 0 <= q <= 100:
        raise BadParameterError(f"percentile q must be between 0 and 100 (e.g. 95), got {q!r}.", field="q")
    xs = _finite(values)
    if not xs:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(xs, dtype=float), q))


def min_rows_for(confidence: float = 0.95) -> int:
    """The fewest differing rows for which a two-sided sign or permutation test can reach p < 1 - confidence.

    The smallest p either test can give on m differing rows is 2 · 0.5**m (every row moved the same way).
    """
    alpha = 1 - confidence
    m = 1
    while 2 * 0.5**m >= alpha:
        m += 1
    return m


def _same_size(nonzero: list[float]) -> bool:
    """Whether every non-zero difference has the same size (scores are pass/fail-like)."""
    size = abs(nonzero[0])
    return all(math.isclose(abs(d), size, rel_tol=1e-9, abs_tol=0.0) for d in nonzero)


def _test(diffs: list[float], seed: int) -> tuple[float, str, str]:
    """Two-sided p-value of "B and A score the same", the test's name and how it was computed."""
    from scipy import stats

    nonzero = [d for d in diffs if d != 0]
    m = len(nonzero)
    if m == 0:
        return 1.0, SIGN_TEST, "no row differs"
    if _same_size(nonzero):
        wins = sum(d > 0 for d in nonzero)
        p = float(stats.binomtest(wins, m).pvalue)
        ties = len(diffs) - m
        detail = f"binomial on the {m} rows that differ" + (f" ({ties} ties left out)" if ties else "")
        return min(p, 1.0), SIGN_TEST, detail
    if m > PERMUTATION_MAX_N:
        res = stats.ttest_1samp(nonzero, 0.0)
        return float(res.pvalue), T_TEST, f"Student t on {m} differing rows (over {PERMUTATION_MAX_N})"
    import numpy as np

    def mean_stat(x: NDArray[np.float64], axis: int) -> Any:
        return np.mean(x, axis=axis)

    res = stats.permutation_test(
        (np.asarray(nonzero, dtype=float),),
        mean_stat,
        permutation_type="samples",
        vectorized=True,
        n_resamples=PERMUTATION_RESAMPLES,
        batch=max(1, _BATCH_ELEMENTS // m),
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    if 2**m <= PERMUTATION_RESAMPLES:
        detail = f"exact over all 2^{m} sign flips of the differing rows"
    else:
        detail = f"Monte Carlo, {PERMUTATION_RESAMPLES:,} sign flips, seed {seed}"
    return min(float(res.pvalue), 1.0), PERMUTATION_TEST, detail


def _interval(
    a: list[float], b: list[float], diffs: list[float], confidence: float, seed: int
) -> tuple[float | None, float | None, str]:
    """The interval of the mean paired difference and how it was computed."""
    n = len(diffs)
    if n < 2:
        return None, None, "none (fewer than 2 rows)"
    if all(d == diffs[0] for d in diffs):
        return diffs[0], diffs[0], "exact (every difference is the same)"
    if n > BOOTSTRAP_MAX_N:
        low, high = _t_interval(diffs, confidence)
        return low, high, f"Student t (over {BOOTSTRAP_MAX_N:,} rows)"
    import warnings

    import numpy as np
    from scipy import stats

    def mean_diff(x: NDArray[np.float64], y: NDArray[np.float64], axis: int) -> Any:
        return np.mean(y - x, axis=axis)

    data = (np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    common: dict[str, Any] = {"paired": True, "vectorized": True, "confidence_level": confidence,
                              "batch": max(1, _BATCH_ELEMENTS // n)}  # fmt: skip
    with warnings.catch_warnings():
        # BCa is undefined when (nearly) every resample lands on one side; then scipy warns and gives NaN.
        warnings.simplefilter("ignore")
        res = stats.bootstrap(data, mean_diff, n_resamples=BOOTSTRAP_RESAMPLES, method="BCa",
                              rng=np.random.default_rng(seed), **common)  # fmt: skip
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        method = "BCa"
        if not (math.isfinite(low) and math.isfinite(high)):
            res = stats.bootstrap(data, mean_diff, n_resamples=0, method="percentile",
                                  bootstrap_result=res, **common)  # fmt: skip
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
            method = "percentile"
    return low, high, f"paired bootstrap ({method}, {BOOTSTRAP_RESAMPLES:,} resamples, seed {seed})"


def paired(
    a: Mapping[str, float | None],
    b: Mapping[str, float | None],
    confidence: float = 0.95,
    seed: int = 0,
    *,
    labels: tuple[str, str] = ("A", "B"),
) -> Paired:
    """Compare per-row scores of variant A and variant B over the rows scored in both (difference = B - A).

    ``a`` and ``b`` map a row key to that row's score (average repeats first with :func:`per_row_means`).
    The result has the mean difference, its interval, a two-sided p-value (sign test for pass/fail-like
    scores, else a permutation test; see the module docstring), wins/losses/ties and a one-sentence note.
    Everything random is seeded with ``seed``: the same inputs give the same result.
    """
    _check_confidence(confidence)
    fa = {k: float(v) for k, v in a.items() if v is not None and math.isfinite(float(v))}
    fb = {k: float(v) for k, v in b.items() if v is not None and math.isfinite(float(v))}
    keys = [k for k in fa if k in fb]
    only_a, only_b = len(fa) - len(keys), sum(k not in fa for k in fb)
    xs, ys = [fa[k] for k in keys], [fb[k] for k in keys]
    diffs = [y - x for x, y in zip(xs, ys, strict=True)]
    n = len(diffs)
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    ties = n - wins - losses
    name_a, name_b = labels
    left_out = _left_out(only_a, only_b, labels)
    if n == 0:
        note = f"no row is scored in both {name_a} and {name_b}{left_out}"
        return Paired(0, None, None, None, None, "none", "no paired rows", "none", 0, 0, 0, only_a, only_b,
                      note, confidence, labels)  # fmt: skip
    mean = math.fsum(diffs) / n
    p, test, detail = _test(diffs, seed)
    low, high, method = _interval(xs, ys, diffs, confidence, seed)
    alpha = 1 - confidence
    need = min_rows_for(confidence)
    if wins + losses == 0:
        note = f"no difference on any row (n={n})"
    elif wins + losses < need:
        if ties:
            note = f"too few rows to tell ({wins + losses} of {n} rows differ; need ≥ {need} that differ for p < {alpha:.2g})"
        else:
            note = f"too few rows to tell (n={n}; need ≥ {need} for p < {alpha:.2g})"
    else:
        span = "" if low is None or high is None else f", {_pct(confidence)} interval {_fmt(low, True)} to {_fmt(high, True)}"
        verdict = "unlikely to be noise" if p < alpha else "could be noise"
        sign = "<" if p < alpha else "≥"
        note = f"{name_b} − {name_a} = {_fmt(mean, True)}{span}; p = {p:.3g} {sign} {alpha:.2g}: {verdict}"
    return Paired(n, mean, low, high, p, test, detail, method, ties, wins, losses, only_a, only_b,
                  note + left_out, confidence, labels)  # fmt: skip


def _left_out(only_a: int, only_b: int, labels: tuple[str, str]) -> str:
    parts = [f"{k} row{'s' * (k != 1)} scored only in {name}" for k, name in zip((only_a, only_b), labels, strict=True) if k]
    return f" ({' and '.join(parts)} left out)" if parts else ""
