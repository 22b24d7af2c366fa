"""A Lambda handler that returns the event it received, to test the local gateway's events."""

from __future__ import annotations

import json
from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Echo the event back as JSON, with a custom header and status taken from the query."""
    status = int((event.get("queryStringParameters") or {}).get("status", 200))
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "X-Function": context.function_name},
        "body": json.dumps(event),
    }


def failing_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Raise, as a broken function would."""
    raise RuntimeError("boom")
