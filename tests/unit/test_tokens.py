"""Stream tokens: round trip, expiry with clock skew, forgery, tampering and malformed input."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from mapokezi.tokens import (
    CLOCK_SKEW_SECONDS,
    TokenError,
    mint_stream_token,
    verify_stream_token,
)

SECRET = "s3cret-for-tests"
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: bytes, secret: str = SECRET) -> str:
    """A correctly signed v1 token around an arbitrary payload."""
    part = "v1." + b64(payload)
    digest = hmac.new(secret.encode(), part.encode(), hashlib.sha256).digest()
    return f"{part}.{b64(digest)}"


def reason_of(token: str | None, *, secret: str = SECRET, now: float = NOW) -> str:
    with pytest.raises(TokenError) as exc:
        verify_stream_token(secret, token, now=now)
    return exc.value.reason


def test_round_trip() -> None:
    token, claims = mint_stream_token(SECRET, "HD_abc", "+254700000100", ttl_seconds=60, now=NOW)
    assert token.startswith("v1.") and token.count(".") == 2
    assert verify_stream_token(SECRET, token, now=NOW + 30) == claims
    assert (claims.call_id, claims.profile_number, claims.expires_at) == (
        "HD_abc",
        "+254700000100",
        int(NOW) + 60,
    )


def test_each_token_has_its_own_nonce() -> None:
    first = mint_stream_token(SECRET, "c", "+254700000100", now=NOW)[1]
    second = mint_stream_token(SECRET, "c", "+254700000100", now=NOW)[1]
    assert first.nonce != second.nonce


def test_expiry_allows_only_the_clock_skew() -> None:
    token, claims = mint_stream_token(SECRET, "c", "+254700000100", ttl_seconds=60, now=NOW)
    assert verify_stream_token(SECRET, token, now=claims.expires_at + CLOCK_SKEW_SECONDS)
    assert reason_of(token, now=claims.expires_at + CLOCK_SKEW_SECONDS + 1) == "expired"


def test_forged_and_tampered_tokens() -> None:
    token, _ = mint_stream_token(SECRET, "HD_abc", "+254700000100", now=NOW)
    assert reason_of(token, secret="another-secret") == "bad_signature"
    version, payload, signature = token.split(".")
    forged = signed(b'{"c":"HD_other","p":"+254700000100","e":1800000120,"n":"x"}', "guess")
    assert reason_of(forged) == "bad_signature"
    swapped = f"{version}.{forged.split('.')[1]}.{signature}"
    assert reason_of(swapped) == "bad_signature"
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert reason_of(f"{version}.{payload}.{flipped}") == "bad_signature"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1.abc", "malformed"),
        ("v2.abc.def", "malformed"),
        ("v1.a.b.c", "malformed"),
        ("v1." + "a" * 2000 + ".sig", "malformed"),
        (signed(b"not json"), "malformed"),
        (signed(b'{"c":"HD_abc","p":"+254700000100"}'), "malformed"),
        (signed(b'{"c":"x","p":"y","e":"soon","n":"z"}'), "malformed"),
    ],
)
def test_malformed_tokens(token: str | None, reason: str) -> None:
    assert reason_of(token) == reason


def test_minting_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret is required"):
        mint_stream_token("", "c", "+254700000100")
