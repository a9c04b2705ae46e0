"""assets.statistics pinned to hand-computed values (to about five decimals), each shown in a comment."""

import math

import polars as pl
import pytest

from assets import statistics as st

PLACES = 1e-5


def values(expression: pl.Expr, **columns: list) -> list:
    """The expression evaluated row by row on a frame of the given columns."""
    return pl.DataFrame(columns).select(expression.alias("out")).to_series().to_list()


def approx(expected: list) -> list:
    return [None if e is None else pytest.approx(e, abs=PLACES) for e in expected]


def test_ratio_is_null_where_the_denominator_is_zero_or_null():
    # 3 / 4 = 0.75; 1 / 0 and 1 / NULL are NULL.
    got = values(st.ratio(pl.col("a"), pl.col("b")), a=[3, 1, 1], b=[4, 0, None])
    assert got == approx([0.75, None, None])


def test_relative_lift():
    # 0.3 / 0.2 - 1 = 0.5; 0.1 / 0.2 - 1 = -0.5; holdout 0: NULL.
    got = values(st.relative_lift(pl.col("t"), pl.col("h")), t=[0.3, 0.1, 0.3], h=[0.2, 0.2, 0.0])
    assert got == approx([0.5, -0.5, None])


def test_log_rate_ratio_and_its_standard_error():
    s1, n1, s2, n2 = pl.col("s1"), pl.col("n1"), pl.col("s2"), pl.col("n2")
    cells = {"s1": [30, 0, 5], "n1": [100, 10, 0], "s2": [10, 5, 1], "n2": [50, 10, 2]}
    # 30/100 against 10/50: log(0.3 / 0.2) = log 1.5 = 0.405465;
    #   se = sqrt(1/30 - 1/100 + 1/10 - 1/50) = sqrt(0.033333 - 0.01 + 0.1 - 0.02) = sqrt(0.103333) = 0.321455.
    # 0/10 against 5/10, Haldane-Anscombe: 0.5/11 against 5.5/11: log(0.5 / 5.5) = log(1/11) = -2.397895;
    #   se = sqrt(1/0.5 - 1/11 + 1/5.5 - 1/11) = sqrt(2 - 0.090909 + 0.181818 - 0.090909) = sqrt(2) = 1.414214.
    # An empty arm (n1 = 0): NULL.
    assert values(st.log_rate_ratio(s1, n1, s2, n2), **cells) == approx([0.405465, -2.397895, None])
    assert values(st.log_rate_ratio_se(s1, n1, s2, n2), **cells) == approx([0.321455, 1.414214, None])


def test_cluster_sq_residuals():
    # Users (x_i, n_i) = (1, 2), (0, 1), (3, 3): R = 4 / 6 = 0.666667;
    # (1 - 1.333333)^2 + (0 - 0.666667)^2 + (3 - 2)^2 = 0.111111 + 0.444444 + 1 = 1.555556 (14/9).
    got = values(st.cluster_sq_residuals(pl.col("x"), pl.col("n")), x=[1, 0, 3], n=[2, 1, 3])
    assert got == approx([1.555556])


def test_cluster_log_rate():
    # log(4 / 6) = -0.405465; with the zero-cell correction log(4.5 / 7) = log(0.642857) = -0.441833.
    got = values(st.cluster_log_rate(pl.col("x"), pl.col("d"), pl.col("zero")), x=[4, 4], d=[6, 6], zero=[False, True])
    assert got == approx([-0.405465, -0.441833])


def test_cluster_relative_variance():
    # N = 3, sum n = 6, sum x = 4, sum (x_i - R n_i)^2 = 14/9: 3 / 2 * 1.555556 / 4^2 = 2.333333 / 16 = 0.145833.
    # No successes: 1 / 0.5 - 1 / (6 + 1) = 2 - 0.142857 = 1.857143.
    # A single user: no variance estimate, NULL.
    got = values(
        st.cluster_relative_variance(pl.col("users"), pl.col("d"), pl.col("x"), pl.col("sq")),
        users=[3, 3, 1],
        d=[6, 6, 4],
        x=[4, 0, 2],
        sq=[14 / 9, 0.0, 0.0],
    )
    assert got == approx([0.145833, 1.857143, None])


def test_log_ratio_interval():
    # log 1.5 = 0.405465, se 0.321455: 1.959964 * 0.321455 = 0.630040;
    # exp(0.405465 - 0.630040) - 1 = exp(-0.224575) - 1 = -0.201144;
    # exp(0.405465 + 0.630040) - 1 = exp(1.035505) - 1 = 1.816529.
    low, high = st.log_ratio_interval(pl.col("log_rr"), pl.col("se"))
    frame = pl.DataFrame({"log_rr": [math.log(1.5)], "se": [0.32145502536643183]})
    assert frame.select(low).item() == pytest.approx(-0.201144, abs=PLACES)
    assert frame.select(high).item() == pytest.approx(1.816529, abs=PLACES)


def test_normal_two_sided_p_value():
    # P(|Z| >= 1.959964) = 0.05 on either sign; P(|Z| >= 1) = erfc(1 / sqrt 2) = 0.317311; P(|Z| >= 0) = 1.
    got = values(st.normal_two_sided_p_value(pl.col("z")), z=[1.959963984540054, -1.959963984540054, 1.0, 0.0])
    assert got == approx([0.05, 0.05, 0.317311, 1.0])


def test_two_proportion_p_value():
    # 30/100 against 10/50: pooled P = 40 / 150 = 0.266667; P (1 - P) = 0.195556;
    # se = sqrt(0.195556 * (1/100 + 1/50)) = sqrt(0.0058667) = 0.076594; z = (0.3 - 0.2) / 0.076594 = 1.305582;
    # p = erfc(1.305582 / sqrt 2) = 0.191695.
    # Pooled rate 0 (0/10, 0/10) or 1 (10/10, 5/5): 1.0. An empty group: NULL.
    got = values(
        st.two_proportion_p_value(pl.col("s1"), pl.col("n1"), pl.col("s2"), pl.col("n2")),
        s1=[30, 0, 10, 0],
        n1=[100, 10, 10, 0],
        s2=[10, 0, 5, 1],
        n2=[50, 10, 5, 2],
    )
    assert got == approx([0.191695, 1.0, 1.0, None])


def test_wald_p_value():
    # 0.405465 / 0.321455 = 1.261343; p = erfc(1.261343 / sqrt 2) = 0.207185 (either sign).
    # se = 0: 1.0 for a zero estimate, 0.0 otherwise.
    got = values(
        st.wald_p_value(pl.col("est"), pl.col("se")),
        est=[math.log(1.5), -math.log(1.5), 0.0, 0.2],
        se=[0.32145502536643183, 0.32145502536643183, 0.0, 0.0],
    )
    assert got == approx([0.207185, 0.207185, 1.0, 0.0])


def test_sample_ratio_chi_square_and_its_p_value():
    # 90 treated, 10 held out, holdout share 0.2: expected 80 and 20;
    # (90 - 80)^2 / 80 + (10 - 20)^2 / 20 = 1.25 + 5 = 6.25. An exact split: 0. No users: NULL.
    got = values(
        st.sample_ratio_chi_square(pl.col("t"), pl.col("h"), pl.col("share")),
        t=[90.0, 80.0, 0.0],
        h=[10.0, 20.0, 0.0],
        share=[0.2, 0.2, 0.2],
    )
    assert got == approx([6.25, 0.0, None])
    # P(chi2_1 >= 6.25) = erfc(sqrt(3.125)) = erfc(1.767767) = P(|Z| >= 2.5) = 0.012419;
    # P(chi2_1 >= 3.841459) = P(|Z| >= 1.959964) = 0.05; P(chi2_1 >= 0) = 1.
    got = values(st.chi_square_1df_p_value(pl.col("chi2")), chi2=[6.25, 3.841458820694124, 0.0])
    assert got == approx([0.012419, 0.05, 1.0])


def test_erfc():
    # erfc(0) = 1, erfc(0.5) = 0.479500, erfc(1) = 0.157299; NULL and NaN give NULL.
    got = values(st.erfc(pl.col("x")), x=[0.0, 0.5, 1.0, None, float("nan")])
    assert got == approx([1.0, 0.4795, 0.157299, None, None])


def test_two_proportion_p_value_scalar():
    # The same cases as above, in Python numbers: 0.191695; pooled rate 0 or 1: 1.0; an empty group: None.
    assert st.two_proportion_p_value_scalar(30, 100, 10, 50) == pytest.approx(0.191695, abs=PLACES)
    assert st.two_proportion_p_value_scalar(0, 10, 0, 10) == 1.0
    assert st.two_proportion_p_value_scalar(10, 10, 5, 5) == 1.0
    assert st.two_proportion_p_value_scalar(0, 0, 1, 2) is None


RHO2 = 0.00158723  # alpha 0.05, N* 5000: (-2 log 0.05 + log(1 - 2 log 0.05)) / 5000 = (5.991465 + 1.944700) / 5000


def test_sequential_rho_squared():
    # (5.991465 + log 6.991465) / 5000 = 7.936165 / 5000 = 0.00158723, the same on numbers and expressions
    assert st.sequential_rho_squared(0.05, 5000.0) == pytest.approx(RHO2, abs=1e-8)
    assert values(st.sequential_rho_squared(pl.col("a"), 5000.0), a=[0.05]) == [pytest.approx(RHO2, abs=1e-8)]


def test_sequential_multiplier():
    # n = 3000: n rho^2 = 4.761693; sqrt(2 * 5.761693 / 4.761693 * log(sqrt(5.761693) / 0.05))
    #   = sqrt(2.420022 * log(48.00705)) = sqrt(2.420022 * 3.871348) = sqrt(9.368747) = 3.060838
    # n = 100: n rho^2 = 0.158723; sqrt(2 * 1.158723 / 0.158723 * log(1.076440 / 0.05)) = sqrt(14.60073 * 3.069353)
    #   = 6.694389; n = 0: NULL
    got = values(
        st.sequential_multiplier(pl.col("n"), pl.col("a"), pl.lit(st.sequential_rho_squared(0.05, 5000.0))),
        n=[3000, 100, 0],
        a=[0.05, 0.05, 0.05],
    )
    assert got == approx([3.060838, 6.694389, None])


def test_sequential_interval_is_wider_than_the_fixed_one():
    # log 1.5 = 0.405465, se 0.1, n 3000: half-width 0.3060838 (fixed: 0.195996):
    #   exp(0.099381) - 1 = 0.104487, exp(0.711549) - 1 = 1.037144
    rho2 = pl.lit(st.sequential_rho_squared(0.05, 5000.0))
    low, high = st.sequential_interval(pl.col("l"), pl.col("se"), pl.col("n"), pl.col("a"), rho2)
    columns = {"l": [math.log(1.5)], "se": [0.1], "n": [3000], "a": [0.05]}
    assert values(low, **columns) == approx([0.104487])
    assert values(high, **columns) == approx([1.037144])


def test_sequential_p_value_matches_the_interval():
    # at z = 3.060838 (the multiplier at n = 3000): sqrt(5.761693) * exp(-4.761693 * 9.368747 / (2 * 5.761693))
    #   = 2.400353 * exp(-3.871348) = 0.05 exactly at the interval's edge; z = 0: 1 (capped); z = 5: 2.400353 *
    #   exp(-4.761693 * 25 / 11.523386) = 2.400353 * 3.2599e-5 = 7.8249e-5
    got = values(
        st.sequential_p_value(pl.col("z"), pl.col("n"), pl.lit(st.sequential_rho_squared(0.05, 5000.0))),
        z=[3.060838, 0.0, 5.0],
        n=[3000, 3000, 3000],
    )
    assert got == [pytest.approx(0.05, abs=1e-6), 1.0, pytest.approx(7.8249e-5, rel=1e-3)]


def test_holm_alpha():
    # family a: 0.01, 0.012, 0.04 all pass alpha/3, alpha/2, alpha: levels 0.016667, 0.025, 0.05; NULL: alpha/3
    # family b: 0.03 fails alpha/2 = 0.025 at rank 1, so both tests are read at 0.025
    got = values(
        st.holm_alpha(pl.col("p"), 0.05, "g"), g=["a", "a", "a", "a", "b", "b"], p=[0.01, 0.04, 0.012, None, 0.03, 0.2]
    )
    assert got == approx([0.05 / 3, 0.05, 0.025, 0.05 / 3, 0.025, 0.025])


def test_cluster_cross_residuals():
    # x = (1, 0, 2), n = (1, 1, 2), w = (1, 1, 0): R = 3/4, C = 2/4; x - R n = (0.25, -0.75, 0.5),
    # w - C n = (0.5, 0.5, -1); sum of products = 0.125 - 0.375 - 0.5 = -0.75.
    frame = pl.DataFrame({"x": [1, 0, 2], "n": [1, 1, 2], "w": [1.0, 1.0, 0.0]})
    got = frame.select(st.cluster_cross_residuals(pl.col("x"), pl.col("n"), pl.col("w"))).item()
    assert got == pytest.approx(-0.75, abs=PLACES)


def test_cuped_theta_pools_the_arms_and_is_zero_without_covariate_variation():
    # (2 + 1) / (4 + 2) = 0.5; (1 + 1) / (0 + 0): the covariate is constant, theta = 0.
    got = values(
        st.cuped_theta(pl.col("xt"), pl.col("xh"), pl.col("wt"), pl.col("wh")),
        xt=[2.0, 1.0],
        xh=[1.0, 1.0],
        wt=[4.0, 0.0],
        wh=[2.0, 0.0],
    )
    assert got == approx([0.5, 0.0])


def test_cuped_rate_and_residuals():
    # 0.3 - 0.5 (0.2 - 0.1) = 0.25; 10 - 2 * 0.5 * 2 + 0.25 * 4 = 9.
    assert values(
        st.cuped_rate(pl.col("r"), pl.col("t"), pl.col("c"), pl.col("p")), r=[0.3], t=[0.5], c=[0.2], p=[0.1]
    ) == (approx([0.25]))
    got = values(
        st.cuped_sq_residuals(pl.col("a"), pl.col("b"), pl.col("c"), pl.col("t")), a=[10.0], b=[2.0], c=[4.0], t=[0.5]
    )
    assert got == approx([9.0])


def test_rate_relative_variance():
    # 4 / 3 * 9 / 10^2 / 0.5^2 = 0.48; a single user or a rate of 0: NULL.
    got = values(
        st.rate_relative_variance(pl.col("n"), pl.col("d"), pl.col("r"), pl.col("s")),
        n=[4, 1, 4],
        d=[10, 10, 10],
        r=[0.5, 0.5, 0.0],
        s=[9.0, 9.0, 9.0],
    )
    assert got == approx([0.48, None, None])


def test_cuped_with_unit_days_is_the_classic_adjustment():
    # one day per user (n = 1): theta is the pooled within-arm slope of x on c, and the adjusted arm mean is
    # mean(x) - theta (mean(c) - pooled mean(c)). Treatment x = (1, 0, 1, 1), c = (1, 0, 0.5, 0.5): R = 0.75,
    # C = 0.5, residuals (0.25, -0.75, 0.25, 0.25) and (0.5, -0.5, 0, 0): sxw = 0.5, sww = 0.5. Holdout
    # x = (0, 1, 0), c = (0, 1, 0.5): R = 1/3, C = 0.5, (-1/3, 2/3, -1/3) and (-0.5, 0.5, 0): sxw = 0.5,
    # sww = 0.5. theta = 1; pooled C = 0.5, so both adjusted rates equal the raw ones (0.75, 1/3);
    # treatment S = sum ((x - R) - (c - C))^2 = 0.0625 + 0.0625 + 0.0625 + 0.0625 = 0.25.
    theta = pl.DataFrame({"a": [0.5]}).select(st.cuped_theta(pl.col("a"), pl.col("a"), pl.col("a"), pl.col("a"))).item()
    assert theta == pytest.approx(1.0)
    s = values(
        st.cuped_sq_residuals(pl.col("a"), pl.col("b"), pl.col("c"), pl.col("t")), a=[0.75], b=[0.5], c=[0.5], t=[1.0]
    )
    assert s == approx([0.25])  # sxx = 0.0625 + 0.5625 + 0.0625 + 0.0625 = 0.75
