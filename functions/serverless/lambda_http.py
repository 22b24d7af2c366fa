"""Glue shared by the webhook Lambdas: raw body, signature check, error answers, base URL.

The handlers stay thin: decode with :mod:`serverless.webhook`, check with :func:`authenticate`,
call one domain function, answer. Errors raised along the way become 400/401 JSON answers
through :func:`register_error_handlers`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from botocore.exceptions import BotoCoreError, ClientError

from mapokezi import config
from serverless.signature import SignatureError, verify_signature
from serverless.webhook import BodyTooLargeError, WebhookError, header, raw_body

SIGNATURE_HEADER = "X-Sautikit-Signature"
WEBHOOK_SECRET = "SAUTIKIT_WEBHOOK_SECRET"
#: "false" accepts unsigned stream status callbacks (a platform that does not sign them).
VERIFY_STREAM_STATUS = "VERIFY_STREAM_STATUS_SIGNATURES"
#: What :func:`authenticate` returns for an unsigned callback it accepted.
UNSIGNED = "unsigned"

logger = Logger(child=True)


def request_bytes(event: APIGatewayProxyEventV2) -> bytes:
    """The body exactly as the sender sent it (the bytes its signature covers)."""
    return raw_body(event.body, bool(event.is_base64_encoded))


def content_type(event: APIGatewayProxyEventV2) -> str | None:
    """The request's Content-Type header, if any."""
    return header(event.headers, "content-type")


def authenticate(
    event: APIGatewayProxyEventV2, body: bytes, *, header_required: bool = True
) -> str | None:
    """Verify ``X-Sautikit-Signature`` when ``SAUTIKIT_WEBHOOK_SECRET`` (or ``_ARN``) is set.

    Args:
        event: the HTTP API event.
        body: the raw body (see :func:`request_bytes`).
        header_required: False for callbacks the platform may not sign: a missing header is
            then accepted (and logged), a present but wrong one is still rejected.

    Returns:
        The scheme that matched, :data:`UNSIGNED` when a missing header was accepted although
        a secret is configured, or None when no secret is configured.

    Raises:
        SignatureError: the signature is missing or wrong.
    """
    secret = config.get_secret(WEBHOOK_SECRET)
    if not secret:
        return None
    value = header(event.headers, SIGNATURE_HEADER)
    if value is None and not header_required:
        logger.info("unsigned callback accepted (the platform may not sign it)")
        return UNSIGNED
    return verify_signature(secret, value, body)


def stream_status_signatures_required(environ: dict[str, str] | None = None) -> bool:
    """Whether /stream-status must carry a signature when a webhook secret is configured.

    On unless ``VERIFY_STREAM_STATUS_SIGNATURES`` is ``false``: an unsigned status callback
    could otherwise mark a healthy stream failed and turn the platform's retry into a fallback.
    """
    env = os.environ if environ is None else environ
    return env.get(VERIFY_STREAM_STATUS, "true").strip().lower() not in ("false", "0", "no")


def public_base_url(configured: str, event: APIGatewayProxyEventV2) -> str:
    """``PUBLIC_BASE_URL``, or ``https://<domainName>`` of the request when it is empty.

    The template cannot pass the API's own URL to its functions (circular reference), and an
    HTTP API's ``$default`` stage adds no path prefix, so the request's domain is the base.
    """
    if configured:
        return configured.rstrip("/")
    domain = event.request_context.domain_name
    return f"https://{domain}" if domain else ""


def json_response(status_code: int, payload: dict[str, Any]) -> Response:
    """A small JSON answer."""
    return Response(status_code, "application/json", json.dumps(payload, separators=(",", ":")))


def register_error_handlers(app: APIGatewayHttpResolver, metrics: Metrics) -> None:
    """Map malformed requests to 400 (413 when too large), bad signatures to 401 and an
    unreachable dependency to 503, each with a JSON reason; never a bare 500."""

    @app.exception_handler(BodyTooLargeError)
    def _too_large(exc: BodyTooLargeError) -> Response:
        logger.warning("webhook body too large", extra={"reason": str(exc)})
        return json_response(413, {"error": "payload_too_large", "reason": str(exc)})

    @app.exception_handler([ClientError, BotoCoreError, config.ConfigError, Exception])
    def _unavailable(exc: Exception) -> Response:
        if isinstance(exc, ServiceError):  # Powertools' own HTTP errors keep their status
            raise exc
        # The platform retries a failed delivery, so nothing is lost by answering 503 here.
        logger.exception("a dependency failed; the sender should retry")
        metrics.add_metric(name="DependencyFailures", unit=MetricUnit.Count, value=1)
        return json_response(503, {"error": "unavailable", "reason": type(exc).__name__})

    @app.exception_handler(WebhookError)
    def _malformed(exc: WebhookError) -> Response:
        logger.warning("malformed webhook request", extra={"reason": str(exc)})
        return json_response(400, {"error": "bad_request", "reason": str(exc)})

    @app.exception_handler(SignatureError)
    def _unauthorised(exc: SignatureError) -> Response:
        logger.warning("webhook signature rejected", extra={"reason": exc.reason})
        metrics.add_metric(name="SignatureRejections", unit=MetricUnit.Count, value=1)
        return json_response(401, {"error": "unauthorized", "reason": str(exc)})
