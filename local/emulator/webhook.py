"""The HTTP requests Sautikit makes for a call: voice webhooks, status callbacks, signing.

Field spellings differ between Sautikit's docs and what a production integrator observed, so
the body is built in a selectable dialect:

- ``documented``: ``CallId``, ``From``, ``To`` (use-case pages);
- ``field``: ``sessionId``, ``callerNumber``, ``destinationNumber``, ``direction`` (observed);
- ``both`` (default): the union, so a webhook may pick whichever it understands.

Lifecycle POSTs always carry ``callSessionState`` (the only spelling seen). Signing follows
either scheme Sautikit documents: ``v1`` sends ``t=<unix>,v1=<hex>`` with the HMAC-SHA256 over
``body + "." + t``; ``hex`` sends the plain hex HMAC-SHA256 of the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

DIALECTS = ("documented", "field", "both")
SIGNATURE_SCHEMES = ("v1", "hex")
ENCODINGS = ("form", "json")


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urlopen(request: urllib.request.Request, timeout: float) -> Any:
    """``urllib.request.urlopen``, but never through a proxy for a loopback host."""
    host = urlsplit(request.full_url).hostname or ""
    if host == "localhost" or host.startswith("127.") or host == "::1":
        return _DIRECT.open(request, timeout=timeout)
    return urllib.request.urlopen(request, timeout=timeout)


@dataclass(frozen=True)
class CallIdentity:
    """Who is calling whom, with both of Sautikit's identifiers for the call."""

    from_number: str
    to_number: str
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    session_id: str = field(default_factory=lambda: "HD_" + secrets.token_hex(6))
    direction: str = "inbound"


def voice_fields(
    call: CallIdentity,
    dialect: str = "both",
    state: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The voice-webhook body for one POST, in the chosen dialect."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}")
    fields: dict[str, str] = {}
    if dialect in ("documented", "both"):
        fields |= {"CallId": call.call_id, "From": call.from_number, "To": call.to_number}
    if dialect in ("field", "both"):
        fields |= {
            "sessionId": call.session_id,
            "callerNumber": call.from_number,
            "destinationNumber": call.to_number,
            "direction": call.direction,
        }
    if state:
        fields["callSessionState"] = state
    return fields | (extra or {})


def encode_body(fields: dict[str, str], encoding: str = "form") -> tuple[bytes, str]:
    """Serialise a body; returns ``(bytes, content_type)``."""
    if encoding == "form":
        return urlencode(fields).encode(), "application/x-www-form-urlencoded"
    if encoding == "json":
        return json.dumps(fields).encode(), "application/json"
    raise ValueError(f"encoding must be one of {ENCODINGS}")


def sign(body: bytes, secret: str, scheme: str = "v1", timestamp: int | None = None) -> str:
    """The ``X-Sautikit-Signature`` header value for ``body``."""
    if scheme == "v1":
        t = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(secret.encode(), body + b"." + t.encode(), hashlib.sha256).hexdigest()
        return f"t={t},v1={digest}"
    if scheme == "hex":
        return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    raise ValueError(f"signature scheme must be one of {SIGNATURE_SCHEMES}")


@dataclass
class HttpExchange:
    """One request the emulator made and what came back."""

    label: str
    url: str
    fields: dict[str, str]
    status: int | None = None
    content_type: str | None = None
    body: str = ""
    elapsed_ms: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer arrived."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Signer:
    """How bodies are encoded and signed."""

    encoding: str = "form"
    secret: str | None = None
    scheme: str = "v1"


async def post_fields(
    label: str, url: str, fields: dict[str, str], signer: Signer, http_timeout: float = 10.0
) -> HttpExchange:
    """POST a body like Sautikit does; never raises for HTTP or network failures."""
    body, content_type = encode_body(fields, signer.encoding)
    headers = {"Content-Type": content_type, "User-Agent": "sautikit-emulator"}
    if signer.secret:
        headers["X-Sautikit-Signature"] = sign(body, signer.secret, signer.scheme)
    exchange = HttpExchange(label, url, fields)
    started = time.monotonic()

    def send() -> None:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urlopen(request, http_timeout) as response:
                exchange.status = response.status
                exchange.content_type = response.headers.get("Content-Type")
                exchange.body = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            exchange.status = err.code
            exchange.content_type = err.headers.get("Content-Type")
            exchange.body = err.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"

    await asyncio.to_thread(send)
    exchange.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    return exchange


async def request_json(
    method: str, url: str, body: dict | None = None, http_timeout: float = 5.0
) -> tuple[int | None, object]:
    """Send a JSON request; returns ``(status, parsed body or error text)``, never raises."""

    def send() -> tuple[int | None, object]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urlopen(request, http_timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    return await asyncio.to_thread(send)
