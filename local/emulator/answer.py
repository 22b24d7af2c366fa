"""Strict parsing and validation of a voice-webhook answer, as Sautikit would run it.

Sautikit forwards raw XML to its PBX unchecked, so mistakes surface as a dead call; this module
reports them up front. Rules come from Sautikit's XML verb documentation and what integrators
observed on live calls: ``<Stream>`` needs ``connect="true"`` (without it the leg hangs up in
about a second), verbs after a connected ``<Stream>`` never ran in the field, and ``<Dial>``
takes exactly one of a ``<Number>`` child, ``phoneNumbers`` or ``<Sip>``. Sans-I/O: text in,
``VoiceAnswer`` out.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

VERBS = {
    "Say", "Play", "GetDigits", "Dial", "Conference", "Record", "Redirect", "Reject",
    "Hangup", "Stream", "Pause",
}  # fmt: skip
TRACKS = ("inbound_track", "outbound_track", "both_tracks")
STATUS_EVENTS = ("stream-started", "stream-stopped", "stream-error")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class StreamSpec:
    """The ``<Stream>`` attributes that shape the media leg."""

    url: str
    connect: bool
    track: str | None
    output_rate: int | None
    bidirectional_rate: int | None
    name: str | None
    status_callback: str | None
    status_events: list[str]
    header_metadata: dict[str, Any] | None
    open_metadata: str | None


@dataclass
class Verb:
    """One verb of the answer, in document order."""

    name: str
    attributes: dict[str, str]
    text: str = ""
    numbers: list[str] = field(default_factory=list)  # <Dial><Number> children


@dataclass
class VoiceAnswer:
    """A parsed answer: its verbs, the stream (if any), and what is wrong with it."""

    verbs: list[Verb] = field(default_factory=list)
    stream: StreamSpec | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def parse_voice_answer(body: bytes | str, content_type: str | None = None) -> VoiceAnswer:
    """Parse and validate the body of a voice-webhook response.

    Args:
        body: Response body.
        content_type: The ``Content-Type`` header, checked against ``application/xml``.
    """
    answer = VoiceAnswer()
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in ("application/xml", "text/xml"):
        answer.warnings.append(
            f"Content-Type is {content_type!r}; <Stream> must be served as application/xml"
        )
    if text.lstrip().startswith("{"):
        answer.errors.append("JSON action answers are not emulated; answer XML <Response>")
        return answer
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        answer.errors.append(f"answer is not well-formed XML: {exc}")
        return answer
    if root.tag != "Response":
        answer.errors.append(f"root element is <{root.tag}>, expected exactly one <Response>")
        return answer
    if (root.text or "").strip():
        answer.errors.append("<Response> contains stray text outside any verb")
    for element in root:
        answer.verbs.append(_verb(element, answer))
        if (element.tail or "").strip():
            answer.errors.append(f"stray text after <{element.tag}>")
    _check_order(answer)
    return answer


def _verb(element: ET.Element, answer: VoiceAnswer) -> Verb:
    verb = Verb(element.tag, dict(element.attrib), (element.text or "").strip())
    if element.tag not in VERBS:
        answer.errors.append(f"unknown verb <{element.tag}>")
    elif element.tag == "Stream":
        answer.stream = _stream(element.attrib, answer)
    elif element.tag == "Say":
        if not verb.text:
            answer.errors.append("<Say> has no text")
        _int_attr(element.attrib, "loop", "Say", answer)
    elif element.tag == "Dial":
        _dial(element, verb, answer)
    elif element.tag == "Hangup" and (element.attrib or len(element)):
        answer.warnings.append("<Hangup> takes no attributes or children")
    elif element.tag == "Redirect" and not verb.text:
        answer.errors.append("<Redirect> has no URL")
    return verb


def _stream(attrs: dict[str, str], answer: VoiceAnswer) -> StreamSpec | None:
    if answer.stream is not None:
        answer.errors.append("more than one <Stream>")
    url = attrs.get("url", "")
    if urlsplit(url).scheme not in ("ws", "wss") or not urlsplit(url).netloc:
        answer.errors.append(f"<Stream url={url!r}> must be a ws:// or wss:// URL")
        return None
    connect = attrs.get("connect")
    if connect != "true":
        answer.errors.append(
            f'<Stream connect={connect!r}>: connect="true" is required or the call hangs up'
            " within about 1 s"
        )
    track = attrs.get("track")
    if track is None:
        answer.warnings.append("<Stream> has no track; the platform default is unstated")
    elif track not in TRACKS:
        answer.errors.append(f"<Stream track={track!r}> is not one of {', '.join(TRACKS)}")
    output_rate = _int_attr(attrs, "outputSamplingRate", "Stream", answer)
    if output_rate is None:
        answer.warnings.append("<Stream> has no outputSamplingRate; the platform picks one")
    elif output_rate not in (8000, 16000):
        answer.errors.append(f"outputSamplingRate={output_rate} is not 8000 or 16000")
    bidi_rate = _int_attr(attrs, "bidirectionalSamplingRate", "Stream", answer)
    if bidi_rate is None:
        answer.warnings.append("<Stream> has no bidirectionalSamplingRate; playback is undefined")
    callback = attrs.get("statusCallback")
    if callback is not None and urlsplit(callback).scheme not in ("http", "https"):
        answer.errors.append(f"statusCallback={callback!r} is not an http(s) URL")
    events = attrs.get("statusEvents", "").split()
    unknown = [e for e in events if e not in STATUS_EVENTS]
    if unknown:
        answer.errors.append(f"statusEvents has unknown events {unknown}")
    if events and callback is None:
        answer.warnings.append("statusEvents given without statusCallback")
    return StreamSpec(
        url=url,
        connect=connect == "true",
        track=track,
        output_rate=output_rate,
        bidirectional_rate=bidi_rate,
        name=attrs.get("name"),
        status_callback=callback,
        status_events=events,
        header_metadata=_header_metadata(attrs.get("headerMetadata"), answer),
        open_metadata=attrs.get("openMetadata"),
    )


def _header_metadata(raw: str | None, answer: VoiceAnswer) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    flat = isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values())
    if not flat:
        answer.errors.append("headerMetadata must be a serialised flat JSON object")
        return None
    return value


def _dial(element: ET.Element, verb: Verb, answer: VoiceAnswer) -> None:
    children = [child for child in element if child.tag in ("Number", "Sip")]
    verb.numbers = [(c.text or "").strip() for c in element if c.tag == "Number"]
    fan_out = element.attrib.get("phoneNumbers", "").replace(",", " ").split()
    targets = bool(children) + bool(fan_out)
    if verb.text and not children:
        answer.warnings.append("<Dial> number given as text; Sautikit's XML uses <Number>")
        verb.numbers = [verb.text]
        targets += 1
    if targets != 1:
        answer.errors.append("<Dial> needs exactly one of <Number>, <Sip> or phoneNumbers")
    for number in [*verb.numbers, *fan_out]:
        if not E164.match(number):
            answer.errors.append(f"<Dial> number {number!r} is not E.164")
    verb.numbers += fan_out
    caller_id = element.attrib.get("callerId")
    if caller_id is not None and not E164.match(caller_id):
        answer.errors.append(f"<Dial callerId={caller_id!r}> is not E.164")
    _int_attr(element.attrib, "timeout", "Dial", answer)


def _int_attr(attrs: dict[str, str], name: str, verb: str, answer: VoiceAnswer) -> int | None:
    if name not in attrs:
        return None
    try:
        return int(attrs[name])
    except ValueError:
        answer.errors.append(f"<{verb} {name}={attrs[name]!r}> is not an integer")
        return None


def _check_order(answer: VoiceAnswer) -> None:
    names = [v.name for v in answer.verbs]
    if "Stream" in names and names.index("Stream") < len(names) - 1:
        after = ", ".join(f"<{n}>" for n in names[names.index("Stream") + 1 :])
        answer.warnings.append(
            f"{after} after a connected <Stream> never ran on Sautikit in the field"
        )
    if "Hangup" in names and names.index("Hangup") < len(names) - 1:
        answer.warnings.append("verbs after <Hangup> are unreachable")
