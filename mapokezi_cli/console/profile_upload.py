"""Reading a profile upload (``POST /numbers``, multipart form): number, file name and text."""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web

from mapokezi.profiles import ProfileError, load_profile_text

#: Largest profile file accepted (the longest valid profile is far smaller).
MAX_PROFILE_BYTES = 256 * 1024


async def read_profile_upload(request: web.Request) -> tuple[str, dict[str, Any], list[str]]:
    """``(number, fields, errors)`` from the form; ``fields`` is unvalidated, as from a file.

    The file is parsed as the CLI parses it (YAML for .yaml/.yml, JSON otherwise); the fields
    are then validated by the caller with ``parse_profile``, so errors read exactly alike.
    """
    number, name, raw = "", "", b""
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "number":
                number = (await part.text()).strip()
            elif part.name == "file":
                name = part.filename or "profile.yaml"
                raw = await part.read(decode=False)
    except (ValueError, AssertionError, web.HTTPException) as exc:
        return number, {}, [f"the upload could not be read ({exc})"]
    if not number:
        return number, {}, ["number: is required"]
    if not raw:
        return number, {}, ["file: choose a YAML or JSON profile file"]
    if len(raw) > MAX_PROFILE_BYTES:
        return number, {}, [f"file: larger than {MAX_PROFILE_BYTES // 1024} KiB"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return number, {}, [f"{name}: not UTF-8 text"]
    try:
        return number, load_profile_text(text, name), []
    except ProfileError as exc:
        return number, {}, exc.errors
