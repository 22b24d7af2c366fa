"""Sautikit XML: exact shapes, attribute order, escaping of hostile text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from serverless.sautikit_xml import Dial, Hangup, Say, Stream, _clean, empty_response, render

HOSTILE = [
    'He said "karibu" & left <quickly>',
    "Tafadhali subiri kidogo — asante sana!",
    "Karibu 🦷😀 ' \" < > &amp; ]]> <!-- x -->",
    "</Say><Hangup/><Say>",
]


def test_empty_response_has_no_children_and_no_declaration() -> None:
    xml = empty_response()
    assert not xml.startswith("<?xml")
    root = ET.fromstring(xml)
    assert root.tag == "Response" and len(root) == 0


def test_stream_attributes_in_documented_order() -> None:
    xml = render(
        [
            Stream(
                url="wss://media.example.com/audio?token=v1.a.b",
                track="inbound_track",
                sample_rate=8000,
                status_callback="https://api.example.com/stream-status",
            )
        ]
    )
    assert xml == (
        '<Response><Stream url="wss://media.example.com/audio?token=v1.a.b" connect="true" '
        'track="inbound_track" outputSamplingRate="8000" bidirectionalSamplingRate="8000" '
        'name="mapokezi" statusCallback="https://api.example.com/stream-status" '
        'statusEvents="stream-started stream-stopped stream-error" /></Response>'
    )


def test_url_with_ampersand_is_escaped_and_round_trips() -> None:
    url = "wss://m.example.com/audio?a=1&token=x"
    stream = ET.fromstring(render([Stream(url=url)]))[0]
    assert stream.get("url") == url
    assert stream.get("statusCallback") is None


def test_say_dial_shapes() -> None:
    xml = render(
        [
            Say("Please hold.", voice="woman", language="en-KE"),
            Dial("+254711000002", caller_id="+254700000100", timeout_seconds=25),
            Hangup(),
        ]
    )
    assert xml == (
        '<Response><Say voice="woman" language="en-KE">Please hold.</Say>'
        '<Dial callerId="+254700000100" timeout="25"><Number>+254711000002</Number></Dial>'
        "<Hangup /></Response>"
    )


def test_optional_attributes_are_left_out() -> None:
    root = ET.fromstring(render([Say("hi"), Dial("+254711000001")]))
    assert root[0].attrib == {} and root[1].attrib == {}


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_round_trips_intact(text: str) -> None:
    root = ET.fromstring(render([Say(text, voice=text, language="sw-KE")]))
    assert [child.tag for child in root] == ["Say"]
    assert root[0].text == text
    assert root[0].get("voice") == text


def test_characters_xml_cannot_carry_are_dropped() -> None:
    root = ET.fromstring(render([Say("Karibu\x00\x07 sana\ufffe")]))
    assert root[0].text == "Karibu sana"


def _xml_char(code: int) -> bool:
    # XML 1.0's Char production, as the spec writes it.
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def test_text_keeps_exactly_the_characters_xml_can_carry() -> None:
    everything = "".join(map(chr, range(0x110000)))
    assert _clean(everything) == "".join(c for c in everything if _xml_char(ord(c)))
