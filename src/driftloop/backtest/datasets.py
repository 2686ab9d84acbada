"""What a backtest replays: any interactions Parquet, the simulator, or MovieLens 100K.

Each source becomes a :class:`History`: the recommender's normalised interactions, sorted by time,
and row-aligned with them the columns the drift check compares (every source column except the
user, item and time columns, as driftloop's drift step does).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from driftloop.errors import InvalidInputError
from driftloop.model.data import EVENT, ColumnMapping, normalise_interactions
from driftloop.simulate import Scenario, Simulator, SimulatorConfig
from driftloop.storage import local_source

MOVIELENS_INSTALL_HINT = "pip install --no-deps recbole==1.2.1"
MOVIELENS_PURCHASE_RATING = 4.0
_MOVIELENS_USER_FEATURES = ("age", "gender", "occupation")


@dataclass(frozen=True)
class History:
    """Interactions (``user_id``, ``item_id``, ``event_time``, ``event_type``) sorted by time, and the
    drift feature columns of the same rows."""

    name: str
    interactions: pa.Table
    features: pa.Table

    def __post_init__(self) -> None:
        if self.features.num_columns and self.interactions.num_rows != self.features.num_rows:
            raise InvalidInputError("interactions and features must have the same rows")
        if self.interactions.num_rows == 0:
            raise InvalidInputError(f"{self.name}: no interactions")


def history_from_table(name: str, table: pa.Table, columns: ColumnMapping) -> History:
    """Normalise ``table`` with ``columns`` (rows without user, item or time are dropped) and sort by time."""
    missing = [c for c in (columns.user_col, columns.item_col, columns.time_col) if c not in table.column_names]
    if missing:
        raise InvalidInputError(
            f"{name}: missing column(s) {missing}; found {table.column_names} (name them with --user-col, "
            "--item-col and --time-col)"
        )
    keys = (columns.user_col, columns.item_col, columns.time_col)
    complete = pc.and_(
        pc.and_(pc.is_valid(table.column(keys[0])), pc.is_valid(table.column(keys[1]))),
        pc.is_valid(table.column(keys[2])),
    )
    table = table.filter(complete)
    interactions = normalise_interactions(table, columns)
    order = np.argsort(interactions.column("event_time").cast(pa.int64()).to_numpy(), kind="stable")
    features = table.drop_columns(list(keys))
    return History(name, interactions.take(order), features.take(order))


def read_parquet_history(path: str, columns: ColumnMapping) -> History:
    """A Parquet file, or every Parquet file below a folder (files may add or omit columns)."""
    source = local_source(path)
    if not source.paths:
        raise InvalidInputError(f"{path}: no Parquet files")
    tables = []
    for file_path in source.paths:
        try:
            tables.append(pq.read_table(file_path))
        except (pa.ArrowInvalid, OSError) as error:
            raise InvalidInputError(f"{file_path}: not a readable Parquet file ({error})") from None
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise InvalidInputError(f"{path}: files disagree on column types ({error})") from None
    return history_from_table(path, table, columns)


def simulated_history(config: SimulatorConfig, scenario: Scenario = Scenario.SEASONAL) -> History:
    """Months 0..``horizon_months`` of the simulator (month 0 is the original training data)."""
    simulator = Simulator(config, scenario)
    table = pa.concat_tables(simulator.month(month) for month in simulator.months)
    return history_from_table(f"synthetic ({scenario.value}, seed {config.seed})", table, ColumnMapping())


def movielens_folder() -> Path:
    """``recbole``'s bundled ``dataset_example/ml-100k`` (found without importing recbole)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInputError(
            f"MovieLens 100K is read from the recbole wheel, which is not installed: {MOVIELENS_INSTALL_HINT}"
        )
    folder = Path(spec.submodule_search_locations[0]) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").exists():
        raise InvalidInputError(f"recbole is installed but {folder} has no ml-100k.inter: {MOVIELENS_INSTALL_HINT}")
    return folder


def _read_typed_tsv(path: Path) -> pa.Table:
    """RecBole's atomic files: tab-separated with ``name:type`` headers; ids stay strings."""
    header = path.open(encoding="utf-8").readline().rstrip("\n").split("\t")
    names = [field.split(":")[0] for field in header]
    types = {
        name: pa.string() if field.endswith(":token") else pa.float64()
        for name, field in zip(names, header, strict=True)
    }
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(column_types=types),
    )


def movielens_history() -> History:
    """MovieLens 100K: a rating >= 4 is a purchase, any other rating a view. Users' age, gender and
    occupation (``ml-100k.user``) join each rating, like the customer columns of driftloop's uploads."""
    folder = movielens_folder()
    ratings = _read_typed_tsv(folder / "ml-100k.inter")
    bought = pc.greater_equal(ratings.column("rating"), MOVIELENS_PURCHASE_RATING)
    ratings = ratings.append_column(EVENT, pc.if_else(bought, "purchase", "view"))
    users_path = folder / "ml-100k.user"
    if users_path.exists():
        users = _read_typed_tsv(users_path)
        rows = pc.index_in(ratings.column("user_id"), value_set=users.column("user_id").combine_chunks())
        for name in _MOVIELENS_USER_FEATURES:
            values = users.column(name).combine_chunks().take(rows)
            ratings = ratings.append_column(name, values.cast(pa.float64()) if name == "age" else values)
    columns = ColumnMapping(user_col="user_id", item_col="item_id", time_col="timestamp", event_type_col=EVENT)
    return history_from_table("movielens-100k", ratings, columns)
