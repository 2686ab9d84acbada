"""The conversion-drop alarm and the dashboard watch what the code publishes; events/ holds what the alarm emits."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from conftest import REPO

from driftloop.drift.metrics import (
    CONVERSION_DIMENSIONS,
    CONVERSION_RATE_METRIC,
    NAMESPACE,
    RUN_DIMENSIONS,
    RUNS_METRIC,
    TRAINING_COST_DIMENSIONS,
    TRAINING_COST_METRIC,
)
from driftloop.triggers import parse_trigger

ALARM = "ConversionDropAlarm"


def _defaults(raw_template: dict[str, Any]) -> dict[str, str]:
    return {name: str(spec["Default"]) for name, spec in raw_template["Parameters"].items()}


def _resolve(value: Any, defaults: dict[str, str]) -> Any:
    """Ref, Select over a list parameter and Sub, with every parameter at its default."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return defaults[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Select"}:
        index, listed = value["Fn::Select"]
        return _resolve(listed, defaults).split(",")[index].strip()
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda match: defaults[match.group(1)], value["Fn::Sub"])
    return value


@pytest.fixture(scope="module")
def alarm(raw_template: dict[str, Any]) -> dict[str, Any]:
    return raw_template["Resources"][ALARM]["Properties"]


@pytest.fixture(scope="module")
def event() -> dict[str, Any]:
    return json.loads((REPO / "events" / "cloudwatch_alarm_conversion_drop.json").read_text())


def test_the_alarm_watches_the_metric_the_code_publishes(raw_template, alarm):
    variables = raw_template["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["Namespace"] == NAMESPACE == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["MetricName"] == CONVERSION_RATE_METRIC
    assert tuple(dimension["Name"] for dimension in alarm["Dimensions"]) == CONVERSION_DIMENSIONS
    assert [dimension["Value"] for dimension in alarm["Dimensions"]] == [
        {"Ref": "ModelName"}, {"Ref": "EndpointName"}, {"Ref": "ChampionVariantName"}]


def test_the_alarm_is_the_first_of_alarm_names_and_fires_on_a_drop_only(raw_template, alarm):
    assert alarm["AlarmName"] == {"Fn::Select": [0, {"Ref": "AlarmNames"}]}
    assert _resolve(alarm["AlarmName"], _defaults(raw_template)) == "driftloop-conversion-drop"
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["Statistic"] == "Average"


@pytest.mark.parametrize("property_name, parameter, low, high", [
    ("Threshold", "ConversionAlarmThreshold", 0, 1),
    ("EvaluationPeriods", "ConversionAlarmPeriods", 1, 24),
    ("DatapointsToAlarm", "ConversionAlarmPeriods", 1, 24),
])
def test_threshold_and_periods_are_validated_parameters(raw_template, alarm, property_name, parameter, low, high):
    assert alarm[property_name] == {"Ref": parameter}
    spec = raw_template["Parameters"][parameter]
    assert (spec["Type"], spec["MinValue"], spec["MaxValue"]) == ("Number", low, high)
    # CloudWatch refuses alarms that evaluate more than one day of data.
    assert alarm["Period"] * raw_template["Parameters"]["ConversionAlarmPeriods"]["MaxValue"] <= 86400


def test_the_alarm_rule_starts_a_run_on_this_alarm(resources):
    pattern = resources["RetrainStateMachineDriftAlarm"]["Properties"]["EventPattern"]
    assert pattern["detail"]["alarmName"] == {"Ref": "AlarmNames"}
    assert pattern["detail"]["state"]["value"] == ["ALARM"]


def test_the_sample_event_is_what_the_alarm_emits(raw_template, alarm, event):
    defaults = _defaults(raw_template)
    name = _resolve(alarm["AlarmName"], defaults)
    detail = event["detail"]
    assert (event["source"], event["detail-type"]) == ("aws.cloudwatch", "CloudWatch Alarm State Change")
    assert detail["alarmName"] == name
    assert event["resources"] == [f"arn:aws:cloudwatch:{event['region']}:{event['account']}:alarm:{name}"]
    assert (detail["state"]["value"], detail["previousState"]["value"]) == ("ALARM", "OK")
    assert detail["configuration"]["description"] == _resolve(alarm["AlarmDescription"], defaults)
    [metric] = detail["configuration"]["metrics"]
    assert metric["metricStat"]["metric"] == {
        "namespace": alarm["Namespace"],
        "name": alarm["MetricName"],
        "dimensions": {dimension["Name"]: _resolve(dimension["Value"], defaults) for dimension in alarm["Dimensions"]},
    }
    assert (metric["metricStat"]["period"], metric["metricStat"]["stat"]) == (alarm["Period"], alarm["Statistic"])
    reason = json.loads(detail["state"]["reasonData"])
    assert reason["threshold"] == float(defaults["ConversionAlarmThreshold"])
    assert len(reason["recentDatapoints"]) == int(defaults["ConversionAlarmPeriods"])
    assert all(value < reason["threshold"] for value in reason["recentDatapoints"])


def test_the_sample_event_starts_an_alarm_run(event):
    trigger = parse_trigger(event, "any-bucket", "incoming/", "monitoring/")
    assert trigger.type == "alarm"


def _dashboard(raw_template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body with every ${...} at its parameter default (resources and pseudo parameters as names)."""
    body = raw_template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    defaults = _defaults(raw_template)
    return json.loads(re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda match: defaults.get(match.group(1), match.group(1)),
                             body))


def _search(widget: dict[str, Any]) -> str:
    [[query]] = widget["properties"]["metrics"]
    return query["expression"]


def test_the_dashboard_charts_runs_by_outcome_conversion_per_variant_and_training_cost(raw_template):
    widgets = {widget["properties"]["title"].split(" (")[0]: widget for widget in _dashboard(raw_template)["widgets"]}
    defaults = _defaults(raw_template)
    runs = _search(widgets["Runs by outcome"])
    assert runs.startswith(f"SEARCH('{{{NAMESPACE},{','.join(sorted(RUN_DIMENSIONS))}}} MetricName=\"{RUNS_METRIC}\" "
                           f"model=\"{defaults['ModelName']}\"'")
    conversion = widgets["Conversion rate per variant"]
    assert _search(conversion).startswith(
        f"SEARCH('{{{NAMESPACE},{','.join(sorted(CONVERSION_DIMENSIONS))}}} MetricName=\"{CONVERSION_RATE_METRIC}\" "
        f"model=\"{defaults['ModelName']}\" endpoint=\"{defaults['EndpointName']}\"'")
    [line] = conversion["properties"]["annotations"]["horizontal"]
    assert line["value"] == float(defaults["ConversionAlarmThreshold"])
    [cost] = widgets["Training cost"]["properties"]["metrics"]
    assert cost[:4] == [NAMESPACE, TRAINING_COST_METRIC, *TRAINING_COST_DIMENSIONS, defaults["ModelName"]]
