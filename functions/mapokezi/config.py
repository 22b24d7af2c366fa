"""Configuration from the environment, the same locally and in AWS.

Plain settings come from environment variables (names are a stable interface, see the README).
Secrets come from the variable of that name when set, else from Secrets Manager through
``<NAME>_ARN``; fetched values are cached for a few minutes so a warm Lambda or the media node
does not call Secrets Manager per request. AWS clients come from one shared session
(:mod:`mapokezi.aws_session`); boto3 honours ``AWS_ENDPOINT_URL``, which is how the local stack
points every client at moto.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from mapokezi import aws_session

SECRET_NAMES = (
    "OPENAI_API_KEY",
    "SAUTIKIT_API_KEY",
    "SAUTIKIT_WEBHOOK_SECRET",
    "STREAM_TOKEN_SECRET",
)
_SECRET_TTL_SECONDS = 300.0
DEFAULT_CALLS_TABLE = "mapokezi-calls"


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    """Every non-secret setting, read once from the environment."""

    calls_table: str
    media_stream_url: str
    public_base_url: str
    sautikit_api_url: str
    openai_realtime_url: str
    openai_realtime_model: str
    media_node_port: int
    max_calls: int
    cdr_queue_url: str
    cdr_delay_seconds: int
    heartbeat_max_age_seconds: int
    retention_days: int
    fallback_front_desk: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``), applying documented defaults."""
        env = os.environ if environ is None else environ
        return cls(
            calls_table=env_str(env, "CALLS_TABLE", DEFAULT_CALLS_TABLE),
            media_stream_url=env.get("MEDIA_STREAM_URL", "ws://127.0.0.1:8080/audio"),
            public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:3000").rstrip("/"),
            sautikit_api_url=env.get("SAUTIKIT_API_URL", "https://api.sautikit.com").rstrip("/"),
            openai_realtime_url=env.get("OPENAI_REALTIME_URL", "wss://api.openai.com/v1/realtime"),
            openai_realtime_model=env.get("OPENAI_REALTIME_MODEL", "gpt-realtime"),
            media_node_port=env_int(env, "MEDIA_NODE_PORT", 8080, low=0, high=65535),
            max_calls=env_int(env, "MAX_CALLS", 200),
            cdr_queue_url=env.get("CDR_QUEUE_URL", ""),
            cdr_delay_seconds=env_int(env, "CDR_DELAY_SECONDS", 30),
            heartbeat_max_age_seconds=env_int(env, "HEARTBEAT_MAX_AGE_SECONDS", 30),
            retention_days=env_int(env, "RETENTION_DAYS", 90),
            fallback_front_desk=env.get("FALLBACK_FRONT_DESK", "").strip() or None,
        )


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    """``env[name]`` stripped, or ``default`` when it is unset or blank."""
    return env.get(name, "").strip() or default


def env_int(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """A whole number from ``env[name]`` (``default`` when unset or blank), within bounds.

    Raises:
        ConfigError: the value is not a whole number or lies outside ``low``..``high``.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    _check_bounds(name, value, low, high)
    return value


def env_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """A number from ``env[name]`` (``default`` when unset or blank), within bounds.

    Raises:
        ConfigError: the value is not a finite number or lies outside ``low``..``high``.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    _check_bounds(name, value, low, high)
    return value


def _check_bounds(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be at least {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be at most {high:g}, got {value:g}")


_secret_cache: dict[str, tuple[float, str]] = {}
_secret_lock = threading.Lock()


def get_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Return secret ``name`` from the environment or Secrets Manager, or None if unset.

    Args:
        name: one of :data:`SECRET_NAMES`, e.g. ``"STREAM_TOKEN_SECRET"``.
        environ: environment to read (default ``os.environ``).

    Raises:
        ConfigError: ``<NAME>_ARN`` is set but the secret cannot be read.
    """
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return value
    arn = env.get(f"{name}_ARN")
    if not arn:
        return None
    now = time.monotonic()
    with _secret_lock:
        cached = _secret_cache.get(arn)
        if cached and now - cached[0] < _SECRET_TTL_SECONDS:
            return cached[1]
    try:
        response = secrets_client().get_secret_value(SecretId=arn)
    except Exception as exc:  # boto errors carry the reason; keep it for the operator
        raise ConfigError(f"cannot read {name} from Secrets Manager ({arn}): {exc}") from exc
    secret = response.get("SecretString") or ""
    with _secret_lock:
        _secret_cache[arn] = (now, secret)
    return secret or None


def require_secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Like :func:`get_secret` but a missing secret is a :class:`ConfigError`."""
    value = get_secret(name, environ)
    if not value:
        raise ConfigError(f"{name} is not configured (set {name} or {name}_ARN)")
    return value


def clear_secret_cache() -> None:
    """Forget cached secrets (tests, or after a rotation)."""
    with _secret_lock:
        _secret_cache.clear()


def aws_client(service: str) -> Any:
    """A new boto3 client for ``service`` from the process's shared session."""
    session: Any = aws_session.shared_session()  # the stubs type clients per literal name
    return session.client(service)


@cache
def secrets_client() -> Any:
    """A shared Secrets Manager client (created on first use, reused while warm)."""
    return aws_client("secretsmanager")


@cache
def _dynamodb() -> Any:
    return aws_session.shared_session().resource("dynamodb")


def dynamodb_table(name: str) -> Any:
    """A boto3 Table resource for ``name`` on a shared, lazily created DynamoDB resource."""
    return _dynamodb().Table(name)


def calls_table(environ: Mapping[str, str] | None = None) -> Any:
    """The calls table named by ``CALLS_TABLE`` (default ``mapokezi-calls``)."""
    env = os.environ if environ is None else environ
    return dynamodb_table(env_str(env, "CALLS_TABLE", DEFAULT_CALLS_TABLE))


def reset_aws_clients() -> None:
    """Drop cached boto3 clients, so the next use picks up a new endpoint or a fresh moto mock."""
    secrets_client.cache_clear()
    _dynamodb.cache_clear()
    aws_session.shared_session.cache_clear()
    clear_secret_cache()
