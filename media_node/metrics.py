"""Per-call metrics: what the call record stores and one CloudWatch EMF log line per call.

Fields (call record ``metrics``): ``time_to_first_audio_ms`` (media socket connected → first
frame released to the caller), ``reply_latency_ms`` (per turn: the model's speech_stopped → first
frame of the reply released) with ``reply_latency_p50_ms``/``reply_latency_max_ms``,
``barge_ins``, ``barge_in_stop_ms`` (speech_started received → killAudio sent), ``truncations``,
``frames_released``, ``frames_dropped``, ``underruns``, ``late_frames``, ``max_timing_error_ms``,
``chipmunk_warnings``, ``frames_in``, ``oversized_frames`` and ``usage`` (token totals summed over
``response.done`` events).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from media_node.audio import PacerStats

EMF_NAMESPACE = "Mapokezi"


@dataclass
class CallMetrics:
    """Counters and timings of one call, filled in as it runs."""

    time_to_first_audio_ms: float | None = None
    reply_latency_ms: list[float] = field(default_factory=list)
    barge_ins: int = 0
    barge_in_stop_ms: list[float] = field(default_factory=list)
    truncations: int = 0
    chipmunk_warnings: int = 0
    frames_in: int = 0
    oversized_frames: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    handoffs_connected: int = 0
    handoffs_failed: int = 0
    time_to_person_ms: float | None = None

    def add_usage(self, usage: dict[str, Any]) -> None:
        """Adds a response's token usage (nested ``*_details`` flattened with a prefix)."""
        for key, value in usage.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                self.usage[key] = self.usage.get(key, 0) + value
            elif isinstance(value, dict):
                prefix = key.removesuffix("_details").removesuffix("_token")
                for sub, number in value.items():
                    if isinstance(number, int) and not isinstance(number, bool):
                        name = f"{prefix}_{sub}"
                        self.usage[name] = self.usage.get(name, 0) + number

    def to_record(self, pacer: PacerStats) -> dict[str, Any]:
        """The ``metrics`` attribute of the call record."""
        latencies = [round(v, 1) for v in self.reply_latency_ms]
        record: dict[str, Any] = {
            "time_to_first_audio_ms": _round(self.time_to_first_audio_ms),
            "reply_latency_ms": latencies,
            "reply_latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "reply_latency_max_ms": max(latencies) if latencies else None,
            "barge_ins": self.barge_ins,
            "barge_in_stop_ms": [round(v, 2) for v in self.barge_in_stop_ms],
            "truncations": self.truncations,
            "frames_released": pacer.frames_released,
            "frames_dropped": pacer.frames_dropped,
            "underruns": pacer.underruns,
            "late_frames": pacer.late_frames,
            "max_timing_error_ms": round(pacer.max_timing_error_ms, 2),
            "chipmunk_warnings": self.chipmunk_warnings,
            "frames_in": self.frames_in,
            "oversized_frames": self.oversized_frames,
            "usage": dict(self.usage),
            "handoffs_connected": self.handoffs_connected,
            "handoffs_failed": self.handoffs_failed,
            "time_to_person_ms": _round(self.time_to_person_ms),
        }
        return record


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


_EMF_METRICS = (
    ("time_to_first_audio_ms", "TimeToFirstAudio", "Milliseconds"),
    ("reply_latency_ms", "ReplyLatency", "Milliseconds"),
    ("barge_in_stop_ms", "BargeInStop", "Milliseconds"),
    ("barge_ins", "BargeIns", "Count"),
    ("truncations", "Truncations", "Count"),
    ("underruns", "Underruns", "Count"),
    ("late_frames", "LateFrames", "Count"),
    ("chipmunk_warnings", "ChipmunkWarnings", "Count"),
    ("handoffs_connected", "HandoffsConnected", "Count"),
    ("handoffs_failed", "HandoffsFailed", "Count"),
    ("time_to_person_ms", "TimeToPersonMs", "Milliseconds"),
)


def emf_line(
    record: dict[str, Any], *, call_id: str, outcome: str, node_id: str, at: float | None = None
) -> str:
    """One CloudWatch Embedded Metric Format JSON line for a finished call.

    Metrics are dimensioned by ``Outcome``; list-valued metrics (per-turn latencies) are EMF
    value arrays. ``call_id`` and ``node_id`` ride along as searchable properties.
    """
    values: dict[str, Any] = {}
    definitions = []
    for key, name, unit in _EMF_METRICS:
        value = record.get(key)
        if value is None or value == []:
            continue
        values[name] = value
        definitions.append({"Name": name, "Unit": unit})
    values["Calls"] = 1
    definitions.append({"Name": "Calls", "Unit": "Count"})
    document = {
        "_aws": {
            "Timestamp": int((time.time() if at is None else at) * 1000),
            "CloudWatchMetrics": [
                {"Namespace": EMF_NAMESPACE, "Dimensions": [["Outcome"]], "Metrics": definitions}
            ],
        },
        "Outcome": outcome,
        "call_id": call_id,
        "node_id": node_id,
        "usage": record.get("usage", {}),
        **values,
    }
    return json.dumps(document, separators=(",", ":"))
