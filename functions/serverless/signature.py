"""Verification of ``X-Sautikit-Signature`` on incoming webhooks (sans I/O).

Sautikit documents two incompatible schemes, so both are accepted:

- timestamped: ``t=<unix>,v1=<hex>`` where ``v1 = HMAC-SHA256(secret, raw_body + "." + t)``;
  the timestamp must be within :data:`REPLAY_WINDOW_SECONDS` of now. Several ``v1=`` entries
  (a secret rotation) are allowed; any one matching is enough.
- plain: the header is the hex HMAC-SHA256 of the raw body (an optional ``sha256=`` prefix is
  tolerated). It carries no timestamp, so it cannot be protected against replays here.

Always verify over the raw bytes as received: re-encoding a parsed form changes them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

REPLAY_WINDOW_SECONDS = 300
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_MAX_HEADER_LENGTH = 2048

SCHEME_TIMESTAMPED = "v1"
SCHEME_PLAIN = "hex"


class SignatureError(ValueError):
    """The signature is missing or wrong; ``reason`` is a short, loggable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_timestamped(secret: str, body: bytes, timestamp: int) -> str:
    """Header value of the timestamped scheme: ``t=<timestamp>,v1=<hex>``."""
    digest = _hmac_hex(secret, body + b"." + str(timestamp).encode("ascii"))
    return f"t={timestamp},v1={digest}"


def sign_plain(secret: str, body: bytes) -> str:
    """Header value of the plain scheme: hex HMAC-SHA256 of the body."""
    return _hmac_hex(secret, body)


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    window_seconds: int = REPLAY_WINDOW_SECONDS,
) -> str:
    """Check ``header`` against ``body``; return the scheme that matched.

    Args:
        secret: the webhook signing secret (used as UTF-8 bytes, ``whsec_`` prefix included).
        header: the ``X-Sautikit-Signature`` value, or None when the header is absent.
        body: the raw request body, exactly as received.
        now: current unix time (default: the clock).
        window_seconds: largest accepted distance between ``t`` and now.

    Returns:
        :data:`SCHEME_TIMESTAMPED` or :data:`SCHEME_PLAIN`.

    Raises:
        SignatureError: ``reason`` is ``missing``, ``malformed``, ``stale`` (outside the replay
            window) or ``mismatch``.
    """
    if not header or not header.strip():
        raise SignatureError("missing", "no X-Sautikit-Signature header")
    header = header.strip()
    if len(header) > _MAX_HEADER_LENGTH:
        raise SignatureError("malformed", "signature header too long")
    if "=" in header and not header.lower().startswith("sha256="):
        return _verify_timestamped(secret, header, body, now, window_seconds)
    candidate = header[7:] if header.lower().startswith("sha256=") else header
    if not _HEX_DIGEST.match(candidate):
        raise SignatureError("malformed", "expected t=<unix>,v1=<hex> or a hex HMAC-SHA256")
    if not hmac.compare_digest(sign_plain(secret, body), candidate.lower()):
        raise SignatureError("mismatch", "signature does not match the body")
    return SCHEME_PLAIN


def _verify_timestamped(
    secret: str, header: str, body: bytes, now: float | None, window_seconds: int
) -> str:
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamp = value.strip()
        elif name == "v1":
            candidates.append(value.strip().lower())
    well_formed = all(_HEX_DIGEST.match(c) for c in candidates)
    if timestamp is None or not timestamp.isascii() or not timestamp.isdigit():
        raise SignatureError("malformed", "expected t=<unix>,v1=<hex>")
    if not candidates or not well_formed:
        raise SignatureError("malformed", "expected t=<unix>,v1=<hex>")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > window_seconds:
        raise SignatureError(
            "stale", f"timestamp {timestamp} is outside the {window_seconds} s replay window"
        )
    expected = _hmac_hex(secret, body + b"." + timestamp.encode("ascii"))
    # Compare against every candidate so timing does not reveal which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("mismatch", "signature does not match the body and timestamp")
    return SCHEME_TIMESTAMPED
