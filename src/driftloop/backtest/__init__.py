"""Backtest retraining strategies: replay history period by period and compare quality and cost."""

from driftloop.backtest.config import STRATEGIES, BacktestConfig
from driftloop.backtest.datasets import (
    History,
    history_from_table,
    movielens_history,
    read_parquet_history,
    simulated_history,
)
from driftloop.backtest.periods import PeriodSpec
from driftloop.backtest.report import format_result
from driftloop.backtest.runner import BacktestResult, PeriodScore, StrategyResult, run_backtest

__all__ = [
    "STRATEGIES",
    "BacktestConfig",
    "BacktestResult",
    "History",
    "PeriodScore",
    "PeriodSpec",
    "StrategyResult",
    "format_result",
    "history_from_table",
    "movielens_history",
    "read_parquet_history",
    "run_backtest",
    "simulated_history",
]
