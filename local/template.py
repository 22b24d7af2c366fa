"""Read template.yaml, the one source of truth for tables and routes, outside CloudFormation.

The local stack and the tests create their DynamoDB tables from the template's definitions, so
they cannot drift from what ``sam deploy`` creates.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short-form tags (``!Ref``, ``!GetAtt``, …)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The parsed template (intrinsics kept as ``{"Ref": …}`` / ``{"Fn::…": …}`` mappings)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def resources_of_type(kind: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """Logical id -> properties of every resource of CloudFormation type ``kind``."""
    template = template or load_template()
    return {
        name: resource.get("Properties", {})
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def create_tables(client: Any, names: dict[str, str]) -> None:
    """Create the template's DynamoDB tables with ``client`` (moto or real).

    Args:
        client: a boto3 DynamoDB client.
        names: logical id -> physical table name, for every table to create.
    """
    for logical_id, props in resources_of_type("AWS::DynamoDB::Table").items():
        if logical_id not in names:
            continue
        name = names[logical_id]
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        client.create_table(**request)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr:
            client.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification=pitr)


def _resolve(value: Any, template: dict[str, Any], arns: dict[str, str]) -> Any:
    """Resolve the few intrinsics queue properties use: parameter Refs and GetAtt X.Arn."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref":
            parameter = template.get("Parameters", {}).get(arg)
            if parameter is None or "Default" not in parameter:
                raise ValueError(f"cannot resolve Ref {arg!r} locally")
            return parameter["Default"]
        if name == "Fn::GetAtt" and arg[1] == "Arn":
            return arns[arg[0]]
    if isinstance(value, dict):
        return {k: _resolve(v, template, arns) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, template, arns) for v in value]
    return value


def create_queues(client: Any, names: dict[str, str], **overrides: str) -> dict[str, str]:
    """Create the template's SQS queues (dead-letter queues first); returns logical id -> URL.

    Args:
        client: a boto3 SQS client.
        names: logical id -> physical queue name, for every queue to create.
        overrides: queue attributes to force everywhere (e.g. a short ``VisibilityTimeout``
            so failed records come back quickly on a laptop).
    """
    template = load_template()
    queues = resources_of_type("AWS::SQS::Queue", template)
    ordered = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q])
    arns: dict[str, str] = {}
    urls: dict[str, str] = {}
    for logical_id in ordered:
        if logical_id not in names:
            continue
        props = _resolve(queues[logical_id], template, arns)
        attributes = {
            key: json.dumps(value) if isinstance(value, dict) else str(value)
            for key, value in props.items()
            if key
            in ("DelaySeconds", "MessageRetentionPeriod", "VisibilityTimeout", "RedrivePolicy")
        }
        attributes.update(overrides)
        url = client.create_queue(QueueName=names[logical_id], Attributes=attributes)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        arns[logical_id] = arn["Attributes"]["QueueArn"]
        urls[logical_id] = url
    return urls
