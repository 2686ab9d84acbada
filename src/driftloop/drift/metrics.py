"""Drift and conversion as CloudWatch metrics through Powertools (Embedded Metric Format)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from driftloop.drift.compare import DriftReport

METRIC_PREFIX = "feature_baseline_drift_"
DEFAULT_NAMESPACE = "driftloop/drift"


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


# The conversion metric's contract with the template's alarm (template.yaml watches these names).
CONVERSION_RATE_METRIC = "conversion_rate"
SERVED_METRIC = "served"
MODEL_DIMENSION = "model"
ENDPOINT_DIMENSION = "endpoint"
VARIANT_DIMENSION = "variant"
CONVERSION_DIMENSIONS = (MODEL_DIMENSION, ENDPOINT_DIMENSION, VARIANT_DIMENSION)


def publish_conversion(model: str, endpoint: str, rates: Mapping[str, tuple[int, int]],
                       namespace: str | None = None) -> list[dict[str, object]]:
    """Emit ``conversion_rate`` (conversions / served, in [0, 1]) and ``served`` per variant, each with
    exactly the dimensions ``model``, ``endpoint`` and ``variant`` (no ``service`` dimension, so an alarm on
    those three matches), in ``namespace`` (None: ``POWERTOOLS_METRICS_NAMESPACE``). ``rates`` maps a
    variant to (served, conversions); variants that served nothing publish no rate. Returns what was
    published."""
    published: list[dict[str, object]] = []
    for variant, (served, conversions) in sorted(rates.items()):
        if served <= 0:
            continue
        provider = AmazonCloudWatchEMFProvider(namespace=namespace, service="")
        provider.add_dimension(name=MODEL_DIMENSION, value=model)
        provider.add_dimension(name=ENDPOINT_DIMENSION, value=endpoint)
        provider.add_dimension(name=VARIANT_DIMENSION, value=variant)
        rate = conversions / served
        provider.add_metric(name=CONVERSION_RATE_METRIC, unit=MetricUnit.NoUnit, value=rate)
        provider.add_metric(name=SERVED_METRIC, unit=MetricUnit.Count, value=served)
        provider.flush_metrics()
        published.append({"variant": variant, CONVERSION_RATE_METRIC: rate, SERVED_METRIC: served})
    return published
