"""Read template.yaml as AWS would deploy it: SAM transform, then CloudFormation's intrinsics.

The local runtime keeps no wiring of its own: functions, handlers, environment variables, rule
patterns, the state machine and its substitutions all come from here.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from driftloop.errors import ConfigurationError
from driftloop.layout import LOCAL_ARTIFACTS_BUCKET, s3_uri

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
STACK_NAME = "driftloop"
_NO_VALUE = object()


class _CloudFormationLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML with CloudFormation's short-form tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...), parsed by libyaml
    where PyYAML was built with it (8x faster)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else ("Condition" if suffix == "Condition" else f"Fn::{suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CloudFormationLoader.add_multi_constructor("!", _construct_tag)


# Every runtime and command of a process (each test's, say) reads template.yaml and translates it. Both are
# kept pickled, by version of the file (path, size, modification time) and, for the translation, by parameter
# values; unpickling a copy costs 1/25 of parsing the file again, and 1/100 of translating it.
FileVersion = tuple[str, int, int]
_PARSED_FILES: dict[FileVersion, bytes] = {}
_TRANSLATED: dict[tuple[FileVersion, str], bytes] = {}


def _file_version(path: Path) -> FileVersion:
    version = os.stat(path)
    return os.path.realpath(path), version.st_size, version.st_mtime_ns


def load_yaml(path: Path, version: FileVersion | None = None) -> dict[str, Any]:
    """The template parsed, once per process and ``version`` of the file (by default, the one there now);
    each caller gets its own copy. ``ConfigurationError`` when it is not a YAML mapping in UTF-8."""
    key = version or _file_version(path)
    parsed = _PARSED_FILES.get(key)
    if parsed is None:
        with open(path, encoding="utf-8") as handle:
            try:
                template = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
            except (yaml.YAMLError, UnicodeDecodeError) as error:
                raise ConfigurationError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from error
        if not isinstance(template, dict):
            raise ConfigurationError(f"{path}: not a template (a YAML mapping of Resources, Parameters ...), "
                                     f"but a {type(template).__name__}")
        parsed = _PARSED_FILES[key] = pickle.dumps(template)
    return pickle.loads(parsed)


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int


@dataclass(frozen=True)
class RuleSpec:
    logical_id: str
    name: str
    pattern: dict[str, Any] | None
    schedule: str | None
    enabled: bool
    targets_state_machine: bool


@dataclass(frozen=True)
class LocalApp:
    """The deployed shape of the stack, with every name resolved."""

    template_dir: Path
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]
    rules: list[RuleSpec]
    state_machine_name: str
    state_machine_arn: str
    definition: dict[str, Any]
    buckets: dict[str, str]
    tables: dict[str, dict[str, Any]]
    topics: dict[str, str]
    outputs: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def environment(self) -> dict[str, str]:
        """The variables every function shares (the template's Globals), e.g. DATA_BUCKET, MODEL_NAME."""
        environments = [function.environment for function in self.functions.values()]
        if not environments:
            return {}
        return {name: value for name, value in environments[0].items()
                if all(other.get(name) == value for other in environments[1:])}

    def function_by_arn(self, arn_or_name: str) -> FunctionSpec:
        for function in self.functions.values():
            if arn_or_name in (function.arn, function.name):
                return function
        raise KeyError(arn_or_name)


class _PolicyLoader:
    """aws-sam-translator asks IAM for managed policy ARNs; offline there are none to look up."""

    def load(self) -> dict[str, str]:
        return {}


def _physical_name(logical_id: str, resource_type: str) -> str:
    base = f"{STACK_NAME}-{logical_id}"
    if resource_type == "AWS::S3::Bucket":
        return re.sub(r"[^a-z0-9-]", "-", base.lower())[:63]
    return base[:64]


class _Resolver:
    """CloudFormation intrinsic functions over one translated template."""

    def __init__(self, template: dict[str, Any], parameters: Mapping[str, Any]) -> None:
        self.template = template
        self.parameters = dict(parameters)
        self.resources: dict[str, dict[str, Any]] = template.get("Resources", {})
        self.names: dict[str, str] = {}
        self.conditions: dict[str, bool] = {}
        for name, expression in template.get("Conditions", {}).items():
            self.conditions[name] = bool(self.resolve(expression))

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }[name]

    def name_of(self, logical_id: str) -> str:
        if logical_id not in self.names:
            resource = self.resources[logical_id]
            properties = resource.get("Properties", {})
            explicit = None
            for key in ("BucketName", "TableName", "TopicName", "FunctionName", "StateMachineName", "QueueName",
                        "RoleName", "Name", "LogGroupName", "AlarmName", "LayerName"):
                if key in properties:
                    explicit = self.resolve(properties[key])
                    break
            self.names[logical_id] = explicit or _physical_name(logical_id, resource["Type"])
        return self.names[logical_id]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        resource = self.resources.get(name)
        if resource is None:
            raise ConfigurationError(f"template refers to unknown {name!r}")
        kind, physical = resource["Type"], self.name_of(name)
        arns = {
            "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{physical}",
            "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{physical}",
            "AWS::SQS::Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{physical}",
            "AWS::Lambda::LayerVersion": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{physical}:1",
        }
        return arns.get(kind, physical)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.resources[logical_id]
        kind, physical = resource["Type"], self.name_of(logical_id)
        if attribute == "Arn":
            return {
                "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{physical}",
                "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}",
                "AWS::S3::Bucket": f"arn:aws:s3:::{physical}",
                "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{physical}",
                "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{physical}",
                "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{physical}:*",
                "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{physical}",
                "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{physical}",
                "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{physical}",
                "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{physical}",
            }.get(kind, f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{physical}")
        if attribute in ("Name", "QueueName", "TopicName"):
            return physical
        if attribute == "QueueUrl":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{physical}"
        return f"{physical}.{attribute}"

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                if isinstance(argument, list):
                    return self.sub(argument[0], argument[1])
                return self.sub(argument, {})
            if key == "Fn::Join":
                delimiter, items = argument
                return delimiter.join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                delimiter, text = argument
                return str(self.resolve(text)).split(delimiter)
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.conditions[condition] else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(argument[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in argument)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in argument)
            if key == "Condition":
                return self.conditions[argument]
            if key == "Fn::FindInMap":
                table, first, second = (self.resolve(item) for item in argument)
                return self.template["Mappings"][table][first][second]
            if key == "Fn::GetAZs":
                return [f"{REGION}a", f"{REGION}b"]
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}


def _parameter_values(template: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, str]:
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise ConfigurationError(f"the local profile sets parameters the template lacks: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        value = overrides.get(name, spec.get("Default"))
        if value is None:
            raise ConfigurationError(f"template parameter {name} has no default and no local value")
        if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        elif "AllowedValues" in spec and str(value) not in [str(v) for v in spec["AllowedValues"]]:
            raise ConfigurationError(f"parameter {name}={value!r} is not one of {spec['AllowedValues']}")
        values[name] = value if isinstance(value, list) else str(value)
    return values


def load_app(template_path: Path, overrides: Mapping[str, Any] | None = None) -> LocalApp:
    """Translate template.yaml with aws-sam-translator and resolve it against local names."""
    from samtranslator.translator.transform import transform

    template_path = template_path.resolve()
    template_dir = template_path.parent
    version = _file_version(template_path)  # before the read: a later change gets its own translation
    sam = load_yaml(template_path, version)
    parameters = _parameter_values(sam, overrides or {})
    code_dirs: dict[str, Path] = {}
    definitions: dict[str, Path] = {}
    for logical_id, resource in sam.get("Resources", {}).items():
        properties = resource.setdefault("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            code_uri = properties.get("CodeUri") or sam.get("Globals", {}).get("Function", {}).get("CodeUri")
            code_dirs[logical_id] = template_dir / code_uri
            properties["CodeUri"] = s3_uri(LOCAL_ARTIFACTS_BUCKET, f"{logical_id}.zip")
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            properties["ContentUri"] = s3_uri(LOCAL_ARTIFACTS_BUCKET, f"{logical_id}.zip")
        elif resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in properties:
            definitions[logical_id] = template_dir / properties["DefinitionUri"]
            properties["DefinitionUri"] = s3_uri(LOCAL_ARTIFACTS_BUCKET, f"{logical_id}.asl.json")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": STACK_NAME,
              "AWS::Partition": "aws"}
    key = (version, json.dumps(parameters, sort_keys=True))
    translated = _TRANSLATED.get(key)
    if translated is None:
        translated = _TRANSLATED[key] = pickle.dumps(transform(sam, {**parameters, **pseudo}, _PolicyLoader()))
    cfn = pickle.loads(translated)
    resolver = _Resolver(cfn, parameters)
    resources = cfn["Resources"]

    def active(resource: dict[str, Any]) -> bool:
        return resource.get("Condition") is None or resolver.conditions[resource["Condition"]]

    functions: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function" or not active(resource):
            continue
        properties = resolver.resolve(resource["Properties"])
        name = resolver.name_of(logical_id)
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=resolver.get_att(logical_id, "Arn"),
            code_dir=code_dirs[logical_id],
            handler=properties["Handler"],
            environment={k: str(v) for k, v in properties.get("Environment", {}).get("Variables", {}).items()},
            timeout=int(properties.get("Timeout", 3)),
        )
    machines = [(lid, r) for lid, r in resources.items() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    if len(machines) != 1:
        raise ConfigurationError(f"expected one state machine in the template, found {len(machines)}")
    machine_id, machine = machines[0]
    properties = machine["Properties"]
    substitutions = {key: str(value) for key, value in
                     resolver.resolve(properties.get("DefinitionSubstitutions", {})).items()}
    source = definitions[next(iter(definitions))].read_text(encoding="utf-8") if definitions else json.dumps(
        properties["Definition"])
    text = re.sub(r"\$\{([A-Za-z0-9_]+)\}",
                  lambda match: substitutions.get(match.group(1), match.group(0)), source)
    unresolved = re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)
    if unresolved:
        raise ConfigurationError(f"state machine placeholders without a substitution: {sorted(set(unresolved))}")
    machine_arn = resolver.ref(machine_id)
    rules = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Events::Rule" or not active(resource):
            continue
        rule = resolver.resolve(resource["Properties"])
        targets = [target.get("Arn") for target in rule.get("Targets", [])]
        rules.append(RuleSpec(
            logical_id=logical_id,
            name=resolver.name_of(logical_id),
            pattern=rule.get("EventPattern"),
            schedule=rule.get("ScheduleExpression"),
            enabled=rule.get("State", "ENABLED") == "ENABLED",
            targets_state_machine=machine_arn in targets,
        ))
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Scheduler::Schedule" and active(resource):
            schedule = resolver.resolve(resource["Properties"])
            rules.append(RuleSpec(logical_id, resolver.name_of(logical_id), None,
                                  schedule.get("ScheduleExpression"), schedule.get("State", "ENABLED") == "ENABLED",
                                  schedule.get("Target", {}).get("Arn") == machine_arn))
    by_type = {kind: {lid: resolver.name_of(lid) for lid, r in resources.items() if r["Type"] == kind and active(r)}
               for kind in ("AWS::S3::Bucket", "AWS::SNS::Topic")}
    tables = {lid: resolver.resolve(r["Properties"]) | {"TableName": resolver.name_of(lid)}
              for lid, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table" and active(r)}
    return LocalApp(
        template_dir=template_dir,
        parameters={k: ",".join(v) if isinstance(v, list) else v for k, v in parameters.items()},
        functions=functions,
        rules=rules,
        state_machine_name=resolver.name_of(machine_id),
        state_machine_arn=machine_arn,
        definition=json.loads(text),
        buckets=by_type["AWS::S3::Bucket"],
        tables=tables,
        topics=by_type["AWS::SNS::Topic"],
        outputs=resolver.resolve(cfn.get("Outputs", {})),
        alarms={lid: resolver.resolve(r["Properties"]) for lid, r in resources.items()
                if r["Type"] == "AWS::CloudWatch::Alarm" and active(r)},
    )
