"""Limits on what a webhook sender can make us parse and store (sans I/O).

Everything a webhook carries is attacker-controlled until its signature is checked, and even a
signed body may hold fields the call table cannot take: DynamoDB caps an item at 400 KB, a
partition key at 2 KB and nesting at 32 levels, rejects numbers beyond 38 digits, infinities
and strings that are not valid UTF-8 (a JSON ``"\\ud800"`` escape decodes to one). The stdlib
JSON parser has no depth limit of its own. So bodies are bounded before they are parsed, JSON
nesting is checked before ``json.loads`` runs, and the copy of a delivery kept on the record is
reduced to a small, storable mapping.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

#: Largest body accepted (Sautikit's webhooks are a few hundred bytes).
MAX_BODY_BYTES = 1024 * 1024
#: Deepest JSON nesting accepted; DynamoDB itself stops at 32.
MAX_JSON_DEPTH = 16
#: Most form fields parsed from one body.
MAX_FORM_FIELDS = 1000

#: Bounds on the copy of a delivery stored with each event item.
MAX_STORED_FIELDS = 40
MAX_STORED_KEY = 64
MAX_STORED_TEXT = 512
MAX_STORED_ITEMS = 16
MAX_STORED_DEPTH = 3
MAX_STORED_BYTES = 8 * 1024
#: Marker key added when the stored copy lost something.
TRUNCATED = "_truncated"

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_LARGEST_NUMBER = 10**38
_SURROGATES = re.compile("[\ud800-\udfff]")


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` nests arrays/objects deeper than ``limit`` (strings are skipped)."""
    depth = 0
    for match in _BRACKETS.finditer(_STRINGS.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def clean_text(value: str, limit: int) -> str:
    """``value`` as valid UTF-8 text of at most ``limit`` characters (lone surrogates → U+FFFD)."""
    return _SURROGATES.sub("\ufffd", value[:limit])


def _storable_number(value: int | float) -> int | float | str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and abs(value) >= _LARGEST_NUMBER:
        return clean_text(str(value), MAX_STORED_TEXT)
    return value


def _bounded(value: Any, depth: int) -> tuple[Any, bool]:
    """A storable copy of ``value`` and whether anything was cut."""
    if value is None or isinstance(value, bool):
        return value, False
    if isinstance(value, int | float):
        stored = _storable_number(value)
        return stored, stored is not value
    if isinstance(value, str):
        text = clean_text(value, MAX_STORED_TEXT)
        return text, len(value) > MAX_STORED_TEXT
    if depth >= MAX_STORED_DEPTH:
        return "…", True
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        cut = len(value) > MAX_STORED_ITEMS
        for key, inner in list(value.items())[:MAX_STORED_ITEMS]:
            name = clean_text(str(key), MAX_STORED_KEY)
            if not name:
                cut = True
                continue
            out[name], inner_cut = _bounded(inner, depth + 1)
            cut |= inner_cut or len(str(key)) > MAX_STORED_KEY
        return out, cut
    if isinstance(value, list | tuple):
        items = [_bounded(v, depth + 1) for v in value[:MAX_STORED_ITEMS]]
        cut = len(value) > MAX_STORED_ITEMS or any(c for _, c in items)
        return [v for v, _ in items], cut
    return clean_text(str(value), MAX_STORED_TEXT), True


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def storable_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a delivery's fields that always fits on an event item.

    At most :data:`MAX_STORED_FIELDS` fields, names and texts cut, nesting flattened below
    :data:`MAX_STORED_DEPTH`, numbers DynamoDB cannot hold kept as text, and fields dropped
    (largest first) until the copy is under :data:`MAX_STORED_BYTES`. ``_truncated: true``
    says when anything was lost.
    """
    copy, cut = _bounded(dict(list(fields.items())[:MAX_STORED_FIELDS]), 0)
    cut |= len(fields) > MAX_STORED_FIELDS
    if _size(copy) > MAX_STORED_BYTES:
        cut = True
        by_size = sorted(copy, key=lambda k: _size(copy[k]), reverse=True)
        for name in by_size:
            del copy[name]
            if _size(copy) <= MAX_STORED_BYTES:
                break
    if cut:
        copy[TRUNCATED] = True
    return copy
