"""Validation of the call-listing filters, shared by ``GET /calls`` and ``mapokezi calls list``.

Pure: query parameters in, :class:`CallFilters` out, or :class:`FilterError` with a reason the
API returns as a 400 and the CLI prints.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mapokezi import keys
from mapokezi.profiles import E164
from mapokezi.store import CursorError, decode_cursor

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
STATUSES = ("active", "ended")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")
KNOWN_PARAMS = ("number", "caller", "since", "until", "status", "handoffs", "limit", "cursor")


class FilterError(ValueError):
    """A filter value is invalid; the message names the parameter and the reason."""


@dataclass(frozen=True)
class CallFilters:
    """Validated filters for :func:`mapokezi.store.query_calls` (see :meth:`query_kwargs`)."""

    number: str | None = None
    caller: str | None = None
    since: str | None = None
    until: str | None = None
    status: str | None = None
    handoffs_only: bool = False
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def query_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``store.query_calls``."""
        return asdict(self)

    def query_params(self) -> dict[str, str]:
        """The same filters as ``GET /calls`` query parameters (for the CLI's ``--api``)."""
        params = {
            "number": self.number,
            "caller": self.caller,
            "since": self.since,
            "until": self.until,
            "status": self.status,
            "handoffs": "true" if self.handoffs_only else None,
            "limit": str(self.limit),
            "cursor": self.cursor,
        }
        return {k: v for k, v in params.items() if v is not None}


def normalise_timestamp(name: str, value: str) -> str:
    """ISO-8601 (date, or date-time with ``Z``/offset; naive means UTC) → ``…T…:…:….mmmZ``."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(
            f"{name}: {value!r} is not an ISO-8601 time such as 2026-11-21T09:30:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalise_number(name: str, value: str) -> str:
    """An E.164 number; a bare run of digits (a ``+`` lost to URL decoding) gets its ``+`` back."""
    text = value.strip()
    if re.fullmatch(r"\d{7,15}", text):
        text = "+" + text
    if not E164.match(text):
        raise FilterError(f"{name}: {value!r} is not an E.164 number like +254712345678")
    return text


def parse_limit(value: str | int | None) -> int:
    """Page size from 1 to 100 (default 25)."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise FilterError(f"limit: {value!r} is not a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise FilterError(f"limit: must be from 1 to {MAX_LIMIT}, got {limit}")
    return limit


def parse_filters(params: Mapping[str, str | None]) -> CallFilters:
    """Validate ``GET /calls`` query parameters.

    Raises:
        FilterError: an unknown parameter or an invalid value.
    """
    unknown = sorted(set(params) - set(KNOWN_PARAMS))
    if unknown:
        raise FilterError(f"unknown parameter {unknown[0]!r} (allowed: {', '.join(KNOWN_PARAMS)})")

    def get(name: str) -> str | None:
        value = params.get(name)
        return value if value not in (None, "") else None

    number = get("number")
    caller = get("caller")
    since = get("since")
    until = get("until")
    status = get("status")
    handoffs = (params.get("handoffs") or "").strip().lower()
    if handoffs not in _TRUE + _FALSE:
        raise FilterError(f"handoffs: must be true or false, got {params.get('handoffs')!r}")
    if status is not None and status not in STATUSES:
        raise FilterError(f"status: must be one of {', '.join(STATUSES)}, got {status!r}")
    filters = CallFilters(
        number=normalise_number("number", number) if number else None,
        caller=normalise_number("caller", caller) if caller else None,
        since=normalise_timestamp("since", since) if since else None,
        until=normalise_timestamp("until", until) if until else None,
        status=status,
        handoffs_only=handoffs in _TRUE,
        limit=parse_limit(get("limit")),
        cursor=get("cursor"),
    )
    if filters.since and filters.until and filters.since > filters.until:
        raise FilterError("since: must not be later than until")
    if filters.cursor:
        try:
            position = decode_cursor(filters.cursor)
        except CursorError as exc:
            raise FilterError(f"cursor: {exc}") from None
        if not cursor_fits(position, filters):
            raise FilterError("cursor: does not belong to this listing")
    return filters


def cursor_fits(position: Mapping[str, str], filters: CallFilters) -> bool:
    """Whether a decoded cursor comes from the index these filters list (as ``query_calls``
    chooses it: number, else caller, else all calls), so a cursor from another listing is a 400.
    """
    if filters.number:
        index, value = keys.INDEX_BY_NUMBER, filters.number
    elif filters.caller:
        index, value = keys.INDEX_BY_CALLER, filters.caller
    else:
        index, value = keys.INDEX_BY_TIME, None
    partition_attr, sort_attr = keys.INDEXES[index]
    return (
        position.get(partition_attr) == keys.index_partition(index, value)
        and sort_attr in position
        and keys.PK in position
        and keys.SK in position
    )
