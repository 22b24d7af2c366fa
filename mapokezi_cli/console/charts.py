"""Charts as SVG, drawn on the server: a bar chart per day and one call's timeline.

Pure functions: data in, an SVG string out. Every label goes through ``html.escape``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

BAR_COLOUR = "#2f6f9f"


def bar_chart(
    title: str,
    points: Sequence[tuple[str, float | None]],
    *,
    unit: str = "",
    width: int = 560,
    height: int = 180,
    colour: str = BAR_COLOUR,
) -> str:
    """A labelled bar chart of ``(label, value)`` points (e.g. one bar per day).

    A None value keeps its slot on the axis but draws no bar (a day with nothing to measure).
    """
    top, bottom, left = 24, 36, 44
    plot_h = height - top - bottom
    plot_w = width - left - 8
    peak = max((v for _, v in points if v is not None), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} '
        f'{height}" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="4" y="14" class="chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="axis">'
        f"{escape(_number(peak))}{escape(unit)}</text>",
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="axis">0</text>',
    ]
    if all(v is None for _, v in points):
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            'class="axis">no data</text>'
        )
    step = plot_w / max(1, len(points))
    bar_w = max(2.0, step * 0.7)
    label_every = max(1, len(points) // 8)
    for i, (label, value) in enumerate(points):
        x = left + i * step + (step - bar_w) / 2
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 20}" text-anchor="middle" '
                f'class="axis">{escape(label)}</text>'
            )
        if value is None:
            continue
        h = plot_h * (value / peak)
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: '
            f"{escape(_number(value))}{escape(unit)}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2f}"


def _iso_ms(start: str | None, moment: Any) -> float | None:
    """Milliseconds from ISO ``start`` to ISO ``moment``; None when either is missing."""
    if not start or not isinstance(moment, str):
        return None
    try:
        begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
        at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (at - begin).total_seconds() * 1000


def handoff_changes(handoff: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The handoff's state changes (``changes``: ``state``, ``at``), oldest first."""
    changes = handoff.get("changes") or handoff.get("states") or []
    return [c for c in changes if isinstance(c, Mapping)] if isinstance(changes, list) else []


#: Spoken words per millisecond, to give a caller turn (which records only its start) a length.
_WORDS_PER_MS = 2.5 / 1000
LANES = ("caller", "receptionist", "handoff")


def timeline_marks(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the timeline shows, on one clock (ms since the call started).

    Returns spans per lane (``caller``, ``receptionist``: ``start``, ``end``, ``label``,
    ``faded_end`` for generated audio the caller never heard), ``barge_ins`` (ms) and
    ``handoff`` points (``at``, ``label``), and ``end`` (the axis length).
    """
    turns = sorted(record.get("transcript") or [], key=lambda t: t.get("at_ms") or 0)
    caller: list[dict[str, Any]] = []
    agent: list[dict[str, Any]] = []
    barge_ins: list[float] = []
    for i, turn in enumerate(turns):
        start = float(turn.get("at_ms") or 0)
        text = str(turn.get("text") or "")
        if turn.get("role") == "caller":
            following = [float(t.get("at_ms") or 0) for t in turns[i + 1 :]]
            length = max(600.0, len(text.split()) / _WORDS_PER_MS)
            end = min([start + length, *[f for f in following if f > start]])
            caller.append({"start": start, "end": end, "label": text})
            continue
        heard = float(turn.get("heard_ms") or turn.get("generated_ms") or 1500)
        generated = float(turn.get("generated_ms") or heard)
        agent.append(
            {
                "start": start,
                "end": start + heard,
                "faded_end": start + max(heard, generated),
                "label": text,
            }
        )
        if turn.get("interrupted"):
            barge_ins.append(start + heard)
    started = record.get("started_at")
    handoff = record.get("handoff") or {}
    points = []
    for key, value in handoff.items():
        if key.endswith("_at"):
            at = _iso_ms(started, value)
            if at is not None and at >= 0:
                points.append({"at": at, "label": key.removesuffix("_at").replace("_", " ")})
    for change in handoff_changes(handoff):
        at = _iso_ms(started, change.get("at"))
        point = {"at": at, "label": str(change.get("state", "state"))}
        if at is not None and at >= 0 and point not in points:
            points.append(point)
    ended = _iso_ms(started, record.get("ended_at"))
    ends = [s["faded_end"] for s in agent] + [s["end"] for s in caller]
    ends += [p["at"] for p in points] + ([ended] if ended else [])
    return {
        "caller": caller,
        "receptionist": agent,
        "barge_ins": barge_ins,
        "handoff": sorted(points, key=lambda p: p["at"]),
        "end": max([1000.0, *ends]),
    }


def timeline_svg(record: Mapping[str, Any], width: int = 900) -> str:
    """The call's timeline: caller and receptionist speech, barge-ins, handoff states."""
    marks = timeline_marks(record)
    left, lane_h, top = 110, 26, 8
    plot_w = width - left - 10
    height = top + lane_h * len(LANES) + 30
    scale = plot_w / marks["end"]

    def x(ms: float) -> float:
        return left + ms * scale

    parts = [
        f'<svg class="timeline" role="img" aria-label="call timeline" viewBox="0 0 {width} '
        f'{height}" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
    ]
    for row, lane in enumerate(LANES):
        y = top + row * lane_h
        parts.append(f'<text x="4" y="{y + 17}" class="axis">{lane}</text>')
        parts.append(
            f'<line x1="{left}" y1="{y + lane_h - 2}" x2="{width - 10}" y2="{y + lane_h - 2}" '
            'stroke="#ddd"/>'
        )
    for row, lane, colour in ((0, "caller", "#d08a2b"), (1, "receptionist", "#2f6f9f")):
        y = top + row * lane_h + 4
        for span in marks[lane]:
            faded = span.get("faded_end", span["end"])
            if faded > span["end"]:
                parts.append(
                    f'<rect x="{x(span["end"]):.1f}" y="{y}" width="'
                    f'{max(1.0, (faded - span["end"]) * scale):.1f}" height="16" fill="{colour}" '
                    'opacity="0.25"><title>generated, not heard</title></rect>'
                )
            parts.append(
                f'<rect class="span-{lane}" x="{x(span["start"]):.1f}" y="{y}" '
                f'width="{max(2.0, (span["end"] - span["start"]) * scale):.1f}" height="16" '
                f'fill="{colour}"><title>{escape(span["label"][:200])}</title></rect>'
            )
    for at in marks["barge_ins"]:
        parts.append(
            f'<line class="barge-in" x1="{x(at):.1f}" y1="{top}" x2="{x(at):.1f}" '
            f'y2="{top + 2 * lane_h}" stroke="#c0392b" stroke-width="2"><title>barge-in at '
            f"{at / 1000:.1f} s</title></line>"
        )
    y = top + 2 * lane_h
    free_from = 0.0  # where the previous label ends: closer points keep only their tooltip
    for point in marks["handoff"]:
        px = x(point["at"])
        parts.append(
            f'<circle class="handoff-point" cx="{px:.1f}" cy="{y + 12}" r="5" '
            f'fill="#6a3d9a"><title>{escape(point["label"])} at {point["at"] / 1000:.1f} s'
            "</title></circle>"
        )
        label_w = 6 * len(point["label"])
        if px >= free_from and px + 7 + label_w <= width:
            parts.append(
                f'<text x="{px + 7:.1f}" y="{y + 16}" class="axis">{escape(point["label"])}</text>'
            )
            free_from = px + 12 + label_w
        elif px >= free_from:  # near the right edge: the label goes to the left of its point
            parts.append(
                f'<text x="{px - 7:.1f}" y="{y + 16}" text-anchor="end" class="axis">'
                f"{escape(point['label'])}</text>"
            )
            free_from = float("inf")  # later points are further right: tooltips only
    axis_y = top + lane_h * len(LANES) + 16
    seconds = marks["end"] / 1000
    tick = next(t for t in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1e9) if seconds / t <= 10)
    t = 0.0
    while t <= seconds:
        parts.append(
            f'<text x="{x(t * 1000):.1f}" y="{axis_y}" text-anchor="middle" class="axis">'
            f"{t:g}s</text>"
        )
        t += tick
    parts.append("</svg>")
    return "".join(parts)
