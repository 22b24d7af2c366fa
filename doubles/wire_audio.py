"""Reading streamed audio fast in the model doubles: strict base64, and compact messages.

Clients append audio many times a second, each time in the same compact JSON shape. Both model
doubles read such a message without a JSON parser when it is exactly that shape (valid base64
holds no quote, backslash or control character, so a parser would read the same payload), and
decode base64 with pybase64 (SIMD C) where it can.
"""

from __future__ import annotations

import binascii

try:
    from pybase64 import b64decode as _fast_decode
except ImportError:  # pragma: no cover - exercised where pybase64 is not installed
    _fast_decode = None

__all__ = ["compact_payload", "strict_b64decode"]


def strict_b64decode(text: str) -> bytes:
    """Decodes ``text`` as ``base64.b64decode(text, validate=True)`` does.

    pybase64 decodes what is plainly valid; what it refuses goes to the standard library's
    strict decoder, which decides (it also accepts padding beyond the needed ``=``).

    Raises:
        ValueError: not base64 (``binascii.Error`` is one).
    """
    if _fast_decode is not None:
        try:
            return _fast_decode(text, validate=True)
        except ValueError:
            pass  # the strict decoder below decides
    return binascii.a2b_base64(text, strict_mode=True)


def compact_payload(text: str, head: str, tail: str) -> str | None:
    """What stands between ``head`` and ``tail`` when ``text`` is exactly ``head…tail``."""
    if len(text) < len(head) + len(tail) or not (text.startswith(head) and text.endswith(tail)):
        return None
    return text[len(head) : len(text) - len(tail)]
