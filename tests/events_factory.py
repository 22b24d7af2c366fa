"""Synthetic API Gateway HTTP API (payload v2) events and a Lambda context for handler tests.

Bodies are given as bytes or str (form-encode with :func:`form_body`, JSON with
:func:`json_body`); ``base64=True`` encodes the body the way API Gateway does for content
types it does not treat as text.
"""

from __future__ import annotations

import base64 as b64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
DEFAULT_DOMAIN = "abc123.execute-api.af-south-1.amazonaws.com"


def form_body(fields: Mapping[str, Any]) -> bytes:
    """``application/x-www-form-urlencoded`` bytes of ``fields``."""
    return urlencode({k: str(v) for k, v in fields.items()}).encode()


def json_body(data: Any) -> bytes:
    """UTF-8 JSON bytes of ``data`` (non-ASCII kept as is)."""
    return json.dumps(data, ensure_ascii=False).encode()


def http_event(
    path: str,
    body: bytes | str | None = None,
    *,
    method: str = "POST",
    content_type: str | None = FORM,
    headers: Mapping[str, str] | None = None,
    base64: bool = False,
    domain: str = DEFAULT_DOMAIN,
    query: Mapping[str, str] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An HTTP API v2 event for ``method path`` (headers lower-cased, as API Gateway does)."""
    raw = body.encode() if isinstance(body, str) else body
    all_headers = {"host": domain, "user-agent": "Sautikit-Webhook/1.0"}
    if content_type:
        all_headers["content-type"] = content_type
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    now = time.time()
    raw_query = urlencode(dict(query or {}))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "196.201.214.1",
                "userAgent": all_headers["user-agent"],
            },
            "requestId": request_id or str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": bool(base64 and raw),
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if raw:
        event["body"] = b64.b64encode(raw).decode() if base64 else raw.decode("utf-8")
    return event


@dataclass
class FakeLambdaContext:
    """The context attributes Powertools' Logger and Metrics read."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:af-south-1:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "test"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        """Plenty of time left, unless `remaining_ms` says otherwise."""
        return self.remaining_ms
