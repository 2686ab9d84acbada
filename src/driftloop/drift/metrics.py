"""Drift and conversion as CloudWatch metrics through Powertools (Embedded Metric Format)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

if TYPE_CHECKING:
    from driftloop.drift.compare import DriftReport

METRIC_PREFIX = "feature_baseline_drift_"
DEFAULT_NAMESPACE = "driftloop/drift"

# The functions' POWERTOOLS_METRICS_NAMESPACE, where the template's alarm and dashboard look.
NAMESPACE = "driftloop"
# The conversion metric every A/B analysis and concept-drift check publishes, one value per variant, and
# the template's conversion-drop alarm watches (for the champion's variant).
CONVERSION_RATE_METRIC = "conversion_rate"
SERVED_METRIC = "served"
MODEL_DIMENSION = "model"
ENDPOINT_DIMENSION = "endpoint"
VARIANT_DIMENSION = "variant"
CONVERSION_DIMENSIONS = (MODEL_DIMENSION, ENDPOINT_DIMENSION, VARIANT_DIMENSION)
# Finalize's: one run per outcome, and what the run's training job cost.
RUNS_METRIC, RUN_DIMENSIONS = "runs", ("model", "outcome")
TRAINING_COST_METRIC, TRAINING_COST_DIMENSIONS = "training_cost_usd", ("model",)


def publish_feature_drift(
    report: DriftReport,
    namespace: str = DEFAULT_NAMESPACE,
    statistic: str = "js_distance",
    dimensions: Mapping[str, str] | None = None,
    metrics: Metrics | None = None,
) -> dict[str, float]:
    """Emit ``feature_baseline_drift_<name>`` (the chosen statistic) per feature and flush.

    Returns what was published. ``statistic`` is any key of a feature's statistics (``js_distance``,
    ``psi``, ``linf``...); features without it are skipped.
    """
    metrics = metrics or Metrics(namespace=namespace, service="drift")
    for key, value in (dimensions or {}).items():
        metrics.add_dimension(name=key, value=value)
    published: dict[str, float] = {}
    for name, feature in report.features.items():
        if statistic in feature.statistics:
            value = float(feature.statistics[statistic])
            metrics.add_metric(name=f"{METRIC_PREFIX}{name}", unit=MetricUnit.Count, value=value)
            published[name] = value
    metrics.add_metric(name="drifted_features", unit=MetricUnit.Count, value=len(report.drifted_features))
    metrics.flush_metrics()
    return published


def emit_metrics(values: Mapping[str, tuple[MetricUnit, float]], dimensions: Mapping[str, str],
                 namespace: str = NAMESPACE) -> None:
    """One EMF line holding ``values`` (name: (unit, value)) with exactly ``dimensions``. Powertools' ``Metrics``
    would add ``service`` (the functions' POWERTOOLS_SERVICE_NAME), which the template's alarm and dashboard
    dimension sets do not name, so they would never see the metric."""
    provider = AmazonCloudWatchEMFProvider(namespace=namespace)
    provider.service = None
    for name, value in dimensions.items():
        provider.add_dimension(name=name, value=value)
    for name, (unit, value) in values.items():
        provider.add_metric(name=name, unit=unit, value=value)
    provider.flush_metrics()


def publish_conversion(model: str, endpoint: str, rates: Mapping[str, tuple[int, int]],
                       namespace: str = NAMESPACE) -> list[dict[str, object]]:
    """Emit ``conversion_rate`` (conversions / served, in [0, 1]) and ``served`` per variant, each with
    exactly the dimensions ``model``, ``endpoint`` and ``variant`` (no ``service`` dimension, so an alarm on
    those three matches), in ``namespace``. ``rates`` maps a
    variant to (served, conversions); variants that served nothing publish no rate. Returns what was
    published."""
    published: list[dict[str, object]] = []
    for variant, (served, conversions) in sorted(rates.items()):
        if served <= 0:
            continue
        rate = conversions / served
        emit_metrics({CONVERSION_RATE_METRIC: (MetricUnit.NoUnit, rate), SERVED_METRIC: (MetricUnit.Count, served)},
                     {MODEL_DIMENSION: model, ENDPOINT_DIMENSION: endpoint, VARIANT_DIMENSION: variant}, namespace)
        published.append({"variant": variant, CONVERSION_RATE_METRIC: rate, SERVED_METRIC: served})
    return published
