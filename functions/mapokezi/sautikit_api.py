"""The Sautikit REST API client (calls, live-call supervision, numbers), on the stdlib alone.

Lambda ships only boto3 and Powertools, so this uses ``urllib``. Sautikit's own pages disagree on
the numbers endpoints (claim path, routing path, method and field names), so those are settings.

Environment (read by :meth:`SautikitClient.from_env`):

- ``SAUTIKIT_API_URL``: base URL (default ``https://api.sautikit.com``).
- ``SAUTIKIT_API_KEY`` or ``SAUTIKIT_API_KEY_ARN``: the bearer key (see ``mapokezi.config``).
- ``SAUTIKIT_TIMEOUT_SECONDS``: per-request timeout (default 5).
- ``SAUTIKIT_CLAIM_PATH``: claim endpoint (default ``/v1/numbers``). With ``{id}`` in it, e.g.
  ``/v1/numbers/{id}/claim``, the inventory id goes in the path; otherwise in the JSON body.
- ``SAUTIKIT_CLAIM_FIELD``: body field for the inventory id (default ``inventory_id``; a value
  starting with ``+`` is sent as ``number`` instead).
- ``SAUTIKIT_ROUTE_PATH``: routing endpoint (default ``/v1/numbers/{id}``; also seen:
  ``/v1/numbers/{id}/routing``).
- ``SAUTIKIT_ROUTE_METHOD``: ``PATCH`` (default) or ``PUT``.
- ``SAUTIKIT_ROUTE_FIELD``: field carrying the voice URL (default ``routing_url``; also seen:
  ``voice_callback_url``, ``voice_url``).
- ``SAUTIKIT_EVENTS_FIELD``: field carrying the events URL (default ``events_url``).

Errors are :class:`SautikitApiError`; the statuses a caller must tell apart have subclasses
(:class:`TransportError`, :class:`ScopeDeniedError`, :class:`NotFoundError`,
:class:`ConflictError` and its :class:`SupervisionInProgressError`, :class:`ServerError`).
Supervision (§1.10b) puts a person into a live call: ``start_supervision`` (POST, with an
``Idempotency-Key`` so a retried request returns the same supervision), ``get_supervision``,
``set_supervision_mode`` (PATCH) and ``stop_supervision`` (DELETE, idempotent). The API key needs
``calls.supervise`` (and ``calls.read`` for GET).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any

from mapokezi import config

DEFAULT_BASE_URL = "https://api.sautikit.com"
DEFAULT_TIMEOUT_SECONDS = 5.0
_USER_AGENT = "mapokezi/0.1 (+urllib)"


class SautikitApiError(Exception):
    """A Sautikit request failed.

    Attributes:
        status: HTTP status, or None when no response arrived (timeout, connection error).
        code: the platform's error code (``calls.not_found``, ``api_key.invalid``, …) or one of
            ours: ``transport.timeout``, ``transport.connection``, ``response.malformed``,
            ``call.pending`` (a 2xx other than 200 without a call), ``config.invalid`` (the
            client is not configured, e.g. no API key).
        message: human-readable reason.
        retry_after: seconds to wait before retrying, when the platform said so.
        request_id: the platform's request id, when given.
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{where} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def transient(self) -> bool:
        """Whether trying the same request later may succeed without any change on our side."""
        if self.code.startswith("config."):
            return False
        return self.status is None or self.status >= 500 or self.code == "response.malformed"


class TransportError(SautikitApiError):
    """No answer arrived: timeout or connection failure (``status`` is None)."""


class ScopeDeniedError(SautikitApiError):
    """403: the API key lacks a scope (e.g. ``calls.supervise``) or access is denied."""


class NotFoundError(SautikitApiError):
    """404: the call (or other object) does not exist."""


class ConflictError(SautikitApiError):
    """409: the request conflicts with the object's state (e.g. a PATCH while ringing)."""


class SupervisionInProgressError(ConflictError):
    """409 ``calls.supervision_in_progress``: the call already has a supervisor."""


class ServerError(SautikitApiError):
    """5xx: the platform failed; trying again later may work."""


def _error_class(status: int, code: str) -> type[SautikitApiError]:
    if status == 409:
        return (
            SupervisionInProgressError if code == "calls.supervision_in_progress" else ConflictError
        )
    if status >= 500:
        return ServerError
    return {403: ScopeDeniedError, 404: NotFoundError}.get(status, SautikitApiError)


@dataclass(frozen=True)
class ApiPaths:
    """Endpoint paths, methods and field names where Sautikit's docs disagree."""

    claim_path: str = "/v1/numbers"
    claim_field: str = "inventory_id"
    route_path: str = "/v1/numbers/{id}"
    route_method: str = "PATCH"
    route_field: str = "routing_url"
    events_field: str = "events_url"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiPaths:
        """Read the ``SAUTIKIT_*_PATH/METHOD/FIELD`` overrides; unset ones keep the defaults."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            claim_path=env.get("SAUTIKIT_CLAIM_PATH") or defaults.claim_path,
            claim_field=env.get("SAUTIKIT_CLAIM_FIELD") or defaults.claim_field,
            route_path=env.get("SAUTIKIT_ROUTE_PATH") or defaults.route_path,
            route_method=(env.get("SAUTIKIT_ROUTE_METHOD") or defaults.route_method).upper(),
            route_field=env.get("SAUTIKIT_ROUTE_FIELD") or defaults.route_field,
            events_field=env.get("SAUTIKIT_EVENTS_FIELD") or defaults.events_field,
        )


@dataclass(frozen=True)
class ApiResponse:
    """A successful (2xx) response: status, parsed JSON body and lower-cased headers."""

    status: int
    body: Any
    headers: dict[str, str]


SUPERVISION_MODES = ("listen", "whisper", "barge")
SUPERVISION_STATES = ("connecting", "ringing", "connected", "ended", "failed")


@dataclass(frozen=True)
class Supervision:
    """A ``CallSupervision`` (§1.10b); ``raw`` keeps every field the platform sent.

    ``failure_reason`` is not in the SDK's type; it is read when the platform sends one
    (``failure_reason``, ``reason`` or ``hangup_cause``) so busy and no-answer can be told apart.
    """

    supervision_id: str
    call_id: str
    state: str
    mode: str
    supervisor: dict[str, Any]
    session_id: str | None = None
    supervisor_leg_id: str | None = None
    announce: str | None = None
    notify_agent: bool | None = None
    connected_at: str | None = None
    ended_at: str | None = None
    created_at: str | None = None
    failure_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, body: Any) -> Supervision:
        """Read a ``CallSupervision`` (bare or wrapped in ``{"supervision": …}``).

        Raises:
            SautikitApiError: ``response.malformed`` when the id or a known state is missing.
        """
        data = body.get("supervision") if isinstance(body, dict) and "supervision" in body else body
        if not isinstance(data, dict):
            raise SautikitApiError(200, "response.malformed", "expected a supervision object")
        state = data.get("state")
        if not data.get("supervision_id") or state not in SUPERVISION_STATES:
            raise SautikitApiError(
                200, "response.malformed", f"supervision without an id or a known state: {state!r}"
            )
        reason = data.get("failure_reason") or data.get("reason") or data.get("hangup_cause")
        supervisor = data.get("supervisor")
        return cls(
            supervision_id=str(data["supervision_id"]),
            call_id=str(data.get("call_id") or ""),
            state=str(state),
            mode=str(data.get("mode") or ""),
            supervisor=dict(supervisor) if isinstance(supervisor, dict) else {},
            session_id=data.get("session_id"),
            supervisor_leg_id=data.get("supervisor_leg_id"),
            announce=data.get("announce"),
            notify_agent=data.get("notify_agent"),
            connected_at=data.get("connected_at"),
            ended_at=data.get("ended_at"),
            created_at=data.get("created_at"),
            failure_reason=str(reason) if reason else None,
            raw=dict(data),
        )


def phone_supervisor(number: str, label: str | None = None) -> dict[str, Any]:
    """The ``supervisor`` of a person reached on their phone (``{"type":"phone","number"}``)."""
    supervisor: dict[str, Any] = {"type": "phone", "number": number}
    if label:
        supervisor["label"] = label[:64]
    return supervisor


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_from_response(status: int, raw: bytes, headers: Mapping[str, str]) -> SautikitApiError:
    """Build the error for a non-2xx answer from either documented error body shape."""
    code, message, request_id = f"http.{status}", raw[:200].decode("utf-8", "replace"), None
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    if isinstance(body, dict):
        error = body.get("error")
        detail: dict[str, Any] = error if isinstance(error, dict) else body
        code = str(detail.get("code") or code)
        message = str(detail.get("message") or detail.get("reason") or message)
        request_id = detail.get("request_id")
    retry_after = parse_retry_after(headers.get("retry-after"))
    error_class = _error_class(status, code)
    return error_class(status, code, message, retry_after=retry_after, request_id=request_id)


def _items(body: Any, *names: str) -> list[dict[str, Any]]:
    """The list inside a listing response, whichever envelope the endpoint used."""
    if isinstance(body, dict):
        body = next((body[n] for n in names if isinstance(body.get(n), list)), body)
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    raise SautikitApiError(200, "response.malformed", "expected a list of items")


class SautikitClient:
    """A small synchronous client for the parts of the Sautikit API Mapokezi uses.

    Args:
        base_url: e.g. ``https://api.sautikit.com`` (no trailing slash needed).
        api_key: the bearer key.
        timeout: seconds per request (connect and each read).
        paths: endpoint spellings for the numbers API.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        paths: ApiPaths | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.paths = paths or ApiPaths()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SautikitClient:
        """Build a client from the environment (see the module docstring).

        Raises:
            ConfigError: no API key is configured, or the timeout is not a number.
        """
        env = os.environ if environ is None else environ
        timeout = config.env_float(
            env, "SAUTIKIT_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS, low=0.1, high=60.0
        )
        return cls(
            env.get("SAUTIKIT_API_URL") or DEFAULT_BASE_URL,
            config.require_secret("SAUTIKIT_API_KEY", env),
            timeout=timeout,
            paths=ApiPaths.from_env(env),
        )

    # -- calls ---------------------------------------------------------------------------

    def get_call(self, call_id: str) -> dict[str, Any]:
        """The call detail record for a call row UUID or ``HD_…`` session id (unwrapped).

        Raises:
            SautikitApiError: any failure; a 2xx without a call (e.g. 202 while the platform
                is still preparing it) has code ``call.pending``.
        """
        response = self.request("GET", f"/v1/calls/{urllib.parse.quote(call_id, safe='')}")
        body = response.body
        call = body.get("call") if isinstance(body, dict) and "call" in body else body
        if response.status != 200 or not isinstance(call, dict) or "status" not in call:
            if response.status != 200:
                hint = body.get("retry_after_seconds") if isinstance(body, dict) else None
                retry = response_retry_after(response) or _number(hint)
                raise SautikitApiError(
                    response.status, "call.pending", "call record not ready", retry_after=retry
                )
            raise SautikitApiError(200, "response.malformed", "response holds no call record")
        return call

    def get_recording(self, call_id: str) -> dict[str, Any]:
        """Where a call's recording can be fetched: ``GET /v1/calls/{id}/recording``.

        Returns ``{"state": "ready", "url": …}`` (the 302's presigned URL, valid about 15
        minutes; the redirect is not followed, so the API key never travels with it) or
        ``{"state": "pending", "retry_after_seconds": …}`` (202 while it is being prepared).

        Raises:
            SautikitApiError: 404/410 (no recording), or any other failure.
        """
        path = f"/v1/calls/{urllib.parse.quote(call_id, safe='')}/recording"
        request = urllib.request.Request(self.base_url + path, method="GET")
        request.add_header("Authorization", f"Bearer {self.api_key}")
        request.add_header("User-Agent", _USER_AGENT)
        try:
            with _no_redirects_opener().open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
                headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
            headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
            if exc.code in (301, 302, 303, 307, 308) and headers.get("location"):
                url = urllib.parse.urljoin(self.base_url + path, headers["location"])
                return {"state": "ready", "url": url}
            raise error_from_response(exc.code, raw, headers) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SautikitApiError(None, "transport.connection", f"GET {path}: {reason}") from None
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if status == 200 and isinstance(body, dict) and isinstance(body.get("url"), str):
            return {"state": "ready", "url": body["url"]}
        hint = body.get("retry_after_seconds") if isinstance(body, dict) else None
        retry = parse_retry_after(headers.get("retry-after")) or _number(hint)
        return {"state": "pending", "retry_after_seconds": retry}

    def hangup_call(self, call_id: str) -> None:
        """End a live call (``POST /v1/calls/{id}/hangup``; idempotent on the platform)."""
        self.request("POST", f"/v1/calls/{urllib.parse.quote(call_id, safe='')}/hangup", {})

    # -- live-call supervision (§1.10b) --------------------------------------------------

    def _supervision_path(self, call_id: str) -> str:
        return f"/v1/calls/{urllib.parse.quote(call_id, safe='')}/supervision"

    def start_supervision(
        self,
        call_id: str,
        supervisor: Mapping[str, Any],
        *,
        idempotency_key: str,
        mode: str = "barge",
        announce: str | None = None,
        label: str | None = None,
        notify_agent: bool | None = None,
    ) -> Supervision:
        """Ring a supervisor into the live call ``call_id`` (UUID or ``HD_…``).

        The same ``idempotency_key`` replays the same supervision, so a retry after a timeout
        never rings a second person.

        Raises:
            SupervisionInProgressError: the call already has a supervisor (409).
            ScopeDeniedError: the key lacks ``calls.supervise`` (403).
            NotFoundError: no such live call (404).
            ServerError, TransportError: try again later with the same key.
        """
        if mode not in SUPERVISION_MODES:
            raise ValueError(f"mode must be one of {SUPERVISION_MODES}, got {mode!r}")
        body: dict[str, Any] = {"mode": mode, "supervisor": dict(supervisor)}
        if announce is not None:
            body["announce"] = announce
        if label is not None:
            body["label"] = label[:64]
        if notify_agent is not None:
            body["notify_agent"] = notify_agent
        headers = {"Idempotency-Key": idempotency_key}
        response = self.request("POST", self._supervision_path(call_id), body, headers)
        return Supervision.from_api(response.body)

    def get_supervision(self, call_id: str) -> Supervision | None:
        """The call's supervision, or None when it has none (needs ``calls.read``)."""
        body = self.request("GET", self._supervision_path(call_id)).body
        if isinstance(body, dict) and "supervision" in body and body["supervision"] is None:
            return None
        return Supervision.from_api(body)

    def set_supervision_mode(self, call_id: str, mode: str) -> Supervision:
        """Switch listen / whisper / barge (409 :class:`ConflictError` while still ringing)."""
        if mode not in SUPERVISION_MODES:
            raise ValueError(f"mode must be one of {SUPERVISION_MODES}, got {mode!r}")
        response = self.request("PATCH", self._supervision_path(call_id), {"mode": mode})
        return Supervision.from_api(response.body)

    def stop_supervision(self, call_id: str) -> None:
        """Remove the supervisor (idempotent: a call without one is not an error)."""
        try:
            self.request("DELETE", self._supervision_path(call_id))
        except NotFoundError:
            return  # nothing to remove (or the call is already over): the same end state

    # -- numbers -------------------------------------------------------------------------

    def list_available(self, country: str = "KE", currency: str = "KES") -> list[dict[str, Any]]:
        """Numbers in the inventory that can be claimed."""
        query = urllib.parse.urlencode({"country": country, "currency": currency})
        body = self.request("GET", f"/v1/numbers/available?{query}").body
        return _items(body, "data", "numbers", "available")

    def list_numbers(self) -> list[dict[str, Any]]:
        """Numbers this workspace owns."""
        return _items(self.request("GET", "/v1/numbers").body, "numbers", "data")

    def claim_number(self, inventory_id: str) -> dict[str, Any]:
        """Claim an inventory number (by inventory id or E.164 number); returns the new number."""
        quoted = urllib.parse.quote(inventory_id, safe="")
        if "{id}" in self.paths.claim_path:
            path, body = self.paths.claim_path.replace("{id}", quoted), None
        else:
            field = "number" if inventory_id.startswith("+") else self.paths.claim_field
            path, body = self.paths.claim_path, {field: inventory_id}
        return _object(self.request("POST", path, body).body, "number")

    def route_number(
        self, number_id: str, url: str, *, events_url: str | None = None
    ) -> dict[str, Any]:
        """Point a number's voice webhook (and optionally its events) at our API."""
        body = {self.paths.route_field: url}
        if events_url:
            body[self.paths.events_field] = events_url
        path = self.paths.route_path.replace("{id}", urllib.parse.quote(number_id, safe=""))
        return _object(self.request(self.paths.route_method, path, body).body, "number")

    # -- transport -----------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> ApiResponse:
        """Send one request; return the 2xx response or raise :class:`SautikitApiError`."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        request.add_header("Authorization", f"Bearer {self.api_key}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", _USER_AGENT)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                status = response.status
                headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
            headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
            raise error_from_response(exc.code, raw, headers) from None
        except TimeoutError as exc:
            raise TransportError(None, "transport.timeout", f"{method} {path}: {exc}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise TransportError(None, "transport.timeout", f"{method} {path}") from None
            raise TransportError(
                None, "transport.connection", f"{method} {path}: {reason}"
            ) from None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError as exc:
            raise SautikitApiError(
                status, "response.malformed", f"{method} {path}: body is not JSON ({exc})"
            ) from None
        return ApiResponse(status, parsed, headers)


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hands a redirect back as an HTTPError instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@cache
def _no_redirects_opener() -> urllib.request.OpenerDirector:
    # Built on first use: its HTTPS context loads the CA store, tens of milliseconds that a
    # Lambda cold start which never calls the platform should not pay.
    return urllib.request.build_opener(_KeepRedirects)


def response_retry_after(response: ApiResponse) -> float | None:
    """The ``Retry-After`` of a successful response (202 pending), if any."""
    return parse_retry_after(response.headers.get("retry-after"))


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(0.0, float(value))
    return None


def _object(body: Any, name: str) -> dict[str, Any]:
    """Unwrap ``{"<name>": {...}}`` if the platform wrapped it; the object itself otherwise."""
    if isinstance(body, dict):
        inner = body.get(name)
        return inner if isinstance(inner, dict) else body
    raise SautikitApiError(200, "response.malformed", f"expected a {name} object")
