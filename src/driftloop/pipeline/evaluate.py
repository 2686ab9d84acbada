"""The offline gate: champion and challenger on the same newest, held-out data."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from driftloop.adapters.artifacts import fetch_model_dir
from driftloop.adapters.registry import ModelRegistry
from driftloop.adapters.s3 import put_json
from driftloop.adapters.tags import stack_tags
from driftloop.data.merge import dataset_source
from driftloop.evaluation.offline import OfflineGateConfig, offline_gate
from driftloop.layout import evaluation_report_key, object_path, s3_uri
from driftloop.model.data import ColumnMapping, at_or_after, holdout_items, read_interactions
from driftloop.model.metrics import per_user_metrics
from driftloop.model.recommender import Recommender
from driftloop.pipeline.contracts import Evaluation, returns
from driftloop.pipeline.invocation import StepInvocation
from driftloop.pipeline.services import Services, hold_lock
from driftloop.storage import s3_filesystem

K = 10


def popularity_lists(model: Recommender, users: list[str], k: int) -> dict[str, list[str]]:
    ranking = model.popular_items(model.n_items)
    lists = {}
    for user in users:
        seen = set(model.seen_items(user))
        lists[user] = [item for item in ranking if item not in seen][:k]
    return lists


def score(lists: dict[str, list[str]], relevant: dict[str, set[str]]) -> dict[str, np.ndarray]:
    values = per_user_metrics(lists, relevant, K)
    return {name: array for name, array in values.items() if name != "user_id"}


@returns(Evaluation)
def run(invocation: StepInvocation, services: Services) -> Evaluation:
    settings = services.settings
    bucket = settings.data_bucket
    run = invocation.run
    hold_lock(services, run["run_id"])
    merge, training = invocation.merge, invocation.training
    champion = services.ledger.champion(settings.model_name)
    first_deployment = champion is None

    table = read_interactions(dataset_source(s3_filesystem(services.s3), object_path(bucket, merge.dataset_dir)),
                              ColumnMapping())
    holdout = at_or_after(table, datetime.fromisoformat(merge.holdout_from))
    challenger = Recommender.load(fetch_model_dir(services.s3, training.model_artifact))
    relevant = holdout_items(holdout, challenger.config.target_event_types)
    users = sorted(relevant)
    challenger_lists = dict(zip(users, challenger.recommend(users, k=K), strict=True))
    if first_deployment:
        baseline_lists = popularity_lists(challenger, users, K)
    else:
        champion_model = Recommender.load(fetch_model_dir(services.s3, champion["model_data_url"]))
        baseline_lists = dict(zip(users, champion_model.recommend(users, k=K), strict=True))
    per_user = {"champion": score(baseline_lists, relevant), "challenger": score(challenger_lists, relevant)}
    gate = offline_gate(
        per_user, OfflineGateConfig(margin=settings.evaluation_margin), first_deployment=first_deployment
    ).to_dict()
    report_key = put_json(services.s3, bucket, evaluation_report_key(run["run_id"]),
                          {"holdout_from": merge.holdout_from, "holdout_rows": holdout.num_rows, **gate})
    package_arn = ModelRegistry(services.sagemaker, settings.model_name, stack_tags(settings.stack_name)).register(
        run_id=run["run_id"],
        model_data_url=training.model_artifact,
        image=settings.training_image,
        metrics={"baseline": gate["baseline"], **gate["metrics"]},
        dataset_manifest_uri=s3_uri(bucket, merge.manifest_key),
        evaluation_report_uri=report_key,
    )
    return Evaluation(
        passed=gate["passed"],
        first_deployment=first_deployment,
        reason=gate["reason"],
        baseline=gate["baseline"],
        primary_metric=gate["primary_metric"],
        holdout_users=gate["n_users"],
        metrics=gate["metrics"],
        differences=gate["differences"],
        model_package_arn=package_arn,
        report=report_key,
    )
