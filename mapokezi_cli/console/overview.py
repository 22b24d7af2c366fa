"""The overview's figures, computed from call records (pure: records in, figures out)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from mapokezi.outcomes import CallOutcome, call_outcome
from mapokezi_cli.console.pricing import ModelPrices, model_cost_usd

#: Outcomes where the receptionist finished the call without a person.
_WITHOUT_PERSON = {CallOutcome.HANDLED, CallOutcome.MESSAGE_TAKEN}
#: Outcomes of calls where a transfer was asked for.
_TRANSFER_ASKED = {
    CallOutcome.TRANSFERRED,
    CallOutcome.RESCUED,
    CallOutcome.STRANDED,
}
_TRANSFER_OK = {CallOutcome.TRANSFERRED, CallOutcome.RESCUED}


@dataclass
class DayFigures:
    """One day's figures."""

    day: str
    calls: int = 0
    handled_share: float | None = None
    median_first_audio_ms: float | None = None
    median_reply_latency_ms: float | None = None
    cost_minor: float = 0.0


@dataclass
class Overview:
    """Figures over the calls read."""

    calls: int = 0
    handled_share: float | None = None
    transfer_success: float | None = None
    median_first_audio_ms: float | None = None
    median_reply_latency_ms: float | None = None
    cost_minor: float = 0.0
    currency: str = "KES"
    model_cost_usd: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    days: list[DayFigures] = field(default_factory=list)
    truncated: bool = False


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _numbers(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def summarise(
    calls: Sequence[Mapping[str, Any]],
    prices: ModelPrices,
    *,
    first_day: date | None = None,
    last_day: date | None = None,
    truncated: bool = False,
) -> Overview:
    """Per-day and overall figures of ``calls`` (call records, any order).

    Days from ``first_day`` to ``last_day`` (UTC) all get a figure, a day without calls too.
    """
    by_day: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for call in calls:
        by_day[str(call.get("started_at", ""))[:10]].append(call)
    if first_day and last_day:
        span = (last_day - first_day).days
        for offset in range(span + 1):
            by_day.setdefault((first_day + timedelta(days=offset)).isoformat(), [])
    overview = _figures(calls, prices)
    overview.truncated = truncated
    for day in sorted(by_day):
        figures = _figures(by_day[day], prices)
        overview.days.append(
            DayFigures(
                day=day,
                calls=figures.calls,
                handled_share=figures.handled_share,
                median_first_audio_ms=figures.median_first_audio_ms,
                median_reply_latency_ms=figures.median_reply_latency_ms,
                cost_minor=figures.cost_minor,
            )
        )
    return overview


def _figures(calls: Sequence[Mapping[str, Any]], prices: ModelPrices) -> Overview:
    outcomes = Counter(call_outcome(c) for c in calls)
    finished = sum(n for o, n in outcomes.items() if o != CallOutcome.ACTIVE)
    asked = sum(outcomes[o] for o in _TRANSFER_ASKED) + sum(
        1
        for c in calls
        if call_outcome(c) == CallOutcome.FAILED and (c.get("handoff") or {}).get("target")
    )
    metrics = [c.get("metrics") or {} for c in calls]
    first_audio = _numbers(m.get("time_to_first_audio_ms") for m in metrics)
    replies = _numbers(v for m in metrics for v in (m.get("reply_latency_ms") or []))
    cdrs = [c.get("cdr") or {} for c in calls]
    currency = next((str(c["cost_currency"]) for c in cdrs if c.get("cost_currency")), "KES")
    model = [model_cost_usd(m.get("usage") or {}, prices) for m in metrics]
    return Overview(
        calls=len(calls),
        handled_share=_share(sum(outcomes[o] for o in _WITHOUT_PERSON), finished),
        transfer_success=_share(sum(outcomes[o] for o in _TRANSFER_OK), asked),
        median_first_audio_ms=_median(first_audio),
        median_reply_latency_ms=_median(replies),
        cost_minor=sum(_numbers(c.get("cost_minor") for c in cdrs)),
        currency=currency,
        model_cost_usd=sum(v for v in model if v is not None),
        outcomes={str(o.value): n for o, n in outcomes.items()},
    )
