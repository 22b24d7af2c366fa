"""Structural promises of the infrastructure: template.yaml, infra/*.yaml and the media-node image.

cfn-lint (run by ``make test``) checks that the templates are valid CloudFormation; these tests
check that they say what the code and the README rely on: routes and handlers, IAM scope, queue
hygiene, secrets kept out of the templates, table keys, and a media-node image that can start.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from local.template import load_template, resources_of_type
from mapokezi import keys
from media_node import node_settings

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
TEMPLATE = load_template(ROOT / "template.yaml")
NETWORK = load_template(ROOT / "infra" / "network.yaml")
MEDIA_NODE = load_template(ROOT / "infra" / "media-node.yaml")
FUNCTION_RESOURCES = resources_of_type("AWS::Serverless::Function", TEMPLATE)

# The routes and handlers the README documents as stable.
ROUTES = {
    ("POST", "/voice"): ("VoiceFunction", "voice.app.lambda_handler"),
    ("POST", "/stream-status"): ("StreamStatusFunction", "stream_status.app.lambda_handler"),
    ("POST", "/events"): ("EventsFunction", "events.app.lambda_handler"),
    ("GET", "/calls"): ("CallsApiFunction", "calls_api.app.lambda_handler"),
    ("GET", "/calls/{call_id}"): ("CallsApiFunction", "calls_api.app.lambda_handler"),
}
SECRET_ENV = {
    "OPENAI_API_KEY_ARN": "OpenAiApiKeySecret",
    "GEMINI_API_KEY_ARN": "GeminiApiKeySecret",
    "SAUTIKIT_API_KEY_ARN": "SautikitApiKeySecret",
    "SAUTIKIT_WEBHOOK_SECRET_ARN": "SautikitWebhookSecret",
    "STREAM_TOKEN_SECRET_ARN": "StreamTokenSecret",
}
FUNCTION_ENV = {
    "CALLS_TABLE",
    "MEDIA_STREAM_URL",
    "PUBLIC_BASE_URL",
    "SAUTIKIT_API_URL",
    "CDR_QUEUE_URL",
    "CDR_DELAY_SECONDS",
    "HEARTBEAT_MAX_AGE_SECONDS",
    "RETENTION_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
# boto3 Table methods -> the DynamoDB action each one needs.
TABLE_METHOD_ACTIONS = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_writer": "dynamodb:BatchWriteItem",
}


def _http_routes() -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    routes = {}
    for name, props in FUNCTION_RESOURCES.items():
        for event in (props.get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                ev = event["Properties"]
                routes[(ev["Method"].upper(), ev["Path"])] = (name, ev)
    return routes


def _environment(function: str) -> dict[str, Any]:
    shared = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    own = (FUNCTION_RESOURCES[function].get("Environment") or {}).get("Variables", {})
    return {**shared, **own}


def _refs(value: Any) -> set[str]:
    """Every logical id or parameter named by a Ref / GetAtt / Sub inside ``value``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref":
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0])
            elif key == "Fn::Sub" and isinstance(inner, str):
                found.update(m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", inner))
            else:
                found |= _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _refs(inner)
    return found


def _table_statements(policies: list[Any]) -> list[dict[str, Any]]:
    statements = []
    for policy in policies:
        if isinstance(policy, dict) and "Statement" in policy:
            statements += [s for s in policy["Statement"] if "CallsTable" in _refs(s["Resource"])]
    return statements


def _module_file(module: str) -> Path | None:
    base = ROOT if module.split(".")[0] == "media_node" else FUNCTIONS
    path = base.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _first_party_closure(start: Path) -> list[Path]:
    """``start`` and every first-party module it imports, transitively."""
    first_party = {p.name for p in FUNCTIONS.iterdir() if p.is_dir()} | {"media_node"}
    seen: dict[Path, None] = {}
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] in first_party and (found := _module_file(name)):
                    todo.append(found)
    return list(seen)


def _store_actions() -> dict[str, set[str]]:
    """Public function of mapokezi.store -> DynamoDB actions it performs (through helpers too)."""
    tree = ast.parse((FUNCTIONS / "mapokezi" / "store.py").read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for name, node in functions.items():
        direct[name], calls[name] = set(), set()
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
                if inner.func.attr in TABLE_METHOD_ACTIONS:
                    direct[name].add(TABLE_METHOD_ACTIONS[inner.func.attr])
            elif (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Name)
                and inner.func.id in functions
            ):
                calls[name].add(inner.func.id)

    def resolve(name: str, stack: frozenset[str] = frozenset()) -> set[str]:
        actions = set(direct[name])
        for callee in calls[name] - stack:
            actions |= resolve(callee, stack | {name})
        return actions

    return {name: resolve(name) for name in functions if not name.startswith("_")}


def _actions_needed(entry: Path) -> set[str]:
    store_actions = _store_actions()
    needed: set[str] = set()
    for path in _first_party_closure(entry):
        # Called or passed on (e.g. to asyncio.to_thread), as store.<name> or imported by name.
        used = set(re.findall(r"\bstore\.([a-z_]+)\b", path.read_text()))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "mapokezi.store":
                used |= {alias.name for alias in node.names}
        for name in used:
            needed |= store_actions.get(name, set())
    return needed


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --------------------------------------------------------------------------- routes and handlers


def test_every_design_route_exists_with_its_handler() -> None:
    routes = _http_routes()
    assert set(routes) == set(ROUTES)
    for route, (function, handler) in ROUTES.items():
        name, event = routes[route]
        assert name == function, route
        assert FUNCTION_RESOURCES[name]["Handler"] == handler
        assert event["ApiId"] == {"Ref": "HttpApi"}


@pytest.mark.parametrize("function", sorted(FUNCTION_RESOURCES))
def test_handler_module_exists_and_defines_lambda_handler(function: str) -> None:
    module, _, attribute = FUNCTION_RESOURCES[function]["Handler"].rpartition(".")
    path = FUNCTIONS.joinpath(*module.split(".")).with_suffix(".py")
    assert path.exists(), f"{function}: {path.relative_to(ROOT)} is missing"
    assert (path.parent / "__init__.py").exists()
    tree = ast.parse(path.read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    defined |= {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    assert attribute in defined


def test_calls_routes_need_iam_and_webhooks_are_public() -> None:
    assert TEMPLATE["Resources"]["HttpApi"]["Properties"]["Auth"]["EnableIamAuthorizer"] is True
    for route, (_, event) in _http_routes().items():
        authorizer = (event.get("Auth") or {}).get("Authorizer")
        if route[1].startswith("/calls"):
            assert authorizer == "AWS_IAM", route
        else:  # Sautikit cannot sign AWS requests; these routes check X-Sautikit-Signature
            assert authorizer is None, route


def test_every_function_gets_the_contract_environment_and_its_own_log_group() -> None:
    log_groups = resources_of_type("AWS::Logs::LogGroup", TEMPLATE)
    logged = {
        _refs(props["LogGroupName"]).pop(): props
        for props in log_groups.values()
        if "LogGroupName" in props
    }
    for function in FUNCTION_RESOURCES:
        env = _environment(function)
        assert env.keys() >= FUNCTION_ENV, function
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Mapokezi"
        assert env["CALLS_TABLE"] == {"Ref": "CallsTable"}
        assert env["CDR_QUEUE_URL"] == {"Ref": "CdrQueue"}
        assert logged[function]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
        assert logged[function]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_powertools_comes_from_its_pinned_public_ssm_parameter() -> None:
    function = TEMPLATE["Globals"]["Function"]
    arch = function["Architectures"][0]
    assert function["Runtime"] == "python3.12"
    assert function["CodeUri"] == "functions/"
    assert function["Tracing"] == "Active"
    version = importlib.metadata.version("aws-lambda-powertools")
    ssm = f"{{{{resolve:ssm:/aws/service/powertools/python/{arch}/python3.12/{version}}}}}"
    assert function["Layers"] == [ssm]
    assert all("Layers" not in props for props in FUNCTION_RESOURCES.values())


# --------------------------------------------------------------------------- queue


def test_cdr_function_consumes_the_queue_with_partial_batch_failures() -> None:
    events = FUNCTION_RESOURCES["CdrFunction"]["Events"]
    (event,) = events.values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["CdrQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= event["Properties"]["BatchSize"] <= 10


def test_cdr_queue_has_a_dead_letter_queue_an_alarm_and_a_long_enough_visibility() -> None:
    queues = resources_of_type("AWS::SQS::Queue", TEMPLATE)
    queue, dlq = queues["CdrQueue"], queues["CdrDeadLetterQueue"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["CdrDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == 5
    timeout = FUNCTION_RESOURCES["CdrFunction"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["DelaySeconds"] == {"Ref": "CdrDelaySeconds"}
    assert TEMPLATE["Parameters"]["CdrDelaySeconds"]["MaxValue"] == 900
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] and dlq["SqsManagedSseEnabled"]
    alarms = resources_of_type("AWS::CloudWatch::Alarm", TEMPLATE).values()
    assert any("CdrDeadLetterQueue" in _refs(alarm["Dimensions"]) for alarm in alarms)


# --------------------------------------------------------------------------- secrets and IAM


def test_no_secret_values_in_any_template() -> None:
    secretish = re.compile(r"secret|key|token|password", re.IGNORECASE)
    for template in (TEMPLATE, NETWORK, MEDIA_NODE):
        for name, parameter in template.get("Parameters", {}).items():
            if secretish.search(name) and not name.endswith(("Arn", "Id")):
                assert "Default" not in parameter, name
    secrets = resources_of_type("AWS::SecretsManager::Secret", TEMPLATE)
    assert set(secrets) == set(SECRET_ENV.values())
    assert all("SecretString" not in props for props in secrets.values())
    assert "GenerateSecretString" in secrets["StreamTokenSecret"]
    for path in (ROOT / "template.yaml", *(ROOT / "infra").glob("*.yaml")):
        text = path.read_text()
        assert not re.search(r"sk-[A-Za-z0-9_-]{16,}|whsec_[A-Za-z0-9]{8,}", text), path
        assert "resolve:secretsmanager" not in text, path  # would land in plain configuration


@pytest.mark.parametrize("function", sorted(FUNCTION_RESOURCES))
def test_functions_read_exactly_the_secrets_they_are_given(function: str) -> None:
    env = _environment(function)
    given = {SECRET_ENV[name] for name in env if name in SECRET_ENV}
    for name in env.keys() & SECRET_ENV.keys():
        assert _refs(env[name]) == {SECRET_ENV[name]}, name
    policies = FUNCTION_RESOURCES[function].get("Policies", [])
    readable = {
        policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Ref"]
        for policy in policies
        if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy
    }
    assert readable == given


@pytest.mark.parametrize("function", sorted(FUNCTION_RESOURCES))
def test_function_table_permissions_cover_what_its_code_does(function: str) -> None:
    module = FUNCTION_RESOURCES[function]["Handler"].rsplit(".", 1)[0]
    entry = FUNCTIONS.joinpath(*module.split(".")).with_suffix(".py")
    if not entry.exists():
        pytest.fail(f"{entry.relative_to(ROOT)} is missing")
    statements = _table_statements(FUNCTION_RESOURCES[function]["Policies"])
    granted = {action for s in statements for action in _as_list(s["Action"])}
    assert _actions_needed(entry) <= granted
    assert all(not a.endswith("*") for a in granted)


def test_only_the_calls_api_reads_the_indexes() -> None:
    for function, props in FUNCTION_RESOURCES.items():
        resources = [
            r for s in _table_statements(props["Policies"]) for r in _as_list(s["Resource"])
        ]
        on_index = any("/index/" in str(resource) for resource in resources)
        assert on_index == (function == "CallsApiFunction"), function


def test_only_the_call_ending_webhooks_and_the_fetcher_queue_call_record_fetches() -> None:
    cdr = {"QueueName": {"Fn::GetAtt": ["CdrQueue", "QueueName"]}}
    rescues = {"QueueName": {"Fn::GetAtt": ["RescueQueue", "QueueName"]}}
    expected = {
        "VoiceFunction": [cdr],
        "EventsFunction": [cdr, rescues],  # a stopped stream may need a rescue
        "StreamStatusFunction": [rescues],
        "CdrFunction": [cdr],
        "RescueFunction": [rescues],  # its own follow-ups
    }
    for function, props in FUNCTION_RESOURCES.items():
        sends = [
            p["SQSSendMessagePolicy"] for p in props["Policies"] if "SQSSendMessagePolicy" in p
        ]
        assert sends == expected.get(function, []), function


def test_rescues_consume_their_queue_and_may_publish_missed_callers() -> None:
    (event,) = FUNCTION_RESOURCES["RescueFunction"]["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["RescueQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources_of_type("AWS::SQS::Queue", TEMPLATE)["RescueQueue"]
    assert queue["VisibilityTimeout"] >= 6 * FUNCTION_RESOURCES["RescueFunction"]["Timeout"]
    assert "RescueDeadLetterQueue" in _refs(queue["RedrivePolicy"])
    policies = FUNCTION_RESOURCES["RescueFunction"]["Policies"]
    publishes = [p["SNSPublishMessagePolicy"] for p in policies if "SNSPublishMessagePolicy" in p]
    assert publishes == [{"TopicName": {"Fn::GetAtt": ["MessagesTopic", "TopicName"]}}]
    for function in FUNCTION_RESOURCES:
        env = _environment(function)
        assert env["RESCUE_QUEUE_URL"] == {"Ref": "RescueQueue"}
        assert env["MESSAGES_TOPIC_ARN"] == {"Ref": "MessagesTopic"}


def test_messages_topic_has_optional_email_and_sms_subscriptions() -> None:
    subscriptions = resources_of_type("AWS::SNS::Subscription", TEMPLATE)
    by_protocol = {props["Protocol"]: name for name, props in subscriptions.items()}
    assert set(by_protocol) == {"email", "sms"}
    for protocol, parameter in (("email", "MessageEmail"), ("sms", "MessageSms")):
        resource = TEMPLATE["Resources"][by_protocol[protocol]]
        assert resource["Properties"]["Endpoint"] == {"Ref": parameter}
        assert TEMPLATE["Parameters"][parameter]["Default"] == ""
        assert resource["Condition"] in TEMPLATE["Conditions"]
    statements = MEDIA_NODE["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    by_sid = {s["Sid"]: s for s in statements["Statement"]}
    assert by_sid["Messages"] == {
        "Sid": "Messages",
        "Effect": "Allow",
        "Action": "sns:Publish",
        "Resource": {"Ref": "MessagesTopicArn"},
    }


# --------------------------------------------------------------------------- table


def test_table_keys_match_the_keys_module() -> None:
    table = resources_of_type("AWS::DynamoDB::Table", TEMPLATE)["CallsTable"]
    key_schema = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
    assert key_schema == {"HASH": keys.PK, "RANGE": keys.SK}
    indexes = {
        gsi["IndexName"]: tuple(k["AttributeName"] for k in gsi["KeySchema"])
        for gsi in table["GlobalSecondaryIndexes"]
    }
    assert indexes == keys.INDEXES
    declared = {a["AttributeName"] for a in table["AttributeDefinitions"]}
    assert declared == {keys.PK, keys.SK} | {a for pair in keys.INDEXES.values() for a in pair}
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": keys.TTL_ATTRIBUTE,
        "Enabled": True,
    }


# --------------------------------------------------------------------------- nested stacks


@pytest.mark.parametrize(
    ("logical_id", "nested"), [("NetworkStack", NETWORK), ("MediaNodeStack", MEDIA_NODE)]
)
def test_nested_stacks_receive_every_required_parameter(logical_id: str, nested: dict) -> None:
    resource = TEMPLATE["Resources"][logical_id]
    assert resource["Type"] == "AWS::Serverless::Application"
    assert resource["Condition"] == "DeployMediaNode"
    assert (ROOT / resource["Properties"]["Location"]).exists()
    passed = set(resource["Properties"].get("Parameters", {}))
    declared = nested.get("Parameters", {})
    assert passed <= set(declared)
    assert {name for name, p in declared.items() if "Default" not in p} <= passed


def test_outputs_read_from_nested_stacks_exist() -> None:
    nested = {"NetworkStack": NETWORK, "MediaNodeStack": MEDIA_NODE}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "Fn::GetAtt" in value and value["Fn::GetAtt"][0] in nested:
                stack, attribute = value["Fn::GetAtt"]
                assert attribute.startswith("Outputs.")
                assert attribute.removeprefix("Outputs.") in nested[stack]["Outputs"], attribute
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(TEMPLATE)
    assert set(MEDIA_NODE["Outputs"]) >= {
        "MediaStreamUrl",
        "LoadBalancerDnsName",
        "ClusterName",
        "ServiceName",
    }
    assert MEDIA_NODE["Outputs"]["MediaStreamUrl"]["Value"] == {
        "Fn::Sub": "wss://${DomainName}/audio"
    }


def test_root_outputs() -> None:
    outputs = TEMPLATE["Outputs"]
    for name, path in {
        "VoiceWebhookUrl": "/voice",
        "StreamStatusUrl": "/stream-status",
        "EventsUrl": "/events",
        "CallsApiUrl": "/calls",
    }.items():
        assert outputs[name]["Value"]["Fn::Sub"].endswith(f".${{AWS::URLSuffix}}{path}")
    assert {"CallsTableName", "CdrQueueUrl", "MediaStreamUrl"} <= set(outputs)


def test_network_has_two_public_subnets_in_two_zones() -> None:
    subnets = resources_of_type("AWS::EC2::Subnet", NETWORK)
    zones = [props["AvailabilityZone"]["Fn::Select"][0] for props in subnets.values()]
    assert sorted(zones) == [0, 1]
    routes = resources_of_type("AWS::EC2::Route", NETWORK).values()
    assert [r["GatewayId"] for r in routes] == [{"Ref": "InternetGateway"}]
    assert set(NETWORK["Outputs"]) == {"VpcId", "SubnetIds"}


# --------------------------------------------------------------------------- media node


def _container() -> dict[str, Any]:
    (task,) = resources_of_type("AWS::ECS::TaskDefinition", MEDIA_NODE).values()
    (container,) = task["ContainerDefinitions"]
    return container


def test_target_group_routes_only_to_ready_nodes_and_drains_for_an_hour() -> None:
    (group,) = resources_of_type("AWS::ElasticLoadBalancingV2::TargetGroup", MEDIA_NODE).values()
    assert group["HealthCheckPath"] == "/ready"
    assert (group["TargetType"], group["ProtocolVersion"], group["Port"]) == ("ip", "HTTP1", 8080)
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    assert int(attributes["deregistration_delay.timeout_seconds"]) >= 3600
    (balancer,) = resources_of_type(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", MEDIA_NODE
    ).values()
    balancer_attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    assert int(balancer_attributes["idle_timeout.timeout_seconds"]) == 120


def test_listeners_terminate_tls_and_redirect_plain_http() -> None:
    listeners = resources_of_type("AWS::ElasticLoadBalancingV2::Listener", MEDIA_NODE).values()
    by_port = {listener["Port"]: listener for listener in listeners}
    assert by_port[443]["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert by_port[443]["DefaultActions"][0]["Type"] == "forward"
    redirect = by_port[80]["DefaultActions"][0]
    assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"


def test_tasks_are_reachable_only_from_the_load_balancer() -> None:
    groups = resources_of_type("AWS::EC2::SecurityGroup", MEDIA_NODE)
    assert "SecurityGroupIngress" not in groups["TaskSecurityGroup"]
    ingress = resources_of_type("AWS::EC2::SecurityGroupIngress", MEDIA_NODE).values()
    to_tasks = [r for r in ingress if "TaskSecurityGroup" in _refs(r["GroupId"])]
    assert len(to_tasks) == 1
    assert _refs(to_tasks[0]["SourceSecurityGroupId"]) == {"LoadBalancerSecurityGroup"}
    assert (to_tasks[0]["FromPort"], to_tasks[0]["ToPort"]) == (8080, 8080)


def test_container_drains_logs_without_blocking_and_gets_its_secrets() -> None:
    container = _container()
    assert container["StopTimeout"] == 120
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    options = container["LogConfiguration"]["Options"]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert options["mode"] == "non-blocking" and options["max-buffer-size"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["MEDIA_NODE_PORT"] == "8080" and env["MEDIA_NODE_HOST"] == "0.0.0.0"
    assert int(env["DRAIN_SECONDS"]) < container["StopTimeout"]
    assert env["MAX_CALLS"] == {"Ref": "MaxCallsPerTask"}
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
    assert secrets == {"STREAM_TOKEN_SECRET": {"Ref": "StreamTokenSecretArn"}}
    execution = MEDIA_NODE["Resources"]["ExecutionRole"]["Properties"]["Policies"]
    statement = execution[0]["PolicyDocument"]["Statement"][0]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == list(secrets.values())


def test_service_deploys_safely() -> None:
    (service,) = resources_of_type("AWS::ECS::Service", MEDIA_NODE).values()
    deployment = service["DeploymentConfiguration"]
    assert (deployment["MinimumHealthyPercent"], deployment["MaximumPercent"]) == (100, 200)
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert service["HealthCheckGracePeriodSeconds"] > 0
    (cluster,) = resources_of_type("AWS::ECS::Cluster", MEDIA_NODE).values()
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


def test_autoscaling_tracks_the_metric_the_node_publishes() -> None:
    from media_node import heartbeat

    (policy,) = resources_of_type("AWS::ApplicationAutoScaling::ScalingPolicy", MEDIA_NODE).values()
    metric = policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    assert metric["Namespace"] == heartbeat.METRIC_NAMESPACE == "Mapokezi"
    assert metric["MetricName"] == "ActiveCalls"
    assert metric["Statistic"] == "Average"
    (dimension,) = metric["Dimensions"]
    assert dimension == {
        "Name": heartbeat.METRIC_DIMENSION,
        "Value": {"Fn::GetAtt": ["Service", "Name"]},
    }
    # The service's name and the node's SERVICE_NAME are the same expression.
    (service,) = resources_of_type("AWS::ECS::Service", MEDIA_NODE).values()
    env = {e["Name"]: e["Value"] for e in _container()["Environment"]}
    assert env["SERVICE_NAME"] == service["ServiceName"]


def test_task_role_allows_what_the_node_does_and_protects_only_its_own_tasks() -> None:
    statements = MEDIA_NODE["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    by_sid = {s["Sid"]: s for s in statements}
    granted = set(by_sid["CallsTable"]["Action"])
    for path in sorted((ROOT / "media_node").rglob("*.py")):
        assert _actions_needed(path) <= granted, path
    # The node reads the model keys itself (an unset secret must not stop the task).
    keys = by_sid["ModelApiKeys"]
    assert keys["Action"] == "secretsmanager:GetSecretValue"
    assert keys["Resource"] == [{"Ref": "OpenAiApiKeySecretArn"}, {"Ref": "GeminiApiKeySecretArn"}]
    env = {e["Name"]: e["Value"] for e in _container()["Environment"]}
    assert env["OPENAI_API_KEY_ARN"] == {"Ref": "OpenAiApiKeySecretArn"}
    assert env["GEMINI_API_KEY_ARN"] == {"Ref": "GeminiApiKeySecretArn"}
    assert env["GEMINI_LIVE_URL"] == node_settings.DEFAULT_GEMINI_LIVE_URL
    assert env["GEMINI_MODEL"] == {"Ref": "GeminiModel"}
    protection = by_sid["TaskProtection"]
    assert set(protection["Action"]) == {"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}
    assert "Cluster" in _refs(protection["Resource"])


# --------------------------------------------------------------------------- image


def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "media_node" / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_copies_files_that_exist_and_the_build_context_keeps() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copies = [args.split() for op, args in _dockerfile() if op == "COPY"]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert any(source == k or source.startswith(k + "/") for k in kept), source


def test_dockerfile_runs_the_node_as_a_non_root_user() -> None:
    instructions = _dockerfile()
    ops = dict(instructions)
    assert ops["FROM"] == "python:3.12-slim-bookworm"
    assert ops["USER"] not in ("root", "0")
    assert ops["EXPOSE"] == "8080"
    assert ops["CMD"] == '["python", "-m", "media_node"]'
    assert (ROOT / "media_node" / "__main__.py").exists()
    assert "PYTHONUNBUFFERED=1" in ops["ENV"]
    assert "/healthz" in ops["HEALTHCHECK"] and "urllib" in ops["HEALTHCHECK"]
    install = ops["RUN"]
    assert "--only-binary=:all:" in install and "apt-get" not in install
    assert [op for op, _ in instructions].index("USER") > [op for op, _ in instructions].index(
        "RUN"
    )


def _requirements(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_image_requirements_are_pinned_as_in_the_lock_and_closed() -> None:
    image = _requirements(ROOT / "media_node" / "requirements.txt")
    lock = _requirements(ROOT / "requirements.lock")
    assert {name: lock.get(name) for name in image} == image
    wanted = {"websockets", "soxr", "numpy", "boto3"}
    assert wanted <= set(image)
    assert "aws-lambda-powertools" not in image  # Lambda-only: the node never imports it
    # Every runtime dependency (no extras) of every pinned package is pinned too, on 3.12.
    environment = {**default_environment(), "python_version": "3.12", "extra": ""}
    for name in image:
        for spec in importlib.metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                assert canonicalize_name(requirement.name) in image, (name, spec)


def test_image_holds_every_module_the_node_imports_and_nothing_it_does_not() -> None:
    provided = importlib.metadata.packages_distributions()
    image = set(_requirements(ROOT / "media_node" / "requirements.txt"))
    first_party = {p.name for p in FUNCTIONS.iterdir() if p.is_dir()} | {"media_node"}
    copied = [ROOT / "media_node", FUNCTIONS / "mapokezi"]
    imported: set[str] = set()
    for path in _first_party_closure(ROOT / "media_node" / "__main__.py"):
        assert any(path.is_relative_to(folder) for folder in copied), path
        module = ast.parse(path.read_text()).body
        # Module level (what runs on import), including optional imports under try/except.
        tried = [inner for node in module if isinstance(node, ast.Try) for inner in node.body]
        for node in module + tried:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names} - first_party:
                if top in sys.stdlib_module_names:
                    continue
                distributions = {canonicalize_name(d) for d in provided.get(top, [])}
                assert distributions & image, f"{path.relative_to(ROOT)} imports {top}"
                imported |= distributions & image
    # Every requirement is imported by the node or needed by one that is.
    needed = set(imported)
    environment = {**default_environment(), "python_version": "3.12", "extra": ""}
    for name in sorted(imported):
        for spec in importlib.metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                needed.add(canonicalize_name(requirement.name))
    pending = list(needed)
    while pending:
        for spec in importlib.metadata.requires(pending.pop()) or []:
            requirement = Requirement(spec)
            name = canonicalize_name(requirement.name)
            if name not in needed and (
                requirement.marker is None or requirement.marker.evaluate(environment)
            ):
                needed.add(name)
                pending.append(name)
    assert image <= needed, f"image installs what the node never imports: {image - needed}"


def test_build_script_is_executable_and_parses() -> None:
    script = ROOT / "infra" / "build-image.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "media_node/Dockerfile" in script.read_text()


# --------------------------------------------------------------------------- reliability switches


def test_stream_status_signatures_are_verified_unless_switched_off() -> None:
    parameter = TEMPLATE["Parameters"]["VerifyStreamStatusSignatures"]
    assert parameter["Default"] == "true"
    assert set(parameter["AllowedValues"]) == {"true", "false"}
    env = _environment("StreamStatusFunction")
    assert env["VERIFY_STREAM_STATUS_SIGNATURES"] == {"Ref": "VerifyStreamStatusSignatures"}
    assert _refs(env["SAUTIKIT_WEBHOOK_SECRET_ARN"]) == {"SautikitWebhookSecret"}


def test_voice_function_knows_the_fallback_front_desk() -> None:
    env = _environment("VoiceFunction")
    assert env["FALLBACK_FRONT_DESK"] == {"Ref": "FallbackFrontDesk"}
    pattern = re.compile(TEMPLATE["Parameters"]["FallbackFrontDesk"]["AllowedPattern"])
    assert pattern.match("") and pattern.match("+254711000001")
    assert not pattern.match("0711000001")


def test_cdr_fetcher_knows_the_queue_receive_limit_and_retry_horizon() -> None:
    queue = resources_of_type("AWS::SQS::Queue", TEMPLATE)["CdrQueue"]
    env = _environment("CdrFunction")
    assert int(env["CDR_MAX_RECEIVE_COUNT"]) == queue["RedrivePolicy"]["maxReceiveCount"]
    assert env["CDR_MAX_AGE_SECONDS"] == {"Ref": "CdrMaxAgeSeconds"}
    horizon = TEMPLATE["Parameters"]["CdrMaxAgeSeconds"]
    assert horizon["MinValue"] >= 3600  # an hour's outage loses nothing
    assert horizon["MaxValue"] <= queue["MessageRetentionPeriod"]
