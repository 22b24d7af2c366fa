"""The Gemini Live ``setup`` message of a call: model, voice, instructions, tools, detection.

Built from the profile and the provider-neutral tool specs (`media_node.prompts.tool_specs`) in
the API's lowerCamelCase, with every field where the API reference puts it (see
``realtime-apis.md`` B2): generation settings under ``generationConfig``, the rest directly
under ``setup``.
"""

from __future__ import annotations

from typing import Any

from mapokezi.profiles import Profile, TurnDetection


def is_gemini_3(model: str) -> bool:
    """Whether ``model`` is a 3.x Live model (text input goes through ``realtimeInput.text``)."""
    return model.removeprefix("models/").startswith("gemini-3")


def model_path(model: str) -> str:
    """The model name with the ``models/`` prefix the service requires."""
    return model if model.startswith("models/") else f"models/{model}"


def activity_detection(detection: TurnDetection) -> dict[str, Any]:
    """``automaticActivityDetection`` from the profile's turn detection settings.

    Gemini has sensitivities instead of a 0..1 threshold: a threshold below 0.5 (quieter speech
    counts) asks for high start sensitivity, above 0.5 for low; 0.5 keeps the service default.
    ``semantic_vad`` eagerness maps onto the end-of-speech sensitivity (high ends turns sooner).
    """
    settings: dict[str, Any] = {"disabled": False}
    if detection.type == "semantic_vad":
        end = {"high": "END_SENSITIVITY_HIGH", "low": "END_SENSITIVITY_LOW"}
        if detection.eagerness in end:
            settings["endOfSpeechSensitivity"] = end[detection.eagerness]
        return settings
    if detection.threshold < 0.5:
        settings["startOfSpeechSensitivity"] = "START_SENSITIVITY_HIGH"
    elif detection.threshold > 0.5:
        settings["startOfSpeechSensitivity"] = "START_SENSITIVITY_LOW"
    settings["prefixPaddingMs"] = detection.prefix_padding_ms
    settings["silenceDurationMs"] = detection.silence_duration_ms
    return settings


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema object as the Live API's OpenAPI-subset ``Schema``.

    Types are the upper-case enum names (``OBJECT``, ``STRING``…); keywords the ``Schema``
    message has no field for (``additionalProperties``) are left out, since unknown fields get
    the setup refused.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.upper()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out["items"] = gemini_schema(value)
        elif key in ("description", "enum", "required", "nullable", "format"):
            out[key] = value
    return out


def function_declarations(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Provider-neutral tool specs (``name``, ``description``, ``parameters``) for ``tools``."""
    return [
        {
            "name": tool["name"],
            "description": tool["description"],
            "parameters": gemini_schema(tool["parameters"]),
        }
        for tool in tools
    ]


def setup_message(
    profile: Profile,
    instructions: str,
    tools: list[dict[str, Any]],
    *,
    model: str,
    voice: str,
    handle: str | None = None,
) -> dict[str, Any]:
    """The ``setup`` message for a call (``handle`` resumes an earlier session)."""
    resumption: dict[str, Any] = {"handle": handle} if handle else {}
    return {
        "setup": {
            "model": model_path(model),
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "speechConfig": {
                    "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}},
                    "languageCode": profile.language,
                },
            },
            "systemInstruction": {"parts": [{"text": instructions}]},
            "tools": [{"functionDeclarations": function_declarations(tools)}],
            "realtimeInputConfig": {
                "automaticActivityDetection": activity_detection(profile.turn_detection),
                "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
            },
            "inputAudioTranscription": {},
            "outputAudioTranscription": {},
            "sessionResumption": resumption,
            "contextWindowCompression": {"slidingWindow": {}},
        }
    }
