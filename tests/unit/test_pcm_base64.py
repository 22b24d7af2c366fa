"""Base64 of PCM for the model wire protocols: every backend agrees with the standard library."""

from __future__ import annotations

import base64
import binascii
import json
import random
from collections.abc import Callable

import pytest

from media_node.models import openai_protocol as wire
from media_node.models import pcm_base64

CHUNKS = [b"", b"\x01", b"\x01\x00", bytes(range(256)) * 7 + b"\xff\x7f\x00"]
CHUNKS += [random.Random(seed).randbytes(n) for seed, n in enumerate((1920, 5760, 11520, 3))]


def test_the_fast_backend_is_the_one_in_use() -> None:
    # pybase64 is pinned for the node; losing it would silently cost every call CPU.
    assert pcm_base64.BACKEND == "pybase64"
    assert set(pcm_base64.ENCODERS) == set(pcm_base64.DECODERS) == {"stdlib", "pybase64"}


@pytest.mark.parametrize("backend", sorted(pcm_base64.ENCODERS))
@pytest.mark.parametrize("pcm", CHUNKS, ids=lambda pcm: f"{len(pcm)}B")
def test_encode_and_decode_match_the_standard_library(backend: str, pcm: bytes) -> None:
    text = pcm_base64.ENCODERS[backend](pcm)
    assert isinstance(text, str)
    assert text == base64.b64encode(pcm).decode("ascii")
    assert pcm_base64.DECODERS[backend](text) == pcm
    assert pcm_base64.DECODERS[backend](text.encode("ascii")) == pcm


@pytest.mark.parametrize("backend", sorted(pcm_base64.DECODERS))
@pytest.mark.parametrize("bad", ["AQ", "AQ!A", "AQAA\n", "AQ AA", "A-_A", "AQ==AQ=="])
def test_decoding_is_strict(backend: str, bad: str) -> None:
    with pytest.raises(binascii.Error):
        pcm_base64.DECODERS[backend](bad)


@pytest.mark.parametrize("backend", sorted(pcm_base64.DECODERS))
def test_decoding_accepts_what_b64decode_validate_accepts(backend: str) -> None:
    def outcome(decode: Callable[[str], bytes], text: str) -> bytes | str:
        try:
            return decode(text)
        except binascii.Error:
            return "refused"

    def reference(text: str) -> bytes:
        return base64.b64decode(text, validate=True)

    texts = ["AQI=", "AQI==", "AQID", "AQID==", "AQID====", "AQ=I", "=AQI"]
    outcomes = [outcome(pcm_base64.DECODERS[backend], text) for text in texts]
    assert outcomes == [outcome(reference, text) for text in texts]
    assert "refused" in outcomes and b"\x01\x02\x03" in outcomes  # both kinds are covered


def test_append_audio_is_exact_json_with_the_pcm() -> None:
    pcm = CHUNKS[4]
    text = wire.append_audio(pcm)
    event = json.loads(text)
    assert event == {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    assert text == json.dumps(event, separators=(",", ":"))
