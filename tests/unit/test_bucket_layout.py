"""The map of the bucket (driftloop/layout.py): its keys, that no other module spells one, and that
template.yaml and the ASL grant and watch the same prefixes."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from driftloop import layout
from driftloop.errors import InvalidInputError
from driftloop.local.template import load_yaml

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "src" / "driftloop"
LAYOUT = SOURCE / "layout.py"

# A key literal: a bucket prefix at the start of a string part, or a fragment only keys contain.
KEY_START = re.compile("^(?:" + "|".join(re.escape(prefix) for prefix in (
    *layout.BUCKET_PREFIXES, layout.DEFAULT_INCOMING_PREFIX, layout.DEFAULT_MONITOR_REPORT_PREFIX)) + ")")
KEY_FRAGMENTS = ("/_partials", "/_summaries", "/_quarantine", "/v=", "date=", "ab-stage-", layout.MANIFEST_NAME,
                 layout.RECORD_NAME, layout.INPUTS_NAME, layout.MERGE_PLAN_NAME, "sourcedir.tar.gz",
                 "/output/model.tar.gz", layout.CONSTRAINT_VIOLATIONS_NAME)
WORKSPACE_FILES = ("index.json", "schedules.json", "deliveries.json", "notifications.jsonl", "world.json")


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def key_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant or f-string part in ``source`` that spells a key, a
    workspace file or an ``s3://`` URI (docstrings aside)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    in_fstring = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
            continue
        text = node.value
        # A URI is built where s3:// is followed by a name or, in an f-string, by a placeholder.
        uri = re.search(r"s3://(\S|$)" if id(node) in in_fstring else r"s3://\S", text) is not None
        key_like = not any(character.isspace() for character in text) and (
            KEY_START.match(text) or any(fragment in text for fragment in KEY_FRAGMENTS)
            or text.endswith(WORKSPACE_FILES))
        if uri or key_like:
            found.append((node.lineno, text))
    return found


def test_no_module_but_the_layout_spells_a_key() -> None:
    offenders = [
        f"{path.relative_to(SOURCE.parent)}:{line}: {text!r}"
        for path in sorted(SOURCE.rglob("*.py")) if path != LAYOUT
        for line, text in key_literals(path.read_text())
    ]
    assert not offenders, "build keys, prefixes and s3:// URIs with driftloop.layout:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source", [
    'key = f"runs/{run_id}/record.json"',
    'prefix = "reports/"',
    'uri = f"s3://{bucket}/{key}"',
    'message = f"cannot read s3://{bucket}/{key}: gone"',
    'uri = "s3://local-artifacts/x.zip"',
    'manifest = f"{version}/_manifest.json"',
    'partials = f"{root}/_partials/v={run_id}"',
    'day = f"{prefix}date={day}"',
    'def f():\n    return workspace / "world.json"\n',
    'key = f"{prefix}{endpoint}/{schedule}/{hour:%Y/%m/%d/%H}/constraint_violations.json"',
])
def test_the_scan_catches_a_key_built_outside_the_layout(source: str) -> None:
    assert key_literals(source)


@pytest.mark.parametrize("source", [
    '"""Writes runs/<run_id>/record.json last."""',
    'def f():\n    """See s3://bucket/runs/."""\n',
    'ok = uri.startswith("s3://")',
    'kind = "application/json"',
    'message = f"{key!r} is not a constraint_violations.json report"',
    'message = f"{uri!r} is not an s3:// URI"',
    'local = "/opt/ml/checkpoints"',
    'bundle = "model/train.py"',
])
def test_the_scan_leaves_prose_and_other_paths_alone(source: str) -> None:
    assert not key_literals(source)


# -- the keys themselves: these values are in users' buckets and in the docs --------------------------
def test_bucket_keys_keep_their_values() -> None:
    assert layout.inputs_key("r1") == "runs/r1/inputs.json"
    assert layout.merge_plan_key("r1") == "runs/r1/merge-parts.json"
    assert layout.record_key("r1") == "runs/r1/record.json"
    assert layout.dataset_dir("shop", "r1") == "datasets/shop/v=r1"
    assert layout.manifest_key("datasets/shop/v=r1/") == "datasets/shop/v=r1/_manifest.json"
    assert layout.version_quarantine_dir("out/v=r1") == "out/v=r1/_quarantine"
    assert layout.partials_dir("shop", "r1") == "datasets/shop/_partials/v=r1"
    assert layout.part_dir("shop", "r1", 7) == "datasets/shop/_partials/v=r1/00007"
    assert layout.partial_summary_key("shop", "r1", 3) == "datasets/shop/_partials/v=r1/_summaries/00003.json"
    assert layout.drift_report_key("r1") == "reports/r1/drift.json"
    assert layout.drift_html_key("r1") == "reports/r1/drift.html"
    assert layout.drift_evidence_key("r1") == "reports/r1/drift-evidence.json"
    assert layout.new_data_summary_key("r1") == "reports/r1/new-data-summary.json"
    assert layout.evaluation_report_key("r1") == "reports/r1/evaluation.json"
    assert layout.decision_report_key("r1") == "reports/r1/decision.json"
    assert layout.ab_look_key("r1", 2, 5) == "reports/r1/ab-stage-2-5.json"
    assert layout.baseline_key("shop", "r1") == "baselines/shop/r1.json"
    assert layout.source_bundle_key("0123456789abcdef0123") == "code/0123456789abcdef/sourcedir.tar.gz"
    assert layout.checkpoint_prefix("job-1") == "checkpoints/job-1/"
    assert layout.model_output_prefix("shop") == "models/shop/"
    assert layout.training_output_key("models/shop/", "job-1") == "models/shop/job-1/output/model.tar.gz"
    assert layout.training_output_key("", "job-1") == "job-1/output/model.tar.gz"
    assert layout.quarantine_key("r1", "ab12-x.parquet") == "quarantine/r1/ab12-x.parquet"
    assert re.fullmatch(r"quarantine/_seen/[0-9a-f]{64}\.json", layout.quarantine_marker_key("s3://b/k", "e"))
    assert layout.incoming_key("incoming/", "2025-07.parquet") == "incoming/2025-07.parquet"
    served = datetime(2025, 7, 31, 23, 5, 6, 789, tzinfo=UTC)
    assert layout.feedback_key("ep", served) == "feedback/ep/date=2025-07-31/part-230506000789.parquet"
    assert layout.monitor_report_key("monitoring/", "ep", "dq", served) == \
        "monitoring/ep/dq/2025/07/31/23/constraint_violations.json"


def test_uris_and_paths() -> None:
    assert layout.s3_uri("bucket", "runs/r1/record.json") == "s3://bucket/runs/r1/record.json"
    assert layout.s3_uri("bucket") == "s3://bucket"
    assert layout.object_path("bucket", "datasets/shop") == "bucket/datasets/shop"
    assert layout.path_uri(layout.object_path("bucket", "k")) == layout.s3_uri("bucket", "k")


def test_keys_read_back() -> None:
    key = layout.feedback_key("ep-1", datetime(2025, 1, 2, tzinfo=UTC))
    assert layout.feedback_endpoint(key) == "ep-1"
    assert layout.feedback_day(key) == "2025-01-02"
    assert layout.feedback_day("feedback/ep-1/part.parquet") is None
    assert key.startswith(layout.feedback_day_prefix("ep-1", "2025-01-02"))
    assert layout.ab_look(layout.ab_look_key("r1", 3, 12)) == (3, 12)
    assert layout.ab_look(layout.drift_report_key("r1")) is None
    assert layout.is_record_key(layout.record_key("r1"))
    assert not layout.is_record_key(layout.inputs_key("r1"))
    assert not layout.is_record_key("reports/r1/record.json")


@pytest.mark.parametrize("run_id", ["../../x", "a/b", "", ".hidden", "x" * 129, "v=1 2"])
def test_a_run_id_that_is_not_one_key_segment_is_refused(run_id: str) -> None:
    with pytest.raises(InvalidInputError, match="run id"):
        layout.dataset_dir("shop", run_id)


def test_the_workspace_layout(tmp_path: Path) -> None:
    workspace = layout.WorkspaceLayout(tmp_path)
    relative = {name: getattr(workspace, name).relative_to(tmp_path).as_posix() for name in (
        "objects", "index_file", "schedules_file", "deliveries_file", "notifications_file", "logs", "cache",
        "trainer", "endpoints", "shop_file", "report")}
    assert relative == {"objects": "s3/objects", "index_file": "s3/index.json", "schedules_file": "schedules.json",
                        "deliveries_file": "deliveries.json", "notifications_file": "notifications.jsonl",
                        "logs": "logs", "cache": "cache", "trainer": "trainer", "endpoints": "endpoint",
                        "shop_file": "world.json", "report": "report"}
    assert workspace.table_file("ledger").relative_to(tmp_path).as_posix() == "dynamodb/ledger.json"
    assert not workspace.is_workspace()
    workspace.objects.mkdir(parents=True)
    assert workspace.is_workspace()


# -- template.yaml and the ASL agree with the layout ----------------------------------------------------
def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return []


def _listed_prefixes(node: Any) -> list[str]:
    """The values of every ``s3:prefix`` condition under ``node``."""
    if isinstance(node, dict):
        return [text for key, value in node.items()
                for text in (_strings(value) if key == "s3:prefix" else _listed_prefixes(value))]
    if isinstance(node, list):
        return [text for value in node for text in _listed_prefixes(value)]
    return []


def _template_prefixes() -> set[str]:
    """Every literal key pattern the template grants in the data bucket (object ARNs and ListBucket
    ``s3:prefix`` conditions); ``*`` (the whole bucket) and the parameters' prefixes aside."""
    resources = load_yaml(REPO / "template.yaml")["Resources"]
    patterns = {pattern for text in _strings(resources)
                for pattern in re.findall(r"\$\{DataBucket\.Arn\}/([^$\s\"]+)", text)}
    patterns |= set(_listed_prefixes(resources))
    return {pattern for pattern in patterns if pattern != "*" and not pattern.startswith("${")}


def test_the_template_grants_exactly_the_layouts_prefixes() -> None:
    patterns = _template_prefixes()
    tops = {pattern.split("/", 1)[0] + "/" for pattern in patterns}
    assert tops == set(layout.BUCKET_PREFIXES)
    run_files = {pattern for pattern in patterns if pattern.startswith(layout.RUNS) and pattern != "runs/*"}
    assert run_files == {layout.inputs_key("*"), layout.merge_plan_key("*"), f"{layout.MERGE_RESULTS_PREFIX}/*"}
    assert f"{layout.QUARANTINE_SEEN}*" in patterns


def test_the_template_parameters_and_rules_match_the_layout() -> None:
    template = load_yaml(REPO / "template.yaml")
    parameters = template["Parameters"]
    assert parameters["IncomingPrefix"]["Default"] == layout.DEFAULT_INCOMING_PREFIX
    assert parameters["MonitorReportPrefix"]["Default"] == layout.DEFAULT_MONITOR_REPORT_PREFIX
    watched = [text for text in _strings(template["Resources"]) if text.startswith("${MonitorReportPrefix}")]
    assert watched == [f"${{MonitorReportPrefix}}*{layout.CONSTRAINT_VIOLATIONS_NAME}"]


def test_the_state_machine_writes_the_map_results_where_the_layout_says() -> None:
    asl = (REPO / "statemachines" / "retrain.asl.json").read_text()
    assert re.findall(r'"Prefix":\s*"([^"]+)"', asl) == [layout.MERGE_RESULTS_PREFIX]


def test_the_bucket_expires_the_cache_and_nothing_else() -> None:
    bucket = load_yaml(REPO / "template.yaml")["Resources"]["DataBucket"]["Properties"]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    expiring = [rule for rule in rules if "ExpirationInDays" in rule]
    assert [(rule["Prefix"], rule["ExpirationInDays"]) for rule in expiring] == [(layout.CACHE, layout.CACHE_DAYS)]
    assert layout.ab_capture_digest_key("r1", 0, 0).startswith(layout.CACHE)
