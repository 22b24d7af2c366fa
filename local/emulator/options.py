"""Options of one emulated call, with defaults that match ``make call`` against ``make run``."""

from __future__ import annotations

from dataclasses import dataclass, field

from local import running
from local.emulator.media_leg import DRACHTIO
from local.emulator.pacing import JitterConfig
from local.emulator.playout import PlayoutConfig
from local.emulator.script import Step


def default_voice_url() -> str:
    """``VOICE_URL``, else the local gateway on ``GATEWAY_PORT`` (default 3000).

    Unset variables come from the running ``make run`` (``local/running.py``), so a stack
    started on other ports is reached without repeating them.
    """
    port = running.setting("GATEWAY_PORT", "3000")
    host = running.setting("LOCAL_HOST", "127.0.0.1")
    return running.setting("VOICE_URL") or f"http://{host}:{port}/voice"


def _env(name: str) -> str | None:
    return running.setting(name) or None


def default_sautikit_api_url() -> str:
    """``SAUTIKIT_API_URL``, else the local stack's Sautikit double on ``SAUTIKIT_DOUBLE_PORT``.

    Calls are only registered after ``/_double/ping`` confirms the URL is the double.
    """
    port = running.setting("SAUTIKIT_DOUBLE_PORT", "8091")
    host = running.setting("LOCAL_HOST", "127.0.0.1")
    return running.setting("SAUTIKIT_API_URL") or f"http://{host}:{port}"


@dataclass
class CallOptions:
    """How to place the call; defaults match ``make call`` against ``make run``."""

    voice_url: str = field(default_factory=default_voice_url)
    from_number: str = "+254712345678"
    to_number: str = field(default_factory=lambda: _env("DEMO_NUMBER") or "+254700000100")
    dialect: str = "both"
    encoding: str = "form"
    initial_state: str | None = None
    webhook_secret: str | None = field(default_factory=lambda: _env("SAUTIKIT_WEBHOOK_SECRET"))
    signature_scheme: str = "v1"
    stream_url: str | None = None  # connect straight to a media server, no webhook
    rate: int | None = None  # overrides outputSamplingRate
    track: str | None = None  # overrides the Stream track
    both_tracks_mix: str = "stereo"
    subprotocols: tuple[str, ...] = (DRACHTIO,)
    send_metadata: bool = True
    steps: list[Step] | None = None
    wavs: list[str] = field(default_factory=list)
    jitter: JitterConfig = field(default_factory=JitterConfig)
    playout: PlayoutConfig = field(default_factory=PlayoutConfig)
    max_call_seconds: float = 120.0
    heard_wav: str | None = None
    status_dialect: str = "telnyx"
    status_encoding: str = "form"
    restream_post: bool = True
    #: Copies of the first POST sent at once (the platform retrying in parallel); 1 = no retry.
    first_post_copies: int = 1
    #: Send the first POST once more this many seconds after its answer (a late retry).
    first_post_retry_after: float | None = None
    #: Copies of the ``stream-stopped`` status callback sent at once (a parallel retry).
    stream_stopped_copies: int = 1
    #: Also have the API double post the stop to the events URL, at the same moment.
    stream_stopped_event: bool = False
    #: Drop the media socket this many seconds after it opened, with no close frame.
    drop_media_after: float | None = None
    post_stream_started: bool = False
    dial_outcome: str = "answered"  # answered | no-answer | busy
    dial_answer_seconds: float = 5.0
    dead_air_hangup_seconds: float = 5.0
    realtime_verbs: bool = False
    sautikit_api_url: str | None = field(default_factory=default_sautikit_api_url)
    call_record_url: str | None = None
    record_wait_seconds: float = 8.0
    http_timeout: float = 10.0
    person: str = "answer"  # what the person a transfer reaches does (see person.py)
    rescue_wait_seconds: float = 10.0  # silence a caller sits through before giving up
    person_ring_seconds: float = 40.0  # how long a ringing person may take
    person_answer_seconds: float = 1.0  # how long an answering person's phone rings first
