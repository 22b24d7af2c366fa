"""Settings of the media node: the shared :class:`mapokezi.config.Settings` plus node-only ones.

Everything comes from the environment (names are a stable interface, see the README). Errors are
:class:`mapokezi.config.ConfigError` with a one-line message naming the variable, so
``python -m media_node`` can refuse to start with a clear reason.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mapokezi.config import ConfigError, Settings, get_secret, require_secret

DEFAULT_SERVICE_NAME = "mapokezi-media-node"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
"""``EVENT_LOOP``: ``auto`` runs on uvloop when it is installed (see `media_node.event_loop`)."""


@dataclass(frozen=True)
class NodeSettings:
    """Everything the media node needs to start; secrets are kept out of ``repr``."""

    settings: Settings
    node_id: str
    host: str
    port: int
    drain_seconds: float
    pacer_lead_ms: int
    log_level: str
    heartbeat_interval_seconds: float
    heartbeat_ttl_seconds: int
    metric_interval_seconds: float
    service_name: str
    ecs_agent_uri: str | None
    task_protection_minutes: int
    stream_token_secret: str = field(repr=False)
    openai_api_key: str | None = field(repr=False, default=None)
    uplink_append_ms: int = 40
    event_loop: str = "auto"

    @property
    def max_calls(self) -> int:
        """Calls this node takes at once (``MAX_CALLS``)."""
        return self.settings.max_calls

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NodeSettings:
        """Read and validate the node's settings.

        Raises:
            ConfigError: a variable is malformed, ``STREAM_TOKEN_SECRET`` is missing, or
                ``OPENAI_API_KEY`` is missing while ``OPENAI_REALTIME_URL`` is a hosted API.
        """
        env = os.environ if environ is None else environ
        settings = Settings.from_env(env)
        if settings.max_calls < 1:
            raise ConfigError(f"MAX_CALLS must be at least 1, got {settings.max_calls}")
        log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if log_level not in _LOG_LEVELS:
            raise ConfigError(
                f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {log_level!r}"
            )
        minutes = _int(env, "TASK_PROTECTION_MINUTES", 60, low=2, high=2880)
        openai_api_key = get_secret("OPENAI_API_KEY", env)
        if not openai_api_key and not is_local_model_url(settings.openai_realtime_url):
            raise ConfigError(
                "OPENAI_API_KEY is not configured (set OPENAI_API_KEY or OPENAI_API_KEY_ARN, or "
                f"point OPENAI_REALTIME_URL at a local model; it is {settings.openai_realtime_url})"
            )
        return cls(
            settings=settings,
            node_id=env.get("NODE_ID", "").strip() or default_node_id(),
            host=env.get("MEDIA_NODE_HOST", "").strip() or "127.0.0.1",
            port=settings.media_node_port,
            drain_seconds=_float(env, "DRAIN_SECONDS", 100.0),
            pacer_lead_ms=_int(env, "PACER_LEAD_MS", 60, low=0, high=1000),
            log_level=log_level,
            heartbeat_interval_seconds=_float(env, "HEARTBEAT_INTERVAL_SECONDS", 10.0, low=0.05),
            heartbeat_ttl_seconds=_int(env, "HEARTBEAT_TTL_SECONDS", 120, low=1, high=86400),
            metric_interval_seconds=_float(env, "METRIC_INTERVAL_SECONDS", 60.0, low=0.05),
            service_name=env.get("SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME,
            ecs_agent_uri=env.get("ECS_AGENT_URI", "").strip().rstrip("/") or None,
            task_protection_minutes=minutes,
            stream_token_secret=require_secret("STREAM_TOKEN_SECRET", env),
            openai_api_key=openai_api_key,
            uplink_append_ms=_int(env, "UPLINK_APPEND_MS", 40, low=20, high=200),
            event_loop=_event_loop(env),
        )


def _event_loop(env: Mapping[str, str]) -> str:
    choice = env.get("EVENT_LOOP", "").strip().lower() or "auto"
    if choice not in EVENT_LOOPS:
        raise ConfigError(f"EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    return choice


def default_node_id() -> str:
    """Hostname plus a random suffix, so restarted containers never share an id."""
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"


def is_local_model_url(url: str) -> bool:
    """Whether ``url`` points at a model on this machine or network rather than a hosted API.

    Plain ``ws://`` (no TLS) or a loopback host counts as local: no hosted API is reached that way,
    so no API key is needed.
    """
    parts = urlsplit(url)
    if parts.scheme == "ws":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def logging_level(name: str) -> int:
    """The :mod:`logging` level number for a validated ``LOG_LEVEL`` name."""
    return logging.getLevelNamesMapping()[name]


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value >= low:  # also rejects NaN
        raise ConfigError(f"{name} must be at least {low}, got {raw!r}")
    return value
