"""Statistics of the pyramid: small pure functions over Polars expressions, one statistical idea each.

Every function works on `pl.Expr` (one call covers all the statistic rows of a frame), except
`two_proportion_p_value_scalar`. In the formulas below, an arm has n users, s successes, rate p = s / n;
t is treatment and h holdout.

- `ratio(a, b)` = a / b, NULL where b is 0 or NULL.
- `relative_lift(t, h)` = t / h - 1, NULL unless h > 0.
- `log_rate_ratio(s_t, n_t, s_h, n_h)` = log(p_t / p_h), computed as log(s_t / n_t) - log(s_h / n_h);
  `log_rate_ratio_se` = sqrt(1/s_t - 1/n_t + 1/s_h - 1/n_h), its delta-method standard error (users as
  independent trials). When an arm has no successes, 0.5 is added to every cell of the 2x2 table
  (s + 0.5, n + 1; Haldane-Anscombe) in both, so that they stay defined. NULL when an arm is empty.
- Users as clusters (user i measured on n_i days with x_i success days; per arm N users, rate
  R = sum x_i / sum n_i, the ratio estimator):
  `cluster_sq_residuals(x, n)` = sum (x_i - R n_i)^2 (an aggregation over the users of an arm; R is
  `cluster_rate`, taken as 0 where sum n = 0, and the callers report NaN for such an arm);
  `cluster_levers(x, n)` = sum (x_i - R n_i) n_i. Buckets (docs/scaling.md): the arms' sums over disjoint
  sets of users add up, and `moved_residuals` moves a set's residual sums from its own rates to the pooled
  ones: with d = R_b - R, sum (x_i - R n_i)^2 = S_b + 2 d lever_b + d^2 sum n_i^2 (exact algebra; the
  figures then agree with one bucket's to rounding, 1e-12 relative);
  `cluster_log_rate(x, d, zero_cell)` = log(sum x / sum n), or log((sum x + 0.5) / (sum n + 1)) when
  `zero_cell` (an arm of the comparison has no successes);
  `cluster_relative_variance(N, d, x, sq_residuals)` = Var(R) / R^2 by the delta method,
  N / (N - 1) * sum (x_i - R n_i)^2 / (sum x)^2; for an arm without successes the Haldane-Anscombe term
  1 / 0.5 - 1 / (sum n + 1); NULL for a single user (no variance estimate).
- CUPED (regression adjustment on a pre-entry covariate, docs/statistics.md): user i also has w_i = n_i c_i,
  c_i its pre-entry rate of the metric; per arm C = sum w / sum n.
  `cluster_cross_residuals(x, n, w)` = sum (x_i - R n_i)(w_i - C n_i) (an aggregation, like
  `cluster_sq_residuals`); `cuped_theta(sxw_t, sxw_h, sww_t, sww_h)` = (sxw_t + sxw_h) / (sww_t + sww_h),
  0 when the covariate does not vary; `cuped_rate(R, theta, C, C_pooled)` = R - theta (C - C_pooled);
  `cuped_sq_residuals(sxx, sxw, sww, theta)` = sxx - 2 theta sxw + theta^2 sww (the squared residuals of
  the adjusted outcomes x_i - theta w_i); `rate_relative_variance(N, d, rate, sq_residuals)` =
  N / (N - 1) * sq_residuals / (sum n)^2 / rate^2, Var / rate^2 of an (adjusted) ratio estimator.
- `log_ratio_interval(log_rr, se)`: 95% CI of the relative lift, exp(log_rr ± Z_95 se) - 1.
- `normal_two_sided_p_value(z)` = P(|Z| >= |z|) = erfc(|z| / sqrt 2).
- `two_proportion_p_value(s_1, n_1, s_2, n_2)`: two-sided pooled z-test, pooled rate
  P = (s_1 + s_2) / (n_1 + n_2), z = (p_1 - p_2) / sqrt(P (1 - P) (1/n_1 + 1/n_2)); 1.0 when P is 0 or 1
  (the standard error is 0); NULL when a group is empty. `two_proportion_p_value_scalar` is the same
  test on Python numbers (one formula serves both).
- `wald_p_value(estimate, se)`: two-sided p-value of estimate / se; when se = 0, 1.0 for a zero
  estimate and 0.0 otherwise.
- `sample_ratio_chi_square(n_t, n_h, holdout_share)`: chi-square of the arm sizes against the expected
  split, sum (observed - expected)^2 / expected with expected (N (1 - share), N share), N = n_t + n_h;
  NULL when N = 0. `chi_square_1df_p_value(chi2)` = P(X >= chi2) for 1 degree of freedom = erfc(sqrt(chi2 / 2)).
- `erfc(x)`: the complementary error function, element-wise.

Always-valid inference (docs/statistics.md): the asymptotic normal-mixture confidence sequence of Howard et al.
(2021), parametrized as GrowthBook's gbstats `SequentialTwoSidedTTest`. For n units, standard error se of an
estimate and tuning N* (the n at which the sequence is narrowest):
- `sequential_rho_squared(alpha, N*)` = rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / N*.
- `sequential_multiplier(n, alpha, rho^2)` = sqrt(2 (n rho^2 + 1) / (n rho^2) log(sqrt(n rho^2 + 1) / alpha)):
  the half-width in standard errors (the fixed-horizon interval's is Z_95).
- `sequential_p_value(z, n, rho^2)` = min(1, sqrt(n rho^2 + 1) exp(-n rho^2 z^2 / (2 (n rho^2 + 1)))), the
  always-valid p-value: below alpha exactly when the interval at alpha (same rho) excludes the null.
- `holm_alpha(p, alpha, over)`: the level each test of a family is read at under Holm's step-down:
  with the family's m p-values ranked k = 1..m, alpha / (m - k + 1) up to the first k whose p exceeds it,
  that first level after it; NULL p-values are not tests.

The order of floating-point operations is part of the contract: the lake's outputs are byte-compared
across refactors, so a formula is not rearranged even where the algebra would allow it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import polars as pl

Number = TypeVar("Number", pl.Expr, float)  # the shared formulas run on expressions or on Python numbers
Z_95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, NULL where the denominator is 0 or NULL."""
    return pl.when(denominator > 0).then(numerator / denominator)


def relative_lift(treatment: pl.Expr, holdout: pl.Expr) -> pl.Expr:
    """treatment / holdout - 1, NULL unless holdout > 0."""
    return pl.when(holdout > 0).then(treatment / holdout - 1)


def _haldane_anscombe(s1: pl.Expr, n1: pl.Expr, s2: pl.Expr, n2: pl.Expr) -> tuple[pl.Expr, ...]:
    """The 2x2 cells, with 0.5 added to every cell (s + 0.5, n + 1) when either arm has no successes."""
    zero_cell = (s1 == 0) | (s2 == 0)
    return (
        pl.when(zero_cell).then(s1 + 0.5).otherwise(s1),
        pl.when(zero_cell).then(n1 + 1).otherwise(n1),
        pl.when(zero_cell).then(s2 + 0.5).otherwise(s2),
        pl.when(zero_cell).then(n2 + 1).otherwise(n2),
    )


def log_rate_ratio(s1: pl.Expr, n1: pl.Expr, s2: pl.Expr, n2: pl.Expr) -> pl.Expr:
    """log((s1 / n1) / (s2 / n2)), Haldane-Anscombe corrected on a zero arm; NULL when an arm is empty."""
    s1_c, n1_c, s2_c, n2_c = _haldane_anscombe(s1, n1, s2, n2)
    return pl.when((n1 > 0) & (n2 > 0)).then((s1_c / n1_c).log() - (s2_c / n2_c).log())


def log_rate_ratio_se(s1: pl.Expr, n1: pl.Expr, s2: pl.Expr, n2: pl.Expr) -> pl.Expr:
    """Delta-method standard error of `log_rate_ratio`, users as independent trials."""
    s1_c, n1_c, s2_c, n2_c = _haldane_anscombe(s1, n1, s2, n2)
    return pl.when((n1 > 0) & (n2 > 0)).then((1 / s1_c - 1 / n1_c + 1 / s2_c - 1 / n2_c).sqrt())


def cluster_rate(successes: pl.Expr, days: pl.Expr) -> pl.Expr:
    """Aggregation over an arm's users: R = sum x / sum n, 0 where sum n = 0 (the residuals' reference)."""
    x, n = successes.cast(pl.Float64), days.cast(pl.Float64)
    return pl.when(n.sum() != 0).then(x.sum() / n.sum()).otherwise(0.0)


def cluster_sq_residuals(successes: pl.Expr, days: pl.Expr) -> pl.Expr:
    """Aggregation over an arm's users: sum (x_i - R n_i)^2 with R = `cluster_rate`."""
    x, n = successes.cast(pl.Float64), days.cast(pl.Float64)
    return ((x - cluster_rate(successes, days) * n) ** 2).sum()


def cluster_levers(successes: pl.Expr, days: pl.Expr) -> pl.Expr:
    """Aggregation over an arm's users: sum (x_i - R n_i) n_i with R = `cluster_rate` (see `moved_residuals`)."""
    x, n = successes.cast(pl.Float64), days.cast(pl.Float64)
    return ((x - cluster_rate(successes, days) * n) * n).sum()


def moved_residuals(
    cross: pl.Expr, lever_x: pl.Expr, lever_w: pl.Expr, n_sq: pl.Expr, shift_x: pl.Expr, shift_w: pl.Expr
) -> pl.Expr:
    """sum (x_i - R' n_i)(w_i - C' n_i) from the same sum about R, C: with d = R - R', e = C - C',
    cross + d lever_w + e lever_x + d e sum n_i^2 (lever_x = sum (x_i - R n_i) n_i); x = w gives the squares."""
    return cross + shift_x * lever_w + shift_w * lever_x + shift_x * shift_w * n_sq


def cluster_log_rate(successes: pl.Expr, user_days: pl.Expr, zero_cell: pl.Expr) -> pl.Expr:
    """log(sum x / sum n), or log((sum x + 0.5) / (sum n + 1)) where `zero_cell` (Haldane-Anscombe)."""
    return pl.when(zero_cell).then(((successes + 0.5) / (user_days + 1)).log()).otherwise((successes / user_days).log())


def cluster_relative_variance(users: pl.Expr, user_days: pl.Expr, successes: pl.Expr, sq_residuals: pl.Expr) -> pl.Expr:
    """Var(R) / R^2 of an arm's ratio estimator, users as clusters (delta method); NULL for one user."""
    cluster = users / (users - 1) * sq_residuals / successes.cast(pl.Float64) ** 2
    return pl.when(successes == 0).then(1 / 0.5 - 1 / (user_days + 1)).when(users > 1).then(cluster)


def cluster_cross_residuals(successes: pl.Expr, days: pl.Expr, covariate: pl.Expr) -> pl.Expr:
    """Aggregation over an arm's users: sum (x_i - R n_i)(w_i - C n_i), R and C the `cluster_rate`s of x and w."""
    x, n, w = successes.cast(pl.Float64), days.cast(pl.Float64), covariate.cast(pl.Float64)
    return ((x - cluster_rate(successes, days) * n) * (w - cluster_rate(covariate, days) * n)).sum()


def cuped_theta(sxw_t: pl.Expr, sxw_h: pl.Expr, sww_t: pl.Expr, sww_h: pl.Expr) -> pl.Expr:
    """The pooled within-arm regression slope of the outcome on the covariate; 0 when the covariate is constant."""
    sww = sww_t + sww_h
    return pl.when(sww > 0).then((sxw_t + sxw_h) / sww).otherwise(0.0)


def cuped_rate(rate: pl.Expr, theta: pl.Expr, covariate_mean: pl.Expr, pooled_covariate_mean: pl.Expr) -> pl.Expr:
    """The CUPED-adjusted ratio estimator of an arm: R - theta (C - C_pooled)."""
    return rate - theta * (covariate_mean - pooled_covariate_mean)


def cuped_sq_residuals(sxx: pl.Expr, sxw: pl.Expr, sww: pl.Expr, theta: pl.Expr) -> pl.Expr:
    """sum of the adjusted outcomes' squared residuals: sxx - 2 theta sxw + theta^2 sww."""
    return sxx - 2 * theta * sxw + theta**2 * sww


def rate_relative_variance(users: pl.Expr, user_days: pl.Expr, rate: pl.Expr, sq_residuals: pl.Expr) -> pl.Expr:
    """Var(rate) / rate^2 of a ratio estimator, users as clusters: N / (N - 1) * S / (sum n)^2 / rate^2."""
    days = user_days.cast(pl.Float64)
    return pl.when((users > 1) & (rate > 0)).then(users / (users - 1) * sq_residuals / days**2 / rate**2)


def log_ratio_interval(log_rr: pl.Expr, se: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """95% CI (low, high) of the relative lift from log(ratio) and its standard error."""
    return (log_rr - Z_95 * se).exp() - 1, (log_rr + Z_95 * se).exp() - 1


def normal_two_sided_p_value(z: pl.Expr) -> pl.Expr:
    """P(|Z| >= |z|) for a standard normal Z: erfc(|z| / sqrt 2)."""
    return _two_sided(z, erfc)


def two_proportion_p_value(s1: pl.Expr, n1: pl.Expr, s2: pl.Expr, n2: pl.Expr) -> pl.Expr:
    """Two-sided pooled two-proportion z-test; 1.0 when the pooled rate is 0 or 1, NULL for an empty group."""
    se = _two_proportion_se(s1, n1, s2, n2, pl.Expr.sqrt)
    return (
        pl.when((n1 <= 0) | (n2 <= 0))
        .then(None)
        .when(se == 0)
        .then(1.0)
        .otherwise(_two_sided(_two_proportion_z(s1, n1, s2, n2, se), erfc))
    )


def two_proportion_p_value_scalar(s1: int, n1: int, s2: int, n2: int) -> float | None:
    """`two_proportion_p_value` for one pair of groups, in Python floats.

    Both forms are kept because Polars divides a column by a constant through its reciprocal, which
    can differ in the last bit from Python's division; each form keeps its callers' outputs unchanged.
    """
    if n1 <= 0 or n2 <= 0:
        return None
    se = _two_proportion_se(s1, n1, s2, n2, math.sqrt)
    if se == 0:
        return 1.0
    return _two_sided(_two_proportion_z(s1, n1, s2, n2, se), math.erfc)


def _two_proportion_se(s1: Number, n1: Number, s2: Number, n2: Number, sqrt: Callable) -> Number:
    """sqrt(P (1 - P) (1/n1 + 1/n2)) with the pooled rate P, for expressions or numbers alike."""
    pooled = (s1 + s2) / (n1 + n2)
    return sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))


def _two_proportion_z(s1: Number, n1: Number, s2: Number, n2: Number, se: Number) -> Number:
    return (s1 / n1 - s2 / n2) / se


def _two_sided(z: Number, erfc: Callable) -> Number:
    return erfc(abs(z) / math.sqrt(2))


def wald_p_value(estimate: pl.Expr, se: pl.Expr) -> pl.Expr:
    """Two-sided p-value of estimate / se; with se = 0: 1.0 for a zero estimate, else 0.0."""
    return (
        pl.when(se == 0)
        .then(pl.when(estimate == 0).then(1.0).otherwise(0.0))
        .otherwise(normal_two_sided_p_value(estimate / se))
    )


def sample_ratio_chi_square(treatment: pl.Expr, holdout: pl.Expr, holdout_share: pl.Expr) -> pl.Expr:
    """Chi-square of the arm sizes (floats) against the split (1 - share, share); NULL when both are 0."""
    total = treatment + holdout
    expected_t, expected_h = total * (1 - holdout_share), total * holdout_share
    chi2 = (treatment - expected_t) ** 2 / expected_t + (holdout - expected_h) ** 2 / expected_h
    return pl.when(total > 0).then(chi2)


def chi_square_1df_p_value(chi2: pl.Expr) -> pl.Expr:
    """P(X >= chi2) for a chi-square X with 1 degree of freedom: erfc(sqrt(chi2 / 2))."""
    return erfc((chi2 / 2).sqrt())


def sequential_rho_squared(alpha: Number, tuning: float) -> Number:
    """rho^2 of the normal mixture: (-2 log alpha + log(1 - 2 log alpha)) / tuning (GrowthBook's rho, squared)."""
    log_alpha = alpha.log() if isinstance(alpha, pl.Expr) else math.log(alpha)
    minus_two_log = -2 * log_alpha
    log_term = (minus_two_log + 1).log() if isinstance(alpha, pl.Expr) else math.log(minus_two_log + 1)
    return (minus_two_log + log_term) / tuning


def sequential_multiplier(n: pl.Expr, alpha: pl.Expr, rho_squared: pl.Expr) -> pl.Expr:
    """Half-width of the confidence sequence in standard errors; NULL for n <= 0."""
    nr2 = n * rho_squared
    return pl.when(n > 0).then((2 * (nr2 + 1) / nr2 * ((nr2 + 1).sqrt() / alpha).log()).sqrt())


def sequential_interval(
    log_rr: pl.Expr, se: pl.Expr, n: pl.Expr, alpha: pl.Expr, rho_squared: pl.Expr
) -> tuple[pl.Expr, pl.Expr]:
    """Confidence sequence (low, high) of the relative lift from log(ratio), its se and n units."""
    half = sequential_multiplier(n, alpha, rho_squared) * se
    return (log_rr - half).exp() - 1, (log_rr + half).exp() - 1


def sequential_p_value(z: pl.Expr, n: pl.Expr, rho_squared: pl.Expr) -> pl.Expr:
    """Always-valid two-sided p-value of z = estimate / se: min(1, 1 / e-value) of the normal mixture."""
    nr2 = n * rho_squared
    log_evalue = nr2 * z**2 / (2 * (nr2 + 1)) - (nr2 + 1).sqrt().log()
    return pl.when(n > 0).then((-log_evalue).exp().clip(upper_bound=1.0))


def holm_alpha(p_value: pl.Expr, alpha: float, over: str | list[str]) -> pl.Expr:
    """The Holm step-down level of each test in its family (`over`); alpha / m for a NULL p-value."""
    rank = p_value.rank("ordinal").over(over)
    tests = p_value.count().over(over)
    first_kept = pl.when(p_value > alpha / (tests - rank + 1)).then(rank).min().over(over)
    step = pl.min_horizontal(rank, first_kept.fill_null(rank))
    return pl.when(p_value.is_null()).then(alpha / pl.max_horizontal(tests, 1)).otherwise(alpha / (tests - step + 1))


def erfc(x: pl.Expr) -> pl.Expr:
    """Complementary error function, element-wise (math.erfc over the few statistic rows); NaN -> NULL."""
    vectorized = np.vectorize(math.erfc, otypes=[float])
    return x.map_batches(
        lambda s: pl.Series(vectorized(s.cast(pl.Float64).to_numpy()), dtype=pl.Float64).fill_nan(None),
        return_dtype=pl.Float64,
    )


def contribution_interval(
    s_t: pl.Expr, n_t: pl.Expr, s_h: pl.Expr, n_h: pl.Expr, total_users: int
) -> tuple[pl.Expr, pl.Expr]:
    """Agresti-Caffo 95% interval of (p_t - p_h) scaled by n_t / N (module docstring); NULL when an arm
    is empty or N = 0."""
    p_t, p_h = (s_t + 1) / (n_t + 2), (s_h + 1) / (n_h + 2)
    se = (p_t * (1 - p_t) / (n_t + 2) + p_h * (1 - p_h) / (n_h + 2)).sqrt()
    defined = (n_t > 0) & (n_h > 0) & pl.lit(total_users > 0)
    scale = n_t / max(total_users, 1)
    low, high = (p_t - p_h - Z_95 * se) * scale, (p_t - p_h + Z_95 * se) * scale
    return pl.when(defined).then(low), pl.when(defined).then(high)
