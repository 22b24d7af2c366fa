"""Media node settings from the environment: defaults, validation and secret rules."""

from __future__ import annotations

import boto3
import pytest

from mapokezi import config
from mapokezi.config import ConfigError
from media_node.node_settings import NodeSettings, is_local_model_url

BASE = {"STREAM_TOKEN_SECRET": "s3cret", "OPENAI_API_KEY": "sk-test"}


def test_defaults() -> None:
    node = NodeSettings.from_env(BASE)
    assert node.host == "127.0.0.1"  # nothing listens beyond loopback unless asked
    assert node.port == 8080
    assert node.drain_seconds == 100.0
    assert node.pacer_lead_ms == 60
    assert node.frames_per_write == 1  # two per write is unconfirmed on the platform
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
            "FRAMES_PER_WRITE": "2",
        }
    )
    assert (node.node_id, node.host, node.port) == ("node-a", "0.0.0.0", 9000)
    assert (node.drain_seconds, node.pacer_lead_ms, node.log_level) == (30.5, 40, "DEBUG")
    assert (node.max_calls, node.service_name) == (12, "svc")
    assert node.ecs_agent_uri == "http://169.254.170.2/api/abc"
    assert node.task_protection_minutes == 90
    assert node.frames_per_write == 2


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
    assert local.unavailable_reason("openai") is None
    assert "GEMINI_API_KEY" in (local.unavailable_reason("gemini") or "")


def test_gemini_settings_and_a_node_with_only_one_provider() -> None:
    defaults = NodeSettings.from_env(BASE)
    assert defaults.gemini_live_url == (
        "wss://generativelanguage.googleapis.com/ws/"
        "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    )
    assert defaults.gemini_model == "gemini-2.5-flash-native-audio-preview-12-2025"
    assert defaults.gemini_api_key is None
    assert "GEMINI_API_KEY" in (defaults.unavailable_reason("gemini") or "")
    # A node serving only Gemini numbers starts without the OpenAI key.
    gemini_only = NodeSettings.from_env(
        {
            "STREAM_TOKEN_SECRET": "s",
            "GEMINI_API_KEY": "g-key",
            "GEMINI_MODEL": "gemini-3.1-flash-live-preview",
            "GEMINI_LIVE_URL": "wss://example.test/live",
        }
    )
    assert gemini_only.unavailable_reason("gemini") is None
    assert "OPENAI_API_KEY" in (gemini_only.unavailable_reason("openai") or "")
    assert gemini_only.gemini_model == "gemini-3.1-flash-live-preview"
    assert gemini_only.gemini_live_url == "wss://example.test/live"
    assert "g-key" not in repr(gemini_only)


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
        ("FRAMES_PER_WRITE", "3"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        NodeSettings.from_env({**BASE, name: value})


def test_an_unset_gemini_secret_leaves_gemini_unavailable(aws: None) -> None:
    # Deployed, the secret exists before anyone stores a value in it.
    config.clear_secret_cache()
    config.secrets_client.cache_clear()
    arn = boto3.client("secretsmanager").create_secret(Name="stack/gemini-api-key")["ARN"]
    node = NodeSettings.from_env({**BASE, "GEMINI_API_KEY_ARN": arn})
    assert node.unavailable_reason("openai") is None
    reason = node.unavailable_reason("gemini") or ""
    assert "cannot read GEMINI_API_KEY from Secrets Manager" in reason and arn in reason
    config.secrets_client.cache_clear()


def test_unset_secrets_of_both_providers_stop_the_node_with_both_reasons(aws: None) -> None:
    config.clear_secret_cache()
    config.secrets_client.cache_clear()
    client = boto3.client("secretsmanager")
    openai_arn = client.create_secret(Name="stack/openai-api-key")["ARN"]
    gemini_arn = client.create_secret(Name="stack/gemini-api-key")["ARN"]
    env = {
        "STREAM_TOKEN_SECRET": "s",
        "OPENAI_API_KEY_ARN": openai_arn,
        "GEMINI_API_KEY_ARN": gemini_arn,
    }
    with pytest.raises(ConfigError) as caught:
        NodeSettings.from_env(env)
    assert openai_arn in str(caught.value) and gemini_arn in str(caught.value)
    # A Gemini-only deployment starts once the Gemini key is stored.
    client.put_secret_value(SecretId=gemini_arn, SecretString="g-key")
    config.clear_secret_cache()
    node = NodeSettings.from_env(env)
    assert node.gemini_api_key == "g-key"
    assert openai_arn in (node.unavailable_reason("openai") or "")
    config.secrets_client.cache_clear()


def test_event_loop_choice() -> None:
    assert NodeSettings.from_env(BASE).event_loop == "auto"
    for choice in ("auto", "uvloop", "asyncio"):
        assert NodeSettings.from_env({**BASE, "EVENT_LOOP": f" {choice.upper()} "}).event_loop == (
            choice
        )
    with pytest.raises(ConfigError, match="EVENT_LOOP must be one of"):
        NodeSettings.from_env({**BASE, "EVENT_LOOP": "tokio"})
