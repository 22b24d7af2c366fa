"""Text from call records made safe to print on the operator's terminal.

Caller ids, transcripts and metadata come from callers and the platform: an escape sequence in
one could move the cursor, rewrite earlier lines, retitle the window or (with bidi overrides)
make a number read backwards. Every such character is shown as a visible escape instead.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls and DEL, C1 controls, bidi embeddings/overrides/isolates and marks, and the
# Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_LINES = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_safe(value: Any, *, keep_newlines: bool = False) -> str:
    """``value`` as text with every control, C1 and bidi character shown as an escape.

    Args:
        value: anything; None becomes the empty string.
        keep_newlines: keep ``\\n`` (for multi-line blocks the CLI itself built).
    """
    text = "" if value is None else str(value)
    pattern = _UNSAFE_KEEPING_LINES if keep_newlines else _UNSAFE
    return pattern.sub(_escape, text)
