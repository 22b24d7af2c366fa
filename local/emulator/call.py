"""One emulated Sautikit call, end to end: webhook, stream, verbs, hangup, CDR.

The sequence follows Sautikit's call lifecycle: POST the voice webhook; run the answer's verbs
(``<Stream>`` opens a ``MediaLeg`` and posts status callbacks); when the socket closes, re-POST
the voice URL with ``callSessionState=StreamStopped`` unless the caller hung up (or, with
``restream_post=False``, model the field finding that this never happens: the caller sits in
dead air and hangs up); run
``<Say>``, ``<Dial>`` (then POST ``DialCompleted``) and ``<Hangup>`` with simulated durations;
finally POST ``Completed`` with ``durationInSeconds`` and, when ``SAUTIKIT_API_URL`` points at
the API double, register and complete the call there so the CDR fetcher finds it.

Faults of the platform's side can be played: the first POST sent several times at once and again
later (``first_post_copies``, ``first_post_retry_after``; see :mod:`local.emulator.retries`),
the ``stream-stopped`` status callback delivered several times at once (``stream_stopped_copies``)
and, at the same moment, as an event to the events URL (``stream_stopped_event``),
and the media socket dropped without a close frame (``drop_media_after``), after which the
platform reports a stream error and re-POSTs ``StreamStopped`` with the caller still there.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.emulator import retries
from local.emulator.answer import StreamSpec, Verb, VoiceAnswer, parse_voice_answer
from local.emulator.media_leg import MediaLeg, MediaLegResult
from local.emulator.options import CallOptions
from local.emulator.person import PersonResult, await_person, configure_person, person_on_stream
from local.emulator.records import (
    complete_with_api_double,
    fetch_call_record,
    post_stream_stopped_event,
    register_with_api_double,
)
from local.emulator.script import CallerTrack, default_script
from local.emulator.status import status_fields
from local.emulator.webhook import (
    CallIdentity,
    HttpExchange,
    Signer,
    post_fields,
    voice_fields,
)

MAX_DOCUMENTS = 10  # webhook round trips per call before the emulator calls it a loop
ALL_STATUS_EVENTS = ("stream-started", "stream-stopped", "stream-error")


@dataclass
class CallResult:
    """Everything that happened on the call."""

    call: CallIdentity
    started_at: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exchanges: list[HttpExchange] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    stream: StreamSpec | None = None
    media: MediaLegResult | None = None
    verbs: list[dict[str, Any]] = field(default_factory=list)
    handoff: dict[str, Any] | None = None
    answered_at: str | None = None
    duration_seconds: int = 0
    first_audio_after_call_start_ms: float | None = None
    api_double: dict[str, Any] | None = None
    call_record: dict[str, Any] | None = None
    person: dict[str, Any] | None = None
    #: Events the platform (the API double) posted to the events URL at the emulator's request.
    platform_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The call went through without errors."""
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {k: v for k, v in self.__dict__.items() if k not in ("media", "exchanges")}
        data["ok"] = self.ok
        data["call"] = asdict(self.call)
        data["stream"] = asdict(self.stream) if self.stream else None
        data["media"] = self.media.as_dict() if self.media else None
        data["exchanges"] = [
            {k: v for k, v in asdict(x).items() if k != "body"} | {"ok": x.ok}
            for x in self.exchanges
        ]
        return data


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def say_seconds(text: str, loop: int = 1) -> float:
    """How long TTS takes to say ``text``: about 150 words a minute, at least half a second."""
    return max(0.5, len(text.split()) / 2.5) * max(1, loop)


class CallRunner:
    """Runs one call; use ``run_call`` unless you need the pieces."""

    def __init__(self, options: CallOptions, call: CallIdentity | None = None) -> None:
        self.options = options
        self.call = call or CallIdentity(options.from_number, options.to_number)
        self.result = CallResult(self.call, _iso_now())
        self.signer = Signer(options.encoding, options.webhook_secret, options.signature_scheme)
        self._start = time.monotonic()
        self._answered_monotonic: float | None = None
        self._simulated = 0.0
        self._dialled: list[dict[str, Any]] = []
        self._api: str | None = None
        self._late_retry: asyncio.Task[None] | None = None
        self._stream_ended: float | None = None

    async def run(self) -> CallResult:
        """Place the call and return the result."""
        await self._register_with_api_double()
        if self.options.stream_url:
            answer = self._direct_stream_answer()
        else:
            answer = await self._first_answer()
        if answer is not None:
            await self._execute(answer)
        await self._end_late_retry()
        await self._hang_up()
        return self.result

    async def _first_answer(self) -> VoiceAnswer | None:
        """The first POST, with the platform's retries when the options ask for them."""
        state, copies = self.options.initial_state, max(1, self.options.first_post_copies)
        labels = ["initial"] + [f"initial-copy-{n}" for n in range(1, copies)]
        answers = await asyncio.gather(*(self._voice_post(label, state) for label in labels))
        sent = {x.label: x for x in self.result.exchanges if x.label in labels}
        first = sent["initial"]
        self.result.errors += retries.concurrent_copies_disagree(
            first, [sent[label] for label in labels[1:]]
        )
        if self.options.first_post_retry_after is not None and first.ok:
            self._late_retry = asyncio.create_task(self._retry_first_post_later(first))
        return answers[0]

    async def _retry_first_post_later(self, first: HttpExchange) -> None:
        await asyncio.sleep(self.options.first_post_retry_after or 0.0)
        fields = voice_fields(self.call, self.options.dialect, self.options.initial_state)
        late = await post_fields(
            "initial-late-copy",
            self.options.voice_url,
            fields,
            self.signer,
            self.options.http_timeout,
        )
        self.result.exchanges.append(late)
        self.result.errors += retries.late_copy_problems(first, late)

    async def _end_late_retry(self) -> None:
        if self._late_retry is None:
            return
        if not self._late_retry.done():
            self.result.warnings.append("the call ended before the late copy of the first POST")
            self._late_retry.cancel()
        await asyncio.gather(self._late_retry, return_exceptions=True)

    # -- webhooks ------------------------------------------------------------------------------

    async def _voice_post(
        self, label: str, state: str | None, extra: dict[str, str] | None = None, url: str = ""
    ) -> VoiceAnswer | None:
        fields = voice_fields(self.call, self.options.dialect, state, extra)
        exchange = await post_fields(
            label, url or self.options.voice_url, fields, self.signer, self.options.http_timeout
        )
        self.result.exchanges.append(exchange)
        if not exchange.ok:
            reason = exchange.error or f"HTTP {exchange.status}: {exchange.body[:200]}"
            self.result.errors.append(f"{label} webhook POST {exchange.url} failed: {reason}")
            return None
        answer = parse_voice_answer(exchange.body, exchange.content_type)
        self.result.answers.append({"label": label, **answer.as_dict()})
        self.result.errors += [f"{label} answer: {e}" for e in answer.errors]
        self.result.warnings += [f"{label} answer: {w}" for w in answer.warnings]
        return answer if answer.ok else None

    async def _status(
        self, spec: StreamSpec, event: str, stream_sid: str, error: str = "", copies: int = 1
    ) -> None:
        """POST the status callback for ``event``; ``copies`` identical deliveries at once."""
        if not spec.status_callback or event not in (spec.status_events or ALL_STATUS_EVENTS):
            return
        fields = status_fields(
            event, self.call, stream_sid, spec.name, self.options.status_dialect, error or None
        )
        signer = Signer(self.options.status_encoding, self.signer.secret, self.signer.scheme)
        callback = spec.status_callback
        labels = [event] + [f"{event}-copy-{n}" for n in range(1, max(1, copies))]
        sent = await asyncio.gather(
            *(
                post_fields(label, callback, fields, signer, self.options.http_timeout)
                for label in labels
            )
        )
        for exchange in sent:
            self.result.exchanges.append(exchange)
            if not exchange.ok:
                self.result.warnings.append(
                    f"{exchange.label} status callback failed: {exchange.error or exchange.status}"
                )

    # -- verbs ---------------------------------------------------------------------------------

    def _direct_stream_answer(self) -> VoiceAnswer:
        spec = StreamSpec(
            url=self.options.stream_url or "",
            connect=True,
            track=self.options.track,
            output_rate=self.options.rate,
            bidirectional_rate=self.options.rate,
            name="emulator",
            status_callback=None,
            status_events=[],
            header_metadata=None,
            open_metadata=None,
        )
        return VoiceAnswer(verbs=[Verb("Stream", {"url": spec.url})], stream=spec)

    def _mark_answered(self) -> None:
        if self._answered_monotonic is None:
            self._answered_monotonic = time.monotonic()
            self.result.answered_at = _iso_now()

    async def _simulate(self, seconds: float) -> None:
        self._simulated += seconds
        if self.options.realtime_verbs:
            await asyncio.sleep(seconds)

    async def _execute(self, answer: VoiceAnswer) -> None:
        pending: deque[Verb] = deque(answer.verbs)
        stream = answer.stream
        documents = 1
        while pending:
            verb = pending.popleft()
            follow_up: VoiceAnswer | None = None
            log: dict[str, Any] = {"verb": verb.name}
            if verb.name == "Stream" and stream is not None:
                self._mark_answered()
                await self._run_stream(stream)
                log["detail"] = stream.url
                pending.clear()  # verbs after a connected Stream never run (observed live)
                media = self.result.media
                if media is not None and media.ended_by == "caller":
                    # The caller hung up: the call is over, nothing is asked for next.
                    self.result.verbs.append(log)
                    return
                if not self.options.restream_post and await self._rescued():
                    self.result.verbs.append(log)
                    return
                if not self.options.restream_post:
                    self.result.warnings.append(
                        "no voice re-POST after the stream (field behaviour): the caller hears"
                        f" dead air and hangs up after {self.options.dead_air_hangup_seconds:g} s"
                    )
                    await self._simulate(self.options.dead_air_hangup_seconds)
                    self.result.verbs.append(log)
                    return
                # The caller is still on the line (a hang-up returned above).
                follow_up = await self._voice_post(
                    "StreamStopped", "StreamStopped", {"isActive": "true"}
                )
            elif verb.name == "Say":
                self._mark_answered()
                seconds = say_seconds(verb.text, int(verb.attributes.get("loop", "1") or 1))
                log |= {"detail": verb.text, "simulated_seconds": seconds}
                await self._simulate(seconds)
            elif verb.name == "Pause":
                seconds = float(verb.attributes.get("length", "1"))
                log["simulated_seconds"] = seconds
                await self._simulate(seconds)
            elif verb.name == "Dial":
                self._mark_answered()
                follow_up = await self._dial(verb, log)
            elif verb.name == "Redirect":
                log["detail"] = verb.text
                follow_up = await self._voice_post("Redirect", None, url=verb.text)
            elif verb.name in ("Hangup", "Reject"):
                self.result.verbs.append(log)
                return
            else:
                log["detail"] = "not emulated"
                self.result.warnings.append(f"<{verb.name}> is not emulated; skipped")
            self.result.verbs.append(log)
            if follow_up is not None and follow_up.verbs:
                documents += 1
                if documents > MAX_DOCUMENTS:
                    self.result.errors.append(f"more than {MAX_DOCUMENTS} webhook documents")
                    return
                if follow_up.stream is not None:
                    self.result.errors.append(
                        "a lifecycle answer returned <Stream> again (re-forks and errors)"
                    )
                    return
                pending = deque(follow_up.verbs)

    async def _dial(self, verb: Verb, log: dict[str, Any]) -> VoiceAnswer | None:
        """Simulate the dialled leg, then POST ``DialCompleted`` and return its answer.

        ``DialCompleted`` on the voice URL was seen in the field; its other fields are not
        documented anywhere, so ``dialStatus``, ``dialDurationInSeconds`` and ``dialedNumber``
        are this emulator's own names.
        """
        number = verb.numbers[0] if verb.numbers else ""
        timeout = int(verb.attributes.get("timeout", "30") or 30)
        outcome = self.options.dial_outcome
        answered = self.options.dial_answer_seconds if outcome == "answered" else 0.0
        ringing = timeout if outcome == "no-answer" else 3.0
        handoff = {
            "number": number,
            "callerId": verb.attributes.get("callerId"),
            "timeout": timeout,
            "outcome": outcome,
            "answered_seconds": answered,
        }
        self.result.handoff = handoff
        log["detail"] = f"{number} callerId={handoff['callerId']} timeout={timeout}: {outcome}" + (
            f", {answered:g} s talking" if answered else ""
        )
        log["simulated_seconds"] = ringing + answered
        await self._simulate(ringing + answered)
        self._dialled.append({"to": number, "seconds": answered})
        extra = {
            "dialStatus": outcome,
            "dialDurationInSeconds": str(math.ceil(answered)),
            "dialedNumber": number,
        }
        return await self._voice_post("DialCompleted", "DialCompleted", extra)

    # -- the media leg -------------------------------------------------------------------------

    def _start_metadata(self, spec: StreamSpec, stream_sid: str) -> dict[str, Any]:
        """The ``start`` message's metadata for this call's stream ``stream_sid``."""
        call = self.call
        metadata: dict[str, Any] = {
            "callSid": call.call_id,
            "sessionId": call.session_id,
            "streamSid": stream_sid,
            "from": call.from_number,
            "to": call.to_number,
            "direction": call.direction,
        }
        if spec.header_metadata is not None:
            metadata["headers"] = spec.header_metadata
        if spec.open_metadata is not None:
            metadata["openMetadata"] = spec.open_metadata
        return metadata

    async def _run_stream(self, spec: StreamSpec) -> None:
        options, call = self.options, self.call
        self.result.stream = spec
        rate = options.rate or spec.output_rate or 8000
        if spec.output_rate and options.rate and options.rate != spec.output_rate:
            self.result.warnings.append(
                f"--rate {options.rate} simulates a mismatch: the <Stream> asked for "
                f"outputSamplingRate={spec.output_rate}, the emulator streams {options.rate} Hz "
                "anyway (for a real call at that rate set the profile's audio.sample_rate)"
            )
        if options.track and options.track != (spec.track or "inbound_track"):
            self.result.warnings.append(
                f"--track {options.track} simulates a mismatch: the <Stream> asked for "
                f"track={spec.track or 'inbound_track'} (for a real {options.track} call set "
                "the profile's audio.track)"
            )
        stream_sid = "MZ" + secrets.token_hex(16)
        metadata = self._start_metadata(spec, stream_sid)

        async def on_open() -> None:
            await self._status(spec, "stream-started", stream_sid)
            if options.post_stream_started:
                answer = await self._voice_post("StreamStarted", "StreamStarted")
                if answer is not None and answer.verbs:
                    self.result.warnings.append(
                        "the answer to StreamStarted has verbs; on Sautikit a second <Stream>"
                        " re-forks and errors (answer an empty <Response/>)"
                    )

        steps = options.steps if options.steps is not None else default_script(options.wavs)
        leg = MediaLeg(
            spec.url,
            rate=rate,
            playback_rate=spec.bidirectional_rate or rate,
            track=options.track or spec.track or "inbound_track",
            both_tracks_mix=options.both_tracks_mix,
            subprotocols=options.subprotocols,
            metadata=metadata,
            send_metadata=options.send_metadata,
            caller=CallerTrack(steps, rate),
            jitter=options.jitter,
            playout=options.playout,
            max_seconds=options.max_call_seconds,
            heard_wav=options.heard_wav,
            on_open=on_open,
            drop_after_seconds=options.drop_media_after,
        )
        connect_started = time.monotonic()
        person = PersonResult()
        watcher = None
        if self._api:
            watcher = asyncio.create_task(
                person_on_stream(self._api, call, leg, person, behaviour=options.person)
            )
        media = self.result.media = await leg.run()
        self._stream_ended = time.monotonic()
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if person.supervision_id is not None:
            self.result.person = person.as_dict()
        if media.error:
            self.result.errors.append(f"media stream failed: {media.error}")
            await self._status(spec, "stream-error", stream_sid, media.error)
            return
        if media.ended_by == "dropped":
            self.result.warnings.append("the media socket was dropped (no close frame)")
            await self._status(spec, "stream-error", stream_sid, "media connection lost")
            self._judge_media(media, connect_started)
            return
        copies = options.stream_stopped_copies
        await asyncio.gather(
            self._status(spec, "stream-stopped", stream_sid, copies=copies),
            self._stream_stopped_event(stream_sid),
        )
        self._judge_media(media, connect_started)

    async def _stream_stopped_event(self, stream_sid: str) -> None:
        """With ``stream_stopped_event``, the platform also posts the stop to the events URL."""
        if not self.options.stream_stopped_event:
            return
        if not self._api:
            self.result.warnings.append("no API double: the stream-stopped event was not sent")
            return
        event, warning = await post_stream_stopped_event(self._api, self.call, stream_sid)
        if event is not None:
            self.result.platform_events.append(event)
        if warning:
            self.result.warnings.append(warning)

    def _judge_media(self, media: MediaLegResult, connect_started: float) -> None:
        if media.first_audio_heard_ms is None:
            self.result.errors.append("the caller never heard the agent (dead air)")
        else:
            offset = (connect_started - self._start) * 1000
            self.result.first_audio_after_call_start_ms = round(
                offset + media.first_audio_heard_ms, 1
            )
        if media.stale_audio_bytes:
            self.result.errors.append(
                f"{media.stale_audio_bytes} bytes of a killed reply arrived after killAudio"
            )
        if media.unheard_at_close_bytes:
            ms = media.unheard_at_close_bytes / (media.playback_rate * 2) * 1000
            self.result.warnings.append(
                f"{ms:.0f} ms of audio was still queued when the socket closed and was never heard"
            )
        if media.underruns:
            self.result.warnings.append(
                f"{media.underruns} playout gaps: the caller's buffer ran dry inside agent replies"
            )
        self.result.warnings += media.notes

    async def _rescued(self) -> bool:
        """After a stream with no re-POST: whether a supervision reached a person (the rescue)."""
        if not self._api:
            return False
        person = await await_person(
            self._api,
            self.call,
            behaviour=self.options.person,
            appear_seconds=self.options.rescue_wait_seconds,
            ring_seconds=self.options.person_ring_seconds,
            heard_wav=self.options.heard_wav,
            stream_ended_at=self._stream_ended,
        )
        self.result.person = person.as_dict()
        if person.connected_after_s is None:
            return False
        # Real seconds waited for the person, then (simulated) the conversation with them.
        await self._simulate(person.heard_seconds)
        return True

    # -- hangup, CDR and call record -----------------------------------------------------------

    async def _hang_up(self) -> None:
        if self._answered_monotonic is not None:
            real = time.monotonic() - self._answered_monotonic
            self.result.duration_seconds = math.ceil(real + self._simulated)
        if not self.options.stream_url:
            extra = {
                "durationInSeconds": str(self.result.duration_seconds),
                "isActive": "false",
                "direction": self.call.direction,
            }
            await self._completed_post(extra)
        await self._complete_with_api_double()
        if self.options.call_record_url:
            record, warnings = await fetch_call_record(
                self.options.call_record_url, self.call, self.options.record_wait_seconds
            )
            self.result.call_record = record
            self.result.warnings += warnings

    async def _completed_post(self, extra: dict[str, str]) -> None:
        fields = voice_fields(self.call, self.options.dialect, "Completed", extra)
        exchange = await post_fields(
            "Completed", self.options.voice_url, fields, self.signer, self.options.http_timeout
        )
        self.result.exchanges.append(exchange)
        if not exchange.ok:
            reason = exchange.error or f"HTTP {exchange.status}"
            self.result.errors.append(f"Completed webhook POST failed: {reason}")
        elif exchange.body.strip():
            answer = parse_voice_answer(exchange.body, exchange.content_type)
            if answer.verbs:
                self.result.warnings.append(
                    "verbs answered to Completed would land on an ended call"
                )

    async def _register_with_api_double(self) -> None:
        self._api, warning = await register_with_api_double(
            self.options.sautikit_api_url, self.call, self.result.started_at
        )
        if self._api or warning:
            self.result.api_double = {"url": self._api, "registered": self._api is not None}
        if warning:
            self.result.warnings.append(warning)
        if self._api:
            options = self.options
            if trouble := await configure_person(
                self._api,
                options.person,
                options.person_ring_seconds,
                options.person_answer_seconds,
            ):
                self.result.warnings.append(trouble)

    async def _complete_with_api_double(self) -> None:
        if self._api:
            warning = await complete_with_api_double(
                self._api,
                self.call,
                self.result.duration_seconds,
                self.result.answered_at,
                self._dialled,
            )
            if warning:
                self.result.warnings.append(warning)


async def run_call(
    options: CallOptions | None = None, call: CallIdentity | None = None
) -> CallResult:
    """Place one emulated Sautikit call and return what happened.

    Args:
        options: How to place the call (defaults match ``make call``).
        call: Fixed identifiers; fresh UUID and ``HD_…`` ids when None.
    """
    return await CallRunner(options or CallOptions(), call).run()
