"""The CloudFormation custom resource that runs ``driftloop teardown`` when its stack is deleted.

``sam delete`` removes what the template declares; the endpoint, configs, models, running training jobs
and cool-down schedules the Lambdas created are not declared. This resource's Delete runs the same code as
``driftloop teardown --yes`` (:mod:`driftloop.adapters.teardown`), so deleting the stack leaves no billed
endpoint behind. It acts only while the stack itself is being deleted (``DELETE_IN_PROGRESS``): a Delete
that CloudFormation sends because the resource was replaced during an update, or rolled back, deletes
nothing. Every request is answered, also when the teardown fails (then FAILED with the reason, so the
stack stops in DELETE_FAILED instead of leaving a billed endpoint unnoticed).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from driftloop.adapters.teardown import StackInfo, execute, plan_teardown

PHYSICAL_ID = "driftloop-teardown-on-stack-delete"
MAX_REASON = 3000  # CloudFormation keeps at most 4 KB of a response


def send_response(url: str, body: dict[str, Any]) -> None:
    """PUT the response to CloudFormation's pre-signed S3 URL (no Content-Type: it is part of the signature)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="PUT",  # noqa: S310 - CloudFormation's https URL
                                     headers={"Content-Type": "", "Content-Length": str(len(data))})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


def stack_from_environment(environment: Mapping[str, str], region: str) -> StackInfo:
    """The stack's names from the function's environment (the template's Globals)."""
    role = environment.get("COOLDOWN_SCHEDULE_ROLE_ARN", "").rsplit("/", 1)[-1]
    return StackInfo(name=environment["STACK_NAME"], region=region, status="DELETE_IN_PROGRESS",
                     model_name=environment["MODEL_NAME"], endpoint_name=environment["ENDPOINT_NAME"],
                     schedule_role=role)


def _tear_down(event: Mapping[str, Any], cloudformation: Any, sagemaker: Any, scheduler: Any,
               environment: Mapping[str, str]) -> tuple[str, str]:
    status = cloudformation.describe_stacks(StackName=event["StackId"])["Stacks"][0]["StackStatus"]
    if status != "DELETE_IN_PROGRESS":
        return "SUCCESS", f"stack is {status}, not being deleted: nothing deleted"
    keep = str(event.get("ResourceProperties", {}).get("KeepModelRegistry", "true")).lower() == "true"
    plan = plan_teardown(stack_from_environment(environment, cloudformation.meta.region_name), sagemaker,
                         scheduler, keep_model_registry=keep)
    outcomes = execute(plan, sagemaker, scheduler)
    failed = [f"{o.kind} {o.name}: {o.detail}" for o in outcomes if o.failed]
    done = ", ".join(f"{o.result} {o.kind} {o.name}" for o in outcomes) or "nothing left"
    if failed:
        return "FAILED", (f"could not delete {'; '.join(failed)}. Fix it, then run `driftloop teardown --stack "
                          f"{plan.stack.name} --yes` and delete the stack again")
    return "SUCCESS", done


def handle(event: Mapping[str, Any], cloudformation: Any, sagemaker: Any, scheduler: Any,
           environment: Mapping[str, str],
           send: Callable[[str, dict[str, Any]], None] = send_response) -> dict[str, Any]:
    """Answer one custom-resource request; returns the response sent."""
    status, reason = "SUCCESS", "nothing to do on create or update"
    try:
        if event.get("RequestType") == "Delete":
            status, reason = _tear_down(event, cloudformation, sagemaker, scheduler, environment)
    except Exception as error:  # noqa: BLE001 - CloudFormation must get an answer, or it waits an hour
        status, reason = "FAILED", f"{type(error).__name__}: {error}"
    response = {"Status": status, "Reason": reason[:MAX_REASON], "PhysicalResourceId": PHYSICAL_ID,
                "StackId": event.get("StackId"), "RequestId": event.get("RequestId"),
                "LogicalResourceId": event.get("LogicalResourceId"), "NoEcho": False, "Data": {}}
    send(str(event.get("ResponseURL", "")), response)
    return response
