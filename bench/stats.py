"""Order statistics for benchmark samples: percentiles, summaries and medians over repeats.

Benchmarks on shared machines are noisy, so figures are reported as medians and percentiles of
many samples, and repeated measurements are combined by their median, never their best.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0..100) by linear interpolation between order statistics.

    Args:
        values: Samples in any order.
        q: Percentile, 0 (minimum) to 100 (maximum).

    Returns:
        The percentile, or None when there are no samples.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def summarize(values: Iterable[float], digits: int = 2) -> dict[str, Any]:
    """Count, p50, p90, p99, max and mean of `values`, rounded to `digits`.

    Returns:
        ``{"n": 0}`` plus None for every figure when there are no samples.
    """
    samples = [float(v) for v in values]
    if not samples:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    return {
        "n": len(samples),
        "p50": r(percentile(samples, 50)),
        "p90": r(percentile(samples, 90)),
        "p99": r(percentile(samples, 99)),
        "max": r(max(samples)),
        "mean": r(statistics.fmean(samples)),
    }


def median_of_runs(runs: Sequence[Mapping[str, Any]], digits: int = 3) -> dict[str, Any]:
    """Field-wise median over repeated runs of the same measurement.

    Numeric fields present in every run become their median; ``<field>_runs`` keeps every value
    so the spread stays visible. Nested mappings are combined recursively; other fields are taken
    from the first run.
    """
    if not runs:
        return {}
    combined: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run.get(key) for run in runs]
        if isinstance(first, Mapping) and all(isinstance(v, Mapping) for v in values):
            combined[key] = median_of_runs(values, digits)  # type: ignore[arg-type]
        elif _is_number(first) and all(_is_number(v) for v in values):
            middle = statistics.median(values)  # type: ignore[type-var]
            integral = all(isinstance(v, int) for v in values) and float(middle).is_integer()
            combined[key] = int(middle) if integral else round(middle, digits)
            if len(runs) > 1:
                combined[f"{key}_runs"] = [round(v, digits) for v in values]  # type: ignore[arg-type]
        else:
            combined[key] = first
    return combined


def ratio(numerator: float | None, denominator: float | None, digits: int = 2) -> float | None:
    """`numerator / denominator`, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, digits)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
