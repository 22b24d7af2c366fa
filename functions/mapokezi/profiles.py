"""Receptionist profiles: one per dialled number, validated before it is stored.

A profile file is YAML or JSON (see ``profiles/example.yaml`` and the README for every field).
:func:`parse_profile` turns a mapping into a frozen :class:`Profile` or raises
:class:`ProfileError` listing every problem with its exact field path, e.g.
``departments[1].number: must be an E.164 number like +254712345678``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mapokezi.handoff import (
    DEFAULT_MAX_BRIDGED_SECONDS,
    DEFAULT_RESCUE_GRACE_SECONDS,
    STRATEGIES,
    STRATEGY_AUTO,
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
"""OpenAI Realtime voices."""
GEMINI_VOICES = (
    "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe",
    "Autonoe", "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib",
    "Rasalgethi", "Laomedeia", "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima",
    "Achird", "Zubenelgenubi", "Vindemiatrix", "Sadachbia", "Sadaltager", "Sulafat",
)  # fmt: skip
"""Gemini Live prebuilt voices (the 30 of Google's speech configuration guide)."""
PROVIDERS = ("openai", "gemini")
DEFAULT_GEMINI_VOICE = "Kore"
_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class ProfileError(ValueError):
    """A profile is invalid; ``errors`` holds one ``"<field path>: <reason>"`` line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid profile:\n  " + "\n  ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Department:
    """A team the receptionist can transfer to."""

    name: str
    number: str
    description: str = ""


@dataclass(frozen=True)
class OpeningHours:
    """Weekly opening hours in a timezone; a day with no ranges is closed."""

    timezone: str = "Africa/Nairobi"
    weekly: dict[str, tuple[str, ...]] = field(default_factory=dict)
    closed_dates: tuple[str, ...] = ()

    def is_open(self, at: datetime) -> bool:
        """Whether the business is open at ``at`` (an aware datetime, any zone)."""
        local = at.astimezone(ZoneInfo(self.timezone))
        if local.date().isoformat() in self.closed_dates:
            return False
        now = local.time()
        for span in self.weekly.get(DAYS[local.weekday()], ()):
            start, end = _parse_range(span)
            if start <= now < end:
                return True
        return False


@dataclass(frozen=True)
class Lines:
    """What the platform's ``<Say>`` speaks around the AI part of a call."""

    fallback: str = "Sorry, our assistant is unavailable right now. Let me put you through."
    handoff: str = "Please hold while I connect you."
    after_hours: str = "We are closed right now."


@dataclass(frozen=True)
class SayVoice:
    """Voice and language for the platform's ``<Say>``."""

    voice: str | None = None
    language: str = "en-KE"


@dataclass(frozen=True)
class AudioSettings:
    """Media socket settings: sampling rate both ways and which legs are forked."""

    sample_rate: int = 16000
    track: str = "inbound_track"


@dataclass(frozen=True)
class TurnDetection:
    """Model-side voice activity detection."""

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: str = "auto"


@dataclass(frozen=True)
class ModelChoice:
    """Which speech-to-speech model answers the number.

    ``name`` overrides the node's model for the provider (``OPENAI_REALTIME_MODEL`` or
    ``GEMINI_MODEL``); ``voice`` must be one of the provider's voices. For OpenAI the profile's
    top-level ``voice`` applies when ``voice`` is not set here.
    """

    provider: str = "openai"
    name: str | None = None
    voice: str | None = None


@dataclass(frozen=True)
class Limits:
    """Runaway guards: call length and an idle caller."""

    max_call_seconds: int = 900
    idle_prompt_seconds: int = 15
    idle_end_seconds: int = 30


@dataclass(frozen=True)
class HandoffSettings:
    """How a transfer reaches a person (see ``mapokezi.handoff``).

    ``strategy``: ``auto`` (dial, rescue with a supervision when the platform does not come back
    after the stream, and remember it), ``supervise`` or ``dial``. ``rescue_grace_seconds``: how
    long after the stream stopped the platform has to re-POST the voice webhook before ``auto``
    rescues the caller. ``max_bridged_seconds``: how long the caller and the person a
    supervised transfer reached may talk (from the person's answer) before the media node ends
    the call; the receptionist's own ``limits.max_call_seconds`` no longer applies then.
    """

    strategy: str = STRATEGY_AUTO
    rescue_grace_seconds: float = DEFAULT_RESCUE_GRACE_SECONDS
    max_bridged_seconds: int = DEFAULT_MAX_BRIDGED_SECONDS


@dataclass(frozen=True)
class Profile:
    """Everything the receptionist of one number needs."""

    number: str
    business_name: str
    greeting: str
    instructions: str
    front_desk: str
    facts: tuple[str, ...] = ()
    language: str = "en"
    voice: str = "marin"
    hours: OpeningHours | None = None
    departments: tuple[Department, ...] = ()
    after_hours_number: str | None = None
    caller_id: str | None = None
    dial_timeout_seconds: int = 30
    lines: Lines = Lines()
    say: SayVoice = SayVoice()
    audio: AudioSettings = AudioSettings()
    turn_detection: TurnDetection = TurnDetection()
    limits: Limits = Limits()
    retention_days: int = 90
    model: ModelChoice = ModelChoice()
    #: Spoken right after the greeting, e.g. "You are speaking with an automated assistant;
    #: this call is recorded." (the notice Kenya's Data Protection Act expects).
    disclosure: str | None = None
    handoff: HandoffSettings = HandoffSettings()

    @property
    def model_voice(self) -> str:
        """The voice the chosen provider speaks with."""
        if self.model.voice:
            return self.model.voice
        return self.voice if self.model.provider == "openai" else DEFAULT_GEMINI_VOICE

    def is_open(self, at: datetime) -> bool:
        """Whether calls at ``at`` are inside opening hours (no hours means always open)."""
        return True if self.hours is None else self.hours.is_open(at)

    def department(self, name: str | None) -> Department | None:
        """The department called ``name`` (case-insensitive), if any."""
        if not name:
            return None
        wanted = name.strip().lower()
        return next((d for d in self.departments if d.name.lower() == wanted), None)

    def transfer_target(self, department: str | None) -> str:
        """The number to dial for ``department``, or the front desk."""
        found = self.department(department)
        return found.number if found else self.front_desk

    def to_dict(self) -> dict[str, Any]:
        """Plain data, the inverse of :func:`parse_profile`."""
        data = asdict(self)
        if self.hours is not None:
            data["hours"]["weekly"] = {d: list(r) for d, r in self.hours.weekly.items()}
        return data


def load_profile_file(path: str | Path) -> dict[str, Any]:
    """Read a profile file (``.yaml``/``.yml`` or ``.json``) into a mapping, unvalidated."""
    path = Path(path)
    return load_profile_text(path.read_text(encoding="utf-8"), path.name)


def load_profile_text(text: str, name: str) -> dict[str, Any]:
    """Parse a profile file's text (YAML when ``name`` ends in .yaml/.yml, else JSON)."""
    if Path(name).suffix.lower() in (".yaml", ".yml"):
        import yaml  # only the operator's tools read YAML; Lambda stores and loads JSON

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ProfileError([f"{name}: not valid YAML ({exc})"]) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProfileError([f"{name}: not valid JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise ProfileError([f"{name}: the top level must be a mapping of fields"])
    return data


def parse_profile(data: Mapping[str, Any], number: str | None = None) -> Profile:
    """Validate ``data`` and build a :class:`Profile`.

    Args:
        data: the profile's fields (from a file or storage).
        number: the dialled number it is for; overrides ``data["number"]``.

    Raises:
        ProfileError: listing every invalid or unknown field.
    """
    v = _Validator(data)
    number_value = number if number is not None else data.get("number")
    if not isinstance(number_value, str) or not E164.match(number_value):
        v.errors.append("number: must be an E.164 number like +254712345678")
    known = set(Profile.__dataclass_fields__)
    v.unknown("", data, known)
    text = v.text
    profile_kwargs: dict[str, Any] = {
        "number": number_value if isinstance(number_value, str) else "",
        "business_name": text("business_name", required=True, max_len=120),
        "greeting": text("greeting", required=True, max_len=500),
        "instructions": text("instructions", required=True, max_len=20000),
        "front_desk": v.phone("front_desk", required=True),
        "facts": v.text_list("facts", max_items=200, max_len=1000),
        "language": text("language", default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$"),
        "voice": v.choice("voice", VOICES, default="marin"),
        "hours": v.hours("hours"),
        "departments": v.departments("departments"),
        "after_hours_number": v.phone("after_hours_number"),
        "caller_id": v.phone("caller_id"),
        "dial_timeout_seconds": v.integer("dial_timeout_seconds", 5, 120, default=30),
        "lines": v.section(
            "lines", Lines, {f: lambda p: v.text(p, max_len=500) for f in _f(Lines)}
        ),
        "say": v.section(
            "say", SayVoice, {"voice": lambda p: v.text(p, max_len=40), "language": v.text}
        ),
        "audio": v.section(
            "audio",
            AudioSettings,
            {
                "sample_rate": lambda p: v.choice(p, (16000, 8000)),
                "track": lambda p: v.choice(p, ("inbound_track", "both_tracks")),
            },
        ),
        "turn_detection": v.section(
            "turn_detection",
            TurnDetection,
            {
                "type": lambda p: v.choice(p, ("server_vad", "semantic_vad")),
                "threshold": lambda p: v.number(p, 0.0, 1.0),
                "prefix_padding_ms": lambda p: v.integer(p, 0, 2000),
                "silence_duration_ms": lambda p: v.integer(p, 100, 5000),
                "eagerness": lambda p: v.choice(p, ("low", "medium", "high", "auto")),
            },
        ),
        "limits": v.section(
            "limits",
            Limits,
            {
                "max_call_seconds": lambda p: v.integer(p, 60, 3600),
                "idle_prompt_seconds": lambda p: v.integer(p, 5, 600),
                "idle_end_seconds": lambda p: v.integer(p, 5, 600),
            },
        ),
        "retention_days": v.integer("retention_days", 1, 3650, default=90),
        "handoff": v.section(
            "handoff",
            HandoffSettings,
            {
                "strategy": lambda p: v.choice(p, STRATEGIES),
                "rescue_grace_seconds": lambda p: v.number(p, 0.5, 30.0),
                "max_bridged_seconds": lambda p: v.integer(p, 60, 14400),
            },
        ),
        "model": v.model_choice("model"),
        "disclosure": text("disclosure", max_len=300),
    }
    if v.errors:
        raise ProfileError(v.errors)
    return Profile(**profile_kwargs)


def _f(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


def _parse_range(span: str) -> tuple[time, time]:
    m = _RANGE.match(span)
    if not m:
        raise ValueError(span)
    start = time(int(m[1]), int(m[2]))
    end = time.max if m[3] == "24" else time(int(m[3]), int(m[4]))
    return start, end


_MISSING = object()


class _Validator:
    """Collects errors with field paths while reading a nested mapping."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: list[str] = []

    def get(self, path: str) -> Any:
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node or node[part] is None:
                return _MISSING
            node = node[part]
        return node

    def unknown(self, prefix: str, node: Mapping[str, Any], known: set[str]) -> None:
        for key in node:
            if key not in known:
                self.errors.append(f"{prefix}{key}: unknown field")

    def text(
        self,
        path: str,
        *,
        required: bool = False,
        default: str | None = None,
        max_len: int = 200,
        pattern: str | None = None,
    ) -> Any:
        value = self.get(path)
        if value is _MISSING or (value == "" and not required):
            if required:
                self.errors.append(f"{path}: is required")
            return default
        if not isinstance(value, str) or not value.strip():
            self.errors.append(f"{path}: must be non-empty text")
            return default
        if len(value) > max_len:
            self.errors.append(f"{path}: must be at most {max_len} characters")
        if pattern and not re.match(pattern, value):
            self.errors.append(f"{path}: {value!r} is not a valid value")
        return value.strip()

    def phone(self, path: str, *, required: bool = False) -> str | None:
        value = self.get(path)
        if value is _MISSING:
            if required:
                self.errors.append(f"{path}: is required")
            return None
        if not isinstance(value, str) or not E164.match(value):
            self.errors.append(f"{path}: must be an E.164 number like +254712345678")
            return None
        return value

    def integer(self, path: str, low: int, high: int, *, default: int | None = None) -> Any:
        value = self.get(path)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.errors.append(f"{path}: must be a whole number from {low} to {high}")
            return default
        return value

    def number(self, path: str, low: float, high: float) -> Any:
        value = self.get(path)
        if value is _MISSING:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not low <= value <= high:
            self.errors.append(f"{path}: must be a number from {low} to {high}")
            return None
        return float(value)

    def choice(self, path: str, options: tuple[Any, ...], *, default: Any = None) -> Any:
        value = self.get(path)
        if value is _MISSING:
            return default
        if value not in options:
            listed = ", ".join(str(o) for o in options)
            self.errors.append(f"{path}: must be one of {listed}")
            return default
        return value

    def text_list(self, path: str, *, max_items: int, max_len: int) -> tuple[str, ...]:
        value = self.get(path)
        if value is _MISSING:
            return ()
        if not isinstance(value, list) or len(value) > max_items:
            self.errors.append(f"{path}: must be a list of at most {max_items} texts")
            return ()
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip() or len(item) > max_len:
                self.errors.append(f"{path}[{i}]: must be non-empty text of <= {max_len} chars")
            else:
                out.append(item.strip())
        return tuple(out)

    def section(self, path: str, cls: type, readers: dict[str, Callable[[str], Any]]) -> Any:
        node = self.get(path)
        if node is _MISSING:
            return cls()
        if not isinstance(node, Mapping):
            self.errors.append(f"{path}: must be a mapping")
            return cls()
        self.unknown(f"{path}.", node, set(readers))
        values = {name: read(f"{path}.{name}") for name, read in readers.items()}
        return cls(**{k: val for k, val in values.items() if val is not None})

    def model_choice(self, path: str) -> ModelChoice:
        node = self.get(path)
        if node is _MISSING:
            return ModelChoice()
        if not isinstance(node, Mapping):
            self.errors.append(f"{path}: must be a mapping with provider (and name, voice)")
            return ModelChoice()
        self.unknown(f"{path}.", node, set(_f(ModelChoice)))
        if self.get(f"{path}.provider") is _MISSING:
            self.errors.append(f"{path}.provider: is required")
            return ModelChoice()
        provider = self.choice(f"{path}.provider", PROVIDERS)
        name = self.text(f"{path}.name", max_len=120, pattern=r"^[A-Za-z0-9][\w.\-/]*$")
        voices = GEMINI_VOICES if provider == "gemini" else VOICES
        voice = self.get(f"{path}.voice")
        if voice is not _MISSING and provider is not None and voice not in voices:
            self.errors.append(
                f"{path}.voice: {voice!r} is not a {provider} voice (one of {', '.join(voices)})"
            )
            voice = _MISSING
        return ModelChoice(provider or "openai", name, None if voice is _MISSING else voice)

    def departments(self, path: str) -> tuple[Department, ...]:
        node = self.get(path)
        if node is _MISSING:
            return ()
        if not isinstance(node, list):
            self.errors.append(f"{path}: must be a list")
            return ()
        out: list[Department] = []
        seen: set[str] = set()
        for i, item in enumerate(node):
            where = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                self.errors.append(f"{where}: must be a mapping with name and number")
                continue
            self.unknown(f"{where}.", item, {"name", "number", "description"})
            sub = _Validator(item)
            name = sub.text("name", required=True, max_len=60, pattern=r"^[\w][\w \-&]*$")
            number = sub.phone("number", required=True)
            description = sub.text("description", default="", max_len=300)
            self.errors.extend(f"{where}.{e}" for e in sub.errors)
            if name and name.lower() in seen:
                self.errors.append(f"{where}.name: duplicate department {name!r}")
            if name and number:
                seen.add(name.lower())
                out.append(Department(name, number, description or ""))
        return tuple(out)

    def hours(self, path: str) -> OpeningHours | None:
        node = self.get(path)
        if node is _MISSING:
            return None
        if not isinstance(node, Mapping):
            self.errors.append(f"{path}: must be a mapping with timezone and weekly")
            return None
        self.unknown(f"{path}.", node, {"timezone", "weekly", "closed_dates"})
        tz = node.get("timezone", "Africa/Nairobi")
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            self.errors.append(f"{path}.timezone: unknown timezone {tz!r}")
            tz = "Africa/Nairobi"
        weekly_node = node.get("weekly", {})
        weekly: dict[str, tuple[str, ...]] = {}
        if not isinstance(weekly_node, Mapping):
            self.errors.append(f"{path}.weekly: must map days (mon..sun) to lists of HH:MM-HH:MM")
            weekly_node = {}
        for day, spans in weekly_node.items():
            where = f"{path}.weekly.{day}"
            if day not in DAYS:
                self.errors.append(f"{where}: unknown day (use {', '.join(DAYS)})")
                continue
            spans = [spans] if isinstance(spans, str) else spans
            if not isinstance(spans, list):
                self.errors.append(f"{where}: must be a list of HH:MM-HH:MM ranges")
                continue
            good = []
            for i, span in enumerate(spans):
                if not isinstance(span, str) or not _RANGE.match(span):
                    self.errors.append(f"{where}[{i}]: must look like 08:00-17:30")
                elif _parse_range(span)[0] >= _parse_range(span)[1]:
                    self.errors.append(f"{where}[{i}]: must end after it starts")
                else:
                    good.append(span)
            weekly[day] = tuple(good)
        closed = node.get("closed_dates", [])
        closed_out: list[str] = []
        if not isinstance(closed, list):
            self.errors.append(f"{path}.closed_dates: must be a list of YYYY-MM-DD dates")
            closed = []
        for i, day_text in enumerate(closed):
            try:
                closed_out.append(date.fromisoformat(str(day_text)).isoformat())
            except ValueError:
                self.errors.append(f"{path}.closed_dates[{i}]: must be a YYYY-MM-DD date")
        return OpeningHours(str(tz), weekly, tuple(closed_out))
