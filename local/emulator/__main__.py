"""``python -m local.emulator``: place one emulated Sautikit call (``make call``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from local.emulator.call import run_call
from local.emulator.media_leg import DRACHTIO, JAMBONZ
from local.emulator.options import CallOptions, default_voice_url
from local.emulator.pacing import JitterConfig, SendSchedule
from local.emulator.person import PERSON_BEHAVIOURS
from local.emulator.playout import PlayoutConfig
from local.emulator.report import format_summary
from local.emulator.script import parse_script
from local.emulator.status import STATUS_DIALECTS
from local.emulator.webhook import DIALECTS, ENCODINGS, SIGNATURE_SCHEMES


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m local.emulator",
        description="Place one emulated Sautikit call against the voice webhook.",
    )
    call = p.add_argument_group("call")
    call.add_argument("--voice-url", default=default_voice_url(), help="voice webhook URL")
    call.add_argument("--from", dest="from_number", default="+254712345678")
    call.add_argument("--to", dest="to_number", help="dialled number (env DEMO_NUMBER)")
    call.add_argument("--dialect", choices=DIALECTS, default="both", help="webhook field names")
    call.add_argument("--encoding", choices=ENCODINGS, default="form")
    call.add_argument("--initial-state", help="callSessionState on the first POST")
    call.add_argument("--signature-scheme", choices=SIGNATURE_SCHEMES, default="v1")
    call.add_argument("--secret", help="signing secret (env SAUTIKIT_WEBHOOK_SECRET)")
    call.add_argument("--stream-url", help="skip the webhook and stream to this ws(s) URL")
    audio = p.add_argument_group("caller audio")
    audio.add_argument("--wav", action="append", default=[], help="caller line (repeatable)")
    audio.add_argument("--script", help="script text or a file holding it (see script.py)")
    audio.add_argument(
        "--rate",
        type=int,
        choices=[8000, 16000],
        help="stream at this rate whatever the <Stream> asks: simulates a platform mismatch "
        "(the call's real rate is the profile's audio.sample_rate)",
    )
    audio.add_argument(
        "--track",
        choices=["inbound_track", "both_tracks"],
        help="fork these tracks whatever the <Stream> asks: simulates a mismatch (the call's "
        "real track is the profile's audio.track)",
    )
    audio.add_argument("--mix", choices=["stereo", "mixed"], default="stereo")
    audio.add_argument(
        "--subprotocol",
        action="append",
        help=f"offer this (repeatable; 'none' offers nothing); default {DRACHTIO}, or {JAMBONZ}",
    )
    audio.add_argument("--no-metadata", action="store_true", help="skip the metadata frame")
    audio.add_argument("--jitter-ms", type=float, default=5.0)
    audio.add_argument("--bunch-probability", type=float, default=0.02)
    audio.add_argument("--seed", type=int)
    audio.add_argument("--prebuffer-ms", type=float, default=80.0)
    audio.add_argument("--rebuffer-ms", type=float, default=40.0)
    audio.add_argument("--drain-on-close", action="store_true")
    audio.add_argument("--max-seconds", type=float, default=120.0)
    audio.add_argument("--out", help="write what the caller heard to this WAV")
    flow = p.add_argument_group("call flow")
    flow.add_argument("--status-dialect", choices=STATUS_DIALECTS, default="telnyx")
    flow.add_argument("--status-encoding", choices=ENCODINGS, default="form")
    flow.add_argument("--no-restream-post", action="store_true", help="model the field finding")
    flow.add_argument("--post-stream-started", action="store_true")
    flow.add_argument(
        "--first-post-copies",
        type=int,
        default=1,
        metavar="N",
        help="send the first POST N times at once (the platform retrying in parallel)",
    )
    flow.add_argument(
        "--retry-first-post-after",
        type=float,
        metavar="SECONDS",
        help="send the first POST again this long after its answer (a late retry)",
    )
    flow.add_argument(
        "--stream-stopped-copies",
        type=int,
        default=1,
        metavar="N",
        help="send the stream-stopped status callback N times at once (a parallel retry)",
    )
    flow.add_argument(
        "--stream-stopped-event",
        action="store_true",
        help="also post the stop to the events URL at the same moment (Sautikit double only)",
    )
    flow.add_argument(
        "--drop-media-after",
        type=float,
        metavar="SECONDS",
        help="drop the media socket this long after it opened, without a close frame",
    )
    flow.add_argument(
        "--dial-outcome", choices=["answered", "no-answer", "busy"], default="answered"
    )
    flow.add_argument("--dial-answer-seconds", type=float, default=5.0)
    flow.add_argument("--realtime-verbs", action="store_true", help="sleep through Say/Dial")
    flow.add_argument(
        "--person",
        choices=PERSON_BEHAVIOURS,
        default="answer",
        help="what the person a supervision rings does (Sautikit double only)",
    )
    flow.add_argument(
        "--person-answer-after",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how long the person's phone rings before they answer (--person answer)",
    )
    flow.add_argument(
        "--rescue-wait",
        type=float,
        default=10.0,
        help="seconds of silence the caller waits after a stream with no re-POST",
    )
    after = p.add_argument_group("after the call")
    after.add_argument("--sautikit-api-url", help="API double URL (env SAUTIKIT_API_URL)")
    after.add_argument("--call-record-url", help="gateway base for GET /calls/{id}")
    after.add_argument("--no-call-record", action="store_true")
    after.add_argument("--record-wait", type=float, default=8.0)
    after.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def options_from_args(args: argparse.Namespace) -> CallOptions:
    """Translate parsed arguments into ``CallOptions``."""
    options = CallOptions(voice_url=args.voice_url, from_number=args.from_number)
    if args.to_number:
        options.to_number = args.to_number
    if args.secret:
        options.webhook_secret = args.secret
    if args.sautikit_api_url:
        options.sautikit_api_url = args.sautikit_api_url
    if args.script:
        path = Path(args.script)
        options.steps = parse_script(path.read_text() if path.is_file() else args.script)
    if args.subprotocol:
        options.subprotocols = tuple(p for p in args.subprotocol if p != "none")
    record_base = args.voice_url.rsplit("/", 1)[0] if not args.stream_url else None
    options.call_record_url = None if args.no_call_record else args.call_record_url or record_base
    options.dialect, options.encoding = args.dialect, args.encoding
    options.initial_state, options.signature_scheme = args.initial_state, args.signature_scheme
    options.stream_url, options.rate, options.track = args.stream_url, args.rate, args.track
    options.both_tracks_mix, options.send_metadata = args.mix, not args.no_metadata
    options.wavs, options.heard_wav, options.max_call_seconds = args.wav, args.out, args.max_seconds
    options.jitter = JitterConfig(args.jitter_ms, args.bunch_probability, args.seed)
    SendSchedule(20.0, options.jitter)  # rejects impossible jitter before the call starts
    options.playout = PlayoutConfig(
        args.prebuffer_ms, args.rebuffer_ms, drain_on_close=args.drain_on_close
    )
    options.status_dialect, options.status_encoding = args.status_dialect, args.status_encoding
    options.restream_post = not args.no_restream_post
    options.post_stream_started = args.post_stream_started
    if args.first_post_copies < 1:
        raise ValueError("--first-post-copies must be at least 1")
    options.first_post_copies = args.first_post_copies
    options.first_post_retry_after = args.retry_first_post_after
    if args.stream_stopped_copies < 1:
        raise ValueError("--stream-stopped-copies must be at least 1")
    options.stream_stopped_copies = args.stream_stopped_copies
    options.stream_stopped_event = args.stream_stopped_event
    options.drop_media_after = args.drop_media_after
    options.dial_outcome, options.dial_answer_seconds = args.dial_outcome, args.dial_answer_seconds
    options.realtime_verbs, options.record_wait_seconds = args.realtime_verbs, args.record_wait
    options.person, options.rescue_wait_seconds = args.person, args.rescue_wait
    if args.person_answer_after < 0:
        raise ValueError("--person-answer-after must not be negative")
    options.person_answer_seconds = args.person_answer_after
    return options


def main(argv: list[str] | None = None) -> int:
    """Run one call; exit status 0 when it went through, 1 when it failed, 2 on bad usage."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    try:
        result = asyncio.run(run_call(options))
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(format_summary(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
