"""The backtest as readable text: per-period NDCG@10 and HitRate@10 per strategy, then a summary."""

from __future__ import annotations

from driftloop.backtest.runner import HIT_RATE, NDCG, POPULARITY, BacktestResult, StrategyResult

_RETRAINED = "*"


def _cell(value: float | None, marked: bool) -> str:
    text = "-" if value is None else f"{value:.4f}"
    return f"{text}{_RETRAINED if marked else ' '}"


def _metric_table(result: BacktestResult, metric: str, title: str) -> list[str]:
    columns: list[StrategyResult] = [*result.strategies.values(), result.popularity]
    width = max(9, *(len(column.name) + 2 for column in columns))
    lines = [
        f"{title} ({_RETRAINED} = model retrained before the period)",
        f"{'period':<12}{'users':>7}" + "".join(f"{column.name:>{width}} " for column in columns),
    ]
    for row, score in enumerate(result.popularity.per_period):
        cells = "".join(
            f"{_cell(getattr(column.per_period[row], metric), column.per_period[row].retrained):>{width + 1}}"
            for column in columns
        )
        lines.append(f"{score.period:<12}{score.users:>7}{cells}")
    means = "".join(f"{_cell(getattr(column, f'mean_{metric}'), False):>{width + 1}}" for column in columns)
    lines.append(f"{'mean':<12}{'':>7}{means}")
    return lines


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _summary(result: BacktestResult) -> list[str]:
    lines = [
        "costs in USD: training (jobs + start-up + A/B exposure), staleness (shortfall vs the model trained "
        "on everything before each period x value per point x days), total, regret (total - oracle's)",
        f"{'strategy':<12}{'NDCG@10':>9}{'HR@10':>9}{'retrains':>9}{'train s':>9}{'training':>10}{'staleness':>11}"
        f"{'total':>10}{'regret':>10}  what it does",
    ]
    for strategy in [*result.strategies.values(), result.popularity]:
        ndcg, hit_rate = strategy.mean_ndcg_at_10, strategy.mean_hit_rate_at_10
        priced = strategy.name != POPULARITY and strategy.training_cost is not None
        training, staleness, total, regret = (
            (strategy.training_cost, strategy.staleness_cost, strategy.total_cost, strategy.regret)
            if priced
            else (None, None, None, None)
        )
        lines.append(
            f"{strategy.name:<12}{'-' if ndcg is None else f'{ndcg:.4f}':>9}"
            f"{'-' if hit_rate is None else f'{hit_rate:.4f}':>9}{strategy.retrains:>9}"
            f"{strategy.training_seconds:>9.1f}{_money(training):>10}{_money(staleness):>11}{_money(total):>10}"
            f"{_money(regret):>10}  {strategy.description}"
        )
    return lines


def _frontier(result: BacktestResult) -> list[str]:
    return [
        "frontier (hindsight): best mean NDCG@10 reachable with R retrains",
        "  ".join(f"{retrains}: {ndcg:.4f}" for retrains, ndcg in result.frontier.items()),
    ]


def _held_out(result: BacktestResult) -> list[str]:
    held_out = result.held_out
    if held_out is None:
        return []
    others = ", ".join(f"{name} {total:.2f}" for name, total in held_out.strategies.items())
    on_the_same_halves = f"; on the same halves: {others}" if others else ""
    lines = [
        f"held out (mean over {2 * held_out.splits} random halves of each period's users): the oracle chosen on a "
        "half costs",
        f"  {held_out.oracle_in_sample:.2f} priced on that half and {held_out.oracle_held_out:.2f} priced on the "
        f"other ({held_out.oracle_held_out_retrains:.1f} retrains){on_the_same_halves}",
    ]
    if held_out.frontier_held_out:
        lines.append(
            "  frontier's schedule chosen on a half, mean NDCG@10 on that half / on the other: "
            + "  ".join(
                f"{count}: {held_out.frontier_in_sample[count]:.4f} / {held_out.frontier_held_out[count]:.4f}"
                for count in held_out.frontier_held_out
            )
        )
    return lines


def _auto_decisions(result: BacktestResult) -> list[str]:
    auto = result.strategies.get("auto")
    if auto is None or not auto.decisions:
        return []
    return ["auto decisions (on each period's upload):"] + [
        f"  {decision['period']}: {decision['reason']} (expected gain {decision['expected_gain']:.4f}"
        f"{_challenger(decision.get('challenger_gain'))})"
        for decision in auto.decisions
    ]


def _challenger(gain: dict | None) -> str:
    if gain is None:
        return "; no challenger measured"
    return (
        f"; challenger {gain['gain']:+.4f} ({gain['ci_low']:+.4f}..{gain['ci_high']:+.4f}, {gain['users']} users) "
        f"after {gain['missed_days']:.1f} missed days"
    )


def format_result(result: BacktestResult) -> str:
    basis = result.to_dict()["cost_basis"]
    original = ", ".join(result.periods[: result.initial_periods])
    evaluated = result.periods[result.initial_periods :]
    header = [
        f"driftloop backtest: {result.dataset}",
        f"{len(result.periods)} {result.config.period} periods; original data {original}; "
        f"evaluated {evaluated[0]} .. {evaluated[-1]}; A/B/C/schedule act every {result.config.every_k} period(s)",
        f"scored users: seen before the period, buying items outside their {result.config.exclude} so far "
        f"(never recommended to them)",
        f"cost: {basis['billing']}; {basis['instance_type']} at ${basis['hourly_price_usd']}/h "
        f"({basis['price_source']}); staleness: {basis['staleness']}",
    ]
    drift = result.strategies.get("D")
    if drift is not None and drift.drift_checks:
        header.append(
            "D drift checks: "
            + ", ".join(
                f"{check['period']} {check['decision']}"
                + (f" ({', '.join(check['drifted_features'])})" if check["drifted_features"] else "")
                for check in drift.drift_checks
            )
        )
    blocks = [header, _metric_table(result, NDCG, "NDCG@10"), _metric_table(result, HIT_RATE, "HitRate@10")]
    blocks.append(_summary(result))
    blocks.append(_frontier(result))
    held_out = _held_out(result)
    if held_out:
        blocks.append(held_out)
    decisions = _auto_decisions(result)
    if decisions:
        blocks.append(decisions)
    return "\n\n".join("\n".join(block) for block in blocks)
