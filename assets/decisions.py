"""Decisions: how count rows become statistics and a status, for `assets.goals` and `assets.goal_cohort`.

The formulas are `assets.statistics`; what each column means, and the status rules, are in the
module docstrings of `assets.goals` and `assets.goal_cohort` and in docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from assets.statistics import (
    chi_square_1df_p_value,
    cluster_log_rate,
    cluster_relative_variance,
    cuped_rate,
    cuped_sq_residuals,
    cuped_theta,
    holm_alpha,
    log_rate_ratio,
    log_rate_ratio_se,
    log_ratio_interval,
    rate_relative_variance,
    ratio,
    relative_lift,
    sample_ratio_chi_square,
    sequential_interval,
    sequential_p_value,
    sequential_rho_squared,
    two_proportion_p_value,
    wald_p_value,
)

SRM_MIN_P_VALUE = 0.001
ALPHA = 0.05  # the error rate of each campaign's family of decisions (Holm within the campaign)
SEQUENTIAL_TUNING = 5000.0  # N*: the users (both arms) at which the confidence sequence is narrowest


def with_statistics(counts: pl.DataFrame) -> pl.DataFrame:
    """Day rows: add values, lift, CI, p-value, sample ratio check and status (module docstring) to
    count rows, users as independent trials; the fixed-horizon interval is also the primary one.

    Needs the four count columns, `holdout_share`, `kind` and `target` (and `direction`, default as `with_direction`).
    """
    counts = with_direction(counts)
    nt, nh = pl.col("treatment_users"), pl.col("holdout_users")
    st, sh = pl.col("treatment_successes"), pl.col("holdout_successes")
    frame = counts.with_columns(
        treatment_value=ratio(st, nt),
        holdout_value=ratio(sh, nh),
        _log_rr=log_rate_ratio(st, nt, sh, nh),
        _log_rr_se=log_rate_ratio_se(st, nt, sh, nh),
        _srm_chi2=sample_ratio_chi_square(nt.cast(pl.Float64), nh.cast(pl.Float64), pl.col("holdout_share")),
        p_value=two_proportion_p_value(st, nt, sh, nh),
    )
    ci_low, ci_high = log_ratio_interval(pl.col("_log_rr"), pl.col("_log_rr_se"))
    return _lift_and_sample_ratio(frame.with_columns(ci_low=ci_low, ci_high=ci_high)).with_columns(
        ci_low_fixed=pl.col("ci_low"),
        ci_high_fixed=pl.col("ci_high"),
        p_value_fixed=pl.col("p_value"),
        alpha=pl.lit(ALPHA),
        status=_day_status(),
        **_one_look_columns(),
    )


def _one_look_columns() -> dict[str, pl.Expr]:
    """A day row is one look at one day: its interval is the unadjusted one; no CUPED, no exposure view."""
    return {
        "lift_unadjusted": pl.col("lift"),
        "ci_low_unadjusted": pl.col("ci_low"),
        "ci_high_unadjusted": pl.col("ci_high"),
        "cuped_theta": pl.lit(None, pl.Float64),
        "treatment_exposed_users": pl.lit(None, pl.Int64),
        "exposed_value": pl.lit(None, pl.Float64),
        "exposed_lift": pl.lit(None, pl.Float64),
    }


def with_cluster_statistics(
    counts: pl.DataFrame, alpha: float = ALPHA, tuning: float = SEQUENTIAL_TUNING, family: str = "campaign_id"
) -> pl.DataFrame:
    """To-date rows: users as clusters (module docstring). Needs, per arm (`treatment_`, `holdout_`):
    `users` (N), `user_days` (sum n_i), `successes` (sum x_i), `sq_residuals` (sum (x_i - R n_i)^2);
    and `holdout_share`, `kind`, `target`, `margin` and the `family` column (Holm's family of tests).
    Adds the contract's count columns, the fixed-horizon statistics and the sequential ones with the status."""
    frame = _with_fixed_horizon(_own_estimates(_cluster_estimate(with_direction(counts))))
    rho2 = sequential_rho_squared(alpha, tuning)
    n, se = pl.col("treatment_users") + pl.col("holdout_users"), pl.col("_log_rr_se")
    null = pl.when(pl.col("kind") == "guardrail").then((1 + _harm_bound()).log()).otherwise(0.0)
    distance = pl.col("_log_rr") - null
    frame = frame.with_columns(
        p_value=pl.when(se == 0)
        .then(pl.when(distance == 0).then(1.0).otherwise(0.0))
        .otherwise(sequential_p_value(distance / se, n, pl.lit(rho2)))
    ).with_columns(alpha=holm_alpha(pl.col("p_value"), alpha, family))
    ci_low, ci_high = sequential_interval(pl.col("_log_rr"), se, n, pl.col("alpha"), pl.lit(rho2))
    low_u, high_u = sequential_interval(pl.col("_log_rr_u"), pl.col("_log_rr_se_u"), n, pl.col("alpha"), pl.lit(rho2))
    frame = frame.with_columns(ci_low=ci_low, ci_high=ci_high, ci_low_unadjusted=low_u, ci_high_unadjusted=high_u)
    return _lift_and_sample_ratio(frame).with_columns(status=_decision_status())


def with_cluster_day_statistics(counts: pl.DataFrame) -> pl.DataFrame:
    """Day rows of ratio and mean metrics: `with_cluster_statistics` read once, so the fixed-horizon interval and
    p-value are the primary ones (as for share day rows); no CUPED, no exposure view."""
    frame = with_cluster_statistics(counts)
    return (
        frame.with_columns(
            ci_low=pl.col("ci_low_fixed"),
            ci_high=pl.col("ci_high_fixed"),
            p_value=pl.col("p_value_fixed"),
            alpha=pl.lit(ALPHA),
        )
        .with_columns(**_one_look_columns())
        .with_columns(status=_day_status())
    )


def with_direction(counts: pl.DataFrame) -> pl.DataFrame:
    """`direction` where a row has none: increase for a goal, decrease for a guardrail (a rate that must not rise)."""
    default = pl.when(pl.col("kind") == "goal").then(pl.lit("increase")).otherwise(pl.lit("decrease"))
    if "direction" not in counts.columns:
        return counts.with_columns(direction=default)
    return counts.with_columns(direction=pl.col("direction").fill_null(default))


def _harm_bound() -> pl.Expr:
    """The relative change at a guardrail's margin in its harmful direction: +margin (a rise), -margin (a fall)."""
    return pl.when(pl.col("direction") == "increase").then(-pl.col("margin")).otherwise(pl.col("margin"))


def _cluster_estimate(counts: pl.DataFrame) -> pl.DataFrame:
    """Values, log(R_t / R_h) and its cluster standard error (CUPED-adjusted where it applies, with the unadjusted
    ones in `_log_rr_u`, `_log_rr_se_u`), the pooled rate and the sample ratio chi-square."""
    counts = _with_default_arm_stats(counts)
    t_n, h_n = pl.col("treatment_users"), pl.col("holdout_users")
    t_d, h_d = pl.col("treatment_user_days"), pl.col("holdout_user_days")
    t_x, h_x = pl.col("treatment_successes"), pl.col("holdout_successes")
    zero_cell = (t_x == 0) | (h_x == 0)
    defined = (t_n > 0) & (h_n > 0)
    log_rr = pl.when(defined).then(cluster_log_rate(t_x, t_d, zero_cell) - cluster_log_rate(h_x, h_d, zero_cell))
    se = (
        cluster_relative_variance(t_n, t_d, t_x, pl.col("treatment_sq_residuals"))
        + cluster_relative_variance(h_n, h_d, h_x, pl.col("holdout_sq_residuals"))
    ).sqrt()
    frame = counts.with_columns(
        _log_rr_u=log_rr,
        _log_rr_se_u=pl.when(defined).then(se),
        _defined=defined,
        _theta=cuped_theta(*(pl.col(f"{a}_{c}") for c in ("cross_residuals", "covariate_sq_residuals") for a in _ARMS)),
        _pooled_covariate=ratio(pl.col("treatment_covariate") + pl.col("holdout_covariate"), t_d + h_d),
        _pooled=ratio(t_x + h_x, t_d + h_d),
        _srm_chi2=sample_ratio_chi_square(t_n.cast(pl.Float64), h_n.cast(pl.Float64), pl.col("holdout_share")),
    )
    frame = frame.with_columns(
        **{
            f"_{a}_cuped": cuped_rate(
                ratio(pl.col(f"{a}_successes"), pl.col(f"{a}_user_days")),
                pl.col("_theta"),
                ratio(pl.col(f"{a}_covariate"), pl.col(f"{a}_user_days")),
                pl.col("_pooled_covariate"),
            )
            for a in _ARMS
        }
    )
    variances = [
        rate_relative_variance(
            pl.col(f"{a}_users"),
            pl.col(f"{a}_user_days"),
            pl.col(f"_{a}_cuped"),
            cuped_sq_residuals(*(pl.col(f"{a}_{c}") for c in _RESIDUALS), pl.col("_theta")),
        )
        for a in _ARMS
    ]
    applied = (
        defined
        & zero_cell.not_()
        & (pl.col("_theta") != 0)
        & (pl.col("_treatment_cuped") > 0)
        & (pl.col("_holdout_cuped") > 0)
        & (t_n > 1)
        & (h_n > 1)
    )
    return (
        frame.with_columns(_applied=applied)
        .with_columns(
            treatment_value=pl.when("_applied").then(pl.col("_treatment_cuped")).otherwise(ratio(t_x, t_d)),
            holdout_value=pl.when("_applied").then(pl.col("_holdout_cuped")).otherwise(ratio(h_x, h_d)),
            _log_rr=pl.when("_applied")
            .then(pl.col("_treatment_cuped").log() - pl.col("_holdout_cuped").log())
            .otherwise(pl.col("_log_rr_u")),
            _log_rr_se=pl.when("_applied").then((variances[0] + variances[1]).sqrt()).otherwise(pl.col("_log_rr_se_u")),
            cuped_theta=pl.when("_applied").then(pl.col("_theta")).when(defined).then(0.0),
            lift_unadjusted=relative_lift(ratio(t_x, t_d), ratio(h_x, h_d)),
            treatment_exposed_users=pl.col("treatment_exposed_users"),
            exposed_value=ratio(pl.col("treatment_exposed_successes"), pl.col("treatment_exposed_user_days")),
        )
        .with_columns(exposed_lift=relative_lift(pl.col("exposed_value"), ratio(h_x, h_d)))
    )


_ARMS = ("treatment", "holdout")
_RESIDUALS = ("sq_residuals", "cross_residuals", "covariate_sq_residuals")


def _own_estimates(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of a kind with its own estimator (`own_estimate`, assets.time_to_event) take its arm values
    (`estimate_treatment`, `estimate_holdout`) and the standard error of their log ratio (`estimate_log_se`)
    in place of the rate's; no CUPED and no exposure view for them."""
    if "own_estimate" not in frame.columns:
        return frame
    own = pl.col("own_estimate").fill_null(False)
    value_t, value_h, se = pl.col("estimate_treatment"), pl.col("estimate_holdout"), pl.col("estimate_log_se")
    log_rr = pl.when((value_t > 0) & (value_h > 0) & se.is_not_null()).then(value_t.log() - value_h.log())
    replaced = {
        "treatment_value": value_t,
        "holdout_value": value_h,
        "_log_rr": log_rr,
        "_log_rr_u": log_rr,
        "_log_rr_se": pl.when(log_rr.is_not_null()).then(se),
        "_log_rr_se_u": pl.when(log_rr.is_not_null()).then(se),
        "_defined": log_rr.is_not_null(),
        "_pooled": pl.lit(None, pl.Float64),
        "cuped_theta": pl.lit(None, pl.Float64),
        "lift_unadjusted": relative_lift(value_t, value_h),
        "treatment_exposed_users": pl.lit(None, pl.Int64),
        "exposed_value": pl.lit(None, pl.Float64),
        "exposed_lift": pl.lit(None, pl.Float64),
    }
    return frame.with_columns(**{k: pl.when(own).then(v).otherwise(pl.col(k)) for k, v in replaced.items()})


def _with_default_arm_stats(counts: pl.DataFrame) -> pl.DataFrame:
    """Counts without a covariate get a constant one (no CUPED) and, without exposure counts, NULL ones."""
    defaults = {
        **{f"{a}_{c}": pl.lit(0.0) for a in _ARMS for c in ("covariate", "cross_residuals", "covariate_sq_residuals")},
        **{f"treatment_exposed_{c}": pl.lit(None, pl.Int64) for c in ("users", "user_days", "successes")},
    }
    return counts.with_columns(**{k: v for k, v in defaults.items() if k not in counts.columns})


def _with_fixed_horizon(frame: pl.DataFrame) -> pl.DataFrame:
    """The secondary, fixed-horizon 95% interval and Wald p-value (valid for one look only)."""
    pooled = pl.col("_pooled")
    ci_low, ci_high = log_ratio_interval(pl.col("_log_rr"), pl.col("_log_rr_se"))
    return frame.with_columns(
        ci_low_fixed=ci_low,
        ci_high_fixed=ci_high,
        p_value_fixed=pl.when(pl.col("_defined").not_())
        .then(None)
        .when((pooled == 0) | (pooled == 1))
        .then(1.0)
        .otherwise(wald_p_value(pl.col("_log_rr"), pl.col("_log_rr_se"))),
    )


def _lift_and_sample_ratio(frame: pl.DataFrame) -> pl.DataFrame:
    """From the values and `_srm_chi2`: lift, sample ratio p-value and check."""
    return frame.with_columns(
        lift=relative_lift(pl.col("treatment_value"), pl.col("holdout_value")),
        srm_p_value=chi_square_1df_p_value(pl.col("_srm_chi2")),
    ).with_columns(srm_ok=pl.col("srm_p_value") >= SRM_MIN_P_VALUE)


def _at_target() -> pl.Expr:
    return (
        pl.when(pl.col("holdout_value") == 0)
        .then(pl.col("treatment_value") > 0)  # infinite lift
        .otherwise(pl.col("lift") >= pl.col("target"))
    )


def _goal_status() -> pl.Expr:
    """Increase: `met` when significantly up and at or above the target; decrease: significantly down and at or
    below its (negative) target. `not_met` when the whole interval misses the target on the wrong side."""
    down = pl.col("direction") == "decrease"
    at_or_below = pl.when(pl.col("holdout_value") == 0).then(False).otherwise(pl.col("lift") <= pl.col("target"))
    met = pl.when(down).then((pl.col("ci_high") < 0) & at_or_below).otherwise((pl.col("ci_low") > 0) & _at_target())
    not_met = pl.when(down).then(pl.col("ci_low") > pl.col("target")).otherwise(pl.col("ci_high") < pl.col("target"))
    return pl.when(met).then(pl.lit("met")).when(not_met).then(pl.lit("not_met")).otherwise(pl.lit("inconclusive"))


def _checked(status: pl.Expr) -> pl.Expr:
    """`no_data` for an empty arm, `srm_fail` for a failed sample ratio check, else `status`."""
    empty_arm = (pl.col("treatment_users") == 0) | (pl.col("holdout_users") == 0)
    return (
        pl.when(empty_arm)
        .then(pl.lit("no_data"))
        .when(pl.col("srm_ok").not_())
        .then(pl.lit("srm_fail"))
        .otherwise(status)
    )


def _day_status() -> pl.Expr:
    """Day rows (a one-day diagnostic): a guardrail is `breached` on a significant rise, else `ok`."""
    harmed = pl.when(pl.col("direction") == "increase").then(pl.col("ci_high") < 0).otherwise(pl.col("ci_low") > 0)
    guardrail = pl.when(harmed).then(pl.lit("breached")).otherwise(pl.lit("ok"))
    return _checked(pl.when(pl.col("kind") == "goal").then(_goal_status()).otherwise(guardrail))


def _decision_status() -> pl.Expr:
    """To-date rows: a guardrail is `breached` when its harm (a rise; a fall for direction increase) is shown beyond
    its margin, `ok` when shown within it."""
    up = pl.col("direction") == "increase"
    bound = _harm_bound()
    breached = pl.when(up).then(pl.col("ci_high") < bound).otherwise(pl.col("ci_low") > bound)
    ok = pl.when(up).then(pl.col("ci_low") > bound).otherwise(pl.col("ci_high") < bound)
    guardrail = pl.when(breached).then(pl.lit("breached")).when(ok).then(pl.lit("ok")).otherwise(pl.lit("inconclusive"))
    return _checked(pl.when(pl.col("kind") == "goal").then(_goal_status()).otherwise(guardrail))


def gate_by_guardrails(frame: pl.DataFrame, by: str | list[str] = "goal_id") -> pl.DataFrame:
    """A goal `met` while one of its guardrails (same `by`) is `breached` becomes `blocked_by_guardrail`."""
    breached = ((pl.col("kind") == "guardrail") & (pl.col("status") == "breached")).any().over(by)
    blocked = (pl.col("kind") == "goal") & (pl.col("status") == "met") & breached
    return frame.with_columns(status=pl.when(blocked).then(pl.lit("blocked_by_guardrail")).otherwise(pl.col("status")))


def with_aa_checks(frame: pl.DataFrame, untreated: Collection[str]) -> pl.DataFrame:
    """Rows of an A/A campaign (`treated: false`, nobody treated): `aa_ok` when the interval covers zero,
    `aa_failed` when it does not, `inconclusive` when it is undefined; `no_data` and `srm_fail` stand. Never `met`."""
    covers = (pl.col("ci_low") <= 0) & (pl.col("ci_high") >= 0)
    aa = pl.col("campaign_id").is_in(list(untreated)) & pl.col("status").is_in(["no_data", "srm_fail"]).not_()
    checked = pl.when(covers).then(pl.lit("aa_ok")).when(covers.not_()).then(pl.lit("aa_failed")).otherwise(None)
    return frame.with_columns(
        status=pl.when(aa).then(checked.fill_null(pl.lit("inconclusive"))).otherwise(pl.col("status"))
    )
