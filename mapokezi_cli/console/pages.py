"""The console's pages as HTML bodies: pure functions of the data they show.

Each ``render_*`` takes what the source returned and gives back escaped HTML for
:func:`mapokezi_cli.console.html.page`; the web app (``app.py``) does the fetching.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mapokezi.outcomes import CallOutcome
from mapokezi_cli.console.charts import bar_chart, handoff_changes, timeline_svg
from mapokezi_cli.console.html import (
    OUTCOME_BADGES,
    badge,
    esc,
    href,
    key_values,
    money,
    ms,
    outcome_of,
    table,
)
from mapokezi_cli.console.overview import Overview
from mapokezi_cli.console.pricing import ModelPrices, model_cost_usd

FILTER_FIELDS = ("number", "caller", "since", "until", "outcome")


def _duration(record: Mapping[str, Any]) -> str:
    cdr = record.get("cdr") or {}
    seconds = cdr.get("duration_seconds", record.get("platform_duration_seconds"))
    return f"{seconds} s" if isinstance(seconds, int | float) else ""


def render_calls(
    calls: Sequence[Mapping[str, Any]],
    *,
    filters: Mapping[str, str],
    next_cursor: str | None,
    error: str | None = None,
) -> str:
    """The calls list: filters, one row per call with its outcome badge, the next-page link."""
    options = "".join(
        f'<option value="{esc(o.value)}"{" selected" if filters.get("outcome") == o.value else ""}>'
        f"{esc(label)}</option>"
        for o, (label, _) in OUTCOME_BADGES.items()
    )
    inputs = "".join(
        f'<label>{name}<input name="{name}" value="{esc(filters.get(name, ""))}" '
        f'placeholder="{placeholder}"></label>'
        for name, placeholder in (
            ("number", "+254700000100"),
            ("caller", "+254712345678"),
            ("since", "2026-11-01"),
            ("until", "2026-11-30T23:59"),
        )
    )
    form = (
        f'<form class="filters" method="get" action="/calls">{inputs}'
        f'<label>outcome<select name="outcome"><option value="">any</option>{options}'
        '</select></label><button type="submit">Filter</button>'
        '<a href="/calls">clear</a></form>'
    )
    if error:
        return form + f'<p class="error" id="filter-error">{esc(error)}</p>'
    rows = []
    for call in calls:
        call_id = str(call.get("call_id", ""))
        cdr = call.get("cdr") or {}
        rows.append(
            [
                esc(call.get("started_at")),
                f'<a class="call-link" href="{href("/calls/" + call_id)}">{esc(call_id[:13])}</a>',
                esc(call.get("from")),
                esc(call.get("to")),
                badge(outcome_of(call)),
                esc(_duration(call)),
                esc(money(cdr.get("cost_minor"), cdr.get("cost_currency"))),
            ]
        )
    headers = ["Started (UTC)", "Call", "Caller", "Number", "Outcome", "Duration", "Cost"]
    listing = table(headers, rows, "calls") if rows else '<p class="muted">No calls.</p>'
    more = ""
    if filters.get("cursor"):
        first = {k: v for k, v in filters.items() if k in FILTER_FIELDS}
        more += f'<a id="first-page" href="{href("/calls", first)}">← Newest calls</a> '
    if next_cursor:
        params = {k: v for k, v in filters.items() if k in FILTER_FIELDS} | {"cursor": next_cursor}
        more += f'<a id="next-page" href="{href("/calls", params)}">Older calls →</a>'
    more = f"<p>{more}</p>" if more else ""
    if filters.get("outcome"):
        more += (
            '<p class="muted">The outcome filter applies to each page as read, so a page '
            "may hold fewer calls; follow “Older calls”.</p>"
        )
    return form + listing + more


def _transcript(turns: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for turn in turns:
        at = turn.get("at_ms")
        stamp = f"{at / 1000:6.1f} s" if isinstance(at, int | float) else "?"
        who = "receptionist" if turn.get("role") == "agent" else str(turn.get("role", "?"))
        note = ""
        if turn.get("interrupted"):
            note = '<span class="interrupted">interrupted by the caller</span>'
        generated = turn.get("generated_text")
        heard = turn.get("heard_text", turn.get("text"))
        extra = ""
        if generated and generated != heard:
            extra = f'<div class="generated">generated: {esc(generated)}</div>'
        out.append(
            f'<div class="turn turn-{esc(turn.get("role"))}"><span class="muted">{esc(stamp)}'
            f'</span> <span class="who">{esc(who)}</span>{esc(turn.get("text"))}{note}{extra}'
            "</div>"
        )
    return "".join(out) or '<p class="muted">No transcript.</p>'


def _handoff(handoff: Mapping[str, Any] | None) -> str:
    if not handoff:
        return '<p class="muted">No handoff.</p>'
    pairs = [(k, v) for k, v in handoff.items() if not isinstance(v, list | dict)]
    html = key_values(pairs)
    rows = [[esc(c.get("at")), esc(c.get("state"))] for c in handoff_changes(handoff)]
    if rows:
        html += "<h3>State changes</h3>" + table(["At", "State"], rows)
    return html


def _message(message: Any) -> str:
    if not isinstance(message, Mapping):
        return ""
    fields = ("name", "callback_number", "message", "urgency", "state")
    return (
        '<div class="card"><h2>Message</h2>'
        + key_values((f, message.get(f)) for f in fields if f in message)
        + "</div>"
    )


def render_call(
    record: Mapping[str, Any],
    *,
    prices: ModelPrices,
    recording: Mapping[str, Any] | None,
) -> str:
    """One call: summary, timeline, transcript, latencies, handoff, message, CDR, cost, events."""
    metrics = record.get("metrics") or {}
    cdr = record.get("cdr") or {}
    usage = metrics.get("usage") or {}
    cost = model_cost_usd(usage, prices)
    summary = key_values(
        [
            ("call", record.get("call_id")),
            ("caller", record.get("from")),
            ("number", record.get("to")),
            ("started", record.get("started_at")),
            ("ended", record.get("ended_at") or "–"),
            ("end reason", record.get("end_reason") or "–"),
        ]
    )
    latencies = metrics.get("reply_latency_ms") or []
    timing = key_values(
        [
            ("time to first audio", ms(metrics.get("time_to_first_audio_ms"))),
            ("reply latencies", ", ".join(ms(v) for v in latencies) or "–"),
            ("median reply latency", ms(metrics.get("reply_latency_p50_ms"))),
            ("barge-ins", metrics.get("barge_ins", "–")),
            ("barge-in stop", ", ".join(ms(v) for v in metrics.get("barge_in_stop_ms") or [])),
        ]
    )
    billing = key_values(
        [
            ("CDR status", cdr.get("status") or "not fetched yet"),
            ("duration", _duration(record) or "–"),
            ("platform cost", money(cdr.get("cost_minor"), cdr.get("cost_currency")) or "–"),
            *[(f"tokens: {k}", v) for k, v in sorted(usage.items())],
            ("estimated model cost", "–" if cost is None else f"USD {cost:.4f}"),
        ]
    )
    prices_note = ", ".join(f"{k} {v:g}" for k, v in prices.as_dict().items())
    events = sorted(record.get("events") or [], key=lambda e: str(e.get("received_at")))
    event_rows = [
        [esc(e.get("received_at")), esc(e.get("source")), f"<pre>{esc(_compact(e))}</pre>"]
        for e in events
    ]
    return (
        f'<p>{badge(outcome_of(record))}</p><div class="grid">'
        f'<div class="card"><h2>Call</h2>{summary}</div>'
        f'<div class="card"><h2>Timing</h2>{timing}</div>'
        f'<div class="card"><h2>Cost</h2>{billing}<p class="muted">Model prices (USD per '
        f"million tokens): {esc(prices_note)}</p></div></div>"
        f'<div class="card"><h2>Timeline</h2>{timeline_svg(record)}</div>'
        f"{_recording(recording)}"
        f'<div class="card" id="transcript"><h2>Transcript</h2>'
        f"{_transcript(record.get('transcript') or [])}</div>"
        f'<div class="card"><h2>Handoff</h2>{_handoff(record.get("handoff"))}</div>'
        f"{_message(record.get('message'))}"
        f'<div class="card"><h2>Platform events</h2>'
        f"{table(['Received', 'Source', 'Payload'], event_rows) if events else 'None.'}</div>"
    )


def _compact(event: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in event.items() if k not in ("received_at", "source")}
    return json.dumps(rest, ensure_ascii=False, sort_keys=True)[:2000]


def _recording(recording: Mapping[str, Any] | None) -> str:
    if not recording:
        return ""
    state = recording.get("state")
    if state == "ready":
        body = (
            f'<audio id="recording" controls preload="none" src="{esc(recording["url"])}"></audio>'
        )
    elif state == "pending":
        body = (
            '<p class="muted">Sautikit is still preparing the recording (try again in '
            f"{esc(recording.get('retry_after_seconds') or 'a few')} s).</p>"
        )
    else:
        body = f'<p class="muted">{esc(recording.get("reason") or "No recording.")}</p>'
    return f'<div class="card"><h2>Recording</h2>{body}</div>'


def render_messages(calls: Sequence[Mapping[str, Any]]) -> str:
    """Messages taken on calls, newest first."""
    rows = []
    for call in calls:
        message = call.get("message")
        if not isinstance(message, Mapping):
            continue
        call_id = str(call.get("call_id", ""))
        rows.append(
            [
                esc(call.get("started_at")),
                esc(message.get("name")),
                esc(message.get("callback_number")),
                esc(message.get("message")),
                esc(message.get("urgency")),
                esc(message.get("state", "open")),
                f'<a href="{href("/calls/" + call_id)}">{esc(call_id[:13])}</a>',
            ]
        )
    if not rows:
        return '<p class="muted">No messages.</p>'
    headers = ["When", "Name", "Call back", "Message", "Urgency", "State", "Call"]
    return table(headers, rows, "messages")


def render_numbers(
    profiles: Sequence[Mapping[str, Any]],
    *,
    can_edit: bool,
    upload_errors: Sequence[str] = (),
    uploaded: str | None = None,
    number_value: str = "",
) -> str:
    """Each number's profile, what was learned about it, and the upload form."""
    parts = []
    if uploaded:
        parts.append(f'<p class="ok" id="upload-ok">Stored the profile for {esc(uploaded)}.</p>')
    if upload_errors:
        items = "".join(f"<li>{esc(e)}</li>" for e in upload_errors)
        parts.append(
            f'<div class="card"><h2>Profile not stored</h2><ul class="errors" '
            f'id="upload-errors">{items}</ul></div>'
        )
    if can_edit:
        parts.append(
            '<div class="card"><h2>Upload a profile</h2>'
            '<form id="upload" method="post" action="/numbers" enctype="multipart/form-data">'
            f'<label>Number <input name="number" required value="{esc(number_value)}" '
            'placeholder="+254700000100"></label> '
            '<label>Profile (YAML or JSON) <input type="file" name="file" required></label> '
            '<button type="submit">Validate and store</button></form>'
            '<p class="muted">Checked exactly as <code>mapokezi profile put</code> checks it.</p>'
            "</div>"
        )
    else:
        parts.append(
            '<p class="muted">Profiles live in the calls table: run the console without --api '
            "to see and upload them.</p>"
        )
    for entry in profiles:
        profile = entry.get("profile")
        if profile is None:
            parts.append(
                f'<div class="card"><h2>{esc(entry.get("number"))}</h2>'
                f'<p class="error">{esc(entry.get("error"))}</p></div>'
            )
            continue
        learned = entry.get("learned") or {}
        facts = "".join(f"<li>{esc(f)}</li>" for f in profile.facts) or "<li>none</li>"
        departments = (
            "".join(
                f"<li>{esc(d.name)}: {esc(d.number)} {esc(d.description)}</li>"
                for d in profile.departments
            )
            or "<li>none (front desk only)</li>"
        )
        learned_html = key_values(learned.items()) if learned else '<p class="muted">No calls.</p>'
        parts.append(
            f'<div class="card number"><h2>{esc(profile.number)} · {esc(profile.business_name)}'
            f"</h2>{key_values(_profile_pairs(profile, entry))}"
            f"<h3>Facts</h3><ul>{facts}</ul><h3>Departments</h3><ul>{departments}</ul>"
            f"<h3>What its calls show</h3>{learned_html}</div>"
        )
    if can_edit and not profiles:
        parts.append('<p class="muted">No profiles stored.</p>')
    return "".join(parts)


def _profile_pairs(profile: Any, entry: Mapping[str, Any]) -> list[tuple[str, Any]]:
    hours = profile.hours
    opening = (
        "always open"
        if hours is None
        else "; ".join(
            f"{day} {', '.join(spans) or 'closed'}" for day, spans in hours.weekly.items()
        )
    )
    return [
        ("greeting", profile.greeting),
        ("disclosure", getattr(profile, "disclosure", None) or "–"),
        ("front desk", profile.front_desk),
        ("after hours number", profile.after_hours_number or "–"),
        ("opening hours", opening),
        ("model", f"{profile.model.provider}, voice {profile.model_voice}"),
        ("language", profile.language),
        ("retention", f"{profile.retention_days} days"),
        ("updated", entry.get("updated_at")),
        *([("on Sautikit", entry["sautikit"])] if entry.get("sautikit") else []),
    ]


def render_overview(overview: Overview) -> str:
    """Headline figures and a chart per measure."""
    stats = [
        ("Calls", str(overview.calls)),
        ("Handled without a person", _share(overview.handled_share)),
        ("Transfer success", _share(overview.transfer_success)),
        ("Median time to first audio", ms(overview.median_first_audio_ms)),
        ("Median reply latency", ms(overview.median_reply_latency_ms)),
        ("Platform cost", money(overview.cost_minor, overview.currency) or "–"),
        ("Estimated model cost", f"USD {overview.model_cost_usd:.2f}"),
    ]
    cards = "".join(
        f'<div class="card"><div class="muted">{esc(label)}</div><div class="stat">'
        f"{esc(value)}</div></div>"
        for label, value in stats
    )
    days = overview.days
    charts = [
        bar_chart("Calls per day", [(d.day[5:], d.calls) for d in days]),
        bar_chart(
            "Handled without a person (%)",
            [(d.day[5:], None if d.handled_share is None else 100 * d.handled_share) for d in days],
            colour="#2e7d32",
        ),
        bar_chart(
            "Median time to first audio (ms)",
            [(d.day[5:], d.median_first_audio_ms) for d in days],
            colour="#8e44ad",
        ),
        bar_chart(
            "Median reply latency (ms)",
            [(d.day[5:], d.median_reply_latency_ms) for d in days],
            colour="#d08a2b",
        ),
        bar_chart(
            f"Platform cost per day ({overview.currency})",
            [(d.day[5:], d.cost_minor / 100) for d in days],
            colour="#546e7a",
        ),
    ]
    outcome_rows = [[badge(CallOutcome(o)), esc(n)] for o, n in sorted(overview.outcomes.items())]
    note = ""
    if overview.truncated:
        note = f'<p class="muted">Only the newest {overview.calls} calls are counted.</p>'
    return (
        f'<div class="grid">{cards}</div>{note}<div class="grid charts">'
        + "".join(f'<div class="card">{c}</div>' for c in charts)
        + f'<div class="card"><h2>Outcomes</h2>{table(["Outcome", "Calls"], outcome_rows)}'
        "</div></div>"
    )


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"
