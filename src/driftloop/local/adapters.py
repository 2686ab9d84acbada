"""Local stand-ins for SageMaker: a trainer that runs the real entry point, and a simulated endpoint.

Both keep their state as JSON in the workspace, so consecutive ``driftloop`` commands see one world.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tarfile
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from driftloop.adapters.artifacts import fetch_model_dir
from driftloop.adapters.endpoint import IN_SERVICE, Endpoint, EndpointState, GuardrailPolicy, ModelSpec, Variant
from driftloop.adapters.s3 import list_objects, split_uri
from driftloop.adapters.training import Trainer
from driftloop.capture import capture_record
from driftloop.config import Settings
from driftloop.errors import TransientError
from driftloop.layout import WorkspaceLayout, capture_key, s3_uri, training_output_key
from driftloop.local import clock as local_clock
from driftloop.local.training_host import TrainingHost
from driftloop.pipeline.services import AWSClients

_STATE_LOCK = threading.RLock()
_TRAINING_HOST = TrainingHost()


def _read(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
    temporary.replace(path)


def _epoch() -> float:
    return local_clock.now()


def _now() -> str:
    return local_clock.utcnow().isoformat()


class LocalTrainer(Trainer):
    """Runs ``train.py`` from the job's ``sourcedir.tar.gz`` in its own process, as the container would (on
    Linux a fork of the warm :class:`~driftloop.local.training_host.TrainingHost` the process's jobs share):
    channels under ``input/data/<channel>``, ``SM_MODEL_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_HPS``;
    the model folder goes back to S3 as ``<output path>/<job>/output/model.tar.gz``."""

    def __init__(self, workspace: str | os.PathLike[str], s3: Any) -> None:
        self._root = WorkspaceLayout(Path(workspace)).trainer
        self._s3 = s3

    @property
    def _jobs_file(self) -> Path:
        return self._root / "jobs.json"

    def _jobs(self) -> dict[str, dict[str, Any]]:
        return _read(self._jobs_file, {})

    def _save(self, name: str, job: dict[str, Any]) -> None:
        with _STATE_LOCK:
            jobs = self._jobs()
            jobs[name] = job
            _write(self._jobs_file, jobs)

    def describe(self, job_name: str) -> dict[str, Any] | None:
        with _STATE_LOCK:
            job = self._jobs().get(job_name)
        if job is not None and job["TrainingJobStatus"] == "InProgress" and job.get("pid_owner") != os.getpid():
            job = {**job, "TrainingJobStatus": "Failed",
                   "FailureReason": "the local runtime that ran this job exited before it finished"}
            self._save(job_name, job)
        return job

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        existing = self.describe(name)
        if existing is not None:
            return existing
        job = {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:local:000000000000:training-job/{name}",
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "HyperParameters": request.get("HyperParameters", {}),
            "InputDataConfig": request["InputDataConfig"],
            "OutputDataConfig": request["OutputDataConfig"],
            "ResourceConfig": request["ResourceConfig"],
            "EnableManagedSpotTraining": request.get("EnableManagedSpotTraining", False),
            "Tags": request.get("Tags", []),
            "CreationTime": _now(),
            "pid_owner": os.getpid(),
        }
        self._save(name, job)
        release = local_clock.hold()  # the clock does not jump while the job trains (it takes real time)
        threading.Thread(target=self._run, args=(name, release), name=f"train-{name}", daemon=True).start()
        return job

    def _download_prefix(self, uri: str, target: Path) -> None:
        bucket, prefix = split_uri(uri)
        for obj in list_objects(self._s3, bucket, prefix):
            destination = (target / obj.key[len(prefix):].lstrip("/")).resolve()
            if not str(destination).startswith(str(target.resolve())):
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            self._s3.download_file(bucket, obj.key, str(destination))

    def _run(self, name: str, release: Callable[[], None]) -> None:
        try:
            job = self.describe(name) or {}
            started = _epoch()
            try:
                with tempfile.TemporaryDirectory(prefix=f"driftloop-{name}-") as folder:
                    outcome = self._train(job, Path(folder))
            except Exception as error:  # noqa: BLE001 - a crashed job is a Failed job with its reason
                outcome = {"TrainingJobStatus": "Failed",
                           "FailureReason": f"{type(error).__name__}: {error}"[:1024]}
            seconds = max(1, round(_epoch() - started))
            self._save(name, {**job, **outcome, "SecondaryStatus": outcome["TrainingJobStatus"],
                              "TrainingTimeInSeconds": seconds, "BillableTimeInSeconds": seconds,
                              "TrainingEndTime": _now()})
        finally:
            release()

    def _train(self, job: dict[str, Any], root: Path) -> dict[str, Any]:
        hyperparameters = {key: json.loads(value) for key, value in job["HyperParameters"].items()}
        code = root / "code"
        code.mkdir()
        bucket, key = split_uri(hyperparameters["sagemaker_submit_directory"])
        with tarfile.open(fileobj=io.BytesIO(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as bundle:
            bundle.extractall(code, filter="data")
        channels = []
        for channel in job["InputDataConfig"]:
            channel_dir = root / "input" / "data" / channel["ChannelName"]
            channel_dir.mkdir(parents=True)
            self._download_prefix(channel["DataSource"]["S3DataSource"]["S3Uri"], channel_dir)
            channels.append(channel["ChannelName"])
        model_dir, output_dir = root / "model", root / "output"
        (output_dir / "data").mkdir(parents=True)
        model_dir.mkdir()
        user_hyperparameters = {k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SM_")},
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DIR": str(output_dir),
            "SM_OUTPUT_DATA_DIR": str(output_dir / "data"),
            "SM_CHANNELS": json.dumps(channels),
            "SM_HPS": json.dumps(user_hyperparameters),
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "PYTHONPATH": str(code),
            **{f"SM_CHANNEL_{name.upper()}": str(root / "input" / "data" / name) for name in channels},
            **{f"SM_HP_{name.upper()}": str(value) for name, value in user_hyperparameters.items()},
        }
        program = hyperparameters.get("sagemaker_program", "train.py")
        stdout, stderr = root / "stdout", root / "stderr"
        returncode = _TRAINING_HOST.run(program, str(code), environment, str(stdout), str(stderr))
        errors = stderr.read_text(errors="replace")
        (self._root / f"{job['TrainingJobName']}.log").write_text(stdout.read_text(errors="replace") + errors)
        if returncode != 0:
            failure = output_dir / "failure"
            reason = failure.read_text() if failure.exists() else (errors.strip().splitlines() or ["?"])[-1]
            return {"TrainingJobStatus": "Failed", "FailureReason": reason[:1024]}
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz", compresslevel=1) as model_tar:  # gzip's fastest level
            for path in sorted(model_dir.rglob("*")):
                model_tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
        out_bucket, out_prefix = split_uri(job["OutputDataConfig"]["S3OutputPath"])
        artifact_key = training_output_key(out_prefix, job["TrainingJobName"])
        self._s3.put_object(Bucket=out_bucket, Key=artifact_key, Body=archive.getvalue())
        metrics_file = output_dir / "data" / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        return {
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": s3_uri(out_bucket, artifact_key)},
            "FinalMetricDataList": [{"MetricName": name, "Value": value} for name, value in metrics.items()
                                    if isinstance(value, int | float)],
        }


UPDATE_SECONDS_VARIABLE = "DRIFTLOOP_ENDPOINT_UPDATE_SECONDS"


@functools.lru_cache(maxsize=16)
def _load_served_model(model_dir: str, unpacked_ns: int) -> Any:
    """The container's ``model_fn`` of an artifact unpacked in ``model_dir`` at ``unpacked_ns``, once per
    process: the simulated customers make a new endpoint object for every stretch of time they are served
    in, and an unpacked artifact is never rewritten (a folder unpacked again, e.g. in a reset workspace,
    has a new time)."""
    from driftloop.model.inference import model_fn

    return model_fn(model_dir)


def _request(user: str, k: int, recent: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """One user's recommendation request, with ``recent_items`` when the user has any."""
    return {"user_id": user, "k": k, **({"recent_items": list(recent[user])} if recent.get(user) else {})}


class SimulatedEndpoint(Endpoint):
    """Records variant weights like a SageMaker endpoint and serves recommendations with the real
    inference code (``driftloop.local.customers`` sends it simulated customers). With ``capture_bucket``,
    ``serve`` writes what it served as SageMaker Data Capture does (:mod:`driftloop.capture`): one JSON
    Lines file per call and variant under ``datacapture/<endpoint>/<variant>/yyyy/mm/dd/hh/``, by
    ``capture_writer(bucket, key, body)`` (default: a PutObject with ``s3``).

    Like SageMaker, a change is not instant: for ``update_seconds`` (default: the local runtime's
    ``DRIFTLOOP_ENDPOINT_UPDATE_SECONDS``, from ``[world] endpoint_update_seconds`` of local.toml) the
    endpoint is ``Creating`` or ``Updating``, the old config keeps serving, and a second change is refused
    with TransientError. ``describe`` applies a change whose time is up."""

    def __init__(self, workspace: str | os.PathLike[str], name: str, s3: Any,
                 update_seconds: float | None = None, capture_bucket: str | None = None,
                 capture_writer: Callable[[str, str, bytes], object] | None = None) -> None:
        self.name = name
        self._capture_bucket = capture_bucket
        self._write_capture = capture_writer or (lambda bucket, key, body: s3.put_object(Bucket=bucket, Key=key,
                                                                                          Body=body))
        self._root = WorkspaceLayout(Path(workspace)).endpoints
        self._s3 = s3
        self._models: dict[str, Any] = {}
        self._update_seconds = float(os.environ.get(UPDATE_SECONDS_VARIABLE, "0")) if update_seconds is None \
            else update_seconds

    @property
    def _state_file(self) -> Path:
        return self._root / f"{self.name}.json"

    def _state(self) -> dict[str, Any]:
        state = _read(self._state_file, {"models": {}, "configs": {}, "endpoint": None, "history": []})
        pending = (state["endpoint"] or {}).get("pending")
        if pending and _epoch() >= pending["until"]:
            state["endpoint"] = {"config_name": pending["config_name"], "variants": pending["variants"]}
            self._commit(state, pending["change"])
        return state

    def _commit(self, state: dict[str, Any], change: str) -> None:
        state["history"].append({"at": _now(), "change": change,
                                 "endpoint": state["endpoint"]})
        _write(self._state_file, state)

    def _change(self, state: dict[str, Any], config_name: str, variants: list[dict[str, Any]], change: str) -> None:
        """Start a change (or make it at once when ``update_seconds`` is 0); the caller holds the lock."""
        if self._update_seconds <= 0:
            state["endpoint"] = {"config_name": config_name, "variants": variants}
            self._commit(state, change)
            return
        pending = {"config_name": config_name, "variants": variants, "change": change,
                   "until": _epoch() + self._update_seconds}
        if state["endpoint"] is None:  # Creating: nothing serves until it is InService
            state["endpoint"] = {"config_name": config_name, "variants": variants, "creating": True}
        state["endpoint"] = {**state["endpoint"], "pending": pending}
        self._commit(state, f"requested: {change}")

    @staticmethod
    def _require_settled(state: dict[str, Any], name: str) -> None:
        if (state["endpoint"] or {}).get("pending"):
            raise TransientError(f"endpoint {name} is updating; retry when it is InService")

    def describe(self) -> EndpointState | None:
        with _STATE_LOCK:
            endpoint = self._state()["endpoint"]
        if endpoint is None:
            return None
        status = IN_SERVICE
        if endpoint.get("pending"):
            status = "Creating" if endpoint.get("creating") else "Updating"
        return EndpointState(self.name, status, endpoint["config_name"],
                             tuple(Variant(**variant) for variant in endpoint["variants"]))

    def ensure_model(self, model: ModelSpec) -> None:
        with _STATE_LOCK:
            state = self._state()
            if model.name not in state["models"]:
                state["models"][model.name] = {"model_data_url": model.model_data_url, "image": model.image}
                self._commit(state, f"model {model.name} created")

    def deploy(self, config_name: str, variants: list[Variant]) -> None:
        with _STATE_LOCK:
            state = self._state()
            missing = [variant.model_name for variant in variants if variant.model_name not in state["models"]]
            if missing:
                raise TransientError(f"models {missing} do not exist yet")
            state["configs"].setdefault(config_name, [asdict(variant) for variant in variants])
            endpoint = state["endpoint"] or {}
            if config_name in (endpoint.get("config_name"), (endpoint.get("pending") or {}).get("config_name")):
                return
            self._require_settled(state, self.name)
            self._change(state, config_name, state["configs"][config_name], f"endpoint on config {config_name}")

    def set_weights(self, weights: dict[str, float]) -> None:
        with _STATE_LOCK:
            state = self._state()
            if state["endpoint"] is None:
                raise TransientError(f"endpoint {self.name} does not exist yet")
            variants = {variant["name"]: dict(variant) for variant in state["endpoint"]["variants"]}
            unknown = set(weights) - set(variants)
            if unknown:
                raise ValueError(f"unknown variants {sorted(unknown)} on endpoint {self.name}")
            if all(variants[name]["weight"] == float(weight) for name, weight in weights.items()):
                return
            self._require_settled(state, self.name)
            for name, weight in weights.items():
                variants[name]["weight"] = float(weight)
            self._change(state, state["endpoint"]["config_name"], list(variants.values()), f"weights {weights}")

    def deploy_guarded(self, config_name: str, variants: list[Variant], guardrails: GuardrailPolicy) -> None:
        """A swap like ``deploy``, unless one of the policy's alarms is in ALARM in CloudWatch (moto's, in
        the local runtime) when the update starts: then the deployment rolls back at once and the endpoint
        stays on its config, where SageMaker's auto-rollback would leave it. There is no baking: an alarm
        that fires later never undoes a finished swap. Alarms that do not exist count as OK."""
        with _STATE_LOCK:
            state = self._state()
            swapping = state["endpoint"] is not None and state["endpoint"]["config_name"] != config_name
            firing = self._alarms_in_alarm(guardrails.alarms) if swapping else []
            if not firing:
                self.deploy(config_name, variants)
                return
            state["configs"].setdefault(config_name, [asdict(variant) for variant in variants])
            self._commit(state, f"{guardrails.policy} deployment of {config_name} rolled back: "
                                f"alarms {firing} in ALARM")

    def _alarms_in_alarm(self, alarms: tuple[str, ...]) -> list[str]:
        cloudwatch = boto3.client("cloudwatch", region_name=self._s3.meta.region_name)
        found = cloudwatch.describe_alarms(AlarmNames=list(alarms), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        return sorted(alarm["AlarmName"] for kind in ("MetricAlarms", "CompositeAlarms")
                      for alarm in found.get(kind, []) if alarm["StateValue"] == "ALARM")

    def model_artifact(self, model_name: str) -> str:
        with _STATE_LOCK:
            return self._state()["models"][model_name]["model_data_url"]

    def _served_model(self, model_name: str) -> Any:
        if model_name not in self._models:
            model_dir = fetch_model_dir(self._s3, self.model_artifact(model_name))
            self._models[model_name] = _load_served_model(str(model_dir), model_dir.stat().st_mtime_ns)
        return self._models[model_name]

    def trained_until(self, model_name: str) -> datetime:
        """The time of the last interaction the variant's model was trained on."""
        return self._served_model(model_name).recommender.trained_until

    def invoke(self, user_id: str, k: int = 10, variant: str | None = None,
               recent_items: list[str] | None = None) -> dict[str, Any]:
        """One recommendation request through the container's input_fn/predict_fn/output_fn."""
        from driftloop.model.inference import input_fn, output_fn, predict_fn

        state = self.describe()
        if state is None:
            raise TransientError(f"endpoint {self.name} does not exist")
        chosen = state.variant(variant) if variant else state.variants[0]
        request: dict[str, Any] = {"user_id": user_id, "k": k}
        if recent_items:
            request["recent_items"] = recent_items
        response = json.loads(output_fn(predict_fn(input_fn(json.dumps(request), "application/json"),
                                                   self._served_model(chosen.model_name)), "application/json"))
        return {"variant": chosen.name, **response}

    def recommend_batch(self, model_name: str, user_ids: list[str], k: int,
                        recent: Mapping[str, Sequence[str]] | None = None) -> list[list[str]]:
        """One batch request; ``recent[user]`` goes out as that user's ``recent_items``."""
        from driftloop.model.inference import input_fn, predict_fn

        recent = recent or {}
        instances = [_request(user, k, recent) for user in user_ids]
        prediction = predict_fn(input_fn(json.dumps({"instances": instances}), "application/json"),
                                self._served_model(model_name))
        return [entry["items"] for entry in prediction["predictions"]]

    def serve(self, variant: Variant, user_ids: list[str], k: int, recent: Mapping[str, Sequence[str]],
              at: Sequence[datetime], request_ids: Sequence[str]) -> list[list[str]]:
        """Each user's own request to ``variant``, the i-th arriving at ``at[i]`` (with ``inferenceId`` = its
        request id, as a shop that tags purchases sets it), answered in one batch, and captured when a
        capture bucket is set: one file per hour the requests arrived in, in that hour's folder, as SageMaker
        writes them."""
        ranked = self.recommend_batch(variant.model_name, user_ids, k, recent)
        if self._capture_bucket is None or not user_ids:
            return ranked
        hours: dict[datetime, list[str]] = {}
        for user, items, request_id, moment in zip(user_ids, ranked, request_ids, at, strict=True):
            hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            hours.setdefault(hour, []).append(capture_record(
                f"{self.name}-{request_id}", moment, _request(user, k, recent), {"user_id": user, "items": items},
                inference_id=request_id))
        for hour, lines in hours.items():
            key = capture_key(self.name, variant.name, hour, f"{hour:%Y%m%dT%H}-{request_ids[0]}")
            self._write_capture(self._capture_bucket, key, ("\n".join(lines) + "\n").encode())
        return ranked


@dataclass(frozen=True)
class LocalAdapters:
    """What the local runtime injects into the steps' services (``pipeline.services.Adapters``): the
    local trainer and the simulated endpoint, both keeping their state in ``workspace``, on the runtime's
    simulated time (waits jump ahead: :mod:`driftloop.local.clock`). Every step's AWS clients come from
    ``clients``: one per service for the whole runtime, since building a client costs more than most calls
    to moto (in Lambda, each function builds its own once per process)."""

    workspace: Path
    clients: AWSClients = field(compare=False, repr=False)

    def __call__(self, settings: Settings, s3: Any, sagemaker: Any) -> tuple[Trainer, Endpoint]:
        return LocalTrainer(self.workspace, s3), SimulatedEndpoint(self.workspace, settings.endpoint_name, s3)

    def session(self) -> AWSClients:
        return self.clients

    def clock(self) -> float:
        return local_clock.now()

    def sleep(self, seconds: float) -> None:
        local_clock.pause(seconds)
