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

from mapokezi.config import (
    ConfigError,
    Settings,
    env_float,
    env_int,
    env_str,
    get_secret,
    require_secret,
)
from media_node.socket_limits import SocketLimits

DEFAULT_SERVICE_NAME = "mapokezi-media-node"
DEFAULT_GEMINI_LIVE_URL = (
    "wss://generativelanguage.googleapis.com/ws/"
    "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
)
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
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
    frames_per_write: int = 1
    """``FRAMES_PER_WRITE``: outbound 20 ms frames per WebSocket message (2: one write per
    40 ms; unconfirmed on Sautikit, so off by default)."""
    event_loop: str = "auto"
    gemini_live_url: str = DEFAULT_GEMINI_LIVE_URL
    gemini_model: str = DEFAULT_GEMINI_MODEL
    gemini_api_key: str | None = field(repr=False, default=None)
    gemini_key_problem: str | None = None
    """Why ``GEMINI_API_KEY_ARN`` could not be read, if it could not."""
    openai_key_problem: str | None = None
    """Why ``OPENAI_API_KEY_ARN`` could not be read, if it could not."""
    limits: SocketLimits = field(default_factory=SocketLimits)

    @property
    def max_calls(self) -> int:
        """Calls this node takes at once (``MAX_CALLS``)."""
        return self.settings.max_calls

    def unavailable_reason(self, provider: str) -> str | None:
        """Why calls of ``provider`` (``openai``/``gemini``) cannot be served, or None if they can.

        A provider needs its API key unless its URL points at a local model.
        """
        if provider == "gemini":
            if self.gemini_api_key or is_local_model_url(self.gemini_live_url):
                return None
            if self.gemini_key_problem:
                return self.gemini_key_problem
            return "GEMINI_API_KEY is not configured (set GEMINI_API_KEY or GEMINI_API_KEY_ARN)"
        if self.openai_api_key or is_local_model_url(self.settings.openai_realtime_url):
            return None
        if self.openai_key_problem:
            return self.openai_key_problem
        return "OPENAI_API_KEY is not configured (set OPENAI_API_KEY or OPENAI_API_KEY_ARN)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NodeSettings:
        """Read and validate the node's settings.

        A provider without a key (and not pointed at a local model) is allowed: calls of
        profiles that choose it get the apology and the front desk. At least one provider must
        be usable.

        Raises:
            ConfigError: a variable is malformed, ``STREAM_TOKEN_SECRET`` is missing, or no
                provider is usable (neither key set and both URLs are hosted APIs).
        """
        env = os.environ if environ is None else environ
        settings = Settings.from_env(env)
        if settings.max_calls < 1:
            raise ConfigError(f"MAX_CALLS must be at least 1, got {settings.max_calls}")
        log_level = env_str(env, "LOG_LEVEL", "INFO").upper()
        if log_level not in _LOG_LEVELS:
            raise ConfigError(
                f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {log_level!r}"
            )
        minutes = env_int(env, "TASK_PROTECTION_MINUTES", 60, low=2, high=2880)
        # Deployed, a key's secret exists before anyone stores a value: that provider is then
        # unavailable (its calls go to the front desk) and the node serves the other one.
        openai_api_key, openai_key_problem = _model_key("OPENAI_API_KEY", env)
        gemini_api_key, gemini_key_problem = _model_key("GEMINI_API_KEY", env)
        gemini_live_url = env_str(env, "GEMINI_LIVE_URL", DEFAULT_GEMINI_LIVE_URL)
        openai_usable = openai_api_key or is_local_model_url(settings.openai_realtime_url)
        if not openai_usable and not (gemini_api_key or is_local_model_url(gemini_live_url)):
            problems = "; ".join(p for p in (openai_key_problem, gemini_key_problem) if p)
            raise ConfigError(
                "OPENAI_API_KEY is not configured (set OPENAI_API_KEY or OPENAI_API_KEY_ARN, or "
                "GEMINI_API_KEY or GEMINI_API_KEY_ARN for Gemini profiles, or point "
                f"OPENAI_REALTIME_URL at a local model; it is {settings.openai_realtime_url})"
                + (f": {problems}" if problems else "")
            )
        return cls(
            settings=settings,
            node_id=env_str(env, "NODE_ID", "") or default_node_id(),
            host=env_str(env, "MEDIA_NODE_HOST", "127.0.0.1"),
            port=settings.media_node_port,
            drain_seconds=env_float(env, "DRAIN_SECONDS", 100.0, low=0.0),
            pacer_lead_ms=env_int(env, "PACER_LEAD_MS", 60, low=0, high=1000),
            log_level=log_level,
            heartbeat_interval_seconds=env_float(env, "HEARTBEAT_INTERVAL_SECONDS", 10.0, low=0.05),
            heartbeat_ttl_seconds=env_int(env, "HEARTBEAT_TTL_SECONDS", 120, low=1, high=86400),
            metric_interval_seconds=env_float(env, "METRIC_INTERVAL_SECONDS", 60.0, low=0.05),
            service_name=env_str(env, "SERVICE_NAME", DEFAULT_SERVICE_NAME),
            ecs_agent_uri=env_str(env, "ECS_AGENT_URI", "").rstrip("/") or None,
            task_protection_minutes=minutes,
            stream_token_secret=require_secret("STREAM_TOKEN_SECRET", env),
            openai_api_key=openai_api_key,
            openai_key_problem=openai_key_problem,
            uplink_append_ms=env_int(env, "UPLINK_APPEND_MS", 40, low=20, high=200),
            frames_per_write=env_int(env, "FRAMES_PER_WRITE", 1, low=1, high=2),
            limits=SocketLimits.from_env(env),
            gemini_live_url=gemini_live_url,
            gemini_model=env_str(env, "GEMINI_MODEL", DEFAULT_GEMINI_MODEL),
            gemini_api_key=gemini_api_key,
            gemini_key_problem=gemini_key_problem,
            event_loop=_event_loop(env),
        )


def _model_key(name: str, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """A model provider's key, or None and why it could not be read."""
    try:
        return get_secret(name, env), None
    except ConfigError as exc:
        return None, str(exc)


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
