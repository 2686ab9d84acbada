"""The map of the data bucket and of the local workspace: every key, prefix and file name in one place.

Nothing else in ``driftloop`` spells a key: steps, the report, the scale-out branch and the local runtime
call these functions (``tests/unit/test_bucket_layout.py`` fails on a key literal anywhere else). The
values are what users' buckets already hold and the docs describe; they never change silently.
template.yaml spells the same prefixes in its IAM resources and event patterns (it cannot import this
module); the same test checks that they agree.

Bucket (``<ModelName>-data-<account>-<region>``)::

    incoming/                       uploads (IncomingPrefix), read by version, never written
    monitoring/                     Model Monitor reports (MonitorReportPrefix)
      <endpoint>/<schedule>/YYYY/MM/DD/HH/constraint_violations.json
    runs/<run_id>/inputs.json       the uploads a run works on, fixed once
    runs/<run_id>/merge-parts.json  the scale-out plan
    runs/<run_id>/record.json       the run record, written last
    runs/_merge-parts-results/      the Distributed Map's ResultWriter (the ASL)
    reports/<run_id>/...            drift, evaluation, decision, A/B looks
    cache/<run_id>/...              what a step may lose and rebuild: the A/B looks' capture digests
                                    (expired by the bucket's lifecycle after CACHE_DAYS)
    datasets/<model>/v=<run_id>/    dataset versions, _manifest.json written last
    datasets/<model>/_partials/v=<run_id>/<part>/   the scale-out children's partial versions
    baselines/<model>/<run_id>.json the promoted model's drift baseline
    quarantine/<run_id>/            copies of bad uploads, with their reason
    quarantine/_seen/<hash>.json    upload versions already quarantined
    feedback/<endpoint>/date=YYYY-MM-DD/part-*.parquet   the endpoint's served/converted log
    code/<digest>/sourcedir.tar.gz  the training code, content-addressed
    checkpoints/<job>/              SageMaker training checkpoints
    models/<model>/<job>/output/model.tar.gz             SageMaker training output

Example
-------
>>> inputs_key("run-1")
'runs/run-1/inputs.json'
>>> s3_uri("bucket", dataset_dir("shop", "run-1"))
's3://bucket/datasets/shop/v=run-1'
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from driftloop.errors import InvalidInputError

# -- top-level prefixes ------------------------------------------------------------------------------
DEFAULT_INCOMING_PREFIX = "incoming/"  # template.yaml IncomingPrefix default
DEFAULT_MONITOR_REPORT_PREFIX = "monitoring/"  # template.yaml MonitorReportPrefix default
RUNS = "runs/"
REPORTS = "reports/"
CACHE = "cache/"
CACHE_DAYS = 14  # template.yaml's lifecycle rule expire-caches
DATASETS = "datasets/"
BASELINES = "baselines/"
QUARANTINE = "quarantine/"
FEEDBACK = "feedback/"
CAPTURE = "datacapture/"  # SageMaker Data Capture of the endpoints driftloop configures
CAPTURE_SUFFIX = ".jsonl"
PURCHASE_EVENTS = "purchases/"
CODE = "code/"
CHECKPOINTS = "checkpoints/"
MODELS = "models/"
# Every prefix the stack's code writes or reads, with the template's own spelling of it checked against these.
BUCKET_PREFIXES = (RUNS, REPORTS, CACHE, DATASETS, BASELINES, QUARANTINE, FEEDBACK, CAPTURE, PURCHASE_EVENTS, CODE,
                   CHECKPOINTS, MODELS)

RECORD_NAME = "record.json"
INPUTS_NAME = "inputs.json"
MERGE_PLAN_NAME = "merge-parts.json"
MERGE_RESULTS_PREFIX = f"{RUNS}_merge-parts-results"  # statemachines/retrain.asl.json ResultWriter Prefix
MANIFEST_NAME = "_manifest.json"
QUARANTINE_SEEN = f"{QUARANTINE}_seen/"
CONSTRAINT_VIOLATIONS_NAME = "constraint_violations.json"
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_AB_STAGE = re.compile(r"ab-stage-(\d+)-(\d+)\.json$")
_FEEDBACK_DAY = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")


def s3_uri(bucket: str, key: str = "") -> str:
    """``s3://bucket/key`` (``s3://bucket`` for the bucket itself)."""
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


def object_path(bucket: str, key: str) -> str:
    """``bucket/key``: how a ``pyarrow.fs`` S3 filesystem names an object or folder."""
    return f"{bucket}/{key}"


def path_uri(path: str) -> str:
    """The ``s3://`` URI of a ``pyarrow.fs`` path (``bucket/key``)."""
    return f"s3://{path}"


def validate_run_id(run_id: str) -> str:
    """``run_id`` when it is safe as one key segment (``v=<run id>``); else ``InvalidInputError``.

    A letter or digit, then up to 127 letters, digits, ``.``, ``_`` or ``-``: no separator, no
    relative segment, nothing a shell or an S3 console would show differently.
    """
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidInputError(
            f"run id {run_id[:80]!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run_id


# -- dataset versions (in the bucket or any folder) ------------------------------------------------
def version_dir(root: str, run_id: str) -> str:
    """The folder of the version named ``run_id`` under ``root``."""
    return f"{root.rstrip('/')}/v={validate_run_id(run_id)}"


def manifest_key(version: str) -> str:
    """The manifest of a version folder, written after every data file."""
    return f"{version.rstrip('/')}/{MANIFEST_NAME}"


def version_quarantine_dir(version: str) -> str:
    """Where a merge into ``version`` copies bad inputs when it is given no quarantine folder."""
    return f"{version.rstrip('/')}/_quarantine"


def dataset_dir(model: str, run_id: str) -> str:
    """The dataset version a run merges: ``datasets/<model>/v=<run_id>``."""
    return version_dir(f"{DATASETS}{model}", run_id)


def partials_dir(model: str, run_id: str) -> str:
    """The scale-out children's partial versions: beside the version folder, never inside it (training
    reads every Parquet file below the version)."""
    return version_dir(f"{DATASETS}{model}/_partials", run_id)


def part_dir(model: str, run_id: str, index: int) -> str:
    return f"{partials_dir(model, run_id)}/{index:05d}"


def partial_summary_key(model: str, run_id: str, item: int) -> str:
    """The drift summary of one scale-out child's uploads."""
    return f"{partials_dir(model, run_id)}/_summaries/{item:05d}.json"


def incoming_key(incoming_prefix: str, name: str) -> str:
    """An upload named ``name`` under the deployment's incoming prefix (IncomingPrefix)."""
    return f"{incoming_prefix}{name}"


# -- runs ------------------------------------------------------------------------------------------
def run_prefix(run_id: str) -> str:
    return f"{RUNS}{run_id}/"


def inputs_key(run_id: str) -> str:
    """The uploads a run works on, fixed once so every step sees the same files."""
    return f"{run_prefix(run_id)}{INPUTS_NAME}"


def merge_plan_key(run_id: str) -> str:
    """The scale-out merge's items (batches of uploads), read by the Distributed Map."""
    return f"{run_prefix(run_id)}{MERGE_PLAN_NAME}"


def record_key(run_id: str) -> str:
    """The run record, written by the last step."""
    return f"{run_prefix(run_id)}{RECORD_NAME}"


def is_record_key(key: str) -> bool:
    return key.startswith(RUNS) and key.endswith(f"/{RECORD_NAME}")


# -- reports ---------------------------------------------------------------------------------------
def report_prefix(run_id: str) -> str:
    return f"{REPORTS}{run_id}/"


def report_key(run_id: str, name: str) -> str:
    """A run's report ``name`` (``drift.json``, ``evaluation.json``, ...) under ``reports/<run_id>/``."""
    return f"{report_prefix(run_id)}{name}"


def drift_report_key(run_id: str) -> str:
    return report_key(run_id, "drift.json")


def drift_html_key(run_id: str) -> str:
    return report_key(run_id, "drift.html")


def drift_evidence_key(run_id: str) -> str:
    """The drift step's full result; the state holds a capped copy."""
    return report_key(run_id, "drift-evidence.json")


def new_data_summary_key(run_id: str) -> str:
    """The scale-out merge's drift summary of a run's uploads."""
    return report_key(run_id, "new-data-summary.json")


def evaluation_report_key(run_id: str) -> str:
    return report_key(run_id, "evaluation.json")


def decision_report_key(run_id: str) -> str:
    """The retrain decision with its evidence."""
    return report_key(run_id, "decision.json")


def ab_look_key(run_id: str, stage_index: int, look: int) -> str:
    """One look of the A/B test at a traffic stage."""
    return report_key(run_id, f"ab-stage-{stage_index}-{look}.json")


def ab_capture_digest_key(run_id: str, stage_index: int, look: int) -> str:
    """The Data Capture files one A/B look parsed (Parquet), so the next look reads only newer files: a
    cache, which the bucket expires (a look that finds none reads every file)."""
    return f"{CACHE}{run_id}/ab-stage-{stage_index}-{look}-capture.parquet"


def ab_look(key: str) -> tuple[int, int] | None:
    """(stage index, look) of an A/B look's key, or None for any other key."""
    match = _AB_STAGE.search(key)
    return (int(match.group(1)), int(match.group(2))) if match else None


# -- models, baselines, code -----------------------------------------------------------------------
def baseline_key(model: str, run_id: str) -> str:
    """The drift baseline of the model that run ``run_id`` promoted."""
    return f"{BASELINES}{model}/{run_id}.json"


def source_bundle_key(digest: str) -> str:
    """The training code bundle, addressed by its content (uploaded once per version of the code)."""
    return f"{CODE}{digest[:16]}/sourcedir.tar.gz"


def checkpoint_prefix(job_name: str) -> str:
    return f"{CHECKPOINTS}{job_name}/"


def model_output_prefix(model: str) -> str:
    """Where SageMaker writes ``<job>/output/model.tar.gz``."""
    return f"{MODELS}{model}/"


def training_output_key(output_prefix: str, job_name: str) -> str:
    """The model SageMaker writes for ``job_name`` under a job's output path's key."""
    return f"{output_prefix.rstrip('/')}/{job_name}/output/model.tar.gz".lstrip("/")


# -- quarantine ------------------------------------------------------------------------------------
def quarantine_dir(run_id: str) -> str:
    """Copies of a run's bad uploads and rows, with their reasons."""
    return f"{QUARANTINE}{run_id}"


def quarantine_key(run_id: str, name: str) -> str:
    return f"{quarantine_dir(run_id)}/{name}"


def quarantine_marker_key(uri: str, etag: str) -> str:
    """Marks one upload version as quarantined, so later runs do not count it again."""
    return f"{QUARANTINE_SEEN}{hashlib.sha256(f'{uri}#{etag}'.encode()).hexdigest()}.json"


# -- feedback --------------------------------------------------------------------------------------
def feedback_prefix(endpoint_name: str) -> str:
    """The endpoint's feedback log (what was served to whom, and whether it converted)."""
    return f"{FEEDBACK}{endpoint_name}/"


def feedback_day_prefix(endpoint_name: str, day: date | str) -> str:
    """The ``date=`` partition of one day (an ISO date)."""
    return day_partition_prefix(feedback_prefix(endpoint_name), day)


def feedback_key(endpoint_name: str, served_at: datetime) -> str:
    """One batch of feedback rows served at ``served_at``."""
    return f"{feedback_day_prefix(endpoint_name, served_at.date())}/part-{served_at:%H%M%S%f}.parquet"


def feedback_endpoint(key: str) -> str:
    """The endpoint whose feedback log holds ``key``."""
    return key.removeprefix(FEEDBACK).split("/", 1)[0]


def feedback_day(key: str) -> str | None:
    """The ISO day of the ``date=`` partition holding ``key``, or None."""
    match = _FEEDBACK_DAY.search(key)
    return match.group(1) if match else None


def day_partition_prefix(prefix: str, day: date | str) -> str:
    """The ``date=`` partition of one day (an ISO date) under ``prefix``."""
    return f"{prefix}date={day if isinstance(day, str) else day.isoformat()}"


def partition_day(prefix: str, key: str) -> str | None:
    """The ISO day of the ``date=`` partition directly under ``prefix`` holding ``key``, or None."""
    partition, _, _ = key[len(prefix):].partition("/")
    return partition[5:] if key.startswith(prefix) and partition.startswith("date=") else None


# -- purchase events and Data Capture --------------------------------------------------------------
def purchase_events_key(at: datetime, name: str) -> str:
    """``purchases/date=YYYY-MM-DD/<name>.parquet`` for purchase events of ``at``'s day (UTC)."""
    return f"{day_partition_prefix(PURCHASE_EVENTS, at.astimezone(UTC).date())}/{name}.parquet"


def capture_destination(bucket: str, prefix: str = CAPTURE) -> str:
    """The ``DestinationS3Uri`` of the endpoint configs: ``s3://<bucket>/<prefix>`` without a trailing slash."""
    return f"s3://{bucket}/{prefix.rstrip('/')}"


def endpoint_capture_prefix(endpoint: str, prefix: str = CAPTURE) -> str:
    return f"{prefix}{endpoint}/"


def capture_key(endpoint: str, variant: str, at: datetime, name: str, prefix: str = CAPTURE) -> str:
    """``<prefix><endpoint>/<variant>/yyyy/mm/dd/hh/<name>.jsonl`` for a file holding requests of ``at``'s hour."""
    hour = f"{at.astimezone(UTC):%Y/%m/%d/%H}"
    return f"{endpoint_capture_prefix(endpoint, prefix)}{variant}/{hour}/{name}{CAPTURE_SUFFIX}"


def capture_hour(key: str, endpoint: str, prefix: str = CAPTURE) -> tuple[str, datetime] | None:
    """(variant, start of the hour) of a capture file's key, or None for a key outside the layout."""
    base = endpoint_capture_prefix(endpoint, prefix)
    if not key.startswith(base) or not key.endswith(CAPTURE_SUFFIX):
        return None
    parts = key[len(base):].split("/")
    if len(parts) != 6:
        return None
    variant, year, month, day, hour, _ = parts
    try:
        return variant, datetime(int(year), int(month), int(day), int(hour), tzinfo=UTC)
    except ValueError:
        return None


# -- Model Monitor ---------------------------------------------------------------------------------
def monitor_report_key(prefix: str, endpoint_name: str, schedule: str, hour: datetime) -> str:
    """Where a Model Monitor schedule writes the violations of the hour ``hour`` under ``prefix``."""
    return f"{prefix}{endpoint_name}/{schedule}/{hour:%Y/%m/%d/%H}/{CONSTRAINT_VIOLATIONS_NAME}"


# -- the local runtime -----------------------------------------------------------------------------
LOCAL_ARTIFACTS_BUCKET = "local-artifacts"  # where the local template pretends its code is uploaded


DEFAULT_WORKSPACE = ".driftloop"  # where local commands keep their workspace unless given --workspace


@dataclass(frozen=True)
class WorkspaceLayout:
    """The local runtime's workspace folder (``.driftloop/`` by default): what persists between commands.

    Example
    -------
    >>> WorkspaceLayout(Path("ws")).index_file.as_posix()
    'ws/s3/index.json'
    """

    root: Path

    @property
    def objects(self) -> Path:
        """S3 object bodies, one file per SHA-256 of the content."""
        return self.root / "s3" / "objects"

    @property
    def index_file(self) -> Path:
        """Which object (bucket, key) has which body."""
        return self.root / "s3" / "index.json"

    def table_file(self, table: str) -> Path:
        """A DynamoDB table's items."""
        return self.root / "dynamodb" / f"{table}.json"

    @property
    def schedules_file(self) -> Path:
        """One-time EventBridge schedules not yet due."""
        return self.root / "schedules.json"

    @property
    def deliveries_file(self) -> Path:
        """How often each event was delivered (execution names derive from it)."""
        return self.root / "deliveries.json"

    @property
    def notifications_file(self) -> Path:
        """Every SNS notification, one JSON line each."""
        return self.root / "notifications.jsonl"

    @property
    def logs(self) -> Path:
        """``<function>.log``: what each handler printed, as CloudWatch Logs would keep it."""
        return self.root / "logs"

    @property
    def cache(self) -> Path:
        """Downloaded model artefacts."""
        return self.root / "cache"

    @property
    def trainer(self) -> Path:
        """The local trainer's jobs (``jobs.json``) and their logs."""
        return self.root / "trainer"

    @property
    def endpoints(self) -> Path:
        """The simulated endpoints' state, ``<endpoint>.json``."""
        return self.root / "endpoint"

    @property
    def shop_file(self) -> Path:
        """The simulated shop: its simulator settings and current month."""
        return self.root / "world.json"

    @property
    def report(self) -> Path:
        """Where ``driftloop demo`` writes the HTML report."""
        return self.root / "report"

    def is_workspace(self) -> bool:
        """Whether ``root`` holds a workspace (a shop or stored objects)."""
        return self.shop_file.exists() or (self.root / "s3").exists()


# -- what an object key may be ----------------------------------------------------------------------
MAX_KEY_LENGTH = 1024
_FORBIDDEN_KEY_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def validate_object_key(key: str, allowed_prefixes: tuple[str, ...]) -> str:
    """Reject keys that could escape our prefixes or break names built from them."""
    if not key:
        raise InvalidInputError("object key is empty")
    if len(key.encode()) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"object key is longer than {MAX_KEY_LENGTH} bytes")
    if _FORBIDDEN_KEY_CHARACTERS.search(key):
        raise InvalidInputError(f"object key {key[:80]!r} contains control characters or a backslash")
    if unicodedata.normalize("NFC", key) != key:
        raise InvalidInputError(f"object key {key[:80]!r} is not in Unicode normal form C")
    segments = key.split("/")
    if any(segment in ("..", ".") for segment in segments) or key.startswith("/"):
        raise InvalidInputError(f"object key {key[:80]!r} contains a relative path segment")
    if not key.startswith(allowed_prefixes):
        raise InvalidInputError(f"object key {key[:80]!r} is outside the watched prefixes {list(allowed_prefixes)}")
    return key
