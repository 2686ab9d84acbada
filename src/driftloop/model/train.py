"""The training entry point, in SageMaker script-mode conventions (the local runtime runs it too).

Reads interactions Parquet from ``SM_CHANNEL_TRAIN`` (a folder, possibly partitioned; files whose
names start with ``_`` or ``.`` such as ``_manifest.json`` are skipped), optionally a holdout from
``SM_CHANNEL_HOLDOUT``; hyperparameters from ``SM_HPS`` (JSON), ``SM_HP_<NAME>`` and ``--name value``
arguments (later sources win). Writes the model and ``metrics.json`` into ``SM_MODEL_DIR`` and
``metrics.json`` into ``SM_OUTPUT_DATA_DIR``. On bad input it exits 1 and writes the reason to
``$SM_OUTPUT_DIR/failure`` (SageMaker's ``FailureReason``), or to ``failure`` in the output data folder.

Evaluation (model vs popularity, time-based): with ``train_until``, rows at/after it are never
fitted and serve as the holdout (unless a holdout channel is given); with neither, the last
``evaluation_fraction`` of events is held out for the metrics and the model is then refitted on
everything (``refit_on_all``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from driftloop.errors import DriftloopError, InvalidInputError
from driftloop.model.data import (
    ColumnMapping,
    at_or_after,
    before,
    parse_time,
    read_interactions,
    time_quantile,
)
from driftloop.model.metrics import Evaluation, evaluate
from driftloop.model.recommender import Recommender, RecommenderConfig
from driftloop.storage import local_source

LOG = logging.getLogger("driftloop.model.train")
METRICS_FILE = "metrics.json"
SERVING_FILE = "serving.json"
REPORTED_K = 10
_COLUMN_PARAMETERS = ("user_col", "item_col", "time_col", "event_type_col")
_RUN_PARAMETERS = ("train_until", "k", "evaluation_fraction", "refit_on_all")
_CONFIG_PARAMETERS = tuple(RecommenderConfig.__dataclass_fields__)


@dataclass(frozen=True)
class TrainingParameters:
    """Everything a training run is told, validated."""

    columns: ColumnMapping = field(default_factory=ColumnMapping)
    config: RecommenderConfig = field(default_factory=RecommenderConfig)
    train_until: datetime | None = None
    k: int = REPORTED_K
    evaluation_fraction: float = 0.1
    refit_on_all: bool = True

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidInputError(f"k must be >= 1, not {self.k}")
        if not 0 < self.evaluation_fraction < 1:
            raise InvalidInputError(f"evaluation_fraction must be in (0, 1), not {self.evaluation_fraction}")

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Mapping[str, Any]) -> TrainingParameters:
        """Build from SageMaker hyperparameters (strings, or JSON-decoded values); ``sagemaker_*`` ignored."""
        values = {name: _decode(value) for name, value in hyperparameters.items() if not name.startswith("sagemaker_")}
        unknown = sorted(set(values) - set(_COLUMN_PARAMETERS + _RUN_PARAMETERS + _CONFIG_PARAMETERS))
        if unknown:
            raise InvalidInputError(f"unknown hyperparameter(s) {unknown}")
        columns = {name: values[name] for name in _COLUMN_PARAMETERS if name in values}
        if "event_type_col" in columns and columns["event_type_col"] in ("", "none", None):
            columns["event_type_col"] = None
        config = {name: values[name] for name in _CONFIG_PARAMETERS if name in values}
        if config.get("recency_half_life_days") in ("", "none"):
            config["recency_half_life_days"] = None
        if isinstance(config.get("target_event_types"), str):
            config["target_event_types"] = tuple(
                part.strip() for part in config["target_event_types"].split(",") if part.strip()
            )
        try:
            return cls(
                columns=ColumnMapping(**columns),
                config=RecommenderConfig.from_dict(config),
                train_until=parse_time(str(values["train_until"])) if values.get("train_until") else None,
                k=int(values.get("k", REPORTED_K)),
                evaluation_fraction=float(values.get("evaluation_fraction", 0.1)),
                refit_on_all=_as_bool(values.get("refit_on_all", True)),
            )
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"bad hyperparameter: {error}") from None


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidInputError(f"not a boolean: {value!r}")


def collect_hyperparameters(environ: Mapping[str, str], argv: Sequence[str]) -> dict[str, Any]:
    """``SM_HPS``, then ``SM_HP_<NAME>`` (lower-cased), then ``--name value`` / ``--name=value`` args."""
    collected: dict[str, Any] = dict(json.loads(environ.get("SM_HPS") or "{}"))
    for key, value in environ.items():
        if key.startswith("SM_HP_"):
            collected.setdefault(key[len("SM_HP_") :].lower(), value)
    arguments = list(argv)
    while arguments:
        token = arguments.pop(0)
        if not token.startswith("--"):
            raise InvalidInputError(f"unexpected argument {token!r}; expected --name value")
        name, has_value, value = token[2:].partition("=")
        if not has_value:
            if not arguments:
                raise InvalidInputError(f"argument {token} has no value")
            value = arguments.pop(0)
        collected[name.replace("-", "_")] = value
    return collected


@dataclass(frozen=True)
class TrainingOutcome:
    recommender: Recommender
    evaluation: Evaluation
    metrics: dict[str, Any]


def _fit(table: pa.Table, parameters: TrainingParameters, label: str) -> Recommender:
    LOG.info("fitting %s on %d interactions (%s)", parameters.config.algorithm, table.num_rows, label)
    return Recommender.fit(table, parameters.config)


def train(interactions: pa.Table, parameters: TrainingParameters, holdout: pa.Table | None = None) -> TrainingOutcome:
    """Fit, evaluate against popularity and describe the run. Tables must be normalised."""
    started = time.perf_counter()
    split: dict[str, Any]
    if parameters.train_until is not None:
        evaluation_rows = before(interactions, parameters.train_until)
        test = holdout if holdout is not None else at_or_after(interactions, parameters.train_until)
        split = {"train_until": parameters.train_until.isoformat()}
    elif holdout is not None:
        evaluation_rows, test = interactions, holdout
        split = {"holdout": "channel"}
    else:
        if interactions.num_rows == 0:
            raise InvalidInputError("cannot train a recommender on 0 interactions")
        cutoff = time_quantile(interactions, 1 - parameters.evaluation_fraction)
        evaluation_rows, test = before(interactions, cutoff), at_or_after(interactions, cutoff)
        split = {
            "evaluation_cutoff": cutoff.isoformat(),
            "evaluation_fraction": parameters.evaluation_fraction,
        }
    evaluation_model = _fit(evaluation_rows, parameters, json.dumps(split))
    evaluation = evaluate(evaluation_model, evaluation_rows, test, REPORTED_K)
    model, fitted_rows = evaluation_model, evaluation_rows
    if "evaluation_cutoff" in split and parameters.refit_on_all:
        model, fitted_rows = _fit(interactions, parameters, "refit on all rows"), interactions
    metrics: dict[str, Any] = {
        **evaluation.to_dict(),
        "algorithm": parameters.config.algorithm,
        "split": split,
        "refitted_on_all": model is not evaluation_model,
        "fitted_interactions": fitted_rows.num_rows,
        "holdout_interactions": test.num_rows,
        "model": model.describe(),
    }
    if parameters.k != REPORTED_K:
        metrics[f"at_{parameters.k}"] = evaluate(evaluation_model, evaluation_rows, test, parameters.k).to_dict()
    metrics["training_seconds"] = round(time.perf_counter() - started, 3)
    return TrainingOutcome(model, evaluation, metrics)


def write_outputs(
    outcome: TrainingOutcome, parameters: TrainingParameters, model_dir: str, output_dir: str | None
) -> None:
    outcome.recommender.save(model_dir)
    with open(os.path.join(model_dir, SERVING_FILE), "w", encoding="utf-8") as handle:
        json.dump({"k": parameters.k}, handle)
    for directory in filter(None, (model_dir, output_dir)):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, METRICS_FILE), "w", encoding="utf-8") as handle:
            json.dump(outcome.metrics, handle, indent=2, sort_keys=True)


def _read_channel(path: str, columns: ColumnMapping) -> pa.Table:
    if not os.path.exists(path):
        raise InvalidInputError(f"input channel {path} does not exist")
    return read_interactions(local_source(path), columns)


def _write_failure(environ: Mapping[str, str], message: str) -> None:
    folder = environ.get("SM_OUTPUT_DIR") or environ.get("SM_OUTPUT_DATA_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "failure"), "w", encoding="utf-8") as handle:
            handle.write(message)


def run(environ: Mapping[str, str], argv: Sequence[str]) -> TrainingOutcome:
    """One training run from script-mode environment variables and arguments."""
    parameters = TrainingParameters.from_hyperparameters(collect_hyperparameters(environ, argv))
    train_channel = environ.get("SM_CHANNEL_TRAIN")
    model_dir = environ.get("SM_MODEL_DIR")
    if not train_channel or not model_dir:
        raise InvalidInputError("SM_CHANNEL_TRAIN and SM_MODEL_DIR must be set")
    interactions = _read_channel(train_channel, parameters.columns)
    holdout_channel = environ.get("SM_CHANNEL_HOLDOUT")
    holdout = _read_channel(holdout_channel, parameters.columns) if holdout_channel else None
    LOG.info("read %d interactions from %s", interactions.num_rows, train_channel)
    outcome = train(interactions, parameters, holdout)
    write_outputs(outcome, parameters, model_dir, environ.get("SM_OUTPUT_DATA_DIR"))
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    """Script-mode entry: 0 on success, 1 (with a ``failure`` file) when the input cannot be trained on."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    environ = os.environ
    try:
        outcome = run(environ, sys.argv[1:] if argv is None else argv)
    except (DriftloopError, FileNotFoundError) as error:
        message = f"{type(error).__name__}: {error}"
        LOG.error("training failed: %s", message)
        _write_failure(environ, message)
        return 1
    except Exception as error:
        _write_failure(environ, f"internal error: {type(error).__name__}: {error}")
        raise
    # One "name=value" line per metric: the training job's MetricDefinitions parse these from the log.
    metrics = outcome.metrics
    for name in ("ndcg_at_10", "recall_at_10", "hit_rate_at_10"):
        LOG.info("%s=%.6f", name, metrics[name])
        LOG.info("baseline_%s=%.6f", name, metrics["baseline_popularity"][name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
