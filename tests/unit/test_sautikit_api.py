"""Sautikit client pieces without the network: error bodies, Retry-After, configuration."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mapokezi.config import ConfigError
from mapokezi.sautikit_api import (
    ApiPaths,
    SautikitApiError,
    SautikitClient,
    error_from_response,
    parse_retry_after,
)


def test_enveloped_error_body() -> None:
    raw = json.dumps(
        {"error": {"code": "calls.not_found", "message": "call not found", "request_id": "req_1"}}
    ).encode()
    exc = error_from_response(404, raw, {"retry-after": "3"})
    assert (exc.status, exc.code, exc.message) == (404, "calls.not_found", "call not found")
    assert exc.request_id == "req_1" and exc.retry_after == 3.0
    assert str(exc) == "HTTP 404 calls.not_found: call not found"
    assert not exc.transient


def test_bare_code_reason_body() -> None:
    raw = json.dumps({"code": "recording_unavailable", "reason": "expired"}).encode()
    exc = error_from_response(410, raw, {})
    assert (exc.code, exc.message, exc.retry_after) == ("recording_unavailable", "expired", None)


def test_non_json_error_body_keeps_the_text() -> None:
    exc = error_from_response(502, b"<html>Bad gateway</html>", {})
    assert exc.code == "http.502" and exc.message == "<html>Bad gateway</html>"
    assert exc.transient


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 21, 9, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Sat, 21 Nov 2026 09:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Sat, 21 Nov 2026 08:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_transient_classification() -> None:
    assert SautikitApiError(None, "transport.timeout", "t").transient
    assert SautikitApiError(500, "internal_error", "x").transient
    assert not SautikitApiError(429, "rate_limited", "x").transient
    assert not SautikitApiError(None, "config.invalid", "x").transient


def test_paths_from_env_overrides() -> None:
    paths = ApiPaths.from_env(
        {
            "SAUTIKIT_CLAIM_PATH": "/v1/numbers/{id}/claim",
            "SAUTIKIT_ROUTE_PATH": "/v1/numbers/{id}/routing",
            "SAUTIKIT_ROUTE_METHOD": "put",
            "SAUTIKIT_ROUTE_FIELD": "voice_callback_url",
        }
    )
    assert paths.claim_path == "/v1/numbers/{id}/claim"
    assert (paths.route_path, paths.route_method) == ("/v1/numbers/{id}/routing", "PUT")
    assert paths.route_field == "voice_callback_url" and paths.events_field == "events_url"
    assert ApiPaths.from_env({}) == ApiPaths()


def test_client_from_env() -> None:
    client = SautikitClient.from_env(
        {"SAUTIKIT_API_URL": "http://x/", "SAUTIKIT_API_KEY": "k", "SAUTIKIT_TIMEOUT_SECONDS": "2"}
    )
    assert (client.base_url, client.api_key, client.timeout) == ("http://x", "k", 2.0)
    default = SautikitClient.from_env({"SAUTIKIT_API_KEY": "k"})
    assert default.base_url == "https://api.sautikit.com" and default.timeout == 5.0


def test_client_from_env_errors() -> None:
    with pytest.raises(ConfigError, match="SAUTIKIT_API_KEY is not configured"):
        SautikitClient.from_env({})
    with pytest.raises(ConfigError, match="SAUTIKIT_TIMEOUT_SECONDS must be a number"):
        SautikitClient.from_env({"SAUTIKIT_API_KEY": "k", "SAUTIKIT_TIMEOUT_SECONDS": "fast"})
