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


def _summary(result: BacktestResult) -> list[str]:
    lines = [f"{'strategy':<12}{'NDCG@10':>9}{'HR@10':>9}{'retrains':>9}{'train s':>9}{'cost USD':>10}  what it does"]
    for strategy in [*result.strategies.values(), result.popularity]:
        ndcg, hit_rate = strategy.mean_ndcg_at_10, strategy.mean_hit_rate_at_10
        cost = "-" if strategy.name == POPULARITY or strategy.training_cost is None else f"{strategy.training_cost:.6f}"
        lines.append(
            f"{strategy.name:<12}{'-' if ndcg is None else f'{ndcg:.4f}':>9}"
            f"{'-' if hit_rate is None else f'{hit_rate:.4f}':>9}{strategy.retrains:>9}"
            f"{strategy.training_seconds:>9.1f}{cost:>10}  {strategy.description}"
        )
    return lines


def format_result(result: BacktestResult) -> str:
    basis = result.to_dict()["cost_basis"]
    original = ", ".join(result.periods[: result.initial_periods])
    evaluated = result.periods[result.initial_periods :]
    header = [
        f"driftloop backtest: {result.dataset}",
        f"{len(result.periods)} {result.config.period} periods; original data {original}; "
        f"evaluated {evaluated[0]} .. {evaluated[-1]}; A/B/C act every {result.config.every_k} period(s)",
        f"scored users: seen before the period, buying items outside their {result.config.exclude} so far "
        f"(never recommended to them)",
        f"cost: training seconds x {basis['instance_type']} at ${basis['hourly_price_usd']}/h "
        f"({basis['price_source']})",
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
    return "\n\n".join("\n".join(block) for block in blocks)
