"""Base64 of PCM audio for the models' JSON wire protocols, in SIMD C when pybase64 is there.

Every uplink append carries its audio as base64 text and every audio delta arrives as base64:
per call that is 25 encodes and about 8 decodes of 2–12 KB each per second. The standard
library's codecs cost about 4 µs per 40 ms append and 50 µs per 120 ms delta (24 kHz);
pybase64's are 8 to 40 times faster and produce the same text and bytes. pybase64 is a pinned
dependency of the node; without it (it is only an optimisation) the standard library is used.

Decoding is strict: characters outside the standard alphabet, whitespace and missing padding
raise `binascii.Error` (a `ValueError`). It accepts exactly what ``base64.b64decode(text,
validate=True)`` accepts: text pybase64 refuses (it also refuses padding beyond the needed
``=``, which the standard library ignores) is decided by the standard library's decoder.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable

try:
    import pybase64

    HAS_PYBASE64 = True
except ImportError:  # pragma: no cover - exercised where pybase64 is not installed
    HAS_PYBASE64 = False


def _encode_stdlib(pcm: bytes) -> str:
    return binascii.b2a_base64(pcm, newline=False).decode("ascii")


def _decode_stdlib(text: str | bytes) -> bytes:
    return binascii.a2b_base64(text, strict_mode=True)


def _decode_pybase64(text: str | bytes) -> bytes:
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:
        return binascii.a2b_base64(text, strict_mode=True)  # raises on what is truly invalid


# encode(pcm: bytes) -> str: base64 text (standard alphabet, padded).
# decode(text: str | bytes) -> bytes: strict decoding, raising binascii.Error on bad input.
encode: Callable[[bytes], str]
decode: Callable[[str | bytes], bytes]
if HAS_PYBASE64:
    encode = pybase64.b64encode_as_string
    decode = _decode_pybase64
    BACKEND = "pybase64"
else:  # pragma: no cover - exercised where pybase64 is not installed
    encode = _encode_stdlib
    decode = _decode_stdlib
    BACKEND = "stdlib"

ENCODERS = {"stdlib": _encode_stdlib, **({"pybase64": encode} if HAS_PYBASE64 else {})}
DECODERS = {"stdlib": _decode_stdlib, **({"pybase64": _decode_pybase64} if HAS_PYBASE64 else {})}
"""Every available backend by name, for tests and benchmarks that compare them."""
