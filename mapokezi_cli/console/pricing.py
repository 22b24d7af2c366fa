"""The model's estimated cost of a call, from the token usage the media node records.

Prices are configuration, in US dollars per million tokens, each from an environment variable
(or the console's ``--price NAME=VALUE``) with the documented default: OpenAI's published
``gpt-realtime`` prices.

| usage key             | variable                         | default |
|-----------------------|----------------------------------|---------|
| ``input_text_tokens`` | ``MAPOKEZI_PRICE_TEXT_IN``       | 4.00    |
| ``input_audio_tokens``| ``MAPOKEZI_PRICE_AUDIO_IN``      | 32.00   |
| ``input_cached_tokens``| ``MAPOKEZI_PRICE_CACHED_IN``    | 0.40    |
| ``output_text_tokens``| ``MAPOKEZI_PRICE_TEXT_OUT``      | 16.00   |
| ``output_audio_tokens``| ``MAPOKEZI_PRICE_AUDIO_OUT``    | 64.00   |

Cached input tokens are part of the input totals, so they are billed at the cached price and
taken off the audio input (where the Realtime API caches them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

_VARIABLES = {
    "text_in": "MAPOKEZI_PRICE_TEXT_IN",
    "audio_in": "MAPOKEZI_PRICE_AUDIO_IN",
    "cached_in": "MAPOKEZI_PRICE_CACHED_IN",
    "text_out": "MAPOKEZI_PRICE_TEXT_OUT",
    "audio_out": "MAPOKEZI_PRICE_AUDIO_OUT",
}


@dataclass(frozen=True)
class ModelPrices:
    """US dollars per million tokens."""

    text_in: float = 4.0
    audio_in: float = 32.0
    cached_in: float = 0.4
    text_out: float = 16.0
    audio_out: float = 64.0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
    ) -> ModelPrices:
        """Defaults, then the variables, then ``overrides`` (``name -> value``, from flags).

        Raises:
            ValueError: a price is not a non-negative number, or a name is unknown.
        """
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name, variable in _VARIABLES.items():
            if env.get(variable):
                values[name] = _price(variable, env[variable])
        for name, raw in (overrides or {}).items():
            if name not in _VARIABLES:
                raise ValueError(f"unknown price {name!r} (known: {', '.join(_VARIABLES)})")
            values[name] = _price(name, raw)
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        """Name -> price."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _price(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a number") from None
    if not value >= 0:
        raise ValueError(f"{name}: a price must not be negative")
    return value


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def model_cost_usd(usage: Mapping[str, Any], prices: ModelPrices) -> float | None:
    """Estimated model cost of a call in US dollars; None when no usage was recorded."""
    if not usage:
        return None
    text_in = _tokens(usage, "input_text_tokens")
    audio_in = _tokens(usage, "input_audio_tokens")
    cached = _tokens(usage, "input_cached_tokens")
    if not text_in and not audio_in:  # only totals recorded: count them as audio
        audio_in = _tokens(usage, "input_tokens")
    cached = min(cached, audio_in + text_in)
    audio_in_billed = max(0, audio_in - cached)
    text_in_billed = max(0, text_in - max(0, cached - audio_in))
    text_out = _tokens(usage, "output_text_tokens")
    audio_out = _tokens(usage, "output_audio_tokens")
    if not text_out and not audio_out:
        audio_out = _tokens(usage, "output_tokens")
    total = (
        text_in_billed * prices.text_in
        + audio_in_billed * prices.audio_in
        + cached * prices.cached_in
        + text_out * prices.text_out
        + audio_out * prices.audio_out
    )
    return total / 1_000_000
