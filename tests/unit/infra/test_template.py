"""template.yaml against the contract the local runtime and the handlers rely on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import REPO

FUNCTIONS = {
    "AdmitFunction": "admit",
    "DriftFunction": "drift",
    "MergeFunction": "merge",
    "MergePartFunction": "merge_part",
    "CombineMergeFunction": "combine_merge",
    "StartTrainingFunction": "start_training",
    "PollTrainingFunction": "poll_training",
    "EvaluateFunction": "evaluate",
    "UpdateWeightsFunction": "update_weights",
    "AnalyseABFunction": "analyse_ab",
    "PromoteFunction": "promote",
    "RollbackFunction": "rollback",
    "PollEndpointFunction": "poll_endpoint",
    "FinalizeFunction": "finalize",
}
ENVIRONMENT = {
    "DATA_BUCKET", "LEDGER_TABLE", "NOTIFICATION_TOPIC_ARN", "MODEL_NAME", "ENDPOINT_NAME",
    "CHAMPION_VARIANT", "CHALLENGER_VARIANT", "INCOMING_PREFIX", "MONITOR_REPORT_PREFIX", "PSI_THRESHOLD",
    "JS_THRESHOLD", "SIGNIFICANCE_LEVEL", "MIN_SAMPLE_SIZE", "EVALUATION_MARGIN", "TRAFFIC_STAGES",
    "MINIMUM_LIFT", "AB_HOLDBACK_PERCENT",
    "MIN_SAMPLES_PER_VARIANT", "ATTRIBUTION_WINDOW_MINUTES", "TRAINING_HYPERPARAMETERS", "HOLDOUT_DAYS",
    "DATASET_PARTITIONING", "COOLDOWN_HOURS",
    "LOCK_LEASE_MINUTES", "MAX_BAKE_WAITS", "DEPLOYMENT_MODE", "ROLLBACK_ALARM_NAMES", "CONVERSION_PERIOD",
    "DATA_CAPTURE_SAMPLING_PERCENT", "DATA_CAPTURE_KMS_KEY",
    "TRAINING_IMAGE", "TRAINING_INSTANCE_TYPE", "USE_SPOT_TRAINING", "MAX_TRAINING_SECONDS",
    "ENDPOINT_INSTANCE_TYPE", "SAGEMAKER_ROLE_ARN", "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL",
    "STACK_NAME",
}  # fmt: skip
# The retrain decision's parameters: only the drift step reads them (config.RetrainSettings).
DRIFT_ENVIRONMENT = {
    "RETRAIN_POLICY", "RETRAIN_EVERY_DAYS", "VALUE_PER_NDCG_POINT", "TRAINING_HOURLY_PRICE",
    "TRAINING_STARTUP_SECONDS", "AB_EXPOSURE_COST", "RETRAIN_CHALLENGER",
}  # fmt: skip
PARAMETER_DEFAULTS = {
    "ModelName": "recommender", "EndpointName": "driftloop-recommender", "ChampionVariantName": "champion",
    "ChallengerVariantName": "challenger", "IncomingPrefix": "incoming/", "MonitorReportPrefix": "monitoring/",
    "AlarmNames": "driftloop-conversion-drop", "ScheduleExpression": "rate(7 days)", "ScheduleState": "DISABLED",
    "ConversionAlarmThreshold": 0.05, "ConversionAlarmPeriods": 1, "StackDeleteTeardown": "keep-model-registry",
    "PsiThreshold": 0.2, "JsThreshold": 0.1, "SignificanceLevel": 0.05, "MinSampleSize": 1000,
    "EvaluationMargin": 0.0, "TrafficStages": "10,50,100", "MinimumLift": 0.05, "ABHoldbackPercent": 0,
    "MinSamplesPerVariant": 500, "AttributionWindowMinutes": 60, "DataCaptureSamplingPercent": 100,
    "HoldoutDays": 7,
    "CooldownHours": 24, "LockLeaseMinutes": 720, "DatasetPartitioning": "event_date", "TrainingImage": "auto",
    "TrainingHyperparameters": "{}",
    "TrainingInstanceType": "ml.m5.xlarge",
    "UseSpotTraining": "true", "MaxTrainingSeconds": 3600, "EndpointInstanceType": "ml.m5.large",
    "PollSeconds": 60, "BakeSeconds": 3600, "MaxBakeWaits": 24, "DeploymentMode": "ab",
    "RollbackAlarmNames": "", "ConversionPeriod": "day", "KmsKeyArn": "",
    "ScaleOutUploads": 20, "ScaleOutMaxConcurrency": 40, "RunTimeoutSeconds": 345600,
    "NotificationEmail": "",
    "RetrainPolicy": "auto", "RetrainEveryDays": 7, "ValuePerNdcgPoint": 0.5, "TrainingHourlyPrice": "",
    "TrainingStartupSeconds": 180, "AbExposureCost": 19.32, "RetrainChallenger": "auto",
}  # fmt: skip
PASS_ROLE_FUNCTIONS = {"StartTrainingFunction", "UpdateWeightsFunction", "PromoteFunction"}
# APIs that accept no resource-level scope, so "*" is the only valid Resource for them.
UNSCOPED_ACTIONS = {
    "cloudwatch:PutMetricData", "ecr:GetAuthorizationToken", "sagemaker:ListModelPackages",
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "sagemaker:ListEndpointConfigs", "sagemaker:ListModels", "sagemaker:ListTrainingJobs", "scheduler:ListSchedules",
}  # fmt: skip
METADATA_KEYS = {"BuildMethod", "BuildArchitecture", "checkov", "cfn-lint"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _branches(value: Any) -> list[Any]:
    """Both outcomes of an ``Fn::If`` (minus AWS::NoValue), or the value itself."""
    if isinstance(value, dict) and "Fn::If" in value:
        _, when_true, when_false = value["Fn::If"]
        return [branch for branch in (when_true, when_false) if branch != {"Ref": "AWS::NoValue"}]
    return [value]


def _role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    statements = []
    for policy in role["Properties"].get("Policies", []):
        for branch in _branches(policy):
            statements.extend(_as_list(branch["PolicyDocument"]["Statement"]))
    return statements


def _allowed(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if s["Effect"] == "Allow" and action in _as_list(s["Action"])]


def _statement_resources(statement: dict[str, Any]) -> list[Any]:
    return _as_list(statement["Resource"])


def _subs(value: Any) -> str:
    """The template string of an ``Fn::Sub`` (short or long form)."""
    sub = value["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


def _rule(resources: dict[str, Any], event: str) -> dict[str, Any]:
    return resources[f"RetrainStateMachine{event}"]["Properties"]


# ---------------------------------------------------------------- parameters and outputs


def test_retrain_parameters_default_to_the_decision_core_s_defaults(raw_template):
    """The pipeline decides with the parameters the backtest measured (one set of defaults)."""
    from driftloop.decision.cost import DEFAULT_AB_EXPOSURE_COST, DEFAULT_STARTUP_SECONDS, DEFAULT_VALUE_PER_POINT

    parameters = raw_template["Parameters"]
    assert parameters["ValuePerNdcgPoint"]["Default"] == DEFAULT_VALUE_PER_POINT
    assert parameters["TrainingStartupSeconds"]["Default"] == DEFAULT_STARTUP_SECONDS
    assert parameters["AbExposureCost"]["Default"] == DEFAULT_AB_EXPOSURE_COST


def test_parameters_have_the_contract_defaults_and_descriptions(raw_template):
    parameters = raw_template["Parameters"]
    assert set(parameters) == set(PARAMETER_DEFAULTS)
    for name, default in PARAMETER_DEFAULTS.items():
        assert parameters[name]["Default"] == default, name
        assert parameters[name]["Description"], name
    assert parameters["AlarmNames"]["Type"] == "CommaDelimitedList"
    assert parameters["ScheduleState"]["AllowedValues"] == ["DISABLED", "ENABLED"]
    assert parameters["DeploymentMode"]["AllowedValues"] == ["ab", "canary", "linear"]
    assert parameters["RollbackAlarmNames"]["Type"] == "CommaDelimitedList"
    assert parameters["ConversionPeriod"]["AllowedValues"] == ["hour", "day", "week"]
    assert parameters["UseSpotTraining"]["AllowedValues"] == ["true", "false"]
    assert parameters["RetrainPolicy"]["AllowedValues"] == ["auto", "drift", "schedule"]


@pytest.mark.parametrize(
    ("parameter", "value", "accepted"),
    [
        ("ModelName", "recommender", True),
        ("ModelName", "Recommender", False),
        ("ModelName", "a" * 32, False),
        ("TrafficStages", "10,50,100", True),
        ("TrafficStages", "10, 50", False),
        ("IncomingPrefix", "incoming/", True),
        ("IncomingPrefix", "incoming", False),
        ("TrainingImage", "auto", True),
        ("TrainingImage", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/sklearn:1.4-2", True),
        ("TrainingImage", "sklearn:latest", False),
        ("KmsKeyArn", "", True),
        ("KmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", True),
        ("KmsKeyArn", "alias/aws/s3", False),
        ("NotificationEmail", "", True),
        ("NotificationEmail", "ops@example.com", True),
        ("NotificationEmail", "ops", False),
        ("TrainingHourlyPrice", "", True),
        ("TrainingHourlyPrice", "0.23", True),
        ("TrainingHourlyPrice", "-1", False),
        ("TrainingHourlyPrice", "free", False),
    ],
)
def test_parameter_patterns(raw_template, parameter, value, accepted):
    pattern = raw_template["Parameters"][parameter]["AllowedPattern"]
    # CloudFormation requires the whole value to match.
    assert (re.fullmatch(pattern, value) is not None) is accepted


def test_outputs(raw_template):
    outputs = raw_template["Outputs"]
    assert set(outputs) == {
        "DataBucketName",
        "LedgerTableName",
        "NotificationTopicArn",
        "StateMachineArn",
        "DriftloopLayerArn",
    }
    assert outputs["StateMachineArn"]["Value"] == {"Ref": "RetrainStateMachine"}
    assert outputs["DataBucketName"]["Value"] == {"Ref": "DataBucket"}


def test_training_image_mapping_has_registry_accounts(raw_template):
    registries = raw_template["Mappings"]["SklearnImageRegistry"]
    assert {"us-east-1", "eu-west-1", "us-west-2"} <= set(registries)
    assert all(re.fullmatch(r"\d{12}", entry["Account"]) for entry in registries.values())
    assert raw_template["Mappings"]["SklearnImage"]["Repository"]["Name"] == "sagemaker-scikit-learn"


# ---------------------------------------------------------------- the Metadata/Properties trap


def test_no_properties_hide_inside_metadata_or_the_reverse(raw_template):
    """A Metadata block at the wrong indentation silently takes the properties after it."""
    for name, resource in raw_template["Resources"].items():
        attributes = {
            "Type",
            "Properties",
            "Metadata",
            "Condition",
            "DependsOn",
            "DeletionPolicy",
            "UpdateReplacePolicy",
        }
        assert set(resource) <= attributes, name
        assert set(resource.get("Metadata", {})) <= METADATA_KEYS, name
        assert not METADATA_KEYS & set(resource.get("Properties", {})) - {"BuildMethod"}, name
        assert "Metadata" not in resource.get("Properties", {}), name


def test_every_function_keeps_its_properties_and_makefile_build(raw_template):
    for name, folder in FUNCTIONS.items():
        resource = raw_template["Resources"][name]
        assert resource["Type"] == "AWS::Serverless::Function"
        assert resource["Metadata"]["BuildMethod"] == "makefile"
        assert resource["Properties"]["CodeUri"] == f"functions/{folder}/"
        assert resource["Properties"]["Policies"], name
        assert resource["Properties"]["Description"], name
    layer = raw_template["Resources"]["DriftloopLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"] == "layers/driftloop"


def test_build_targets_exist_for_every_makefile_build(raw_template):
    for name, folder in FUNCTIONS.items():
        makefile = (REPO / "functions" / folder / "Makefile").read_text()
        assert re.search(rf"^build-(%|{name}):", makefile, re.MULTILINE), name
    layer_makefile = (REPO / "layers/driftloop/Makefile").read_text()
    assert re.search(r"^build-DriftloopLayer:", layer_makefile, re.MULTILINE)


# ---------------------------------------------------------------- functions


def test_functions_share_runtime_layer_and_tracing(resources):
    for name in FUNCTIONS:
        properties = resources[name]["Properties"]
        assert properties["Handler"] == "app.lambda_handler"
        assert properties["Runtime"] == "python3.12"
        assert properties["Architectures"] == ["arm64"]
        [layer] = properties["Layers"]
        # The translator renames the layer version with a content hash suffix.
        assert layer["Ref"].startswith("DriftloopLayer")
        assert resources[layer["Ref"]]["Type"] == "AWS::Lambda::LayerVersion"
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["LoggingConfig"] == {"LogGroup": {"Ref": "FunctionsLogGroup"}}


def test_every_function_gets_exactly_the_contract_environment(resources):
    for name in FUNCTIONS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        own = {"COOLDOWN_SCHEDULE_ROLE_ARN"} if name == "AdmitFunction" else set()  # schedules the cool-down's end
        own |= DRIFT_ENVIRONMENT if name == "DriftFunction" else set()
        assert set(variables) == ENVIRONMENT | own, name
        assert variables["DATA_BUCKET"] == {"Ref": "DataBucket"}
        assert variables["SAGEMAKER_ROLE_ARN"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
        assert variables["DEPLOYMENT_MODE"] == {"Ref": "DeploymentMode"}
        assert variables["ROLLBACK_ALARM_NAMES"] == {"Fn::Join": [",", {"Ref": "RollbackAlarmNames"}]}
        assert variables["CONVERSION_PERIOD"] == {"Ref": "ConversionPeriod"}
        assert variables["DATA_CAPTURE_SAMPLING_PERCENT"] == {"Ref": "DataCaptureSamplingPercent"}
        assert variables["DATA_CAPTURE_KMS_KEY"] == {"Ref": "KmsKeyArn"}
        assert variables["POWERTOOLS_SERVICE_NAME"] == "driftloop"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "driftloop"
        assert variables["LOG_LEVEL"] == "INFO"


def test_training_image_resolves_auto_from_the_mapping(resources):
    image = resources["AdmitFunction"]["Properties"]["Environment"]["Variables"]["TRAINING_IMAGE"]
    condition, default_image, custom_image = image["Fn::If"]
    assert condition == "UseDefaultTrainingImage"
    assert custom_image == {"Ref": "TrainingImage"}
    template, values = default_image["Fn::Sub"]
    assert template == "${Account}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/${Repository}:${Tag}"
    assert values["Account"]["Fn::FindInMap"][0] == "SklearnImageRegistry"


def test_heavy_steps_get_time_and_memory(resources):
    for name in FUNCTIONS:
        properties = resources[name]["Properties"]
        if name in {"DriftFunction", "MergeFunction", "EvaluateFunction", "MergePartFunction",
                    "CombineMergeFunction"}:
            assert (properties["Timeout"], properties["MemorySize"]) == (900, 3008), name
        else:
            assert properties["Timeout"] == 120, name
            assert 256 <= properties["MemorySize"] <= 512, name


# ---------------------------------------------------------------- IAM


def _all_roles(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in resources.items() if resource["Type"] == "AWS::IAM::Role"}


def test_no_allow_statement_grants_wildcard_actions(resources):
    for name, role in _all_roles(resources).items():
        for statement in _role_statements(role):
            if statement["Effect"] == "Allow":
                for action in _as_list(statement["Action"]):
                    assert "*" not in action, (name, action)


def test_wildcard_resources_only_for_apis_without_resource_scope(resources):
    for name, role in _all_roles(resources).items():
        for statement in _role_statements(role):
            if statement["Effect"] == "Allow" and "*" in _statement_resources(statement):
                assert set(_as_list(statement["Action"])) <= UNSCOPED_ACTIONS, (name, statement)


def test_metric_publishing_is_limited_to_a_namespace(resources):
    for name, role in _all_roles(resources).items():
        for statement in _allowed(_role_statements(role), "cloudwatch:PutMetricData"):
            condition = statement["Condition"]
            namespaces = condition.get("StringEquals", condition.get("StringLike", {}))
            assert "cloudwatch:namespace" in namespaces, name
    drift = _role_statements(resources["DriftFunctionRole"])
    [publish] = _allowed(drift, "cloudwatch:PutMetricData")
    assert publish["Condition"]["StringEquals"]["cloudwatch:namespace"] == "driftloop"


def test_pass_role_only_where_models_or_jobs_are_created(resources):
    passing = {
        name.removesuffix("Role")
        for name, role in _all_roles(resources).items()
        if _allowed(_role_statements(role), "iam:PassRole")
    }
    assert passing == PASS_ROLE_FUNCTIONS | {"AdmitFunction"}
    [scheduler] = _allowed(_role_statements(resources["AdmitFunctionRole"]), "iam:PassRole")
    assert scheduler["Resource"] == {"Fn::GetAtt": ["CooldownScheduleRole", "Arn"]}
    assert scheduler["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    for function in PASS_ROLE_FUNCTIONS:
        [statement] = _allowed(_role_statements(resources[f"{function}Role"]), "iam:PassRole")
        assert statement["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_sagemaker_actions_are_scoped_to_the_model_and_endpoint_names(resources):
    for function in FUNCTIONS:
        for statement in _role_statements(resources[f"{function}Role"]):
            actions = [action for action in _as_list(statement["Action"]) if action.startswith("sagemaker:")]
            if not actions or actions == ["sagemaker:ListModelPackages"]:
                continue
            for resource in _statement_resources(statement):
                arn = _subs(resource)
                assert "${ModelName}" in arn or "${EndpointName}" in arn, (function, actions, arn)


def test_writes_go_to_the_step_prefixes_only(resources):
    expected = {
        "DriftFunction": {"reports/*", "baselines/*", "runs/*/inputs.json", "quarantine/*"},
        "EvaluateFunction": {"reports/*"},
        "AnalyseABFunction": {"reports/*", "cache/*"},
        "MergeFunction": {"datasets/*", "quarantine/*"},
        "MergePartFunction": {"datasets/*", "quarantine/*"},
        "CombineMergeFunction": {"datasets/*", "reports/*", "quarantine/*", "runs/*/merge-parts.json"},
        "StartTrainingFunction": {"code/*"},
        "UpdateWeightsFunction": {"baselines/*"},
        "PromoteFunction": {"baselines/*"},
        "RollbackFunction": {"baselines/*"},
        "FinalizeFunction": {"runs/*"},
    }
    for function in FUNCTIONS:
        prefixes = set()
        for statement in _allowed(_role_statements(resources[f"{function}Role"]), "s3:PutObject"):
            for resource in _statement_resources(statement):
                prefixes.add(_subs(resource).removeprefix("${DataBucket.Arn}/"))
        assert prefixes == expected.get(function, set()), function


# What each step's code calls on the ledger (adapters/ledger.py): GetItem for champion() and lock(),
# UpdateItem for renew_lock() (hold_lock), PutItem for claims, locks, pending triggers, champions and
# runs, DeleteItem for release_lock() and pending triggers, Query for take_pending().
LEDGER_ACTIONS = {
    "AdmitFunction": {"GetItem", "PutItem", "DeleteItem", "Query"},
    "DriftFunction": {"GetItem", "UpdateItem", "Query"},
    "MergeFunction": {"GetItem", "UpdateItem"},
    "MergePartFunction": {"GetItem", "UpdateItem"},
    "CombineMergeFunction": {"GetItem", "UpdateItem"},
    "StartTrainingFunction": {"GetItem", "UpdateItem"},
    "EvaluateFunction": {"GetItem", "UpdateItem"},
    "PollTrainingFunction": {"GetItem", "UpdateItem"},
    "UpdateWeightsFunction": {"GetItem", "UpdateItem"},
    "AnalyseABFunction": {"GetItem", "UpdateItem"},
    "PromoteFunction": {"GetItem", "UpdateItem", "PutItem"},
    "RollbackFunction": {"GetItem"},
    "FinalizeFunction": {"GetItem", "PutItem", "DeleteItem", "Query"},
}


def test_each_function_gets_only_the_ledger_actions_its_code_calls(resources):
    for function in FUNCTIONS:
        granted = set()
        for statement in _role_statements(resources[f"{function}Role"]):
            actions = [a for a in _as_list(statement["Action"]) if a.startswith("dynamodb:")]
            if actions:
                assert statement["Resource"] == {"Fn::GetAtt": ["LedgerTable", "Arn"]}, function
                granted |= {action.removeprefix("dynamodb:") for action in actions}
        assert granted == LEDGER_ACTIONS.get(function, set()), function


def test_reads_and_listings_are_scoped_to_prefixes(resources):
    for function in FUNCTIONS:
        for statement in _role_statements(resources[f"{function}Role"]):
            actions = set(_as_list(statement["Action"]))
            if actions & {"s3:GetObject", "s3:GetObjectVersion"}:
                for resource in _statement_resources(statement):
                    prefix = _subs(resource).removeprefix("${DataBucket.Arn}/")
                    assert prefix != _subs(resource) and prefix not in ("*", ""), (function, prefix)
            if "s3:ListBucket" in actions:
                prefixes = _as_list(statement["Condition"]["StringLike"]["s3:prefix"])
                scoped = [isinstance(p, dict) or (p.endswith("*") and p != "*") for p in prefixes]
                assert prefixes and all(scoped), function


def test_admit_reads_and_lists_only_uploads_and_manifests(resources):
    statements = _role_statements(resources["AdmitFunctionRole"])
    [read] = _allowed(statements, "s3:GetObject")
    assert [_subs(resource) for resource in read["Resource"]] == [
        "${DataBucket.Arn}/${IncomingPrefix}*", "${DataBucket.Arn}/datasets/*"]
    [listing] = _allowed(statements, "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [{"Fn::Sub": "${IncomingPrefix}*"}]}}


def test_finalize_reads_history_of_this_state_machine_only(raw_template, resources):
    [statement] = _allowed(_role_statements(resources["FinalizeFunctionRole"]), "states:GetExecutionHistory")
    machine_name = raw_template["Resources"]["RetrainStateMachine"]["Properties"]["Name"]["Fn::Sub"]
    assert _subs(statement["Resource"]).endswith(f":execution:{machine_name}:*")
    [publish] = _allowed(_role_statements(resources["FinalizeFunctionRole"]), "sns:Publish")
    assert publish["Resource"]["Fn::Sub"][1]["topicName"] == {"Fn::GetAtt": ["NotificationTopic", "TopicName"]}


def test_sagemaker_execution_role(resources):
    role = resources["SageMakerExecutionRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    statements = _role_statements(resources["SageMakerExecutionRole"])
    readable = {_subs(r).removeprefix("${DataBucket.Arn}/") for s in _allowed(statements, "s3:GetObject")
                for r in _statement_resources(s)}  # fmt: skip
    writable = {_subs(r).removeprefix("${DataBucket.Arn}/") for s in _allowed(statements, "s3:PutObject")
                for r in _statement_resources(s)}  # fmt: skip
    assert {"datasets/*", "code/*"} <= readable
    assert writable == {"models/*", "checkpoints/*", "datacapture/*"}  # datacapture: the endpoints' Data Capture
    assert _allowed(statements, "ecr:BatchGetImage")
    [logs] = _allowed(statements, "logs:PutLogEvents")
    assert ":log-group:/aws/sagemaker/*" in _subs(_statement_resources(logs)[0])


# ---------------------------------------------------------------- storage


def test_data_bucket(raw_template):
    bucket = raw_template["Resources"]["DataBucket"]["Properties"]
    assert bucket["BucketName"] == {"Fn::Sub": "${ModelName}-data-${AWS::AccountId}-${AWS::Region}"}
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "LogsBucket"}
    [encryption] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    condition, customer_key, default_key = encryption["ServerSideEncryptionByDefault"]["Fn::If"]
    assert condition == "UseCustomerKey"
    assert customer_key == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Ref": "KmsKeyArn"}}
    assert default_key == {"SSEAlgorithm": "AES256"}


@pytest.mark.parametrize("name", ["DataBucket", "LogsBucket", "LedgerTable"])
def test_stateful_resources_survive_stack_deletion(raw_template, name):
    resource = raw_template["Resources"][name]
    assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_lifecycle_never_expires_current_objects_but_the_cache(raw_template):
    rules = raw_template["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules
    for rule in rules:
        if rule.get("Prefix") == "cache/":  # what a step may lose and rebuild (layout.CACHE)
            continue
        assert not {"ExpirationInDays", "ExpirationDate", "Transitions"} & set(rule), rule["Id"]
    assert any("NoncurrentVersionExpiration" in rule for rule in rules)
    assert any("AbortIncompleteMultipartUpload" in rule for rule in rules)


@pytest.mark.parametrize(("policy", "bucket"), [("DataBucketPolicy", "DataBucket"), ("LogsBucketPolicy", "LogsBucket")])
def test_buckets_deny_plain_http(raw_template, policy, bucket):
    statements = raw_template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == "*"
    assert {"Fn::GetAtt": [bucket, "Arn"]} in deny["Resource"]


def test_ledger_table(raw_template):
    table = raw_template["Resources"]["LedgerTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {"pk": "S", "sk": "S"}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_topic_queue_and_logs_are_encrypted(raw_template):
    resources = raw_template["Resources"]
    topic_key = resources["NotificationTopic"]["Properties"]["KmsMasterKeyId"]["Fn::If"]
    assert topic_key[1] == {"Ref": "KmsKeyArn"} and topic_key[2] == {"Fn::GetAtt": ["NotificationKey", "Arn"]}
    queue = resources["EventsDeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"]["Fn::If"][2] is True
    for group in ("FunctionsLogGroup", "StateMachineLogGroup"):
        assert resources[group]["Properties"]["RetentionInDays"] > 0
    assert resources["NotificationEmailSubscription"]["Condition"] == "HasNotificationEmail"


# ---------------------------------------------------------------- state machine and triggers


def test_state_machine_substitutes_every_placeholder_of_the_definition(raw_template):
    machine = raw_template["Resources"]["RetrainStateMachine"]["Properties"]
    assert machine["Type"] == "STANDARD"
    assert machine["DefinitionUri"] == "statemachines/retrain.asl.json"
    definition = (REPO / machine["DefinitionUri"]).read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", definition))
    substitutions = machine["DefinitionSubstitutions"]
    assert placeholders <= set(substitutions)
    for name in FUNCTIONS:
        assert substitutions[f"{name}Arn"] == {"Fn::GetAtt": [name, "Arn"]}
    assert substitutions["PollSeconds"] == {"Ref": "PollSeconds"}
    assert substitutions["BakeSeconds"] == {"Ref": "BakeSeconds"}


def test_state_machine_logging_tracing_and_invoke_rights(resources):
    machine = resources["RetrainStateMachine"]["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    logging = machine["LoggingConfiguration"]
    assert (logging["Level"], logging["IncludeExecutionData"]) == ("ALL", False)
    assert machine["TracingConfiguration"] == {"Enabled": True}
    invoked = {
        statement["Resource"]["Fn::Sub"][1]["functionName"]["Ref"]
        for statement in _allowed(_role_statements(resources["RetrainStateMachineRole"]), "lambda:InvokeFunction")
    }
    assert invoked == set(FUNCTIONS)


def test_object_created_rules(resources):
    upload = _rule(resources, "NewDataUpload")["EventPattern"]
    assert upload["source"] == ["aws.s3"] and upload["detail-type"] == ["Object Created"]
    assert upload["detail"]["bucket"]["name"] == [{"Ref": "DataBucket"}]
    assert upload["detail"]["object"]["key"] == [{"prefix": {"Ref": "IncomingPrefix"}}]
    report = _rule(resources, "MonitorViolationReport")["EventPattern"]
    assert report["detail"]["bucket"]["name"] == [{"Ref": "DataBucket"}]
    assert report["detail"]["object"]["key"] == [
        {"wildcard": {"Fn::Sub": "${MonitorReportPrefix}*constraint_violations.json"}}
    ]


def test_alarm_schedule_and_manual_rules(resources):
    alarm = _rule(resources, "DriftAlarm")["EventPattern"]
    assert alarm == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": {"Ref": "AlarmNames"}, "state": {"value": ["ALARM"]}},
    }
    schedule = _rule(resources, "PeriodicCheck")
    assert schedule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert schedule["State"] == {"Ref": "ScheduleState"}
    manual = _rule(resources, "ManualRequest")["EventPattern"]
    assert manual == {"source": ["driftloop"], "detail-type": ["Retrain Requested"]}


@pytest.mark.parametrize(
    "event", ["NewDataUpload", "MonitorViolationReport", "DriftAlarm", "PeriodicCheck", "ManualRequest"]
)
def test_rules_deliver_the_whole_event_with_retries_and_dead_letters(resources, event):
    [target] = _rule(resources, event)["Targets"]
    assert target["Arn"] == {"Ref": "RetrainStateMachine"}
    assert not {"Input", "InputPath", "InputTransformer"} & set(target)
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}}


def test_dead_letter_queue_accepts_exactly_the_retrain_rules(resources):
    statements = resources["EventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [events] = [s for s in statements if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    sources = events["Condition"]["ArnEquals"]["aws:SourceArn"]
    rules = {name for name, r in resources.items() if r["Type"] == "AWS::Events::Rule"}
    assert {source["Fn::GetAtt"][0] for source in sources} == rules


def test_failed_runs_alarm_counts_failed_timed_out_and_aborted_executions(resources):
    alarm = resources["FailedRunsAlarm"]["Properties"]
    stats = {query["Id"]: query["MetricStat"] for query in alarm["Metrics"] if "MetricStat" in query}
    assert {stat["Metric"]["MetricName"] for stat in stats.values()} == {
        "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    for stat in stats.values():
        assert stat["Metric"]["Namespace"] == "AWS/States" and stat["Stat"] == "Sum"
        assert stat["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "RetrainStateMachine"}}]
    [returned] = [query for query in alarm["Metrics"] if query["ReturnData"]]
    assert set(re.findall(r"FILL\((\w+), 0\)", returned["Expression"])) == set(stats)
    assert returned["Expression"].count("+") == len(stats) - 1
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]


def test_dead_letters_raise_an_alarm_on_the_topic(resources):
    alarm = resources["DeadLettersAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    queue_name = {"Fn::GetAtt": ["EventsDeadLetterQueue", "QueueName"]}
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]


def test_alarms_can_publish_to_the_topic_key(raw_template, resources):
    """The AWS-managed aws/sns key cannot be used by CloudWatch: without KmsKeyArn the stack makes its own."""
    key = raw_template["Resources"]["NotificationKey"]
    assert key["Condition"] == "UseStackNotificationKey"
    assert raw_template["Conditions"]["UseStackNotificationKey"] == {"Fn::Equals": [{"Ref": "KmsKeyArn"}, ""]}
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    services = {s["Principal"].get("Service"): s for s in statements if "Service" in s["Principal"]}
    assert set(services) == {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
    for statement in services.values():
        assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert services["cloudwatch.amazonaws.com"]["Condition"]["StringEquals"] == {
        "aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    [publish] = _allowed(_role_statements(resources["FinalizeFunctionRole"]), "kms:GenerateDataKey")
    assert publish["Resource"] == {
        "Fn::If": ["UseCustomerKey", {"Ref": "KmsKeyArn"}, {"Fn::GetAtt": ["NotificationKey", "Arn"]}]}


def test_dashboard_shows_executions_errors_and_drift_metrics(resources):
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut",
                   "ExecutionsAborted"):
        assert metric in body
    for name in FUNCTIONS:
        assert f'"FunctionName", "${{{name}}}"' in body
    assert "driftloop" in body


def _evaluate(node: Any, parameters: dict[str, str]) -> Any:
    """Just enough of Ref/Select/Split/Join to follow how a value is cut out of a parameter."""
    if isinstance(node, dict) and len(node) == 1:
        [(function, argument)] = node.items()
        if function == "Ref":
            return parameters[argument]
        if function == "Fn::Split":
            return _evaluate(argument[1], parameters).split(argument[0])
        if function == "Fn::Select":
            return _evaluate(argument[1], parameters)[int(argument[0])]
        if function == "Fn::Join":
            return argument[0].join(_evaluate(part, parameters) for part in argument[1])
    if isinstance(node, list):
        return [_evaluate(item, parameters) for item in node]
    return node


def test_custom_image_pull_is_scoped_to_the_image_registry(resources):
    [pull] = _allowed(_role_statements(resources["SageMakerExecutionRole"]), "ecr:BatchGetImage")
    condition, _, custom = pull["Resource"]["Fn::If"]
    assert condition == "UseDefaultTrainingImage"
    template, values = custom["Fn::Sub"]
    assert template == "arn:${AWS::Partition}:ecr:${Region}:${Account}:repository/${Repository}"
    image = {"TrainingImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/sklearn:1.4-2"}
    assert _evaluate(values["Account"], image) == "123456789012"
    assert _evaluate(values["Region"], image) == "eu-west-1"
    for uri, repository in [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/sklearn:1.4-2", "team/sklearn"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/recsys", "recsys"),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/a/b/c@sha256:" + "0" * 64, "a/b/c"),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/sklearn:latest", "team/sklearn"),
    ]:
        assert _evaluate(values["Repository"], {"TrainingImage": uri}) == repository, uri
    # CloudFormation may evaluate the branch not taken: it must not fail for the default "auto".
    assert _evaluate(values["Region"], {"TrainingImage": "auto"}) == "-"
    assert _evaluate(values["Repository"], {"TrainingImage": "auto"}) == ""


def test_steps_that_renew_the_lease_may_update_the_ledger(resources):
    for function in ("DriftFunction", "MergeFunction", "MergePartFunction", "CombineMergeFunction",
                     "StartTrainingFunction", "EvaluateFunction", "PollTrainingFunction", "UpdateWeightsFunction",
                     "AnalyseABFunction", "PromoteFunction"):
        statements = _role_statements(resources[f"{function}Role"])
        assert _allowed(statements, "dynamodb:UpdateItem") and _allowed(statements, "dynamodb:GetItem"), function
