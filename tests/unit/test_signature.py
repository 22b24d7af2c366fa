"""X-Sautikit-Signature: both documented schemes, replay window, tampering, wrong secrets."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from serverless.signature import (
    SCHEME_PLAIN,
    SCHEME_TIMESTAMPED,
    SignatureError,
    sign_plain,
    sign_timestamped,
    verify_signature,
)

SECRET = "whsec_mapokezi_test"
BODY = b"CallSid=CA123&From=%2B254712000111&To=%2B254700000100"
T = 1767225600
# Known-good vectors, cross-checked with `openssl dgst -sha256 -hmac whsec_mapokezi_test`.
KNOWN_V1 = "e4b71fb85c9ec3d1bfc2a700aa17656b387204c269359eae3003e84cd7c081cc"
KNOWN_PLAIN = "88d9f5f48add107261a4e94d99949610938440462ef00ee7ef74e8e9144fc85a"


def test_known_vectors_verify() -> None:
    assert verify_signature(SECRET, f"t={T},v1={KNOWN_V1}", BODY, now=T) == SCHEME_TIMESTAMPED
    assert verify_signature(SECRET, KNOWN_PLAIN, BODY) == SCHEME_PLAIN


def test_signers_match_an_independent_hmac() -> None:
    body_dot_t = BODY + b"." + str(T).encode()
    expected_v1 = hmac.new(SECRET.encode(), body_dot_t, hashlib.sha256).hexdigest()
    assert sign_timestamped(SECRET, BODY, T) == f"t={T},v1={expected_v1}"
    assert sign_plain(SECRET, BODY) == hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert expected_v1 == KNOWN_V1


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 299, 300])
def test_timestamp_inside_the_window_is_accepted(skew: int) -> None:
    assert verify_signature(SECRET, sign_timestamped(SECRET, BODY, T), BODY, now=T + skew)


@pytest.mark.parametrize("skew", [-301, 301, 86400])
def test_replay_outside_the_window_is_rejected(skew: int) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_signature(SECRET, sign_timestamped(SECRET, BODY, T), BODY, now=T + skew)
    assert caught.value.reason == "stale"


@pytest.mark.parametrize("header", [f"t={T},v1={KNOWN_V1}", KNOWN_PLAIN])
def test_tampered_body_is_rejected(header: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_signature(SECRET, header, BODY + b"&Digits=9", now=T)
    assert caught.value.reason == "mismatch"


@pytest.mark.parametrize("header", [f"t={T},v1={KNOWN_V1}", KNOWN_PLAIN])
def test_wrong_secret_is_rejected(header: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_signature("whsec_other", header, BODY, now=T)
    assert caught.value.reason == "mismatch"


def test_timestamp_is_bound_to_the_signature() -> None:
    # Same digest, moved timestamp: the attacker cannot refresh an old signature.
    with pytest.raises(SignatureError) as caught:
        verify_signature(SECRET, f"t={T + 10},v1={KNOWN_V1}", BODY, now=T)
    assert caught.value.reason == "mismatch"


def test_any_of_several_v1_entries_may_match() -> None:
    header = f"t={T}, v1={'0' * 64}, v1={KNOWN_V1}"
    assert verify_signature(SECRET, header, BODY, now=T) == SCHEME_TIMESTAMPED


def test_plain_scheme_tolerates_prefix_and_upper_case() -> None:
    assert verify_signature(SECRET, "sha256=" + KNOWN_PLAIN.upper(), BODY) == SCHEME_PLAIN


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_signature(SECRET, header, BODY)
    assert caught.value.reason == "missing"


@pytest.mark.parametrize(
    "header",
    [
        "nonsense",
        "abc123",
        f"t=,v1={KNOWN_V1}",
        f"v1={KNOWN_V1}",
        f"t={T}",
        f"t=abc,v1={KNOWN_V1}",
        f"t={T},v1=zz",
        f"t={T},v1=é{KNOWN_V1[1:]}",
        "é" * 64,
        "x" * 5000,
    ],
)
def test_malformed_headers(header: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_signature(SECRET, header, BODY, now=T)
    assert caught.value.reason == "malformed"
