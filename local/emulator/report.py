"""A readable summary of an emulated call, for people at a terminal."""

from __future__ import annotations

from typing import Any

from local.emulator.call import CallResult


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _record_lines(record: dict[str, Any]) -> list[str]:
    lines = []
    transcript = record.get("transcript") or []
    if transcript:
        lines.append("  transcript:")
        for turn in transcript:
            at = turn.get("at_ms")
            stamp = f"{at / 1000:6.1f} s" if isinstance(at, int | float) else "      ?"
            lines.append(f"    [{stamp}] {turn.get('role', '?')}: {turn.get('text', '')}")
    for key in ("handoff", "metrics", "cdr"):
        value = record.get(key)
        if isinstance(value, dict) and value:
            scalars = {k: v for k, v in value.items() if not isinstance(v, dict | list)}
            lines.append(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in scalars.items()))
        elif value:
            lines.append(f"  {key}: {value}")
    return lines


def _transfer_lines(result: CallResult) -> list[str]:
    """The handoff's path, time to a person and any message taken (from the call record)."""
    lines = []
    person = result.person
    if person:
        states = " -> ".join(f"{state} @{at:g} s" for state, at in person["states"]) or "none"
        lines.append(f"Person: supervision {person['supervision_id']}: {states}")
        if person["connected_after_s"] is not None:
            lines.append(f"  the caller heard the person ({person['heard_seconds']:g} s)")
        if person.get("silent_seconds") is not None:
            lines.append(
                f"  after {person['silent_seconds']:g} s of silence since the stream ended"
                " (no hold audio can reach a caller once the stream is gone)"
            )
    media = result.media
    if media is not None and media.person_joined_ms is not None:
        lines.append(
            f"  mixed into the stream {media.person_joined_ms / 1000:.1f} s after it opened: the"
            " caller heard the person over whatever the receptionist still sent, as a bridge does"
        )
    record = result.call_record or {}
    handoff = record.get("handoff") or {}
    if handoff.get("kind", "transfer") == "transfer" and handoff:
        ttp = handoff.get("time_to_person_ms")
        lines.append(
            f"Transfer: path {handoff.get('path', '?')}, state {handoff.get('state', '?')}, "
            f"time to a person {'-' if ttp is None else f'{ttp / 1000:.1f} s'}"
        )
    message = record.get("message")
    if isinstance(message, dict):
        lines.append(
            f"Message taken: {message.get('name')} ({message.get('callback_number')},"
            f" {message.get('urgency')}): {message.get('message')}"
        )
    return lines


def format_summary(result: CallResult) -> str:
    """Render the call result as a multi-line text summary."""
    call = result.call
    verdict = "OK" if result.ok else "FAILED"
    lines = [
        f"Call {call.call_id} ({call.session_id})"
        f" {call.from_number} -> {call.to_number}: {verdict}",
        "Requests:",
    ]
    for x in result.exchanges:
        outcome = x.error or f"HTTP {x.status}"
        lines.append(f"  {x.label:<21} POST {x.url}  {outcome}  {x.elapsed_ms:.0f} ms")
    for event in result.platform_events:
        lines.append(f"  {event['kind']:<21} event posted by the platform ({event['event_id']})")
    for answer in result.answers:
        verbs = " ".join(f"<{v['name']}>" for v in answer["verbs"]) or "<Response/> (empty)"
        lines.append(f"  answer to {answer['label']}: {verbs}")
    media = result.media
    if result.stream:
        s = result.stream
        lines.append(
            f"Stream: {s.url} track={s.track} outputSamplingRate={s.output_rate}"
            f" bidirectionalSamplingRate={s.bidirectional_rate} name={s.name}"
        )
    if media:
        lines.append(
            f"  subprotocol={media.subprotocol} ended by {media.ended_by}"
            f" (close {media.close_code}{' ' + media.close_reason if media.close_reason else ''})"
            f" after {media.duration_ms / 1000:.1f} s"
        )
        lines.append("Timings:")
        lines.append(
            f"  first audio heard: {_ms(media.first_audio_heard_ms)} after the socket opened,"
            f" {_ms(result.first_audio_after_call_start_ms)} after the first webhook"
        )
        for reply in media.replies:
            lines.append(f"  reply after {reply['utterance']}: {_ms(reply['latency_ms'])}")
        for barge in media.barge_ins:
            lines.append(
                f"  barge-in {barge['utterance']}: killAudio after {_ms(barge['kill_audio_ms'])},"
                f" agent audio stopped after {_ms(barge['audio_stop_ms'])}"
            )
        cadence = media.cadence()
        lines.append(
            f"  sent {media.frames_sent} frames of {media.frame_bytes} B"
            f" (late mean {cadence.get('mean_late_ms', 0)} ms,"
            f" p95 {cadence.get('p95_late_ms', 0)} ms); received {media.bytes_received} B;"
            f" peak playout buffer {media.peak_buffered_ms:.0f} ms"
        )
        if media.kills:
            dropped = sum(k.dropped_bytes for k in media.kills)
            lines.append(
                f"  killAudio x{len(media.kills)}: dropped {dropped} B; stale after kill"
                f" {media.stale_audio_bytes} B; new lines after a kill {media.line_changes}"
            )
        if media.heard_wav:
            lines.append(f"  heard audio: {media.heard_wav}")
    if result.verbs:
        lines.append("Verbs executed:")
        for verb in result.verbs:
            detail = verb.get("detail", "")
            simulated = verb.get("simulated_seconds")
            extra = f" (~{simulated:.1f} s simulated)" if simulated else ""
            lines.append(f"  <{verb['verb']}> {detail}{extra}")
    if result.handoff:
        h = result.handoff
        lines.append(
            f"Handoff: dial {h['number']} callerId={h['callerId']} timeout={h['timeout']}"
            f" -> {h['outcome']} ({h['answered_seconds']:g} s talking)"
        )
    lines += _transfer_lines(result)
    lines.append(f"Duration: {result.duration_seconds} s (answered at {result.answered_at})")
    if result.call_record:
        lines.append("Call record:")
        lines += _record_lines(result.call_record)
    lines += [f"warning: {w}" for w in result.warnings]
    lines += [f"error: {e}" for e in result.errors]
    return "\n".join(lines)
