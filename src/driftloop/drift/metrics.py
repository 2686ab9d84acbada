"""Per-feature drift as CloudWatch metrics through Powertools (Embedded Metric Format)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from driftloop.drift.compare import DriftReport

METRIC_PREFIX = "feature_baseline_drift_"
DEFAULT_NAMESPACE = "driftloop/drift"

# The functions' POWERTOOLS_METRICS_NAMESPACE, where the template's alarm and dashboard look.
NAMESPACE = "driftloop"
# The conversion metric every A/B analysis and concept-drift check publishes, one value per variant, and
# the template's conversion-drop alarm watches (for the champion's variant).
CONVERSION_RATE_METRIC = "conversion_rate"
SERVED_METRIC = "served"
CONVERSION_DIMENSIONS = ("model", "endpoint", "variant")
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
