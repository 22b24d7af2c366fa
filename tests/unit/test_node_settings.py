"""Media node settings from the environment: defaults, validation and secret rules."""

from __future__ import annotations

import pytest

from mapokezi.config import ConfigError
from media_node.node_settings import NodeSettings, is_local_model_url

BASE = {"STREAM_TOKEN_SECRET": "s3cret", "OPENAI_API_KEY": "sk-test"}


def test_defaults() -> None:
    node = NodeSettings.from_env(BASE)
    assert node.host == "127.0.0.1"  # nothing listens beyond loopback unless asked
    assert node.port == 8080
    assert node.drain_seconds == 100.0
    assert node.pacer_lead_ms == 60
    assert node.log_level == "INFO"
    assert node.heartbeat_interval_seconds == 10.0
    assert node.metric_interval_seconds == 60.0
    assert node.service_name == "mapokezi-media-node"
    assert node.ecs_agent_uri is None
    assert node.max_calls == node.settings.max_calls == 200
    assert node.node_id  # hostname plus a random suffix
    assert NodeSettings.from_env(BASE).node_id != node.node_id


def test_overrides() -> None:
    node = NodeSettings.from_env(
        {
            **BASE,
            "NODE_ID": "node-a",
            "MEDIA_NODE_HOST": "0.0.0.0",
            "MEDIA_NODE_PORT": "9000",
            "DRAIN_SECONDS": "30.5",
            "PACER_LEAD_MS": "40",
            "LOG_LEVEL": "debug",
            "MAX_CALLS": "12",
            "SERVICE_NAME": "svc",
            "ECS_AGENT_URI": "http://169.254.170.2/api/abc/",
            "TASK_PROTECTION_MINUTES": "90",
        }
    )
    assert (node.node_id, node.host, node.port) == ("node-a", "0.0.0.0", 9000)
    assert (node.drain_seconds, node.pacer_lead_ms, node.log_level) == (30.5, 40, "DEBUG")
    assert (node.max_calls, node.service_name) == (12, "svc")
    assert node.ecs_agent_uri == "http://169.254.170.2/api/abc"
    assert node.task_protection_minutes == 90


def test_secrets_stay_out_of_repr() -> None:
    text = repr(NodeSettings.from_env(BASE))
    assert "s3cret" not in text
    assert "sk-test" not in text


def test_missing_stream_token_secret_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError) as caught:
        NodeSettings.from_env({"OPENAI_API_KEY": "sk-test"})
    message = str(caught.value)
    assert "STREAM_TOKEN_SECRET" in message
    assert "\n" not in message


def test_openai_key_required_for_the_hosted_api_only() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        NodeSettings.from_env({"STREAM_TOKEN_SECRET": "s"})
    local = NodeSettings.from_env(
        {"STREAM_TOKEN_SECRET": "s", "OPENAI_REALTIME_URL": "ws://127.0.0.1:8092/v1/realtime"}
    )
    assert local.openai_api_key is None


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("wss://api.openai.com/v1/realtime", False),
        ("wss://example.openai.azure.com/openai/realtime", False),
        ("ws://model-double:8092/v1/realtime", True),
        ("wss://localhost:8443/v1/realtime", True),
        ("wss://127.0.0.1:8443/v1/realtime", True),
        ("wss://[::1]:8443/v1/realtime", True),
    ],
)
def test_local_model_urls(url: str, local: bool) -> None:
    assert is_local_model_url(url) is local


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DRAIN_SECONDS", "soon"),
        ("DRAIN_SECONDS", "-1"),
        ("DRAIN_SECONDS", "nan"),
        ("PACER_LEAD_MS", "1.5"),
        ("LOG_LEVEL", "LOUD"),
        ("MAX_CALLS", "0"),
        ("MEDIA_NODE_PORT", "http"),
        ("HEARTBEAT_INTERVAL_SECONDS", "0"),
        ("TASK_PROTECTION_MINUTES", "5000"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        NodeSettings.from_env({**BASE, name: value})


def test_event_loop_choice() -> None:
    assert NodeSettings.from_env(BASE).event_loop == "auto"
    for choice in ("auto", "uvloop", "asyncio"):
        assert NodeSettings.from_env({**BASE, "EVENT_LOOP": f" {choice.upper()} "}).event_loop == (
            choice
        )
    with pytest.raises(ConfigError, match="EVENT_LOOP must be one of"):
        NodeSettings.from_env({**BASE, "EVENT_LOOP": "tokio"})
