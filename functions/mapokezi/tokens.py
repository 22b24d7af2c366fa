"""Stream tokens: the only module that knows their format.

The voice webhook mints a token bound to one call and puts it in the ``<Stream url>``; the media
node verifies it before the WebSocket upgrade and then claims it once in the call record
(:func:`mapokezi.store.claim_stream_token`), which makes it single use.

Format: ``v1.<payload>.<signature>``, both parts unpadded base64url. The payload is compact JSON
``{"c": call_id, "p": profile_number, "e": expiry_unix, "n": nonce}``; the signature is
HMAC-SHA256 over ``"v1." + payload`` with ``STREAM_TOKEN_SECRET``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

VERSION = "v1"
DEFAULT_TTL_SECONDS = 120
#: Tolerated clock difference between the Lambda that minted and the node that checks.
CLOCK_SKEW_SECONDS = 5
_MAX_TOKEN_LENGTH = 1024


class TokenError(ValueError):
    """A stream token is missing, malformed, forged or expired; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class StreamClaims:
    """What a valid token says."""

    call_id: str
    profile_number: str
    expires_at: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, signed_part: str) -> str:
    digest = hmac.new(secret.encode(), signed_part.encode("ascii"), hashlib.sha256).digest()
    return _b64(digest)


def new_nonce() -> str:
    """A fresh per-call nonce (16 hex characters)."""
    return secrets.token_hex(8)


def mint_stream_token(
    secret: str,
    call_id: str,
    profile_number: str,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
    nonce: str | None = None,
    expires_at: int | None = None,
) -> tuple[str, StreamClaims]:
    """Mint a token for ``call_id``; returns the token and the claims it carries.

    Minting is deterministic: the same secret, call, number, nonce and expiry give the same
    token, which is how a retried first answer repeats the token of the first one. Without
    ``nonce`` a fresh one is drawn; without ``expires_at`` the token lives ``ttl_seconds``.
    """
    if not secret:
        raise ValueError("a stream token secret is required")
    issued = int(time.time() if now is None else now)
    claims = StreamClaims(
        call_id,
        profile_number,
        issued + ttl_seconds if expires_at is None else int(expires_at),
        nonce or new_nonce(),
    )
    payload = {"c": claims.call_id, "p": claims.profile_number, "e": claims.expires_at}
    payload["n"] = claims.nonce
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signed_part = f"{VERSION}.{body}"
    return f"{signed_part}.{_sign(secret, signed_part)}", claims


def verify_stream_token(
    secret: str, token: str | None, *, now: float | None = None
) -> StreamClaims:
    """Check a token's signature and expiry and return its claims.

    Raises:
        TokenError: with ``reason`` one of ``missing``, ``malformed``, ``bad_signature``
            (forged, or minted with another secret) or ``expired``.
    """
    if not token:
        raise TokenError("missing", "no stream token")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise TokenError("malformed", "token too long")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise TokenError("malformed", "expected v1.<payload>.<signature>")
    signed_part = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(secret, signed_part), parts[2]):
        raise TokenError("bad_signature", "signature does not match")
    try:
        payload = json.loads(_unb64(parts[1]))
        claims = StreamClaims(
            call_id=str(payload["c"]),
            profile_number=str(payload["p"]),
            expires_at=int(payload["e"]),
            nonce=str(payload["n"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise TokenError("malformed", f"unreadable payload ({exc})") from None
    current = time.time() if now is None else now
    if current > claims.expires_at + CLOCK_SKEW_SECONDS:
        raise TokenError("expired", f"expired {int(current - claims.expires_at)} s ago")
    return claims
