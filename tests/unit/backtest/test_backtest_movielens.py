"""MovieLens 100K as a backtest history (read from the installed ``recbole`` wheel, never committed)."""

from __future__ import annotations

import importlib.util

import pyarrow.compute as pc
import pytest

from driftloop.backtest import BacktestConfig
from driftloop.backtest.datasets import movielens_history
from driftloop.backtest.runner import split_history

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("recbole") is None, reason="pip install --no-deps recbole==1.2.1"
)


def test_movielens_history():
    history = movielens_history()
    assert history.interactions.num_rows == 100_000
    purchases = pc.sum(pc.equal(history.interactions.column("event_type"), "purchase")).as_py()
    assert purchases == 55_375  # ratings of 4 and 5
    assert set(history.features.column_names) == {"rating", "event_type", "age", "gender", "occupation"}
    assert history.features.column("age").null_count == 0
    periods = split_history(history, BacktestConfig())
    assert [period.label for period in periods] == [
        "1997-09", "1997-10", "1997-11", "1997-12", "1998-01", "1998-02", "1998-03", "1998-04",
    ]  # fmt: skip
