"""Sautikit voice XML: the only module that builds it.

Verbs are small frozen dataclasses rendered with :mod:`xml.etree.ElementTree`, so every text and
attribute value is escaped by the serialiser, never by hand. Attributes are written in the order
given (ElementTree keeps insertion order), which keeps answers stable and easy to diff.

No XML declaration is written. Sautikit forwards raw XML to its PBX unchanged and every
documented example starts directly with ``<Response>``; a declaration is one more thing a
strict or hand-rolled parser could reject, and without one XML 1.0 already means UTF-8, which
is exactly what we send (the body is UTF-8 and served as ``application/xml``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

CONTENT_TYPE = "application/xml"
STATUS_EVENTS = "stream-started stream-stopped stream-error"

# Characters XML 1.0 cannot carry at all (even escaped); a profile line containing one must
# not turn the whole answer into a document the PBX refuses. Spelled as the forbidden set rather
# than the negated allowed one: the same characters, but a tenth of the compile time (the negated
# ranges up to U+10FFFF cost milliseconds of every cold start).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


@dataclass(frozen=True)
class Stream:
    """``<Stream>``: fork the call's audio to a WebSocket and hold the leg while it runs."""

    url: str
    track: str = "inbound_track"
    sample_rate: int = 16000
    name: str = "mapokezi"
    status_callback: str | None = None
    status_events: str = STATUS_EVENTS

    def element(self) -> ET.Element:
        """This verb as an element."""
        attributes = {
            "url": self.url,
            # Without connect="true" the fork is fire-and-forget and the leg hangs up in ~1 s.
            "connect": "true",
            "track": self.track,
            "outputSamplingRate": str(self.sample_rate),
            "bidirectionalSamplingRate": str(self.sample_rate),
            "name": self.name,
        }
        if self.status_callback:
            attributes["statusCallback"] = self.status_callback
            attributes["statusEvents"] = self.status_events
        return ET.Element("Stream", {k: _clean(v) for k, v in attributes.items()})


@dataclass(frozen=True)
class Say:
    """``<Say>``: speak ``text`` with the platform's TTS."""

    text: str
    voice: str | None = None
    language: str | None = None

    def element(self) -> ET.Element:
        """This verb as an element."""
        attributes = {}
        if self.voice:
            attributes["voice"] = _clean(self.voice)
        if self.language:
            attributes["language"] = _clean(self.language)
        say = ET.Element("Say", attributes)
        say.text = _clean(self.text)
        return say


@dataclass(frozen=True)
class Dial:
    """``<Dial>``: connect the caller to ``number``."""

    number: str
    caller_id: str | None = None
    timeout_seconds: int | None = None

    def element(self) -> ET.Element:
        """This verb as an element."""
        attributes = {}
        if self.caller_id:
            attributes["callerId"] = _clean(self.caller_id)
        if self.timeout_seconds is not None:
            attributes["timeout"] = str(int(self.timeout_seconds))
        dial = ET.Element("Dial", attributes)
        ET.SubElement(dial, "Number").text = _clean(self.number)
        return dial


@dataclass(frozen=True)
class Hangup:
    """``<Hangup/>``: end the call."""

    def element(self) -> ET.Element:
        """This verb as an element."""
        return ET.Element("Hangup")


Verb = Stream | Say | Dial | Hangup


def render(verbs: Iterable[Verb] = ()) -> str:
    """A ``<Response>`` document holding ``verbs`` in order (none gives an empty response)."""
    response = ET.Element("Response")
    for verb in verbs:
        response.append(verb.element())
    return ET.tostring(response, encoding="unicode")


def empty_response() -> str:
    """The answer to lifecycle POSTs that need no action: ``<Response />``."""
    return render()
